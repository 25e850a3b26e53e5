package schedule

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/modpipe/modpipe/coordinator"
)

// TestLogging checks the structured debug lines: one per scheduling event,
// each naming the task.
func TestLogging(t *testing.T) {
	var buf bytes.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Debug, JSONFormat: true})
	tasks := ordered(
		&Task{ID: "a", Attempts: 2, Backoff: time.Millisecond},
		&Task{ID: "b", Deps: deps("a")},
	)
	exec := &testExec{plan: map[string][]coordinator.Status{"a": {failed}}}
	_, _, _, _ = runAll(t, context.Background(), tasks, exec, Options{Logger: logger, OnFailure: Continue})

	var got []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["@level"] != "debug" {
			continue
		}
		got = append(got, rec["@message"].(string)+" "+rec["task"].(string))
	}
	want := []string{
		"task ready a", "task started a", "task retrying a", "task ready a",
		"task started a", "task finished a", "task skipped b",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("debug lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
