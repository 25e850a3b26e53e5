package etcd

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modpipe/modpipe/coordinator"
)

// join2Slots is join2 with members that declare one slot each, as a
// host's do: only those prefetch.
func join2Slots(t *testing.T, ctx context.Context, c *Coordinator, run string) (*Master, *Session, *Session) {
	t.Helper()
	var reqs []coordinator.JoinRequest
	for i := 1; i <= 2; i++ {
		req := joinReq(run, i)
		req.Member.Slots = 1
		reqs = append(reqs, req)
	}
	m, ws := joinReqs(t, ctx, c, run, reqs...)
	return m, ws[0], ws[1]
}

// waitPrefetches waits until c has taken n prefetched claims.
func waitPrefetches(t *testing.T, ctx context.Context, c *Coordinator, n int64) {
	t.Helper()
	for c.prefetches.Load() < n {
		select {
		case <-ctx.Done():
			t.Fatalf("%d prefetches, want %d", c.prefetches.Load(), n)
		case <-time.After(time.Millisecond):
		}
	}
}

// A member whose only slot is busy prefetches the next item, and its next
// Claim returns it without waiting for the Publish of the first.
func TestPrefetchWhileBusy(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	m, w, _ := join2Slots(t, ctx, c, uniqueRunID("prefetch-busy"))
	enqueueAll(t, ctx, m, "a", "b")
	first, err := w.Claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitPrefetches(t, ctx, c, 1)
	published := time.Now()
	pub := make(chan error, 1)
	go func() {
		pub <- w.Publish(ctx, first, coordinator.Envelope{Module: first.Assignment.Module, Status: coordinator.StatusSucceeded, Attempts: 1, Instance: 1})
	}()
	next, err := w.Claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if next.Assignment.Module == first.Assignment.Module || !next.ClaimedAt.Before(published) {
		t.Fatalf("next claim %s claimed at %v, want the other module, claimed before the Publish at %v", next.Assignment.Module, next.ClaimedAt, published)
	}
	if err := <-pub; err != nil {
		t.Fatal(err)
	}
	if r := <-m.Results(); r.Module != first.Assignment.Module {
		t.Fatalf("result of %s, want %s", r.Module, first.Assignment.Module)
	}
	publishSeen(t, ctx, m, w, next)
}

// A prefetched claim goes back to the queue when another member waits
// that could run it, and that member claims it.
func TestPrefetchYieldsToIdleMember(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	m, w1, w2 := join2Slots(t, ctx, c, uniqueRunID("prefetch-yield"))
	enqueueAll(t, ctx, m, "a", "b")
	first, err := w1.Claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitPrefetches(t, ctx, c, 1)
	got := claimLater(ctx, w2)
	cl, ok := <-got
	if !ok || cl.Assignment.Module == first.Assignment.Module {
		t.Fatalf("the idle member claimed %+v (ok %v), want the module the busy one prefetched", cl, ok)
	}
	w1.mu.Lock()
	held := len(w1.ahead)
	w1.mu.Unlock()
	if held != 0 {
		t.Fatalf("the busy member still holds %d claims", held)
	}
	publishSeen(t, ctx, m, w2, cl)
	publishSeen(t, ctx, m, w1, first)
}

// Modules shorter than prefetchAfter never prefetch: Publish claims ahead.
// prefetchAfter is a minute here, so that a loaded machine's slow
// Publish does not make these modules long ones.
func TestNoPrefetchForShortModules(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	c.prefetchAfter = time.Minute
	m, w, _ := join2Slots(t, ctx, c, uniqueRunID("prefetch-short"))
	const n = 5
	for i := range n {
		if err := m.Enqueue(ctx, coordinator.Assignment{Module: string(rune('a' + i)), Attempt: 1}); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		cl, err := w.Claim(ctx)
		if err != nil {
			t.Fatal(err)
		}
		publishSeen(t, ctx, m, w, cl)
	}
	if p := c.prefetches.Load(); p != 0 {
		t.Fatalf("%d prefetches for modules published at once, want 0", p)
	}
}

// A Claim call made after Publishing(cl) waits for that Publish, whose
// Txn claims the next module ahead for it, instead of claiming a second
// module beside it.
func TestClaimWaitsForAnnouncedPublish(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	c.prefetchAfter = time.Minute // the outcome must not hang on a prefetch
	m, w, _ := join2Slots(t, ctx, c, uniqueRunID("announced-publish"))
	enqueueAll(t, ctx, m, "a", "b", "c")
	first, err := w.Claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Publishing(first)
	got := claimLater(ctx, w)
	// Let the Claim call begin first, as the host's does.
	time.Sleep(5 * time.Millisecond)
	if err := w.Publish(ctx, first, coordinator.Envelope{Module: first.Assignment.Module, Status: coordinator.StatusSucceeded, Attempts: 1, Instance: 1}); err != nil {
		t.Fatal(err)
	}
	next, ok := <-got
	if !ok {
		t.Fatal("Claim failed")
	}
	w.mu.Lock()
	held := len(w.ahead)
	w.mu.Unlock()
	if held != 0 {
		t.Fatalf("the member holds %d more claims after taking %s; want none", held, next.Assignment.Module)
	}
	if n := c.aheads.Load() + c.prefetches.Load(); n != 1 {
		t.Fatalf("%d claims taken ahead or prefetched, want 1 (the one Claim returned)", n)
	}
}

// A Claim call made while a prefetch's claim Txn is in flight waits for
// it and returns what it took, rather than picking past it: the item
// after would come first (a CI run of the conformance suite claimed
// [... a f b ...] for [... a b f ...] this way).
func TestClaimWaitsForPrefetchInFlight(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	c.testPrefetching = func(*Session) {
		once.Do(func() {
			close(reached)
			<-release
		})
	}
	req := joinReq(uniqueRunID("prefetch-inflight"), 0)
	req.Member.Slots = 1
	ms, err := c.JoinMaster(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ms.Close() })
	var released sync.Once
	unblock := func() { released.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before Close, which waits for the prefetch
	m := ms.(*Master)
	enqueueAll(t, ctx, m, "a", "b", "c")
	first, err := m.Claim(ctx) // its one slot is busy: a prefetch takes b
	if err != nil || first.Assignment.Module != "a" {
		t.Fatalf("first claim = %+v, %v; want a", first, err)
	}
	<-reached
	got := claimLater(ctx, m)
	// Without the wait the call returned c at once; give it the time a
	// claim takes to do so.
	select {
	case cl := <-got:
		t.Fatalf("claimed %+v while the prefetch of b was in flight", cl.Assignment)
	case <-time.After(100 * time.Millisecond):
	}
	unblock()
	if cl, ok := <-got; !ok || cl.Assignment.Module != "b" {
		t.Fatalf("claim = %+v (ok %v), want b, the prefetched item", cl, ok)
	}
	if cl, err := m.Claim(ctx); err != nil || cl.Assignment.Module != "c" {
		t.Fatalf("next claim = %+v, %v; want c", cl, err)
	}
}

// A member whose only slot is publishing its module does not prefetch:
// the Publish claims ahead for the slot in its own commit, and a
// prefetch would be a Txn of its own racing it. Short modules whose
// Publish outlasted prefetchAfter on a loaded etcd made one prefetch for
// every three or four modules.
func TestNoPrefetchWhilePublishing(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	m, w, _ := join2Slots(t, ctx, c, uniqueRunID("prefetch-publishing"))
	enqueueAll(t, ctx, m, "a", "b")
	first, err := w.Claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The module ended at once; the host announces its Publish, which is
	// slow to begin (the prefetch timer fires before it does).
	w.Publishing(first)
	for {
		w.mu.Lock()
		armed := w.prefetchArmed
		w.mu.Unlock()
		if !armed {
			break // the timer fired, and prefetch looked
		}
		select {
		case <-ctx.Done():
			t.Fatal("the prefetch timer never fired")
		case <-time.After(time.Millisecond):
		}
	}
	if n := c.prefetches.Load(); n != 0 {
		t.Fatalf("%d prefetches while the only slot was publishing, want 0", n)
	}
	if err := w.Publish(ctx, first, coordinator.Envelope{Module: first.Assignment.Module, Status: coordinator.StatusSucceeded, Attempts: 1, Instance: 1}); err != nil {
		t.Fatal(err)
	}
	next, err := w.Claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if next.Assignment.Module == first.Assignment.Module {
		t.Fatalf("claimed %s again", next.Assignment.Module)
	}
	if n := c.aheads.Load(); n != 1 {
		t.Fatalf("%d claims taken ahead, want the Publish's 1", n)
	}
	if r := <-m.Results(); r.Module != first.Assignment.Module {
		t.Fatalf("result of %s, want %s", r.Module, first.Assignment.Module)
	}
	publishSeen(t, ctx, m, w, next)
}

// A single-slot member whose modules run longer than prefetchAfter and
// whose next module already started from its prefetched claim takes the
// following claim in the Publish of the last one, not in a prefetch Txn
// of its own: one commit per module. Its next Claim returns that claim
// at once.
func TestPrefetchWithPublish(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	c.prefetchAfter = 30 * time.Millisecond
	var own atomic.Int64 // prefetch Txns of their own
	c.testPrefetching = func(*Session) { own.Add(1) }
	m, w, _ := join2Slots(t, ctx, c, uniqueRunID("prefetch-publish"))
	enqueueAll(t, ctx, m, "a", "b", "c")
	first, err := w.Claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waitPrefetches(t, ctx, c, 1) // the slot was busy for prefetchAfter
	time.Sleep(c.prefetchAfter)  // the module runs longer than that
	w.Publishing(first)
	next, err := w.Claim(ctx) // the prefetched claim: the slot is busy again
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Publish(ctx, first, coordinator.Envelope{Module: first.Assignment.Module, Status: coordinator.StatusSucceeded, Attempts: 1, Instance: 1}); err != nil {
		t.Fatal(err)
	}
	if n := c.prefetches.Load(); n != 2 {
		t.Fatalf("%d prefetched claims after the Publish, want 2 (the Publish took the second)", n)
	}
	// The prefetch armed when next was claimed fires meanwhile and finds
	// the claim held.
	time.Sleep(2 * c.prefetchAfter)
	if n := own.Load(); n != 1 {
		t.Fatalf("%d prefetch Txns of their own, want 1 (the first; the second was the Publish's)", n)
	}
	w.Publishing(next)
	third, err := w.Claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mods := []string{first.Assignment.Module, next.Assignment.Module, third.Assignment.Module}
	slices.Sort(mods)
	if !slices.Equal(mods, []string{"a", "b", "c"}) {
		t.Fatalf("claimed %v, want a, b and c once each", mods)
	}
	if err := w.Publish(ctx, next, coordinator.Envelope{Module: next.Assignment.Module, Status: coordinator.StatusSucceeded, Attempts: 1, Instance: 1}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		<-m.Results()
	}
	publishSeen(t, ctx, m, w, third)
}
