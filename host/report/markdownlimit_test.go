package report

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modpipe/modpipe/coordinator"
)

// bigRun is a run of failed modules, each failing with a tail of
// tailLines lines of lineLen characters, and succeeded ones.
func bigRun(failed, succeeded, tailLines, lineLen int) *Run {
	run := &Run{Pipeline: "big", RunID: "r1", Status: RunFailed}
	tail := strings.Repeat(strings.Repeat("x", lineLen)+"\n", tailLines)
	for i := range failed {
		run.Modules = append(run.Modules, coordinator.Envelope{Module: fmt.Sprintf("fail[%03d]", i), Status: coordinator.StatusFailed, Attempts: 1,
			Error: &coordinator.Error{Kind: coordinator.ErrorKindModule, Message: "command failed: exit status 1", Tail: tail}})
	}
	for i := range succeeded {
		run.Modules = append(run.Modules, coordinator.Envelope{Module: fmt.Sprintf("ok[%05d]", i), Status: coordinator.StatusSucceeded, Attempts: 1})
	}
	return run
}

// The step summary fits in what GitHub accepts (1 MiB) however large the
// run, and says what it left out.
func TestMarkdownStaysUnderTheLimit(t *testing.T) {
	tests := []struct {
		name string
		run  *Run
		// earlier is what the step summary held before.
		earlier int
		want    []string
		notWant []string
	}{
		{"100 failures of 20 long lines", bigRun(100, 0, 20, 3000), 0,
			[]string{"| fail\\[099\\] |", "#### fail\\[000\\] failed", "Log tail (last 5 of 20 lines)", "more failures not shown here (the job's log and the JSON and JUnit reports have them all): fail\\[", "fail\\[099\\]"}, nil},
		{"a file already half full", bigRun(100, 0, 20, 3000), MarkdownLimit / 2, []string{"more failures not shown here"}, nil},
		{"a file already full", bigRun(100, 0, 20, 3000), 2 * MarkdownLimit, []string{"## ❌ big failed", "more failures not shown here"}, nil},
		{"30,000 modules", bigRun(2, 30000, 3, 10), 0,
			[]string{"| fail\\[000\\] |", "more modules not in this table (the job's log", "#### fail\\[001\\] failed", "Log tail (3 lines)"}, []string{"| ok\\[29999\\] |"}},
		{"one line longer than a tail holds", bigRun(1, 0, 1, 100<<10), 0, []string{"Log tail (the end of its last line)"}, nil},
		{"small: all of it", bigRun(3, 3, 20, 100), 0, []string{"Log tail (20 lines)", "#### fail\\[002\\] failed", "| ok\\[00002\\] |"}, []string{"not shown", "not in this table"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "step_summary.md")
			if err := os.WriteFile(path, bytes.Repeat([]byte("earlier\n"), tt.earlier/8), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := AppendMarkdown(path, tt.run); err != nil {
				t.Fatal(err)
			}
			all, _ := os.ReadFile(path)
			got := string(all[tt.earlier/8*8:])
			if tt.earlier < MarkdownLimit && len(all) > MarkdownLimit {
				t.Errorf("the step summary is %d bytes, over GitHub's %d", len(all), MarkdownLimit)
			}
			if len(got) > MarkdownLimit {
				t.Errorf("the summary is %d bytes, over %d", len(got), MarkdownLimit)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("want %q in the summary (%d bytes)", w, len(got))
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("do not want %q in the summary", w)
				}
			}
			var b bytes.Buffer
			if err := WriteMarkdown(&b, tt.run); err != nil {
				t.Fatal(err)
			}
			if b.Len() > MarkdownLimit {
				t.Errorf("the Markdown report is %d bytes, over %d", b.Len(), MarkdownLimit)
			}
		})
	}
}
