package etcd

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

func TestCheckEndpoint(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		want     string // "" for valid
	}{
		{"127.0.0.1:2379", ""},
		{"etcd-0.etcd:2379", ""},
		{"[::1]:2379", ""},
		{"http://127.0.0.1:2379", ""},
		{"https://etcd.example.com:2379/", ""},
		{"unix:///run/etcd.sock", ""},
		{"http://127.0.0.1:notaport", `port "notaport" is not a number`},
		{"127.0.0.1", "missing port in address"},
		{":2379", "has no host"},
		{"127.0.0.1:70000", "not a number from 1 to 65535"},
		{"ftp://x:1", `"ftp" is not a scheme`},
		{"unix://", "no socket path"},
	} {
		err := CheckEndpoint(tc.endpoint)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v, want valid", tc.endpoint, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.endpoint)):
			t.Errorf("%q: %v, want an error naming it with %q", tc.endpoint, err, tc.want)
		}
	}
}

// An etcd that cannot be reached is named with the reason a plain dial
// gives, not only the client's deadline.
func TestNewSaysWhyEtcdIsUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	// A port that accepts but never speaks gRPC.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	for _, tc := range []struct{ endpoint, want string }{
		{closed, "connection refused"},
		{mute.Addr().String(), "accepts connections but did not answer as etcd"},
	} {
		_, err := New(context.Background(), Config{Endpoints: []string{tc.endpoint}, DialTimeout: 300 * time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), "; "+tc.endpoint+": ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%s): %v, want the reason %q", tc.endpoint, err, tc.want)
		}
	}
}
