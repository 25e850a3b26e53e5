package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modpipe/modpipe/coordinator"
)

// writePipeline writes src to pipeline.hcl in a new folder and returns
// its path.
func writePipeline(t *testing.T, src string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "pipeline.hcl")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// runPipeline runs file with the test plugins and returns the modules'
// envelopes by address and the run's output.
func runPipeline(t *testing.T, file string) (map[string]coordinator.Envelope, string, error) {
	t.Helper()
	out := &syncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), deadlockGuard)
	defer cancel()
	rep, err := Run(ctx, RunOptions{Options: Options{
		File: file, Environ: []string{"PATH=" + os.Getenv("PATH")}, Stdout: out, Stderr: out,
		Locator: &PluginLocator{Dirs: []string{pluginDir}},
	}})
	return envelopes(rep), out.String(), err
}

// A misspelt attribute of another module's result is refused by validate
// and by run before anything runs, at the step that is wrong, naming what
// the result has: the plugin declared its result type.
func TestResultReferenceTypoRefusedBeforeTheRun(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	file := writePipeline(t, `module "shell" "checkout" {
  script = "echo abc > `+marker+`"
}

module "shell" "use" {
  command = ["echo",
    module.checkout.value.stdot]
}
`)
	out := validateRefused(t, file)
	for _, want := range []string{
		file + ":7:26: Unsupported attribute",
		`module.checkout.value has no attribute "stdot": module "checkout" is of kind shell.exec, whose result (shell.exec/v1) has exit_code, json, stderr_tail, stdout, stdout_truncated there. Did you mean "stdout"?`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("validate's output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "Error: "); n != 1 {
		t.Errorf("%d errors, want 1:\n%s", n, out)
	}

	_, runOut, err := runPipeline(t, file)
	if ee, ok := errors.AsType[*ExitError](err); !ok || ee.Code != ExitInvalid {
		t.Fatalf("run: %v, want the file refused\n%s", err, runOut)
	}
	if !strings.Contains(runOut, file+":7:26: Unsupported attribute") {
		t.Errorf("run's output lacks the diagnostic:\n%s", runOut)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("checkout ran (%v): the file must be refused before anything runs", err)
	}
}

// References the declared result types admit run: nested objects, list
// elements, optional fields, dynamic parts (a shell's json, an any),
// maps, matrix instances by key and by expression, and the results of a
// plugin that declares no result type, which are checked when the module
// runs, as before result types were declared.
func TestValidResultReferencesRun(t *testing.T) {
	file := writePipeline(t, `module "testkit" "e" {
  text   = "hi"
  nested = { name = "n1" }
  items  = [{ name = "i0" }, { name = "i1" }]
  extra  = { free = { form = 7 } }
  env    = { K = "v" }
}

module "shell" "j" {
  command     = ["echo", "{\"a\":{\"b\":[1,2,3]}}"]
  stdout_json = true
}

module "testkit.dep" "d" {
  module     = "e"
  raw        = true
  depends_on = [module.e]
}

module "testkit" "m" {
  matrix {
    n = ["1", "2"]
  }
  text = "m${matrix.n}"
}

module "statusplugin" "s" {
  mode = "fine"
}

module "shell" "use" {
  matrix {
    n = ["1", "2"]
  }
  run_if = module.e.value.config.Enabled == false && module.j.value.json.a.b[2] == 3
  command = ["echo", join(" ", [
    module.e.value.config.Nested.Name,
    module.e.value.config.Items[1].Name,
    tostring(module.e.value.config.Extra.free.form),
    module.e.value.config.Env["K"],
    tostring(module.j.value.json.a.b[1]),
    module.d.value.envelope.status,
    module.d.value.envelope.value.module,
    try(module.d.value.value.module, "-"),
    module.m[matrix.n].value.module,
    module.m["2"].value.config.Text,
    module.s.value.mode,
  ])]
}
`)
	// validate passes.
	var vout bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), deadlockGuard)
	defer cancel()
	if err := Validate(ctx, Options{File: file, Environ: []string{}, Stdout: &vout, Stderr: &vout,
		Locator: &PluginLocator{Dirs: []string{pluginDir}}}); err != nil {
		t.Fatalf("validate: %v\n%s", err, vout.String())
	}
	// And so does the run, each reference reading what it names.
	run, out, err := runPipeline(t, file)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	for key, want := range map[string]string{
		"use[1]": "n1 i1 7 v 2 succeeded e - m[1] m2 fine",
		"use[2]": "n1 i1 7 v 2 succeeded e - m[2] m2 fine",
	} {
		e := run[key]
		var v struct {
			Stdout string `json:"stdout"`
		}
		if err := json.Unmarshal(e.Value, &v); err != nil || e.Status != coordinator.StatusSucceeded || v.Stdout != want {
			t.Errorf("%s: %s printed %q (%v), want %q\n%s", key, e.Status, v.Stdout, err, want, out)
		}
	}
}

// A plugin that declares no result type (one built before result_schema,
// or in a language without a way to say it) keeps working as before: a
// misspelt attribute of its result passes validate and fails the module
// that reads it when it runs, at its place.
func TestResultWithoutSchemaCheckedWhenItRuns(t *testing.T) {
	file := writePipeline(t, `module "statusplugin" "s" {
  mode = "fine"
}

module "shell" "use" {
  command = ["echo", module.s.value.mdoe]
}
`)
	var vout bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), deadlockGuard)
	defer cancel()
	if err := Validate(ctx, Options{File: file, Environ: []string{}, Stdout: &vout, Stderr: &vout,
		Locator: &PluginLocator{Dirs: []string{pluginDir}}}); err != nil {
		t.Fatalf("validate: %v\n%s", err, vout.String())
	}
	run, out, err := runPipeline(t, file)
	if ExitCode(err) != ExitFailed {
		t.Fatalf("run: %v, want the pipeline failed\n%s", err, out)
	}
	if e := run["s"]; e.Status != coordinator.StatusSucceeded {
		t.Errorf("s: %s, want succeeded", e.Status)
	}
	e := run["use"]
	if e.Error == nil || e.Error.Kind != coordinator.ErrorKindConfig || !strings.Contains(e.Error.Message, file+":6:36: Unsupported attribute") {
		t.Errorf("use: %+v, want a config error at %s:6:36", e.Error, file)
	}
}

// `host plugins` lists each kind's result fields when the plugin
// declares them, and nothing for a plugin that does not.
func TestPluginsShowResultFields(t *testing.T) {
	file := writePipeline(t, "module \"shell\" \"a\" {\n  command = [\"true\"]\n}\nmodule \"statusplugin\" \"s\" {}\n")
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), deadlockGuard)
	defer cancel()
	if err := Plugins(ctx, Options{File: file, Environ: []string{}, Stdout: &out, Stderr: &out,
		Locator: &PluginLocator{Dirs: []string{pluginDir}}}); err != nil {
		t.Fatalf("plugins: %v\n%s", err, out.String())
	}
	want := "    result: exit_code number, json any, stderr_tail string, stdout string,\n            stdout_truncated bool\n"
	if !strings.Contains(out.String(), want) {
		t.Errorf("host plugins lacks\n%s\nin:\n%s", want, out.String())
	}
	if n := strings.Count(out.String(), "result:"); n != 1 {
		t.Errorf("%d result lines, want 1 (statusplugin declares none):\n%s", n, out.String())
	}
}

// In a fleet the master checks the references before it enqueues
// anything: the run never starts.
func TestDistributedMasterRefusesResultTypo(t *testing.T) {
	f := newFleet(t, "result_typo.hcl", nil)
	f.startMaster(member{index: 0})
	if _, err := f.waitMaster(); ExitCode(err) != ExitInvalid {
		t.Fatalf("master: %v, want exit %d for the invalid file\n%s", err, ExitInvalid, f.masterOut.String())
	}
	if out := f.masterOut.String(); !strings.Contains(out, "result_typo.hcl:8:36: Unsupported attribute") || !strings.Contains(out, `Did you mean "module"?`) {
		t.Errorf("the master's output lacks the diagnostic:\n%s", out)
	}
	if log := f.masterLog.String(); strings.Contains(log, "enqueue") {
		t.Errorf("the master enqueued a module of an invalid file:\n%s", log)
	}
}
