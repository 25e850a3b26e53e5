package host

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/config"
)

// runWorker is instance d.Instance >= 1 of a distributed run: it joins
// with its capabilities, waits for the master's run record, checks that it
// loaded the same pipeline file, re-loads it with the master's variables
// and locals, starts its plugins and runs what it claims with Slots pull
// loops until the master ends the run.
func runWorker(ctx context.Context, opts RunOptions, d DistributedOptions, coord coordinator.Coordinator) error {
	hash, err := pipelineHash(opts.File)
	if err != nil {
		return err
	}
	facts := Facts(opts.Environ, opts.Capabilities, d.Instance)
	block, err := preload(opts.Options, facts)
	if err != nil {
		return err
	}
	if block != nil {
		facts.Capabilities = normalizeCaps(append(facts.Capabilities, block.Capabilities...))
	}
	d = d.withDefaults(block)
	log := opts.Logger.Named("distributed").With("run_id", d.RunID, "instance", d.Instance)

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

	info, err := sess.WaitRun(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return &ExitError{Code: ExitInterrupted, Err: fmt.Errorf("instance %d stopped while waiting for the master of run %s to start: %w", d.Instance, d.RunID, context.Cause(ctx))}
		}
		return sessionEndError(err, d)
	}
	if info.PipelineHash != hash {
		return exitErrorf(ExitInvalid, "instance %d refuses to run: its pipeline file %s (%s) differs from the master's (%s); run every instance of run %s from the same commit and file",
			d.Instance, opts.File, hash, info.PipelineHash, d.RunID)
	}
	values, err := decodeValues(info.Variables)
	if err != nil {
		return &ExitError{Code: ExitCoordinator, Err: fmt.Errorf("decode the variables the master published for run %s: %w", d.RunID, err)}
	}
	locals, err := decodeValues(info.Locals)
	if err != nil {
		return &ExitError{Code: ExitCoordinator, Err: fmt.Errorf("decode the locals the master published for run %s: %w", d.RunID, err)}
	}

	// The master's values replace this instance's own --var settings.
	own := opts.Options
	own.Vars = nil
	l, err := loadAs(own, d.Instance, values, locals)
	if err != nil {
		return err
	}
	results := &sessionSource{ctx: ctx, sess: sess, log: log, cache: map[string]coordinator.Envelope{}}
	p, err := prepare(ctx, l, resultFunc(l.graph, results))
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

	pull := &puller{sess: sess, graph: l.graph, runner: runner, log: log, modules: modules, abandon: ctx, worker: true}
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

	select {
	case <-sess.Cancelled():
		reason := sess.CancelReason()
		log.Warn("run cancelled by the master: cancelling this instance's modules", "reason", reason)
		err := fmt.Errorf("run %s was cancelled by the master: %s", d.RunID, reason)
		// The pull loops publish their modules' cancelled envelopes.
		stop(err)
		return &ExitError{Code: ExitFailed, Err: err}
	case <-sess.Done():
		err := sess.Err()
		stop(err)
		log.Info("session ended", "reason", err)
		return sessionEndError(err, d)
	case <-ctx.Done():
		cause := context.Cause(ctx)
		log.Warn("interrupted: leaving the run", "cause", cause)
		stop(fmt.Errorf("instance %d was interrupted: %w", d.Instance, cause))
		return &ExitError{Code: ExitInterrupted, Err: fmt.Errorf("instance %d of run %s was interrupted: %w", d.Instance, d.RunID, cause)}
	}
}

// preload reads the file once before joining, for what the join needs
// (the distributed block: capabilities and heartbeats). Errors that the
// master's published values will fix (a variable with no value on this
// instance) are left for the real load; any other error is reported now,
// so a broken file never joins.
func preload(opts Options, facts config.Facts) (*config.Distributed, error) {
	cfg, diags := config.Load(opts.File, config.Options{Vars: opts.Vars, Environ: opts.Environ, Facts: facts})
	var real hcl.Diagnostics
	for _, d := range diags {
		if d.Severity == hcl.DiagError && !variableValueError(d) {
			real = append(real, d)
		}
	}
	if real.HasErrors() || cfg == nil {
		l := &loaded{opts: opts, cfg: cfg}
		return nil, l.report(real, ExitInvalid)
	}
	return cfg.Distributed, nil
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
