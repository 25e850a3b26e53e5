package etcd

import (
	"context"
	"fmt"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/modpipe/modpipe/coordinator"
)

// waitFor waits until ok, called with s.mu held, holds.
func waitFor(t *testing.T, ctx context.Context, s *Session, what string, ok func() bool) {
	t.Helper()
	if err := s.waitViewFor(ctx, ok); err != nil {
		t.Fatalf("member %d never saw %s: %v", s.member.Index, what, err)
	}
}

// waitStaged waits until s's view shows mod staged.
func waitStaged(t *testing.T, ctx context.Context, s *Session, mod string) {
	t.Helper()
	waitFor(t, ctx, s, mod+" staged", func() bool { _, ok := s.view.staged[mod]; return ok })
}

// joinMembers joins a master and one worker per entry of caps (index
// 1, 2, ...), each offering those capabilities; all close with the test.
func joinMembers(t *testing.T, ctx context.Context, c *Coordinator, run string, caps ...[]string) (*Master, []*Session) {
	t.Helper()
	var reqs []coordinator.JoinRequest
	for i, cs := range caps {
		reqs = append(reqs, joinReq(run, i+1, cs...))
	}
	return joinReqs(t, ctx, c, run, reqs...)
}

// stagedRun joins a master and two workers; worker 2 alone offers "b".
// The master stages b (after a, requiring "b") and enqueues a, which
// worker 1 claims.
func stagedRun(t *testing.T, ctx context.Context, c *Coordinator, run string) (*Master, *Session, *Session, coordinator.Claim) {
	t.Helper()
	m, ws := joinMembers(t, ctx, c, run, nil, []string{"b"})
	w1, w2 := ws[0], ws[1]
	b := coordinator.Assignment{Module: "b", Attempt: 1, Requires: []string{"b"}, Dependencies: []string{"a"}}
	if err := m.Stage(ctx, b); err != nil {
		t.Fatalf("Stage: %v", err)
	}
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "a", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	cl, err := w1.Claim(ctx)
	if err != nil || cl.Assignment.Module != "a" {
		t.Fatalf("worker 1 claim = %+v, %v; want a", cl, err)
	}
	waitStaged(t, ctx, w1, "b")
	return m, w1, w2, cl
}

func published(t *testing.T, ctx context.Context, m *Master, want string) {
	t.Helper()
	select {
	case env := <-m.Results():
		if env.Module != want {
			t.Fatalf("result of %s, want %s", env.Module, want)
		}
	case <-ctx.Done():
		t.Fatalf("no result of %s", want)
	}
}

// The publish of a's success dispatches the staged b in its own Txn,
// pushed to the worker waiting for it; the master's later Enqueue of b
// dispatches nothing more, and b runs once.
func TestStagedDispatchedByPublish(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	m, w1, w2, cla := stagedRun(t, ctx, c, uniqueRunID("staged-publish"))
	got := claimLater(ctx, w2)
	waitWaiters(t, ctx, m, 1)
	waitFor(t, ctx, w1, "worker 2's waiter", func() bool { return len(w1.view.waiters) == 1 })
	txns := w1.pub.txns.Load()
	if err := w1.Publish(ctx, cla, coordinator.Envelope{Module: "a", Status: coordinator.StatusSucceeded, Attempts: 1, Instance: 1}); err != nil {
		t.Fatal(err)
	}
	clb, ok := <-got
	if !ok || clb.Assignment.Module != "b" || clb.Assignment.Attempt != 1 {
		t.Fatalf("worker 2 claim = %+v (ok %v), want b attempt 1", clb, ok)
	}
	if n := c.fires.Load(); n != 1 {
		t.Fatalf("%d staged dispatches, want 1", n)
	}
	if n := w1.pub.txns.Load() - txns; n != 1 {
		t.Fatalf("publish and dispatch took %d Txns, want 1", n)
	}
	published(t, ctx, m, "a")
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "b", Attempt: 1, Requires: []string{"b"}, Dependencies: []string{"a"}}); err != nil {
		t.Fatalf("Enqueue of a dispatched staged module: %v", err)
	}
	resp, err := c.cli.Get(ctx, m.prefix+"queue/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("queue after the master's Enqueue of b: %d keys (%v), want 0", resp.Count, err)
	}
	if err := w2.Publish(ctx, clb, coordinator.Envelope{Module: "b", Status: coordinator.StatusSucceeded, Attempts: 1, Instance: 2}); err != nil {
		t.Fatalf("Publish of a staged claim: %v", err)
	}
	published(t, ctx, m, "b")
}

// A member that can run the staged module takes it for itself: its next
// Claim returns it without another Txn.
func TestStagedDispatchedToPublisher(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	m, ws := joinMembers(t, ctx, c, uniqueRunID("staged-self"), nil)
	w := ws[0]
	if err := m.Stage(ctx, coordinator.Assignment{Module: "b", Attempt: 1, Dependencies: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "a", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	cla, err := w.Claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitStaged(t, ctx, w, "b")
	if err := w.Publish(ctx, cla, coordinator.Envelope{Module: "a", Status: coordinator.StatusSucceeded, Attempts: 1, Instance: 1}); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	held := len(w.ahead)
	w.mu.Unlock()
	if held != 1 {
		t.Fatalf("%d claims held after the publish, want b", held)
	}
	clb, err := w.Claim(ctx)
	if err != nil || clb.Assignment.Module != "b" {
		t.Fatalf("claim = %+v, %v; want b", clb, err)
	}
	if err := w.Publish(ctx, clb, coordinator.Envelope{Module: "b", Status: coordinator.StatusSucceeded, Attempts: 1, Instance: 1}); err != nil {
		t.Fatal(err)
	}
	published(t, ctx, m, "a")
	published(t, ctx, m, "b")
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "b", Attempt: 1, Dependencies: []string{"a"}}); err != nil {
		t.Fatalf("Enqueue of a finished staged module: %v", err)
	}
}

// A staged module is not dispatched by a publish that does not succeed,
// nor after the run is cancelled, nor once the master enqueued it: the
// master's Enqueue dispatches it, once.
func TestStagedNotDispatched(t *testing.T) {
	tests := []struct {
		name   string
		status coordinator.Status
		before func(ctx context.Context, m *Master) error
		seen   func(w *Session) bool // the publisher's view shows before
	}{
		{name: "failed", status: coordinator.StatusFailed},
		{name: "cancelled", status: coordinator.StatusSucceeded, before: func(ctx context.Context, m *Master) error {
			return m.Cancel(ctx, "test")
		}, seen: func(w *Session) bool { return w.view.cancel != nil }},
		{name: "enqueued first", status: coordinator.StatusSucceeded, before: func(ctx context.Context, m *Master) error {
			return m.Enqueue(ctx, coordinator.Assignment{Module: "b", Attempt: 1, Requires: []string{"b"}, Dependencies: []string{"a"}})
		}, seen: func(w *Session) bool { _, ok := w.view.staged["b"]; return !ok }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := guard(t)
			c := newTestCoordinator(t)
			m, w1, w2, cla := stagedRun(t, ctx, c, uniqueRunID("staged-not-"+tt.name[:4]))
			if tt.before != nil {
				if err := tt.before(ctx, m); err != nil {
					t.Fatal(err)
				}
				waitFor(t, ctx, w1, "the change", func() bool { return tt.seen(w1) })
			}
			if err := w1.Publish(ctx, cla, coordinator.Envelope{Module: "a", Status: tt.status, Attempts: 1, Instance: 1}); err != nil {
				t.Fatal(err)
			}
			published(t, ctx, m, "a")
			if n := c.fires.Load(); n != 0 {
				t.Fatalf("%d staged dispatches, want 0", n)
			}
			if tt.name == "cancelled" {
				return
			}
			if err := m.Enqueue(ctx, coordinator.Assignment{Module: "b", Attempt: 1, Requires: []string{"b"}, Dependencies: []string{"a"}}); err == nil && tt.name == "enqueued first" {
				t.Fatal("second Enqueue of b succeeded")
			} else if err != nil && tt.name != "enqueued first" {
				t.Fatalf("Enqueue of b: %v", err)
			}
			clb, err := w2.Claim(ctx)
			if err != nil || clb.Assignment.Module != "b" {
				t.Fatalf("worker 2 claim = %+v, %v; want b", clb, err)
			}
			resp, err := c.cli.Get(ctx, m.prefix+"claims/", clientv3.WithPrefix(), clientv3.WithCountOnly())
			if err != nil || resp.Count != 1 {
				t.Fatalf("%d claims (%v), want b's alone", resp.Count, err)
			}
		})
	}
}

// Stage after Enqueue does nothing; Stage checks its assignment.
func TestStageRules(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	ms, err := c.JoinMaster(ctx, joinReq(uniqueRunID("stage-rules"), 0))
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	m := ms.(*Master)
	for _, a := range []coordinator.Assignment{
		{Module: "x", Attempt: 2, Dependencies: []string{"a"}},
		{Module: "x", Attempt: 1},
		{Module: "x", Attempt: 1, Dependencies: []string{"a", "b"}},
	} {
		if err := m.Stage(ctx, a); err == nil {
			t.Errorf("Stage(%+v) = nil, want an error", a)
		}
	}
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "b", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	if err := m.Stage(ctx, coordinator.Assignment{Module: "b", Attempt: 1, Dependencies: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.cli.Get(ctx, m.prefix+"staged/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("%d staged keys after Stage of an enqueued module (%v), want 0", resp.Count, err)
	}
}

// Two publishes group-committed in one Txn each dispatch their staged
// dependent to a different waiting member (nested four deep: the batch,
// the publish, the dispatch, the push).
func TestStagedDispatchInGroupCommit(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	m, ws := joinMembers(t, ctx, c, uniqueRunID("staged-batch"), nil, []string{"b"}, []string{"b"})
	w1 := ws[0]
	one := 1
	for _, mod := range []string{"a1", "a2"} {
		b := coordinator.Assignment{Module: "b" + mod[1:], Attempt: 1, Requires: []string{"b"}, Dependencies: []string{mod}}
		if err := m.Stage(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := m.Enqueue(ctx, coordinator.Assignment{Module: mod, Attempt: 1, OnlyMember: &one}); err != nil {
			t.Fatal(err)
		}
	}
	var held []coordinator.Claim
	for range 2 {
		cl, err := w1.Claim(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, cl)
	}
	got := make(chan string, 2)
	for _, w := range ws[1:] {
		go func() {
			if cl, err := w.Claim(ctx); err == nil {
				got <- cl.Assignment.Module
			}
		}()
	}
	waitFor(t, ctx, w1, "two waiters and two staged modules", func() bool { return len(w1.view.waiters) == 2 && len(w1.view.staged) == 2 })
	holdFirstBatch(t, ctx, w1.pub, 2)
	txns := w1.pub.txns.Load()
	errs := make(chan error, 2)
	for _, cl := range held {
		go func() {
			errs <- w1.Publish(ctx, cl, coordinator.Envelope{Module: cl.Assignment.Module, Status: coordinator.StatusSucceeded, Attempts: 1, Instance: 1})
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := w1.pub.txns.Load() - txns; n != 1 {
		t.Fatalf("the two publishes took %d Txns, want 1", n)
	}
	seen := map[string]bool{}
	for range 2 {
		select {
		case mod := <-got:
			seen[mod] = true
		case <-ctx.Done():
			t.Fatalf("waiting members got %v, want b1 and b2", seen)
		}
	}
	if !seen["b1"] || !seen["b2"] || c.fires.Load() != 2 {
		t.Fatalf("waiting members got %v with %d dispatches, want b1 and b2 with 2", seen, c.fires.Load())
	}
}

// A wide fan-out dispatches at most maxFires dependents in the publish
// (its Txn stays within etcd's limits); the master's Enqueues dispatch
// the rest, and each dependent is queued once.
func TestStagedFanOutBounded(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	m, ws := joinMembers(t, ctx, c, uniqueRunID("staged-fanout"), nil)
	w := ws[0]
	const n = 8*maxFires + 1 // unbounded, the publish would exceed 128 ops
	dep := func(i int) coordinator.Assignment {
		// Nobody offers "x": dispatched means queued, not run.
		return coordinator.Assignment{Module: fmt.Sprintf("d%d", i), Attempt: 1, Requires: []string{"x"}, Dependencies: []string{"a"}}
	}
	for i := range n {
		if err := m.Stage(ctx, dep(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "a", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	cl, err := w.Claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, w, "every staged module", func() bool { return len(w.view.staged) == n })
	if err := w.Publish(ctx, cl, coordinator.Envelope{Module: "a", Status: coordinator.StatusSucceeded, Attempts: 1, Instance: 1}); err != nil {
		t.Fatalf("Publish with %d staged dependents: %v", n, err)
	}
	if got := c.fires.Load(); got != maxFires {
		t.Fatalf("%d dispatched by the publish, want %d", got, maxFires)
	}
	published(t, ctx, m, "a")
	for i := range n {
		if err := m.Enqueue(ctx, dep(i)); err != nil {
			t.Fatalf("Enqueue d%d: %v", i, err)
		}
	}
	resp, err := c.cli.Get(ctx, m.prefix+"queue/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != n {
		t.Fatalf("%d queued (%v), want each of the %d dependents once", resp.Count, err, n)
	}
}
