package etcd

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/modpipe/modpipe/coordinator"
)

// slotJoin joins index on its own coordinator (own client, as separate
// instances have) with one slot and the given designation grace.
func slotJoin(t *testing.T, ctx context.Context, run string, index int, grace time.Duration) coordinator.Session {
	t.Helper()
	c := newTestCoordinator(t)
	c.grace = grace
	req := joinReq(run, index)
	req.Member.Slots = 1
	var s coordinator.Session
	var err error
	if index == 0 {
		s, err = c.JoinMaster(ctx, req)
	} else {
		s, err = c.Join(ctx, req)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func conflictsOf(ss ...coordinator.Session) int64 {
	var n int64
	for _, s := range ss {
		switch v := s.(type) {
		case *Session:
			n += v.c.conflicts.Load()
		case *Master:
			n += v.c.conflicts.Load()
		}
	}
	return n
}

// Modules ready one at a time (a chain) go to one designated idle worker
// instead of every idle worker racing for them: after the first module
// (open, before anyone has claimed) no claim Txn is lost. The grace is
// far beyond the guard so that only designation can hand work out; the
// master never claims and so is never designated.
func TestDesignationStopsTheHerd(t *testing.T) {
	ctx := guard(t)
	run := uniqueRunID("designate-chain")
	m := slotJoin(t, ctx, run, 0, time.Hour).(*Master)
	var workers []coordinator.Session
	for i := 1; i <= 3; i++ {
		workers = append(workers, slotJoin(t, ctx, run, i, time.Hour))
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	claimedBy := make(chan int, 1)
	done := make(chan struct{})
	for i, w := range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				cl, err := w.Claim(wctx)
				if err != nil {
					return
				}
				claimedBy <- i + 1
				if err := w.Publish(ctx, cl, coordinator.Envelope{Module: cl.Assignment.Module, Status: coordinator.StatusSucceeded}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	const n = 30
	for i := range n {
		if err := m.Enqueue(ctx, coordinator.Assignment{Module: fmt.Sprintf("c%d", i), Attempt: 1}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-claimedBy:
		case <-ctx.Done():
			t.Fatalf("module c%d was never claimed: designated to a member that does not claim?", i)
		}
		select {
		case env := <-m.Results():
			if env.Module != fmt.Sprintf("c%d", i) {
				t.Fatalf("result of %s, want c%d", env.Module, i)
			}
		case <-ctx.Done():
			t.Fatalf("no result for c%d", i)
		}
	}
	stop()
	for range workers {
		<-done
	}
	// Only the first module can be raced for (3 claimers, 2 losers).
	if got := conflictsOf(append(workers, m)...); got > 2 {
		t.Errorf("%d claim Txns lost over a chain of %d with designation; want at most 2 (the first module)", got, n)
	}
}

// A member designated work that it does not claim (it stopped claiming,
// though it has a free slot) delays that work by the grace only: another
// member takes it, and nothing is stranded.
func TestDesignationGraceHandsOverUnclaimedWork(t *testing.T) {
	ctx := guard(t)
	run := uniqueRunID("designate-grace")
	m := slotJoin(t, ctx, run, 0, 5*time.Millisecond).(*Master)
	a := slotJoin(t, ctx, run, 1, 5*time.Millisecond)
	b := slotJoin(t, ctx, run, 2, 5*time.Millisecond)
	// Both workers claim once, so both are designation candidates.
	for i, w := range []coordinator.Session{a, b} {
		mod := fmt.Sprintf("warm%d", i)
		if err := m.Enqueue(ctx, coordinator.Assignment{Module: mod, Attempt: 1}); err != nil {
			t.Fatal(err)
		}
		cl, err := w.Claim(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Publish(ctx, cl, coordinator.Envelope{Module: cl.Assignment.Module, Status: coordinator.StatusSucceeded}); err != nil {
			t.Fatal(err)
		}
		<-m.Results()
	}
	// a stops claiming; b must end up with everything, including what
	// was designated to a.
	const n = 8
	for i := range n {
		if err := m.Enqueue(ctx, coordinator.Assignment{Module: fmt.Sprintf("w%d", i), Attempt: 1}); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]bool{}
	for range n {
		cl, err := b.Claim(ctx)
		if err != nil {
			t.Fatalf("after %d of %d: %v", len(got), n, err)
		}
		got[cl.Assignment.Module] = true
		if err := b.Publish(ctx, cl, coordinator.Envelope{Module: cl.Assignment.Module, Status: coordinator.StatusSucceeded}); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != n {
		t.Fatalf("b claimed %d distinct modules, want %d: %v", len(got), n, got)
	}
}

// busyFleet is the view of a master (one slot, no capabilities) and n
// single-slot workers that all hold a claim, with items open keys that
// only workers can run.
func busyFleet(n, items int) *view {
	v := newView()
	v.members[0] = memberEntry{m: coordinator.Member{Index: 0, Slots: 1}}
	for i := 1; i <= n; i++ {
		v.members[i] = memberEntry{m: coordinator.Member{Index: i, Slots: 1, Capabilities: []string{"w"}}}
		v.claimAdded(i)
	}
	v.settle(time.Now())
	for i := range items {
		v.putQueued(&qitem{key: fmt.Sprintf("/run/queue/m%d/1", i), a: coordinator.Assignment{Module: fmt.Sprintf("m%d", i), Attempt: 1, Requires: []string{"w"}},
			createRev: 10, modRev: 10, designee: -1})
	}
	return v
}

// A Publish that claims ahead frees and takes a slot in one revision:
// designation settles once per revision, so no key is designated to the
// member that is busy again.
func TestSettleOncePerRevision(t *testing.T) {
	v := busyFleet(2, 4)
	v.claimRemoved(1)
	v.removeQueued(v.queue[2].key)
	v.claimAdded(1)
	v.settle(time.Now())
	for _, it := range v.queue {
		if it.designee >= 0 {
			t.Errorf("%s designated to member %d, whose slot is taken again", it.key, it.designee)
		}
	}
	// A slot that stays free gets the head.
	v.claimRemoved(2)
	v.settle(time.Now())
	if v.queue[0].designee != 2 {
		t.Errorf("head designated to %d, want 2 (its slot is free)", v.queue[0].designee)
	}
}

// A claim loop remembers which queued items its member cannot run; an
// item written again in place (the same key with other requirements) is
// judged afresh.
func TestPickRejudgesAnItemWrittenAgain(t *testing.T) {
	v := busyFleet(1, 1)
	s := &Session{view: v, member: v.members[0].m, taken: map[string]int64{}, inflight: map[string]bool{}, c: &Coordinator{}}
	for range 2 { // the second time from what the first remembered
		if it, _ := s.pickLocked(time.Now()); it != nil {
			t.Fatalf("the master picked %s, which requires a capability it lacks", it.key)
		}
	}
	it := *v.queue[0]
	it.a.Requires, it.modRev = nil, 11
	v.putQueued(&it)
	got, _ := s.pickLocked(time.Now())
	if got == nil || got.a.Module != "m0" {
		t.Fatalf("picked %v after m0 was written again without requirements, want m0", got)
	}
}
