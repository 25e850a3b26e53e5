package host

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// A file's errors of every kind come in one pass, whichever kind comes
// first: a cycle, the file's only error as config.Load sees it, still
// brings the plugins' checks of the bodies with it.
func TestValidateReportsEveryKindInOnePass(t *testing.T) {
	const cycle = `module "shell" "a" {
  command    = ["echo", "a"]
  depends_on = [module.b]
}
module "shell" "b" {
  command = ["echo", "${module.a.value.stdout}"]
}
`
	for _, tc := range []struct {
		name   string
		src    string
		want   []string // in order
		errors int
	}{
		{"cycle and a misspelt attribute", cycle + "module \"shell\" \"c\" {\n  comand = [\"echo\", \"c\"]\n}\n",
			[]string{"pipeline.hcl:6:", "Dependency cycle", "pipeline.hcl:9:", `Did you mean "command"?`}, 2},
		{"cycle and an attribute of the wrong type", cycle + "module \"shell\" \"c\" {\n  command = {a = 1}\n}\n",
			[]string{"pipeline.hcl:6:", "Dependency cycle", "pipeline.hcl:9:"}, 2},
		{"cycle and a bad timeout", cycle + "module \"shell\" \"c\" {\n  command = [\"true\"]\n  timeout = \"soon\"\n}\n",
			[]string{"pipeline.hcl:6:", "Dependency cycle", "pipeline.hcl:10:"}, 2},
		{"cycle alone", cycle, []string{"pipeline.hcl:6:", "Dependency cycle"}, 1},
		// The result types the plugins declare are checked too.
		{"cycle and a misspelt result attribute", cycle + "module \"shell\" \"c\" {\n  command = [\"echo\", module.a.value.stdot]\n}\n",
			[]string{"pipeline.hcl:6:", "Dependency cycle", "pipeline.hcl:9:36: Unsupported attribute", `Did you mean "stdout"?`}, 2},
		// The parser keeps the first of two settings and the file stays
		// whole: the other blocks are still checked.
		{"attribute set twice, a misspelt attribute and an undeclared module",
			"module \"shell\" \"a\" {\n  command = [\"true\"]\n  command = [\"false\"]\n}\n" +
				"module \"shell\" \"b\" {\n  comand = [\"true\"]\n}\n" +
				"module \"shell\" \"c\" {\n  command = [\"echo\", module.nosuch.value]\n}\n",
			[]string{"pipeline.hcl:3:", "Attribute redefined", "pipeline.hcl:6:", `Did you mean "command"?`, "pipeline.hcl:9:", "undeclared module"}, 3},
		// A load error elsewhere does not hide the plugin's own verdict on
		// a config known at load.
		{"a bad variable type and a command the plugin refuses",
			"variable \"x\" {\n  type = nosuchtype\n}\nmodule \"shell\" \"a\" {\n  command = []\n}\n",
			[]string{"pipeline.hcl:2:", "Invalid type specification", "pipeline.hcl:5:", "the list is empty"}, 2},
		// Nor does a body error in another module: the plugin still
		// checks every module whose body is right.
		{"a wrong type, a misspelt attribute and a command the plugin refuses",
			"module \"shell\" \"a\" {\n  command = []\n}\nmodule \"shell\" \"b\" {\n  command = {a = 1}\n}\n" +
				"module \"shell\" \"c\" {\n  comand = [\"x\"]\n}\nmodule \"shell\" \"d\" {\n  script  = \"true\"\n  command = [\"x\"]\n}\n",
			[]string{"pipeline.hcl:2:", "the list is empty", "pipeline.hcl:5:", "Incorrect attribute value type", "pipeline.hcl:8:", `Did you mean "command"?`, "pipeline.hcl:10:", "not both"}, 4},
		{"a syntax error stops the load", "module \"shell\" \"a\" {\n  command = [\"true\"\n}\nmodule \"shell\" \"b\" {\n  comand = [\"true\"]\n}\n",
			[]string{"pipeline.hcl:3:"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "pipeline.hcl")
			if err := os.WriteFile(file, []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			got, last := validateRefused(t, file), -1
			for _, w := range tc.want {
				i := strings.Index(got, w)
				if i < 0 || i < last {
					t.Fatalf("want %q, in order:\n%s", tc.want, got)
				}
				last = i
			}
			if n := strings.Count(got, "Error: "); n != tc.errors {
				t.Fatalf("%d errors; want %d:\n%s", n, tc.errors, got)
			}
		})
	}
}

// validateRefused runs Validate on file with the test plugins and returns
// its output, failing t unless the file is refused as invalid.
func validateRefused(t *testing.T, file string) string {
	t.Helper()
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), deadlockGuard)
	defer cancel()
	err := Validate(ctx, Options{File: file, Environ: []string{}, Stdout: &out, Stderr: &out,
		Locator: &PluginLocator{Dirs: []string{pluginDir}}})
	if ee, ok := errors.AsType[*ExitError](err); !ok || ee.Code != ExitInvalid {
		t.Fatalf("validate with GOMAXPROCS %d: %v; want the file refused\n%s", runtime.GOMAXPROCS(0), err, out.String())
	}
	return out.String()
}
