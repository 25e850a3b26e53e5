package coordinator_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/modpipe/modpipe/coordinator"
)

func TestCanRun(t *testing.T) {
	m := coordinator.Member{Index: 2, Capabilities: []string{"Linux", "amd64", "GPU"}}
	tests := []struct {
		name string
		a    coordinator.Assignment
		want bool
	}{
		{"no requirements", coordinator.Assignment{}, true},
		{"case-insensitive subset", coordinator.Assignment{Requires: []string{"gpu", "LINUX"}}, true},
		{"missing one", coordinator.Assignment{Requires: []string{"linux", "windows"}}, false},
		{"pinned here", coordinator.Assignment{}.OnlyOn(2), true},
		{"pinned to master", coordinator.Assignment{}.PinToMaster(), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := coordinator.CanRun(tc.a, m); got != tc.want {
				t.Fatalf("CanRun = %v, want %v", got, tc.want)
			}
		})
	}
	if got := coordinator.MissingCapabilities([]string{"linux", "Windows", "arm64"}, m.Capabilities); strings.Join(got, ",") != "Windows,arm64" {
		t.Fatalf("MissingCapabilities = %v", got)
	}
}

func TestNormalize(t *testing.T) {
	req, err := coordinator.JoinRequest{RunID: "r-1", Member: coordinator.Member{Index: 3}}.Normalize(false)
	if err != nil {
		t.Fatal(err)
	}
	if req.HeartbeatInterval != coordinator.DefaultHeartbeatInterval || req.HeartbeatTimeout != coordinator.DefaultHeartbeatTimeout {
		t.Fatalf("defaults not applied: %+v", req)
	}
	if _, err := (coordinator.JoinRequest{RunID: "r", HeartbeatInterval: time.Second, HeartbeatTimeout: -1}).Normalize(true); err == nil {
		t.Fatal("negative timeout accepted")
	}
}

func TestErrors(t *testing.T) {
	err := coordinator.DuplicateIndexError("run-7", 3, "ci-runner-4")
	if !errors.Is(err, coordinator.ErrDuplicateIndex) || !strings.Contains(err.Error(), "instance 3") || !strings.Contains(err.Error(), "ci-runner-4") {
		t.Fatalf("DuplicateIndexError = %v", err)
	}
	tl := &coordinator.ErrTooLarge{Size: 2000000, Limit: 1564672}
	if !strings.Contains(tl.Error(), "2000000") || !strings.Contains(tl.Error(), "1564672") {
		t.Fatalf("ErrTooLarge message %q lacks the numbers", tl.Error())
	}
	l := coordinator.LostClaim{Module: "build", Attempt: 1, Member: coordinator.Member{Index: 2, Host: "h"}}
	if l.Error() != "instance 2 (h) was lost while running build (attempt 1)" {
		t.Fatalf("LostClaim.Error() = %q", l.Error())
	}
}
