// Package secrets masks sensitive values in everything modpipe prints or
// writes: module output, the host's own lines, envelopes' error text and
// reports (R7.4).
//
// A Masker is built once per run from the values to hide (variables
// marked sensitive, environment variables named in the pipeline's
// secrets) and is then safe for concurrent use. Masking works on whole
// strings: callers mask complete lines, so a secret a plugin wrote in two
// pieces is caught once the pieces are joined into its line.
package secrets

import (
	"bytes"
	"encoding/json"
	"io"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/zclconf/go-cty/cty"
)

// Mask is what a secret is replaced by.
const Mask = "***"

// Masker replaces secret values by Mask. The zero value and a nil
// *Masker mask nothing.
type Masker struct {
	values   []string
	replacer *strings.Replacer
}

// New returns a Masker for values. Empty and all-blank values are
// ignored (masking them would garble every line). A multi-line value is
// masked whole and line by line, since output is masked line by line.
// Longer values are replaced first, so a secret that contains another is
// hidden whole rather than leaving its remainder visible.
func New(values ...string) *Masker {
	seen := map[string]bool{}
	var vs []string
	add := func(v string) {
		if strings.TrimSpace(v) == "" || seen[v] {
			return
		}
		seen[v] = true
		vs = append(vs, v)
	}
	for _, v := range values {
		add(v)
		// The forms it takes inside a quoted string: Go's %q (an error
		// that quotes a path or a command) and JSON's (a log entry, a
		// plugin's JSON). They differ from v only when v has quotes,
		// backslashes, control characters or (JSON) <, >, &.
		q := strconv.Quote(v)
		add(q[1 : len(q)-1])
		if j, err := json.Marshal(v); err == nil {
			add(string(j[1 : len(j)-1]))
		}
		// hclog's text format, whose quoting escapes the quotes alone.
		add(strings.ReplaceAll(v, `"`, `\"`))
		if strings.ContainsAny(v, "\r\n") {
			for _, line := range strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == '\r' }) {
				add(line)
			}
		}
	}
	// strings.Replacer tries its old strings in argument order at each
	// position, so longest first makes the longest secret win.
	sort.SliceStable(vs, func(i, j int) bool {
		if len(vs[i]) != len(vs[j]) {
			return len(vs[i]) > len(vs[j])
		}
		return vs[i] < vs[j]
	})
	m := &Masker{values: vs}
	if len(vs) > 0 {
		pairs := make([]string, 0, 2*len(vs))
		for _, v := range vs {
			pairs = append(pairs, v, Mask)
		}
		m.replacer = strings.NewReplacer(pairs...)
	}
	return m
}

// Values returns the values masked, longest first (for registering them
// with a CI's own masking, such as GitHub's ::add-mask::).
func (m *Masker) Values() []string {
	if m == nil {
		return nil
	}
	return append([]string(nil), m.values...)
}

// Empty reports whether there is nothing to mask.
func (m *Masker) Empty() bool { return m == nil || m.replacer == nil }

// String masks every secret in s.
func (m *Masker) String(s string) string {
	if m.Empty() {
		return s
	}
	return m.replacer.Replace(s)
}

// MayStartIn reports whether a secret can start inside prefix, so that
// prefix put in front of text that is masked already (a module's output
// line, which the host masks as it arrives) may hold a secret that the
// text alone did not: the joined line must then be masked again. When it
// reports false, prefix+text is masked as it stands, whatever text is.
func (m *Masker) MayStartIn(prefix string) bool {
	if m.Empty() {
		return false
	}
	for i := range len(prefix) {
		rest := prefix[i:]
		for _, v := range m.values {
			// v lies inside the prefix, or starts there and goes on
			// into the text.
			if strings.HasPrefix(rest, v) || strings.HasPrefix(v, rest) {
				return true
			}
		}
	}
	return false
}

// Piece masks s, a piece of a line that goes on in the line's next
// piece, as far as it can be masked alone: it returns the start of s
// masked, and the rest of s unmasked, which a secret may continue past
// s's end from. The caller puts rest in front of the next piece (or
// masks it with String at the line's end); the pieces are then masked as
// the whole line would be. rest is shorter than the longest secret plus
// a UTF-8 character, and empty when there is nothing to mask.
func (m *Masker) Piece(s string) (masked, rest string) {
	if m.Empty() {
		return s, ""
	}
	// A secret that starts before stop ends inside s, so the start of s
	// up to stop can be decided now; one that starts later may not.
	stop := len(s) - (len(m.values[0]) - 1)
	if stop <= 0 {
		return "", s
	}
	// Walk s as the Replacer does (at each position the longest secret
	// that starts there, then on past it), so the cut lands where no
	// secret it would replace is cut in two.
	i := 0
	for i < stop {
		n := 1
		for _, v := range m.values {
			if strings.HasPrefix(s[i:], v) {
				n = len(v)
				break
			}
		}
		i += n
	}
	// Text is UTF-8 and so are the secrets it can hold: one never starts
	// inside a character, and the printed part ends with a whole one.
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return m.String(s[:i]), s[i:]
}

// JSON masks every secret inside the strings of a JSON document (keys
// and values), keeping it valid JSON. A secret is matched against the
// decoded string, so one that JSON escapes (quotes, backslashes,
// non-ASCII) is still found. A document that does not decode is masked
// as text, which is the best that can be done with it.
func (m *Masker) JSON(raw json.RawMessage) json.RawMessage {
	if m.Empty() || len(raw) == 0 {
		return raw
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return json.RawMessage(m.String(string(raw)))
	}
	masked, changed := m.walk(v)
	if !changed {
		return raw
	}
	out, err := marshalJSON(masked)
	if err != nil {
		return json.RawMessage(m.String(string(raw)))
	}
	return out
}

func (m *Masker) walk(v any) (any, bool) {
	switch x := v.(type) {
	case string:
		s := m.String(x)
		return s, s != x
	case json.Number:
		s := m.String(x.String())
		if s != x.String() {
			return s, true
		}
		return x, false
	case []any:
		changed := false
		for i, e := range x {
			var c bool
			x[i], c = m.walk(e)
			changed = changed || c
		}
		return x, changed
	case map[string]any:
		changed := false
		out := make(map[string]any, len(x))
		for k, e := range x {
			me, c := m.walk(e)
			mk := m.String(k)
			changed = changed || c || mk != k
			out[mk] = me
		}
		return out, changed
	}
	return v, false
}

// CtyValues returns the strings and numbers inside v (a number in its
// decimal form), walking lists, sets, tuples, maps and objects, so a
// sensitive variable of any type can be masked. Bools are left out:
// masking every "true" would hide nothing and garble everything. Unknown
// and null parts are skipped.
func CtyValues(v cty.Value) []string {
	var out []string
	v, _ = v.UnmarkDeep()
	_ = cty.Walk(v, func(_ cty.Path, v cty.Value) (bool, error) {
		if v.IsNull() || !v.IsKnown() {
			return false, nil
		}
		switch v.Type() {
		case cty.String:
			out = append(out, v.AsString())
		case cty.Number:
			out = append(out, v.AsBigFloat().Text('f', -1))
		}
		return true, nil
	})
	return out
}

// LineWriter masks what is written through it a line at a time: it holds
// a partial line until its newline arrives (or Flush), so a secret
// written in two pieces is still masked. It is not safe for concurrent
// use; its owner serialises writes.
type LineWriter struct {
	m   *Masker
	w   io.Writer
	buf []byte
}

// NewLineWriter returns a LineWriter writing masked lines to w.
func NewLineWriter(w io.Writer, m *Masker) *LineWriter { return &LineWriter{m: m, w: w} }

// Write implements io.Writer. It reports len(p) written once the
// complete lines in p are out; a partial line is kept for later.
func (l *LineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	i := bytes.LastIndexByte(l.buf, '\n')
	if i < 0 {
		return len(p), nil
	}
	out := l.m.String(string(l.buf[:i+1]))
	rest := copy(l.buf, l.buf[i+1:])
	l.buf = l.buf[:rest]
	if _, err := io.WriteString(l.w, out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Buffered returns how many bytes of a partial line it holds. While it
// holds none, its owner may write text masked already, ending with a
// newline, straight to the writer under it: what comes after it is
// masked on its own either way.
func (l *LineWriter) Buffered() int { return len(l.buf) }

// Flush writes a held partial line, masked, without adding a newline.
func (l *LineWriter) Flush() error {
	if len(l.buf) == 0 {
		return nil
	}
	out := l.m.String(string(l.buf))
	l.buf = l.buf[:0]
	_, err := io.WriteString(l.w, out)
	return err
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
