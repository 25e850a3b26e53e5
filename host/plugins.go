package host

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/modpipe/modpipe/coordinator"

	"github.com/modpipe/modpipe/host/config"
	"github.com/modpipe/modpipe/host/hclscan"
	"github.com/modpipe/modpipe/host/pluginhost"
)

// BinaryPrefix is how a plugin binary found by name is called:
// modpipe-plugin-NAME.
const BinaryPrefix = "modpipe-plugin-"

// PluginLocator finds the binary of a plugin that has no `plugin` block.
type PluginLocator struct {
	// Dirs are searched in order: the plugins/ folder next to the host
	// binary, then $MODPIPE_PLUGIN_PATH, then $PATH.
	Dirs []string
}

// DefaultLocator builds the search path from the host binary's location
// and the environment.
func DefaultLocator(environ []string) PluginLocator {
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		dirs = append(dirs, filepath.Join(filepath.Dir(exe), "plugins"))
	}
	env := envMap(environ)
	seen := map[string]bool{}
	for _, name := range []string{"MODPIPE_PLUGIN_PATH", "PATH"} {
		for _, d := range filepath.SplitList(env[name]) {
			if d != "" && !seen[d] {
				seen[d] = true
				dirs = append(dirs, d)
			}
		}
	}
	return PluginLocator{Dirs: dirs}
}

// Find returns the path of modpipe-plugin-NAME, or an error listing every
// place it looked.
func (l PluginLocator) Find(name string) (string, error) {
	bin := BinaryPrefix + name
	var looked, notExecutable []string
	for _, d := range l.Dirs {
		p := filepath.Join(d, bin)
		looked = append(looked, p)
		st, err := os.Stat(p)
		if err != nil || st.IsDir() {
			continue
		}
		if st.Mode()&0o111 != 0 {
			return p, nil
		}
		notExecutable = append(notExecutable, p)
	}
	if len(notExecutable) > 0 {
		// Most often a binary copied or unpacked without its mode.
		return "", fmt.Errorf("plugin %q not found: %s is there but not executable; make it so (chmod +x %s)",
			name, notExecutable[0], notExecutable[0])
	}
	hint := ""
	if s := config.Suggest(name, l.available()); s != "" {
		hint = fmt.Sprintf("Did you mean %q? ", s)
	}
	return "", fmt.Errorf("plugin %q not found: no executable %s in any of:\n  %s\n%sbuild it, add a plugin %q { source = \"...\" } block, or put its folder in MODPIPE_PLUGIN_PATH",
		name, bin, strings.Join(looked, "\n  "), hint, name)
}

// available lists the plugin names the locator's folders offer.
func (l PluginLocator) available() []string {
	var names []string
	for _, d := range l.Dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if n, ok := strings.CutPrefix(e.Name(), BinaryPrefix); ok && n != "" && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names
}

// pluginSet owns the plugin processes of one run: one process per plugin,
// started once and reused for every module it runs (R2.1).
type pluginSet struct {
	logger  hclog.Logger
	mu      sync.Mutex
	plugins map[string]*pluginhost.Plugin
}

// pluginSpecs resolves the binary of every plugin the given modules use.
// Problems become diagnostics at the module (or plugin block) that needs
// the plugin, so the user sees where it was asked for.
func pluginSpecs(p *config.Pipeline, modules []*config.Module, loc PluginLocator) (map[string]pluginhost.Spec, hcl.Diagnostics) {
	specs := map[string]pluginhost.Spec{}
	var diags hcl.Diagnostics
	failed := map[string]bool{}
	for _, m := range modules {
		if _, ok := specs[m.Plugin]; ok || failed[m.Plugin] {
			continue
		}
		b, declared := p.Plugins[m.Plugin]
		if declared && b.Source != "" {
			specs[m.Plugin] = pluginhost.Spec{Name: m.Plugin, Path: b.Source, Args: b.Args, Env: pluginEnv(b), SHA256: b.SHA256}
			continue
		}
		// Without a source, a plugin block only adds settings (env, args,
		// sha256) to the plugin found by name.
		path, err := loc.Find(m.Plugin)
		if err != nil {
			failed[m.Plugin] = true
			rng := m.KindRange
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Plugin not found",
				Detail:   err.Error(),
				Subject:  &rng,
			})
			continue
		}
		spec := pluginhost.Spec{Name: m.Plugin, Path: path}
		if declared {
			spec.Args, spec.Env, spec.SHA256 = b.Args, pluginEnv(b), b.SHA256
		}
		specs[m.Plugin] = spec
	}
	return specs, diags
}

// pluginEnv is a plugin block's env as KEY=VALUE entries, sorted (specs
// are compared whole: see prestart.take).
func pluginEnv(b *config.PluginBlock) []string {
	env := make([]string, 0, len(b.Env))
	for k, v := range b.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// startPlugins starts every plugin concurrently (their start-up costs add
// up otherwise) and returns the set, or the errors of those that failed.
// On error the ones that did start are stopped again.
func startPlugins(ctx context.Context, specs map[string]pluginhost.Spec, opts pluginhost.Options, logger hclog.Logger) (*pluginSet, []error) {
	set, errs := startEach(ctx, specs, opts, logger)
	if len(errs) > 0 {
		set.Close()
		return nil, errs
	}
	return set, nil
}

// startError is a plugin's start failure, with the plugin's name.
type startError struct {
	name string
	err  error
}

func (e *startError) Error() string {
	if _, named := errors.AsType[*pluginhost.StartError](e.err); named {
		return e.err.Error() // "start plugin NAME (PATH): ..." already
	}
	return fmt.Sprintf("start plugin %q: %v", e.name, e.err)
}
func (e *startError) Unwrap() error { return e.err }

// startEach is startPlugins that keeps the plugins that started when
// others fail: it returns them and the failures (*startError, sorted).
func startEach(ctx context.Context, specs map[string]pluginhost.Spec, opts pluginhost.Options, logger hclog.Logger) (*pluginSet, []error) {
	set := &pluginSet{logger: logger, plugins: map[string]*pluginhost.Plugin{}}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	if opts.TLS == nil && len(specs) > 0 {
		// One certificate for all of them and their restarts: making it
		// is most of the host's own share of a plugin's start. Should it
		// fail, each Start tries again and reports a failure as its
		// start error.
		opts.TLS, _ = pluginhost.NewTLSIdentity()
	}
	names := make([]string, 0, len(specs))
	for name := range specs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		spec := specs[name]
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := opts
			o.Logger = logger // pluginhost names it after the plugin
			pl, err := pluginhost.Start(ctx, spec, o)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, &startError{name: spec.Name, err: err})
				return
			}
			set.plugins[spec.Name] = pl
		}()
	}
	wg.Wait()
	sortErrors(errs)
	return set, errs
}

func sortErrors(errs []error) {
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
}

// Get returns the started plugin called name.
func (s *pluginSet) Get(name string) (*pluginhost.Plugin, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.plugins[name]
	return p, ok
}

// take removes the plugin called name from the set and returns it.
func (s *pluginSet) take(name string) (*pluginhost.Plugin, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.plugins[name]
	delete(s.plugins, name)
	return p, ok
}

// Names returns the plugins' names, sorted.
func (s *pluginSet) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.plugins))
	for n := range s.plugins {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Close stops every plugin process and waits for them to exit.
func (s *pluginSet) Close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	plugins := s.plugins
	s.plugins = map[string]*pluginhost.Plugin{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for name, p := range plugins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Close(); err != nil {
				s.logger.Warn("stop plugin", "plugin", name, "error", err)
			}
		}()
	}
	wg.Wait()
}

func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// guessSpecs reads the plugins a pipeline file's modules use from its
// block headers alone, before the file is parsed: a plugin block's
// attributes must be literals, else nothing is guessed. The guess only
// decides what to start early; the load's own pluginSpecs decides what is
// used, so a wrong guess costs a discarded process, never a different
// run. It scans (hclscan) rather than parses: a parse here ran before the
// load's own and took as long (~50 ms of a 1,000-module file's start).
func guessSpecs(src []byte, file string, loc PluginLocator) map[string]pluginhost.Spec {
	if len(src) == 0 {
		return nil // not read: the load reports why
	}
	blocks, ok := hclscan.Blocks(src)
	if !ok {
		return nil
	}
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return nil
	}
	p := &config.Pipeline{Plugins: map[string]*config.PluginBlock{}}
	var mods []*config.Module
	for _, b := range blocks {
		switch b.Type {
		case "plugin":
			if len(b.Labels) != 1 || b.Complex || p.Plugins[b.Labels[0]] != nil {
				return nil
			}
			pb, ok := guessPluginBlock(src[b.Start:b.End], file, dir)
			if !ok {
				return nil
			}
			p.Plugins[pb.Name] = pb
		case "module":
			if len(b.Labels) != 2 || b.Complex {
				return nil
			}
			plugin, _, _ := strings.Cut(b.Labels[0], ".")
			if !hclscan.ValidIdentifier(plugin) {
				return nil
			}
			mods = append(mods, &config.Module{Plugin: plugin})
		}
	}
	specs, _ := pluginSpecs(p, mods, loc) // a plugin not found is left to the load to report
	return specs
}

// guessPluginBlock decodes the source of a plugin block whose attributes
// are literals as config's decodePlugin would.
func guessPluginBlock(src []byte, file, dir string) (*config.PluginBlock, bool) {
	f, diags := hclsyntax.ParseConfig(src, file, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, false
	}
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok || len(body.Blocks) != 1 || len(body.Blocks[0].Labels) != 1 {
		return nil, false
	}
	b := body.Blocks[0]
	pb := &config.PluginBlock{Name: b.Labels[0]}
	if len(b.Body.Blocks) > 0 {
		return nil, false
	}
	for name, a := range b.Body.Attributes {
		v, diags := a.Expr.Value(nil)
		if diags.HasErrors() || !v.IsWhollyKnown() || v.IsNull() {
			return nil, false
		}
		switch name {
		case "source", "sha256":
			s, err := convert.Convert(v, cty.String)
			if err != nil || s.AsString() == "" {
				return nil, false
			}
			if name == "sha256" {
				pb.SHA256 = strings.ToLower(s.AsString())
			} else if path := s.AsString(); filepath.IsAbs(path) {
				pb.Source = filepath.Clean(path)
			} else {
				pb.Source = filepath.Join(dir, path)
			}
		case "args":
			l, err := convert.Convert(v, cty.List(cty.String))
			if err != nil {
				return nil, false
			}
			for _, e := range l.AsValueSlice() {
				pb.Args = append(pb.Args, e.AsString())
			}
		case "env":
			m, err := convert.Convert(v, cty.Map(cty.String))
			if err != nil {
				return nil, false
			}
			pb.Env = map[string]string{}
			for k, e := range m.AsValueMap() {
				pb.Env[k] = e.AsString()
			}
		default:
			return nil, false
		}
	}
	return pb, true
}

// prestart is the plugins of a pipeline file started from a guess of its
// specs (guessSpecs) while the file loads, so that their processes' start
// (exec, runtime start, handshake) overlaps the host's own load.
type prestart struct {
	// cancel ends the starts' context: close gives up on starts still
	// in progress (a plugin that never completes its handshake would
	// hold up the report of an invalid file).
	cancel  context.CancelFunc
	done    chan struct{} // closed when every start has ended
	specs   map[string]pluginhost.Spec
	results laterResults
	tls     *pluginhost.TLSIdentity
	set     *pluginSet       // the plugins that started
	errs    map[string]error // the plugins that did not, by name
}

// prestartPlugins starts the plugins guessSpecs finds in opts.File. The
// caller owns the result: it must hand it to startPluginsFrom, or close
// it.
func prestartPlugins(ctx context.Context, opts Options) *prestart {
	ctx, cancel := context.WithCancel(ctx)
	ps := &prestart{cancel: cancel, done: make(chan struct{}), errs: map[string]error{}}
	guessed := make(chan struct{})
	go func() {
		defer close(ps.done)
		// The host's certificate, which the plugins' command lines
		// carry, is made while the file is read: each is most of a
		// millisecond at a cold start.
		ps.tls, _ = pluginhost.NewTLSIdentity()
		<-guessed
		var errs []error
		ps.set, errs = startEach(ctx, ps.specs, pluginhost.Options{Logger: opts.Logger, Results: ps.results.call, KillGrace: opts.Grace, TLS: ps.tls, SocketRoot: opts.SocketRoot}, opts.Logger)
		for _, err := range errs {
			var se *startError
			if errors.As(err, &se) {
				ps.errs[se.name] = err
			}
		}
	}()
	ps.specs = guessSpecs(opts.source, opts.File, *opts.Locator)
	close(guessed)
	return ps
}

// close stops the plugins that started early and were not taken.
func (ps *prestart) close() {
	if ps == nil {
		return
	}
	ps.cancel()
	<-ps.done
	ps.set.Close()
}

// take waits for the early starts and hands over those of specs started
// with the very same spec: the started plugins, and the errors of those
// that failed (the same start would fail alike). The rest are stopped.
// It returns what is left to start.
func (ps *prestart) take(specs map[string]pluginhost.Spec, results pluginhost.ResultFunc) (taken map[string]*pluginhost.Plugin, errs []error, rest map[string]pluginhost.Spec) {
	rest = map[string]pluginhost.Spec{}
	if ps == nil {
		maps.Copy(rest, specs)
		return nil, nil, rest
	}
	<-ps.done
	ps.cancel() // the starts are over; a started plugin keeps no context
	ps.results.set(results)
	taken = map[string]*pluginhost.Plugin{}
	for name, spec := range specs {
		guess, ok := ps.specs[name]
		if !ok || !reflect.DeepEqual(guess, spec) {
			rest[name] = spec
			continue
		}
		if err, failed := ps.errs[name]; failed {
			errs = append(errs, err)
			continue
		}
		if pl, ok := ps.set.take(name); ok {
			taken[name] = pl
			continue
		}
		rest[name] = spec
	}
	ps.set.Close() // those not taken
	return taken, errs, rest
}

// laterResults serves sdk.Result for plugins started before the graph
// that answers it exists (a local run's pre-start, a worker's early start
// before it has its session); it is set before any module runs.
type laterResults struct {
	mu sync.Mutex
	f  pluginhost.ResultFunc
}

func (r *laterResults) set(f pluginhost.ResultFunc) {
	r.mu.Lock()
	r.f = f
	r.mu.Unlock()
}

func (r *laterResults) call(ctx context.Context, caller, dep string) (*coordinator.Envelope, error) {
	r.mu.Lock()
	f := r.f
	r.mu.Unlock()
	if f == nil {
		return nil, fmt.Errorf("result of %s asked for before any module runs", dep)
	}
	return f(ctx, caller, dep)
}
