package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A host killed with SIGKILL cannot remove its plugins' socket folders;
// the next host on the machine removes them, and one that exits normally
// leaves nothing in the temporary folder.
func TestKilledHostsSocketFoldersAreSwept(t *testing.T) {
	f := newFleet(t) // its own TMPDIR, and no process left behind
	dir := t.TempDir()
	hang := filepath.Join(dir, "hang.hcl")
	quick := filepath.Join(dir, "quick.hcl")
	for path, text := range map[string]string{
		hang:  `module "testkit.sleep" "long" { duration = "1h" }`,
		quick: `module "testkit.echo" "e" { text = "x" }`,
	} {
		writeFile(t, path, text+"\n")
	}
	roots := func() []string {
		t.Helper()
		m, err := filepath.Glob(filepath.Join(f.tmp, "modpipe-sock-*"))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}

	killed := f.start("killed", hostBin, []string{"run", hang, "--no-progress"})
	deadline := time.Now().Add(guard)
	for !strings.Contains(killed.stdout.String(), "sleeping 1h") {
		if time.Now().After(deadline) || killed.exited() {
			t.Fatalf("the module did not start\n%s", killed.output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	left := roots()
	if len(left) != 1 {
		t.Fatalf("socket roots while the host runs: %q, want one", left)
	}
	if dirs, _ := filepath.Glob(filepath.Join(left[0], "plugin-dir*")); len(dirs) != 1 {
		t.Fatalf("plugin socket folders in %s: %q, want the running plugin's", left[0], dirs)
	}
	killed.kill()
	select {
	case <-killed.done:
	case <-time.After(guard):
		t.Fatal("the host survived SIGKILL")
	}
	if got := roots(); len(got) != 1 || got[0] != left[0] {
		t.Fatalf("after SIGKILL: %q, want %s still there (nobody could remove it)", got, left[0])
	}

	next := f.start("next", hostBin, []string{"run", quick, "--no-progress"})
	if code := next.wait(t); code != 0 {
		t.Fatalf("next run: exit code %d\n%s", code, next.output())
	}
	if got := roots(); len(got) != 0 {
		t.Errorf("socket roots after the next run: %q, want none", got)
	}
	if stray, _ := filepath.Glob(filepath.Join(f.tmp, "plugin-dir*")); len(stray) != 0 {
		t.Errorf("plugin socket folders straight in the temporary folder: %q", stray)
	}
}
