package host

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestManyDistinctConfigsValidated: a file whose modules differ by an
// argument has the plugin judge every distinct config, several batches
// in flight, and each verdict lands on its own module: the invalid ones
// are named at their own line, and only those.
func TestManyDistinctConfigsValidated(t *testing.T) {
	const n = 150 // more than validateInFlight batches of several configs
	bad := map[int]bool{3: true, 64: true, 66: true, 149: true}
	var src strings.Builder
	line := 1
	lines := map[int]int{}
	for i := range n {
		lines[i] = line
		if bad[i] {
			// Both command and script: the shell plugin's own check.
			fmt.Fprintf(&src, "module \"shell\" \"m%d\" {\n  command = [\"true\", \"%d\"]\n  script  = \"true\"\n}\n", i, i)
			line += 4
			continue
		}
		fmt.Fprintf(&src, "module \"shell\" \"m%d\" {\n  command = [\"true\", \"%d\"]\n}\n", i, i)
		line += 3
	}
	file := filepath.Join(t.TempDir(), "pipeline.hcl")
	if err := os.WriteFile(file, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := validateRefused(t, file)
	if got := strings.Count(out, "Error: "); got != len(bad) {
		t.Errorf("%d errors, want %d:\n%s", got, len(bad), out)
	}
	for i := range bad {
		want := fmt.Sprintf("pipeline.hcl:%d:1: Invalid configuration", lines[i])
		at := fmt.Sprintf(`in module "shell" "m%d"`, i)
		if !strings.Contains(out, want) || !strings.Contains(out, at) {
			t.Errorf("no error for m%d at line %d (%q, %q):\n%s", i, lines[i], want, at, out)
		}
	}
}
