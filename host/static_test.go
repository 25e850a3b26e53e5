package host

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/modpipe/modpipe/coordinator"
)

// TestStaticConfigs checks the configs evaluated once when the run is
// prepared: a module that refers only to fixed values gets the same config
// as if it were evaluated when it runs, and one that calls a function is
// still evaluated when it runs.
func TestStaticConfigs(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("testdata", "static", "pipeline.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "pipeline.hcl")
	if err := os.WriteFile(file, src, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.txt"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	// The shell plugin runs commands in the host's working directory.
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chdir(wd) })

	out := &syncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), deadlockGuard)
	defer cancel()
	rep, err := Run(ctx, RunOptions{Options: Options{
		File: file, Environ: []string{"PATH=" + os.Getenv("PATH")}, Stdout: out, Stderr: out,
		Locator: &PluginLocator{Dirs: []string{pluginDir}},
	}})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	stdout := map[string]string{}
	for _, e := range rep.Modules {
		if e.Status != coordinator.StatusSucceeded {
			t.Fatalf("%s: %s (%+v)\n%s", e.Module, e.Status, e.Error, out.String())
		}
		var v struct {
			Stdout string `json:"stdout"`
		}
		if err := json.Unmarshal(e.Value, &v); err != nil {
			t.Fatalf("%s: result %s: %v", e.Module, e.Value, err)
		}
		stdout[e.Module] = v.Stdout
	}
	want := map[string]string{
		"constant":         "hello from " + osName(runtime.GOOS),
		"writer":           "",
		"reader":           "new",
		"matrix_reader[1]": "new 1",
		"matrix_reader[2]": "new 2",
	}
	for m, w := range want {
		if stdout[m] != w {
			t.Errorf("%s printed %q, want %q", m, stdout[m], w)
		}
	}
}
