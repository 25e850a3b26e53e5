package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/report"
)

// These end-to-end tests build the real host binary and the real plugins
// once, then run real pipelines through the CLI, as a user would.

var (
	hostBin string // the built host binary
	binDir  string // its folder; plugins live in binDir/plugins
)

// testPlugins are built next to the host binary, found by name.
var testPlugins = map[string]string{
	"shell":   "./plugins/shell",
	"go":      "./plugins/go",
	"hello":   "./plugins/examples/hello",
	"testkit": "./sdk/internal/testkit",
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "modpipe-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		binDir = dir
		hostBin = filepath.Join(dir, "host")
		root, err := filepath.Abs("../..")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		build := func(out, pkg string) error {
			cmd := exec.Command("go", "build", "-o", out, pkg)
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
			}
			return nil
		}
		if err := build(hostBin, "./cmd/host"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for name, pkg := range testPlugins {
			if err := build(filepath.Join(dir, "plugins", "modpipe-plugin-"+name), pkg); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
	report         *report.Run
}

// ranSomething reports whether the run's report shows a run that started:
// none written, or one that says the run did not start (invalid, error)
// with no module, means nothing ran.
func (r result) ranSomething() bool {
	return r.report != nil && (len(r.report.Modules) > 0 || r.report.Error == nil ||
		r.report.Status != report.RunInvalid && r.report.Status != report.RunError)
}

// env is the environment host runs with: the test's own, minus anything
// that would change what it does (a CI's variables, a plugin path).
func env(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "MODPIPE_"), k == "GITHUB_ACTIONS", k == "GITLAB_CI", k == "BUILDKITE":
			continue
		}
		out = append(out, kv)
	}
	return append(out, extra...)
}

// writeFile writes text to file, failing the test if it cannot.
func writeFile(t *testing.T, file, text string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runHost runs `host ARGS...` and, for `run`, reads the JSON report back.
func runHost(t *testing.T, args ...string) result {
	t.Helper()
	return runHostInput(t, nil, args...)
}

// runHostInput is runHost with stdin as the host's standard input: a
// pipe, as exec makes one for a reader that is not a file.
func runHostInput(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	reportPath := filepath.Join(t.TempDir(), "report.json")
	if len(args) > 0 && args[0] == "run" {
		args = append(args, "--report", "json="+reportPath)
	}
	cmd := exec.Command(hostBin, args...)
	cmd.Env = env()
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run host %v: %v", args, err)
		}
		r.code = ee.ExitCode()
	}
	if b, err := os.ReadFile(reportPath); err == nil {
		r.report = &report.Run{}
		if err := json.Unmarshal(b, r.report); err != nil {
			t.Fatalf("report: %v\n%s", err, b)
		}
	}
	return r
}

func (r result) module(t *testing.T, name string) coordinator.Envelope {
	t.Helper()
	if r.report == nil {
		t.Fatalf("no report; exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, e := range r.report.Modules {
		if e.Module == name {
			return e
		}
	}
	t.Fatalf("module %s not in the report:\n%s", name, r.stdout)
	return coordinator.Envelope{}
}

func (r result) wantCode(t *testing.T, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
}

func wantStatus(t *testing.T, e coordinator.Envelope, s coordinator.Status) {
	t.Helper()
	if e.Status != s {
		t.Fatalf("%s: status %s, want %s (error %+v, skip %q)", e.Module, e.Status, s, e.Error, e.SkipReason)
	}
}

func TestReferencesAcrossModules(t *testing.T) {
	r := runHost(t, "run", "testdata/refs.hcl")
	r.wantCode(t, 0)
	c := r.module(t, "consumer")
	wantStatus(t, c, coordinator.StatusSucceeded)
	var v struct {
		Stdout string `json:"stdout"`
	}
	if err := json.Unmarshal(c.Value, &v); err != nil {
		t.Fatal(err)
	}
	if v.Stdout != "sha=abc123 count=4" {
		t.Errorf("consumer stdout %q, want %q", v.Stdout, "sha=abc123 count=4")
	}
	if c.Type != "shell.exec/v1" || c.Plugin != "shell" || c.Attempts != 1 || c.Host == "" {
		t.Errorf("envelope fields: %+v", c)
	}
	if !strings.Contains(r.stdout, "consumer | sha=abc123 count=4") {
		t.Errorf("module output is not prefixed with its name:\n%s", r.stdout)
	}
	if r.report.Status != report.RunSucceeded || r.report.Pipeline != "refs" {
		t.Errorf("report: status %s pipeline %q", r.report.Status, r.report.Pipeline)
	}
}

// TestInfoLogTellsTheRunsStages: --log-level info is the level a user
// turns on to see what the host is doing, so a local run says there what
// it loaded, which plugins it started and how the run ended (a line per
// stage, none per module), and each plugin's logger is named once.
func TestInfoLogTellsTheRunsStages(t *testing.T) {
	r := runHost(t, "run", "testdata/refs.hcl", "--no-progress", "--log-level", "info")
	r.wantCode(t, 0)
	for _, want := range []string{
		"[INFO]  host: pipeline loaded: file=testdata/refs.hcl modules=2",
		"[INFO]  host.plugin.shell: plugin ready: path=",
		"[INFO]  host: plugins ready and modules checked: plugins=1",
		"[INFO]  host: run finished: run_id=" + r.report.RunID + " status=succeeded modules=2",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "plugin.shell.plugin.shell") {
		t.Errorf("a plugin's logger is named twice:\n%s", r.stderr)
	}
	quiet := runHost(t, "run", "testdata/refs.hcl", "--no-progress")
	quiet.wantCode(t, 0)
	if strings.Contains(quiet.stderr, "[INFO]") {
		t.Errorf("the default level (warn) logs info lines:\n%s", quiet.stderr)
	}
}

func TestFailureStop(t *testing.T) {
	r := runHost(t, "run", "testdata/stop.hcl")
	r.wantCode(t, 1)
	bad := r.module(t, "bad")
	wantStatus(t, bad, coordinator.StatusFailed)
	if bad.Error == nil || !strings.Contains(bad.Error.Message, "exit status 3") || !strings.Contains(bad.Error.Tail, "boom") {
		t.Errorf("bad's error should carry the exit code and stderr tail: %+v", bad.Error)
	}
	slow := r.module(t, "slow")
	wantStatus(t, slow, coordinator.StatusCancelled)
	if slow.Error == nil || !strings.Contains(slow.Error.Message, "the pipeline stopped after bad failed") {
		t.Errorf("slow's error should say which failure stopped the pipeline: %+v", slow.Error)
	}
	after := r.module(t, "after")
	if after.Status != coordinator.StatusSkipped && after.Status != coordinator.StatusCancelled {
		t.Errorf("after: %s, want skipped or cancelled", after.Status)
	}
	wantStatus(t, r.module(t, "cleanup"), coordinator.StatusSucceeded)
	if r.report.Status != report.RunFailed {
		t.Errorf("run status %s", r.report.Status)
	}
}

func TestFailureContinue(t *testing.T) {
	r := runHost(t, "run", "testdata/continue.hcl")
	r.wantCode(t, 1)
	wantStatus(t, r.module(t, "bad"), coordinator.StatusFailed)
	wantStatus(t, r.module(t, "slow"), coordinator.StatusSucceeded)
	wantStatus(t, r.module(t, "after_slow"), coordinator.StatusSucceeded)
	after := r.module(t, "after")
	wantStatus(t, after, coordinator.StatusSkipped)
	if !strings.Contains(after.SkipReason, "bad") {
		t.Errorf("skip reason should name the failed dependency: %q", after.SkipReason)
	}
	wantStatus(t, r.module(t, "cleanup"), coordinator.StatusSucceeded)
}

func TestRetry(t *testing.T) {
	dir := t.TempDir()
	r := runHost(t, "run", "testdata/retry.hcl", "--var", "dir="+dir)
	r.wantCode(t, 0)
	flaky := r.module(t, "flaky")
	wantStatus(t, flaky, coordinator.StatusSucceeded)
	if flaky.Attempts != 3 {
		t.Errorf("flaky attempts %d, want 3", flaky.Attempts)
	}
	never := r.module(t, "never")
	wantStatus(t, never, coordinator.StatusFailed)
	if never.Attempts != 2 {
		t.Errorf("never attempts %d, want 2", never.Attempts)
	}
}

func TestTimeout(t *testing.T) {
	r := runHost(t, "run", "testdata/timeout.hcl")
	r.wantCode(t, 1)
	s := r.module(t, "sleepy")
	wantStatus(t, s, coordinator.StatusTimedOut)
	if s.Error == nil || !strings.Contains(s.Error.Message, "500ms") {
		t.Errorf("timeout error should name the timeout: %+v", s.Error)
	}
	wantStatus(t, r.module(t, "next"), coordinator.StatusSkipped)

	// ignore_failure: the timeout does not fail the pipeline, and
	// dependents still run (like continue-on-error).
	r = runHost(t, "run", "testdata/timeout.hcl", "--var", "ignore=true")
	r.wantCode(t, 0)
	wantStatus(t, r.module(t, "sleepy"), coordinator.StatusTimedOut)
	wantStatus(t, r.module(t, "next"), coordinator.StatusSucceeded)
}

// A module stopped by its timeout or a cancellation keeps the partial
// result its plugin sends with the error, as a failed module does (the
// sdk sends a value returned with the error); both used to be dropped.
func TestStoppedModuleKeepsItsPartialResult(t *testing.T) {
	dir := t.TempDir()
	partial := func(t *testing.T, e coordinator.Envelope, status coordinator.Status) {
		t.Helper()
		wantStatus(t, e, status)
		var got struct {
			Module string `json:"module"`
		}
		if err := json.Unmarshal(e.Value, &got); err != nil || got.Module != e.Module || e.Type != "testkit.ran/v1" {
			t.Errorf("%s: value %s (%v), type %q; want its partial result", e.Module, e.Value, err, e.Type)
		}
	}
	t.Run("timed out", func(t *testing.T) {
		file := filepath.Join(dir, "timeout.hcl")
		writeFile(t, file, `pipeline {
  on_failure = "continue"
}
module "testkit.sleep" "slow" {
  duration = "20s"
  partial  = true
  timeout  = "300ms"
}
module "testkit.sleep" "bare" {
  duration = "20s"
  timeout  = "300ms"
}
`)
		r := runHost(t, "run", file, "--no-progress")
		r.wantCode(t, 1)
		partial(t, r.module(t, "slow"), coordinator.StatusTimedOut)
		if bare := r.module(t, "bare"); string(bare.Value) != "null" && len(bare.Value) != 0 {
			t.Errorf("bare: value %s, want none (it returned a zero value)", bare.Value)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		file := filepath.Join(dir, "stop.hcl")
		writeFile(t, file, `module "testkit.sleep" "slow" {
  duration = "20s"
  partial  = true
}
module "testkit.sleep" "quick" {
  duration = "20s"
  timeout  = "200ms"
}
`)
		r := runHost(t, "run", file, "--no-progress")
		r.wantCode(t, 1)
		partial(t, r.module(t, "slow"), coordinator.StatusCancelled)
	})
}

func TestInvalidPipelines(t *testing.T) {
	tests := []struct {
		file string
		code int
		want []string
	}{
		{"testdata/bad_syntax.hcl", 2, []string{"bad_syntax.hcl:7:1"}},
		{"testdata/unknown_attr.hcl", 2, []string{"unknown_attr.hcl:2:3", "comand", `"command"`}},
		{"testdata/cycle.hcl", 2, []string{"cycle.hcl", "a", "b", "c"}},
		{"testdata/missing_plugin.hcl", 3, []string{"missing_plugin.hcl:1:8", "modpipe-plugin-nosuchplugin", filepath.Join(binDir, "plugins", "modpipe-plugin-nosuchplugin")}},
		{"testdata/does_not_exist.hcl", 2, []string{"does_not_exist.hcl"}},
		{"-", 2, []string{`"-" (standard input) is not one: save the pipeline to a file`, "To read a pipe anyway, give /dev/stdin"}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			for _, cmd := range []string{"run", "validate"} {
				r := runHost(t, cmd, tt.file)
				r.wantCode(t, tt.code)
				for _, w := range tt.want {
					if !strings.Contains(r.stderr, w) {
						t.Errorf("%s: stderr does not mention %q:\n%s", cmd, w, r.stderr)
					}
				}
				// The report says the run did not start, and nothing ran.
				if r.ranSomething() || r.report != nil && r.report.Status != map[int]report.Status{2: report.RunInvalid, 3: report.RunError}[tt.code] {
					t.Errorf("%s: an invalid pipeline must not run anything, but the report says %s with %d modules", cmd, r.report.Status, len(r.report.Modules))
				}
			}
		})
	}
}

func TestBadRunFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--parallelism", "-1"}, "--parallelism -1"},
		{[]string{"--grace", "-5s"}, "--grace -5s: give a positive duration"},
		{[]string{"--grace", "0s"}, "--grace 0s: give a positive duration"},
		{[]string{"--slots", "-2"}, "--slots -2"},
		{[]string{"--log-level", "loud"}, `log level "loud"`},
	} {
		r := runHost(t, append([]string{"run", "testdata/stop.hcl"}, tc.args...)...)
		r.wantCode(t, 2)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: stderr lacks %q:\n%s", tc.args, tc.want, r.stderr)
		}
	}
}

// Usage errors say what the command needs and where its help is; --version
// prints what host version does.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run"}, "Error: host run needs the pipeline file: host run FILE\nRun 'host run --help' for usage."},
		{[]string{"validate", "a.hcl", "b.hcl"}, `host validate takes one pipeline file, not 2 arguments: ["a.hcl" "b.hcl"]`},
		{[]string{"graph", "--bogus", "x.hcl"}, "Run 'host graph --help' for usage."},
	} {
		r := runHost(t, tc.args...)
		r.wantCode(t, 2)
		if !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: stderr lacks %q:\n%s", tc.args, tc.want, r.stderr)
		}
	}
	r := runHost(t, "run", "testdata/refs.hcl", "--slots", "2")
	r.wantCode(t, 0)
	if !strings.Contains(r.stderr, "fleet settings ignored") || !strings.Contains(r.stderr, "--slots") {
		t.Errorf("--slots on a single-machine run: no warning:\n%s", r.stderr)
	}
	v, flag := runHost(t, "version"), runHost(t, "--version")
	v.wantCode(t, 0)
	flag.wantCode(t, 0)
	if !strings.HasPrefix(v.stdout, "modpipe host ") || flag.stdout != v.stdout {
		t.Errorf("host --version printed %q, host version %q", flag.stdout, v.stdout)
	}
}

// A file with no module runs nothing; that is refused rather than passed.
func TestPipelineWithoutModulesRefused(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{"empty": "", "comments": "# to do\npipeline {\n  name = \"x\"\n}\n"} {
		file := filepath.Join(dir, name+".hcl")
		writeFile(t, file, text)
		for _, cmd := range []string{"validate", "run", "plugins", "graph"} {
			r := runHost(t, cmd, file)
			r.wantCode(t, 2)
			if !strings.Contains(r.stderr, file+":1:1: No modules") {
				t.Errorf("%s %s: stderr lacks the error:\n%s", cmd, name, r.stderr)
			}
		}
	}
}

// A pipeline file given as a pipe (/dev/stdin, a shell's <(...)) is read
// once: the plugins' early guess used to drain it, and the load then found
// an empty file ("declares no module blocks").
func TestPipelineFromAPipe(t *testing.T) {
	const text = "pipeline {\n  name = \"piped\"\n}\nmodule \"shell\" \"a\" {\n  command = [\"echo\", \"hello from a pipe\"]\n}\n"
	for _, tc := range []struct {
		args []string
		want string // in stdout
	}{
		{[]string{"validate"}, "/dev/stdin is valid: 1 module"},
		{[]string{"run"}, "hello from a pipe"},
		{[]string{"run", "--dry-run"}, "Plan for piped: 1 module in 1 wave, up to"},
		{[]string{"graph"}, `"a"`},
		{[]string{"plugins"}, "shell"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runHostInput(t, strings.NewReader(text), append(tc.args, "/dev/stdin")...)
			r.wantCode(t, 0)
			if !strings.Contains(r.stdout, tc.want) {
				t.Errorf("stdout lacks %q:\n%s\nstderr:\n%s", tc.want, r.stdout, r.stderr)
			}
		})
	}
}

// A run that cannot start still writes the reports asked for, saying why,
// so a CI step that reads them does not fail for a missing file instead.
func TestReportsOfARunThatDidNotStart(t *testing.T) {
	dir := t.TempDir()
	// A plugin that takes its time to fail: the report's run starts when
	// the command did, not when it gave up.
	slow := filepath.Join(dir, "slow-plugin")
	writeFile(t, slow, "#!/bin/sh\nsleep 0.3\necho 'cannot start' >&2\nexit 1\n")
	if err := os.Chmod(slow, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, text string
		code       int
		status     report.Status
		want       string
		minMS      int64
	}{
		{"invalid", "module \"shell\" \"a\" {\n  command = [\"true\"]\n  depend_on = []\n}\n", 2, report.RunInvalid, ":3:3: Unsupported argument", 0},
		{"plugin", "module \"nosuchkind\" \"a\" {}\n", 3, report.RunError, ":1:8: Plugin not found", 0},
		{"slow plugin", "plugin \"slow\" {\n  source = \"" + slow + "\"\n}\nmodule \"slow\" \"a\" {}\n", 3, report.RunError, "cannot start", 300},
		// The report names the pipeline as its started runs do.
		{"named", "pipeline {\n  name = \"release\"\n}\nmodule \"nosuchkind\" \"a\" {}\n", 3, report.RunError, "Plugin not found", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, tc.name+".hcl")
			writeFile(t, file, tc.text)
			args := []string{"run", file}
			for _, f := range report.Formats {
				args = append(args, "--report", f+"="+filepath.Join(dir, tc.name+"."+f))
			}
			r := runHost(t, args...)
			r.wantCode(t, tc.code)
			var run report.Run
			b, err := os.ReadFile(filepath.Join(dir, tc.name+".json"))
			if err != nil || json.Unmarshal(b, &run) != nil {
				t.Fatalf("JSON report: %v\n%s", err, b)
			}
			if run.Status != tc.status || run.Error == nil || !strings.Contains(run.Error.Message, tc.want) {
				t.Errorf("JSON report: status %s error %+v, want %s with %q", run.Status, run.Error, tc.status, tc.want)
			}
			wantName := tc.name + ".hcl"
			if tc.name == "named" {
				wantName = "release"
			}
			if run.Pipeline != wantName {
				t.Errorf("JSON report: pipeline %q, want %q", run.Pipeline, wantName)
			}
			if d := run.EndedAt.Sub(run.StartedAt).Milliseconds() - run.DurationMS; run.DurationMS < tc.minMS || d < -1 || d > 1 {
				t.Errorf("JSON report: %s to %s, duration_ms %d; want at least %d ms, from the command's start", run.StartedAt, run.EndedAt, run.DurationMS, tc.minMS)
			}
			for _, f := range []string{"junit", "markdown"} {
				b, err := os.ReadFile(filepath.Join(dir, tc.name+"."+f))
				if err != nil || !strings.Contains(string(b), tc.want) {
					t.Errorf("%s report lacks %q (%v):\n%s", f, tc.want, err, b)
				}
			}
		})
	}
}

// A module whose configuration fails when it is evaluated (it reads a
// result) names the place as file:line:col, like every load-time error.
// The attribute it misses is in a's parsed stdout (json), whose shape the
// shell plugin cannot declare, so only the run finds it.
func TestRunTimeConfigErrorNamesItsPlace(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rt.hcl")
	text := "module \"shell\" \"a\" {\n  script      = \"echo {}\"\n  stdout_json = true\n}\nmodule \"shell\" \"b\" {\n  command = [\"echo\", module.a.value.json.nope]\n}\n"
	writeFile(t, file, text)
	r := runHost(t, "run", file)
	r.wantCode(t, 1)
	b := r.module(t, "b")
	if want := "evaluate configuration: " + file + ":6:41: Unsupported attribute"; b.Error == nil || b.Error.Kind != coordinator.ErrorKindConfig || !strings.Contains(b.Error.Message, want) {
		t.Errorf("b's error: %+v, want it to contain %q", b.Error, want)
	}
	if b.Error == nil || b.Error.File != file || b.Error.Line != 6 || b.Error.Column != 41 {
		t.Errorf("b's error: %+v, want it placed at %s:6:41", b.Error, file)
	}
	// In GitHub Actions the annotation points at that place.
	gh := runHostEnv(t, []string{"GITHUB_ACTIONS=true"}, "run", file)
	gh.wantCode(t, 1)
	if want := "::error file=" + file + ",line=6,col=41,title=b failed::evaluate configuration: "; !strings.Contains(gh.stdout, want) {
		t.Errorf("stdout lacks %q:\n%s", want, gh.stdout)
	}
	// Inside the workspace, the path is the file's in the repository.
	gh = runHostEnv(t, []string{"GITHUB_ACTIONS=true", "GITHUB_WORKSPACE=" + filepath.Dir(file)}, "run", file)
	gh.wantCode(t, 1)
	if want := "::error file=rt.hcl,line=6,col=41,title=b failed::"; !strings.Contains(gh.stdout, want) {
		t.Errorf("stdout lacks %q:\n%s", want, gh.stdout)
	}
}

// file() of a file that a module it runs after writes: not an error before
// the run, read when the module starts, and the module's own failure
// (kind config, at its place) when the file is still missing then. A
// module that runs after none is checked before the run, as ever.
func TestFileWrittenByAnEarlierModule(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "gen.hcl")
	writeFile(t, file, `variable "write" {
  default = true
}
module "shell" "gen" {
  script = var.write ? "echo generated > out.txt" : "true"
  dir    = "`+dir+`"
}
module "shell" "use" {
  command    = ["echo", trimspace(file("out.txt"))]
  depends_on = [module.gen]
}
`)
	r := runHost(t, "run", file)
	r.wantCode(t, 0)
	if !strings.Contains(r.stdout, "use | generated") {
		t.Errorf("use did not read the file gen wrote:\n%s", r.stdout)
	}

	if err := os.Remove(filepath.Join(dir, "out.txt")); err != nil {
		t.Fatal(err)
	}
	r = runHost(t, "run", file, "--var", "write=false")
	r.wantCode(t, 1)
	wantStatus(t, r.module(t, "gen"), coordinator.StatusSucceeded)
	u := r.module(t, "use")
	if want := file + ":9:41: Invalid function argument"; u.Error == nil || u.Error.Kind != coordinator.ErrorKindConfig || !strings.Contains(u.Error.Message, want) || !strings.Contains(u.Error.Message, "no file exists at") {
		t.Errorf("use's error: %+v, want it to contain %q", u.Error, want)
	}

	lone := filepath.Join(dir, "lone.hcl")
	writeFile(t, lone, "module \"shell\" \"a\" {\n  command = [\"cat\", file(\"typo.txt\")]\n}\n")
	r = runHost(t, "validate", lone)
	r.wantCode(t, 2)
	if want := lone + ":2:27: Invalid function argument"; !strings.Contains(r.stderr, want) {
		t.Errorf("validate of a module that runs after none: want %q in\n%s", want, r.stderr)
	}
}

// On GitHub Actions a run that cannot start says why where the job's page
// shows it: an ::error annotation and the step summary.
func TestRunThatDidNotStartOnGitHub(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "inv.hcl")
	writeFile(t, file, "module \"shell\" \"x\" {\n  comand = [\"true\"]\n}\n")
	summary := filepath.Join(dir, "summary.md")
	r := runHostEnv(t, []string{"GITHUB_ACTIONS=true", "GITHUB_STEP_SUMMARY=" + summary}, "run", file)
	r.wantCode(t, 2)
	// At the line, which GitHub shows on the file itself.
	if want := "::error file=" + file + ",line=2,col=3,title=Unsupported argument::"; !strings.Contains(r.stdout, want) {
		t.Errorf("no ::error annotation %q:\n%s", want, r.stdout)
	}
	b, err := os.ReadFile(summary)
	if err != nil || !strings.Contains(string(b), "The run did not start") || !strings.Contains(string(b), "Unsupported argument") {
		t.Errorf("step summary (%v):\n%s", err, b)
	}
}

// A failure that ignore_failure lets pass is shown as one: marked in the
// summary and every report, a warning on GitHub, not a red JUnit case.
func TestIgnoredFailureIsMarked(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ign.hcl")
	text := "module \"shell\" \"ign\" {\n  command = [\"false\"]\n  ignore_failure = true\n}\nmodule \"shell\" \"ok\" {\n  command = [\"true\"]\n}\n"
	writeFile(t, file, text)
	junit := filepath.Join(dir, "junit.xml")
	r := runHostEnv(t, []string{"GITHUB_ACTIONS=true"}, "run", file, "--report", "junit="+junit)
	r.wantCode(t, 0)
	if r.report.Pipeline != "ign.hcl" {
		t.Errorf("pipeline name %q, want the file's name (no pipeline block)", r.report.Pipeline)
	}
	ign := r.module(t, "ign")
	if ign.Status != coordinator.StatusFailed || !ign.IgnoredFailure {
		t.Errorf("ign: %s ignored_failure=%v, want failed and marked ignored", ign.Status, ign.IgnoredFailure)
	}
	if !strings.Contains(r.stdout, "::warning title=ign failed (ignored)::") || strings.Contains(r.stdout, "::error") {
		t.Errorf("want a ::warning and no ::error for the ignored failure:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "failed (ignored)") {
		t.Errorf("the summary does not mark the ignored failure:\n%s", r.stdout)
	}
	b, err := os.ReadFile(junit)
	if err != nil || !strings.Contains(string(b), `<skipped message="ignored failure (ignore_failure): `) || strings.Contains(string(b), "<failure") {
		t.Errorf("JUnit (%v):\n%s", err, b)
	}
}

// Describing a file's plugins needs no variable's value.
func TestPluginsWithoutVariableValues(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pv.hcl")
	text := "variable \"v\" {\n  type = string\n}\nmodule \"shell\" \"a\" {\n  command = [\"echo\", var.v]\n}\n"
	writeFile(t, file, text)
	r := runHost(t, "plugins", file)
	r.wantCode(t, 0)
	if !strings.Contains(r.stdout, "plugin shell ") || !strings.Contains(r.stdout, `module "shell.exec" (default)`) {
		t.Errorf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	// Other errors are still reported.
	writeFile(t, file, text+"module \"shell\" \"a\" {}\n")
	runHost(t, "plugins", file).wantCode(t, 2)
}

// A file's errors of every stage come in one pass, so fixing one kind
// does not uncover the next only on the next attempt.
func TestValidateReportsEveryStage(t *testing.T) {
	for _, cmd := range []string{"validate", "run"} {
		t.Run(cmd, func(t *testing.T) {
			r := runHost(t, cmd, "testdata/every-kind.hcl")
			r.wantCode(t, 2)
			for _, want := range []string{
				`every-kind.hcl:6:3: Unsupported argument`, `Did you mean "depends_on"?`,
				`every-kind.hcl:10:3: Unsupported argument`, `Did you mean "command"?`,
				`every-kind.hcl:20:17: Dependency cycle`,
				`every-kind.hcl:25:13: Invalid duration for timeout`,
				`every-kind.hcl:29:13: Incorrect attribute value type`,
				`every-kind.hcl:32:8: Plugin not found`,
			} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
				}
			}
		})
	}
}

// A plugin that is not there does not hide what the plugins that are
// find in their modules: every error in one pass, exit 3 as for any
// plugin that cannot start, and nothing runs.
func TestMissingPluginDoesNotHideTheOthersErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "missing.hcl")
	writeFile(t, file, `module "nosuch" "a" {
  command = ["echo"]
}
module "shell.nokind" "b" {
  command = ["echo"]
}
module "shell" "c" {
  comand = ["x"]
}
`)
	for _, cmd := range []string{"validate", "run"} {
		t.Run(cmd, func(t *testing.T) {
			r := runHost(t, cmd, file)
			r.wantCode(t, 3)
			for _, want := range []string{
				`missing.hcl:1:8: Plugin not found`,
				`missing.hcl:4:8: Unknown module kind "shell.nokind"`,
				`missing.hcl:8:3: Unsupported argument`, `Did you mean "command"?`,
			} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
				}
			}
			if r.ranSomething() {
				t.Errorf("modules ran: %+v", r.report)
			}
		})
	}
}

// A plugin block whose plugin does not start (no binary at its source,
// a binary that is not a plugin, a sha256 that does not match) is an
// error at the block, with its snippet, reported with the file's other
// errors (exit 3). It used to be a bare "Error:" line alone.
func TestBrokenPluginBlockDoesNotHideTheOthersErrors(t *testing.T) {
	dir := t.TempDir()
	notPlugin := filepath.Join(dir, "not-a-plugin")
	writeFile(t, notPlugin, "#!/bin/sh\necho not a plugin\n")
	if err := os.Chmod(notPlugin, 0o755); err != nil {
		t.Fatal(err)
	}
	shell := filepath.Join(binDir, "plugins", "modpipe-plugin-shell")
	for _, tc := range []struct {
		name, block, why string
	}{
		{"no binary", `source = "nope"`, "no plugin binary at this path"},
		{"not a plugin", fmt.Sprintf("source = %q", notPlugin), "it is not a modpipe plugin"},
		{"sha256 mismatch", fmt.Sprintf("source = %q\n  sha256 = %q", shell, strings.Repeat("0", 64)), "the binary's sha256 does not match the pinned one"},
	} {
		file := filepath.Join(dir, "broken.hcl")
		writeFile(t, file, `plugin "broken" {
  `+tc.block+`
}
module "broken" "a" {
  command = ["echo"]
}
module "shell" "b" {
  comand = ["x"]
}
`)
		for _, cmd := range []string{"validate", "run"} {
			t.Run(tc.name+"/"+cmd, func(t *testing.T) {
				r := runHost(t, cmd, file)
				r.wantCode(t, 3)
				for _, want := range []string{
					`broken.hcl:1:1: Plugin did not start`, `1: plugin "broken" {`, tc.why,
					`Unsupported argument`, `Did you mean "command"?`,
				} {
					if !strings.Contains(r.stderr, want) {
						t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
					}
				}
				if r.ranSomething() {
					t.Errorf("modules ran: %+v", r.report)
				}
			})
		}
	}
}

// A plugin that dies checking a config is the plugin's failure, not the
// file's: exit 3, as for a plugin that cannot start, naming how it ended.
func TestPluginDyingInValidateExits3(t *testing.T) {
	file := filepath.Join(t.TempDir(), "dies.hcl")
	writeFile(t, file, `module "testkit.checkpanic" "a" {
  message = "exit"
}
`)
	for _, cmd := range []string{"validate", "run"} {
		t.Run(cmd, func(t *testing.T) {
			r := runHost(t, cmd, file)
			r.wantCode(t, 3)
			for _, want := range []string{`dies.hcl:1:1: Plugin could not validate the module`, `died while answering`, `exit status`} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
				}
			}
			if r.ranSomething() {
				t.Errorf("modules ran: %+v", r.report)
			}
		})
	}
}

func TestCycleNamesEveryModule(t *testing.T) {
	r := runHost(t, "validate", "testdata/cycle.hcl")
	r.wantCode(t, 2)
	if !strings.Contains(r.stderr, "->") {
		t.Errorf("the cycle should be spelled out:\n%s", r.stderr)
	}
}

func TestPluginCrashThenRestart(t *testing.T) {
	r := runHost(t, "run", "testdata/crash.hcl")
	r.wantCode(t, 0)
	boom := r.module(t, "boom")
	wantStatus(t, boom, coordinator.StatusFailed)
	if boom.Error == nil || boom.Error.Kind != coordinator.ErrorKindCrash ||
		!strings.Contains(boom.Error.Message, `crashed while running module "boom"`) ||
		!strings.Contains(boom.Error.Tail, "the plugin fell over") {
		t.Errorf("boom: want a crash error naming the module with the panic in its tail, got %+v", boom.Error)
	}
	wantStatus(t, r.module(t, "after"), coordinator.StatusSucceeded)
	gone := r.module(t, "gone")
	wantStatus(t, gone, coordinator.StatusFailed)
	if gone.Error == nil || gone.Error.Kind != coordinator.ErrorKindCrash || !strings.Contains(gone.Error.Tail, "exiting with 7") {
		t.Errorf("gone: want a crash error with the stderr tail, got %+v", gone.Error)
	}
	wantStatus(t, r.module(t, "last"), coordinator.StatusSucceeded)
}

func TestResultThroughBroker(t *testing.T) {
	r := runHost(t, "run", "testdata/broker.hcl")
	r.wantCode(t, 1)
	reader := r.module(t, "reader")
	wantStatus(t, reader, coordinator.StatusSucceeded)
	var v struct {
		Value struct {
			JSON struct {
				SHA string `json:"sha"`
			} `json:"json"`
		} `json:"value"`
	}
	if err := json.Unmarshal(reader.Value, &v); err != nil {
		t.Fatal(err)
	}
	if v.Value.JSON.SHA != "abc123" {
		t.Errorf("reader got %s", reader.Value)
	}
	// A module may only read what it depends on.
	sneaky := r.module(t, "sneaky")
	wantStatus(t, sneaky, coordinator.StatusFailed)
	if sneaky.Error == nil || !strings.Contains(sneaky.Error.Message, "not a dependency") {
		t.Errorf("sneaky: %+v", sneaky.Error)
	}
	// A typed sdk.Result checks the envelope's type rather than decoding
	// another kind's value into zero values.
	wantStatus(t, r.module(t, "as_echo"), coordinator.StatusSucceeded)
	for module, msg := range map[string]string{
		"echo_as_ran":   `result of "echo" is of type "testkit.echo/v1", but main.Ran is the result of type "testkit.ran/v1"`,
		"shell_as_echo": `result of "producer" is of type "shell.exec/v1", but main.echoed is the result of type "testkit.echo/v1"`,
	} {
		e := r.module(t, module)
		wantStatus(t, e, coordinator.StatusFailed)
		if e.Error == nil || !strings.Contains(e.Error.Message, msg) {
			t.Errorf("%s: want an error containing %q, got %+v", module, msg, e.Error)
		}
	}
}

// A plugin block without source adds its settings to the plugin found by
// name, as the reference says, rather than failing to start "".
func TestPluginBlockWithoutSource(t *testing.T) {
	file := filepath.Join(t.TempDir(), "env.hcl")
	text := "plugin \"shell\" {\n  env = { GREETING = \"hi from the block\" }\n}\nmodule \"shell\" \"a\" {\n  script = \"echo $GREETING\"\n}\n"
	writeFile(t, file, text)
	r := runHost(t, "run", file)
	r.wantCode(t, 0)
	if !strings.Contains(r.stdout, "a | hi from the block") {
		t.Errorf("the block's env did not reach the plugin:\n%s\n%s", r.stdout, r.stderr)
	}
}

// A module skipped by its own run_if or requires never shows a start
// line: only the skip.
func TestSkippedModuleNotStarted(t *testing.T) {
	file := filepath.Join(t.TempDir(), "skip.hcl")
	text := "module \"shell\" \"off\" {\n  command = [\"true\"]\n  run_if = false\n}\nmodule \"shell\" \"gpu\" {\n  command = [\"true\"]\n  requires = [\"gpu-that-is-not-here\"]\n}\nmodule \"shell\" \"on\" {\n  command = [\"true\"]\n}\n"
	writeFile(t, file, text)
	r := runHost(t, "run", file, "--no-progress")
	r.wantCode(t, 0)
	for _, m := range []string{"off", "gpu"} {
		if strings.Contains(r.stdout, "▶ "+m+" started") || !strings.Contains(r.stdout, "– "+m+" skipped") {
			t.Errorf("%s: want a skip line and no start line:\n%s", m, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "▶ on started") {
		t.Errorf("on: no start line:\n%s", r.stdout)
	}
}

// Reading the value of a dependency that did not run says so, rather
// than only "Attempt to get attribute from null value"; an error that has
// nothing to do with that value does not get the hint.
func TestReadingSkippedResultExplained(t *testing.T) {
	const hint = "a dependency it reads did not succeed, so its value is null"
	for _, tc := range []struct {
		name, command string
		want          []string
		wantHint      bool
	}{
		{
			name:     "null value of a skipped dependency",
			command:  `["echo", module.b.value.stdout]`,
			want:     []string{"b skipped (run_if is false: false)"},
			wantHint: true,
		},
		{
			name: "wrong key on another module",
			// module.b is read (its status is fine to read) and did not
			// succeed, but the error is v's key.
			command: `["echo", module.b.status, index(module.v, "go=1.25").status]`,
			want:    []string{`the object has no key "go=1.25"`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "sk.hcl")
			text := "module \"shell\" \"b\" {\n  command = [\"true\"]\n  run_if  = false\n}\n" +
				"module \"shell\" \"v\" {\n  matrix {\n    go = [\"1.25\", \"1.26\"]\n  }\n  command = [\"true\"]\n}\n" +
				"module \"shell\" \"a\" {\n  command    = " + tc.command + "\n  always_run = true\n}\n"
			writeFile(t, file, text)
			r := runHost(t, "run", file, "--no-progress")
			r.wantCode(t, 1)
			a := r.module(t, "a")
			wantStatus(t, a, coordinator.StatusFailed)
			if a.Error == nil {
				t.Fatalf("a: no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(a.Error.Message, w) {
					t.Errorf("a: want %q in the error:\n%s", w, a.Error.Message)
				}
			}
			if got := strings.Contains(a.Error.Message, hint); got != tc.wantHint {
				t.Errorf("a: hint shown %v, want %v:\n%s", got, tc.wantHint, a.Error.Message)
			}
		})
	}
}

// A config the plugin refuses at run time (it depends on a result, so
// validate could not check it) fails at its file:line:col, as validate
// reports a static one.
func TestRunTimeConfigErrorPlaced(t *testing.T) {
	file := filepath.Join(t.TempDir(), "late.hcl")
	// on_failure continue: both modules fail, and neither may cancel the
	// other before it has run.
	text := "pipeline {\n  on_failure = \"continue\"\n}\nmodule \"shell\" \"b\" {\n  command = [\"echo\", \"hi\"]\n}\nmodule \"shell\" \"both\" {\n  command = [\"echo\", module.b.value.stdout]\n  script  = module.b.value.stdout\n}\nmodule \"shell\" \"env\" {\n  command = [\"true\"]\n  env     = { \"A=B\" = module.b.value.stdout }\n}\n"
	writeFile(t, file, text)
	r := runHost(t, "run", file, "--no-progress")
	r.wantCode(t, 1)
	for module, want := range map[string]string{
		"both": "late.hcl:7:1: Invalid configuration; set either \"command\" or \"script\", not both",
		"env":  "late.hcl:13:",
	} {
		e := r.module(t, module)
		if e.Error == nil || e.Error.Kind != coordinator.ErrorKindConfig || !strings.Contains(e.Error.Message, want) {
			t.Errorf("%s: want a config error containing %q, got %+v", module, want, e.Error)
		}
	}
}

// A console reader that goes away (host run ... | head -1) does not kill
// the run: it goes on to its end and writes its reports.
func TestClosedConsoleDoesNotKillTheRun(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pipe.hcl")
	text := "module \"shell\" \"a\" {\n  script = \"for i in $(seq 1 3000); do echo line $i; done\"\n}\nmodule \"shell\" \"b\" {\n  command    = [\"echo\", \"b\"]\n  depends_on = [module.a]\n}\n"
	writeFile(t, file, text)
	rep := filepath.Join(dir, "report.json")
	cmd := exec.Command(hostBin, "run", file, "--no-progress", "--report", "json="+rep)
	cmd.Env = env()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 16)
	if _, err := io.ReadFull(out, first); err != nil {
		t.Fatal(err)
	}
	out.Close() // the reader goes away
	if err := cmd.Wait(); err != nil {
		t.Fatalf("host run: %v (killed by SIGPIPE?)", err)
	}
	var run struct {
		Status string `json:"status"`
	}
	if b, err := os.ReadFile(rep); err != nil || json.Unmarshal(b, &run) != nil || run.Status != "succeeded" {
		t.Errorf("report (%v): %s", err, b)
	}
}

// A fleet master that cannot reach its coordinator still writes the
// run's reports, as a run that cannot start does (exit 4).
func TestMasterWithoutCoordinatorWritesReports(t *testing.T) {
	file := filepath.Join(t.TempDir(), "fleet.hcl")
	writeFile(t, file, "module \"shell\" \"a\" {\n  command = [\"true\"]\n}\n")
	r := runHost(t, "run", file, "--instance", "0", "--total", "2", "--run-id", "nocoord", "--etcd", "127.0.0.1:1")
	r.wantCode(t, 4)
	if r.report == nil || r.report.Status != report.RunError || r.report.Error == nil || r.report.Error.Kind != coordinator.ErrorKindCoordinator ||
		!strings.Contains(r.report.Error.Message, "127.0.0.1:1") {
		t.Errorf("report: %+v\n%s", r.report, r.stderr)
	}
}

// A timed-out module's error keeps its last lines, as a failure's does:
// they say where it was when it was stopped. Stderr's, or stdout's for a
// command that wrote nothing to stderr.
func TestTimeoutKeepsTheTail(t *testing.T) {
	tests := []struct {
		name, script string
		want         []string
	}{
		{"stderr", "echo working on step 1 >&2; sleep 30", []string{"working on step 1"}},
		{"stdout only", "for i in 1 2 3 4 5; do echo out$i; done; sleep 30", []string{"out1", "out5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "to.hcl")
			text := fmt.Sprintf("module \"shell\" \"slow\" {\n  script  = %q\n  timeout = \"2s\"\n}\n", tt.script)
			writeFile(t, file, text)
			r := runHost(t, "run", file, "--no-progress")
			r.wantCode(t, 1)
			e := r.module(t, "slow")
			wantStatus(t, e, coordinator.StatusTimedOut)
			for _, w := range tt.want {
				if e.Error == nil || !strings.Contains(e.Error.Tail, w) {
					t.Errorf("slow: %+v, want %q in the tail", e.Error, w)
				}
			}
		})
	}
}

// A module that ignores SIGTERM and outlives its timeout is killed by its
// plugin within --grace, however short, so the plugin is not killed as
// hung and the modules running beside it in the same plugin process
// finish as if nothing happened.
func TestShortGraceSparesBystanders(t *testing.T) {
	file := filepath.Join(t.TempDir(), "grace.hcl")
	writeFile(t, file, `pipeline {
  on_failure = "continue"
}

module "shell" "stubborn" {
  script  = "trap '' TERM; sleep 30"
  timeout = "1s"
}

module "shell" "innocent" {
  script = "sleep 5; echo innocent done"
}
`)
	r := runHost(t, "run", file, "--no-progress", "--grace", "2s")
	r.wantCode(t, 1)
	stubborn := r.module(t, "stubborn")
	wantStatus(t, stubborn, coordinator.StatusTimedOut)
	if stubborn.Error != nil && strings.Contains(stubborn.Error.Message, "killed as hung") {
		t.Errorf("stubborn: %s; want its plugin to have stopped it within --grace", stubborn.Error.Message)
	}
	innocent := r.module(t, "innocent")
	wantStatus(t, innocent, coordinator.StatusSucceeded)
	if innocent.Error != nil {
		t.Errorf("innocent: %s", innocent.Error.Message)
	}
}

// A report can go to the host's own streams, which in CI are pipes more
// often than files: /dev/stdout's /proc link then names no file
// ("pipe:[N]"), and the report was refused. It follows the console's
// output on the stream, as a shell's > would have it; a descriptor of a
// shell's >(...) or 3>file is written as it is.
func TestReportToTheHostsStreams(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ok.hcl")
	writeFile(t, file, "module \"shell\" \"a\" {\n  command = [\"echo\", \"from a\"]\n}\n")
	decode := func(t *testing.T, where, out string) {
		t.Helper()
		i := strings.Index(out, "{\n")
		var run report.Run
		if i < 0 || json.Unmarshal([]byte(out[i:]), &run) != nil || run.Status != report.RunSucceeded || len(run.Modules) != 1 {
			t.Fatalf("%s holds no report after the console's output:\n%s", where, out)
		}
		if !strings.Contains(out[:i], "from a") || !strings.Contains(out[:i], "SUCCEEDED") {
			t.Errorf("%s lost the console's output before the report:\n%s", where, out[:i])
		}
	}
	for _, path := range []string{"/dev/stdout", "-", "/dev/fd/1", "/proc/self/fd/1"} {
		t.Run(path, func(t *testing.T) {
			r := runHost(t, "run", file, "--no-progress", "--report", "json="+path)
			r.wantCode(t, 0)
			decode(t, "stdout (a pipe)", r.stdout)
		})
	}
	t.Run("stdout into a file", func(t *testing.T) {
		out, err := os.Create(filepath.Join(t.TempDir(), "out.txt"))
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		cmd := exec.Command(hostBin, "run", file, "--no-progress", "--report", "json=/dev/stdout")
		cmd.Env, cmd.Stdout = env(), out
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(out.Name())
		decode(t, "the file", string(b))
	})
	t.Run("descriptor 3", func(t *testing.T) {
		rd, wr, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		cmd := exec.Command(hostBin, "run", file, "--no-progress", "--report", "junit=/dev/fd/3")
		cmd.Env, cmd.ExtraFiles = env(), []*os.File{wr}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wr.Close()
		got, _ := io.ReadAll(rd)
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(got), "<testsuites") {
			t.Errorf("descriptor 3's reader got %q", got)
		}
	})
	t.Run("descriptor not open", func(t *testing.T) {
		r := runHost(t, "run", file, "--no-progress", "--report", "json=/dev/fd/9")
		r.wantCode(t, 2)
		if !strings.Contains(r.stderr, "--report json=/dev/fd/9: descriptor 9 is not open") || r.ranSomething() {
			t.Errorf("stderr:\n%s", r.stderr)
		}
	})
}

// Two reports to one place: the second would replace the first, so the
// run is refused before anything runs, naming both.
func TestTwoReportsToOnePlaceRefused(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ok.hcl")
	writeFile(t, file, "module \"shell\" \"a\" {\n  command = [\"true\"]\n}\n")
	if err := os.Symlink(filepath.Join(dir, "r.json"), filepath.Join(dir, "link.json")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ first, second string }{
		{"json=" + filepath.Join(dir, "r.json"), "junit=" + filepath.Join(dir, "r.json")},
		{"json=" + filepath.Join(dir, "r.json"), "md=" + filepath.Join(dir, "link.json")},
		{"json=-", "junit=/dev/stdout"},
	} {
		r := runHost(t, "run", file, "--no-progress", "--report", tc.first, "--report", tc.second)
		r.wantCode(t, 2)
		if !strings.Contains(r.stderr, "writes to the same place") || !strings.Contains(r.stderr, tc.first) || r.ranSomething() {
			t.Errorf("%s and %s: stderr:\n%s", tc.first, tc.second, r.stderr)
		}
	}
}

// A list matrix makes each value a required capability: a matrix of
// versions written as a list is skipped whole on one machine, a green run
// that ran nothing. validate and run warn at the matrix, and the run's
// summary says why its modules were skipped; a matrix of OS or
// architecture names, or of capabilities this instance offers, is what
// the list form is for and gets no warning.
func TestListMatrixOfValuesWarned(t *testing.T) {
	const fix = "write matrix { go = [...] }"
	for _, tc := range []struct {
		name, matrix string
		args         []string
		warn         bool
	}{
		{name: "versions", matrix: `["1.25", "1.26"]`, warn: true},
		{name: "versions offered", matrix: `["1.25", "1.26"]`, args: []string{"--capability", "1.25", "--capability", "1.26"}},
		{name: "operating systems", matrix: `["linux", "windows", "macos"]`},
		{name: "architectures", matrix: `["amd64", "arm64"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "m.hcl")
			writeFile(t, file, "module \"shell\" \"unit\" {\n  matrix  = "+tc.matrix+"\n  command = [\"echo\", \"go${matrix.target}\"]\n}\n")
			v := runHost(t, append([]string{"validate", file}, tc.args...)...)
			v.wantCode(t, 0)
			r := runHost(t, append([]string{"run", file, "--no-progress"}, tc.args...)...)
			r.wantCode(t, 0)
			for cmd, res := range map[string]result{"validate": v, "run": r} {
				warned := strings.Contains(res.stderr, "Warning: "+file+":2:13: Matrix values this instance does not offer")
				if warned != tc.warn || tc.warn && !strings.Contains(res.stderr, fix) {
					t.Errorf("%s: warned %v, want %v:\n%s", cmd, warned, tc.warn, res.stderr)
				}
			}
			// Whatever this machine is, some OS or architecture is not it.
			line := strings.Contains(r.stdout, "skipped: this instance does not offer the capabilities")
			if wantLine := tc.name != "versions offered"; line != wantLine {
				t.Errorf("run: summary line %v, want %v:\n%s", line, wantLine, r.stdout)
			}
			if hint := strings.Contains(r.stdout, fix); hint != tc.warn {
				t.Errorf("run: the summary's matrix hint %v, want %v:\n%s", hint, tc.warn, r.stdout)
			}
			if tc.warn && !strings.Contains(r.stdout, "2 modules were skipped: this instance does not offer the capabilities they require (1.25, 1.26); each value of matrix = [...] is one, and for a matrix of values rather than of targets, "+fix) {
				t.Errorf("run: no summary line for the skipped versions:\n%s", r.stdout)
			}
		})
	}
}

// A Go-sdk plugin started by hand says it is a modpipe plugin and where
// it goes, rather than go-plugin's message about plugins in general.
func TestPluginRunByHandExplainsItself(t *testing.T) {
	cmd := exec.Command(filepath.Join(binDir, "plugins", "modpipe-plugin-hello"))
	cmd.Env = env()
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want status 1", err)
	}
	for _, want := range []string{"modpipe-plugin-hello is a modpipe plugin (hello)", "started by the modpipe host", "MODPIPE_PLUGIN_PATH"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
}
