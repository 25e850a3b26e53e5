package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/graph"
	"github.com/modpipe/modpipe/host/report"
	"github.com/modpipe/modpipe/host/schedule"
)

// runMaster is instance 0 of a distributed run: it loads and prepares the
// pipeline as Run does, publishes the run record, schedules the graph with
// the same scheduler through a distributedExecutor (which enqueues ready
// modules to the coordinator), pulls work itself with its own slots, and
// builds the run's report from the envelopes.
func runMaster(ctx context.Context, opts RunOptions, d DistributedOptions, coord coordinator.Coordinator) (*report.Run, error) {
	hash, err := pipelineHash(opts.File)
	if err != nil {
		return nil, err
	}
	var l *loaded
	if pre := d.Preloaded.usable(opts.File, 0); pre != nil {
		var warnings hcl.Diagnostics
		if l, warnings, err = loadedFrom(opts.Options, pre.facts, pre.cfg, pre.diags, nil); err == nil && len(warnings) > 0 {
			_ = l.report(warnings, ExitOK)
		}
	} else {
		l, err = load(opts.Options)
	}
	if err != nil {
		return nil, abandonRun(ctx, coord, d.withDefaults(nil), err, opts.Logger)
	}
	d = d.withDefaults(l.cfg.Distributed)
	log := opts.Logger.Named("distributed").With("run_id", d.RunID, "instance", 0)

	src := &lateSource{}
	p, err := prepare(ctx, l, resultFunc(l.graph, src))
	if err != nil {
		return nil, abandonRun(ctx, coord, d, err, opts.Logger)
	}
	defer p.close()

	vars, err := encodeValues(variableValues(p.cfg))
	if err != nil {
		return nil, exitErrorf(ExitInvalid, "publish the variables of %s: %v", opts.File, err)
	}
	locals, err := encodeValues(p.cfg.Locals)
	if err != nil {
		return nil, exitErrorf(ExitInvalid, "publish the locals of %s: %v", opts.File, err)
	}

	sess, err := coord.JoinMaster(ctx, d.joinRequest(l.facts.Capabilities))
	if err != nil {
		return nil, joinError(err, d)
	}
	defer func() {
		if err := sess.Close(); err != nil {
			log.Warn("leave the run", "error", err)
		}
	}()
	log.Info("master joined", "host", d.HostName, "capabilities", l.facts.Capabilities, "slots", d.Slots, "total", d.Total)
	started := time.Now().UTC()
	// The live members seed the scheduler's view of them, so the first
	// assignments do not wait for the watch. They are read while the run
	// record is published: the two are independent round trips, and with
	// a fleet starting at once etcd answered the read in ~30 ms.
	seed := make(chan []coordinator.Member, 1)
	go func() {
		live, err := sess.Members(ctx)
		if err != nil {
			live = nil // the watch brings them
		}
		seed <- live
	}()
	if err := sess.PublishRun(ctx, coordinator.RunInfo{
		PipelineHash: hash,
		Variables:    vars,
		Locals:       locals,
		Total:        d.Total,
		StartedAt:    started,
	}); err != nil {
		<-seed
		if errors.Is(err, coordinator.ErrRunStarted) {
			return nil, &ExitError{Code: ExitInvalid, Err: fmt.Errorf("run %s was already started by a master that is gone; start a new run with a new --run-id", d.RunID)}
		}
		return nil, &ExitError{Code: ExitCoordinator, Err: fmt.Errorf("publish the run record of %s: %w", d.RunID, err)}
	}

	// The live view and event lines follow the scheduler; where a module
	// runs is decided by whoever claims it, which the master does not see.
	con := newRunConsole(p, opts.NoProgress, len(l.graph.Nodes()))
	con.instance = -1
	defer con.Close()
	runner := newModuleRunner(p, src, con, d.RunID, 0)
	runner.hostName = d.HostName

	// The master's helpers live until the scheduler is done, then stop.
	helpers, stopHelpers := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		stopHelpers()
		wg.Wait()
	}()

	// The run's context: the caller's, and ended when the master's
	// session ends (etcd unreachable, its lease lost), so the scheduler
	// stops and the master's own modules are cancelled at once rather
	// than run to their end for a run that can no longer finish.
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	// The cause of a run the coordinator's loss ends: the modules it keeps
	// from starting say so (kind coordinator), not "the run was cancelled".
	loseCoordinator := func() {
		stopRun(&schedule.Interruption{Kind: coordinator.ErrorKindCoordinator, Reason: fmt.Sprintf("the master lost the coordinator (%v)", sess.Err())})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-sess.Done():
			loseCoordinator()
		case <-helpers.Done():
		}
	}()

	members := newMemberView(log)
	members.seed(<-seed)
	watch, err := sess.WatchMembers(helpers)
	if err != nil {
		return nil, &ExitError{Code: ExitCoordinator, Err: fmt.Errorf("watch the members of %s: %w", d.RunID, err)}
	}
	wg.Add(1)
	go func() { defer wg.Done(); members.follow(watch) }()

	rt := newRouter(log)
	wg.Add(1)
	go func() { defer wg.Done(); rt.route(helpers, sess) }()

	stg := &stager{sess: sess, graph: l.graph, router: rt, members: members, log: log, ctx: helpers, wg: &wg, staged: map[string]bool{}}
	exec := &distributedExecutor{sess: sess, members: members, router: rt, log: log, runCtx: runCtx, loseCoordinator: loseCoordinator, capabilityTimeout: d.CapabilityTimeout, total: d.Total, stager: stg}
	con.SetLocate(func(module string) (int, string, bool) {
		m, ok := exec.claimHolder(module)
		return m.Index, m.Host, ok
	})
	sched, err := newScheduler(p, exec, 0 /* members have their own slots */, con)
	if err != nil {
		return nil, err
	}
	// A staged module a member dispatched to the master may start before
	// the scheduler has its dependency's result: the coordinator has it.
	src.set(fallbackSource{first: sched, then: &sessionSource{ctx: helpers, sess: sess, log: log, cache: map[string]coordinator.Envelope{}}})

	pull := &puller{sess: sess, graph: l.graph, runner: runner, log: log, wanted: rt.startHere, local: rt.deliverHere, limit: limitOf(coord), modules: runCtx}
	// The master's slots stop claiming once the run is cancelled (Ctrl-C,
	// its session gone): a module it claimed then would only be reported
	// "not started" by it. A stop after a failure (on_failure) leaves
	// runCtx alone, so they still claim the always_run modules.
	claiming, stopClaiming := context.WithCancel(helpers)
	defer stopClaiming()
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-runCtx.Done():
			stopClaiming()
			// What its slots took ahead goes back to the queue, so the
			// scheduler reports it "not started" at once.
			if r, ok := sess.(heldReleaser); ok {
				r.ReleaseHeld()
			}
		case <-helpers.Done():
		}
	}()
	for range d.Slots {
		wg.Add(1)
		go func() { defer wg.Done(); pull.loop(claiming) }()
	}

	res := sched.Run(runCtx)
	ended := time.Now().UTC()

	status := coordinator.StatusFailed
	switch {
	case res.Cancelled:
		status = coordinator.StatusCancelled
	case res.Succeeded:
		status = coordinator.StatusSucceeded
	}
	// A master whose session ended (etcd unreachable or its lease lost)
	// cannot finish the run; the workers see its lease go and exit with
	// "master lost". It still reports what it knows, and exits with the
	// coordinator's exit code rather than a plain pipeline failure.
	lost := sess.Err()
	if lost == nil {
		fctx, cancel := sessionContext(sess, publishTimeout)
		if err := sess.Finish(fctx, status); err != nil {
			log.Error("finish the run", "error", err)
		} else {
			log.Info("run finished", "status", status)
		}
		cancel()
	}
	stopHelpers()
	wg.Wait()
	var runErr *coordinator.Error
	if lost != nil && ctx.Err() == nil {
		runErr = &coordinator.Error{Kind: coordinator.ErrorKindCoordinator, Message: fmt.Sprintf(
			"the master lost the coordinator before the run finished (%v); what the modules running elsewhere then did is unknown to it", lost)}
	}
	run, err := finishRun(p, con, d.RunID, opts.Reports, started, ended, res, runErr)
	if lost != nil && ctx.Err() == nil {
		log.Error("the master's coordinator session ended before the run finished", "error", lost)
		hint := "check the connection to the coordinator (its endpoints, TLS and credentials) and rerun"
		if !errors.Is(lost, coordinator.ErrSessionLost) {
			// The coordinator answered and refused (its space is full):
			// the error says what to do, and the connection is fine.
			hint = "rerun once that is resolved"
		}
		return run, &ExitError{Code: ExitCoordinator, Err: fmt.Errorf("master of run %s: %w; the run could not finish: %s", d.RunID, lost, hint)}
	}
	return run, err
}

// fallbackSource serves results from first, or else from then.
type fallbackSource struct{ first, then envelopeSource }

func (f fallbackSource) Envelope(addr string) (coordinator.Envelope, bool) {
	if env, ok := f.first.Envelope(addr); ok {
		return env, true
	}
	return f.then.Envelope(addr)
}

// abandonRun ends a run whose master could not start it (the file does not
// load, a plugin does not start): it joins only to finish the run as
// failed, so workers already waiting exit instead of waiting for a master
// that will never come. It returns cause, the error to report.
func abandonRun(ctx context.Context, coord coordinator.Coordinator, d DistributedOptions, cause error, logger hclog.Logger) error {
	log := logger.Named("distributed").With("run_id", d.RunID, "instance", 0)
	sess, err := coord.JoinMaster(ctx, d.joinRequest(nil))
	if err != nil {
		log.Warn("could not tell the workers that the run failed to start", "error", err)
		return cause
	}
	fctx, cancel := sessionContext(sess, publishTimeout)
	defer cancel()
	// The workers say why they stop: the reason goes first.
	if err := sess.Cancel(fctx, "the master could not start the run: "+cause.Error()); err != nil {
		log.Warn("could not tell the workers why the run failed to start", "error", err)
	}
	if err := sess.Finish(fctx, coordinator.StatusFailed); err != nil {
		log.Warn("could not tell the workers that the run failed to start", "error", err)
	} else {
		log.Info("run finished before it started: the master could not start it", "cause", cause)
	}
	if err := sess.Close(); err != nil {
		log.Warn("leave the run", "error", err)
	}
	return cause
}

// memberView is the master's live picture of the run's members, fed by
// WatchMembers. Waiters are woken by closing changed, never by polling.
type memberView struct {
	log     hclog.Logger
	mu      sync.Mutex
	live    map[int]coordinator.Member
	joined  map[int]bool // every index that has been live, to tell who never joined
	changed chan struct{}
}

func newMemberView(log hclog.Logger) *memberView {
	return &memberView{log: log, live: map[int]coordinator.Member{}, joined: map[int]bool{}, changed: make(chan struct{})}
}

// seed records members known before the watch starts; the watch's first
// events repeat them, which changes nothing.
func (v *memberView) seed(members []coordinator.Member) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, m := range members {
		v.live[m.Index] = m
		v.joined[m.Index] = true
	}
}

// follow applies events until the channel closes.
func (v *memberView) follow(events <-chan coordinator.MemberEvent) {
	for ev := range events {
		v.mu.Lock()
		switch ev.Kind {
		case coordinator.MemberJoined:
			v.live[ev.Member.Index] = ev.Member
			v.joined[ev.Member.Index] = true
			v.log.Info("member joined", "index", ev.Member.Index, "host", ev.Member.Host, "capabilities", ev.Member.Capabilities, "slots", ev.Member.Slots, "version", ev.Member.Version)
		case coordinator.MemberLeft:
			delete(v.live, ev.Member.Index)
			v.log.Info("member left", "index", ev.Member.Index, "host", ev.Member.Host)
		}
		close(v.changed)
		v.changed = make(chan struct{})
		v.mu.Unlock()
	}
}

// snapshot returns the live members and a channel closed at the next change.
func (v *memberView) snapshot() ([]coordinator.Member, <-chan struct{}) {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]coordinator.Member, 0, len(v.live))
	for _, m := range v.live {
		out = append(out, m)
	}
	return out, v.changed
}

// absent returns the indexes below total that never joined, and those
// that joined and have left.
func (v *memberView) absent(total int) (never, left []int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := range total {
		switch _, live := v.live[i]; {
		case !v.joined[i]:
			never = append(never, i)
		case !live:
			left = append(left, i)
		}
	}
	return never, left
}

// canRun reports whether some live member may claim a.
func canRun(a coordinator.Assignment, members []coordinator.Member) bool {
	for _, m := range members {
		if coordinator.CanRun(a, m) {
			return true
		}
	}
	return false
}

// outcome is what ends one attempt: its envelope or the loss of its claim.
type outcome struct {
	env  coordinator.Envelope
	lost *coordinator.LostClaim
}

type waiter struct {
	attempt int
	ch      chan outcome // buffered 1: the router never blocks
	// staged: registered by stage, for a first attempt a member may
	// dispatch before Execute runs; its outcome waits in ch for Execute.
	staged bool
	// here: the master's own slot runs the attempt; it delivers the
	// outcome itself, whether or not its publish went through.
	here bool
}

// router is the one owner of the master session's Results and LostClaims
// streams: it hands each to the Execute call waiting for that module.
type router struct {
	log     hclog.Logger
	mu      sync.Mutex
	waiters map[string]*waiter
	// lost remembers which modules' last attempt was lost, so the retry
	// is logged as a re-queue.
	lost map[string]bool
}

func newRouter(log hclog.Logger) *router {
	return &router{log: log, waiters: map[string]*waiter{}, lost: map[string]bool{}}
}

// stage registers the waiter of module's first attempt ahead of its
// Execute: a member may dispatch a staged module, and its outcome arrive,
// before the master's scheduler finds it ready.
func (r *router) stage(module string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.waiters[module] == nil {
		r.waiters[module] = &waiter{attempt: 1, ch: make(chan outcome, 1), staged: true}
	}
}

// wait registers the waiter of module's attempt, or adopts the one stage
// registered. Call done when finished.
func (r *router) wait(module string, attempt int) (<-chan outcome, func()) {
	r.mu.Lock()
	w := r.waiters[module]
	if w == nil || !w.staged || w.attempt != attempt {
		w = &waiter{attempt: attempt, ch: make(chan outcome, 1)}
		r.waiters[module] = w
	}
	w.staged = false
	r.mu.Unlock()
	return w.ch, func() {
		r.mu.Lock()
		if r.waiters[module] == w {
			delete(r.waiters, module)
		}
		r.mu.Unlock()
	}
}

// startHere reports whether the master still waits for a's outcome, and
// if so records that its own slot runs a: a claim of an assignment nobody
// waits for (the run stopped) is not worth running.
func (r *router) startHere(a coordinator.Assignment) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.waiters[a.Module]
	if w == nil || w.attempt != a.Attempt {
		return false
	}
	w.here = true
	return true
}

// deliverHere hands the outcome of a's attempt, which the master's own
// slot ran, to its Execute as the master's slot publishes it: when the
// coordinator is lost, the publish and the result's watch fail, and the
// master still knows how its own modules ended.
func (r *router) deliverHere(a coordinator.Assignment, env coordinator.Envelope) {
	r.deliver(a.Module, a.Attempt, outcome{env: env})
}

// runsHere reports whether the master's own slot runs module's attempt
// (startHere); if not, the attempt's waiter is dropped, so no slot of the
// master starts it afterwards.
func (r *router) runsHere(module string, attempt int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.waiters[module]
	if w == nil || w.attempt != attempt {
		return false
	}
	if !w.here {
		delete(r.waiters, module)
	}
	return w.here
}

// waitingAttempt is the attempt of module the master waits for, or 0.
func (r *router) waitingAttempt(module string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w := r.waiters[module]; w != nil {
		return w.attempt
	}
	return 0
}

// wasLost reports, once, whether module's previous attempt was lost.
func (r *router) wasLost(module string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.lost[module]
	delete(r.lost, module)
	return l
}

func (r *router) deliver(module string, attempt int, o outcome) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.waiters[module]
	if w == nil || w.attempt != attempt {
		return false
	}
	if o.lost != nil && w.here {
		// The master's own claim, lost with its session: its slot still
		// delivers how the module ended.
		return false
	}
	if w.staged {
		// Execute has not run yet: it finds the outcome in ch.
		if len(w.ch) > 0 {
			return false
		}
	} else {
		delete(r.waiters, module)
	}
	if o.lost != nil {
		r.lost[module] = true
	}
	w.ch <- o
	return true
}

// route runs until ctx is done or the session's streams close.
func (r *router) route(ctx context.Context, sess coordinator.MasterSession) {
	results, lost := sess.Results(), sess.LostClaims()
	for {
		select {
		case <-ctx.Done():
			return
		case env, ok := <-results:
			if !ok {
				return
			}
			r.log.Info("result", "module", env.Module, "attempt", env.Attempts, "status", env.Status, "by", env.Instance, "host", env.Host)
			attempt := env.Attempts
			if attempt == 0 {
				// A member that claimed the module and never started it
				// (the run was cancelled) reports 0 attempts, as a single
				// machine does: it answers the attempt the master waits
				// for, which otherwise waited cancelledOutcomeWait.
				attempt = r.waitingAttempt(env.Module)
			}
			if !r.deliver(env.Module, attempt, outcome{env: env}) {
				r.log.Debug("result no one waits for (the run stopped or the attempt was superseded)", "module", env.Module, "attempt", env.Attempts)
			}
		case lc, ok := <-lost:
			if !ok {
				return
			}
			r.log.Warn("member lost while running a module", "module", lc.Module, "attempt", lc.Attempt, "index", lc.Member.Index, "host", lc.Member.Host)
			if !r.deliver(lc.Module, lc.Attempt, outcome{lost: &lc}) {
				r.log.Debug("lost claim no one waits for", "module", lc.Module, "attempt", lc.Attempt)
			}
		}
	}
}

// distributedExecutor is the master's schedule.Executor: it turns a ready
// task into an assignment once some live member can run it, enqueues it,
// and waits for its envelope or the loss of its claim.
type distributedExecutor struct {
	sess    coordinator.MasterSession
	members *memberView
	router  *router
	log     hclog.Logger
	runCtx  context.Context // the run's own context, to tell Ctrl-C from on_failure stop
	// loseCoordinator cancels runCtx because the master's session ended.
	loseCoordinator   func()
	capabilityTimeout time.Duration
	// total is the run's --total, to name the instances that never joined.
	total int
	// stager stages the dependents of what is dispatched (nil: none).
	stager *stager

	cancelOnce sync.Once
}

// Execute implements schedule.Executor.
func (e *distributedExecutor) Execute(ctx context.Context, t *schedule.Task, attempt int) coordinator.Envelope {
	n := t.Data.(*graph.Node)
	m := n.Module
	a := assignment(n, attempt)
	started := time.Now().UTC()
	failed := func(status coordinator.Status, kind, msg string) coordinator.Envelope {
		end := time.Now().UTC()
		return coordinator.Envelope{
			Module: n.Address, Status: status, Attempts: attempt,
			Error:     &coordinator.Error{Kind: kind, Message: msg},
			StartedAt: started, EndedAt: end, DurationMS: end.Sub(started).Milliseconds(),
		}
	}
	// Register before enqueueing so no result can arrive unrouted.
	ch, done := e.router.wait(a.Module, a.Attempt)
	defer done()

	// cancelled is the module's envelope once the run is cancelled: what
	// the member running it publishes as it stops (its instance, host and
	// timings, as a single-machine run would report), or, when no member
	// holds it, a module that never started.
	cancelled := func() coordinator.Envelope {
		if e.coordinatorGone() {
			return e.coordinatorLost(n, a, ch, failed)
		}
		reason := e.cancel(ctx)
		holder, claimed := e.claimHolder(a.Module)
		if !claimed {
			select {
			case o := <-ch: // it has just finished
				if o.lost == nil {
					return o.env
				}
			default:
			}
			now := time.Now().UTC()
			return coordinator.Envelope{Module: n.Address, Status: coordinator.StatusCancelled, Attempts: 0, StartedAt: now, EndedAt: now,
				Error: &coordinator.Error{Kind: coordinator.ErrorKindCancelled, Message: "not started: " + notStartedCause(reason)}}
		}
		if e.sess.Err() == nil {
			wait := time.NewTimer(cancelledOutcomeWait)
			defer wait.Stop()
			// A member that held the claim ahead, without starting the
			// module, gives it back to the queue as it leaves: no outcome
			// comes, and the module never started.
			poll := time.NewTicker(claimPoll)
			defer poll.Stop()
			var released <-chan time.Time
		waiting:
			for {
				select {
				case o := <-ch:
					if o.lost == nil {
						return o.env
					}
					break waiting
				case <-wait.C:
					break waiting
				case <-poll.C:
					if _, still := e.claimHolder(a.Module); !still && released == nil {
						// Its outcome may be on its way (a Publish
						// deletes the claim as it writes the result).
						released = time.After(releasedGrace)
					}
				case <-released:
					if _, still := e.claimHolder(a.Module); !still {
						now := time.Now().UTC()
						return coordinator.Envelope{Module: n.Address, Status: coordinator.StatusCancelled, Attempts: 0, StartedAt: now, EndedAt: now,
							Error: &coordinator.Error{Kind: coordinator.ErrorKindCancelled, Message: "not started: " + notStartedCause(reason)}}
					}
					released = nil
				}
			}
		}
		env := failed(coordinator.StatusCancelled, coordinator.ErrorKindCancelled, "cancelled: "+moduleCancelCause(reason))
		env.Instance, env.Host = holder.Index, holder.Host
		return env
	}

	if _, msg, ok := e.awaitCapable(ctx, a, nil); !ok {
		if ctx.Err() != nil || e.coordinatorGone() {
			return cancelled()
		}
		e.log.Error("no capable member", "module", a.Module, "attempt", a.Attempt, "requires", a.Requires)
		return failed(coordinator.StatusFailed, coordinator.ErrorKindCapability, msg)
	}
	if attempt > 1 && e.router.wasLost(a.Module) {
		e.log.Warn("re-queue after a lost member", "module", a.Module, "attempt", attempt)
	}
	if e.stager != nil {
		e.stager.after(n)
	}
	if err := e.sess.Enqueue(ctx, a); err != nil {
		if ctx.Err() != nil || e.coordinatorGone() {
			return cancelled()
		}
		e.log.Error("enqueue", "module", a.Module, "attempt", a.Attempt, "error", err)
		return failed(coordinator.StatusFailed, coordinator.ErrorKindPlugin, fmt.Sprintf("enqueue %s on the coordinator: %v", a.Module, err))
	}
	e.log.Info("enqueued", "module", a.Module, "attempt", a.Attempt, "requires", a.Requires, "priority", a.Priority, "pinned", m.PinToMaster)

	// Wait for the outcome. Meanwhile, if no live member can run the
	// assignment any more (the capable ones left), the capability timeout
	// applies again.
	o, msg, ok := e.awaitCapable(ctx, a, ch)
	switch {
	case ok:
		if o.lost != nil {
			// It ran, and died, where the lost member was: the report
			// says so, as it would for a module that finished there.
			env := failed(coordinator.StatusFailed, coordinator.ErrorKindLost, o.lost.Error())
			env.Instance, env.Host = o.lost.Member.Index, o.lost.Member.Host
			return env
		}
		return o.env
	case ctx.Err() != nil || e.coordinatorGone():
		return cancelled()
	default:
		e.log.Error("no capable member left", "module", a.Module, "attempt", a.Attempt, "requires", a.Requires)
		return failed(coordinator.StatusFailed, coordinator.ErrorKindCapability, msg)
	}
}

// coordinatorGone reports whether the master's session has ended, and
// the run was not cancelled for another reason first (Ctrl-C).
func (e *distributedExecutor) coordinatorGone() bool {
	if e.sess.Err() == nil {
		return false
	}
	var in *schedule.Interruption
	return e.runCtx.Err() == nil || errors.As(context.Cause(e.runCtx), &in)
}

// coordinatorLost is the envelope of a's attempt once the master has lost
// its coordinator: what the master's own slot made of it, which the
// master knows; an outcome unknown where another member was running it
// (it may have finished, its result lost with the coordinator); not
// started when no member held it. None is a failure: the run ends
// because of the coordinator, not after a module's failure, and the
// scheduler must see it cancelled before it sees this envelope.
func (e *distributedExecutor) coordinatorLost(n *graph.Node, a coordinator.Assignment, ch <-chan outcome, failed func(coordinator.Status, string, string) coordinator.Envelope) coordinator.Envelope {
	e.loseCoordinator()
	why := fmt.Sprintf("the master lost the coordinator (%v)", e.sess.Err())
	select {
	case o := <-ch: // it has just ended
		if o.lost == nil {
			return o.env
		}
	default:
	}
	if e.router.runsHere(a.Module, a.Attempt) {
		// The master's slot was cancelled with the run, if still
		// running, and delivers what it got either way.
		o := <-ch
		return o.env
	}
	holder, claimed := e.claimHolder(a.Module)
	if !claimed || holder.Index == 0 {
		// Queued, or held ahead by the master's own slot and never
		// started there.
		now := time.Now().UTC()
		return coordinator.Envelope{Module: n.Address, Status: coordinator.StatusCancelled, Attempts: 0, StartedAt: now, EndedAt: now,
			Error: &coordinator.Error{Kind: coordinator.ErrorKindCoordinator, Message: "not started: " + why}}
	}
	env := failed(coordinator.StatusCancelled, coordinator.ErrorKindCoordinator, fmt.Sprintf(
		"outcome unknown: the master lost the coordinator while %s was running on instance %d (%s): %v", a.Module, holder.Index, holder.Host, e.sess.Err()))
	env.Instance, env.Host = holder.Index, holder.Host
	return env
}

// assignment is the assignment of node n's attempt.
func assignment(n *graph.Node, attempt int) coordinator.Assignment {
	m := n.Module
	a := coordinator.Assignment{
		Module:   n.Address,
		Attempt:  attempt,
		Requires: n.Requires,
		Timeout:  m.Timeout,
		Priority: m.Priority,
	}
	for _, dep := range n.Deps {
		a.Dependencies = append(a.Dependencies, dep.Addresses...)
	}
	if m.PinToMaster {
		a = a.PinToMaster()
	}
	return a
}

// awaitCapable waits until a live member can run a. With ch nil it returns
// as soon as one can; with ch set it returns the outcome read from ch, and
// watches membership meanwhile. It fails (ok false, with the capability
// message when that was the cause) when no member could run a for
// capabilityTimeout on end, when ctx is done, or when the session ends.
func (e *distributedExecutor) awaitCapable(ctx context.Context, a coordinator.Assignment, ch <-chan outcome) (outcome, string, bool) {
	var timer *time.Timer
	var timeout <-chan time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		members, changed := e.members.snapshot()
		capable := canRun(a, members)
		if capable && ch == nil {
			return outcome{}, "", true
		}
		switch {
		case capable && timer != nil:
			timer.Stop()
			timer, timeout = nil, nil
		case !capable && timer == nil:
			timer = time.NewTimer(e.capabilityTimeout)
			timeout = timer.C
			if ch == nil {
				e.log.Info("waiting for a capable member", "module", a.Module, "requires", a.Requires, "capability_timeout", e.capabilityTimeout)
			}
		}
		select {
		case o := <-ch:
			return o, "", true
		case <-changed:
		case <-timeout:
			never, left := e.members.absent(e.total)
			return outcome{}, capabilityError(a, members, e.capabilityTimeout, never, left), false
		case <-ctx.Done():
			return outcome{}, "", false
		case <-e.sess.Done():
			return outcome{}, "", false
		}
	}
}

// cancel cancels the run on the coordinator (once) because a running
// attempt's context is done, and returns the reason given.
// cancelledOutcomeWait bounds how long the master waits, once the run is
// cancelled, for the envelope of a module a member was running (members
// stop their modules and publish at once; a member that does not answer
// is reported as the master saw it).
const cancelledOutcomeWait = 5 * time.Second

// claimPoll is how often the master looks, while it waits for a cancelled
// module's outcome, whether the claim went back to the queue; releasedGrace
// is how long a claim must stay gone, without an outcome, for the module
// to count as never started.
const (
	claimPoll     = 50 * time.Millisecond
	releasedGrace = 250 * time.Millisecond
)

// interruptedPrefix starts the reason the master gives the coordinator
// when its run is cancelled (Ctrl-C, SIGTERM, its session lost), rather
// than stopped after a failure: members then stop always_run modules too.
const interruptedPrefix = "the run was cancelled on the master: "

// interruptedRun reports whether a run's cancel reason is an interrupt of
// the master's (see interruptedPrefix).
func interruptedRun(reason string) bool { return strings.HasPrefix(reason, interruptedPrefix) }

// cancelCause is the run's cancel reason as a worker gives it in its
// exit: the why, an interrupt of the master's told as such, without "the
// run was cancelled", which the words around it say already. (Modules'
// errors use moduleCancelCause and notStartedCause.)
func cancelCause(reason string) string {
	if cause, ok := strings.CutPrefix(reason, interruptedPrefix); ok {
		return "the master stopped (" + cause + ")"
	}
	return reason
}

// moduleCancelCause is the run's cancel reason as a module's error gives
// it, in the words of a run on one machine (R4.3): an interrupt of the
// master's is its cause alone ("cancelled while running: interrupt
// signal received"), as the master's own modules give it.
func moduleCancelCause(reason string) string {
	if cause, ok := strings.CutPrefix(reason, interruptedPrefix); ok {
		return cause
	}
	return reason
}

// notStartedCause is why a module the run's cancellation kept from
// starting did not start, in the words of a run on one machine (R4.3):
// "the run was cancelled" for an interrupt of the master's.
func notStartedCause(reason string) string {
	if interruptedRun(reason) {
		return "the run was cancelled"
	}
	return reason
}

// heldReleaser is a session that can give back the claims it took ahead
// before it closes (coordinator/etcd).
type heldReleaser interface{ ReleaseHeld() }

// claimHolder is a session that tells which member holds a claim (both of
// modpipe's coordinators do).
type claimHolder interface {
	ClaimHolder(module string) (coordinator.Member, bool)
}

// claimHolder returns the member holding module's claim; without a
// coordinator that tells, every enqueued module counts as held by an
// unknown member.
func (e *distributedExecutor) claimHolder(module string) (coordinator.Member, bool) {
	if ch, ok := e.sess.(claimHolder); ok {
		return ch.ClaimHolder(module)
	}
	return coordinator.Member{}, true
}

func (e *distributedExecutor) cancel(ctx context.Context) string {
	reason := "the pipeline stopped after a module failed (on_failure = \"stop\")"
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		reason = cause.Error() // the scheduler's: which module's failure
	}
	if e.runCtx.Err() != nil {
		reason = interruptedPrefix + context.Cause(e.runCtx).Error()
	}
	e.cancelOnce.Do(func() {
		if err := e.sess.Err(); err != nil {
			// Nobody to tell: the workers see the master's lease go.
			e.log.Debug("not cancelling the run: the session ended", "reason", reason, "session", err)
			return
		}
		// Bounded by the session too: when etcd is what went, waiting
		// the whole publishTimeout for it would only hold the exit.
		cctx, cancel := sessionContext(e.sess, publishTimeout)
		defer cancel()
		if err := e.sess.Cancel(cctx, reason); err != nil {
			e.log.Error("cancel the run", "reason", reason, "error", err)
			return
		}
		e.log.Warn("run cancelled", "reason", reason)
	})
	return reason
}

// puller is a pull loop: it claims assignments this instance can run, runs
// them with the module runner and publishes their envelopes. The master
// runs Slots of them; so does every worker.
type puller struct {
	sess   coordinator.Session
	graph  *graph.Graph
	runner *moduleRunner
	log    hclog.Logger
	// wanted, when set, tells whether the master still waits for an
	// assignment's outcome (the master's own loop skips the rest).
	wanted func(coordinator.Assignment) bool
	// modules, when set, is the parent of every module's context (the
	// worker cancels it when it stops); modules are also cancelled when
	// the coordinator cancels the run.
	modules context.Context
	// abandon, when set and done once a module ends, means this instance
	// is leaving the run (interrupted): the envelope is not published, so
	// the claim is reported lost and the master re-queues or fails it.
	abandon context.Context
	// local, when set, is also handed every envelope the loop publishes,
	// once the publish has been tried: the master's own outcomes must not
	// depend on a coordinator that may be gone.
	local func(coordinator.Assignment, coordinator.Envelope)
	// worker says the console hears of modules only from this loop.
	worker bool
	// limit is the coordinator's largest envelope (0: none known).
	limit int
}

// envelopeLimit is a coordinator that says how large an envelope it
// takes (both of modpipe's do).
type envelopeLimit interface{ MaxEnvelopeBytes() int }

// limitOf is coord's envelope limit, or 0.
func limitOf(coord coordinator.Coordinator) int {
	if l, ok := coord.(envelopeLimit); ok {
		return l.MaxEnvelopeBytes()
	}
	return 0
}

// fitEnvelope returns env, or when its JSON is larger than limit, the
// failed envelope that says so (R4.2), which Publish would have to send
// instead: decided before the console reports the module, so a worker
// does not show as succeeded what the run records as failed.
func fitEnvelope(env coordinator.Envelope, limit int) coordinator.Envelope {
	small := len(env.Value) + len(env.SkipReason) + 8*1024
	if env.Error != nil {
		small += len(env.Error.Message) + len(env.Error.Tail)
	}
	if limit <= 0 || small <= limit {
		return env // surely fits: no need to encode it twice
	}
	data, err := json.Marshal(env)
	if err != nil || len(data) <= limit {
		return env
	}
	return tooLargeEnvelope(env, len(data), limit)
}

// tooLargeEnvelope is env failed for being size bytes against limit.
func tooLargeEnvelope(env coordinator.Envelope, size, limit int) coordinator.Envelope {
	env.Status = coordinator.StatusFailed
	env.Value = nil
	env.Error = &coordinator.Error{
		Kind: coordinator.ErrorKindEncoding,
		Message: fmt.Sprintf("the result of %s is %d bytes, larger than the coordinator's limit of %d bytes; return a smaller result (write large data to a file or artifact and return its path)",
			env.Module, size, limit),
	}
	return env
}

// loop claims and runs until ctx is done or the session ends.
func (p *puller) loop(ctx context.Context) {
	// A module's Publish runs while the slot claims its next one: a
	// claim the session already holds (prefetched) starts at once rather
	// than after the commit. The loop ends only after its Publishes.
	var pubs sync.WaitGroup
	defer pubs.Wait()
	for {
		c, err := p.sess.Claim(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
				p.log.Debug("claim loop ends", "error", err)
			}
			return
		}
		claimLog(p.log, c)
		p.runClaim(c, &pubs)
	}
}

func (p *puller) runClaim(c coordinator.Claim, pubs *sync.WaitGroup) {
	a := c.Assignment
	if p.wanted != nil && !p.wanted(a) {
		p.publish(c, coordinator.Envelope{
			Module: a.Module, Status: coordinator.StatusCancelled, Attempts: a.Attempt,
			Error:    &coordinator.Error{Kind: coordinator.ErrorKindCancelled, Message: "not started: the master no longer waits for this attempt (the run stopped)"},
			Instance: p.runner.instance, Host: p.runner.hostName,
		})
		return
	}
	n, ok := p.graph.Node(a.Module)
	if !ok {
		now := time.Now().UTC()
		p.publish(c, coordinator.Envelope{
			Module: a.Module, Status: coordinator.StatusFailed, Attempts: a.Attempt,
			Error: &coordinator.Error{Kind: coordinator.ErrorKindConfig, Message: fmt.Sprintf(
				"instance %d has no module %s in its graph: every instance must load the same pipeline file with the same --only/--skip/--category filters", p.runner.instance, a.Module)},
			StartedAt: now, EndedAt: now, Instance: p.runner.instance, Host: p.runner.hostName,
		})
		return
	}
	// A module claimed before the run was cancelled is cancelled with it;
	// one claimed after runs to its end if it is always_run (a stop after
	// a failure still runs those), and is not started otherwise: it was
	// queued before the stop, and no one waits for it.
	select {
	case <-p.sess.Cancelled():
		if !n.Module.AlwaysRun || interruptedRun(p.sess.CancelReason()) {
			now := time.Now().UTC()
			p.publish(c, coordinator.Envelope{
				// 0 attempts: not started. The master takes a 0-attempt
				// result for the attempt it waits for (the attempt it
				// answers would otherwise be a.Attempt-1, and a retry's
				// "not started" answered no one).
				Module: a.Module, Status: coordinator.StatusCancelled, Attempts: 0,
				Error:     &coordinator.Error{Kind: coordinator.ErrorKindCancelled, Message: "not started: " + notStartedCause(p.sess.CancelReason())},
				StartedAt: now, EndedAt: now, Instance: p.runner.instance, Host: p.runner.hostName,
			})
			return
		}
	default:
	}
	parent := p.modules
	if parent == nil {
		parent = context.Background()
	}
	mctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	select {
	case <-p.sess.Cancelled():
	default:
		finished := make(chan struct{})
		var watcher sync.WaitGroup
		watcher.Add(1)
		go func() {
			defer watcher.Done()
			select {
			case <-p.sess.Cancelled():
				// A stop after a failure lets an always_run module finish,
				// as on one machine; Ctrl-C on the master stops it too.
				if reason := p.sess.CancelReason(); !n.Module.AlwaysRun || interruptedRun(reason) {
					cancel(errors.New(moduleCancelCause(reason)))
				}
			case <-finished:
			}
		}()
		defer watcher.Wait()
		defer close(finished)
	}
	// The console hears of the module here: a worker has no scheduler to
	// tell it, and the master's scheduler does not know who claimed what.
	// A worker's runner says the module started (unless it skips it).
	if con := p.runner.console; con != nil && !p.worker {
		con.Claimed(a.Module, p.runner.instance, p.runner.hostName)
	}
	env := p.runner.run(mctx, n, a.Attempt)
	// The envelope leaves this instance: its value is masked as a report
	// would mask it (its error text is already), or a secret only this
	// instance has would reach the master's report and the consoles of
	// instances that read the value in the clear (R7.4).
	env.Value = p.runner.publishMasker.JSON(env.Value)
	env = fitEnvelope(env, p.limit)
	finished := func(env coordinator.Envelope) {
		if con := p.runner.console; con != nil && p.worker {
			// The master decides about a retry as its scheduler does (a
			// failure with attempts left, in a run still going), and may
			// run it elsewhere; a worker says only that one will come.
			retried := env.Status.Failed() && a.Attempt < max(n.Module.Retry.Attempts, 1) && !cancelledSession(p.sess)
			con.AttemptFinished(env, retried)
		}
	}
	if p.abandon != nil && p.abandon.Err() != nil {
		finished(env)
		p.log.Warn("leaving the run: not publishing, the master will see the claim lost", "module", a.Module, "attempt", a.Attempt)
		return
	}
	if a, ok := p.sess.(publishAnnouncer); ok {
		a.Publishing(c) // before the next Claim, which then waits for it
	}
	pubs.Go(func() {
		// A worker tells how the module ended once the publish was
		// tried: a result its ended session could not publish is thrown
		// away (the master took the claim back), and is told as when the
		// session's end cancels the module, not as a success no one
		// will see (this host frozen past heartbeat_timeout while its
		// module ran on).
		sent, ok := p.publish(c, env)
		if err := p.sess.Err(); !ok && err != nil && sent.Status != coordinator.StatusCancelled {
			sent = sessionEndedEnvelope(sent, err)
		}
		finished(sent)
	})
}

// sessionEndedEnvelope is env, which ended after its instance's session
// did, as its instance reports it: cancelled, its result not published.
func sessionEndedEnvelope(env coordinator.Envelope, sessErr error) coordinator.Envelope {
	tail := ""
	if env.Error != nil {
		tail = env.Error.Tail
	}
	env.Status, env.Value = coordinator.StatusCancelled, nil
	env.Error = &coordinator.Error{Kind: coordinator.ErrorKindCancelled, Message: "cancelled while running: " + sessErr.Error(), Tail: tail}
	return env
}

// publish publishes env for c, and hands what it published (or tried
// to) to local. It reports whether the publish went through.
func (p *puller) publish(c coordinator.Claim, env coordinator.Envelope) (coordinator.Envelope, bool) {
	env, ok := publishEnvelope(p.sess, c, env, p.log)
	if p.local != nil {
		p.local(c.Assignment, env)
	}
	return env, ok
}

// cancelledSession reports whether the master cancelled sess's run.
func cancelledSession(sess coordinator.Session) bool {
	select {
	case <-sess.Cancelled():
		return true
	default:
		return false
	}
}

// publishAnnouncer is a session whose Claim calls wait for a Publish
// announced before them (coordinator/etcd): the Publish may claim the
// slot's next module ahead, and a Claim racing it would take a second.
type publishAnnouncer interface {
	Publishing(coordinator.Claim)
}
