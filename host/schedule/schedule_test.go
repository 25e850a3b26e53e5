package schedule

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/modpipe/modpipe/coordinator"
)

const (
	succeeded = coordinator.StatusSucceeded
	failed    = coordinator.StatusFailed
	skipped   = coordinator.StatusSkipped
	cancelled = coordinator.StatusCancelled
	timedOut  = coordinator.StatusTimedOut
)

// ordered sets each task's Order to its position, as the file would.
func ordered(tasks ...*Task) []*Task {
	for i, t := range tasks {
		t.Order = i
	}
	return tasks
}

// outcome is what a test expects of one task's final envelope: its
// status, its message (the skip reason when skipped, else the error
// message, "" for none), and how many times the executor ran it.
type outcome struct {
	status coordinator.Status
	msg    string
	calls  int
}

func TestOutcomes(t *testing.T) {
	stop := "not started: the pipeline stopped after a failed"
	cases := []struct {
		name      string
		tasks     []*Task
		opts      Options
		plan      map[string][]coordinator.Status
		want      map[string]outcome
		succeeded bool
	}{
		{
			name:  "chain runs in dependency order",
			tasks: ordered(&Task{ID: "a"}, &Task{ID: "b", Deps: deps("a")}, &Task{ID: "c", Deps: deps("b")}),
			want: map[string]outcome{
				"a": {succeeded, "", 1}, "b": {succeeded, "", 1}, "c": {succeeded, "", 1},
			},
			succeeded: true,
		},
		{
			name: "fan-out and fan-in",
			tasks: ordered(&Task{ID: "a"},
				&Task{ID: "b", Deps: deps("a")}, &Task{ID: "c", Deps: deps("a")}, &Task{ID: "d", Deps: deps("a")},
				&Task{ID: "e", Deps: deps("b", "c", "d")}),
			want: map[string]outcome{
				"a": {succeeded, "", 1}, "b": {succeeded, "", 1}, "c": {succeeded, "", 1},
				"d": {succeeded, "", 1}, "e": {succeeded, "", 1},
			},
			succeeded: true,
		},
		{
			name: "stop: a failure skips dependents and cancels what has not started",
			tasks: ordered(&Task{ID: "a"}, &Task{ID: "b", Deps: deps("a")},
				&Task{ID: "c"}, &Task{ID: "d", Deps: deps("c")}),
			opts: Options{Parallelism: 1},
			plan: map[string][]coordinator.Status{"a": {failed}},
			want: map[string]outcome{
				"a": {failed, "a attempt 1 failed", 1},
				"b": {skipped, "dependency a failed", 0},
				"c": {cancelled, stop, 0},
				"d": {cancelled, stop, 0},
			},
		},
		{
			name: "continue: independent branches run, skips cascade",
			tasks: ordered(&Task{ID: "a"}, &Task{ID: "b", Deps: deps("a")}, &Task{ID: "e", Deps: deps("b")},
				&Task{ID: "c"}, &Task{ID: "d", Deps: deps("c")}),
			opts: Options{Parallelism: 1, OnFailure: Continue},
			plan: map[string][]coordinator.Status{"a": {failed}},
			want: map[string]outcome{
				"a": {failed, "a attempt 1 failed", 1},
				"b": {skipped, "dependency a failed", 0},
				"e": {skipped, "dependency b was skipped", 0},
				"c": {succeeded, "", 1},
				"d": {succeeded, "", 1},
			},
		},
		{
			name: "always_run runs after a failed dependency and after stop",
			tasks: ordered(&Task{ID: "a"},
				&Task{ID: "cleanup", Deps: deps("a"), AlwaysRun: true},
				&Task{ID: "report", Deps: deps("cleanup")},
				&Task{ID: "other"},
				&Task{ID: "late", AlwaysRun: true}),
			opts: Options{Parallelism: 1},
			plan: map[string][]coordinator.Status{"a": {failed}},
			want: map[string]outcome{
				"a":       {failed, "a attempt 1 failed", 1},
				"cleanup": {succeeded, "", 1},
				"report":  {cancelled, stop, 0},
				"other":   {cancelled, stop, 0},
				"late":    {succeeded, "", 1},
			},
		},
		{
			name: "always_run runs after a skipped dependency",
			tasks: ordered(&Task{ID: "a"}, &Task{ID: "b", Deps: deps("a")},
				&Task{ID: "c", Deps: deps("a"), AlwaysRun: true}),
			plan: map[string][]coordinator.Status{"a": {skipped}},
			want: map[string]outcome{
				"a": {skipped, "run_if is false: false", 1},
				"b": {skipped, "dependency a was skipped", 0},
				"c": {succeeded, "", 1},
			},
			succeeded: true,
		},
		{
			name: "ignore_failure: dependents run, nothing stops, the pipeline succeeds",
			tasks: ordered(&Task{ID: "a", IgnoreFailure: true}, &Task{ID: "b", Deps: deps("a")},
				&Task{ID: "c"}),
			opts: Options{Parallelism: 1},
			plan: map[string][]coordinator.Status{"a": {failed}},
			want: map[string]outcome{
				"a": {failed, "a attempt 1 failed", 1},
				"b": {succeeded, "", 1},
				"c": {succeeded, "", 1},
			},
			succeeded: true,
		},
		{
			name:  "ignore_failure covers a timeout",
			tasks: ordered(&Task{ID: "a", IgnoreFailure: true}, &Task{ID: "b", Deps: deps("a")}),
			plan:  map[string][]coordinator.Status{"a": {timedOut}},
			want: map[string]outcome{
				"a": {timedOut, "a attempt 1 timed_out", 1},
				"b": {succeeded, "", 1},
			},
			succeeded: true,
		},
		{
			name: "a timeout skips dependents and stops the pipeline",
			tasks: ordered(&Task{ID: "a"}, &Task{ID: "b", Deps: deps("a")},
				&Task{ID: "c"}),
			opts: Options{Parallelism: 1},
			plan: map[string][]coordinator.Status{"a": {timedOut}},
			want: map[string]outcome{
				"a": {timedOut, "a attempt 1 timed_out", 1},
				"b": {skipped, "dependency a timed out", 0},
				"c": {cancelled, "not started: the pipeline stopped after a timed out", 0},
			},
		},
		{
			name: "retry until success, over a failure and a timeout",
			tasks: ordered(&Task{ID: "a", Attempts: 3, Backoff: time.Millisecond},
				&Task{ID: "b", Deps: deps("a")}),
			plan: map[string][]coordinator.Status{"a": {failed, timedOut, succeeded}},
			want: map[string]outcome{
				"a": {succeeded, "", 3},
				"b": {succeeded, "", 1},
			},
			succeeded: true,
		},
		{
			name: "retries exhausted",
			tasks: ordered(&Task{ID: "a", Attempts: 2},
				&Task{ID: "b", Deps: deps("a")}),
			plan: map[string][]coordinator.Status{"a": {failed}},
			want: map[string]outcome{
				"a": {failed, "a attempt 2 failed", 2},
				"b": {skipped, "dependency a failed", 0},
			},
		},
		{
			name: "skipped is never retried and skips transitively",
			tasks: ordered(&Task{ID: "a", Attempts: 3},
				&Task{ID: "b", Deps: deps("a")}, &Task{ID: "c", Deps: deps("b")}),
			plan: map[string][]coordinator.Status{"a": {skipped}},
			want: map[string]outcome{
				"a": {skipped, "run_if is false: false", 1},
				"b": {skipped, "dependency a was skipped", 0},
				"c": {skipped, "dependency b was skipped", 0},
			},
			succeeded: true,
		},
		{
			name: "matrix group entirely skipped skips the dependent",
			tasks: ordered(&Task{ID: "test[linux]"}, &Task{ID: "test[windows]"},
				&Task{ID: "deploy", Deps: [][]string{{"test[linux]", "test[windows]"}}}),
			plan: map[string][]coordinator.Status{"test[linux]": {skipped}, "test[windows]": {skipped}},
			want: map[string]outcome{
				"test[linux]":   {skipped, "run_if is false: false", 1},
				"test[windows]": {skipped, "run_if is false: false", 1},
				"deploy":        {skipped, "dependency test was skipped (all 2 instances)", 0},
			},
			succeeded: true,
		},
		{
			name: "matrix group partly skipped does not block",
			tasks: ordered(&Task{ID: "test[linux]"}, &Task{ID: "test[windows]"},
				&Task{ID: "deploy", Deps: [][]string{{"test[linux]", "test[windows]"}}}),
			plan: map[string][]coordinator.Status{"test[windows]": {skipped}},
			want: map[string]outcome{
				"test[linux]":   {succeeded, "", 1},
				"test[windows]": {skipped, "run_if is false: false", 1},
				"deploy":        {succeeded, "", 1},
			},
			succeeded: true,
		},
		{
			name: "a failed matrix instance skips the dependent",
			tasks: ordered(&Task{ID: "test[linux]"}, &Task{ID: "test[windows]"},
				&Task{ID: "deploy", Deps: [][]string{{"test[linux]", "test[windows]"}}}),
			opts: Options{OnFailure: Continue},
			plan: map[string][]coordinator.Status{"test[linux]": {failed}},
			want: map[string]outcome{
				"test[linux]":   {failed, "test[linux] attempt 1 failed", 1},
				"test[windows]": {succeeded, "", 1},
				"deploy":        {skipped, "dependency test[linux] failed", 0},
			},
		},
		{
			name:  "a single skipped group among others skips the dependent",
			tasks: ordered(&Task{ID: "a"}, &Task{ID: "b"}, &Task{ID: "c", Deps: deps("a", "b")}),
			plan:  map[string][]coordinator.Status{"b": {skipped}},
			want: map[string]outcome{
				"a": {succeeded, "", 1},
				"b": {skipped, "run_if is false: false", 1},
				"c": {skipped, "dependency b was skipped", 0},
			},
			succeeded: true,
		},
		{
			name:  "a task cancelled by the executor skips dependents and fails the run",
			tasks: ordered(&Task{ID: "a", Attempts: 2}, &Task{ID: "b", Deps: deps("a")}),
			opts:  Options{OnFailure: Continue},
			plan:  map[string][]coordinator.Status{"a": {cancelled}},
			want: map[string]outcome{
				"a": {cancelled, "cancelled while running", 1},
				"b": {skipped, "dependency a was cancelled", 0},
			},
		},
		{
			name: "a failure outranks a cancellation in the skip reason",
			tasks: ordered(&Task{ID: "x"}, &Task{ID: "a"},
				&Task{ID: "c", Deps: deps("x", "a")}),
			opts: Options{OnFailure: Continue},
			plan: map[string][]coordinator.Status{"x": {cancelled}, "a": {failed}},
			want: map[string]outcome{
				"x": {cancelled, "cancelled while running", 1},
				"a": {failed, "a attempt 1 failed", 1},
				"c": {skipped, "dependency a failed", 0},
			},
		},
		{
			name:  "an invalid status from the executor is a failure",
			tasks: ordered(&Task{ID: "a"}),
			plan:  map[string][]coordinator.Status{"a": {"weird"}},
			want: map[string]outcome{
				"a": {failed, `the executor returned the invalid status "weird" for a (this is a bug in the executor)`, 1},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			exec := &testExec{plan: tc.plan}
			_, res, events, _ := runAll(t, context.Background(), tc.tasks, exec, tc.opts)
			if res.Succeeded != tc.succeeded {
				t.Errorf("Succeeded = %v, want %v", res.Succeeded, tc.succeeded)
			}
			if res.Cancelled {
				t.Errorf("Cancelled = true, want false")
			}
			if len(res.Envelopes) != len(tc.tasks) {
				t.Fatalf("%d envelopes for %d tasks", len(res.Envelopes), len(tc.tasks))
			}
			got := envByID(res)
			for id, w := range tc.want {
				env, ok := got[id]
				if !ok {
					t.Errorf("%s: no envelope", id)
					continue
				}
				msg := env.SkipReason
				if env.Status != skipped && env.Error != nil {
					msg = env.Error.Message
				}
				if env.Status != w.status || msg != w.msg {
					t.Errorf("%s: got %s %q, want %s %q", id, env.Status, msg, w.status, w.msg)
				}
				if c := exec.callCount(id); c != w.calls {
					t.Errorf("%s: executed %d times, want %d", id, c, w.calls)
				}
				checkEnvelopeFields(t, env, w.calls)
			}
			if t.Failed() {
				t.Logf("events: %v", events)
			}
		})
	}
}

// checkEnvelopeFields asserts what the scheduler sets and keeps: Module
// and Attempts always; the executor's other fields untouched; its own
// envelopes with zero attempts and a start equal to the end.
func checkEnvelopeFields(t *testing.T, env coordinator.Envelope, calls int) {
	t.Helper()
	want := calls
	if env.Status == skipped {
		want = 0 // skipped when it came to run: it never ran
	}
	if env.Attempts != want {
		t.Errorf("%s: Attempts = %d, want %d", env.Module, env.Attempts, want)
	}
	if calls > 0 {
		if env.Type != "test.exec/v1" || env.Host != "test-host" || env.Plugin != "test" || len(env.Value) == 0 {
			t.Errorf("%s: executor fields not kept: %+v", env.Module, env)
		}
		return
	}
	if env.Type != "" || env.Value != nil || env.StartedAt.IsZero() || !env.StartedAt.Equal(env.EndedAt) {
		t.Errorf("%s: scheduler-made envelope has unexpected fields: %+v", env.Module, env)
	}
	if env.Status == cancelled && (env.Error == nil || env.Error.Kind != coordinator.ErrorKindCancelled) {
		t.Errorf("%s: cancelled envelope without a cancelled error: %+v", env.Module, env.Error)
	}
}

func TestRetryEventsAndBackoff(t *testing.T) {
	tasks := ordered(&Task{ID: "a", Attempts: 4, Backoff: time.Millisecond})
	exec := &testExec{plan: map[string][]coordinator.Status{"a": {failed, timedOut, failed, succeeded}}}
	_, res, events, _ := runAll(t, context.Background(), tasks, exec, Options{})
	want := []string{
		"start a/1", "retry a/1 failed wait=1ms",
		"start a/2", "retry a/2 timed_out wait=2ms",
		"start a/3", "retry a/3 failed wait=4ms",
		"start a/4", "finish a succeeded",
	}
	if got := eventStrings(events); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if env := res.Envelopes[0]; env.Attempts != 4 || env.Status != succeeded || string(env.Value) != `{"id":"a","attempt":4}` {
		t.Errorf("final envelope = %+v", env)
	}
}

func eventStrings(events []event) []string {
	s := make([]string, len(events))
	for i, e := range events {
		s[i] = e.String()
	}
	return s
}

func TestBackoffFor(t *testing.T) {
	cases := []struct {
		base time.Duration
		n    int
		want time.Duration
	}{
		{0, 1, 0},
		{time.Second, 1, time.Second},
		{time.Second, 2, 2 * time.Second},
		{time.Second, 4, 8 * time.Second},
		{time.Hour, 100, time.Duration(1<<63 - 1)},
	}
	for _, tc := range cases {
		if got := backoffFor(tc.base, tc.n); got != tc.want {
			t.Errorf("backoffFor(%s, %d) = %s, want %s", tc.base, tc.n, got, tc.want)
		}
	}
}

func TestNewRejectsBadGraphs(t *testing.T) {
	cases := []struct {
		name  string
		tasks []*Task
		opts  Options
		want  []string // substrings of the error
	}{
		{"duplicate ID", []*Task{{ID: "a"}, {ID: "a"}}, Options{},
			[]string{`task "a" is defined twice`}},
		{"empty ID", []*Task{{ID: ""}}, Options{}, []string{"task #0 has an empty ID"}},
		{"nil task", []*Task{nil}, Options{}, []string{"task #0 is nil"}},
		{"unknown dependency", []*Task{{ID: "a", Deps: deps("nope")}}, Options{},
			[]string{`task "a" depends on "nope", which is not a task of this run`}},
		{"self dependency", []*Task{{ID: "a", Deps: deps("a")}}, Options{},
			[]string{"dependency cycle: a depends on a"}},
		{"unknown limit", []*Task{{ID: "a", Limits: []string{"heavy"}}}, Options{},
			[]string{`task "a" uses limit "heavy", which is not defined`}},
		{"limit below one", []*Task{{ID: "a"}}, Options{Limits: map[string]int{"heavy": 0}},
			[]string{`limit "heavy" has max 0: it must be at least 1`}},
		{"negative attempts and backoff", []*Task{{ID: "a", Attempts: -1, Backoff: -time.Second}}, Options{},
			[]string{`task "a" has -1 attempts`, `task "a" has a negative backoff -1s`}},
		{"negative parallelism", []*Task{{ID: "a"}}, Options{Parallelism: -1},
			[]string{"parallelism -1 is negative"}},
		{"every problem at once", []*Task{{ID: "a", Deps: deps("x")}, {ID: "a"}, {ID: "b", Limits: []string{"l"}}}, Options{},
			[]string{`depends on "x"`, "defined twice", `uses limit "l"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.tasks, &testExec{}, tc.opts)
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := New(nil, nil, Options{}); err == nil || !strings.Contains(err.Error(), "executor is nil") {
		t.Errorf("nil executor: err = %v", err)
	}
}

func TestNewNamesEveryTaskOfACycle(t *testing.T) {
	tasks := []*Task{
		{ID: "root"},
		{ID: "a", Deps: deps("root", "c")},
		{ID: "b", Deps: deps("a")},
		{ID: "c", Deps: deps("b")},
		{ID: "after", Deps: deps("c")},
	}
	_, err := New(tasks, &testExec{}, Options{})
	var cyc *CycleError
	if !errors.As(err, &cyc) {
		t.Fatalf("err = %v, want a *CycleError", err)
	}
	got := map[string]bool{}
	for _, id := range cyc.Cycle {
		got[id] = true
	}
	if len(cyc.Cycle) != 3 || !got["a"] || !got["b"] || !got["c"] {
		t.Errorf("cycle = %v, want a, b and c", cyc.Cycle)
	}
	if cyc.Involved != 4 {
		t.Errorf("Involved = %d, want 4 (a, b, c and after)", cyc.Involved)
	}
	if !strings.Contains(err.Error(), "remove one of these dependencies") {
		t.Errorf("error does not say what to do: %v", err)
	}
}

func TestParseOnFailure(t *testing.T) {
	cases := []struct {
		in      string
		want    OnFailure
		wantErr bool
	}{
		{"", Stop, false}, {"stop", Stop, false}, {"Continue", Continue, false}, {"halt", Stop, true},
	}
	for _, tc := range cases {
		got, err := ParseOnFailure(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseOnFailure(%q) = %v, %v", tc.in, got, err)
		}
		if err == nil && got.String() != strings.ToLower(strings.TrimSpace(tc.in)) && tc.in != "" {
			t.Errorf("%v.String() = %q", got, got.String())
		}
	}
}

func TestResultInFileOrder(t *testing.T) {
	tasks := []*Task{
		{ID: "third", Order: 2},
		{ID: "first-a", Order: 0},
		{ID: "second", Order: 1, Deps: deps("third")},
		{ID: "first-b", Order: 0},
	}
	_, res, _, _ := runAll(t, context.Background(), tasks, &testExec{}, Options{})
	var got []string
	for _, e := range res.Envelopes {
		got = append(got, e.Module)
	}
	if want := "first-a first-b second third"; strings.Join(got, " ") != want {
		t.Errorf("envelopes in order %v, want %s", got, want)
	}
}

// TestEnvelopeDuringRun has each executor read its dependencies' envelopes
// through Scheduler.Envelope while the run is in progress.
func TestEnvelopeDuringRun(t *testing.T) {
	tasks := ordered(&Task{ID: "a"}, &Task{ID: "b", Deps: deps("a")},
		&Task{ID: "c", Deps: [][]string{{"a", "b"}}})
	var s *Scheduler
	seen := make(chan string, 10)
	exec := &testExec{}
	exec.hook = func(ctx context.Context, task *Task, attempt int) (coordinator.Envelope, bool) {
		for _, g := range task.Deps {
			for _, d := range g {
				env, ok := s.Envelope(d)
				if !ok || env.Module != d || env.Status != succeeded || string(env.Value) != `{"id":"`+d+`","attempt":1}` {
					seen <- "missing " + d + " for " + task.ID
					continue
				}
				seen <- d + " for " + task.ID
			}
		}
		if _, ok := s.Envelope(task.ID); ok {
			seen <- "own envelope visible while running " + task.ID
		}
		return coordinator.Envelope{}, false
	}
	log := &eventLog{}
	var err error
	s, err = New(tasks, exec, Options{Observer: log})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Envelope("a"); ok {
		t.Error("Envelope before Run returned a result")
	}
	res := runGuarded(t, context.Background(), s)
	close(seen)
	var got []string
	for m := range seen {
		got = append(got, m)
	}
	if want := "a for b|a for c|b for c"; strings.Join(got, "|") != want {
		t.Errorf("executors saw %q, want %q", strings.Join(got, "|"), want)
	}
	if !res.Succeeded {
		t.Errorf("run failed: %+v", res.Envelopes)
	}
	if env, ok := s.Envelope("c"); !ok || env.Status != succeeded {
		t.Errorf("Envelope(c) after Run = %+v, %v", env, ok)
	}
	if _, ok := s.Envelope("nope"); ok {
		t.Error("Envelope of an unknown task returned a result")
	}
}

// TestRunTwice checks a Scheduler can run its graph again from scratch.
func TestRunTwice(t *testing.T) {
	tasks := ordered(&Task{ID: "a"}, &Task{ID: "b", Deps: deps("a")})
	exec := &testExec{}
	s, err := New(tasks, exec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		res := runGuarded(t, context.Background(), s)
		if !res.Succeeded || exec.callCount("b") != i {
			t.Errorf("run %d: succeeded=%v, b ran %d times", i, res.Succeeded, exec.callCount("b"))
		}
	}
}

func TestWaves(t *testing.T) {
	tasks := ordered(
		&Task{ID: "a"}, &Task{ID: "b", Priority: 1},
		&Task{ID: "c", Deps: deps("a")}, &Task{ID: "d", Deps: deps("a", "c")},
		&Task{ID: "e", Deps: [][]string{{"b", "a"}}},
	)
	s, err := New(tasks, &testExec{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range s.Waves() {
		got = append(got, strings.Join(w, ","))
	}
	if want := "b,a|c,e|d"; strings.Join(got, "|") != want {
		t.Errorf("waves %q, want %q", strings.Join(got, "|"), want)
	}
	if n, ok := s.CriticalPath("a"); !ok || n != 2 {
		t.Errorf("CriticalPath(a) = %d, %v; want 2 (a -> c -> d)", n, ok)
	}
	if s.Task("e") != tasks[4] || s.Task("zz") != nil {
		t.Error("Task lookup is wrong")
	}
}

func TestEmptyGraph(t *testing.T) {
	_, res, _, _ := runAll(t, context.Background(), nil, &testExec{}, Options{})
	if !res.Succeeded || res.Cancelled || len(res.Envelopes) != 0 {
		t.Errorf("empty run: %+v", res)
	}
}
