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
// are named at their own line, and only those. So too when the file has
// an error of its own (a dependency on no module), which takes the other way
// to the plugins' verdicts (bodyDiagnostics).
func TestManyDistinctConfigsValidated(t *testing.T) {
	for _, fileError := range []bool{false, true} {
		t.Run(fmt.Sprintf("file error=%v", fileError), func(t *testing.T) { testManyDistinctConfigs(t, fileError) })
	}
}

func testManyDistinctConfigs(t *testing.T, fileError bool) {
	const n = 150 // more than validateInFlight batches of several configs
	bad := map[int]bool{3: true, 64: true, 66: true, 149: true}
	var src strings.Builder
	line := 1
	lines := map[int]int{}
	errs := len(bad)
	if fileError {
		src.WriteString("module \"shell\" \"orphan\" {\n  command    = [\"true\"]\n  depends_on = [module.nope]\n}\n")
		line += 4
		errs++
	}
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
	if got := strings.Count(out, "Error: "); got != errs {
		t.Errorf("%d errors, want %d:\n%s", got, errs, out)
	}
	if fileError && !strings.Contains(out, `module.nope`) {
		t.Errorf("the file's own error is not reported:\n%s", out)
	}
	for i := range bad {
		want := fmt.Sprintf("pipeline.hcl:%d:1: Invalid configuration", lines[i])
		at := fmt.Sprintf(`in module "shell" "m%d"`, i)
		if !strings.Contains(out, want) || !strings.Contains(out, at) {
			t.Errorf("no error for m%d at line %d (%q, %q):\n%s", i, lines[i], want, at, out)
		}
	}
}
