package etcd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/modpipe/modpipe/coordinator"
)

// waitWaiters waits until the master's view shows n waiters.
func waitWaiters(t *testing.T, ctx context.Context, m *Master, n int) {
	t.Helper()
	for {
		m.mu.Lock()
		got, adv := len(m.view.waiters), m.advanced
		m.mu.Unlock()
		if got == n {
			return
		}
		select {
		case <-adv:
		case <-ctx.Done():
			t.Fatalf("master's view has %d waiters, want %d", got, n)
		}
	}
}

func claimAsync(ctx context.Context, s coordinator.Session) <-chan error {
	out := make(chan error, 1)
	go func() {
		_, err := s.Claim(ctx)
		out <- err
	}()
	return out
}

// claimLater calls s.Claim in the background: the channel gets the claim,
// or is closed without one if Claim fails.
func claimLater(ctx context.Context, s coordinator.Session) <-chan coordinator.Claim {
	got := make(chan coordinator.Claim, 1)
	go func() {
		if cl, err := s.Claim(ctx); err == nil {
			got <- cl
		}
		close(got)
	}()
	return got
}

// publishSeen publishes cl's success from s and waits for the master to
// receive it.
func publishSeen(t *testing.T, ctx context.Context, m *Master, s *Session, cl coordinator.Claim) {
	t.Helper()
	if err := s.Publish(ctx, cl, coordinator.Envelope{Module: cl.Assignment.Module, Status: coordinator.StatusSucceeded, Instance: s.member.Index}); err != nil {
		t.Fatal(err)
	}
	if r := <-m.Results(); r.Module != cl.Assignment.Module {
		t.Fatalf("result of %s, want %s", r.Module, cl.Assignment.Module)
	}
}

// joinReqs joins a master and one worker per request; all close with
// the test.
func joinReqs(t *testing.T, ctx context.Context, c *Coordinator, run string, reqs ...coordinator.JoinRequest) (*Master, []*Session) {
	t.Helper()
	ms, err := c.JoinMaster(ctx, joinReq(run, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ms.Close() })
	var ws []*Session
	for _, req := range reqs {
		w, err := c.Join(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Close() })
		ws = append(ws, w.(*Session))
	}
	return ms.(*Master), ws
}

func join2(t *testing.T, ctx context.Context, c *Coordinator, run string) (*Master, *Session, *Session) {
	t.Helper()
	m, ws := joinReqs(t, ctx, c, run, joinReq(run, 1), joinReq(run, 2))
	return m, ws[0], ws[1]
}

// enqueueAll enqueues first attempts of mods, one at a time, in order.
func enqueueAll(t *testing.T, ctx context.Context, m *Master, mods ...string) {
	t.Helper()
	for _, mod := range mods {
		if err := m.Enqueue(ctx, coordinator.Assignment{Module: mod, Attempt: 1}); err != nil {
			t.Fatal(err)
		}
	}
}

// An assignment enqueued while a claimer waits is pushed to it in the
// enqueue's own Txn, and the pushed claim is fenced like any other.
func TestPushToWaitingClaimer(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	m, w, _ := join2(t, ctx, c, uniqueRunID("push-waiting"))
	got := claimLater(ctx, w)
	waitWaiters(t, ctx, m, 1)
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "a", Attempt: 1, Priority: 3}); err != nil {
		t.Fatal(err)
	}
	cl, ok := <-got
	if !ok || cl.Assignment.Module != "a" || cl.Assignment.Attempt != 1 || cl.Assignment.Priority != 3 {
		t.Fatalf("claim = %+v (ok %v), want a attempt 1 priority 3", cl, ok)
	}
	if n := c.pushes.Load(); n != 1 {
		t.Fatalf("%d pushes, want 1", n)
	}
	waitWaiters(t, ctx, m, 0)
	env := coordinator.Envelope{Module: "a", Status: coordinator.StatusSucceeded, Attempts: 1, Instance: 1}
	if err := w.Publish(ctx, cl, env); err != nil {
		t.Fatalf("Publish of a pushed claim: %v", err)
	}
	if r := <-m.Results(); r.Module != "a" {
		t.Fatalf("result of %s, want a", r.Module)
	}
	if err := w.Publish(ctx, cl, env); !errors.Is(err, coordinator.ErrNotClaimant) {
		t.Fatalf("second Publish: %v, want ErrNotClaimant", err)
	}
}

// A Claim whose ctx ends just as a push lands releases the pushed claim
// back to the queue with the same attempt; the master reports nothing
// lost and another member takes it.
func TestPushedClaimReleasedWhenClaimEnds(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	m, w1, w2 := join2(t, ctx, c, uniqueRunID("push-release"))
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var once sync.Once
	c.testPushed = func(s *Session, _ context.Context) {
		if s == w1 {
			once.Do(cancel)
		}
	}
	res := claimAsync(cctx, w1)
	waitWaiters(t, ctx, m, 1)
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "a", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("Claim = %v, want context.Canceled", err)
	}
	if n := c.pushes.Load(); n != 1 {
		t.Fatalf("%d pushes, want 1", n)
	}
	cl, err := w2.Claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Assignment.Module != "a" || cl.Assignment.Attempt != 1 {
		t.Fatalf("second claimer got %+v, want a attempt 1", cl.Assignment)
	}
	if err := w2.Publish(ctx, cl, coordinator.Envelope{Module: "a", Status: coordinator.StatusSucceeded, Attempts: 1, Instance: 2}); err != nil {
		t.Fatal(err)
	}
	if r := <-m.Results(); r.Module != "a" || r.Instance != 2 {
		t.Fatalf("result %+v, want a from member 2", r)
	}
	// Nothing was reported lost: the first lost claim is the marker's.
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "marker", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Claim(ctx); err != nil {
		t.Fatal(err)
	}
	w2.kill()
	if l := <-m.LostClaims(); l.Module != "marker" {
		t.Fatalf("lost claim of %s attempt %d, want only the marker's", l.Module, l.Attempt)
	}
}

// A graceful Close puts a pushed claim that no Claim call returned back
// in the queue with the same attempt.
func TestCloseReleasesPushedClaim(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	m, w1, w2 := join2(t, ctx, c, uniqueRunID("push-close"))
	// A waiter whose Claim call never collects what is pushed to it: the
	// state of a worker closing while a push is under way.
	wt, err := w1.register()
	if err != nil {
		t.Fatal(err)
	}
	waitWaiters(t, ctx, m, 1)
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "a", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	if err := w1.waitPushed(ctx, wt); err != nil {
		t.Fatal(err)
	}
	if err := w1.Close(); err != nil {
		t.Fatal(err)
	}
	cl, err := w2.Claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Assignment.Module != "a" || cl.Assignment.Attempt != 1 {
		t.Fatalf("claim after close = %+v, want a attempt 1", cl.Assignment)
	}
	// Nothing was reported lost: the first lost claim is this one's.
	w2.kill()
	if l := <-m.LostClaims(); l.Module != "a" || l.Member.Index != 2 {
		t.Fatalf("lost claim %+v, want a of member 2 only", l)
	}
}

// The master pushes only to a member that can run the assignment and has
// nothing queued it could take instead at that priority or above.
func TestPickWaiter(t *testing.T) {
	gpu := coordinator.Member{Index: 1, Capabilities: []string{"gpu"}}
	plain := coordinator.Member{Index: 2}
	newMaster := func(queued ...coordinator.Assignment) *Master {
		s := &Session{view: newView()}
		s.view.members[1] = memberEntry{m: gpu, lease: 11}
		s.view.members[2] = memberEntry{m: plain, lease: 12}
		s.view.waiters["w1"] = &waiterEntry{key: "w1", idx: 1, lease: 11, createRev: 5}
		s.view.waiters["w2"] = &waiterEntry{key: "w2", idx: 2, lease: 12, createRev: 7}
		for i, a := range queued {
			s.view.putQueued(&qitem{key: a.Module, a: a, createRev: int64(100 + i), designee: -1})
		}
		return &Master{Session: s}
	}
	tests := []struct {
		name   string
		queued []coordinator.Assignment
		a      coordinator.Assignment
		want   string
	}{
		{"oldest waiter first", nil, coordinator.Assignment{Module: "x"}, "w1"},
		{"capabilities", nil, coordinator.Assignment{Module: "x", Requires: []string{"GPU"}}, "w1"},
		{"pin", nil, coordinator.Assignment{Module: "x"}.OnlyOn(2), "w2"},
		{"nobody can run it", nil, coordinator.Assignment{Module: "x", Requires: []string{"tpu"}}, ""},
		{"queued work first", []coordinator.Assignment{{Module: "q", Priority: 5}}, coordinator.Assignment{Module: "x", Priority: 5}, ""},
		{"queued work only for the other", []coordinator.Assignment{{Module: "q", Priority: 5, Requires: []string{"gpu"}}}, coordinator.Assignment{Module: "x", Priority: 5}, "w2"},
		{"queued lower priority does not hold it back", []coordinator.Assignment{{Module: "q", Priority: 1}}, coordinator.Assignment{Module: "x", Priority: 5}, "w1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMaster(tc.queued...)
			got := ""
			if w := m.pickWaiterLocked(tc.a); w != nil {
				got = w.key
				if !w.used {
					t.Errorf("picked waiter %s not marked used", w.key)
				}
				if again := m.pickWaiterLocked(tc.a); again != nil && again.key == got {
					t.Errorf("waiter %s picked twice", got)
				}
			}
			if got != tc.want {
				t.Errorf("picked %q, want %q", got, tc.want)
			}
		})
	}
}

// Publish claims the next item ahead for the slot's next Claim call; if
// no call comes, the claim goes back to the queue with the same attempt
// and nothing is reported lost.
func TestPublishClaimsAhead(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	c.shortRun = 0 // one ahead, as for modules that run a while (see TestShortModulesClaimDeeper)
	m, w1, w2 := join2(t, ctx, c, uniqueRunID("ahead"))
	enqueueAll(t, ctx, m, "a", "b", "c")
	ca, err := w1.Claim(ctx)
	if err != nil || ca.Assignment.Module != "a" {
		t.Fatalf("first claim %+v, %v; want a", ca.Assignment, err)
	}
	publishSeen(t, ctx, m, w1, ca)
	if n := c.aheads.Load(); n != 1 {
		t.Fatalf("%d claims taken ahead, want 1", n)
	}
	cb, err := w1.Claim(ctx)
	if err != nil || cb.Assignment.Module != "b" {
		t.Fatalf("claim after publish %+v, %v; want b (taken ahead)", cb.Assignment, err)
	}
	// w1 publishes b, takes c ahead, and then stops claiming: c goes back
	// to the queue after aheadGrace, and w2 gets attempt 1.
	publishSeen(t, ctx, m, w1, cb)
	if n := c.aheads.Load(); n != 2 {
		t.Fatalf("%d claims taken ahead, want 2", n)
	}
	cc, err := w2.Claim(ctx)
	if err != nil || cc.Assignment.Module != "c" || cc.Assignment.Attempt != 1 {
		t.Fatalf("other worker's claim %+v, %v; want c attempt 1", cc.Assignment, err)
	}
	w2.kill()
	if l := <-m.LostClaims(); l.Module != "c" || l.Member.Index != 2 {
		t.Fatalf("lost claim %+v, want only c of member 2 (nothing lost by the release)", l)
	}
}

// A session whose modules are short holds up to maxAheadDepth claims
// ahead: its next Claim calls return them without a Txn of their own, each
// Publish claims what was taken since, and claims held that no call takes
// go back to the queue with the same attempt.
func TestShortModulesClaimDeeper(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	c.shortRun = time.Minute // every module here is short, however loaded the machine
	m, w1, w2 := join2(t, ctx, c, uniqueRunID("deeper"))
	enqueueAll(t, ctx, m, "a", "b", "c", "d", "e", "f", "g")
	caughtUp := func() {
		t.Helper()
		w1.mu.Lock()
		rev := w1.wroteRev
		w1.mu.Unlock()
		if err := w1.waitView(ctx, rev); err != nil {
			t.Fatal(err)
		}
	}
	txns := w1.pub.txns.Load()
	for i, want := range []string{"a", "b", "c"} {
		cl, err := w1.Claim(ctx)
		if err != nil || cl.Assignment.Module != want {
			t.Fatalf("claim %+v, %v; want %s", cl.Assignment, err, want)
		}
		publishSeen(t, ctx, m, w1, cl)
		caughtUp()
		// a's Publish claims b, c, d and e; b's and c's each claim one
		// more, so that four are held again.
		if n, wantN := c.aheads.Load(), int64(maxAheadDepth+i); n != wantN {
			t.Fatalf("after publishing %s: %d claims taken ahead, want %d", want, n, wantN)
		}
	}
	if got := w1.pub.txns.Load() - txns; got != 3 {
		t.Errorf("%d publish Txns for 3 modules, want 3 (the claims ahead ride in them)", got)
	}
	// w1 stops claiming: d, e, f and g go back after aheadGrace, and w2
	// gets their first attempts.
	got := map[string]bool{}
	for range 4 {
		cl, err := w2.Claim(ctx)
		if err != nil || cl.Assignment.Attempt != 1 {
			t.Fatalf("other worker's claim %+v, %v; want a first attempt", cl.Assignment, err)
		}
		got[cl.Assignment.Module] = true
	}
	if !got["d"] || !got["e"] || !got["f"] || !got["g"] {
		t.Errorf("other worker claimed %v, want d, e, f and g", got)
	}
}

// With nothing to claim ahead, Publish registers the waiter of the slot's
// next Claim call: a push to it is returned by that call, and one that no
// call takes goes back to the queue with the same attempt.
func TestPublishRegistersNextWaiter(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	m, w1, w2 := join2(t, ctx, c, uniqueRunID("spare"))
	enqueue := func(mod string) {
		t.Helper()
		if err := m.Enqueue(ctx, coordinator.Assignment{Module: mod, Attempt: 1}); err != nil {
			t.Fatal(err)
		}
	}
	enqueue("a")
	ca, err := w1.Claim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	publishSeen(t, ctx, m, w1, ca)
	waitWaiters(t, ctx, m, 1) // registered by the Publish, no Claim call yet
	enqueue("b")
	cb, err := w1.Claim(ctx)
	if err != nil || cb.Assignment.Module != "b" {
		t.Fatalf("claim after publish %+v, %v; want b", cb.Assignment, err)
	}
	if n := c.pushes.Load(); n != 1 {
		t.Fatalf("%d pushes, want 1 (to the waiter the Publish registered)", n)
	}
	// w1 publishes b and stops claiming: its waiter takes c, which goes
	// back to the queue after aheadGrace, and w2 gets attempt 1.
	publishSeen(t, ctx, m, w1, cb)
	waitWaiters(t, ctx, m, 1)
	enqueue("c")
	cc, err := w2.Claim(ctx)
	if err != nil || cc.Assignment.Module != "c" || cc.Assignment.Attempt != 1 {
		t.Fatalf("other worker's claim %+v, %v; want c attempt 1", cc.Assignment, err)
	}
	if n := c.pushes.Load(); n != 2 {
		t.Fatalf("%d pushes, want 2 (c to w1's unadopted waiter)", n)
	}
	w2.kill()
	if l := <-m.LostClaims(); l.Module != "c" || l.Member.Index != 2 {
		t.Fatalf("lost claim %+v, want only c of member 2 (nothing lost by the release)", l)
	}
}

// A claim Txn applied whose answer was lost leaves the claim ours with no
// Claim call returning it: the view finds it and the next Claim returns
// it, with the token Publish needs.
func TestClaimWithLostAnswerIsNotStranded(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	m, w, _ := join2(t, ctx, c, uniqueRunID("lost-answer"))
	var once sync.Once
	c.testClaimAnswerLost = func() bool {
		lost := false
		once.Do(func() { lost = true })
		return lost
	}
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "a", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	cl, err := w.Claim(ctx)
	if err != nil || cl.Assignment.Module != "a" || cl.Assignment.Attempt != 1 {
		t.Fatalf("claim %+v, %v; want a attempt 1", cl.Assignment, err)
	}
	if err := w.Publish(ctx, cl, coordinator.Envelope{Module: "a", Status: coordinator.StatusSucceeded}); err != nil {
		t.Fatalf("Publish of the recovered claim: %v", err)
	}
	if r := <-m.Results(); r.Module != "a" {
		t.Fatalf("result of %s, want a", r.Module)
	}
}

// A worker waiting for the run to start registers a waiter per slot: what
// the master enqueues first is pushed to it before the worker calls
// Claim, and its first Claim returns it. Not adopted within the grace
// after WaitRun, or left at Close, the push goes back to the queue with
// the same attempt.
func TestWaitRunRegistersWaiters(t *testing.T) {
	tests := []struct {
		name  string
		claim bool // the joined worker claims (else: it never does)
		close bool // it closes instead of letting the grace pass
	}{
		{name: "claimed", claim: true},
		{name: "grace", claim: false},
		{name: "close", claim: false, close: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := guard(t)
			c := newTestCoordinator(t)
			run := uniqueRunID("early-waiters-" + tt.name)
			ms, err := c.JoinMaster(ctx, joinReq(run, 0))
			if err != nil {
				t.Fatal(err)
			}
			defer ms.Close()
			m := ms.(*Master)
			req := joinReq(run, 1)
			req.Member.Slots = 2
			ws, err := c.Join(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			w := ws.(*Session)
			waited := make(chan error, 1)
			go func() {
				_, err := w.WaitRun(ctx)
				waited <- err
			}()
			waitWaiters(t, ctx, m, 2)
			if err := m.PublishRun(ctx, coordinator.RunInfo{PipelineHash: "h"}); err != nil {
				t.Fatal(err)
			}
			if err := m.Enqueue(ctx, coordinator.Assignment{Module: "a", Attempt: 1}); err != nil {
				t.Fatal(err)
			}
			if n := c.pushes.Load(); n != 1 {
				t.Fatalf("%d pushes, want 1 (to a waiter registered at join)", n)
			}
			waitFor(t, ctx, w, "the push", func() bool { return len(w.pushed) == 1 })
			if err := <-waited; err != nil {
				t.Fatal(err)
			}
			if tt.claim {
				cl, err := w.Claim(ctx)
				if err != nil || cl.Assignment.Module != "a" {
					t.Fatalf("claim = %+v, %v; want a", cl, err)
				}
				if err := w.Publish(ctx, cl, coordinator.Envelope{Module: "a", Status: coordinator.StatusSucceeded, Attempts: 1, Instance: 1}); err != nil {
					t.Fatal(err)
				}
				published(t, ctx, m, "a")
				return
			}
			if tt.close {
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			// Released, not lost: another worker claims the same attempt.
			w2, err := c.Join(ctx, joinReq(run, 2))
			if err != nil {
				t.Fatal(err)
			}
			defer w2.Close()
			cl, err := w2.Claim(ctx)
			if err != nil || cl.Assignment.Module != "a" || cl.Assignment.Attempt != 1 {
				t.Fatalf("second worker's claim = %+v, %v; want a attempt 1", cl, err)
			}
			select {
			case l := <-m.LostClaims():
				t.Fatalf("claim reported lost: %+v", l)
			default:
			}
		})
	}
}

// Enqueues in flight at once each push to a waiter of their own: one
// being pushed does not count as queued, which would keep the others
// from pushing (a master enqueueing the first layer of a run pushed 1 of
// 200 modules while 15 members waited).
func TestConcurrentEnqueuesPushToEveryWaiter(t *testing.T) {
	ctx := guard(t)
	c := newTestCoordinator(t)
	const workers, mods = 4, 8
	run := uniqueRunID("push-concurrent")
	var reqs []coordinator.JoinRequest
	for i := 1; i <= workers; i++ {
		reqs = append(reqs, joinReq(run, i))
	}
	m, ws := joinReqs(t, ctx, c, run, reqs...)
	var got []<-chan coordinator.Claim
	for _, w := range ws {
		got = append(got, claimLater(ctx, w))
	}
	waitWaiters(t, ctx, m, workers)
	// Hold the first batch until every Enqueue is in flight.
	holdFirstBatch(t, ctx, m.enq, mods)
	errs := make(chan error, mods)
	for i := range mods {
		go func() { errs <- m.Enqueue(ctx, coordinator.Assignment{Module: fmt.Sprintf("m%d", i), Attempt: 1}) }()
	}
	for range mods {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i, ch := range got {
		if _, ok := <-ch; !ok {
			t.Fatalf("worker %d got no claim", i+1)
		}
	}
	if n := c.pushes.Load(); n != workers {
		t.Fatalf("%d pushes, want %d: an Enqueue in flight kept the others from pushing", n, workers)
	}
}
