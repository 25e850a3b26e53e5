package host

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/modpipe/modpipe/host/config"
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
	var looked []string
	for _, d := range l.Dirs {
		p := filepath.Join(d, bin)
		looked = append(looked, p)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("plugin %q not found: no executable %s in any of:\n  %s\nbuild it, add a plugin %q { source = \"...\" } block, or put its folder in MODPIPE_PLUGIN_PATH",
		name, bin, strings.Join(looked, "\n  "), name)
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
		if b, ok := p.Plugins[m.Plugin]; ok {
			env := make([]string, 0, len(b.Env))
			for k, v := range b.Env {
				env = append(env, k+"="+v)
			}
			sort.Strings(env)
			specs[m.Plugin] = pluginhost.Spec{Name: m.Plugin, Path: b.Source, Args: b.Args, Env: env, SHA256: b.SHA256}
			continue
		}
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
		specs[m.Plugin] = pluginhost.Spec{Name: m.Plugin, Path: path}
	}
	return specs, diags
}

// startPlugins starts every plugin concurrently (their start-up costs add
// up otherwise) and returns the set, or the errors of those that failed.
// On error the ones that did start are stopped again.
func startPlugins(ctx context.Context, specs map[string]pluginhost.Spec, opts pluginhost.Options, logger hclog.Logger) (*pluginSet, []error) {
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
			o.Logger = logger.Named("plugin." + spec.Name)
			pl, err := pluginhost.Start(ctx, spec, o)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("start plugin %q: %w", spec.Name, err))
				return
			}
			set.plugins[spec.Name] = pl
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		set.Close()
		return nil, errs
	}
	return set, nil
}

// Get returns the started plugin called name.
func (s *pluginSet) Get(name string) (*pluginhost.Plugin, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.plugins[name]
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
