package host

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/config"
	"github.com/modpipe/modpipe/host/graph"
	"github.com/modpipe/modpipe/host/pluginhost"
	"github.com/modpipe/modpipe/host/schedule"
	"github.com/modpipe/modpipe/host/secrets"
)

// envelopeSource gives the envelope of a finished module. The scheduler
// is one in single-machine mode; the coordinator is one on a worker.
type envelopeSource interface {
	Envelope(address string) (coordinator.Envelope, bool)
}

// moduleRunner runs one module attempt on this instance: it evaluates the
// module's run_if and requirements and its body with the results it refers
// to, calls the plugin, and turns what happened into an envelope. The
// local executor uses it directly; a distributed worker will use it for
// the assignments it claims.
type moduleRunner struct {
	p        *prepared
	results  envelopeSource
	console  *console
	logger   hclog.Logger
	runID    string
	instance int
	hostName string
	// masker hides the pipeline's secrets in output lines and in the
	// envelope's error text before either leaves this instance (R7.4).
	masker *secrets.Masker
	// publishMasker hides, in what a fleet instance publishes, the
	// secrets that come from this instance's environment: the master
	// masks reports with its own secrets only, and the instances that
	// read a result may not have them either.
	publishMasker *secrets.Masker
	values        *moduleValues
}

func newModuleRunner(p *prepared, results envelopeSource, con *console, runID string, instance int) *moduleRunner {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	return &moduleRunner{p: p, results: results, console: con, logger: p.opts.Logger, runID: runID, instance: instance, hostName: host, masker: pipelineMasker(p.cfg, p.opts.Environ), publishMasker: environmentMasker(p.cfg, p.opts.Environ), values: newModuleValues(p.graph)}
}

// Execute implements schedule.Executor.
func (r *moduleRunner) Execute(ctx context.Context, t *schedule.Task, attempt int) coordinator.Envelope {
	return r.run(ctx, t.Data.(*graph.Node), attempt)
}

func (r *moduleRunner) run(ctx context.Context, n *graph.Node, attempt int) coordinator.Envelope {
	m := n.Module
	kind := r.p.kinds[m.Name]
	pl, _ := r.p.plugins.Get(m.Plugin)
	info := pl.Info()
	env := coordinator.Envelope{
		Module:        n.Address,
		Type:          kind.ResultType,
		Attempts:      attempt,
		StartedAt:     time.Now().UTC(),
		Instance:      r.instance,
		Host:          r.hostName,
		Plugin:        info.Name,
		PluginVersion: info.Version,
	}
	finish := func(status coordinator.Status, e *coordinator.Error) coordinator.Envelope {
		env.Status = status
		if e != nil {
			masked := *e
			masked.Message, masked.Tail = r.masker.String(e.Message), r.masker.String(e.Tail)
			e = &masked
		}
		env.Error = e
		env.SkipReason = r.masker.String(env.SkipReason)
		env.EndedAt = time.Now().UTC()
		env.DurationMS = env.EndedAt.Sub(env.StartedAt).Milliseconds()
		return env
	}

	if ctx.Err() != nil {
		// Cancelled before it began (a fleet instance claims its next
		// module ahead, while one still runs): this attempt was never
		// made, and the report says so rather than "cancelled while
		// running".
		env.Attempts = attempt - 1
		return finish(coordinator.StatusCancelled, &coordinator.Error{Kind: coordinator.ErrorKindCancelled, Message: "not started: " + context.Cause(ctx).Error()})
	}
	if missing := coordinator.MissingCapabilities(n.Requires, r.p.facts.Capabilities); len(missing) > 0 {
		env.SkipReason = capabilitySkipReason(missing, r.p.facts.Capabilities)
		return finish(coordinator.StatusSkipped, nil)
	}

	// A config already evaluated when the run was prepared is the same
	// now (see prepared.staticConfigs); with no run_if to evaluate either,
	// the module needs no EvalContext at all.
	cfgJSON, static := r.p.staticConfigs[n.Address]
	if !static || m.RunIf != nil {
		scope, err := r.scope(n)
		if err != nil {
			return finish(coordinator.StatusFailed, &coordinator.Error{Kind: coordinator.ErrorKindConfig, Message: err.Error()})
		}
		evalCtx := r.p.cfg.EvalContext(scope)
		ok, diags := m.EvalRunIf(evalCtx)
		if diags.HasErrors() {
			return finish(coordinator.StatusFailed, configError("evaluate run_if: ", diags, r.unfinishedHint(n, diags)))
		}
		if !ok {
			env.SkipReason = "run_if is false: " + config.RunIfSource(m)
			return finish(coordinator.StatusSkipped, nil)
		}
		if !static {
			cfgJSON, diags = m.EvalConfig(evalCtx, kind)
			if diags.HasErrors() {
				return finish(coordinator.StatusFailed, configError("evaluate configuration: ", diags, r.unfinishedHint(n, diags)))
			}
		}
	}

	if r.console != nil && r.console.instance >= 0 {
		r.console.Started(n.Address, attempt, r.instance, r.hostName)
	}
	req := pluginhost.Request{
		Module:   n.Address,
		Kind:     kind.Name,
		Config:   cfgJSON,
		Attempt:  attempt,
		Instance: r.instance,
		RunID:    r.runID,
	}
	if n.Instance != nil {
		req.Matrix = n.Instance.Values
	}
	for _, d := range n.Deps {
		req.Deps = append(req.Deps, d.Addresses...)
	}

	runCtx := ctx
	if m.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, m.Timeout)
		defer cancel()
	}
	if r.logger.IsDebug() { // the arguments alone cost allocations per module
		r.logger.Debug("module start", "module", n.Address, "attempt", attempt, "plugin", m.Plugin)
	}
	// One value for both, so that the callback costs one allocation.
	out := struct {
		pieces pieceMasker
		last   lastLines
	}{pieces: pieceMasker{masker: r.masker}}
	resp, err := pl.Execute(runCtx, req, func(l pluginhost.Line) {
		// Lines arrive whole (the plugins split output at newlines), so a
		// secret written in pieces is whole again here; a line too long
		// for one message comes in pieces, which pieces masks together.
		if text, ok := out.pieces.mask(l); ok {
			r.console.Line(n.Address, l.Stream, text)
			out.last.add(text)
		}
	})
	// A line whose last piece never came (the plugin died) ends here.
	out.pieces.flush(func(stream, text string) { r.console.Line(n.Address, stream, text); out.last.add(text) })
	// A module stopped by a cancellation or its timeout still answers:
	// its last lines say where it was when it was stopped. One whose
	// plugin sent no answer (killed as hung, or it broke the protocol)
	// gets the last lines the host saw it write instead.
	tail := ""
	if resp.Error != nil {
		tail = resp.Error.Tail
	}
	if tail == "" && err != nil {
		tail = out.last.String()
	}
	// ... and may send the partial result it had, which is kept as a
	// failure's is (the sdk sends a value returned with the error).
	keepPartial := func() {
		if len(resp.Value) > 0 {
			env.Value = resp.Value
			if resp.Type != "" {
				env.Type = resp.Type
			}
		}
	}
	if err != nil {
		var crash *pluginhost.CrashError
		switch {
		case ctx.Err() != nil:
			keepPartial()
			msg := "cancelled while running: " + context.Cause(ctx).Error()
			if errors.Is(err, pluginhost.ErrKilledAsHung) {
				msg += fmt.Sprintf("; it did not stop within the grace period (--grace), so its plugin %q was killed as hung", m.Plugin)
			}
			return finish(coordinator.StatusCancelled, &coordinator.Error{Kind: coordinator.ErrorKindCancelled, Message: msg, Tail: tail})
		case m.Timeout > 0 && (errors.Is(err, context.DeadlineExceeded) || errors.Is(runCtx.Err(), context.DeadlineExceeded)):
			keepPartial()
			msg := fmt.Sprintf("timed out after %s", m.Timeout)
			if errors.Is(err, pluginhost.ErrKilledAsHung) {
				// Why it ended well past its timeout.
				msg += fmt.Sprintf(" and did not stop within the grace period (--grace), so its plugin %q was killed as hung", m.Plugin)
			}
			return finish(coordinator.StatusTimedOut, &coordinator.Error{Kind: coordinator.ErrorKindTimeout, Message: msg, Tail: tail})
		case errors.As(err, &crash):
			return finish(coordinator.StatusFailed, &coordinator.Error{Kind: coordinator.ErrorKindCrash, Message: crash.Error(), Tail: crash.StderrTail})
		default:
			// pluginhost's own error types name the plugin already.
			msg := err.Error()
			var pe *pluginhost.ProtocolError
			var se *pluginhost.StartError
			if !errors.As(err, &pe) && !errors.As(err, &se) {
				msg = fmt.Sprintf("plugin %q: %s", m.Plugin, msg)
			}
			return finish(coordinator.StatusFailed, &coordinator.Error{Kind: coordinator.ErrorKindPlugin, Message: msg})
		}
	}
	// A plugin that honours cancellation may still answer with the failure
	// the cancellation caused (a killed command): what ended it was the
	// timeout or the run being cancelled, and that is what to report;
	// unless the plugin says the module ended before it saw the
	// cancellation (two modules failing at once under on_failure =
	// "stop"): that failure is the module's own.
	if !resp.Succeeded && !resp.FinishedUncancelled {
		switch {
		case ctx.Err() != nil:
			keepPartial()
			return finish(coordinator.StatusCancelled, &coordinator.Error{Kind: coordinator.ErrorKindCancelled, Message: "cancelled while running: " + context.Cause(ctx).Error(), Tail: tail})
		case m.Timeout > 0 && errors.Is(runCtx.Err(), context.DeadlineExceeded):
			keepPartial()
			return finish(coordinator.StatusTimedOut, &coordinator.Error{Kind: coordinator.ErrorKindTimeout, Message: fmt.Sprintf("timed out after %s", m.Timeout), Tail: tail})
		}
	}
	if resp.Type != "" {
		env.Type = resp.Type
	}
	env.Value = resp.Value
	if resp.Succeeded {
		return finish(coordinator.StatusSucceeded, nil)
	}
	e := resp.Error
	if e == nil {
		e = &coordinator.Error{Kind: coordinator.ErrorKindModule, Message: "the module failed without saying why"}
	}
	if e.Kind == coordinator.ErrorKindConfig && !static {
		e = r.placeConfigError(ctx, n, pl, kind.Name, cfgJSON, e)
	}
	return finish(coordinator.StatusFailed, e)
}

// placeConfigError turns a plugin's refusal of a config known only at
// run time into errors at their file:line:col, as validate gives them
// for static configs: the Execute answer carries only a message, so the
// plugin's Validate is asked for the attributes (one more call, on this
// failure only). e is kept when Validate does not place anything.
func (r *moduleRunner) placeConfigError(ctx context.Context, n *graph.Node, pl *pluginhost.Plugin, kind string, cfgJSON []byte, e *coordinator.Error) *coordinator.Error {
	// The run may be stopping because of this very failure (on_failure
	// = "stop"): the question is short and still worth asking.
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	pds, err := pl.Validate(vctx, kind, cfgJSON)
	if err != nil || len(pds) == 0 {
		return e
	}
	var diags hcl.Diagnostics
	for _, pd := range pds {
		diags = append(diags, pluginDiagnostic(n, pd))
	}
	if !diags.HasErrors() {
		return e
	}
	placed := &coordinator.Error{Kind: e.Kind, Message: diagsText(diags), Tail: e.Tail}
	placed.File, placed.Line, placed.Column = firstPlace(diags)
	return placed
}

// scope builds the values the module's expressions can see: the results
// of the modules it depends on, its matrix values and this instance's facts.
func (r *moduleRunner) scope(n *graph.Node) (config.Scope, error) {
	s := config.Scope{Facts: r.p.facts, Modules: map[string]cty.Value{}}
	if n.Instance != nil {
		s.Matrix = n.Instance.Values
	}
	for _, d := range n.Deps {
		// Only a module the body or run_if refers to needs a value: a
		// depends_on edge is ordering alone, and turning every
		// dependency's result into a cty value was most of the host's
		// CPU per module on large DAGs (bench: no-op DAG profile).
		if !slices.Contains(n.Module.References, d.Module) {
			continue
		}
		var deps []*graph.Node
		for _, a := range d.Addresses {
			if dn, ok := r.p.graph.Node(a); ok {
				deps = append(deps, dn)
			}
		}
		if len(deps) == 1 && deps[0].Instance == nil {
			env, ok := r.results.Envelope(deps[0].Address)
			if !ok {
				return s, fmt.Errorf("result of %s is not available", deps[0].Address)
			}
			v, err := r.values.value(deps[0].Address, &env)
			if err != nil {
				return s, fmt.Errorf("result of %s: %w", deps[0].Address, err)
			}
			s.Modules[d.Module] = v
			continue
		}
		inst := map[string]cty.Value{}
		for _, dn := range deps {
			env, ok := r.results.Envelope(dn.Address)
			if !ok {
				return s, fmt.Errorf("result of %s is not available", dn.Address)
			}
			v, err := r.values.value(dn.Address, &env)
			if err != nil {
				return s, fmt.Errorf("result of %s: %w", dn.Address, err)
			}
			inst[dn.Instance.Key] = v
		}
		s.Modules[d.Module] = config.MatrixValue(inst)
	}
	return s, nil
}

// resultFunc serves sdk.Result calls: a running module may read the
// envelope of any module it depends on, and nothing else.
func resultFunc(g *graph.Graph, results envelopeSource) pluginhost.ResultFunc {
	return func(ctx context.Context, caller, dep string) (*coordinator.Envelope, error) {
		n, ok := g.Node(caller)
		if !ok {
			return nil, fmt.Errorf("unknown calling module %q", caller)
		}
		for _, d := range n.Deps {
			for _, a := range d.Addresses {
				if a == dep {
					env, ok := results.Envelope(a)
					if !ok {
						return nil, fmt.Errorf("result of %s is not available yet", dep)
					}
					return &env, nil
				}
			}
			if d.Module == dep && len(d.Addresses) > 1 {
				return nil, fmt.Errorf("%s is a matrix module: ask for one instance, one of %s", dep, strings.Join(d.Addresses, ", "))
			}
		}
		return nil, fmt.Errorf("module %s does not depend on %s: add module.%s to its depends_on to read its result", caller, dep, strings.SplitN(dep, "[", 2)[0])
	}
}

// unfinishedHint explains an evaluation error of a module that reads the
// result of a dependency that did not succeed (always_run, a matrix with
// skipped instances, ignore_failure): that result's value is null, which
// HCL reports only as "Attempt to get attribute from null value". It
// names the dependencies the errors can come from: every one that did not
// succeed when an error is about a null value, else those the failing
// expressions read; none when the errors have nothing to do with them (a
// wrong key on another module's result).
func (r *moduleRunner) unfinishedHint(n *graph.Node, diags hcl.Diagnostics) string {
	null := false
	read := map[string]bool{} // modules the failing expressions read
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		if mentionsNull(d) {
			null = true
		}
		if d.Expression != nil {
			for _, tr := range d.Expression.Variables() {
				if tr.RootName() != "module" || len(tr) < 2 {
					continue
				}
				if a, ok := tr[1].(hcl.TraverseAttr); ok {
					read[a.Name] = true
				}
			}
		}
	}
	var notes []string
	for _, d := range n.Deps {
		if !slices.Contains(n.Module.References, d.Module) {
			continue // depends_on alone: its value is not read
		}
		if !null && !read[d.Module] {
			continue
		}
		for _, addr := range d.Addresses {
			env, ok := r.results.Envelope(addr)
			if !ok || env.Status == coordinator.StatusSucceeded {
				continue
			}
			note := fmt.Sprintf("%s %s", addr, env.Status)
			if env.SkipReason != "" {
				note += " (" + env.SkipReason + ")"
			}
			notes = append(notes, note)
		}
	}
	if len(notes) == 0 {
		return ""
	}
	return fmt.Sprintf("\n(a dependency it reads did not succeed, so its value is null: %s; test module.NAME.status == \"succeeded\" before using its value)", strings.Join(notes, ", "))
}

// mentionsNull reports whether d is HCL's or a function's complaint about
// a null value ("Attempt to get attribute from null value", "argument
// must not be null", "The expression result is null").
func mentionsNull(d *hcl.Diagnostic) bool {
	for _, s := range []string{d.Summary, d.Detail} {
		for _, w := range strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) }) {
			if w == "null" {
				return true
			}
		}
	}
	return false
}

// configError is the error of a module whose run_if or configuration
// could not be evaluated: the diagnostics' text after what, then hint,
// placed at the first error that has a place in the file.
func configError(what string, diags hcl.Diagnostics, hint string) *coordinator.Error {
	e := &coordinator.Error{Kind: coordinator.ErrorKindConfig, Message: what + diagsText(diags) + hint}
	e.File, e.Line, e.Column = firstPlace(diags)
	return e
}

// firstPlace is where the first error of diags that has a place is.
func firstPlace(diags hcl.Diagnostics) (file string, line, column int) {
	for _, d := range diags.Errs() {
		if hd, ok := d.(*hcl.Diagnostic); ok && hd.Subject != nil {
			return hd.Subject.Filename, hd.Subject.Start.Line, hd.Subject.Start.Column
		}
	}
	return "", 0, 0
}

// diagsText is diags' errors on one line each, each "file:line:col:
// summary; detail": the place as every other error of the file gives it.
func diagsText(diags hcl.Diagnostics) string {
	var lines []string
	for _, d := range diags.Errs() {
		var b strings.Builder
		if hd, ok := d.(*hcl.Diagnostic); ok {
			if hd.Subject != nil {
				fmt.Fprintf(&b, "%s:%d:%d: ", hd.Subject.Filename, hd.Subject.Start.Line, hd.Subject.Start.Column)
			}
			b.WriteString(hd.Summary)
			if hd.Detail != "" {
				b.WriteString("; " + hd.Detail)
			}
		} else {
			b.WriteString(d.Error())
		}
		lines = append(lines, b.String())
	}
	return strings.Join(lines, "\n")
}

// lastLines keeps the last lastLinesKept output lines of a module, for
// the tail of an error its plugin gave none for.
type lastLines struct {
	lines *[lastLinesKept]string // made for the first line
	n     int                    // lines added
}

// lastLinesKept is how many lines lastLines keeps: as many as the sdk's
// error tail.
const lastLinesKept = 20

func (l *lastLines) add(s string) {
	if l.lines == nil {
		l.lines = new([lastLinesKept]string)
	}
	l.lines[l.n%lastLinesKept] = s
	l.n++
}

// String returns the kept lines, oldest first, one per line.
func (l *lastLines) String() string {
	first := max(0, l.n-lastLinesKept)
	var b strings.Builder
	for i := first; i < l.n; i++ {
		if i > first {
			b.WriteByte('\n')
		}
		b.WriteString(l.lines[i%lastLinesKept])
	}
	return b.String()
}

// pieceMasker masks one module's output lines. A line too long for one
// message comes in pieces (pluginhost.Line.Continued), and a secret may
// be cut in two between them: the end of a piece that such a secret may
// start in waits, per stream, to be masked with the next piece. Whole
// lines, the usual case, pass straight through.
type pieceMasker struct {
	masker *secrets.Masker
	held   map[string]string
}

// mask returns l's text masked and whether there is any to print now.
func (p *pieceMasker) mask(l pluginhost.Line) (string, bool) {
	text := l.Text
	if held, ok := p.held[l.Stream]; ok {
		text = held + text
		delete(p.held, l.Stream)
	}
	if !l.Continued {
		return p.masker.String(text), true
	}
	masked, rest := p.masker.Piece(text)
	if rest != "" {
		if p.held == nil {
			p.held = map[string]string{}
		}
		p.held[l.Stream] = rest
	}
	return masked, masked != ""
}

// flush passes what is still held, masked, to out, stream by stream.
func (p *pieceMasker) flush(out func(stream, text string)) {
	for _, stream := range slices.Sorted(maps.Keys(p.held)) {
		out(stream, p.masker.String(p.held[stream]))
	}
	p.held = nil
}
