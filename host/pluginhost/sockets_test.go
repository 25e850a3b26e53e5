package pluginhost

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// SocketRoot removes the roots of hosts that are gone and nothing else;
// its cleanup removes its own.
func TestSocketRootSweepsOnlyDeadHosts(t *testing.T) {
	base := shortTempDir(t)
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	mk := func(name string) string {
		p := filepath.Join(base, name)
		if err := os.MkdirAll(filepath.Join(p, "plugin-dir123"), 0o700); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dead := mk(fmt.Sprintf("%s%d-1", socketRootPrefix, gone.Process.Pid))
	keep := []string{
		mk(fmt.Sprintf("%s%d-2", socketRootPrefix, os.Getppid())), // a live host
		mk(socketRootPrefix + "not-a-pid"),
		mk("plugin-dir456"), // go-plugin's own, owner unknown
	}
	dir, cleanup, err := SocketRoot(base)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(dir) != base {
		t.Fatalf("root %s is not in %s", dir, base)
	}
	cleanup()
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the dead host's root %s is still there (%v)", dead, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cleanup left %s (%v)", dir, err)
	}
	for _, p := range keep {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
}

// Under a temporary folder so deep that the sockets' paths would be too
// long, there is no root: go-plugin's folders go straight to it.
func TestSocketRootTooDeep(t *testing.T) {
	base := t.TempDir()
	for len(base) < maxSocketPath {
		base = filepath.Join(base, "deeper-and-deeper")
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
		t.Fatal(err)
	}
	dir, cleanup, err := SocketRoot(base)
	defer cleanup()
	if err != nil || dir != "" {
		t.Fatalf("SocketRoot = %q, %v; want no root and no error", dir, err)
	}
	if left, _ := filepath.Glob(filepath.Join(base, socketRootPrefix+"*")); len(left) != 0 {
		t.Fatalf("left behind: %q", left)
	}
}

// shortTempDir is a temporary folder short enough for socket roots
// (t.TempDir's names are too long for a socket path below them).
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mps")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
