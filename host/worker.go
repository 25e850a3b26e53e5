package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/config"
	"github.com/modpipe/modpipe/host/pluginhost"
)

// runWorker is instance d.Instance >= 1 of a distributed run: it joins
// with its capabilities while its plugins start, waits for the master's
// run record, checks that it loaded the same pipeline file, runs from its
// own load when its variables and locals are the master's (else loads the
// file again with the master's), and runs what it claims with Slots pull
// loops until the master ends the run.
func runWorker(ctx context.Context, opts RunOptions, d DistributedOptions, coord coordinator.Coordinator) error {
	hash, err := pipelineHash(opts.File)
	if err != nil {
		return err
	}
	pre := d.Preloaded
	if pre == nil || pre.file != opts.File || pre.instance != d.Instance {
		pre = PreloadInstance(opts.Options, d.Instance)
	}
	block, err := preload(opts.Options, pre)
	if err != nil {
		return err
	}
	facts := pre.facts
	if block != nil {
		facts.Capabilities = normalizeCaps(append(slices.Clip(facts.Capabilities), block.Capabilities...))
	}
	d = d.withDefaults(block)
	log := opts.Logger.Named("distributed").With("run_id", d.RunID, "instance", d.Instance)
	if len(opts.Reports) > 0 {
		log.Warn("--report is ignored on a worker: the master (instance 0) writes the run's reports")
	}

	// The master's values replace this instance's own --var settings.
	if len(opts.Vars) > 0 {
		log.Warn("--var is ignored on a worker: every instance runs with the master's variable values", "given", slices.Sorted(maps.Keys(opts.Vars)))
	}
	own := opts.Options
	own.Vars = nil

	// The plugins start while this instance joins and waits for the
	// master: on a fleet launched at once, plugin start is the longest
	// step before a worker's first claim, and the master needs a while
	// to publish the run anyway. A plugin's sdk.Result calls are served
	// once the session and the graph are known; no module runs before.
	late := &laterResults{}
	early := startEarly(ctx, own, pre, late.call)
	defer early.discard()

	sess, err := coord.Join(ctx, d.joinRequest(facts.Capabilities))
	if err != nil {
		err = joinError(err, d)
		log.Error("join refused", "error", err)
		return err
	}
	defer func() {
		if err := sess.Close(); err != nil {
			log.Warn("leave the run", "error", err)
		}
	}()
	log.Info("worker joined", "host", d.HostName, "capabilities", facts.Capabilities, "slots", d.Slots)

	// Waiting for the run is what offers this worker's slots to the
	// master's first pushes (early waiters), so it starts once the
	// plugins are up: a module pushed to a worker still starting its
	// plugins waits for them while ready workers idle (16 workers and
	// their plugins starting on 2 cores: up to 200 ms).
	started, err := early.wait(ctx)
	if err != nil {
		return &ExitError{Code: ExitInterrupted, Err: fmt.Errorf("instance %d stopped while starting its plugins for run %s: %w", d.Instance, d.RunID, err)}
	}
	log.Info("worker ready: waiting for the master to start the run", "plugins_started", started)

	info, err := waitRunSaying(ctx, sess, log, masterWaitNotice)
	if err != nil {
		if ctx.Err() != nil {
			return &ExitError{Code: ExitInterrupted, Err: fmt.Errorf("instance %d stopped while waiting for the master of run %s to start: %w", d.Instance, d.RunID, context.Cause(ctx))}
		}
		return sessionEndError(err, d, sess.CancelReason())
	}
	if info.Total > 0 && info.Total != d.Total {
		return exitErrorf(ExitInvalid, "instance %d refuses to run: it was started with a total of %d instances, the master of run %s with %d (indexes 0..%d); give every instance of the run the same total",
			d.Instance, d.Total, d.RunID, info.Total, info.Total-1)
	}
	if info.PipelineHash != hash {
		return exitErrorf(ExitInvalid, "instance %d refuses to run: its pipeline file %s (%s) differs from the master's (%s); run every instance of run %s from the same commit and file",
			d.Instance, opts.File, hash, info.PipelineHash, d.RunID)
	}

	// This instance's own load stands when its variables and locals are
	// the master's (the common case: every instance gets the same
	// settings); else the file is evaluated again with the master's.
	l := early.loadedIf(info)
	if l == nil {
		values, err := decodeValues(info.Variables)
		if err != nil {
			return &ExitError{Code: ExitCoordinator, Err: fmt.Errorf("decode the variables the master published for run %s: %w", d.RunID, err)}
		}
		locals, err := decodeValues(info.Locals)
		if err != nil {
			return &ExitError{Code: ExitCoordinator, Err: fmt.Errorf("decode the locals the master published for run %s: %w", d.RunID, err)}
		}
		if l, err = loadAs(own, d.Instance, values, locals); err != nil {
			return err
		}
	}
	results := &sessionSource{ctx: ctx, sess: sess, log: log, cache: map[string]coordinator.Envelope{}}
	late.set(resultFunc(l.graph, results))
	var p *prepared
	set, err := early.take(l)
	switch {
	case err != nil:
		return err
	case set != nil && l == early.l:
		p, err = reportChecked(l, set, early.checked)
	case set != nil:
		p, err = prepareStarted(ctx, l, set)
	default:
		p, err = prepare(ctx, l, late.call)
	}
	if err != nil {
		return err
	}
	defer p.close()

	con := newRunConsole(p, opts.NoProgress, 0)
	con.instance = d.Instance
	defer con.Close()
	runner := newModuleRunner(p, results, con, d.RunID, d.Instance)
	runner.hostName = d.HostName

	// Modules run under modules: cancelled when the master cancels the run,
	// when this process is interrupted, or when the session ends.
	modules, cancelModules := context.WithCancelCause(context.Background())
	defer cancelModules(nil)
	claiming, stopClaiming := context.WithCancel(ctx)
	defer stopClaiming()

	pull := &puller{sess: sess, graph: l.graph, runner: runner, log: log, modules: modules, abandon: ctx, worker: true, limit: limitOf(coord)}
	var wg sync.WaitGroup
	for range d.Slots {
		wg.Add(1)
		go func() { defer wg.Done(); pull.loop(claiming) }()
	}
	stop := func(cause error) {
		stopClaiming()
		cancelModules(cause)
		wg.Wait()
	}

	cancelled := false
	select {
	case <-sess.Cancelled():
		// The pull loops cancel the modules claimed before it and publish
		// their envelopes; this instance stays until the master ends the
		// run, to run the always_run modules a stop after a failure
		// (on_failure = "stop") still sends.
		cancelled = true
		if interruptedRun(sess.CancelReason()) {
			// Ctrl-C on the master stops always_run modules too: none
			// runs after it, as on one machine.
			log.Warn("run cancelled by the master: cancelling this instance's modules, always_run ones too; it stays until the master ends the run", "reason", sess.CancelReason())
		} else {
			log.Warn("run cancelled by the master: cancelling this instance's modules; it stays for always_run modules until the run ends", "reason", sess.CancelReason())
		}
	case <-sess.Done():
	case <-ctx.Done():
	}
	select {
	case <-sess.Done():
		err := sess.Err()
		stop(err)
		log.Info("session ended", "reason", err)
		if finished := (*coordinator.RunFinishedError)(nil); cancelled && errors.As(err, &finished) {
			return &ExitError{Code: ExitFailed, Err: fmt.Errorf("run %s was cancelled by the master: %s", d.RunID, cancelCause(sess.CancelReason()))}
		}
		return sessionEndError(err, d, sess.CancelReason())
	case <-ctx.Done():
		cause := context.Cause(ctx)
		log.Warn("interrupted: leaving the run", "cause", cause)
		stop(fmt.Errorf("instance %d was interrupted: %w", d.Instance, cause))
		return &ExitError{Code: ExitInterrupted, Err: fmt.Errorf("instance %d of run %s was interrupted: %w", d.Instance, d.RunID, cause)}
	}
}

// preload checks the file as this instance loaded it (pre), for what the
// join needs (the distributed block: capabilities and heartbeats). Errors
// that the master's published values will fix (a variable with no value
// on this instance) are left for the real load; any other error is
// reported now, so a broken file never joins.
func preload(opts Options, pre *Preloaded) (*config.Distributed, error) {
	var real hcl.Diagnostics
	for _, d := range pre.diags {
		if d.Severity == hcl.DiagError && !variableValueError(d) {
			real = append(real, d)
		}
	}
	if real.HasErrors() || pre.cfg == nil {
		l := &loaded{opts: opts, cfg: pre.cfg}
		return nil, l.report(real, ExitInvalid)
	}
	return pre.cfg.Distributed, nil
}

// variableValueError reports whether d is about a variable's value, which
// a worker takes from the master rather than from its own settings.
func variableValueError(d *hcl.Diagnostic) bool {
	for _, prefix := range []string{"No value for variable", "Invalid value for variable"} {
		if strings.HasPrefix(d.Summary, prefix) {
			return true
		}
	}
	return false
}

// earlyPlugins are a worker's plugins started from its own load of the
// file, before it knows the master's values. nil when that load had
// errors (a variable only the master gives), and then nothing starts
// early.
type earlyPlugins struct {
	l      *loaded
	vars   json.RawMessage // l's variables and locals as the master encodes them
	locals json.RawMessage
	cancel context.CancelFunc // ends a start still in progress
	done   chan struct{}
	set    *pluginSet
	err    error
	// checked is l checked with set (check), done right after the start
	// so that it overlaps the wait for the master: 16 workers checking
	// 200 modules each at the moment the run began stalled the master's
	// first commits by tens of milliseconds on 2 cores.
	checked checked
	taken   bool
}

// startEarly builds pre's graph and starts its plugins in the background.
func startEarly(ctx context.Context, opts Options, pre *Preloaded, results pluginhost.ResultFunc) *earlyPlugins {
	if pre.cfg == nil || pre.diags.HasErrors() {
		return nil
	}
	l, warnings, err := loadedFrom(opts, pre.facts, pre.cfg, slices.Clip(pre.diags), nil)
	if err != nil {
		return nil
	}
	if len(warnings) > 0 {
		_ = l.report(warnings, ExitOK)
	}
	e := &earlyPlugins{l: l, done: make(chan struct{})}
	// A value that cannot be encoded cannot match the master's either.
	e.vars, _ = encodeValues(variableValues(l.cfg))
	e.locals, _ = encodeValues(l.cfg.Locals)
	sctx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	go func() {
		defer close(e.done)
		e.set, e.err = l.startPlugins(sctx, results)
		if e.err == nil {
			e.checked = check(sctx, l, e.set)
		}
	}()
	return e
}

// wait waits until the early start is over (its plugins started and the
// file checked, or the start failed: take reports that), or ctx ends,
// and reports whether plugins were started early and are up.
func (e *earlyPlugins) wait(ctx context.Context) (started bool, err error) {
	if e == nil {
		return false, nil
	}
	select {
	case <-e.done:
		return e.err == nil, nil
	case <-ctx.Done():
		return false, context.Cause(ctx)
	}
}

// loadedIf returns the early load when its variables and locals are those
// the master published, else nil.
func (e *earlyPlugins) loadedIf(info coordinator.RunInfo) *loaded {
	if e == nil || e.vars == nil || e.locals == nil {
		return nil
	}
	if !bytes.Equal(e.vars, info.Variables) || !bytes.Equal(e.locals, info.Locals) {
		return nil
	}
	return e.l
}

// take waits for the early plugins and hands them over when they are the
// ones l needs (nil, nil when they are not, or nothing started early). A
// start failure of the same plugins is returned as it is: it was
// reported, and starting again would fail alike.
func (e *earlyPlugins) take(l *loaded) (*pluginSet, error) {
	if e == nil {
		return nil, nil
	}
	<-e.done
	same := l == e.l
	if !same {
		want, diags := pluginSpecs(l.cfg, l.modules(), *l.opts.Locator)
		got, _ := pluginSpecs(e.l.cfg, e.l.modules(), *e.l.opts.Locator)
		same = !diags.HasErrors() && reflect.DeepEqual(want, got)
	}
	if !same {
		// The master's values need other plugins: stop these now rather
		// than beside the ones prepare starts.
		e.set.Close()
		e.set = nil
		return nil, nil
	}
	e.taken = true
	return e.set, e.err
}

// discard stops the early plugins unless take handed them over; a
// worker that leaves before it runs anything (its join refused) cancels
// a start still in progress rather than wait for it.
func (e *earlyPlugins) discard() {
	if e == nil {
		return
	}
	if !e.taken {
		e.cancel()
	}
	<-e.done
	e.cancel() // the context only bounds the start
	if !e.taken {
		e.set.Close()
	}
}

// masterWaitNotice is how long a worker waits for its master in silence.
// The wait itself has no limit (a master's job may start late), but a
// mistyped run id or a master that never starts must not look like a
// hang until the CI job's own timeout.
const masterWaitNotice = 10 * time.Second

// waitRunSaying is sess.WaitRun that says so at warn level after notice,
// and every 3 notices after that, while the master has not started the
// run.
func waitRunSaying(ctx context.Context, sess coordinator.Session, log hclog.Logger, notice time.Duration) (coordinator.RunInfo, error) {
	waiting, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		start := time.Now()
		t := time.NewTimer(notice)
		defer t.Stop()
		for {
			select {
			case <-waiting.Done():
				return
			case <-t.C:
				log.Warn("still waiting for the master (instance 0) to start the run: check that its job started, with the same run id and coordinator", "waited", time.Since(start).Round(time.Second))
				t.Reset(3 * notice)
			}
		}
	})
	info, err := sess.WaitRun(ctx)
	stop()
	wg.Wait()
	return info, err
}
