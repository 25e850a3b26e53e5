package etcd

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/modpipe/modpipe/coordinator"
)

// checkEncoders fails t unless the hand-written encoders give exactly
// json.Marshal's bytes, or its error, for a and for claim values built
// around it.
func checkEncoders(t *testing.T, a coordinator.Assignment, m coordinator.Member, waiter string) {
	t.Helper()
	want, wantErr := json.Marshal(a)
	got, err := marshalAssignment(a)
	if !sameResult(want, wantErr, got, err) {
		t.Fatalf("marshalAssignment(%#v)\n got %s, %v\nwant %s, %v", a, got, err, want, wantErr)
	}
	for _, cv := range []claimValue{
		{Module: a.Module, Attempt: a.Attempt, Member: m, Lease: 7587883914181239301},
		{Module: a.Module, Attempt: a.Attempt, Member: m, Lease: -1, Waiter: waiter, Assignment: got},
	} {
		want, wantErr := json.Marshal(cv)
		got, err := marshalClaim(cv)
		if !sameResult(want, wantErr, got, err) {
			t.Fatalf("marshalClaim(%#v)\n got %s, %v\nwant %s, %v", cv, got, err, want, wantErr)
		}
	}
}

func sameResult(want []byte, wantErr error, got []byte, err error) bool {
	if wantErr != nil || err != nil {
		return wantErr != nil && err != nil && wantErr.Error() == err.Error()
	}
	return bytes.Equal(want, got)
}

func TestEncodersAreJSONMarshal(t *testing.T) {
	one := 1
	zero := 0
	east := time.FixedZone("east", 5*3600+30*60)
	tests := []struct {
		name   string
		a      coordinator.Assignment
		m      coordinator.Member
		waiter string
	}{
		{name: "zero"},
		{name: "plain", a: coordinator.Assignment{Module: "build.app", Attempt: 1, EnqueuedAt: time.Date(2026, 11, 27, 3, 4, 5, 123456789, time.UTC)},
			m:      coordinator.Member{Index: 3, Host: "ci-7", Capabilities: []string{"linux", "docker"}, Slots: 4, Version: "v0.3.0", JoinedAt: time.Date(2026, 11, 27, 3, 0, 0, 0, east)},
			waiter: "/modpipe/run-1/waiters/00003/694d9b4f6e1c2a05-12"},
		{name: "every field", a: coordinator.Assignment{Module: `test["unit"]`, Attempt: 3, Requires: []string{"gpu", "Linux"}, OnlyMember: &one,
			Timeout: 90 * time.Second, Dependencies: []string{"build", `lint["go"]`}, Priority: -5, EnqueuedAt: time.Unix(0, 1).In(east)},
			m: coordinator.Member{Capabilities: []string{}}},
		{name: "only member 0 is kept", a: coordinator.Assignment{Module: "m", Attempt: 1, OnlyMember: &zero}},
		{name: "empty lists are omitted", a: coordinator.Assignment{Module: "m", Requires: []string{}, Dependencies: []string{}}},
		{name: "escaped strings", a: coordinator.Assignment{Module: "a<b>&c\"\\\n\t\x00é\u2028\xff", Requires: []string{"<", "ü"}},
			m: coordinator.Member{Host: "héte\u2029", Version: "&"}, waiter: "w<>"},
		{name: "negative numbers", a: coordinator.Assignment{Module: "m", Attempt: -1, Timeout: -1, Priority: -9223372036854775807}},
		{name: "year past 9999", a: coordinator.Assignment{Module: "m", EnqueuedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{name: "member year before 0", a: coordinator.Assignment{Module: "m"}, m: coordinator.Member{JoinedAt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { checkEncoders(t, tc.a, tc.m, tc.waiter) })
	}
}

func FuzzEncoders(f *testing.F) {
	f.Add("build.app", 1, "linux,docker", true, 3, int64(90e9), "build", 5, int64(1795500000123456789), 19800, "ci-7", "v1")
	f.Add("a<b>&c\"\\\n\xff", -2, "", false, 0, int64(-1), "", -3, int64(-9e18), -3600, "", "")
	f.Fuzz(func(t *testing.T, module string, attempt int, requires string, pinned bool, only int, timeout int64, deps string, prio int, at int64, offset int, host, version string) {
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, ",")
		}
		zone := time.FixedZone("z", offset%(48*3600))
		a := coordinator.Assignment{Module: module, Attempt: attempt, Requires: split(requires), Timeout: time.Duration(timeout),
			Dependencies: split(deps), Priority: prio, EnqueuedAt: time.Unix(0, at).In(zone)}
		if pinned {
			a.OnlyMember = &only
		}
		m := coordinator.Member{Index: only, Host: host, Capabilities: split(requires), Slots: prio, Version: version, JoinedAt: time.Unix(at/7, at%1e9).In(zone)}
		checkEncoders(t, a, m, deps)
	})
}
