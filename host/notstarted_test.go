package host

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/modpipe/modpipe/coordinator"
)

// A module whose context ended before it began (a fleet instance claimed
// it ahead while another module ran, then the run was cancelled) is
// reported as not started, the attempt not counted: not as "cancelled
// while running".
func TestRunnerCancelledBeforeItBegins(t *testing.T) {
	file := filepath.Join(t.TempDir(), "p.hcl")
	if err := os.WriteFile(file, []byte("module \"shell\" \"a\" {\n  command = [\"true\"]\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := Options{File: file, Environ: []string{"PATH=" + os.Getenv("PATH")}, Stdout: io.Discard, Stderr: io.Discard,
		Locator: &PluginLocator{Dirs: []string{pluginDir}}}
	opts.defaults()
	ctx, cancel := context.WithTimeout(context.Background(), deadlockGuard)
	defer cancel()
	l, err := load(opts)
	if err != nil {
		t.Fatal(err)
	}
	p, err := prepare(ctx, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	r := newModuleRunner(p, nil, nil, "run", 0)
	n, ok := l.graph.Node("a")
	if !ok {
		t.Fatal("no node a")
	}
	stopped, stop := context.WithCancelCause(ctx)
	stop(errors.New("the run stopped"))
	env := r.run(stopped, n, 2)
	if env.Status != coordinator.StatusCancelled || env.Attempts != 1 || env.Error == nil || env.Error.Message != "not started: the run stopped" {
		t.Errorf("env = %s, attempts %d, %+v; want cancelled, 1 attempt, not started", env.Status, env.Attempts, env.Error)
	}
}
