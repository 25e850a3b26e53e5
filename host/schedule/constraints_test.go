package schedule

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/modpipe/modpipe/coordinator"
)

// TestDeterministicOrder runs with parallelism 1, where the whole start
// order follows from priority, then critical path, then file order.
func TestDeterministicOrder(t *testing.T) {
	cases := []struct {
		name  string
		tasks []*Task
		want  string
	}{
		{
			name:  "file order when nothing else differs",
			tasks: ordered(&Task{ID: "a"}, &Task{ID: "b"}, &Task{ID: "c"}),
			want:  "a b c",
		},
		{
			name: "priority first, negative last",
			tasks: ordered(&Task{ID: "a"}, &Task{ID: "b", Priority: -1}, &Task{ID: "c", Priority: 5},
				&Task{ID: "d", Priority: 1}),
			want: "c d a b",
		},
		{
			name: "critical path breaks priority ties",
			// b heads the chain b -> d -> e; c heads c -> f; a has none.
			tasks: ordered(&Task{ID: "a"}, &Task{ID: "b"}, &Task{ID: "c"},
				&Task{ID: "d", Deps: deps("b")}, &Task{ID: "e", Deps: deps("d")},
				&Task{ID: "f", Deps: deps("c")}),
			want: "b c d a e f",
		},
		{
			name: "priority, critical path and file order together",
			tasks: ordered(&Task{ID: "a"}, &Task{ID: "b"}, &Task{ID: "c", Priority: 5},
				&Task{ID: "d", Deps: deps("b")}, &Task{ID: "e", Deps: deps("d")}),
			want: "c b d a e",
		},
		{
			name: "a dependent's priority does not lift its dependency",
			tasks: ordered(&Task{ID: "a", Priority: 1}, &Task{ID: "b"},
				&Task{ID: "c", Priority: 9, Deps: deps("b")}),
			want: "a b c",
		},
		{
			name:  "same Order falls back to the order given",
			tasks: []*Task{{ID: "m[2]", Order: 1}, {ID: "m[1]", Order: 1}, {ID: "z", Order: 0}},
			want:  "z m[2] m[1]",
		},
		{
			name: "diamond and wide fan-in",
			tasks: ordered(&Task{ID: "src"},
				&Task{ID: "x", Deps: deps("src")}, &Task{ID: "y", Deps: deps("src")},
				&Task{ID: "long", Deps: deps("src")}, &Task{ID: "long2", Deps: deps("long")},
				&Task{ID: "sink", Deps: deps("x", "y", "long2")}),
			want: "src long x y long2 sink",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, res, events, p := runAll(t, context.Background(), tc.tasks, &testExec{}, Options{Parallelism: 1})
			if got := strings.Join(starts(events), " "); got != tc.want {
				t.Errorf("start order %q, want %q", got, tc.want)
			}
			if p.total != 1 || !res.Succeeded {
				t.Errorf("peak %d, succeeded %v", p.total, res.Succeeded)
			}
		})
	}
}

// TestConstraints asserts each constraint from the event log: peaks per
// key, per limit group and overall are exactly what the constraint allows
// (so the scheduler is neither unsafe nor needlessly serial), and
// checkLog verifies no moment exceeded them. All tasks are ready at
// once, so the first dispatch pass already fills every allowance.
func TestConstraints(t *testing.T) {
	many := func(prefix string, n int, mod func(*Task)) []*Task {
		var ts []*Task
		for i := range n {
			task := &Task{ID: fmt.Sprintf("%s%d", prefix, i)}
			mod(task)
			ts = append(ts, task)
		}
		return ts
	}
	cat := func(groups ...[]*Task) []*Task {
		var all []*Task
		for _, g := range groups {
			all = append(all, g...)
		}
		return ordered(all...)
	}
	cases := []struct {
		name       string
		tasks      []*Task
		opts       Options
		wantTotal  int
		wantKeys   map[string]int
		wantLimits map[string]int
	}{
		{
			name:      "parallelism caps everything",
			tasks:     cat(many("t", 7, func(*Task) {})),
			opts:      Options{Parallelism: 3},
			wantTotal: 3,
		},
		{
			name:      "unbounded parallelism",
			tasks:     cat(many("t", 7, func(*Task) {})),
			wantTotal: 7,
		},
		{
			name: "keys: no two tasks sharing a key at once",
			tasks: cat(
				many("db", 4, func(t *Task) { t.Keys = []string{"db"} }),
				many("both", 2, func(t *Task) { t.Keys = []string{"db", "ports"} }),
				many("ports", 3, func(t *Task) { t.Keys = []string{"ports"} }),
				many("free", 2, func(*Task) {}),
			),
			wantTotal: 4, // one db, one ports, two free
			wantKeys:  map[string]int{"db": 1, "ports": 1},
		},
		{
			name: "limit groups",
			tasks: cat(
				many("heavy", 6, func(t *Task) { t.Limits = []string{"heavy"} }),
				many("light", 4, func(t *Task) { t.Limits = []string{"light"} }),
				many("mixed", 3, func(t *Task) { t.Limits = []string{"heavy", "light"} }),
			),
			opts:       Options{Limits: map[string]int{"heavy": 2, "light": 3}},
			wantTotal:  5,
			wantLimits: map[string]int{"heavy": 2, "light": 3},
		},
		{
			name: "limits, keys and parallelism combined",
			tasks: cat(
				many("a", 5, func(t *Task) { t.Limits = []string{"heavy"}; t.Keys = []string{"k"} }),
				many("b", 5, func(t *Task) { t.Limits = []string{"heavy"} }),
				many("c", 5, func(*Task) {}),
			),
			opts:       Options{Parallelism: 4, Limits: map[string]int{"heavy": 3}},
			wantTotal:  4,
			wantKeys:   map[string]int{"k": 1},
			wantLimits: map[string]int{"heavy": 3},
		},
		{
			name: "exclusive tasks run alone between concurrent ones",
			tasks: cat(
				many("x", 3, func(t *Task) { t.Exclusive = true }),
				many("p", 4, func(*Task) {}),
			),
			wantTotal: 4,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			exec := &testExec{}
			_, res, events, p := runAll(t, context.Background(), tc.tasks, exec, tc.opts)
			if !res.Succeeded {
				t.Fatalf("run failed: %+v", res.Envelopes)
			}
			if p.total != tc.wantTotal {
				t.Errorf("peak concurrency %d, want %d", p.total, tc.wantTotal)
			}
			for k, w := range tc.wantKeys {
				if p.keys[k] != w {
					t.Errorf("peak for key %q: %d, want %d", k, p.keys[k], w)
				}
			}
			for l, w := range tc.wantLimits {
				if p.limits[l] != w {
					t.Errorf("peak for limit %q: %d, want %d", l, p.limits[l], w)
				}
			}
			if t.Failed() {
				t.Logf("events: %v", events)
			}
		})
	}
}

// TestNoHeadOfLineBlocking: a ready task waiting for a key does not hold
// back a lower-ranked task that can start.
func TestNoHeadOfLineBlocking(t *testing.T) {
	tasks := ordered(
		&Task{ID: "db1", Keys: []string{"db"}, Priority: 10},
		&Task{ID: "db2", Keys: []string{"db"}, Priority: 9},
		&Task{ID: "other"},
	)
	_, _, events, _ := runAll(t, context.Background(), tasks, &testExec{}, Options{Parallelism: 2})
	if i, j := indexOf(events, evStart, "other"), indexOf(events, evFinish, "db1"); i < 0 || i > j {
		t.Errorf("other started at event %d, after db1 finished at %d: %v", i, j, events)
	}
	if i, j := indexOf(events, evStart, "db2"), indexOf(events, evFinish, "db1"); i < j {
		t.Errorf("db2 started (event %d) before db1 finished (event %d)", i, j)
	}
}

// TestExclusiveDrains: when an exclusive task is the best ready task,
// nothing new starts until the running tasks finish and it has run.
func TestExclusiveDrains(t *testing.T) {
	tasks := ordered(
		&Task{ID: "a", Priority: 10},
		&Task{ID: "b", Priority: 10},
		&Task{ID: "x", Exclusive: true, Priority: 5},
		&Task{ID: "y"},
		&Task{ID: "z"},
	)
	_, _, events, _ := runAll(t, context.Background(), tasks, &testExec{}, Options{})
	if got := strings.Join(starts(events), " "); got != "a b x y z" {
		t.Errorf("start order %q, want a b x y z", got)
	}
	if i, j := indexOf(events, evStart, "y"), indexOf(events, evFinish, "x"); i < j {
		t.Errorf("y started (event %d) before exclusive x finished (event %d): %v", i, j, events)
	}
}

// TestBackoffReleasesConstraints: a task waiting to retry holds no key,
// so another task of the key runs in the meantime.
func TestBackoffReleasesConstraints(t *testing.T) {
	tasks := ordered(
		&Task{ID: "a", Keys: []string{"db"}, Attempts: 2, Backoff: time.Millisecond},
		&Task{ID: "b", Keys: []string{"db"}},
	)
	exec := &testExec{plan: map[string][]coordinator.Status{"a": {failed, succeeded}}}
	_, res, events, _ := runAll(t, context.Background(), tasks, exec, Options{})
	want := "start a/1|retry a/1 failed wait=1ms|start b/1"
	if got := strings.Join(eventStrings(events[:3]), "|"); got != want {
		t.Errorf("events begin %q, want %q", got, want)
	}
	if !res.Succeeded || res.Envelopes[0].Attempts != 2 {
		t.Errorf("result %+v", res.Envelopes)
	}
}

// TestRandomGraphs checks the invariants on larger random graphs with
// every feature mixed, under the race detector: dependency order, keys,
// limits, exclusivity, parallelism, one final envelope per task.
func TestRandomGraphs(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			var tasks []*Task
			plan := map[string][]coordinator.Status{}
			keys := []string{"db", "ports", "gpu"}
			for i := range 300 {
				task := &Task{ID: fmt.Sprint("t", i), Order: i, Priority: rng.IntN(3), Attempts: 1 + rng.IntN(2)}
				for range rng.IntN(4) {
					if i > 0 {
						task.Deps = append(task.Deps, []string{fmt.Sprint("t", rng.IntN(i))})
					}
				}
				switch rng.IntN(10) {
				case 0:
					task.Exclusive = true
				case 1, 2:
					task.Keys = []string{keys[rng.IntN(len(keys))]}
				case 3:
					task.Keys = []string{"db", "gpu"}
				case 4, 5:
					task.Limits = []string{"heavy"}
				}
				if rng.IntN(8) == 0 {
					plan[task.ID] = []coordinator.Status{failed, succeeded}
				}
				if rng.IntN(30) == 0 {
					plan[task.ID] = []coordinator.Status{skipped}
				}
				tasks = append(tasks, task)
			}
			opts := Options{Parallelism: 1 + int(seed%4)*3, Limits: map[string]int{"heavy": 2}, OnFailure: Continue}
			if seed%3 == 0 {
				opts.Parallelism = 0
			}
			exec := &testExec{plan: plan}
			_, res, _, p := runAll(t, context.Background(), tasks, exec, opts)
			if len(res.Envelopes) != len(tasks) {
				t.Fatalf("%d envelopes for %d tasks", len(res.Envelopes), len(tasks))
			}
			if opts.Parallelism != 1 && p.total < 2 {
				t.Errorf("peak concurrency %d: nothing ran in parallel", p.total)
			}
		})
	}
}

// TestWokenWaiterPassesTheWakeOn drives the completion order by hand to
// reach the case where a task woken for a freed key is then blocked by
// another key that a higher-ranked task took first: the freed key must be
// offered to the next task waiting for it at once, not when it frees again.
func TestWokenWaiterPassesTheWakeOn(t *testing.T) {
	tasks := ordered(
		&Task{ID: "h1", Keys: []string{"x"}, Priority: 100},
		&Task{ID: "h2", Priority: 100},
		&Task{ID: "s", Priority: 95, Deps: deps("h1")},
		&Task{ID: "t", Priority: 90, Keys: []string{"y"}, Deps: deps("d")},
		&Task{ID: "w1", Priority: 80, Keys: []string{"x", "y"}},
		&Task{ID: "w2", Priority: 70, Keys: []string{"x"}},
		&Task{ID: "d", Priority: 50},
	)
	gates := map[string]chan struct{}{}
	for _, task := range tasks {
		gates[task.ID] = make(chan struct{})
	}
	exec := &testExec{hook: func(ctx context.Context, task *Task, attempt int) (coordinator.Envelope, bool) {
		if !await(gates[task.ID]) {
			return stuck(task, attempt, "the test to release it"), true
		}
		return coordinator.Envelope{}, false
	}}
	seen := make(chan string, 100)
	log := &eventLog{notify: func(e event) { seen <- e.String() }}
	opts := Options{Parallelism: 3, Observer: log}
	s, err := New(tasks, exec, opts)
	if err != nil {
		t.Fatal(err)
	}
	released := map[string]bool{}
	t.Cleanup(func() { // on failure, let the run end instead of leaking it
		for id, g := range gates {
			if !released[id] {
				close(g)
			}
		}
	})
	done := make(chan *Result, 1)
	go func() { done <- s.Run(context.Background()) }()
	// Release one task at a time and wait for what its finish must cause,
	// so each dispatch happens in a known state.
	steps := []struct{ release, until string }{
		{"h1", "start s/1"},
		{"d", "start t/1"},
		{"h2", "start w2/1"}, // w1 pops, finds y taken, waits; x goes to w2
		{"s", "finish s succeeded"},
		{"t", "finish t succeeded"},
		{"w2", "start w1/1"},
		{"w1", "finish w1 succeeded"},
	}
	for _, st := range steps {
		released[st.release] = true
		close(gates[st.release])
		for e := ""; e != st.until; {
			e = wait(t, seen, st.until+" after releasing "+st.release)
		}
	}
	res := wait(t, done, "Run to return")
	events := log.snapshot()
	checkLog(t, tasks, opts, events)
	// After h2 finishes, w1 (woken when h1 freed x) pops, finds y taken by
	// t and waits for y; w2 must then start on the free x right away.
	want := "start h1/1|start h2/1|start d/1|finish h1 succeeded|start s/1|finish d succeeded|start t/1|" +
		"finish h2 succeeded|start w2/1|finish s succeeded|finish t succeeded|finish w2 succeeded|start w1/1|finish w1 succeeded"
	if got := strings.Join(eventStrings(events), "|"); got != want {
		t.Errorf("events:\n%s\nwant:\n%s", got, want)
	}
	if !res.Succeeded {
		t.Errorf("run failed: %+v", res.Envelopes)
	}
}
