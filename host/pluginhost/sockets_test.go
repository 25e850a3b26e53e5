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
	base := t.TempDir()
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
