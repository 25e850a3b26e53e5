// Package coordinatortest is the conformance suite every Coordinator
// implementation runs against itself. A new transport is done when
//
//	func TestConformance(t *testing.T) {
//		coordinatortest.Run(t, coordinatortest.Harness{
//			New:  func(t *testing.T) coordinator.Coordinator { ... },
//			Kill: func(t *testing.T, s coordinator.Session) { ... },
//			MaxEnvelopeBytes: ...,
//		})
//	}
//
// passes with -race. The suite never asserts on elapsed time: every wait
// is bounded only as a guard against deadlock (Harness.Guard).
package coordinatortest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modpipe/modpipe/coordinator"
)

// Harness tells the suite how to drive one implementation.
type Harness struct {
	// New returns a coordinator for one subtest. It may return the same
	// backing store every time (the suite uses fresh run ids), and should
	// register its own cleanup with t.Cleanup.
	New func(t *testing.T) coordinator.Coordinator
	// Kill ends s abruptly, as a member whose heartbeats stopped: no
	// graceful leave. The session ends locally (Done closes, blocked calls
	// return) and the coordinator drops its membership and claims exactly
	// as when its heartbeat timeout expires, possibly a moment later.
	Kill func(t *testing.T, s coordinator.Session)
	// MaxEnvelopeBytes is the limit the coordinators from New enforce.
	MaxEnvelopeBytes int
	// HeartbeatInterval and HeartbeatTimeout go into every JoinRequest
	// (0: the defaults).
	HeartbeatInterval, HeartbeatTimeout time.Duration
	// Guard bounds every wait, only against deadlocks (default 60s).
	Guard time.Duration
}

// Run runs the whole suite as subtests of t.
func Run(t *testing.T, h Harness) {
	if h.Guard == 0 {
		h.Guard = 60 * time.Second
	}
	tests := []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"PriorityThenFIFO", testPriorityThenFIFO},
		{"CapabilityFiltering", testCapabilityFiltering},
		{"ExactlyOneClaimant", testExactlyOneClaimant},
		{"ClaimsLostWhenSessionEnds", testClaimsLost},
		{"ResultsExactlyOnce", testResultsExactlyOnce},
		{"FencedPublishAfterLoss", testFencedPublish},
		{"CancellationReachesEveryMember", testCancellation},
		{"DuplicateIndexRefused", testDuplicateIndex},
		{"MasterLossSeenByWorkers", testMasterLoss},
		{"FinishEndsWorkers", testFinish},
		{"RunIDsIsolate", testIsolation},
		{"LargeEnvelopeRejected", testTooLarge},
		{"FetchDependencyResult", testFetchResult},
		{"LateJoinerGetsQueuedWork", testLateJoiner},
		{"RunRecord", testRunRecord},
		{"WatchMembers", testWatchMembers},
		{"BadRequestsRefused", testBadRequests},
		{"BlockedClaimersGetWhatTheyCanRun", testBlockedClaimers},
		{"CancelledClaimLosesNothing", testCancelledClaim},
		{"WorkTakenWhileWaitingLostOnKill", testWaitingClaimLost},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, &env{h: h, c: h.New(t)})
		})
	}
}

type env struct {
	h Harness
	c coordinator.Coordinator
}

var runIDUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// runID returns a run id unique to this test and process.
func (e *env) runID(t *testing.T) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := runIDUnsafe.ReplaceAllString(t.Name(), "-")
	if len(name) > 100 {
		name = name[len(name)-100:]
	}
	return name + "-" + hex.EncodeToString(b)
}

func (e *env) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), e.h.Guard)
	t.Cleanup(cancel)
	return ctx
}

func (e *env) req(run string, index int, host string, caps ...string) coordinator.JoinRequest {
	return coordinator.JoinRequest{
		RunID:             run,
		Member:            coordinator.Member{Index: index, Host: host, Capabilities: caps, Slots: 2, Version: "test"},
		HeartbeatInterval: e.h.HeartbeatInterval,
		HeartbeatTimeout:  e.h.HeartbeatTimeout,
	}
}

func (e *env) master(t *testing.T, run string, caps ...string) coordinator.MasterSession {
	t.Helper()
	m, err := e.c.JoinMaster(e.ctx(t), e.req(run, 0, "master-host", caps...))
	if err != nil {
		t.Fatalf("JoinMaster(%s): %v", run, err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func (e *env) worker(t *testing.T, run string, index int, caps ...string) coordinator.Session {
	t.Helper()
	s, err := e.c.Join(e.ctx(t), e.req(run, index, "worker-"+strconv.Itoa(index), caps...))
	if err != nil {
		t.Fatalf("Join(%s, %d): %v", run, index, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func enqueue(t *testing.T, ctx context.Context, m coordinator.MasterSession, as ...coordinator.Assignment) {
	t.Helper()
	for _, a := range as {
		if a.Attempt == 0 {
			a.Attempt = 1
		}
		if err := m.Enqueue(ctx, a); err != nil {
			t.Fatalf("Enqueue(%s): %v", a.Module, err)
		}
	}
}

func claim(t *testing.T, ctx context.Context, s coordinator.Session) coordinator.Claim {
	t.Helper()
	c, err := s.Claim(ctx)
	if err != nil {
		t.Fatalf("Claim by member %d: %v", s.Member().Index, err)
	}
	return c
}

func envelope(c coordinator.Claim, s coordinator.Session, value string) coordinator.Envelope {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return coordinator.Envelope{
		Module: c.Assignment.Module, Status: coordinator.StatusSucceeded, Type: "test/v1",
		Value: json.RawMessage(value), Attempts: c.Assignment.Attempt,
		StartedAt: now, EndedAt: now, Instance: s.Member().Index, Host: s.Member().Host,
		Plugin: "test", PluginVersion: "0.0.1",
	}
}

func publish(t *testing.T, ctx context.Context, s coordinator.Session, c coordinator.Claim, value string) coordinator.Envelope {
	t.Helper()
	env := envelope(c, s, value)
	if err := s.Publish(ctx, c, env); err != nil {
		t.Fatalf("Publish(%s) by member %d: %v", c.Assignment.Module, s.Member().Index, err)
	}
	return env
}

// recv waits for one value from ch; the guard only catches deadlocks.
func recv[T any](t *testing.T, e *env, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatalf("waiting for %s: channel closed", what)
		}
		return v
	case <-time.After(e.h.Guard):
		t.Fatalf("waiting for %s: nothing after %s (deadlock?)", what, e.h.Guard)
	}
	panic("unreachable")
}

func waitDone(t *testing.T, e *env, s coordinator.Session, what string) error {
	t.Helper()
	select {
	case <-s.Done():
		return s.Err()
	case <-time.After(e.h.Guard):
		t.Fatalf("waiting for %s: session of member %d still live after %s", what, s.Member().Index, e.h.Guard)
	}
	return nil
}

func testPriorityThenFIFO(t *testing.T, e *env) {
	ctx, run := e.ctx(t), e.runID(t)
	m := e.master(t, run)
	enqueue(t, ctx, m,
		coordinator.Assignment{Module: "a", Priority: 0},
		coordinator.Assignment{Module: "b", Priority: 0},
		coordinator.Assignment{Module: "c", Priority: 5},
		coordinator.Assignment{Module: "d", Priority: -1},
		coordinator.Assignment{Module: "e", Priority: 5},
		coordinator.Assignment{Module: "f", Priority: 0},
		coordinator.Assignment{Module: "g", Priority: 10},
	)
	var got []string
	for range 7 {
		c := claim(t, ctx, m)
		got = append(got, c.Assignment.Module)
		if c.Assignment.EnqueuedAt.IsZero() {
			t.Errorf("claim of %s: EnqueuedAt not set by Enqueue", c.Assignment.Module)
		}
	}
	want := []string{"g", "c", "e", "a", "b", "f", "d"}
	if !slices.Equal(got, want) {
		t.Fatalf("claim order = %v, want %v (higher priority first, FIFO within a priority)", got, want)
	}
}

func testCapabilityFiltering(t *testing.T, e *env) {
	ctx, run := e.ctx(t), e.runID(t)
	m := e.master(t, run)
	linux := e.worker(t, run, 1, "Linux", "GPU", "amd64")
	windows := e.worker(t, run, 2, "windows")
	enqueue(t, ctx, m,
		coordinator.Assignment{Module: "needs-windows", Requires: []string{"WINDOWS"}},
		coordinator.Assignment{Module: "pinned-to-2"}.OnlyOn(2),
		coordinator.Assignment{Module: "pinned-to-master"}.PinToMaster(),
		coordinator.Assignment{Module: "needs-gpu-linux", Requires: []string{"gpu", "linux"}},
		coordinator.Assignment{Module: "anyone"},
	)
	// Worker 1 skips what it cannot run, in queue order.
	for _, want := range []string{"needs-gpu-linux", "anyone"} {
		if c := claim(t, ctx, linux); c.Assignment.Module != want {
			t.Fatalf("linux worker claimed %s, want %s", c.Assignment.Module, want)
		}
	}
	for _, want := range []string{"needs-windows", "pinned-to-2"} {
		if c := claim(t, ctx, windows); c.Assignment.Module != want {
			t.Fatalf("windows worker claimed %s, want %s", c.Assignment.Module, want)
		}
	}
	if c := claim(t, ctx, m); c.Assignment.Module != "pinned-to-master" {
		t.Fatalf("master claimed %s, want pinned-to-master", c.Assignment.Module)
	}
	// A claimer with nothing it can run blocks until its context ends.
	enqueue(t, ctx, m, coordinator.Assignment{Module: "needs-macos", Requires: []string{"macos"}})
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if c, err := linux.Claim(short); err == nil {
		t.Fatalf("linux worker claimed %s, which requires macos", c.Assignment.Module)
	}
	mac := e.worker(t, run, 3, "MacOS")
	if c := claim(t, ctx, mac); c.Assignment.Module != "needs-macos" {
		t.Fatalf("macos worker claimed %s, want needs-macos", c.Assignment.Module)
	}
}

func testExactlyOneClaimant(t *testing.T, e *env) {
	const sessions, perSession, total = 4, 2, 500
	ctx, run := e.ctx(t), e.runID(t)
	m := e.master(t, run)
	members := []coordinator.Session{m}
	for i := 1; i < sessions; i++ {
		members = append(members, e.worker(t, run, i))
	}
	claimCtx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		mu     sync.Mutex
		claims = map[string][]int{}
		wg     sync.WaitGroup
		done   = make(chan struct{})
	)
	for _, s := range members {
		for range perSession {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					c, err := s.Claim(claimCtx)
					if err != nil {
						return
					}
					mu.Lock()
					claims[c.Assignment.Module] = append(claims[c.Assignment.Module], s.Member().Index)
					if len(claims) == total {
						close(done)
					}
					mu.Unlock()
				}
			}()
		}
	}
	for i := range total {
		enqueue(t, ctx, m, coordinator.Assignment{Module: fmt.Sprintf("m%03d", i), Priority: i % 3})
	}
	select {
	case <-done:
	case <-time.After(e.h.Guard):
		t.Errorf("only %d of %d assignments claimed after %s", len(claims), total, e.h.Guard)
	}
	stop()
	wg.Wait()
	by := map[int]int{}
	for mod, who := range claims {
		if len(who) != 1 {
			t.Errorf("%s claimed %d times, by members %v", mod, len(who), who)
		}
		by[who[0]]++
	}
	if len(claims) != total {
		t.Errorf("%d distinct assignments claimed, want %d", len(claims), total)
	}
	t.Logf("claims per member: %v", by)
}

func testClaimsLost(t *testing.T, e *env) {
	for _, how := range []string{"kill", "close"} {
		t.Run(how, func(t *testing.T) {
			ctx, run := e.ctx(t), e.runID(t)
			m := e.master(t, run)
			w := e.worker(t, run, 1)
			other := e.worker(t, run, 2, "elsewhere")
			enqueue(t, ctx, m, coordinator.Assignment{Module: "x"}, coordinator.Assignment{Module: "y"}, coordinator.Assignment{Module: "z"})
			cx, cy := claim(t, ctx, w), claim(t, ctx, w)
			cz := claim(t, ctx, w)
			publish(t, ctx, w, cz, `"done"`)
			if r := recv(t, e, m.Results(), "result of z"); r.Module != "z" {
				t.Fatalf("result for %s, want z", r.Module)
			}
			// A claim blocked on an empty queue returns when its session ends.
			blocked := make(chan error, 1)
			go func() { _, err := w.Claim(ctx); blocked <- err }()
			if how == "kill" {
				e.h.Kill(t, w)
			} else if err := w.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			var lost []coordinator.LostClaim
			for range 2 {
				lost = append(lost, recv(t, e, m.LostClaims(), "lost claim"))
			}
			slices.SortFunc(lost, func(a, b coordinator.LostClaim) int { return strings.Compare(a.Module, b.Module) })
			for i, c := range []coordinator.Claim{cx, cy} {
				l := lost[i]
				if l.Module != c.Assignment.Module || l.Attempt != 1 || l.Member.Index != 1 || l.Member.Host != "worker-1" {
					t.Errorf("lost claim %d = %+v, want module %s attempt 1 of member 1 (worker-1)", i, l, c.Assignment.Module)
				}
			}
			if msg := lost[0].Error(); !strings.Contains(msg, "instance 1 (worker-1) was lost while running x") {
				t.Errorf("LostClaim.Error() = %q", msg)
			}
			err := waitDone(t, e, w, "ended session")
			if how == "close" && !errors.Is(err, coordinator.ErrSessionClosed) {
				t.Errorf("closed session Err = %v, want ErrSessionClosed", err)
			}
			if how == "kill" && err == nil {
				t.Errorf("killed session Err = nil after Done")
			}
			select {
			case err := <-blocked:
				if err == nil {
					t.Errorf("blocked Claim returned an assignment from an ended session")
				}
			case <-time.After(e.h.Guard):
				t.Fatalf("Claim still blocked %s after its session ended", e.h.Guard)
			}
			// The lost work can be requeued and claimed by someone else;
			// nothing else was reported lost (z was published).
			enqueue(t, ctx, m, coordinator.Assignment{Module: "x", Attempt: 2, Requires: []string{"elsewhere"}})
			if c := claim(t, ctx, other); c.Assignment.Module != "x" || c.Assignment.Attempt != 2 {
				t.Fatalf("requeued claim = %+v, want x attempt 2", c.Assignment)
			} else {
				e.h.Kill(t, other)
			}
			if l := recv(t, e, m.LostClaims(), "lost claim of the requeued x"); l.Module != "x" || l.Attempt != 2 || l.Member.Index != 2 {
				t.Errorf("lost claim = %+v, want x attempt 2 of member 2 (no stray report for z)", l)
			}
			if _, err := m.Members(ctx); err != nil {
				t.Errorf("master Members after worker loss: %v", err)
			}
		})
	}
}

func testResultsExactlyOnce(t *testing.T, e *env) {
	const total = 60
	ctx, run := e.ctx(t), e.runID(t)
	m := e.master(t, run)
	members := []coordinator.Session{m, e.worker(t, run, 1), e.worker(t, run, 2)}
	for i := range total {
		enqueue(t, ctx, m, coordinator.Assignment{Module: fmt.Sprintf("r%02d", i)})
	}
	workCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make(chan error, len(members))
	for _, s := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := s.Claim(workCtx)
				if err != nil {
					return
				}
				if err := s.Publish(ctx, c, envelope(c, s, strconv.Quote(c.Assignment.Module))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	seen := map[string]int{}
	for range total {
		r := recv(t, e, m.Results(), "result")
		seen[r.Module]++
		var v string
		if err := json.Unmarshal(r.Value, &v); err != nil || v != r.Module {
			t.Errorf("result of %s has value %s", r.Module, r.Value)
		}
	}
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Publish: %v", err)
	}
	for mod, n := range seen {
		if n != 1 {
			t.Errorf("result of %s received %d times", mod, n)
		}
	}
	if len(seen) != total {
		t.Errorf("%d distinct results, want %d", len(seen), total)
	}
	// Results arrive in publish order, so a duplicate still pending would
	// come before this last one.
	enqueue(t, ctx, m, coordinator.Assignment{Module: "last"})
	publish(t, ctx, m, claim(t, ctx, m), `1`)
	if r := recv(t, e, m.Results(), "result of last"); r.Module != "last" {
		t.Errorf("after all results, got %s again before last", r.Module)
	}
}

func testFencedPublish(t *testing.T, e *env) {
	ctx, run := e.ctx(t), e.runID(t)
	m := e.master(t, run)
	w1 := e.worker(t, run, 1)
	enqueue(t, ctx, m, coordinator.Assignment{Module: "build"})
	stale := claim(t, ctx, w1)
	e.h.Kill(t, w1)
	if l := recv(t, e, m.LostClaims(), "lost claim"); l.Module != "build" {
		t.Fatalf("lost claim of %s, want build", l.Module)
	}
	w2 := e.worker(t, run, 2)
	enqueue(t, ctx, m, coordinator.Assignment{Module: "build", Attempt: 2})
	fresh := claim(t, ctx, w2)
	if fresh.Assignment.Attempt != 2 {
		t.Fatalf("claimed attempt %d, want 2", fresh.Assignment.Attempt)
	}
	err := w1.Publish(ctx, stale, envelope(stale, w1, `"stale"`))
	if !errors.Is(err, coordinator.ErrNotClaimant) {
		t.Fatalf("stale Publish error = %v, want ErrNotClaimant", err)
	}
	// Even the live claimant cannot publish with the old token.
	if err := w2.Publish(ctx, stale, envelope(stale, w2, `"stale"`)); !errors.Is(err, coordinator.ErrNotClaimant) {
		t.Fatalf("Publish with a stale claim from the new claimant: %v, want ErrNotClaimant", err)
	}
	publish(t, ctx, w2, fresh, `"fresh"`)
	if r := recv(t, e, m.Results(), "result"); string(r.Value) != `"fresh"` || r.Attempts != 2 || r.Instance != 2 {
		t.Fatalf("master got %s attempt %d from %d, want the fresh result of attempt 2 from member 2", r.Value, r.Attempts, r.Instance)
	}
	// A claim is published once.
	if err := w2.Publish(ctx, fresh, envelope(fresh, w2, `"again"`)); !errors.Is(err, coordinator.ErrNotClaimant) {
		t.Fatalf("second Publish of one claim: %v, want ErrNotClaimant", err)
	}
	// The envelope must be for the claimed module.
	enqueue(t, ctx, m, coordinator.Assignment{Module: "test"})
	c := claim(t, ctx, w2)
	wrong := envelope(c, w2, `1`)
	wrong.Module = "other"
	if err := w2.Publish(ctx, c, wrong); err == nil {
		t.Fatalf("Publish of an envelope for another module succeeded")
	}
	publish(t, ctx, w2, c, `2`)
	if r := recv(t, e, m.Results(), "result of test"); r.Module != "test" {
		t.Fatalf("result of %s, want test (a stale publish leaked)", r.Module)
	}
}

func testCancellation(t *testing.T, e *env) {
	ctx, run := e.ctx(t), e.runID(t)
	m := e.master(t, run)
	members := []coordinator.Session{m, e.worker(t, run, 1), e.worker(t, run, 2), e.worker(t, run, 3)}
	for _, s := range members {
		select {
		case <-s.Cancelled():
			t.Fatalf("member %d cancelled before Cancel", s.Member().Index)
		default:
		}
		if r := s.CancelReason(); r != "" {
			t.Fatalf("member %d: CancelReason before Cancel = %q", s.Member().Index, r)
		}
	}
	if err := m.Cancel(ctx, "module build failed"); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if err := m.Cancel(ctx, "second reason"); err != nil {
		t.Fatalf("second Cancel: %v", err)
	}
	members = append(members, e.worker(t, run, 4)) // a late joiner sees it too
	for _, s := range members {
		select {
		case <-s.Cancelled():
		case <-time.After(e.h.Guard):
			t.Fatalf("member %d not cancelled after %s", s.Member().Index, e.h.Guard)
		}
		if r := s.CancelReason(); r != "module build failed" {
			t.Errorf("member %d: CancelReason = %q, want the first reason", s.Member().Index, r)
		}
		if s.Err() != nil {
			t.Errorf("member %d: cancellation ended the session: %v", s.Member().Index, s.Err())
		}
	}
}

func testDuplicateIndex(t *testing.T, e *env) {
	ctx, run := e.ctx(t), e.runID(t)
	m := e.master(t, run)
	holder := e.worker(t, run, 1)
	req := e.req(run, 1, "intruder")
	_, err := e.c.Join(ctx, req)
	if !errors.Is(err, coordinator.ErrDuplicateIndex) {
		t.Fatalf("second Join with index 1: %v, want ErrDuplicateIndex", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "instance 1 ") || !strings.Contains(msg, "worker-1") {
		t.Errorf("duplicate index error %q should name index 1 and the holder's host worker-1", msg)
	}
	_, err = e.c.JoinMaster(ctx, e.req(run, 0, "second-master"))
	if !errors.Is(err, coordinator.ErrDuplicateIndex) || !strings.Contains(err.Error(), "master-host") {
		t.Fatalf("second JoinMaster: %v, want ErrDuplicateIndex naming master-host", err)
	}
	if holder.Err() != nil || m.Err() != nil {
		t.Fatalf("refused joins disturbed the holders: %v, %v", holder.Err(), m.Err())
	}
	members, err := m.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 2 || members[1].Host != "worker-1" {
		t.Fatalf("members = %+v, want master and worker-1", members)
	}
	// Once the holder leaves, the index is free again.
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := e.c.Join(ctx, req)
	if err != nil {
		t.Fatalf("Join after the holder left: %v", err)
	}
	_ = again.Close()
}

func testMasterLoss(t *testing.T, e *env) {
	for _, how := range []string{"kill", "close"} {
		t.Run(how, func(t *testing.T) {
			run := e.runID(t)
			m := e.master(t, run)
			workers := []coordinator.Session{e.worker(t, run, 1), e.worker(t, run, 2)}
			if how == "kill" {
				e.h.Kill(t, m)
			} else {
				_ = m.Close()
			}
			for _, w := range workers {
				if err := waitDone(t, e, w, "master loss"); !errors.Is(err, coordinator.ErrMasterLost) {
					t.Errorf("worker %d Err = %v, want ErrMasterLost", w.Member().Index, err)
				}
			}
		})
	}
}

func testFinish(t *testing.T, e *env) {
	ctx, run := e.ctx(t), e.runID(t)
	m := e.master(t, run)
	w := e.worker(t, run, 1)
	if err := m.Finish(ctx, coordinator.StatusFailed); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	err := waitDone(t, e, w, "run end")
	var fin *coordinator.RunFinishedError
	if !errors.As(err, &fin) || fin.Status != coordinator.StatusFailed {
		t.Fatalf("worker Err = %v, want RunFinishedError{failed}", err)
	}
	if m.Err() != nil {
		t.Fatalf("Finish ended the master's own session: %v", m.Err())
	}
	if _, err := e.c.Join(ctx, e.req(run, 2, "late")); !errors.As(err, &fin) {
		t.Fatalf("Join after Finish: %v, want RunFinishedError", err)
	}
	_ = m.Close()
	if err := w.Err(); !errors.As(err, &fin) {
		t.Fatalf("after the master closed, worker Err changed to %v", err)
	}
}

func testIsolation(t *testing.T, e *env) {
	ctx := e.ctx(t)
	runA, runB := e.runID(t)+"-a", e.runID(t)+"-b"
	ma, mb := e.master(t, runA), e.master(t, runB) // index 0 in both: no conflict
	wa := e.worker(t, runA, 2)
	wb := e.worker(t, runB, 1)
	enqueue(t, ctx, ma, coordinator.Assignment{Module: "shared-name"}, coordinator.Assignment{Module: "only-a"})
	enqueue(t, ctx, mb, coordinator.Assignment{Module: "shared-name"})
	cb := claim(t, ctx, wb)
	if cb.Assignment.Module != "shared-name" {
		t.Fatalf("run B's worker claimed %s", cb.Assignment.Module)
	}
	ca := claim(t, ctx, wa)
	publish(t, ctx, wa, ca, `"from-a"`)
	if err := ma.Cancel(ctx, "cancel A"); err != nil {
		t.Fatal(err)
	}
	publish(t, ctx, wb, cb, `"from-b"`)
	if r := recv(t, e, mb.Results(), "run B result"); string(r.Value) != `"from-b"` {
		t.Fatalf("run B's master received %s from %s, want B's own result", r.Value, r.Host)
	}
	if r := recv(t, e, ma.Results(), "run A result"); string(r.Value) != `"from-a"` {
		t.Fatalf("run A's master received %s", r.Value)
	}
	if err := mb.Cancel(ctx, "cancel B"); err != nil {
		t.Fatal(err)
	}
	<-wb.Cancelled()
	if r := wb.CancelReason(); r != "cancel B" {
		t.Fatalf("run B's worker saw cancel reason %q, want run B's own", r)
	}
	members, err := mb.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, mem := range members {
		if mem.Index == 2 {
			t.Fatalf("run B lists run A's member %+v", mem)
		}
	}
	if _, err := wb.Result(ctx, "only-a"); !errors.Is(err, coordinator.ErrNoResult) {
		t.Fatalf("run B can read run A's keys: Result(only-a) = %v", err)
	}
	// Run A's only-a stays in A: B's worker never gets it, A's does.
	if c := claim(t, ctx, wa); c.Assignment.Module != "only-a" {
		t.Fatalf("run A's worker claimed %s", c.Assignment.Module)
	}
}

func testTooLarge(t *testing.T, e *env) {
	if e.h.MaxEnvelopeBytes <= 0 {
		t.Fatal("Harness.MaxEnvelopeBytes is not set")
	}
	ctx, run := e.ctx(t), e.runID(t)
	m := e.master(t, run)
	enqueue(t, ctx, m, coordinator.Assignment{Module: "big"})
	c := claim(t, ctx, m)
	big := envelope(c, m, strconv.Quote(strings.Repeat("x", e.h.MaxEnvelopeBytes)))
	err := m.Publish(ctx, c, big)
	var tl *coordinator.ErrTooLarge
	if !errors.As(err, &tl) {
		t.Fatalf("Publish of a %d-byte value: %v, want *ErrTooLarge", e.h.MaxEnvelopeBytes, err)
	}
	data, _ := json.Marshal(big)
	if tl.Limit != e.h.MaxEnvelopeBytes || tl.Size != len(data) {
		t.Errorf("ErrTooLarge = %+v, want Size %d and Limit %d", tl, len(data), e.h.MaxEnvelopeBytes)
	}
	if msg := err.Error(); !strings.Contains(msg, strconv.Itoa(tl.Size)) || !strings.Contains(msg, strconv.Itoa(tl.Limit)) {
		t.Errorf("error %q should carry both numbers", msg)
	}
	// The claim is still held: a small failure envelope goes through.
	failed := envelope(c, m, `null`)
	failed.Status = coordinator.StatusFailed
	failed.Error = &coordinator.Error{Kind: coordinator.ErrorKindEncoding, Message: err.Error()}
	if err := m.Publish(ctx, c, failed); err != nil {
		t.Fatalf("Publish of the failure envelope after ErrTooLarge: %v", err)
	}
	if r := recv(t, e, m.Results(), "result"); r.Status != coordinator.StatusFailed {
		t.Fatalf("result status %s, want failed", r.Status)
	}
}

func testFetchResult(t *testing.T, e *env) {
	ctx, run := e.ctx(t), e.runID(t)
	m := e.master(t, run)
	w1, w2 := e.worker(t, run, 1), e.worker(t, run, 2)
	if _, err := w2.Result(ctx, "checkout"); !errors.Is(err, coordinator.ErrNoResult) {
		t.Fatalf("Result before publish: %v, want ErrNoResult", err)
	}
	enqueue(t, ctx, m, coordinator.Assignment{Module: "checkout"})
	c := claim(t, ctx, w1)
	want := publish(t, ctx, w1, c, `{"sha":"abc123","files":[1,2,3]}`)
	recv(t, e, m.Results(), "result")
	got, err := w2.Result(ctx, "checkout")
	if err != nil {
		t.Fatalf("Result(checkout): %v", err)
	}
	wantJSON, _ := json.Marshal(want)
	gotJSON, _ := json.Marshal(got)
	if string(gotJSON) != string(wantJSON) {
		t.Fatalf("fetched envelope differs:\n got %s\nwant %s", gotJSON, wantJSON)
	}
	// Matrix addresses are plain strings to the coordinator.
	enqueue(t, ctx, m, coordinator.Assignment{Module: "test[linux/amd64]", Dependencies: []string{"checkout"}})
	c = claim(t, ctx, w2)
	if !slices.Equal(c.Assignment.Dependencies, []string{"checkout"}) {
		t.Fatalf("dependencies = %v", c.Assignment.Dependencies)
	}
	publish(t, ctx, w2, c, `true`)
	recv(t, e, m.Results(), "result")
	if r, err := m.Result(ctx, "test[linux/amd64]"); err != nil || string(r.Value) != "true" {
		t.Fatalf("Result(test[linux/amd64]) = %s, %v", r.Value, err)
	}
}

func testLateJoiner(t *testing.T, e *env) {
	ctx, run := e.ctx(t), e.runID(t)
	m := e.master(t, run)
	enqueue(t, ctx, m,
		coordinator.Assignment{Module: "l1", Requires: []string{"late"}},
		coordinator.Assignment{Module: "l2", Requires: []string{"late"}},
		coordinator.Assignment{Module: "l3", Requires: []string{"late"}},
	)
	w := e.worker(t, run, 5, "late")
	var got []string
	for range 3 {
		got = append(got, claim(t, ctx, w).Assignment.Module)
	}
	if !slices.Equal(got, []string{"l1", "l2", "l3"}) {
		t.Fatalf("late joiner claimed %v", got)
	}
	// And work enqueued while it waits reaches it.
	res := make(chan coordinator.Claim, 1)
	go func() {
		c, err := w.Claim(ctx)
		if err == nil {
			res <- c
		}
		close(res)
	}()
	enqueue(t, ctx, m, coordinator.Assignment{Module: "l4", Requires: []string{"LATE"}})
	if c := recv(t, e, res, "claim of l4"); c.Assignment.Module != "l4" {
		t.Fatalf("claimed %s, want l4", c.Assignment.Module)
	}
}

func testRunRecord(t *testing.T, e *env) {
	ctx, run := e.ctx(t), e.runID(t)
	w := e.worker(t, run, 1) // joins before the master exists
	got := make(chan coordinator.RunInfo, 1)
	go func() {
		info, err := w.WaitRun(ctx)
		if err == nil {
			got <- info
		}
		close(got)
	}()
	m := e.master(t, run)
	want := coordinator.RunInfo{
		PipelineHash: "sha256:abc", Variables: json.RawMessage(`{"env":"prod"}`), Locals: json.RawMessage(`{"n":3}`),
		Total: 4, StartedAt: time.Now().UTC().Truncate(time.Millisecond),
	}
	if err := m.PublishRun(ctx, want); err != nil {
		t.Fatalf("PublishRun: %v", err)
	}
	info := recv(t, e, got, "run record")
	wantJSON, _ := json.Marshal(want)
	gotJSON, _ := json.Marshal(info)
	if string(wantJSON) != string(gotJSON) {
		t.Fatalf("run record:\n got %s\nwant %s", gotJSON, wantJSON)
	}
	if err := m.PublishRun(ctx, want); !errors.Is(err, coordinator.ErrRunStarted) {
		t.Fatalf("second PublishRun: %v, want ErrRunStarted", err)
	}
	late := e.worker(t, run, 2)
	if info, err := late.WaitRun(ctx); err != nil || info.PipelineHash != want.PipelineHash {
		t.Fatalf("late WaitRun = %+v, %v", info, err)
	}
}

func testWatchMembers(t *testing.T, e *env) {
	ctx, run := e.ctx(t), e.runID(t)
	m := e.master(t, run, "linux")
	w1 := e.worker(t, run, 1, "gpu")
	wctx, stop := context.WithCancel(ctx)
	events, err := m.WatchMembers(wctx)
	if err != nil {
		t.Fatalf("WatchMembers: %v", err)
	}
	type ev struct {
		kind  coordinator.MemberEventKind
		index int
	}
	next := func() ev {
		x := recv(t, e, events, "member event")
		return ev{x.Kind, x.Member.Index}
	}
	for _, want := range []ev{{coordinator.MemberJoined, 0}, {coordinator.MemberJoined, 1}} {
		if got := next(); got != want {
			t.Fatalf("initial event %+v, want %+v", got, want)
		}
	}
	w2 := e.worker(t, run, 2, "windows")
	x := recv(t, e, events, "join of worker 2")
	if x.Kind != coordinator.MemberJoined || x.Member.Index != 2 || !slices.Equal(x.Member.Capabilities, []string{"windows"}) || x.Member.Host != "worker-2" || x.Member.JoinedAt.IsZero() {
		t.Fatalf("join event = %+v", x)
	}
	e.h.Kill(t, w1)
	if got := next(); got != (ev{coordinator.MemberLeft, 1}) {
		t.Fatalf("after kill: %+v, want worker 1 left", got)
	}
	_ = w2.Close()
	if got := next(); got != (ev{coordinator.MemberLeft, 2}) {
		t.Fatalf("after close: %+v, want worker 2 left", got)
	}
	members, err := m.Members(ctx)
	if err != nil || len(members) != 1 || members[0].Index != 0 || !slices.Equal(members[0].Capabilities, []string{"linux"}) {
		t.Fatalf("Members = %+v, %v; want only the master", members, err)
	}
	stop()
	for range events { // closed once the watch context ends
	}
}

func testBadRequests(t *testing.T, e *env) {
	ctx, run := e.ctx(t), e.runID(t)
	tests := []struct {
		name   string
		master bool
		req    coordinator.JoinRequest
	}{
		{"empty run id", false, e.req("", 1, "h")},
		{"run id with slash", false, e.req("a/b", 1, "h")},
		{"worker index 0", false, e.req(run, 0, "h")},
		{"master index 1", true, e.req(run, 1, "h")},
		{"interval not below timeout", false, coordinator.JoinRequest{RunID: run, Member: coordinator.Member{Index: 1}, HeartbeatInterval: 5 * time.Second, HeartbeatTimeout: 5 * time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.master {
				var s coordinator.MasterSession
				if s, err = e.c.JoinMaster(ctx, tc.req); err == nil {
					_ = s.Close()
				}
			} else {
				var s coordinator.Session
				if s, err = e.c.Join(ctx, tc.req); err == nil {
					_ = s.Close()
				}
			}
			if err == nil {
				t.Fatalf("join accepted %+v", tc.req)
			}
		})
	}
	m := e.master(t, run)
	for _, a := range []coordinator.Assignment{{Module: "", Attempt: 1}, {Module: "x", Attempt: 0}} {
		if err := m.Enqueue(ctx, a); err == nil {
			t.Errorf("Enqueue accepted %+v", a)
		}
	}
	enqueue(t, ctx, m, coordinator.Assignment{Module: "dup"})
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "dup", Attempt: 1}); err == nil {
		t.Errorf("Enqueue of the same module and attempt twice succeeded")
	}
	c := claim(t, ctx, m)
	if err := m.Enqueue(ctx, coordinator.Assignment{Module: "dup", Attempt: 2}); err == nil {
		t.Errorf("Enqueue of a module that is still claimed succeeded")
	}
	publish(t, ctx, m, c, `1`)
	if err := m.Finish(ctx, coordinator.Status("bogus")); err == nil {
		t.Errorf("Finish with an unknown status succeeded")
	}
}

// testBlockedClaimers: assignments enqueued while claimers are already
// blocked (an implementation may hand them straight to a waiting claimer)
// still go only to members that can run them, higher priority first.
func testBlockedClaimers(t *testing.T, e *env) {
	ctx, run := e.ctx(t), e.runID(t)
	m := e.master(t, run)
	plain := e.worker(t, run, 1)
	gpu := e.worker(t, run, 2, "gpu")
	claimAsync := func(s coordinator.Session) <-chan coordinator.Claim {
		out := make(chan coordinator.Claim, 1)
		go func() {
			defer close(out)
			if c, err := s.Claim(ctx); err == nil {
				out <- c
			}
		}()
		return out
	}
	pc, gc := claimAsync(plain), claimAsync(gpu)
	enqueue(t, ctx, m,
		coordinator.Assignment{Module: "needs-gpu", Requires: []string{"GPU"}},
		coordinator.Assignment{Module: "pinned-to-2"}.OnlyOn(2),
		coordinator.Assignment{Module: "anyone"},
	)
	if c := recv(t, e, gc, "gpu worker's claim"); c.Assignment.Module != "needs-gpu" {
		t.Fatalf("gpu worker claimed %s, want needs-gpu (the first it can run)", c.Assignment.Module)
	}
	if c := recv(t, e, pc, "plain worker's claim"); c.Assignment.Module != "anyone" {
		t.Fatalf("plain worker claimed %s, want anyone (it cannot run the others)", c.Assignment.Module)
	}
	if c := claim(t, ctx, gpu); c.Assignment.Module != "pinned-to-2" {
		t.Fatalf("gpu worker claimed %s, want pinned-to-2", c.Assignment.Module)
	}
	// A blocked claimer and a queue with a higher priority it can run:
	// the higher one first, even though the lower one arrives later.
	pc = claimAsync(plain)
	enqueue(t, ctx, m, coordinator.Assignment{Module: "first-low", Priority: 1})
	if c := recv(t, e, pc, "plain worker's claim"); c.Assignment.Module != "first-low" {
		t.Fatalf("plain worker claimed %s, want first-low", c.Assignment.Module)
	}
	enqueue(t, ctx, m,
		coordinator.Assignment{Module: "high", Priority: 9},
		coordinator.Assignment{Module: "low", Priority: 1},
	)
	for _, want := range []string{"high", "low"} {
		if c := claim(t, ctx, plain); c.Assignment.Module != want {
			t.Fatalf("plain worker claimed %s, want %s", c.Assignment.Module, want)
		}
	}
}

// testCancelledClaim: a Claim whose ctx ends as an assignment arrives
// either returns it or leaves it for the next claimer with the same
// attempt; it is never lost, reported lost, or taken twice.
func testCancelledClaim(t *testing.T, e *env) {
	const rounds = 20
	ctx, run := e.ctx(t), e.runID(t)
	m := e.master(t, run)
	w := e.worker(t, run, 1)
	other := e.worker(t, run, 2, "other")
	for i := range rounds {
		mod := fmt.Sprintf("c%02d", i)
		cctx, cancel := context.WithCancel(ctx)
		res := make(chan coordinator.Claim, 1)
		go func() {
			defer close(res)
			if c, err := w.Claim(cctx); err == nil {
				res <- c
			}
		}()
		// Cancel before, with or after the enqueue, varying the race.
		if i%3 == 0 {
			cancel()
		}
		enqueue(t, ctx, m, coordinator.Assignment{Module: mod})
		if i%3 == 1 {
			cancel()
		}
		c, ok := <-res
		cancel()
		if !ok {
			c = claim(t, ctx, w)
		}
		if c.Assignment.Module != mod || c.Assignment.Attempt != 1 {
			t.Fatalf("round %d: claimed %s attempt %d, want %s attempt 1", i, c.Assignment.Module, c.Assignment.Attempt, mod)
		}
		publish(t, ctx, w, c, `1`)
		if r := recv(t, e, m.Results(), "result of "+mod); r.Module != mod {
			t.Fatalf("round %d: result of %s, want %s", i, r.Module, mod)
		}
	}
	// No claim of the rounds was reported lost: the first lost claim is
	// this marker's.
	enqueue(t, ctx, m, coordinator.Assignment{Module: "marker", Requires: []string{"other"}})
	claim(t, ctx, other)
	e.h.Kill(t, other)
	if l := recv(t, e, m.LostClaims(), "lost claim of marker"); l.Module != "marker" {
		t.Fatalf("lost claim of %s attempt %d reported; want only the marker's", l.Module, l.Attempt)
	}
}

// testWaitingClaimLost: work a blocked claimer received is reported lost
// exactly once when that member dies, and can be requeued.
func testWaitingClaimLost(t *testing.T, e *env) {
	ctx, run := e.ctx(t), e.runID(t)
	m := e.master(t, run)
	w := e.worker(t, run, 1)
	other := e.worker(t, run, 2, "other")
	res := make(chan coordinator.Claim, 1)
	go func() {
		defer close(res)
		if c, err := w.Claim(ctx); err == nil {
			res <- c
		}
	}()
	enqueue(t, ctx, m, coordinator.Assignment{Module: "x"})
	if c := recv(t, e, res, "claim of x"); c.Assignment.Module != "x" {
		t.Fatalf("claimed %s, want x", c.Assignment.Module)
	}
	e.h.Kill(t, w)
	if l := recv(t, e, m.LostClaims(), "lost claim of x"); l.Module != "x" || l.Attempt != 1 || l.Member.Index != 1 {
		t.Fatalf("lost claim = %+v, want x attempt 1 of member 1", l)
	}
	enqueue(t, ctx, m, coordinator.Assignment{Module: "x", Attempt: 2, Requires: []string{"other"}})
	c := claim(t, ctx, other)
	if c.Assignment.Module != "x" || c.Assignment.Attempt != 2 {
		t.Fatalf("requeued claim = %+v, want x attempt 2", c.Assignment)
	}
	publish(t, ctx, other, c, `1`)
	if r := recv(t, e, m.Results(), "result of x"); r.Module != "x" || r.Attempts != 2 {
		t.Fatalf("result of %s attempt %d, want x attempt 2", r.Module, r.Attempts)
	}
	// Exactly once: the next lost claim is a new one's.
	enqueue(t, ctx, m, coordinator.Assignment{Module: "marker", Requires: []string{"other"}})
	claim(t, ctx, other)
	e.h.Kill(t, other)
	if l := recv(t, e, m.LostClaims(), "lost claim of marker"); l.Module != "marker" {
		t.Fatalf("lost claim of %s attempt %d reported again; want the marker's", l.Module, l.Attempt)
	}
}
