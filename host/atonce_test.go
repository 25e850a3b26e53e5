package host

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestCheckAtOnceReportsAsOne checks a pipeline large enough for its
// modules to be checked on several goroutines: the errors of the body
// check, the evaluation and the plugin's validation are those of a
// one-goroutine check, in the file's order.
func TestCheckAtOnceReportsAsOne(t *testing.T) {
	for _, tc := range []struct {
		name string
		bad  map[int]string // module index -> its body
		want []string       // where the errors are, in order
	}{
		{
			name: "body check and evaluation",
			bad: map[int]string{
				40:  `commnd = ["true"]`, // not in the kind's schema
				260: `command = {a = 1}`, // the wrong type
			},
			want: []string{"pipeline.hcl:125:", "pipeline.hcl:785:"},
		},
		{
			name: "the plugin's validation",
			bad: map[int]string{
				150: `command = [""]`,
				280: `script = "x"
  command = ["y"]`,
			},
			want: []string{"pipeline.hcl:455:", "pipeline.hcl:844:"}, // the attribute; the block when the error is the whole body
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var src strings.Builder
			src.WriteString("variable \"word\" {\n  default = \"ok\"\n}\n")
			for i := range 300 {
				body, bad := tc.bad[i]
				if !bad {
					body = fmt.Sprintf("command = [\"echo\", var.word, \"%d\"]", i)
				}
				fmt.Fprintf(&src, "module \"shell\" \"m%d\" {\n  %s\n}\n", i, body)
			}
			src.WriteString("module \"shell\" \"mx\" {\n  matrix {\n    a = [\"1\", \"2\", \"3\", \"4\", \"5\", \"6\", \"7\", \"8\", \"9\", \"10\"]\n    b = [\"x\", \"y\", \"z\", \"w\", \"v\", \"u\", \"t\", \"s\", \"r\", \"q\"]\n  }\n  command = [\"echo\", matrix.a, matrix.b]\n}\n")
			file := filepath.Join(t.TempDir(), "pipeline.hcl")
			if err := os.WriteFile(file, []byte(src.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			validate := func(procs int) string {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				return validateRefused(t, file)
			}
			one, several := validate(1), validate(4)
			if one != several {
				t.Fatalf("checked on one goroutine:\n%s\non several:\n%s", one, several)
			}
			last := -1
			for _, w := range tc.want {
				i := strings.Index(several, w)
				if i < 0 || i < last {
					t.Fatalf("want errors at %v, in order:\n%s", tc.want, several)
				}
				last = i
			}
			if n := strings.Count(several, "Error: "); n != len(tc.want) {
				t.Fatalf("%d errors; want %d:\n%s", n, len(tc.want), several)
			}
		})
	}
}
