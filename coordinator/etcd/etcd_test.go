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

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/coordinator/coordinatortest"
)

func TestConformance(t *testing.T) {
	coordinatortest.Run(t, coordinatortest.Harness{
		New: func(t *testing.T) coordinator.Coordinator {
			c := newTestCoordinator(t)
			// The suite's members declare 2 slots and hold claims they
			// never publish nor ask past; a member prefetches when its
			// slots have all been busy for prefetchAfter, and on a
			// loaded machine one took the item the suite expects another
			// to claim (BlockedClaimersGetWhatTheyCanRun: "plain worker
			// claimed low, want high"). Prefetching has its own tests
			// (prefetch_test.go); here it stays out of the contract's.
			c.prefetchAfter = time.Hour
			return c
		},
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
		MaxEnvelopeBytes: DefaultMaxRequestBytes - requestOverhead,
		// Kill revokes, so nothing here waits for expiry: a long timeout
		// keeps a busy machine from expiring sessions by accident.
		HeartbeatInterval: 500 * time.Millisecond,
		HeartbeatTimeout:  5 * time.Second,
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
	run := uniqueRunID("lease-expiry")
	m, err := c.JoinMaster(ctx, joinReq(run, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// A short timeout: the test waits for it.
	req := joinReq(run, 1)
	req.HeartbeatTimeout = 2 * time.Second
	ws, err := c.Join(ctx, req)
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
	run := uniqueRunID("compaction")
	release := struct{ armed, go_ chan struct{} }{make(chan struct{}), make(chan struct{})}
	var held sync.WaitGroup
	held.Add(2)
	go func() { held.Wait(); close(release.armed) }()
	var once sync.Map
	c.testWatchContext = func(s *Session, ctx context.Context) context.Context {
		if _, again := once.LoadOrStore(s, true); !again {
			held.Done()
			<-release.go_
		}
		return ctx
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
	m, err := c.JoinMaster(ctx, joinReq(uniqueRunID("largest"), 0))
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
		{"password without user", Config{Endpoints: []string{"x:2379"}, Password: "p"}, "username"},
		{"cert without key", Config{Endpoints: []string{"x:2379"}, CertFile: "c"}, "key"},
		{"short ttl", Config{Endpoints: []string{"x:2379"}, RunTTL: time.Second}, "TTL"},
		{"ok", Config{Endpoints: []string{"x:2379"}}, ""},
		{"endpoint without a port", Config{Endpoints: []string{"x"}}, "missing port"},
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
	run := uniqueRunID("run-lease")
	m, err := c.JoinMaster(ctx, joinReq(run, 0))
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
	resp, err := c.cli.Get(ctx, c.runPrefix(run), clientv3.WithPrefix())
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

// A claim lost while the master's watch is down, with the history in
// between compacted away, still reaches the master as a lost claim when it
// re-reads the run.
func TestLostClaimAcrossCompaction(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	run := uniqueRunID("lost-across-compaction")
	var (
		mu      sync.Mutex
		cut     context.CancelFunc
		hold    chan struct{}
		entered = make(chan struct{}, 1)
	)
	c.testWatchContext = func(s *Session, wctx context.Context) context.Context {
		if !s.master {
			return wctx
		}
		mu.Lock()
		h := hold
		mu.Unlock()
		if h != nil {
			entered <- struct{}{}
			<-h
		}
		wctx, cancel := context.WithCancel(wctx)
		mu.Lock()
		cut = cancel
		mu.Unlock()
		return wctx
	}
	ms, err := c.JoinMaster(ctx, joinReq(run, 0))
	if err != nil {
		t.Fatal(err)
	}
	m := ms.(*Master)
	defer m.Close()
	ws, err := c.Join(ctx, joinReq(run, 1))
	if err != nil {
		t.Fatal(err)
	}
	w := ws.(*Session)
	defer w.Close()
	for _, mod := range []string{"kept", "lost"} {
		if err := m.Enqueue(ctx, coordinator.Assignment{Module: mod, Attempt: 1}); err != nil {
			t.Fatal(err)
		}
	}
	kept, err := w.Claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Claim(ctx); err != nil {
		t.Fatal(err)
	}
	// Wait until the master's view holds both claims (its watch is live).
	for {
		m.mu.Lock()
		n, changed := len(m.view.claims), m.changed
		m.mu.Unlock()
		if n == 2 {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatal("master never saw the claims")
		}
	}
	// Cut the master's watch and hold its next one.
	mu.Lock()
	hold = make(chan struct{})
	cut()
	mu.Unlock()
	// The old stream is over once the master is back in the hook.
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the master's watch did not restart after the cut")
	}
	if err := w.Publish(ctx, kept, coordinator.Envelope{Module: "kept", Status: coordinator.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	w.kill() // "lost" is still claimed: its claim key goes with the lease
	resp, err := c.cli.Get(ctx, "probe")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	close(hold)
	mu.Unlock()
	r := <-m.Results()
	if r.Module != "kept" {
		t.Fatalf("result of %s, want kept", r.Module)
	}
	select {
	case l := <-m.LostClaims():
		if l.Module != "lost" || l.Member.Index != 1 {
			t.Fatalf("lost claim %+v, want lost by member 1", l)
		}
	case <-ctx.Done():
		t.Fatal("lost claim not reported after the re-read")
	}
	if m.resyncs.Load() == 0 {
		t.Fatal("the master did not re-read after compaction; the test missed its point")
	}
	// And nothing else: the published claim was not reported lost.
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "probe", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	cl, err := m.Claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Publish(ctx, cl, coordinator.Envelope{Module: "probe", Status: coordinator.StatusSucceeded}); err != nil {
		t.Fatal(err)
	}
	if r := <-m.Results(); r.Module != "probe" {
		t.Fatalf("result of %s, want probe", r.Module)
	}
	select {
	case l := <-m.LostClaims():
		t.Fatalf("extra lost claim %+v", l)
	default:
	}
}

// When etcd goes away for good, every session ends by itself with
// ErrSessionLost once its local deadline passes: nothing hangs.
func TestEtcdGoneEndsSessions(t *testing.T) {
	e, endpoint, err := startEtcd(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := guard(t)
	c, err := New(ctx, Config{Endpoints: []string{endpoint}, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run := uniqueRunID("gone")
	m, err := c.JoinMaster(ctx, joinReq(run, 0))
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Join(ctx, joinReq(run, 1))
	if err != nil {
		t.Fatal(err)
	}
	claimErr := make(chan error, 1)
	go func() { _, err := w.Claim(ctx); claimErr <- err }()
	e.Close()
	for _, s := range []coordinator.Session{m, w} {
		select {
		case <-s.Done():
		case <-ctx.Done():
			t.Fatalf("member %d still live after etcd stopped", s.Member().Index)
		}
		// A stopping server may still expire the master's lease and
		// stream the delete to the worker before it goes: then the worker
		// rightly reports the master lost.
		if err := s.Err(); !errors.Is(err, coordinator.ErrSessionLost) && !(s.Member().Index > 0 && errors.Is(err, coordinator.ErrMasterLost)) {
			t.Errorf("member %d Err = %v, want ErrSessionLost", s.Member().Index, err)
		}
	}
	if err := <-claimErr; !errors.Is(err, coordinator.ErrSessionLost) && !errors.Is(err, coordinator.ErrMasterLost) {
		t.Errorf("blocked Claim returned %v, want ErrSessionLost or ErrMasterLost", err)
	}
}

// A server whose --max-request-bytes is below the configured limit refuses
// the publish; the error is still an ErrTooLarge and says what to fix.
func TestServerRefusesLargeRequest(t *testing.T) {
	e, endpoint, err := startEtcd(t.TempDir(), nil, func(cfg *embed.Config) { cfg.MaxRequestBytes = 64 * 1024 })
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := guard(t)
	c, err := New(ctx, Config{Endpoints: []string{endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, err := c.JoinMaster(ctx, joinReq(uniqueRunID("small-server"), 0))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "big", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	cl, err := m.Claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	env := coordinator.Envelope{Module: "big", Status: coordinator.StatusSucceeded, Value: []byte(`"` + strings.Repeat("z", 100*1024) + `"`)}
	err = m.Publish(ctx, cl, env)
	var tl *coordinator.ErrTooLarge
	if !errors.As(err, &tl) || !strings.Contains(tl.Refused, "--max-request-bytes is lower than") || !strings.Contains(tl.Error(), fmt.Sprintf("%d bytes", tl.Size)) {
		t.Fatalf("Publish to a small server: %v, want an ErrTooLarge naming max-request-bytes", err)
	}
	// The claim is still held.
	if err := m.Publish(ctx, cl, coordinator.Envelope{Module: "big", Status: coordinator.StatusFailed}); err != nil {
		t.Fatalf("Publish of a small envelope afterwards: %v", err)
	}
}

// HTML-like output (<, >, &) costs one byte each in an envelope, not six
// (\u003c): a value of them just under the limit publishes, reads back
// unchanged, and so does the old escaped form.
func TestEnvelopeNotHTMLEscaped(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	m, err := c.JoinMaster(ctx, joinReq(uniqueRunID("html"), 0))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for i, value := range []string{
		`"` + strings.Repeat("<&>", (c.MaxEnvelopeBytes()-1000)/3) + `"`,
		`"\u003cold\u0026escaped\u003e"`,
	} {
		mod := fmt.Sprintf("m%d", i)
		if err := m.Enqueue(ctx, coordinator.Assignment{Module: mod, Attempt: 1}); err != nil {
			t.Fatal(err)
		}
		cl, err := m.Claim(ctx)
		if err != nil {
			t.Fatal(err)
		}
		env := coordinator.Envelope{Module: mod, Status: coordinator.StatusSucceeded, Value: []byte(value)}
		if err := m.Publish(ctx, cl, env); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		r := <-m.Results()
		var got, want string
		if err := json.Unmarshal(r.Value, &got); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(value), &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("value read back differs (%d bytes, want %d)", len(got), len(want))
		}
	}
}

// An etcd whose space quota is full refuses every write: a publish that
// cannot land ends the session with ErrEtcdFull, rather than being logged
// while the master waits forever for the result (seen in a fleet: claims
// retried 63 times in 30 s, the run never ended).
func TestSessionEndsWhenEtcdIsFull(t *testing.T) {
	e, endpoint, err := startEtcd(t.TempDir(), nil, func(cfg *embed.Config) { cfg.QuotaBackendBytes = 2 << 20 })
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := guard(t)
	c, err := New(ctx, Config{Endpoints: []string{endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, err := c.JoinMaster(ctx, joinReq(uniqueRunID("full"), 0))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "a", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	cl, err := m.Claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Fill the quota from another client, as other runs' results would.
	filler, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer filler.Close()
	chunk := strings.Repeat("x", 512<<10)
	for i := 0; ; i++ {
		if i == 200 {
			t.Fatal("200 puts of 512 KiB did not fill a 2 MiB quota")
		}
		if _, err := filler.Put(ctx, fmt.Sprintf("/filler/%d", i), chunk); err != nil {
			if !errors.Is(err, rpctypes.ErrNoSpace) {
				t.Fatalf("put %d: %v, want etcd's NOSPACE", i, err)
			}
			break
		}
	}
	err = m.Publish(ctx, cl, coordinator.Envelope{Module: "a", Status: coordinator.StatusSucceeded})
	if err == nil {
		t.Fatal("Publish to a full etcd succeeded")
	}
	select {
	case <-m.Done():
	case <-ctx.Done():
		t.Fatal("the session did not end after etcd refused its publish")
	}
	if !errors.Is(m.Err(), ErrEtcdFull) || !strings.Contains(m.Err().Error(), "quota-backend-bytes") {
		t.Fatalf("session ended with %v, want ErrEtcdFull saying what to do", m.Err())
	}
}
