package schedule

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/modpipe/modpipe/coordinator"
)

// taskState is where a task is in one run.
type taskState uint8

const (
	stateWaiting taskState = iota // some dependency has not finished
	stateReady                    // in the ready heap
	stateParked                   // waiting for a key or limit group to free
	stateRunning                  // Execute is running
	stateBackoff                  // waiting out the backoff before a retry
	stateDone                     // has its final envelope
)

// completion is one Execute call's result, sent to the scheduling loop.
type completion struct {
	n   int32
	env coordinator.Envelope
}

// resourceState is a key's or limit group's occupancy in one run.
//
// Tasks that cannot start because the resource is full wait in its heap.
// When the resource frees, the best waiter is moved back to the ready heap
// as a "candidate" holding the resource's wake token; the invariant kept
// after every dispatch is: a resource with waiters has used+candidates >=
// capacity. So a freed unit always has a candidate, and no release ever
// rescans every waiting task.
type resourceState struct {
	used       int
	candidates int
	waiting    *minHeap[int32]
}

// run is the state of one Run call. Everything but the executor goroutines
// is owned by the goroutine that called Run.
type run struct {
	s   *Scheduler
	log hclog.Logger
	obs Observer

	// callerCtx is the caller's; AlwaysRun tasks get it so on_failure stop
	// does not cancel them. stopCtx is cancelled on stop or by the caller.
	callerCtx context.Context
	stopCtx   context.Context
	stop      context.CancelCauseFunc // the cause reaches the running tasks

	done chan completion
	wg   sync.WaitGroup // the executor goroutines
	// jobs hands attempts to executor goroutines that finished their last
	// one; idle counts those waiting on it. Reusing a goroutine keeps its
	// stack, already grown through the executor's deep call chain (gRPC),
	// where a fresh goroutine per attempt grew one every time: copystack
	// was 12% of the host's CPU in a 10,000 no-op module run.
	jobs chan job
	idle int

	remaining []int32 // unfinished distinct dependencies
	state     []taskState
	attempt   []int32 // attempts started so far
	wokenBy   []int32 // the resource whose wake token a ready task holds, or -1
	// final holds the final envelope of finished tasks (published through
	// Scheduler.published) and the last attempt's envelope during backoff.
	final []coordinator.Envelope

	ready   *minHeap[int32]
	res     []resourceState
	dirty   []int32 // resources whose used+candidates went down
	isDirty []bool
	backoff *minHeap[wakeup]
	timer   *time.Timer

	running          int
	exclusiveRunning bool
	unfinished       int
	stoppedBy        string // "build failed": why on_failure stop stopped the run
	cancelled        bool   // the caller's ctx was cancelled
	// cancelKind and cancelWhy are, once cancelled, the error kind and the
	// reason of the tasks the cancellation keeps from starting.
	cancelKind string
	cancelWhy  string

	settleQueue []int32
	settling    bool
}

// Run executes the graph and returns when every task has its final
// envelope and every Execute call has returned. Cancelling ctx cancels the
// running tasks' contexts and starts nothing new; the tasks that never
// started are reported cancelled.
func (s *Scheduler) Run(ctx context.Context) *Result {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	for i := range s.published {
		s.published[i].Store(nil)
	}
	r := s.newRun(ctx)
	defer r.stop(nil)
	r.loop()
	return r.result()
}

func (s *Scheduler) newRun(ctx context.Context) *run {
	n := len(s.nodes)
	r := &run{
		s:          s,
		log:        s.log,
		obs:        s.opts.Observer,
		callerCtx:  ctx,
		done:       make(chan completion, min(n, 1024)),
		jobs:       make(chan job),
		remaining:  make([]int32, n),
		state:      make([]taskState, n),
		attempt:    make([]int32, n),
		wokenBy:    make([]int32, n),
		final:      make([]coordinator.Envelope, n),
		ready:      newTaskHeap(s.nodes),
		res:        make([]resourceState, len(s.resources)),
		isDirty:    make([]bool, len(s.resources)),
		backoff:    newBackoffHeap(),
		unfinished: n,
	}
	r.stopCtx, r.stop = context.WithCancelCause(ctx)
	for i := range s.nodes {
		r.remaining[i] = s.nodes[i].ndeps
		r.wokenBy[i] = -1
	}
	for i := range r.res {
		r.res[i].waiting = newTaskHeap(s.nodes)
	}
	return r
}

// loop is the scheduling loop: every decision is made here, one event at a
// time, followed by a dispatch of whatever can start.
func (r *run) loop() {
	r.timer = time.NewTimer(time.Hour)
	r.timer.Stop()
	defer r.timer.Stop()

	ctxDone := r.callerCtx.Done()
	if r.callerCtx.Err() != nil {
		ctxDone = nil
		r.cancel()
	}
	for i := range r.s.nodes {
		if r.s.nodes[i].ndeps == 0 {
			r.resolve(int32(i))
		}
	}
	r.dispatch()
	for r.unfinished > 0 {
		if r.running == 0 && r.backoff.len() == 0 && r.ready.len() == 0 {
			// Every unfinished task waits on another unfinished task, and
			// nothing is running that could finish one: New rejects cycles,
			// so this is a bug in the scheduler, never in the input.
			panic(fmt.Sprintf("schedule: internal error: %d tasks can never start", r.unfinished))
		}
		var timerC <-chan time.Time
		if r.backoff.len() > 0 {
			timerC = r.timer.C
		}
		select {
		case c := <-r.done:
			r.cancelFirst(&ctxDone)
			r.completed(c)
			// Take every completion already waiting before dispatching, so a
			// burst of finishes costs one dispatch pass.
			for more := true; more; {
				select {
				case c := <-r.done:
					r.cancelFirst(&ctxDone)
					r.completed(c)
				default:
					more = false
				}
			}
		case <-ctxDone:
			ctxDone = nil
			r.cancel()
		case now := <-timerC:
			r.wake(now)
		}
		r.cancelFirst(&ctxDone) // nothing starts in a cancelled run
		r.dispatch()
	}
	close(r.jobs) // every goroutine is idle now: let them go
	r.wg.Wait()
}

// cancelFirst applies the caller's cancellation, if it came and the loop
// has not seen it, before a completion is taken or tasks are started:
// select picks among ready cases at random, and the completions the
// cancellation itself causes (tasks ending cancelled) would otherwise
// resolve their dependents first, skipping some and starting always_run
// ones in a cancelled run (seen under -race on a loaded machine, when
// the caller cancelled from an observer's callback mid-completion).
func (r *run) cancelFirst(ctxDone *<-chan struct{}) {
	if *ctxDone != nil && r.callerCtx.Err() != nil {
		*ctxDone = nil
		r.cancel()
	}
}

func (r *run) result() *Result {
	res := &Result{
		Envelopes: make([]coordinator.Envelope, len(r.s.nodes)),
		Cancelled: r.cancelled,
	}
	ok, anyCancelled := true, false
	for i, n := range r.s.outOrder {
		env := r.final[n]
		res.Envelopes[i] = env
		if env.Status == coordinator.StatusCancelled {
			anyCancelled = true
		}
		if env.Status.Failed() && !r.s.nodes[n].task.IgnoreFailure {
			ok = false
		}
	}
	// The loop may have taken the last completions before it noticed the
	// caller's cancellation: a task cancelled meanwhile still makes the
	// run a cancelled one, but a run that finished everything does not
	// turn cancelled because ctx was cancelled a moment after.
	if anyCancelled && r.callerCtx.Err() != nil {
		res.Cancelled = true
	}
	res.Succeeded = ok && !anyCancelled && !res.Cancelled
	return res
}

// dispatch starts ready tasks in rank order while the constraints allow.
// A task blocked by a key or limit group waits on that resource and does
// not hold back the tasks behind it; an exclusive task at the top does.
func (r *run) dispatch() {
	par := r.s.opts.Parallelism
	for {
		for r.ready.len() > 0 {
			if (par > 0 && r.running >= par) || r.exclusiveRunning {
				break
			}
			n := r.ready.peek()
			if r.s.nodes[n].task.Exclusive && r.running > 0 {
				// Let the running set drain so the exclusive task cannot
				// starve behind a stream of smaller tasks.
				break
			}
			r.ready.pop()
			if w := r.wokenBy[n]; w >= 0 {
				r.wokenBy[n] = -1
				r.res[w].candidates--
				r.markDirty(w)
			}
			if b := r.blockedBy(n); b >= 0 {
				r.park(n, b)
				continue
			}
			r.start(n)
		}
		if !r.refill() {
			return
		}
	}
}

// blockedBy returns the first full resource n needs, or -1.
func (r *run) blockedBy(n int32) int32 {
	for _, x := range r.s.nodes[n].res {
		if r.res[x].used >= r.s.resources[x].capacity {
			return x
		}
	}
	return -1
}

func (r *run) park(n, x int32) {
	r.state[n] = stateParked
	r.res[x].waiting.push(n)
	if r.log.IsTrace() {
		r.log.Trace("task waits for a resource", "task", r.s.nodes[n].task.ID, "resource", r.s.resources[x].name)
	}
}

func (r *run) markDirty(x int32) {
	if !r.isDirty[x] {
		r.isDirty[x] = true
		r.dirty = append(r.dirty, x)
	}
}

// refill restores the resource invariant for every resource whose
// occupancy went down, moving waiters back to the ready heap. It reports
// whether it moved any.
func (r *run) refill() bool {
	moved := false
	for len(r.dirty) > 0 {
		x := r.dirty[len(r.dirty)-1]
		r.dirty = r.dirty[:len(r.dirty)-1]
		r.isDirty[x] = false
		rs := &r.res[x]
		for rs.used+rs.candidates < r.s.resources[x].capacity && rs.waiting.len() > 0 {
			m := rs.waiting.pop()
			if b := r.blockedBy(m); b >= 0 {
				r.park(m, b) // b is full, so its invariant holds
				continue
			}
			rs.candidates++
			r.wokenBy[m] = x
			r.state[m] = stateReady
			r.ready.push(m)
			moved = true
		}
	}
	return moved
}

// job is one attempt for an executor goroutine.
type job struct {
	n       int32
	t       *Task
	ctx     context.Context
	attempt int
}

// start hands one attempt of n to the executor: on an idle executor
// goroutine, or on a new one when none is idle.
func (r *run) start(n int32) {
	nd := &r.s.nodes[n]
	t := nd.task
	r.state[n] = stateRunning
	r.running++
	if t.Exclusive {
		r.exclusiveRunning = true
	}
	for _, x := range nd.res {
		r.res[x].used++
	}
	r.attempt[n]++
	attempt := int(r.attempt[n])
	if r.log.IsDebug() {
		r.log.Debug("task started", "task", t.ID, "attempt", attempt, "running", r.running)
	}
	if r.obs != nil {
		r.obs.TaskStarted(t, attempt)
	}
	ctx := r.stopCtx
	if t.AlwaysRun {
		ctx = r.callerCtx
	}
	j := job{n: n, t: t, ctx: ctx, attempt: attempt}
	if r.idle > 0 {
		// An idle goroutine has sent its completion and nothing else
		// stands between it and receiving this.
		r.idle--
		r.jobs <- j
		return
	}
	r.wg.Add(1)
	go r.execute(j)
}

// execute runs j and then every job it is handed, until the run closes
// jobs.
func (r *run) execute(j job) {
	defer r.wg.Done()
	for ok := true; ok; j, ok = <-r.jobs {
		env := r.s.exec.Execute(j.ctx, j.t, j.attempt)
		r.done <- completion{n: j.n, env: env}
	}
}

// completed takes one attempt's envelope: retry, or finish the task.
func (r *run) completed(c completion) {
	r.idle++ // the goroutine that ran it now waits for a job
	n := c.n
	nd := &r.s.nodes[n]
	t := nd.task
	r.running--
	if t.Exclusive {
		r.exclusiveRunning = false
	}
	for _, x := range nd.res {
		r.res[x].used--
		r.markDirty(x)
	}
	env := c.env
	env.Module = t.ID
	env.Attempts = int(r.attempt[n])
	notStarted := env.Status == coordinator.StatusCancelled && c.env.Attempts == 0
	if env.Status == coordinator.StatusSkipped || notStarted {
		// Skipped when it came to run (run_if, requires), or cancelled
		// before it started (an executor that says so with 0 attempts):
		// never run, as a module skipped for a failed dependency.
		env.Attempts = 0
	}
	if notStarted && r.attempt[n] > 1 {
		// A retry the run stopped before it started (a fleet's, waiting
		// for a member to take it): the attempts that ran are kept, as
		// for a retry stopped during its backoff.
		r.attempt[n]--
		kind, why := coordinator.ErrorKindCancelled, "the run was cancelled"
		if env.Error != nil {
			kind, why = env.Error.Kind, strings.TrimPrefix(env.Error.Message, "not started: ")
		}
		env = r.abandonedRetry(n, kind, why)
	}
	if !env.Status.Valid() {
		env.Error = &coordinator.Error{
			Kind:    coordinator.ErrorKindPlugin,
			Message: fmt.Sprintf("the executor returned the invalid status %q for %s (this is a bug in the executor)", env.Status, t.ID),
		}
		env.Status = coordinator.StatusFailed
	}
	if env.Status.Failed() && env.Attempts < nd.attempts && r.mayStart(t) {
		wait := backoffFor(t.Backoff, env.Attempts)
		if r.log.IsDebug() {
			r.log.Debug("task retrying", "task", t.ID, "attempt", env.Attempts, "of", nd.attempts, "status", env.Status, "wait", wait)
		}
		if r.obs != nil {
			r.obs.TaskRetrying(t, env.Attempts, env, wait)
		}
		r.final[n] = env
		if wait <= 0 {
			r.makeReady(n)
			return
		}
		r.state[n] = stateBackoff
		r.backoff.push(wakeup{at: time.Now().Add(wait), n: n})
		r.resetTimer()
		return
	}
	if env.Status.Failed() && t.IgnoreFailure {
		env.IgnoredFailure = true
	}
	r.finish(n, env)
	if env.Status.Failed() && !t.IgnoreFailure && r.s.opts.OnFailure == Stop && r.stoppedBy == "" && !r.cancelled {
		r.stopRun(t.ID + " " + failedVerb(env.Status))
	}
}

// mayStart reports whether t may start (or retry) now that the run may
// have stopped.
func (r *run) mayStart(t *Task) bool {
	return !r.cancelled && (r.stoppedBy == "" || t.AlwaysRun)
}

func failedVerb(s coordinator.Status) string {
	if s == coordinator.StatusTimedOut {
		return "timed out"
	}
	return "failed"
}

func (r *run) makeReady(n int32) {
	r.state[n] = stateReady
	r.ready.push(n)
	if r.log.IsDebug() {
		r.log.Debug("task ready", "task", r.s.nodes[n].task.ID)
	}
}

// wake moves the retries whose backoff has passed to the ready heap.
func (r *run) wake(now time.Time) {
	for r.backoff.len() > 0 && !r.backoff.peek().at.After(now) {
		r.makeReady(r.backoff.pop().n)
	}
	r.resetTimer()
}

func (r *run) resetTimer() {
	r.timer.Stop()
	if r.backoff.len() > 0 {
		r.timer.Reset(time.Until(r.backoff.peek().at))
	}
}

// resolve decides the fate of n once all its dependencies have finished:
// ready, skipped because of a dependency, or cancelled because the run
// stopped.
func (r *run) resolve(n int32) {
	t := r.s.nodes[n].task
	cause, reason := r.dependencyOutcome(n)
	switch {
	case (cause == causeFailed || cause == causeSkipped) && !t.AlwaysRun:
		r.finish(n, r.made(n, coordinator.StatusSkipped, reason, nil))
	case r.cancelled:
		r.finish(n, r.made(n, coordinator.StatusCancelled, "", &coordinator.Error{
			Kind: r.cancelKind, Message: "not started: " + r.cancelWhy,
		}))
	case t.AlwaysRun:
		r.makeReady(n)
	case r.stoppedBy != "":
		r.finish(n, r.made(n, coordinator.StatusCancelled, "", &coordinator.Error{
			Kind: coordinator.ErrorKindCancelled, Message: "not started: the pipeline stopped after " + r.stoppedBy,
		}))
	case cause == causeCancelled:
		r.finish(n, r.made(n, coordinator.StatusSkipped, reason, nil))
	default:
		r.makeReady(n)
	}
}

// depCause classifies why a task's dependencies keep it from running.
type depCause uint8

const (
	causeNone      depCause = iota
	causeCancelled          // a dependency was cancelled
	causeSkipped            // every member of a dependency group was skipped
	causeFailed             // a dependency failed or timed out without IgnoreFailure
)

// dependencyOutcome returns the strongest reason n's finished dependencies
// give not to run it (failure, then whole-group skip, then cancellation),
// with the skip reason a user reads.
func (r *run) dependencyOutcome(n int32) (depCause, string) {
	nd := &r.s.nodes[n]
	cause, reason := causeNone, ""
	for gi, g := range nd.groups {
		allSkipped := true
		for _, d := range g {
			env := &r.final[d]
			switch {
			case env.Status.Failed() && !r.s.nodes[d].task.IgnoreFailure:
				if cause < causeFailed {
					cause, reason = causeFailed, fmt.Sprintf("dependency %s %s", r.s.nodes[d].task.ID, failedVerb(env.Status))
				}
			case env.Status == coordinator.StatusCancelled:
				if cause < causeCancelled {
					cause, reason = causeCancelled, fmt.Sprintf("dependency %s was cancelled", r.s.nodes[d].task.ID)
				}
			}
			if env.Status != coordinator.StatusSkipped {
				allSkipped = false
			}
		}
		if allSkipped && cause < causeSkipped {
			cause = causeSkipped
			if len(g) == 1 {
				reason = fmt.Sprintf("dependency %s was skipped", nd.groupNames[gi])
			} else {
				reason = fmt.Sprintf("dependency %s was skipped (all %d instances)", nd.groupNames[gi], len(g))
			}
		}
	}
	return cause, reason
}

// made builds an envelope for a task the scheduler finished without
// executing it.
func (r *run) made(n int32, status coordinator.Status, skipReason string, err *coordinator.Error) coordinator.Envelope {
	now := time.Now()
	return coordinator.Envelope{
		Module:     r.s.nodes[n].task.ID,
		Status:     status,
		SkipReason: skipReason,
		Error:      err,
		StartedAt:  now,
		EndedAt:    now,
	}
}

// finish records n's final envelope, publishes it, and resolves the
// dependents it was the last dependency of, cascading through skips
// iteratively so a long chain cannot grow the stack.
func (r *run) finish(n int32, env coordinator.Envelope) {
	t := r.s.nodes[n].task
	r.final[n] = env
	r.state[n] = stateDone
	r.unfinished--
	r.s.published[n].Store(&r.final[n])
	if r.log.IsDebug() {
		switch env.Status {
		case coordinator.StatusSkipped:
			r.log.Debug("task skipped", "task", t.ID, "reason", env.SkipReason)
		default:
			args := []any{"task", t.ID, "status", env.Status, "attempts", env.Attempts}
			if env.Error != nil {
				args = append(args, "error", env.Error.Message)
			}
			r.log.Debug("task finished", args...)
		}
	}
	if r.obs != nil {
		r.obs.TaskFinished(t, env)
	}
	r.settleQueue = append(r.settleQueue, n)
	if r.settling {
		return
	}
	r.settling = true
	for i := 0; i < len(r.settleQueue); i++ {
		for _, d := range r.s.nodes[r.settleQueue[i]].dependents {
			r.remaining[d]--
			if r.remaining[d] == 0 {
				r.resolve(d)
			}
		}
	}
	r.settleQueue = r.settleQueue[:0]
	r.settling = false
}

// stopRun applies on_failure = "stop" after the failure described by why.
func (r *run) stopRun(why string) {
	r.stoppedBy = why
	r.stop(errors.New("the pipeline stopped after " + why))
	r.log.Info("stopping the pipeline: no new tasks start except always_run ones", "cause", why, "running", r.running)
	r.sweep(func(t *Task) bool { return !t.AlwaysRun }, coordinator.ErrorKindCancelled, "the pipeline stopped after "+why)
}

// cancel applies the caller's cancellation.
func (r *run) cancel() {
	r.cancelled = true
	r.cancelKind, r.cancelWhy = coordinator.ErrorKindCancelled, "the run was cancelled"
	var in *Interruption
	if errors.As(context.Cause(r.callerCtx), &in) {
		r.cancelKind, r.cancelWhy = in.Kind, in.Reason
	}
	r.stop(nil) // the caller's cause, if it gave one, is the context's already
	r.log.Info("run cancelled: cancelling running tasks", "running", r.running)
	r.sweep(func(*Task) bool { return true }, r.cancelKind, r.cancelWhy)
}

// sweep finishes, as cancelled (error kind kind, because of why), every
// ready, waiting-for-resource and backing-off task that affected selects;
// the others go back to the ready heap, which resets every resource's
// wake bookkeeping.
func (r *run) sweep(affected func(*Task) bool, kind, why string) {
	items := r.ready.drain()
	for x := range r.res {
		items = append(items, r.res[x].waiting.drain()...)
		r.res[x].candidates = 0
	}
	for _, n := range items {
		r.wokenBy[n] = -1
		if !affected(r.s.nodes[n].task) {
			r.state[n] = stateReady
			r.ready.push(n)
			continue
		}
		if r.attempt[n] > 0 {
			// A retry with no backoff: it has already run.
			r.finish(n, r.abandonedRetry(n, kind, why))
			continue
		}
		r.finish(n, r.made(n, coordinator.StatusCancelled, "", &coordinator.Error{
			Kind: kind, Message: "not started: " + why,
		}))
	}
	for _, w := range r.backoff.drain() {
		if !affected(r.s.nodes[w.n].task) {
			r.backoff.push(w)
			continue
		}
		r.finish(w.n, r.abandonedRetry(w.n, kind, why))
	}
	r.resetTimer()
}

// abandonedRetry is the final envelope of a task whose retry will not
// happen (because of why, an error of kind kind): its last attempt's
// envelope, cancelled, saying what happened.
func (r *run) abandonedRetry(n int32, kind, why string) coordinator.Envelope {
	env := r.final[n]
	last := "ended " + string(env.Status)
	tail := ""
	if env.Error != nil {
		last += ": " + env.Error.Message
		tail = env.Error.Tail
	}
	env.Status = coordinator.StatusCancelled
	env.Error = &coordinator.Error{
		Kind:    kind,
		Message: fmt.Sprintf("not retried: %s (attempt %d of %d %s)", why, env.Attempts, r.s.nodes[n].attempts, last),
		Tail:    tail,
	}
	return env
}
