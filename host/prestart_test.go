package host

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/modpipe/modpipe/host/config"
	"github.com/modpipe/modpipe/host/internal/proctest"
	"github.com/modpipe/modpipe/host/pluginhost"
)

// TestGuessSpecsMatchesTheLoad checks guessSpecs against the load's own
// pluginSpecs: where it guesses a plugin, the guess is the spec the run
// uses (else the early process is wasted); where a block is not literal,
// it guesses nothing.
func TestGuessSpecsMatchesTheLoad(t *testing.T) {
	testkit := filepath.Join(pluginDir, BinaryPrefix+"testkit")
	loc := PluginLocator{Dirs: []string{pluginDir}}
	for _, tc := range []struct {
		name, src string
		vars      map[string]string
		want      []string // plugins guessed; nil: no guess at all
	}{
		{
			name: "plugin block with literals",
			src: `plugin "tk" {
  source = "` + testkit + `"
  args   = ["-x", 1]
  env    = { A = "1", B = "two" }
}
module "tk.echo" "a" {}
`,
			want: []string{"tk"},
		},
		{
			name: "relative source and an upper-case pin",
			src: `plugin "tk" {
  source = "bin/tk"
  sha256 = "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789"
}
module "tk" "a" {}
`,
			want: []string{"tk"},
		},
		{
			name: "plugins found by name",
			src:  "module \"testkit.echo\" \"a\" {}\nmodule \"shell\" \"b\" {\n  command = [\"true\"]\n}\n",
			want: []string{"shell", "testkit"},
		},
		{
			name: "a plugin not found is left out",
			src:  "module \"testkit\" \"a\" {}\nmodule \"nosuch.kind\" \"b\" {}\n",
			want: []string{"testkit"},
		},
		{
			name: "source from a variable",
			src: `variable "bin" {
  default = "x"
}
plugin "tk" {
  source = var.bin
}
module "tk" "a" {}
`,
			vars: map[string]string{"bin": testkit},
		},
		{
			name: "syntax error",
			src:  "module \"testkit\" \"a\" {\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "pipeline.hcl")
			if err := os.WriteFile(file, []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			got := guessSpecs([]byte(tc.src), file, loc)
			if tc.want == nil {
				if got != nil {
					t.Fatalf("guessed %v; want no guess", got)
				}
				return
			}
			var names []string
			for name := range got {
				names = append(names, name)
			}
			if strings.Join(sorted(names), ",") != strings.Join(tc.want, ",") {
				t.Fatalf("guessed %v; want %v", names, tc.want)
			}
			cfg, diags := config.Load(file, config.Options{Vars: tc.vars, Environ: []string{}})
			if cfg == nil {
				t.Fatalf("load: %v", diags)
			}
			want, _ := pluginSpecs(cfg, cfg.Modules, loc)
			for name, spec := range got {
				if !specsEqual(spec, want[name]) {
					t.Errorf("plugin %s: guessed %+v; the load uses %+v", name, spec, want[name])
				}
			}
		})
	}
}

// TestRunWithPrestartedPlugins runs a pipeline whose guessed plugins are
// all used, or partly (--only): the runs succeed and no plugin process
// outlives them, the one started early for nothing included.
func TestRunWithPrestartedPlugins(t *testing.T) {
	testkit := filepath.Join(pluginDir, BinaryPrefix+"testkit")
	dir := t.TempDir()
	copyBin := filepath.Join(dir, "testkit-copy")
	raw, err := os.ReadFile(testkit)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyBin, raw, 0o755); err != nil {
		t.Fatal(err)
	}
	src := `variable "bin" {
  default = "` + testkit + `"
}
plugin "tk" {
  source = "` + testkit + `"
}
plugin "other" {
  source = "` + copyBin + `"
}
module "tk.echo" "a" {
  text = "a"
}
module "other.echo" "b" {
  text = "b"
}
`
	file := filepath.Join(dir, "pipeline.hcl")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		only []string
		ran  int
	}{
		{name: "all used", ran: 2},
		{name: "one used", only: []string{"a"}, ran: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), deadlockGuard)
			defer cancel()
			var out, errOut bytes.Buffer
			rep, err := Run(ctx, RunOptions{Options: Options{
				File: file, Only: tc.only, Environ: []string{},
				Stdout: &out, Stderr: &errOut,
				Locator: &PluginLocator{Dirs: []string{pluginDir}},
			}})
			if err != nil {
				t.Fatalf("run: %v\n%s%s", err, out.String(), errOut.String())
			}
			if len(rep.Modules) != tc.ran {
				t.Fatalf("%d modules ran; want %d", len(rep.Modules), tc.ran)
			}
			for _, bin := range []string{testkit, copyBin} {
				if pids := pluginChildren(bin); len(pids) > 0 {
					t.Fatalf("plugin processes %v of %s outlive the run", pids, bin)
				}
			}
		})
	}
}

// TestPrestartReportsLikeTheLoad checks that a plugin which cannot start
// is reported as before, once, whether or not it was started early.
func TestPrestartReportsLikeTheLoad(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	file := filepath.Join(dir, "pipeline.hcl")
	src := "plugin \"gone\" {\n  source = \"" + missing + "\"\n}\nmodule \"gone\" \"a\" {}\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadlockGuard)
	defer cancel()
	var errOut bytes.Buffer
	_, err := Run(ctx, RunOptions{Options: Options{File: file, Environ: []string{}, Stdout: &bytes.Buffer{}, Stderr: &errOut, Locator: &PluginLocator{}}})
	var ee *ExitError
	if !asExitError(err, &ee) || ee.Code != ExitPluginStart {
		t.Fatalf("run error %v; want exit code %d", err, ExitPluginStart)
	}
	if n := strings.Count(errOut.String(), `Error: `+file+`:1:1: Plugin did not start`); n != 1 || strings.Count(errOut.String(), `start plugin "gone"`) != 1 {
		t.Fatalf("the start error is reported %d times; want once:\n%s", n, errOut.String())
	}
}

func asExitError(err error, target **ExitError) bool {
	e, ok := err.(*ExitError)
	if ok {
		*target = e
	}
	return ok
}

func specsEqual(a, b pluginhost.Spec) bool {
	return a.Name == b.Name && a.Path == b.Path && a.SHA256 == b.SHA256 &&
		strings.Join(a.Args, "\x00") == strings.Join(b.Args, "\x00") &&
		strings.Join(a.Env, "\x00") == strings.Join(b.Env, "\x00")
}

func sorted(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

// pluginChildren returns the pids of this process's live children that
// run bin, waiting (up to deadlockGuard) for those being stopped.
func pluginChildren(bin string) []int {
	deadline := time.Now().Add(deadlockGuard)
	for {
		pids := proctest.Children(bin)
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWorkerChecksItsLoadEarly checks that a worker's own load is checked
// (bodies against kinds, static configs by the plugin) while it waits for
// the master, with what a check at the run's start would find.
func TestWorkerChecksItsLoadEarly(t *testing.T) {
	testkit := filepath.Join(pluginDir, BinaryPrefix+"testkit")
	for _, tc := range []struct {
		name, body string
		wantErr    string // "" : the check passes
	}{
		{name: "valid", body: `command = ["true"]`},
		{name: "rejected by the plugin", body: `command = ["true"]
  script = "true"`, wantErr: "set exactly one of command or script"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "pipeline.hcl")
			src := "plugin \"tk\" {\n  source = \"" + testkit + "\"\n}\nmodule \"tk.pick\" \"p\" {\n  " + tc.body + "\n}\n"
			if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), deadlockGuard)
			defer cancel()
			opts := Options{File: file, Environ: []string{}, Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Locator: &PluginLocator{}, Logger: hclog.NewNullLogger()}
			e := startEarly(ctx, opts, PreloadInstance(opts, 1), nil)
			if e == nil {
				t.Fatal("nothing started early")
			}
			defer e.discard()
			<-e.done
			if e.err != nil {
				t.Fatal(e.err)
			}
			c := e.checked
			if tc.wantErr == "" {
				if c.p == nil || c.diags.HasErrors() {
					t.Fatalf("early check failed: %v", c.diags)
				}
				return
			}
			if c.p != nil || !strings.Contains(c.diags.Error(), tc.wantErr) || !strings.Contains(c.diags.Error(), "pipeline.hcl:") {
				t.Fatalf("early check = %v; want an error at pipeline.hcl:LINE containing %q", c.diags, tc.wantErr)
			}
		})
	}
}
