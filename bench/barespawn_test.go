package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The bare runner's floor only means something if every spawn happened:
// each of its N calls runs the program once, and a failing program fails
// the run; with capture, output past a pipe's buffer on both streams
// is read to the end, not left to block the child.
func TestBareRunnerSpawns(t *testing.T) {
	dir := t.TempDir()
	plugin := filepath.Join(dir, "modpipe-bench-bare")
	if out, err := exec.Command("go", "build", "-o", plugin, "./bareplugin").CombinedOutput(); err != nil {
		t.Fatalf("build the bare plugin: %v\n%s", err, out)
	}
	log := filepath.Join(dir, "spawned")
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name     string
		prog     string
		n, j     int
		wantCode int
		wantRuns int
	}{
		{"every call spawns once", script("ok", "echo x >> "+log), 25, 4, 0, 25},
		{"more callers than calls", script("ok1", "echo x >> "+log), 3, 8, 0, 3},
		{"a failing program fails the run", script("fail", "exit 3"), 5, 2, 1, 0},
		{"output past a pipe's buffer on both streams", script("loud", "head -c 300000 /dev/zero; head -c 300000 /dev/zero >&2; echo x >> "+log), 4, 2, 0, 4},
	}
	for _, mode := range []string{"", " capture", " stream"} {
		for _, tt := range tests {
			t.Run(tt.name+mode, func(t *testing.T) {
				_ = os.Remove(log)
				if code := bareSpawn(fmt.Sprintf("%s %d %d %s%s", plugin, tt.n, tt.j, tt.prog, mode)); code != tt.wantCode {
					t.Fatalf("bareSpawn exit code = %d, want %d", code, tt.wantCode)
				}
				raw, _ := os.ReadFile(log)
				if got := strings.Count(string(raw), "x\n"); got != tt.wantRuns {
					t.Fatalf("the program ran %d times, want %d", got, tt.wantRuns)
				}
			})
		}
	}
	if code := bareSpawn(plugin + " 1 1 /bin/true keep"); code != 2 {
		t.Fatalf("bareSpawn with an unknown mode: exit code %d, want 2", code)
	}
	if code := bareSpawn(plugin + " 0 1 /bin/true"); code != 2 {
		t.Fatalf("bareSpawn with N=0: exit code %d, want 2", code)
	}
}
