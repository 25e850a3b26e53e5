package schedule

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/modpipe/modpipe/coordinator"
)

// guard bounds every wait in these tests. It only turns a deadlock into a
// failure; no assertion depends on how long anything takes.
const guard = 30 * time.Second

// testExec is the test executor: it counts calls, answers each attempt
// from plan (default succeeded), and lets a test take over any call with
// hook (to block on channels, read envelopes, watch ctx).
type testExec struct {
	// plan gives the status of each attempt of a task; the last entry
	// repeats for later attempts.
	plan map[string][]coordinator.Status
	// hook, when it returns true, supplies the envelope instead of plan.
	hook func(ctx context.Context, t *Task, attempt int) (coordinator.Envelope, bool)

	mu    sync.Mutex
	calls map[string]int
}

func (e *testExec) Execute(ctx context.Context, t *Task, attempt int) coordinator.Envelope {
	e.mu.Lock()
	if e.calls == nil {
		e.calls = map[string]int{}
	}
	e.calls[t.ID]++
	e.mu.Unlock()
	if e.hook != nil {
		if env, ok := e.hook(ctx, t, attempt); ok {
			return env
		}
	}
	st := coordinator.StatusSucceeded
	if p := e.plan[t.ID]; len(p) > 0 {
		st = p[min(attempt, len(p))-1]
	}
	return envelopeFor(t, attempt, st)
}

func (e *testExec) callCount(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls[id]
}

// envelopeFor is what the test executor returns: the status, and fields
// the scheduler must keep untouched.
func envelopeFor(t *Task, attempt int, st coordinator.Status) coordinator.Envelope {
	now := time.Now()
	env := coordinator.Envelope{
		Module:    "executor-should-not-set-this",
		Attempts:  -1,
		Status:    st,
		Type:      "test.exec/v1",
		Value:     json.RawMessage(fmt.Sprintf(`{"id":%q,"attempt":%d}`, t.ID, attempt)),
		StartedAt: now,
		EndedAt:   now,
		Host:      "test-host",
		Plugin:    "test",
	}
	switch {
	case st.Failed():
		env.Error = &coordinator.Error{Kind: coordinator.ErrorKindModule, Message: fmt.Sprintf("%s attempt %d %s", t.ID, attempt, st), Tail: "tail of " + t.ID}
	case st == coordinator.StatusSkipped:
		env.SkipReason = "run_if is false: false"
	case st == coordinator.StatusCancelled:
		env.Error = &coordinator.Error{Kind: coordinator.ErrorKindCancelled, Message: "cancelled while running"}
	}
	return env
}

type eventKind string

const (
	evStart  eventKind = "start"
	evRetry  eventKind = "retry"
	evFinish eventKind = "finish"
)

// event is one Observer call, in the order the scheduler made it.
type event struct {
	kind    eventKind
	id      string
	attempt int
	status  coordinator.Status
	wait    time.Duration
}

func (e event) String() string {
	switch e.kind {
	case evFinish:
		return fmt.Sprintf("finish %s %s", e.id, e.status)
	case evRetry:
		return fmt.Sprintf("retry %s/%d %s wait=%s", e.id, e.attempt, e.status, e.wait)
	}
	return fmt.Sprintf("start %s/%d", e.id, e.attempt)
}

// eventLog is the test Observer. notify, when set, sees each event as it
// is recorded (from the scheduler's goroutine; it must not block).
type eventLog struct {
	mu     sync.Mutex
	events []event
	notify func(event)
}

func (l *eventLog) add(e event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
	if l.notify != nil {
		l.notify(e)
	}
}

func (l *eventLog) TaskStarted(t *Task, attempt int) {
	l.add(event{kind: evStart, id: t.ID, attempt: attempt})
}

func (l *eventLog) TaskRetrying(t *Task, attempt int, env coordinator.Envelope, wait time.Duration) {
	l.add(event{kind: evRetry, id: t.ID, attempt: attempt, status: env.Status, wait: wait})
}

func (l *eventLog) TaskFinished(t *Task, env coordinator.Envelope) {
	l.add(event{kind: evFinish, id: t.ID, attempt: env.Attempts, status: env.Status})
}

func (l *eventLog) snapshot() []event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]event(nil), l.events...)
}

// starts returns the IDs of start events in order.
func starts(events []event) []string {
	var ids []string
	for _, e := range events {
		if e.kind == evStart {
			ids = append(ids, e.id)
		}
	}
	return ids
}

// indexOf returns the position of the first event of kind for id, or -1.
func indexOf(events []event, kind eventKind, id string) int {
	for i, e := range events {
		if e.kind == kind && e.id == id {
			return i
		}
	}
	return -1
}

// peaks is the most tasks that ran at once, overall, per key and per
// limit group, computed from the event log.
type peaks struct {
	total  int
	keys   map[string]int
	limits map[string]int
}

// checkLog asserts the invariants every run must keep, from the event log
// alone: one finish per task; a task starts only after every dependency
// finished; while running, no two tasks share a key, no limit group or the
// parallelism is exceeded, and an exclusive task runs alone. A task runs
// from its start event to its retry or finish event. It returns the peaks.
func checkLog(t *testing.T, tasks []*Task, opts Options, events []event) peaks {
	t.Helper()
	byID := map[string]*Task{}
	for _, task := range tasks {
		byID[task.ID] = task
	}
	finished := map[string]bool{}
	running := map[string]bool{}
	p := peaks{keys: map[string]int{}, limits: map[string]int{}}
	for i, e := range events {
		task := byID[e.id]
		switch e.kind {
		case evStart:
			if finished[e.id] || running[e.id] {
				t.Errorf("event %d: %s starts but is already finished or running", i, e.id)
			}
			for _, g := range task.Deps {
				for _, d := range g {
					if !finished[d] {
						t.Errorf("event %d: %s starts before its dependency %s finished", i, e.id, d)
					}
				}
			}
			running[e.id] = true
			if opts.Parallelism > 0 && len(running) > opts.Parallelism {
				t.Errorf("event %d: %d tasks running, parallelism is %d", i, len(running), opts.Parallelism)
			}
			p.total = max(p.total, len(running))
			keys, limits := map[string]int{}, map[string]int{}
			for id := range running {
				r := byID[id]
				if (r.Exclusive || task.Exclusive) && len(running) > 1 {
					t.Errorf("event %d: exclusive task runs with others: %v", i, running)
				}
				for _, k := range r.Keys {
					keys[k]++
				}
				for _, l := range r.Limits {
					limits[l]++
				}
			}
			for k, c := range keys {
				p.keys[k] = max(p.keys[k], c)
				if c > 1 {
					t.Errorf("event %d: %d tasks sharing key %q run at once", i, c, k)
				}
			}
			for l, c := range limits {
				p.limits[l] = max(p.limits[l], c)
				if c > opts.Limits[l] {
					t.Errorf("event %d: %d tasks of limit %q run at once, max is %d", i, c, l, opts.Limits[l])
				}
			}
		case evRetry:
			if !running[e.id] {
				t.Errorf("event %d: %s retries but is not running", i, e.id)
			}
			delete(running, e.id)
		case evFinish:
			if finished[e.id] {
				t.Errorf("event %d: %s finished twice", i, e.id)
			}
			delete(running, e.id)
			finished[e.id] = true
		}
	}
	for _, task := range tasks {
		if !finished[task.ID] {
			t.Errorf("%s never finished", task.ID)
		}
	}
	return p
}

// runAll builds a scheduler over tasks and runs it with the test executor
// and a fresh event log, checking the log's invariants.
func runAll(t *testing.T, ctx context.Context, tasks []*Task, exec Executor, opts Options) (*Scheduler, *Result, []event, peaks) {
	t.Helper()
	log := &eventLog{}
	opts.Observer = log
	s, err := New(tasks, exec, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	res := runGuarded(t, ctx, s)
	events := log.snapshot()
	return s, res, events, checkLog(t, tasks, opts, events)
}

// runGuarded runs s, failing the test instead of hanging if Run does not
// return within the deadlock guard.
func runGuarded(t *testing.T, ctx context.Context, s *Scheduler) *Result {
	t.Helper()
	done := make(chan *Result, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case res := <-done:
		return res
	case <-time.After(guard):
		t.Fatalf("Run did not return within %s: deadlock", guard)
		return nil
	}
}

// wait receives from ch or fails the test after the deadlock guard.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

// await is wait for executor goroutines, which must not call t.Fatal:
// it reports whether ch delivered before the deadlock guard ran out.
func await(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-time.After(guard):
		return false
	}
}

// stuck is what a test executor returns when a gate it waits on never
// opened: a failure the test then reports.
func stuck(t *Task, attempt int, what string) coordinator.Envelope {
	env := envelopeFor(t, attempt, coordinator.StatusFailed)
	env.Error.Message = "test executor waited in vain for " + what
	return env
}

func envByID(res *Result) map[string]coordinator.Envelope {
	m := map[string]coordinator.Envelope{}
	for _, e := range res.Envelopes {
		m[e.Module] = e
	}
	return m
}

// deps builds a Deps value of single-task groups.
func deps(ids ...string) [][]string {
	g := make([][]string, len(ids))
	for i, id := range ids {
		g[i] = []string{id}
	}
	return g
}

// stepper gates chosen tasks' Execute calls so a test can release them one
// at a time and wait for the events each release must cause, making every
// dispatch happen in a known state.
type stepper struct {
	t        *testing.T
	gates    map[string]chan struct{}
	released map[string]bool
	seen     chan string
}

// newStepper gates the given task IDs. On failure its cleanup opens every
// gate so the run ends instead of leaking.
func newStepper(t *testing.T, gated ...string) *stepper {
	st := &stepper{t: t, gates: map[string]chan struct{}{}, released: map[string]bool{}, seen: make(chan string, 1000)}
	for _, id := range gated {
		st.gates[id] = make(chan struct{})
	}
	t.Cleanup(func() {
		for id, g := range st.gates {
			if !st.released[id] {
				close(g)
			}
		}
	})
	return st
}

// gate blocks a gated task until released; false if never released.
func (st *stepper) gate(task *Task) bool {
	g, ok := st.gates[task.ID]
	return !ok || await(g)
}

// observe is the event log's notify function.
func (st *stepper) observe(e event) { st.seen <- e.String() }

// release opens id's gate and waits for the event until.
func (st *stepper) release(id, until string) {
	st.t.Helper()
	st.released[id] = true
	close(st.gates[id])
	st.await(until)
}

// await waits until the event until has been seen.
func (st *stepper) await(until string) {
	st.t.Helper()
	for e := ""; e != until; {
		e = wait(st.t, st.seen, until)
	}
}
