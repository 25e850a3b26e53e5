package host

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/config"
	"github.com/modpipe/modpipe/host/graph"
	"github.com/modpipe/modpipe/host/hclscan"
	"github.com/modpipe/modpipe/host/report"
	"github.com/modpipe/modpipe/host/schedule"
	"github.com/modpipe/modpipe/host/ui"
)

// RunOptions add what only `host run` needs to Options.
type RunOptions struct {
	Options
	// Reports are files to write at the end (--report FORMAT=PATH).
	Reports []report.Spec
	// NoProgress turns the live view off on a terminal (--no-progress):
	// plain lines instead.
	NoProgress bool
	// Began is when the command began, the start of a run that could
	// not start in its reports; zero means when Run or RunDistributed
	// was called.
	Began time.Time
}

func (o *RunOptions) defaults() {
	o.Options.defaults()
	if o.Began.IsZero() {
		o.Began = time.Now()
	}
}

// lateSource lets the plugins' result service start before the scheduler
// exists: the scheduler is built from the prepared pipeline, which needs
// the plugins running first.
type lateSource struct {
	mu  sync.RWMutex
	src envelopeSource
}

func (l *lateSource) set(s envelopeSource) {
	l.mu.Lock()
	l.src = s
	l.mu.Unlock()
}

func (l *lateSource) Envelope(addr string) (coordinator.Envelope, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.src == nil {
		return coordinator.Envelope{}, false
	}
	return l.src.Envelope(addr)
}

// Run runs the pipeline on this machine (`host run`). It returns the run
// as reported (nil when nothing ran) and an error carrying the exit code
// when the pipeline did not succeed.
func Run(ctx context.Context, opts RunOptions) (*report.Run, error) {
	opts.defaults()
	opts.readSource()
	// The plugins' processes start while the file loads.
	pre := prestartPlugins(ctx, opts.Options)
	begin := time.Now()
	l, err := loadChecking(ctx, opts.Options, pre)
	if err != nil {
		pre.close()
		return nil, notStarted(opts, err)
	}
	opts.Logger.Info("pipeline loaded", "file", opts.File, "modules", len(l.graph.Nodes()), "took", time.Since(begin))
	src := &lateSource{}
	p, err := prepareFrom(ctx, l, resultFunc(l.graph, src), pre)
	if err != nil {
		return nil, notStarted(opts, err)
	}
	defer p.close()
	opts.Logger.Info("plugins ready and modules checked", "plugins", len(p.plugins.Names()), "took", time.Since(begin))

	runID := opts.RunID
	if runID == "" {
		runID = localRunID(opts.Environ)
	}
	con := newRunConsole(p, opts.NoProgress, len(l.graph.Nodes()))
	defer con.Close()
	runner := newModuleRunner(p, src, con, runID, 0)
	sched, err := newScheduler(p, runner, opts.Parallelism, con)
	if err != nil {
		return nil, err
	}
	src.set(sched)

	started := time.Now().UTC()
	res := sched.Run(ctx)
	ended := time.Now().UTC()
	run, err := finishRun(p, con, runID, opts.Reports, started, ended, res, nil)
	if run != nil {
		opts.Logger.Info("run finished", "run_id", runID, "status", run.Status, "modules", len(run.Modules), "took", ended.Sub(started))
	}
	return run, err
}

// pipelineName is the pipeline's name in reports: its pipeline block's,
// else its file's name.
func pipelineName(name, file string) string {
	if name != "" {
		return name
	}
	return filepath.Base(file)
}

// declaredName is the name the file's pipeline block gives itself when it
// is a plain string, else "": for the reports of a run that could not
// start, whose file may not load, so that a CI's test history keeps one
// name for the pipeline whether its runs started or not. Only the
// pipeline block is parsed.
func declaredName(src []byte, file string) string {
	if len(src) > 64<<20 {
		return ""
	}
	blocks, _ := hclscan.Blocks(src)
	for _, b := range blocks {
		if b.Type != "pipeline" {
			continue
		}
		f, diags := hclsyntax.ParseConfig(src[b.Start:b.End], file, hcl.InitialPos)
		if diags.HasErrors() {
			return ""
		}
		body, ok := f.Body.(*hclsyntax.Body)
		if !ok || len(body.Blocks) != 1 {
			return ""
		}
		a := body.Blocks[0].Body.Attributes["name"]
		if a == nil {
			return ""
		}
		v, d := a.Expr.Value(nil)
		if d.HasErrors() || v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
			return ""
		}
		return v.AsString()
	}
	return ""
}

// notStarted writes the requested reports of a run that could not start
// (status invalid for errors in the file, else error, with err's message)
// so a CI step that reads them finds why, and returns err.
func notStarted(opts RunOptions, err error) error {
	env := envMap(opts.Environ)
	github := env["GITHUB_ACTIONS"] == "true"
	if len(opts.Reports) == 0 && !github {
		return err
	}
	ee, ok := errors.AsType[*ExitError](err)
	status := report.RunError
	kind := coordinator.ErrorKindPlugin
	switch {
	case ok && ee.Code == ExitInvalid:
		status, kind = report.RunInvalid, coordinator.ErrorKindConfig
	case ok && ee.Code == ExitCoordinator:
		kind = coordinator.ErrorKindCoordinator
	case ok && ee.Code == ExitInterrupted:
		// Stopped by the user before anything ran: the reports say so,
		// as they do for a run cancelled later, but it is no failure to
		// annotate.
		status, kind, github = report.RunCancelled, coordinator.ErrorKindCancelled, false
	}
	now := time.Now().UTC()
	began := now
	if !opts.Began.IsZero() && opts.Began.Before(now) {
		began = opts.Began.UTC()
	}
	runID := opts.RunID
	if runID == "" {
		runID = localRunID(opts.Environ)
	}
	src := opts.source
	if src == nil {
		// A distributed run's command reads the file for each load.
		src, _ = config.ReadFile(opts.File)
	}
	run := &report.Run{Pipeline: pipelineName(declaredName(src, opts.File), opts.File), RunID: runID, Status: status, StartedAt: began, EndedAt: now, DurationMS: now.Sub(began).Milliseconds(),
		Modules: []coordinator.Envelope{}, Error: &coordinator.Error{Kind: kind, Message: err.Error()}}
	for _, spec := range opts.Reports {
		if werr := report.Write(spec, run); werr != nil {
			fmt.Fprintf(opts.Stderr, "Error: %v\n", werr)
		}
	}
	if github {
		// The job's page shows annotations and the step summary, not
		// the log: the reason goes there as it would for a failed run.
		// An invalid file gets an annotation per error at its line,
		// which GitHub shows on the file itself.
		if inv, ok := errors.AsType[*invalidFileError](err); ok {
			for i, pe := range inv.errs {
				if i == maxListedErrors {
					break
				}
				fmt.Fprintln(opts.Stdout, ui.GitHubFileAnnotation("error", ui.WorkspacePath(env["GITHUB_WORKSPACE"], pe.File), pe.Line, pe.Column, pe.Summary, pe.Detail))
			}
		} else {
			fmt.Fprintln(opts.Stdout, ui.GitHubAnnotation("error", fmt.Sprintf("%s %s", opts.File, status), err.Error()))
		}
		if path := env["GITHUB_STEP_SUMMARY"]; path != "" {
			if werr := report.AppendMarkdown(path, run); werr != nil {
				fmt.Fprintf(opts.Stderr, "Error: %v\n", werr)
			}
		}
	}
	return err
}

// finishRun builds the run's report from the scheduler's envelopes, prints
// the summary, writes the report files and returns the exit error. It is
// the tail every mode shares (single machine and distributed master), so
// their summaries are built the same way from envelopes alone (R4.3).
// Every module has ended by then: it stops p's plugins too, while the
// summary and the reports are written, since stopping waits for each
// plugin process to exit and sweeps what it left.
func finishRun(p *prepared, con *console, runID string, reports []report.Spec, started, ended time.Time, res *schedule.Result, runErr *coordinator.Error) (*report.Run, error) {
	l, opts := p.loaded, p.opts
	run := &report.Run{
		Pipeline:   pipelineName(p.cfg.Name, p.cfg.Filename),
		RunID:      runID,
		StartedAt:  started,
		EndedAt:    ended,
		DurationMS: ended.Sub(started).Milliseconds(),
		Modules:    res.Envelopes,
	}
	// What the reports need of the plugins (names, versions) goes into
	// the envelopes before they stop.
	fillPlugin(l.graph, p, run.Modules)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		p.close()
	}()
	defer func() { <-stopped }()
	switch {
	case runErr != nil:
		// The run could not finish (a fleet master's coordinator went
		// away): the modules' outcomes after that are not theirs, and the
		// report says what ended it.
		run.Status, run.Error = report.RunError, runErr
	case res.Cancelled:
		run.Status = report.RunCancelled
	case res.Succeeded:
		run.Status = report.RunSucceeded
	default:
		run.Status = report.RunFailed
	}

	// Reports carry no secret (R7.4); the run returned keeps the values
	// for callers that need them.
	masked := run.Masked(pipelineMasker(p.cfg, opts.Environ))
	_ = con.Close() // the live view ends before the summary
	con.BeginSummary()
	fmt.Fprintln(con)
	_ = report.WriteSummary(con, masked)
	if line := capabilitySkipsLine(p, res.Envelopes); line != "" {
		fmt.Fprintln(con, pipelineMasker(p.cfg, opts.Environ).String(line))
	}
	var errs []error
	if path := envMap(opts.Environ)["GITHUB_STEP_SUMMARY"]; path != "" && con.style == ui.StyleGitHub {
		if err := report.AppendMarkdown(path, masked); err != nil {
			errs = append(errs, err)
			fmt.Fprintf(opts.Stderr, "Error: %v\n", err)
		}
	}
	for _, spec := range reports {
		if err := report.Write(spec, masked); err != nil {
			errs = append(errs, err)
			fmt.Fprintf(opts.Stderr, "Error: %v\n", err)
		}
	}
	switch run.Status {
	case report.RunCancelled:
		return run, &ExitError{Code: ExitInterrupted, Reported: true, Err: errors.New("the run was cancelled")} // the summary says so
	case report.RunFailed:
		return run, &ExitError{Code: ExitFailed, Reported: true, Err: errors.New("the pipeline failed")} // the summary says so
	}
	if len(errs) > 0 {
		return run, &ExitError{Code: ExitFailed, Reported: true, Err: errors.Join(errs...)}
	}
	return run, nil
}

// tasks turns the graph's nodes into scheduler tasks.
func tasks(g *graph.Graph) []*schedule.Task {
	nodes := g.Nodes()
	out := make([]*schedule.Task, 0, len(nodes))
	for _, n := range nodes {
		m := n.Module
		t := &schedule.Task{
			ID:            n.Address,
			Priority:      m.Priority,
			Order:         n.Index,
			Exclusive:     m.Exclusive,
			Keys:          m.NotInParallel,
			Limits:        m.Limits,
			AlwaysRun:     m.AlwaysRun,
			IgnoreFailure: m.IgnoreFailure,
			Attempts:      max(m.Retry.Attempts, 1),
			Backoff:       m.Retry.Backoff,
			Data:          n,
		}
		for _, d := range n.Deps {
			t.Deps = append(t.Deps, d.Addresses)
		}
		out = append(out, t)
	}
	return out
}

func limits(p *prepared) map[string]int {
	m := make(map[string]int, len(p.cfg.Limits))
	for name, l := range p.cfg.Limits {
		m[name] = l.Max
	}
	return m
}

// newScheduler builds the one scheduler every mode runs, over the
// prepared graph, with the executor that decides where modules run.
func newScheduler(p *prepared, exec schedule.Executor, parallelism int, con *console) (*schedule.Scheduler, error) {
	sched, err := schedule.New(tasks(p.graph), exec, schedule.Options{
		Parallelism: parallelism,
		Limits:      limits(p),
		OnFailure:   onFailure(p.cfg.OnFailure),
		Logger:      p.opts.Logger.Named("schedule"),
		Observer:    con,
	})
	if err != nil {
		return nil, exitErrorf(ExitInvalid, "schedule %s: %v", p.opts.File, err)
	}
	return sched, nil
}

func onFailure(s string) schedule.OnFailure {
	if s == "continue" {
		return schedule.Continue
	}
	return schedule.Stop
}

// fillPlugin names the plugin on envelopes the scheduler made itself
// (skipped, never started), so every envelope says which plugin it belongs to.
func fillPlugin(g *graph.Graph, p *prepared, envs []coordinator.Envelope) {
	for i := range envs {
		e := &envs[i]
		if e.Plugin != "" {
			continue
		}
		n, ok := g.Node(e.Module)
		if !ok {
			continue
		}
		if pl, ok := p.plugins.Get(n.Module.Plugin); ok {
			info := pl.Info()
			e.Plugin, e.PluginVersion = info.Name, info.Version
		}
		if k := p.kinds[n.Module.Name]; k != nil && e.Type == "" {
			e.Type = k.ResultType
		}
	}
}

// localRunID names a single-machine run: the CI's run when there is one,
// else the start time.
func localRunID(environ []string) string {
	env := envMap(environ)
	if id := env["MODPIPE_RUN_ID"]; id != "" {
		return id
	}
	if id := ciRunID(env); id != "" {
		return id
	}
	return "local-" + time.Now().UTC().Format("20060102T150405Z")
}

// ciRunID derives a run id from the CI system's own run identifiers, so
// every job of one CI run agrees on it without being told (R5.2).
func ciRunID(env map[string]string) string {
	switch {
	case env["GITHUB_RUN_ID"] != "":
		attempt := env["GITHUB_RUN_ATTEMPT"]
		if attempt == "" {
			attempt = "1"
		}
		return env["GITHUB_RUN_ID"] + "-" + attempt
	case env["CI_PIPELINE_ID"] != "":
		return env["CI_PIPELINE_ID"]
	case env["BUILDKITE_BUILD_ID"] != "":
		return env["BUILDKITE_BUILD_ID"]
	case env["CIRCLE_WORKFLOW_ID"] != "":
		return env["CIRCLE_WORKFLOW_ID"]
	}
	return ""
}
