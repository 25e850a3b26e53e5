package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/modpipe/modpipe/host/config"
	"github.com/modpipe/modpipe/host/graph"
	"github.com/modpipe/modpipe/host/pluginhost"
	"github.com/modpipe/modpipe/host/schema"
	"github.com/modpipe/modpipe/host/secrets"
)

// Options configure one invocation of the engine. The CLI fills them from
// flags and the environment; tests fill them directly.
type Options struct {
	// File is the pipeline file.
	File string
	// Vars are `--var name=value` settings.
	Vars map[string]string
	// Environ is the environment the run sees (env(), MODPIPE_* settings,
	// CI detection). Nil means os.Environ().
	Environ []string
	// Capabilities are extra capabilities of this instance (--capability).
	Capabilities []string
	// Parallelism is the number of modules run at once; 0 means CPUs x 4.
	Parallelism int
	// Only, Skip and Categories filter the modules to run (R3.8).
	Only, Skip, Categories []string
	// RunID names the run in reports; derived from the CI when empty.
	RunID string
	// Stdout receives module output and the summary; Stderr diagnostics.
	// A *Stderr that the command's logger and notices write through too
	// keeps them readable above a live view on the terminal.
	Stdout, Stderr io.Writer
	Logger         hclog.Logger
	// LogOutput, when Logger writes through one, gets the run's secrets
	// (R7.4) as soon as the pipeline is loaded, so the host's own log
	// lines and its plugins' (which the host logs) are masked too.
	LogOutput *secrets.Output
	// SocketRoot is where plugin processes keep their Unix sockets (see
	// pluginhost.SocketRoot); empty means the system's temporary folder.
	SocketRoot string
	// Locator finds plugin binaries that have no plugin block; nil means
	// DefaultLocator.
	Locator *PluginLocator
	// Color renders diagnostics with colour.
	Color bool
	// Grace is how long a cancelled module's plugin gets to stop before
	// it is killed (--grace); 0 means pluginhost's default.
	Grace time.Duration
	// HeldOutput, when set, gets the run's console, so a command that
	// stops the run at once can print the output it holds back first;
	// nil means no one will.
	HeldOutput *HeldOutput

	// source is File's contents once readSource has read them, and
	// sourceErr why it could not: a pipe is not read twice.
	source    []byte
	sourceErr error
}

// readSource reads File once for every later use of it in the command:
// the plugins' early guess (guessSpecs), the load, the name in the report
// of a run that did not start. A file given as a pipe (/dev/stdin,
// <(...)) can be read only once, and the load used to find it empty ("no
// module blocks"). A file that cannot be read is left for config.Load to
// report.
func (o *Options) readSource() {
	if o.source != nil || o.File == "-" {
		return
	}
	o.source, o.sourceErr = config.ReadFile(o.File)
}

// loadConfig is config.Load of File, from the bytes readSource read when
// it has.
func (o *Options) loadConfig(copts config.Options) (*config.Pipeline, hcl.Diagnostics) {
	if o.source != nil {
		return config.LoadSource(o.File, o.source, copts)
	}
	if o.sourceErr != nil {
		return nil, config.ReadDiagnostics(o.sourceErr)
	}
	return config.Load(o.File, copts)
}

func (o *Options) defaults() {
	if o.Environ == nil {
		o.Environ = os.Environ()
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Parallelism <= 0 {
		o.Parallelism = runtime.NumCPU() * 4
	}
	if o.Locator == nil {
		l := DefaultLocator(o.Environ)
		o.Locator = &l
	}
}

// loaded is a pipeline file that parsed and whose graph is sound.
type loaded struct {
	opts  Options
	cfg   *config.Pipeline
	graph *graph.Graph
	facts config.Facts
}

// prepared is a loaded pipeline whose plugins are running and whose
// modules' bodies were checked against their kinds' schemas.
type prepared struct {
	*loaded
	plugins *pluginSet
	// kinds maps a module name to its kind's schema.
	kinds map[string]*schema.Kind
	// staticConfigs maps a node address to its config JSON when that
	// config cannot change between validation and the module's run: it
	// refers to no module results and calls no functions (file() and
	// env() read the world when called), and everything else it can see
	// (var, local, run, matrix) is fixed for this instance's run.
	// Evaluating it once here instead of again per run took the
	// EvalContext and hcldec work off every such module's path.
	staticConfigs map[string][]byte
}

// Facts returns what this instance knows about itself: the run.* values
// of expressions and the capabilities it offers.
func Facts(environ []string, extra []string, instance int) config.Facts {
	env := envMap(environ)
	caps := []string{osName(runtime.GOOS), runtime.GOARCH}
	caps = append(caps, extra...)
	for _, c := range strings.Split(env["MODPIPE_CAPABILITIES"], ",") {
		caps = append(caps, c)
	}
	return config.Facts{
		OS:           osName(runtime.GOOS),
		Arch:         runtime.GOARCH,
		Instance:     instance,
		CI:           isCI(env),
		Capabilities: normalizeCaps(caps),
	}
}

func osName(goos string) string {
	if goos == "darwin" {
		return "macos"
	}
	return goos
}

func isCI(env map[string]string) bool {
	for _, k := range []string{"CI", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "CIRCLECI", "JENKINS_URL", "TF_BUILD"} {
		if v := env[k]; v != "" && v != "false" && v != "0" {
			return true
		}
	}
	return false
}

// normalizeCaps lower-cases, trims, drops empties and duplicates, and
// sorts, so capability matching is case-insensitive and messages stable.
func normalizeCaps(caps []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range caps {
		c = strings.ToLower(strings.TrimSpace(c))
		if c == "" || seen[c] {
			continue
		}
		seen[c] = true
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// load parses the file, builds and filters the graph. Diagnostics are
// written to opts.Stderr as they are found.
func load(opts Options) (*loaded, error) {
	return loadAs(opts, 0, nil, nil)
}

// loadChecking is load for a command whose plugins are starting (pre):
// when the file has errors, the graph is still built and the plugins that
// start still check the module bodies against their kinds, so one pass
// reports a misspelt attribute (a plugin's schema) and a cycle beside a
// bad timeout (the file's own), rather than one kind of error per
// attempt. Those checks take the plugins pre started; the caller still
// closes pre.
func loadChecking(ctx context.Context, opts Options, pre *prestart) (*loaded, error) {
	facts := Facts(opts.Environ, opts.Capabilities, 0)
	cfg, diags := opts.loadConfig(config.Options{Vars: opts.Vars, Environ: opts.Environ, Facts: facts})
	// The plugins' checks of every body, for a file that will not run
	// anyway: its errors of every kind are reported in one pass.
	bodies := func() hcl.Diagnostics {
		if more := bodyDiagnostics(ctx, opts, facts, cfg, pre); ctx.Err() == nil {
			return more
		}
		return nil
	}
	if diags.HasErrors() && cfg != nil && len(cfg.Modules) > 0 {
		// The graph's own errors (undeclared modules, cycles) too: it
		// needs the module names and dependencies, which a module's
		// other errors leave alone.
		_, gdiags := graph.Build(cfg)
		diags = append(diags, gdiags...)
		diags = append(diags, bodies()...)
		config.SortDiagnostics(diags)
	}
	// A file whose only errors are its graph's (a cycle) learns of them
	// in loadedFrom, which then adds the bodies' too.
	l, warnings, err := loadedFrom(opts, facts, cfg, diags, bodies)
	if err != nil {
		return nil, err
	}
	// Run, dry-run and validate are of this machine alone (a fleet's
	// instances load otherwise): what this instance cannot run is skipped.
	warnings = append(warnings, l.matrixCapabilityWarnings()...)
	if len(warnings) > 0 {
		_ = l.report(warnings, ExitOK)
	}
	return l, nil
}

// bodyDiagnostics checks every module body of a file that has errors
// against its plugin's kind: the plugins that cannot be found or started
// and the kinds and attributes their schemas do not have; and, for a
// body that passes and whose config is known at load, the plugin's own
// verdict on it, as a valid file would get before running. The plugins it
// uses are stopped again; the run stops at the file's errors anyway.
func bodyDiagnostics(ctx context.Context, opts Options, facts config.Facts, cfg *config.Pipeline, pre *prestart) hcl.Diagnostics {
	specs, diags := pluginSpecs(cfg, cfg.Modules, *opts.Locator)
	taken, errs, rest := pre.take(specs, nil)
	popts := pluginhost.Options{Logger: opts.Logger, SocketRoot: opts.SocketRoot}
	if pre != nil {
		popts.TLS = pre.tls
	}
	set, more := startEach(ctx, rest, popts, opts.Logger)
	maps.Copy(set.plugins, taken)
	defer set.Close()
	for _, err := range append(errs, more...) {
		if _, ok := errors.AsType[*startError](err); ok {
			diags = append(diags, startDiagnostic(cfg, cfg.Modules, err))
		}
	}
	type ask struct {
		m   *config.Module
		k   *schema.Kind
		cfg []byte
		key string // of the plugin's verdict
	}
	var asks []ask
	plain := cfg.EvalContext(config.Scope{Facts: facts})
	kinds := map[string]*schema.Kind{}
	for _, m := range cfg.Modules {
		if pl, ok := set.Get(m.Plugin); ok {
			if k, ok := pl.Kind(m.Kind); ok {
				kinds[m.Name] = k
			}
		}
	}
	for _, m := range cfg.Modules {
		pl, ok := set.Get(m.Plugin)
		if !ok {
			continue
		}
		k, ok := kinds[m.Name]
		if !ok {
			diags = append(diags, unknownKind(m, pl.Info()))
			continue
		}
		d := append(m.CheckBody(k), m.CheckResultReferences(func(name string) *schema.Kind { return kinds[name] })...)
		diags = append(diags, d...)
		// A config that needs the run (another module's result) or a
		// matrix instance waits for a file without errors. So does one
		// that does not evaluate here: what it refers to may be among
		// the file's errors already, and saying so again is noise.
		if d.HasErrors() || len(m.References) > 0 || m.Matrix != nil {
			continue
		}
		if cfgJSON, d := m.EvalConfig(plain, k); !d.HasErrors() {
			asks = append(asks, ask{m, k, cfgJSON, verdictKey(m.Plugin, k.Name, cfgJSON)})
		}
	}
	// One question per distinct config, as validateStatic asks them.
	questions := make([]question, len(asks))
	for i, a := range asks {
		questions[i] = question{a.m.Plugin, a.key, a.k.Name, a.cfg}
	}
	verdicts := askPlugins(ctx, questions, set.Get)
	for _, a := range asks {
		v := verdicts[a.key]
		pds, err := v.diags, v.err
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			rng := a.m.DeclRange
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: couldNotValidate, Detail: fmt.Sprintf("plugin %q: %v", a.m.Plugin, err), Subject: &rng})
			continue
		}
		for _, pd := range pds {
			diags = append(diags, pluginDiagnostic(&graph.Node{Address: a.m.Name, Module: a.m}, pd))
		}
	}
	return diags
}

// loadAs is load for instance index of a distributed run. values and
// locals, when not nil, are the variables and locals the master resolved:
// they replace this instance's own, so every instance evaluates alike.
func loadAs(opts Options, instance int, values, locals map[string]cty.Value) (*loaded, error) {
	facts := Facts(opts.Environ, opts.Capabilities, instance)
	cfg, diags := opts.loadConfig(config.Options{Vars: opts.Vars, Environ: opts.Environ, Facts: facts, Values: values, Locals: locals})
	return reportLoaded(opts, facts, cfg, diags, nil)
}

// reportLoaded is loadedFrom that reports the warnings itself.
func reportLoaded(opts Options, facts config.Facts, cfg *config.Pipeline, diags hcl.Diagnostics, onGraphErrors func() hcl.Diagnostics) (*loaded, error) {
	l, warnings, err := loadedFrom(opts, facts, cfg, diags, onGraphErrors)
	if err != nil {
		return nil, err
	}
	if len(warnings) > 0 {
		_ = l.report(warnings, ExitOK)
	}
	return l, nil
}

// loadedFrom builds and filters the graph of a config.Load result made
// with facts. Errors are reported as loadAs does; warnings are returned
// for the caller to report. onGraphErrors, if not nil, is called when the
// graph is the file's first error, for diagnostics reported with it.
func loadedFrom(opts Options, facts config.Facts, cfg *config.Pipeline, diags hcl.Diagnostics, onGraphErrors func() hcl.Diagnostics) (*loaded, hcl.Diagnostics, error) {
	if cfg != nil && cfg.Distributed != nil && len(cfg.Distributed.Capabilities) > 0 {
		facts.Capabilities = normalizeCaps(append(facts.Capabilities, cfg.Distributed.Capabilities...))
	}
	l := &loaded{opts: opts, cfg: cfg, facts: facts}
	if cfg != nil && opts.LogOutput != nil {
		opts.LogOutput.SetMasker(pipelineMasker(cfg, opts.Environ))
	}
	if diags.HasErrors() || cfg == nil {
		return nil, nil, l.report(diags, ExitInvalid)
	}
	if len(cfg.Modules) == 0 {
		// Most often the wrong file, or one emptied by mistake: a CI step
		// that ran nothing must not pass for one that ran everything.
		return nil, nil, l.report(append(diags, noModules(opts.File)), ExitInvalid)
	}
	g, gdiags := graph.Build(cfg)
	diags = append(diags, gdiags...)
	if diags.HasErrors() {
		if onGraphErrors != nil {
			diags = append(diags, onGraphErrors()...)
			config.SortDiagnostics(diags)
		}
		return nil, nil, l.report(diags, ExitInvalid)
	}
	if len(opts.Only) > 0 || len(opts.Skip) > 0 || len(opts.Categories) > 0 {
		sel, sdiags := g.Select(opts.Only, opts.Skip, opts.Categories)
		diags = append(diags, sdiags...)
		if diags.HasErrors() {
			err := l.report(diags, ExitInvalid)
			if inv, ok := errors.AsType[*invalidFileError](err); ok {
				inv.selection = true
			}
			return nil, nil, err
		}
		g = sel
	}
	l.graph = g
	return l, diags, nil // warnings only
}

// report writes diags and returns an ExitError with code when they hold
// an error.
func (l *loaded) report(diags hcl.Diagnostics, code int) error {
	// A diagnostic can quote a secret: a sensitive variable's value that
	// does not fit where it is used, or the "with var.x as ..." lines
	// under a snippet. The whole rendering is masked at once, as a
	// secret could straddle two of its writes.
	m := pipelineMasker(l.cfg, l.opts.Environ)
	if len(diags) > 0 {
		_ = writeMasked(l.opts.Stderr, m, func(w io.Writer) error {
			var b strings.Builder
			if err := config.WriteDiagnostics(&b, l.cfg, diags, l.opts.Color); err != nil {
				b.Reset()
				b.WriteString(diags.Error() + "\n")
			}
			_, err := io.WriteString(w, b.String())
			return err
		})
	}
	if !diags.HasErrors() {
		return nil
	}
	inv := &invalidFileError{file: l.opts.File}
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		pe := placedError{Summary: m.String(d.Summary), Detail: m.String(d.Detail)}
		if d.Subject != nil {
			pe.File, pe.Line, pe.Column = d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column
		}
		inv.errs = append(inv.errs, pe)
	}
	return &ExitError{Code: code, Reported: true, Err: inv}
}

// modules returns the distinct modules of the (filtered) graph, file order.
func (l *loaded) modules() []*config.Module {
	seen := map[string]bool{}
	var mods []*config.Module
	for _, n := range l.graph.Nodes() {
		if !seen[n.Module.Name] {
			seen[n.Module.Name] = true
			mods = append(mods, n.Module)
		}
	}
	return mods
}

// prepare starts the plugins the graph needs and checks each module body
// against its kind's schema, and every statically known config against
// the plugin's own validation.
func prepare(ctx context.Context, l *loaded, results pluginhost.ResultFunc) (*prepared, error) {
	return prepareFrom(ctx, l, results, nil)
}

// prepareFrom is prepare that takes what it can of the plugins pre
// started early (see prestartPlugins); it owns pre.
func prepareFrom(ctx context.Context, l *loaded, results pluginhost.ResultFunc, pre *prestart) (*prepared, error) {
	// A plugin that is not there cannot check its modules, but the others
	// can check theirs: every error of the file in one pass, as when all
	// are there, rather than one plugin name at a time.
	// So can a plugin that is there but does not start (not a plugin, a
	// sha256 that does not match).
	specs, diags := pluginSpecs(l.cfg, l.modules(), *l.opts.Locator)
	set, failed, err := l.startSpecs(ctx, results, pre, specs)
	if err != nil {
		return nil, err
	}
	diags = append(diags, failed...)
	if !diags.HasErrors() {
		return prepareStarted(ctx, l, set)
	}
	c := check(ctx, l, set)
	set.Close()
	if ctx.Err() != nil {
		return nil, &ExitError{Code: ExitInterrupted, Err: fmt.Errorf("interrupted while checking the pipeline: %w", context.Cause(ctx))}
	}
	diags = append(diags, c.diags...)
	config.SortDiagnostics(diags)
	return nil, l.report(diags, ExitPluginStart)
}

// startPlugins starts the plugins l's graph needs.
func (l *loaded) startPlugins(ctx context.Context, results pluginhost.ResultFunc) (*pluginSet, error) {
	return l.startPluginsFrom(ctx, results, nil)
}

// startPluginsFrom is startPlugins that takes the plugins pre started
// with the specs l needs, and starts the rest; it owns pre. Errors are
// reported alike whichever start they come from.
func (l *loaded) startPluginsFrom(ctx context.Context, results pluginhost.ResultFunc, pre *prestart) (*pluginSet, error) {
	specs, diags := pluginSpecs(l.cfg, l.modules(), *l.opts.Locator)
	if diags.HasErrors() {
		pre.close()
		return nil, l.report(diags, ExitPluginStart)
	}
	set, failed, err := l.startSpecs(ctx, results, pre, specs)
	if err != nil {
		return nil, err
	}
	if failed.HasErrors() {
		set.Close()
		return nil, l.report(failed, ExitPluginStart)
	}
	return set, nil
}

// startSpecs starts the plugins specs name, taking those pre started
// with the same specs; it owns pre. It returns the plugins that started,
// which the caller owns, and a diagnostic for each that did not, so that
// they are reported with the file's other errors. It fails only when ctx
// ends, having stopped the plugins.
func (l *loaded) startSpecs(ctx context.Context, results pluginhost.ResultFunc, pre *prestart, specs map[string]pluginhost.Spec) (*pluginSet, hcl.Diagnostics, error) {
	taken, errs, rest := pre.take(specs, results)
	opts := pluginhost.Options{Logger: l.opts.Logger, Results: results, KillGrace: l.opts.Grace, SocketRoot: l.opts.SocketRoot}
	if pre != nil {
		opts.TLS = pre.tls
	}
	set, more := startEach(ctx, rest, opts, l.opts.Logger)
	maps.Copy(set.plugins, taken)
	errs = append(errs, more...)
	if len(errs) > 0 && ctx.Err() != nil {
		// Stopped, not failed: the errors only echo the cancellation,
		// and whoever cancelled says why (Ctrl-C, a worker the run
		// refused).
		set.Close()
		return nil, nil, &ExitError{Code: ExitInterrupted, Err: fmt.Errorf("plugins not started: %w", context.Cause(ctx))}
	}
	sortErrors(errs)
	var diags hcl.Diagnostics
	for _, err := range errs {
		diags = append(diags, startDiagnostic(l.cfg, l.modules(), err))
	}
	return set, diags, nil
}

// startDiagnostic is a plugin's start failure (a *startError) as a
// diagnostic: at the plugin block that declares the plugin, as every
// other error in the file is named where it is, else at the first of
// mods that uses it.
func startDiagnostic(cfg *config.Pipeline, mods []*config.Module, err error) *hcl.Diagnostic {
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Plugin did not start", Detail: err.Error()}
	se, ok := errors.AsType[*startError](err)
	if !ok || cfg == nil {
		return d
	}
	if b := cfg.Plugins[se.name]; b != nil && b.DeclRange.Filename != "" {
		d.Subject = b.DeclRange.Ptr()
	} else if i := slices.IndexFunc(mods, func(m *config.Module) bool { return m.Plugin == se.name }); i >= 0 {
		d.Subject = mods[i].KindRange.Ptr()
	}
	return d
}

// prepareStarted is prepare with l's plugins already started (set); it
// owns set from then on and stops it when it fails.
func prepareStarted(ctx context.Context, l *loaded, set *pluginSet) (*prepared, error) {
	c := check(ctx, l, set)
	if ctx.Err() != nil {
		// Interrupted while the plugins checked the modules: their
		// errors only echo the cancellation (not an invalid file).
		set.Close()
		return nil, &ExitError{Code: ExitInterrupted, Err: fmt.Errorf("interrupted while checking the pipeline: %w", context.Cause(ctx))}
	}
	return reportChecked(l, set, c)
}

// checked is what check found: p when the file has no errors, and the
// diagnostics (errors or warnings) to report.
type checked struct {
	p     *prepared
	diags hcl.Diagnostics
}

// check checks every module's body against its kind and has the plugins
// validate the static configs. It reports nothing and closes nothing, so
// a worker can check its own load before it knows whether the master's
// values keep it (reportChecked does the rest).
func check(ctx context.Context, l *loaded, set *pluginSet) checked {
	mods := l.modules()
	var diags hcl.Diagnostics
	p := &prepared{loaded: l, plugins: set, kinds: map[string]*schema.Kind{}, staticConfigs: map[string][]byte{}}
	kinds := make([]*schema.Kind, len(mods))
	for i, m := range mods {
		pl, started := set.Get(m.Plugin)
		if !started {
			continue // not found: reported as such, its modules unchecked
		}
		k, ok := pl.Kind(m.Kind)
		if !ok {
			diags = append(diags, unknownKind(m, pl.Info()))
			continue
		}
		p.kinds[m.Name] = k
		kinds[i] = k
	}
	bodyDiags := make([]hcl.Diagnostics, len(mods))
	kindOf := func(name string) *schema.Kind { return p.kinds[name] }
	eachAtOnce(len(mods), func(i int) {
		if kinds[i] != nil {
			bodyDiags[i] = append(mods[i].CheckBody(kinds[i]), mods[i].CheckResultReferences(kindOf)...)
		}
	})
	// A module whose body is wrong is not asked about, but the others
	// still are: one module's type error used to hide the plugins'
	// verdicts on every other module's config.
	var wrong map[*config.Module]bool
	for i, d := range bodyDiags {
		diags = append(diags, d...)
		if d.HasErrors() {
			if wrong == nil {
				wrong = map[*config.Module]bool{}
			}
			wrong[mods[i]] = true
		}
	}
	diags = append(diags, p.validateStatic(ctx, wrong)...)
	config.SortDiagnostics(diags)
	if diags.HasErrors() {
		p = nil
	}
	return checked{p: p, diags: diags}
}

// reportChecked reports c's diagnostics and returns its prepared run; on
// errors it stops set.
func reportChecked(l *loaded, set *pluginSet, c checked) (*prepared, error) {
	if c.p == nil {
		set.Close()
		code := ExitInvalid
		if slices.ContainsFunc(c.diags, func(d *hcl.Diagnostic) bool { return d.Summary == couldNotValidate }) {
			// The plugin died or hung checking a config: the plugin's
			// failure, not the file's, whatever else the file has.
			code = ExitPluginStart
		}
		return nil, l.report(c.diags, code)
	}
	if len(c.diags) > 0 {
		_ = l.report(c.diags, ExitOK)
	}
	return c.p, nil
}

func unknownKind(m *config.Module, info pluginhost.Info) *hcl.Diagnostic {
	var names []string
	for _, k := range info.Kinds {
		names = append(names, k.Name)
	}
	detail := fmt.Sprintf("Plugin %q (version %s) offers the module kinds: %s.", info.Name, info.Version, strings.Join(names, ", "))
	if s := config.Suggest(m.Kind, names); s != "" {
		detail += fmt.Sprintf(" Did you mean %q?", m.Plugin+"."+s)
	}
	if m.Kind == "" {
		detail = fmt.Sprintf("Plugin %q declares no default kind; name one as %q. ", info.Name, m.Plugin+".KIND") + detail
	}
	rng := m.KindRange
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Unknown module kind %q", strings.TrimSuffix(m.Plugin+"."+m.Kind, ".")),
		Detail:   detail,
		Subject:  &rng,
	}
}

// validateStatic asks each plugin to validate the configs that can be
// known before anything runs (those that refer to no module result), so a
// bad value is reported before the first module starts.
func (p *prepared) validateStatic(ctx context.Context, skip map[*config.Module]bool) hcl.Diagnostics {
	// A plugin's verdict depends on the kind and the config alone, so
	// modules with the same config (generated and matrix pipelines have
	// thousands) are asked about once: one RPC per module made validating
	// 10,000 modules take seconds (bench: host validate at 10,000).
	type check struct {
		n     *graph.Node
		diags hcl.Diagnostics // of evaluating the config
		key   string          // of the plugin's verdict; "" when not asked
	}
	var (
		checks []check
		asks   []question
	)
	// Every module outside a matrix sees the same values here; building
	// them once rather than per module was 8% of validating 10,000
	// modules. Evaluation only reads the context.
	plain := p.cfg.EvalContext(config.Scope{Facts: p.facts})
	type evaluated struct {
		cfg    []byte
		diags  hcl.Diagnostics
		static bool // the config is the same at every evaluation
		// deferred: the config reads a file that is not there yet, to
		// be evaluated and checked when the module starts.
		deferred bool
	}
	nodes := p.graph.Nodes()
	// Whether a body calls functions is the module's, not an instance's:
	// walked per instance, a matrix of 10,000 instances walked its
	// exclude list 10,000 times (7 s for 1,000 entries).
	var bodies []*config.Module
	seen := map[*config.Module]bool{}
	for _, n := range nodes {
		if m := n.Module; len(m.References) == 0 && !skip[m] && !seen[m] {
			seen[m] = true
			bodies = append(bodies, m)
		}
	}
	calls := make([]bool, len(bodies))
	eachAtOnce(len(bodies), func(i int) { calls[i] = callsFunctions(bodies[i].Body) })
	callsFuncs := make(map[*config.Module]bool, len(bodies))
	for i, m := range bodies {
		callsFuncs[m] = calls[i]
	}
	evals := make([]evaluated, len(nodes))
	eachAtOnce(len(nodes), func(i int) {
		n := nodes[i]
		m := n.Module
		if len(m.References) > 0 || p.kinds[m.Name] == nil || skip[m] {
			return
		}
		evalCtx := plain
		if n.Instance != nil {
			evalCtx = p.cfg.EvalContext(config.Scope{Facts: p.facts, Matrix: n.Instance.Values})
		}
		cfgJSON, d := m.EvalConfig(evalCtx, p.kinds[m.Name])
		if m.FileMayComeLater(d) {
			evals[i] = evaluated{deferred: true}
			return
		}
		evals[i] = evaluated{cfg: cfgJSON, diags: d, static: !d.HasErrors() && !callsFuncs[m]}
	})
	for i, n := range nodes {
		m := n.Module
		k := p.kinds[m.Name]
		if len(m.References) > 0 || evals[i].deferred || k == nil || skip[m] {
			continue // decided when it starts, its plugin is not there, or its body is wrong
		}
		cfgJSON, d := evals[i].cfg, evals[i].diags
		c := check{n: n, diags: d}
		if !d.HasErrors() {
			if evals[i].static {
				p.staticConfigs[n.Address] = cfgJSON
			}
			c.key = verdictKey(m.Plugin, k.Name, cfgJSON)
			asks = append(asks, question{m.Plugin, c.key, k.Name, cfgJSON})
		}
		checks = append(checks, c)
	}
	verdicts := askPlugins(ctx, asks, p.plugins.Get)
	var diags hcl.Diagnostics
	for _, c := range checks {
		diags = append(diags, c.diags...)
		if c.key == "" {
			continue
		}
		m := c.n.Module
		v := verdicts[c.key]
		if v.err != nil {
			rng := m.DeclRange
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: couldNotValidate, Detail: fmt.Sprintf("plugin %q: %v", m.Plugin, v.err), Subject: &rng})
			continue
		}
		for _, pd := range v.diags {
			diags = append(diags, pluginDiagnostic(c.n, pd))
		}
	}
	return diags
}

// couldNotValidate is the summary of the diagnostic on a module whose
// plugin gave no verdict on its config (it died, hung or is not running).
const couldNotValidate = "Plugin could not validate the module"

// validateInFlight bounds the validate calls a plugin has to answer at
// once, and validateBatch the configs in one: enough to keep both sides
// busy while each call waits on the other, few enough not to crowd a
// plugin that validates slowly (or that lacks ValidateMany and answers a
// Validate call per config).
const (
	validateInFlight = 8
	validateBatch    = 64
)

// question is a config to put to a plugin, under its verdictKey.
type question struct {
	plugin, key, kind string
	cfg               []byte
}

// verdict is a plugin's answer to a question.
type verdict struct {
	diags []pluginhost.Diagnostic
	err   error
}

// askPlugins puts each question to its plugin (found by name through
// plugin) once per key, however many modules share that config, and
// returns the verdicts by key. The plugins answer at once, each its
// questions in batches (ValidateMany), validateInFlight batches in
// flight. A call per distinct config, one at a time, put a round trip
// per config before the first module: 1,000 modules that differ by an
// argument waited 0.38 s.
func askPlugins(ctx context.Context, questions []question, plugin func(string) (*pluginhost.Plugin, bool)) map[string]verdict {
	seen := map[string]bool{}
	asks := map[string][]question{} // by plugin, first come first
	for _, q := range questions {
		if !seen[q.key] {
			seen[q.key] = true
			asks[q.plugin] = append(asks[q.plugin], q)
		}
	}
	var (
		mu       sync.Mutex
		verdicts = map[string]verdict{}
		wg       sync.WaitGroup
	)
	for name, list := range asks {
		pl, ok := plugin(name)
		if !ok {
			// Not asked is not valid: say so on each module.
			mu.Lock()
			for _, q := range list {
				verdicts[q.key] = verdict{err: fmt.Errorf("plugin %q is not running", name)}
			}
			mu.Unlock()
			continue
		}
		size := max(1, min(validateBatch, (len(list)+validateInFlight-1)/validateInFlight))
		var next atomic.Int64
		for range min(len(list), validateInFlight) {
			wg.Go(func() {
				for {
					lo := int(next.Add(int64(size))) - size
					if lo >= len(list) {
						return
					}
					batch := list[lo:min(lo+size, len(list))]
					qs := make([]pluginhost.Question, len(batch))
					for i, q := range batch {
						qs[i] = pluginhost.Question{Kind: q.kind, Config: q.cfg}
					}
					answers := pl.ValidateMany(ctx, qs)
					mu.Lock()
					for i, a := range answers {
						verdicts[batch[i].key] = verdict{a.Diagnostics, a.Err}
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	return verdicts
}

// verdictKey names a plugin's verdict on a config: it depends on the
// plugin, the kind and the config alone, so modules alike share one.
func verdictKey(plugin, kind string, cfg []byte) string {
	return plugin + "\x00" + kind + "\x00" + string(cfg)
}

// callsFunctions reports whether body calls any function, or is not HCL
// native syntax and so cannot be inspected: either way its value may
// differ between two evaluations.
func callsFunctions(body hcl.Body) bool {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return true
	}
	calls := false
	hclsyntax.VisitAll(sb, func(n hclsyntax.Node) hcl.Diagnostics {
		if _, ok := n.(*hclsyntax.FunctionCallExpr); ok {
			calls = true
		}
		return nil
	})
	return calls
}

// pluginDiagnostic places a plugin's diagnostic on the attribute it names
// when the module body has it, else on the module block.
func pluginDiagnostic(n *graph.Node, pd pluginhost.Diagnostic) *hcl.Diagnostic {
	m := n.Module
	rng := m.DeclRange
	if body, ok := m.Body.(*hclsyntax.Body); ok && pd.Attribute != "" {
		rng = attributeRange(body, pd.Attribute, rng)
	}
	sev := hcl.DiagError
	if pd.Severity == "warning" {
		sev = hcl.DiagWarning
	}
	summary := pd.Summary
	if n.Instance != nil {
		summary = fmt.Sprintf("%s (in %s)", summary, n.Address)
	}
	return &hcl.Diagnostic{Severity: sev, Summary: summary, Detail: pd.Detail, Subject: &rng}
}

// attributeRange finds the place of an attribute path ("env",
// "server.host", "steps[1].name") in body: as deep as the written
// expressions go (object and tuple constructors), else the deepest part
// found, else def.
func attributeRange(body *hclsyntax.Body, path string, def hcl.Range) hcl.Range {
	i := strings.IndexAny(path, ".[")
	if i < 0 {
		i = len(path)
	}
	a, ok := body.Attributes[path[:i]]
	if !ok {
		return def
	}
	rng := a.SrcRange
	expr := a.Expr
	for rest := path[i:]; rest != ""; {
		var next hclsyntax.Expression
		switch {
		case rest[0] == '[':
			end := strings.IndexByte(rest, ']')
			idx, err := strconv.Atoi(rest[1:max(end, 1)])
			tup, ok := expr.(*hclsyntax.TupleConsExpr)
			if end < 0 || err != nil || !ok || idx < 0 || idx >= len(tup.Exprs) {
				return rng
			}
			next, rest = tup.Exprs[idx], rest[end+1:]
		case rest[0] == '.':
			key := rest[1:]
			if j := strings.IndexAny(key, ".["); j >= 0 {
				key, rest = key[:j], key[j:]
			} else {
				rest = ""
			}
			obj, ok := expr.(*hclsyntax.ObjectConsExpr)
			if !ok {
				return rng
			}
			for _, item := range obj.Items {
				if k, diags := item.KeyExpr.Value(nil); !diags.HasErrors() && k.Type() == cty.String && k.IsKnown() && k.AsString() == key {
					next = item.ValueExpr
					break
				}
				if hcl.ExprAsKeyword(item.KeyExpr) == key {
					next = item.ValueExpr
					break
				}
			}
			if next == nil {
				return rng
			}
		default:
			return rng
		}
		expr, rng = next, next.Range()
	}
	return rng
}

// close stops the plugins.
func (p *prepared) close() { p.plugins.Close() }

// Validate loads the file, starts its plugins and checks every module
// against its schema and the graph, running nothing (`host validate`).
func Validate(ctx context.Context, opts Options) error {
	opts.defaults()
	opts.readSource()
	pre := prestartPlugins(ctx, opts)
	l, err := loadChecking(ctx, opts, pre)
	if err != nil {
		pre.close()
		return err
	}
	p, err := prepareFrom(ctx, l, nil, pre)
	if err != nil {
		return err
	}
	defer p.close()
	fmt.Fprintf(opts.Stdout, "%s is valid: %s (%d after matrix expansion), %s (%s)\n",
		opts.File, count(len(l.modules()), "module"), len(l.graph.Nodes()), count(len(p.plugins.Names()), "plugin"), strings.Join(p.plugins.Names(), ", "))
	return nil
}

// Graph writes the module graph in format "dot" or "mermaid"
// (`host graph`). It needs no plugins.
func Graph(opts Options, format string) error {
	opts.defaults()
	opts.readSource()
	l, err := load(opts)
	if err != nil {
		return err
	}
	m := pipelineMasker(l.cfg, opts.Environ)
	switch strings.ToLower(format) {
	case "", "dot":
		return writeMasked(opts.Stdout, m, l.graph.WriteDOT)
	case "mermaid":
		return writeMasked(opts.Stdout, m, l.graph.WriteMermaid)
	}
	return exitErrorf(ExitInvalid, "unknown graph format %q: use dot or mermaid", format)
}

// writeMasked has write render into memory and writes that to w with m's
// secrets masked: module addresses carry matrix values, which a
// sensitive variable can supply.
func writeMasked(w io.Writer, m *secrets.Masker, write func(io.Writer) error) error {
	var b strings.Builder
	if err := write(&b); err != nil {
		return err
	}
	_, err := io.WriteString(w, m.String(b.String()))
	return err
}

// Plugins describes every plugin the pipeline uses: version, kinds and
// each kind's attributes (`host plugins`).
func Plugins(ctx context.Context, opts Options) error {
	opts.defaults()
	opts.readSource()
	// Describing plugins needs no variable's value: a file whose required
	// variables are not given still lists its plugins.
	facts := Facts(opts.Environ, opts.Capabilities, 0)
	cfg, all := opts.loadConfig(config.Options{Vars: opts.Vars, Environ: opts.Environ, Facts: facts})
	var real hcl.Diagnostics
	for _, d := range all {
		if d.Severity == hcl.DiagError && variableValueError(d) {
			continue
		}
		real = append(real, d)
	}
	l := &loaded{opts: opts, cfg: cfg, facts: facts}
	if real.HasErrors() || cfg == nil {
		return l.report(real, ExitInvalid)
	}
	if len(cfg.Modules) == 0 {
		// The wrong path, most often: saying nothing would pass for a
		// file whose modules need no plugin at all.
		return l.report(append(real, noModules(opts.File)), ExitInvalid)
	}
	specs, diags := pluginSpecs(cfg, cfg.Modules, *opts.Locator)
	if diags.HasErrors() {
		return l.report(diags, ExitPluginStart)
	}
	set, errs := startPlugins(ctx, specs, pluginhost.Options{Logger: opts.Logger, SocketRoot: opts.SocketRoot}, opts.Logger)
	if len(errs) > 0 {
		var failed hcl.Diagnostics
		for _, err := range errs {
			failed = append(failed, startDiagnostic(cfg, cfg.Modules, err))
		}
		return l.report(failed, ExitPluginStart)
	}
	defer set.Close()
	for i, name := range set.Names() {
		pl, _ := set.Get(name)
		if i > 0 {
			fmt.Fprintln(opts.Stdout)
		}
		writePluginInfo(opts.Stdout, name, specs[name].Path, pl.Info())
	}
	return nil
}

// noModules is the error of a file without module blocks.
func noModules(file string) *hcl.Diagnostic {
	start := hcl.Pos{Line: 1, Column: 1}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "No modules",
		Detail:   fmt.Sprintf("%s declares no module blocks, so there is nothing to run. Declare the work with module \"KIND\" \"NAME\" { ... }, or check the path given on the command line.", file),
		Subject:  &hcl.Range{Filename: file, Start: start, End: start},
	}
}

// writePluginInfo describes the plugin the pipeline calls name: its
// kinds are module "name.KIND" there, whatever name it gives itself.
func writePluginInfo(w io.Writer, name, path string, info pluginhost.Info) {
	self := ""
	if info.Name != name {
		self = fmt.Sprintf(" (it calls itself %q)", info.Name)
	}
	fmt.Fprintf(w, "plugin %s %s (protocol %d)%s\n  binary: %s\n", name, info.Version, info.ProtocolVersion, self, path)
	for _, k := range info.Kinds {
		def := ""
		if k.Default {
			def = " (default)"
		}
		fmt.Fprintf(w, "\n  module \"%s.%s\"%s -> %s\n", name, k.Name, def, k.ResultType)
		if k.Doc != "" {
			fmt.Fprintf(w, "    %s\n", k.Doc)
		}
		// Columns sized to the kind's own longest name and type, so a
		// long attribute name does not push its row out of line.
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, a := range k.Attributes {
			writeAttributeRows(tw, "    ", a.Name, a.Type, a.Required, a.Doc)
		}
		tw.Flush()
		if k.Result != cty.NilType {
			writeWrapped(w, "    result: ", resultTypeText(k.Result, true), 80)
		}
	}
}

// resultTypeText is a result type in a line: an object's attributes as
// "name type" (name? for one that may be absent), sorted, the top
// level's without braces; "any" for a dynamic part.
func resultTypeText(t cty.Type, top bool) string {
	switch {
	case t == cty.DynamicPseudoType:
		return "any"
	case t.IsListType():
		return "list of " + resultTypeText(t.ElementType(), false)
	case t.IsSetType():
		return "set of " + resultTypeText(t.ElementType(), false)
	case t.IsMapType():
		return "map of " + resultTypeText(t.ElementType(), false)
	case t.IsObjectType():
		names := slices.Sorted(maps.Keys(t.AttributeTypes()))
		parts := make([]string, len(names))
		for i, n := range names {
			if t.AttributeOptional(n) {
				n += "?"
			}
			parts[i] = n + " " + resultTypeText(t.AttributeType(names[i]), false)
		}
		if top && len(parts) > 0 {
			return strings.Join(parts, ", ")
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return t.FriendlyName()
}

// writeWrapped writes prefix and text, wrapped at spaces to lines of at
// most width columns where the words allow, the lines after the first
// indented under the text's start.
func writeWrapped(w io.Writer, prefix, text string, width int) {
	indent := strings.Repeat(" ", utf8.RuneCountInString(prefix))
	line := prefix
	fresh := true // nothing of text on line yet
	for _, word := range strings.Fields(text) {
		if !fresh && utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) > width {
			fmt.Fprintln(w, line)
			line, fresh = indent, true
		}
		if !fresh {
			line += " "
		}
		line += word
		fresh = false
	}
	fmt.Fprintln(w, line)
}

// writeAttributeRows writes one attribute's row and, when it is an object
// (or a collection of objects), a row for each of its fields, indented
// under it: a plugin author's nested settings are part of its schema.
func writeAttributeRows(w io.Writer, indent, name string, t cty.Type, required bool, doc string) {
	req := "optional"
	if required {
		req = "required"
	}
	row := indent + name + "\t" + t.FriendlyName() + "\t" + req
	if doc != "" {
		row += "\t" + doc
	}
	fmt.Fprintln(w, row)
	obj := t
	for obj.IsListType() || obj.IsSetType() || obj.IsMapType() {
		obj = obj.ElementType()
	}
	if !obj.IsObjectType() {
		return
	}
	fields := slices.Sorted(maps.Keys(obj.AttributeTypes()))
	for _, f := range fields {
		writeAttributeRows(w, indent+"  ", f, obj.AttributeType(f), !obj.AttributeOptional(f), "")
	}
}

// count is "1 module", "2 modules".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
