package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/coordinator/coordinatortest"
)

func TestConformance(t *testing.T) {
	coordinatortest.Run(t, coordinatortest.Harness{
		New: func(t *testing.T) coordinator.Coordinator { return newTestCoordinator(t) },
		Kill: func(t *testing.T, s coordinator.Session) {
			switch v := s.(type) {
			case *Session:
				v.kill()
			case *Master:
				v.kill()
			default:
				t.Fatalf("Kill: %T is not an etcd session", s)
			}
		},
		MaxEnvelopeBytes:  DefaultMaxRequestBytes - requestOverhead,
		HeartbeatInterval: 200 * time.Millisecond,
		HeartbeatTimeout:  time.Second,
	})
}

func guard(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A member whose heartbeats stop is dropped by etcd when its lease expires
// (not by a revoke): its own session ends with ErrSessionLost by its local
// deadline and the master gets its claims as lost.
func TestLeaseExpiryLosesClaims(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	run := "lease-expiry"
	m, err := c.JoinMaster(ctx, joinReq(run, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ws, err := c.Join(ctx, joinReq(run, 1))
	if err != nil {
		t.Fatal(err)
	}
	w := ws.(*Session)
	defer w.Close()
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "slow", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Claim(ctx); err != nil {
		t.Fatal(err)
	}
	close(w.stopHeartbeat)
	select {
	case l := <-m.LostClaims():
		if l.Module != "slow" || l.Member.Index != 1 {
			t.Fatalf("lost claim %+v", l)
		}
	case <-ctx.Done():
		t.Fatal("no lost claim after the worker's heartbeats stopped")
	}
	<-w.Done()
	if !errors.Is(w.Err(), coordinator.ErrSessionLost) {
		t.Fatalf("worker Err = %v, want ErrSessionLost", w.Err())
	}
	// The lease really expired on the server: nothing of member 1 is left.
	resp, err := c.cli.Get(ctx, c.runPrefix(run)+"members/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("%d member keys left, want only the master's", len(resp.Kvs))
	}
}

// Work enqueued and published while a session's watch history is
// compacted away still reaches it: the session re-reads and re-watches.
func TestCompactionDuringWatch(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	run := "compaction"
	release := struct{ armed, go_ chan struct{} }{make(chan struct{}), make(chan struct{})}
	var held sync.WaitGroup
	held.Add(2)
	go func() { held.Wait(); close(release.armed) }()
	var once sync.Map
	c.testBeforeWatch = func(s *Session) {
		if _, again := once.LoadOrStore(s, true); again {
			return
		}
		held.Done()
		<-release.go_
	}
	m, err := c.JoinMaster(ctx, joinReq(run, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ws, err := c.Join(ctx, joinReq(run, 1))
	if err != nil {
		t.Fatal(err)
	}
	w := ws.(*Session)
	defer w.Close()
	// Hold both sessions' first watch until the history they would resume
	// from is compacted away, so they must take the recovery path.
	<-release.armed
	const n = 20
	for i := range n {
		if err := m.Enqueue(ctx, coordinator.Assignment{Module: fmt.Sprintf("c%02d", i), Attempt: 1}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := c.cli.Get(ctx, "compaction-probe")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	close(release.go_)
	got := map[string]bool{}
	for range n {
		cl, err := w.Claim(ctx)
		if err != nil {
			t.Fatalf("claim after compaction: %v", err)
		}
		got[cl.Assignment.Module] = true
		if err := w.Publish(ctx, cl, coordinator.Envelope{Module: cl.Assignment.Module, Status: coordinator.StatusSucceeded}); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		select {
		case <-m.Results():
		case <-ctx.Done():
			t.Fatal("results lost after compaction")
		}
	}
	if len(got) != n {
		t.Fatalf("claimed %d distinct, want %d", len(got), n)
	}
	if w.resyncs.Load() == 0 || m.(*Master).resyncs.Load() == 0 {
		t.Fatalf("resyncs: worker %d, master %d; the test did not exercise compaction recovery", w.resyncs.Load(), m.(*Master).resyncs.Load())
	}
}

// The largest envelope the limit lets through is really accepted by a
// server with the default --max-request-bytes.
func TestLargestEnvelopeFits(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	m, err := c.JoinMaster(ctx, joinReq("largest", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: strings.Repeat("long-name-", 20), Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	cl, err := m.Claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	env := coordinator.Envelope{Module: cl.Assignment.Module, Status: coordinator.StatusSucceeded}
	env.Value = []byte(`""`)
	base, _ := jsonSize(env)
	pad := c.MaxEnvelopeBytes() - base
	env.Value = []byte(`"` + strings.Repeat("y", pad) + `"`)
	if size, _ := jsonSize(env); size != c.MaxEnvelopeBytes() {
		t.Fatalf("test envelope is %d bytes, want exactly the limit %d", size, c.MaxEnvelopeBytes())
	}
	if err := m.Publish(ctx, cl, env); err != nil {
		t.Fatalf("Publish at exactly the limit: %v", err)
	}
	if r := <-m.Results(); len(r.Value) != pad+2 {
		t.Fatalf("result value is %d bytes, want %d", len(r.Value), pad+2)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no endpoints", Config{}, EndpointsEnv},
		{"password without user", Config{Endpoints: []string{"x"}, Password: "p"}, "username"},
		{"cert without key", Config{Endpoints: []string{"x"}, CertFile: "c"}, "key"},
		{"short ttl", Config{Endpoints: []string{"x"}, RunTTL: time.Second}, "TTL"},
		{"ok", Config{Endpoints: []string{"x"}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.withDefaults()
			if tc.wantErr == "" {
				if err != nil || got.Prefix != DefaultPrefix || got.RunTTL != DefaultRunTTL {
					t.Fatalf("withDefaults = %+v, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
	if got := ParseEndpoints(" a:1, ,b:2 "); len(got) != 2 || got[0] != "a:1" || got[1] != "b:2" {
		t.Fatalf("ParseEndpoints = %q", got)
	}
}

func TestUnreachableEtcd(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx := guard(t)
	_, err = New(ctx, Config{Endpoints: []string{fmt.Sprintf("127.0.0.1:%d", port)}, DialTimeout: 500 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "check that etcd is running") {
		t.Fatalf("New on a closed port: %v", err)
	}
}

// The run's keys live on the run lease.
func TestRunKeysOnRunLease(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	m, err := c.JoinMaster(ctx, joinReq("run-lease", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "a", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	if err := m.Cancel(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	resp, err := c.cli.Get(ctx, c.runPrefix("run-lease"), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	runLease := m.(*Master).runLease
	ttl, err := c.cli.TimeToLive(ctx, runLease)
	if err != nil || ttl.GrantedTTL != int64(DefaultRunTTL/time.Second) {
		t.Fatalf("run lease TTL = %+v, %v", ttl, err)
	}
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		want := runLease
		if strings.Contains(k, "/members/") {
			want = m.(*Master).lease
		}
		if clientv3.LeaseID(kv.Lease) != want {
			t.Errorf("%s is on lease %x, want %x", k, kv.Lease, want)
		}
	}
}

func jsonSize(env coordinator.Envelope) (int, error) {
	b, err := json.Marshal(env)
	return len(b), err
}
