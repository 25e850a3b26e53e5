//go:build linux

package pluginhost_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modpipe/modpipe/host/pluginhost"
)

// readPid waits (bounded) for a pid written to path.
func readPid(t *testing.T, path string) int {
	t.Helper()
	for range 100 {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", path)
	return 0
}

// gone waits (bounded) for pid to be gone, as a killed process's parent
// may reap it a moment later.
func gone(pid int) bool {
	for range 100 {
		if !processAlive(pid) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// A plugin that exits at start and leaves a child holding its stdout and
// stderr: go-plugin reads both to their end before it waits for the
// process, so the start used to hang forever (and the host with it,
// deaf to signals). The start fails, and the child is killed.
func TestStartFailsWhenAChildHoldsThePipes(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	bin := filepath.Join(dir, "plugin")
	script := "#!/bin/sh\nsleep 300 &\necho $! > " + pidFile + "\nexit 1\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		p, err := pluginhost.Start(guardCtx(t), pluginhost.Spec{Name: "orphaner", Path: bin}, pluginhost.Options{Logger: testLogger(t)})
		if err == nil {
			_ = p.Close()
		}
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(deadlockGuard):
		t.Fatal("Start did not return")
	}
	if err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("err = %v, want a start error with the exit status", err)
	}
	if pid := readPid(t, pidFile); !gone(pid) {
		t.Errorf("the plugin's child %d is still running", pid)
	}
}

// The same mid-run: a plugin whose child shares its stderr crashes; the
// module fails as a crash, and the child does not outlive the plugin.
func TestCrashWhenAChildHoldsThePipes(t *testing.T) {
	p := start(t, testkitBin, pluginhost.Options{})
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	cfg, _ := json.Marshal(map[string]any{"code": 3, "message": "boom", "orphan": pidFile})
	done := make(chan error, 1)
	go func() {
		_, _, err := execute(t, p, pluginhost.Request{Module: "m", Kind: "exit", Config: cfg})
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(deadlockGuard):
		t.Fatal("Execute did not return")
	}
	var crash *pluginhost.CrashError
	if !errors.As(err, &crash) {
		t.Errorf("err = %v, want a crash", err)
	}
	if pid := readPid(t, pidFile); !gone(pid) {
		t.Errorf("the plugin's child %d is still running", pid)
	}
}
