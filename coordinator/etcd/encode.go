package etcd

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/modpipe/modpipe/coordinator"
)

// Hand-written encoders for what every dispatch writes: an assignment and
// a claim value. encoding/json walks the struct by reflection on each
// call; after an idle gap, when nothing is in cache, that was 36 µs of
// the 140 µs an Enqueue spent before its Txn was sent, and the claim
// value as much again. The bytes are exactly json.Marshal's
// (TestEncodersAreJSONMarshal, FuzzEncoders), so every reader keeps
// decoding them with encoding/json.

// marshalAssignment is json.Marshal(a).
func marshalAssignment(a coordinator.Assignment) ([]byte, error) {
	return appendAssignment(make([]byte, 0, 160+len(a.Module)), a)
}

func appendAssignment(b []byte, a coordinator.Assignment) ([]byte, error) {
	b = append(b, `{"module":`...)
	b = appendString(b, a.Module)
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(a.Attempt), 10)
	if len(a.Requires) > 0 {
		b = append(b, `,"requires":`...)
		b = appendStrings(b, a.Requires)
	}
	if a.OnlyMember != nil {
		b = append(b, `,"only_member":`...)
		b = strconv.AppendInt(b, int64(*a.OnlyMember), 10)
	}
	b = append(b, `,"timeout":`...)
	b = strconv.AppendInt(b, int64(a.Timeout), 10)
	if len(a.Dependencies) > 0 {
		b = append(b, `,"dependencies":`...)
		b = appendStrings(b, a.Dependencies)
	}
	b = append(b, `,"priority":`...)
	b = strconv.AppendInt(b, int64(a.Priority), 10)
	b = append(b, `,"enqueued_at":`...)
	b, err := appendTime(b, a.EnqueuedAt)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// marshalClaim is json.Marshal(cv) for a cv whose Assignment, if any, is
// compact JSON (what marshalAssignment returns).
func marshalClaim(cv claimValue) ([]byte, error) {
	b := make([]byte, 0, 192+len(cv.Module)+len(cv.Waiter)+len(cv.Assignment))
	b = append(b, `{"module":`...)
	b = appendString(b, cv.Module)
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(cv.Attempt), 10)
	b = append(b, `,"member":`...)
	b, err := appendMember(b, cv.Member)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"lease":`...)
	b = strconv.AppendInt(b, cv.Lease, 10)
	if cv.Waiter != "" {
		b = append(b, `,"waiter":`...)
		b = appendString(b, cv.Waiter)
	}
	if len(cv.Assignment) > 0 {
		b = append(b, `,"assignment":`...)
		b = append(b, cv.Assignment...)
	}
	return append(b, '}'), nil
}

func appendMember(b []byte, m coordinator.Member) ([]byte, error) {
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, int64(m.Index), 10)
	b = append(b, `,"host":`...)
	b = appendString(b, m.Host)
	b = append(b, `,"capabilities":`...)
	if m.Capabilities == nil {
		b = append(b, "null"...)
	} else {
		b = appendStrings(b, m.Capabilities)
	}
	b = append(b, `,"slots":`...)
	b = strconv.AppendInt(b, int64(m.Slots), 10)
	b = append(b, `,"version":`...)
	b = appendString(b, m.Version)
	b = append(b, `,"joined_at":`...)
	b, err := appendTime(b, m.JoinedAt)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// appendString appends s quoted as encoding/json quotes it. Plain ASCII
// (module addresses, host names, keys) is copied; anything encoding/json
// would escape or check (control characters, quotes, backslashes, <, >,
// &, non-ASCII) goes through encoding/json itself.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendStrings(b []byte, list []string) []byte {
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendTime appends t as json.Marshal encodes it (its MarshalJSON), and
// for a time it cannot encode (a year outside 0-9999) returns the error
// json.Marshal does.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	tb, err := t.MarshalJSON()
	if err != nil {
		_, err = json.Marshal(t)
		return nil, err
	}
	return append(b, tb...), nil
}

// marshalJSON is json.Marshal without HTML escaping:
// readers decode the same value either way, and escaping would turn each
// <, > or & of a command's output into 6 bytes (\u003c), which in a
// fleet counts against etcd's request size.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
