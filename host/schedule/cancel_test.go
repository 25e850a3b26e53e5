package schedule

import (
	"context"
	"testing"
	"time"

	"github.com/modpipe/modpipe/coordinator"
)

// blockUntilCancelled is what a well-behaved executor does when its ctx is
// cancelled mid-run.
func blockUntilCancelled(ctx context.Context, t *Task, attempt int) coordinator.Envelope {
	<-ctx.Done()
	return envelopeFor(t, attempt, cancelled)
}

// TestStopCancelsRunningTasks: under on_failure stop, the first failure
// cancels the ctx of every running task except always_run ones, and the
// tasks that have not started are cancelled without running.
func TestStopCancelsRunningTasks(t *testing.T) {
	tasks := ordered(
		&Task{ID: "slow"},
		&Task{ID: "fail"},
		&Task{ID: "always", AlwaysRun: true},
		&Task{ID: "after-slow", Deps: deps("slow")},
		&Task{ID: "cleanup", Deps: deps("slow"), AlwaysRun: true},
	)
	slowEntered := make(chan struct{})
	slowReturned := make(chan struct{})
	exec := &testExec{}
	exec.hook = func(ctx context.Context, task *Task, attempt int) (coordinator.Envelope, bool) {
		switch task.ID {
		case "slow":
			close(slowEntered)
			defer close(slowReturned)
			return blockUntilCancelled(ctx, task, attempt), true
		case "fail":
			if !await(slowEntered) {
				return stuck(task, attempt, "slow to start"), true
			}
			return envelopeFor(task, attempt, failed), true
		case "always":
			// Still running when the stop cancels slow; its own ctx
			// must survive the stop.
			if !await(slowReturned) {
				return stuck(task, attempt, "slow to be cancelled"), true
			}
			if ctx.Err() != nil {
				return envelopeFor(task, attempt, cancelled), true
			}
		}
		return coordinator.Envelope{}, false
	}
	_, res, events, _ := runAll(t, context.Background(), tasks, exec, Options{})
	stop := "not started: the pipeline stopped after fail failed"
	want := map[string]outcome{
		"slow":       {cancelled, "cancelled while running", 1},
		"fail":       {failed, "fail attempt 1 failed", 1},
		"always":     {succeeded, "", 1},
		"after-slow": {cancelled, stop, 0},
		"cleanup":    {succeeded, "", 1},
	}
	checkOutcomes(t, res, exec, want)
	if res.Succeeded || res.Cancelled {
		t.Errorf("Succeeded = %v, Cancelled = %v; want false, false", res.Succeeded, res.Cancelled)
	}
	if t.Failed() {
		t.Logf("events: %v", events)
	}
}

// TestCallerCancellation: cancelling the caller's ctx cancels running
// tasks (their envelopes come from the executor), abandons waiting
// retries, and reports every task that never started as cancelled, even
// always_run ones. Run returns only after every Execute returned.
func TestCallerCancellation(t *testing.T) {
	tasks := ordered(
		&Task{ID: "a"},
		&Task{ID: "b"},
		&Task{ID: "flaky", Attempts: 3, Backoff: time.Hour},
		&Task{ID: "c", Deps: deps("a")},
		&Task{ID: "d", Deps: deps("c"), AlwaysRun: true},
		&Task{ID: "e", Deps: deps("flaky")},
	)
	entered := make(chan string, 10)
	returned := make(chan string, 10)
	exec := &testExec{plan: map[string][]coordinator.Status{"flaky": {failed}}}
	exec.hook = func(ctx context.Context, task *Task, attempt int) (coordinator.Envelope, bool) {
		if task.ID == "flaky" {
			return coordinator.Envelope{}, false
		}
		entered <- task.ID
		defer func() { returned <- task.ID }()
		return blockUntilCancelled(ctx, task, attempt), true
	}
	retrying := make(chan struct{}, 1)
	log := &eventLog{notify: func(e event) {
		if e.kind == evRetry {
			retrying <- struct{}{}
		}
	}}
	s, err := New(tasks, exec, Options{Observer: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan *Result, 1)
	go func() { done <- s.Run(ctx) }()
	wait(t, entered, "a first task to start")
	wait(t, entered, "a second task to start")
	wait(t, retrying, "flaky to wait for its retry")
	cancel()
	res := wait(t, done, "Run to return after cancellation")
	if len(returned) != 2 {
		t.Errorf("Run returned before every Execute call did: %d of 2 returned", len(returned))
	}
	checkLog(t, tasks, Options{}, log.snapshot())
	want := map[string]outcome{
		"a":     {cancelled, "cancelled while running", 1},
		"b":     {cancelled, "cancelled while running", 1},
		"flaky": {cancelled, "not retried: the run was cancelled (attempt 1 of 3 ended failed: flaky attempt 1 failed)", 1},
		"c":     {cancelled, "not started: the run was cancelled", 0},
		"d":     {cancelled, "not started: the run was cancelled", 0},
		"e":     {cancelled, "not started: the run was cancelled", 0},
	}
	checkOutcomes(t, res, exec, want)
	if !res.Cancelled || res.Succeeded {
		t.Errorf("Cancelled = %v, Succeeded = %v; want true, false", res.Cancelled, res.Succeeded)
	}
	if env := envByID(res)["flaky"]; env.Error == nil || env.Error.Tail != "tail of flaky" || env.Error.Kind != coordinator.ErrorKindCancelled {
		t.Errorf("abandoned retry's error = %+v, want the last attempt's tail kept", env.Error)
	}
}

// TestStopAbandonsRetries: a task waiting to retry when the pipeline stops
// is not retried; an always_run task that fails after the stop still is.
func TestStopAbandonsRetries(t *testing.T) {
	tasks := ordered(
		&Task{ID: "flaky", Attempts: 2, Backoff: time.Hour},
		&Task{ID: "flaky-always", Attempts: 2, Backoff: time.Millisecond, AlwaysRun: true},
		&Task{ID: "fail"},
	)
	flakyRetrying := make(chan struct{})
	failFinished := make(chan struct{})
	exec := &testExec{plan: map[string][]coordinator.Status{
		"flaky": {failed}, "flaky-always": {failed, succeeded},
	}}
	exec.hook = func(ctx context.Context, task *Task, attempt int) (coordinator.Envelope, bool) {
		switch {
		case task.ID == "fail":
			if !await(flakyRetrying) {
				return stuck(task, attempt, "flaky to wait for its retry"), true
			}
			return envelopeFor(task, attempt, failed), true
		case task.ID == "flaky-always" && attempt == 1:
			// Fail only after the stop, so its retry is decided after it.
			if !await(failFinished) {
				return stuck(task, attempt, "fail to stop the pipeline"), true
			}
		}
		return coordinator.Envelope{}, false
	}
	log := &eventLog{notify: func(e event) {
		switch {
		case e.kind == evRetry && e.id == "flaky":
			close(flakyRetrying)
		case e.kind == evFinish && e.id == "fail":
			close(failFinished)
		}
	}}
	s, err := New(tasks, exec, Options{Observer: log})
	if err != nil {
		t.Fatal(err)
	}
	res := runGuarded(t, context.Background(), s)
	checkLog(t, tasks, Options{}, log.snapshot())
	checkOutcomes(t, res, exec, map[string]outcome{
		"flaky":        {cancelled, "not retried: the pipeline stopped after fail failed (attempt 1 of 2 ended failed: flaky attempt 1 failed)", 1},
		"flaky-always": {succeeded, "", 2},
		"fail":         {failed, "fail attempt 1 failed", 1},
	})
	if res.Succeeded || res.Cancelled {
		t.Errorf("Succeeded = %v, Cancelled = %v; want false, false", res.Succeeded, res.Cancelled)
	}
}

// TestCancelledBeforeRun: a ctx already cancelled runs nothing.
func TestCancelledBeforeRun(t *testing.T) {
	tasks := ordered(&Task{ID: "a"}, &Task{ID: "b", Deps: deps("a")}, &Task{ID: "c", AlwaysRun: true})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	exec := &testExec{}
	_, res, _, _ := runAll(t, ctx, tasks, exec, Options{})
	checkOutcomes(t, res, exec, map[string]outcome{
		"a": {cancelled, "not started: the run was cancelled", 0},
		"b": {cancelled, "not started: the run was cancelled", 0},
		"c": {cancelled, "not started: the run was cancelled", 0},
	})
	if !res.Cancelled || res.Succeeded {
		t.Errorf("Cancelled = %v, Succeeded = %v", res.Cancelled, res.Succeeded)
	}
}

func checkOutcomes(t *testing.T, res *Result, exec *testExec, want map[string]outcome) {
	t.Helper()
	got := envByID(res)
	for id, w := range want {
		env := got[id]
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
		if env.Attempts != w.calls {
			t.Errorf("%s: Attempts = %d, want %d", id, env.Attempts, w.calls)
		}
	}
}

// TestStopWithWaitingTasks: tasks waiting for a key when the pipeline stops
// are cancelled, except always_run ones, which still get the key.
func TestStopWithWaitingTasks(t *testing.T) {
	tasks := ordered(
		&Task{ID: "k1", Keys: []string{"db"}},
		&Task{ID: "k2", Keys: []string{"db"}},
		&Task{ID: "k3", Keys: []string{"db"}, AlwaysRun: true},
		&Task{ID: "fail"},
	)
	st := newStepper(t, "fail")
	exec := &testExec{plan: map[string][]coordinator.Status{"fail": {failed}}}
	exec.hook = func(ctx context.Context, task *Task, attempt int) (coordinator.Envelope, bool) {
		if task.ID == "k1" {
			return blockUntilCancelled(ctx, task, attempt), true
		}
		if !st.gate(task) {
			return stuck(task, attempt, "release"), true
		}
		return coordinator.Envelope{}, false
	}
	log := &eventLog{notify: st.observe}
	s, err := New(tasks, exec, Options{Observer: log})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *Result, 1)
	go func() { done <- s.Run(context.Background()) }()
	st.await("start fail/1")
	st.release("fail", "finish fail failed")
	res := wait(t, done, "Run to return")
	events := log.snapshot()
	checkLog(t, tasks, Options{}, events)
	checkOutcomes(t, res, exec, map[string]outcome{
		"k1":   {cancelled, "cancelled while running", 1},
		"k2":   {cancelled, "not started: the pipeline stopped after fail failed", 0},
		"k3":   {succeeded, "", 1},
		"fail": {failed, "fail attempt 1 failed", 1},
	})
}

// TestStopWithReadyRetry: a retry with no backoff that is ready but held
// back (here by an exclusive task draining the running set) when the
// pipeline stops is not retried.
func TestStopWithReadyRetry(t *testing.T) {
	tasks := ordered(
		&Task{ID: "r", Priority: 100, Attempts: 2},
		&Task{ID: "w", Priority: 90},
		&Task{ID: "long", Priority: 80},
		&Task{ID: "fail", Priority: 70},
		&Task{ID: "x", Priority: 150, Exclusive: true, Deps: deps("w")},
	)
	st := newStepper(t, "r", "w", "fail")
	exec := &testExec{plan: map[string][]coordinator.Status{"r": {failed}, "fail": {failed}}}
	exec.hook = func(ctx context.Context, task *Task, attempt int) (coordinator.Envelope, bool) {
		if task.ID == "long" {
			return blockUntilCancelled(ctx, task, attempt), true
		}
		if !st.gate(task) {
			return stuck(task, attempt, "release"), true
		}
		return coordinator.Envelope{}, false
	}
	log := &eventLog{notify: st.observe}
	s, err := New(tasks, exec, Options{Observer: log})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *Result, 1)
	go func() { done <- s.Run(context.Background()) }()
	st.await("start fail/1")
	st.release("w", "finish w succeeded") // x is ready now and drains the running set
	st.release("r", "retry r/1 failed wait=0s")
	st.release("fail", "finish fail failed")
	res := wait(t, done, "Run to return")
	checkLog(t, tasks, Options{}, log.snapshot())
	stop := "the pipeline stopped after fail failed"
	checkOutcomes(t, res, exec, map[string]outcome{
		"r":    {cancelled, "not retried: " + stop + " (attempt 1 of 2 ended failed: r attempt 1 failed)", 1},
		"w":    {succeeded, "", 1},
		"long": {cancelled, "cancelled while running", 1},
		"fail": {failed, "fail attempt 1 failed", 1},
		"x":    {cancelled, "not started: " + stop, 0},
	})
}

// TestRetryStoppedBeforeItStarted: a retry whose Execute says it never
// started (a fleet master's retry waiting for a member when the pipeline
// stops) keeps the attempt that ran, where it ran, as a retry stopped
// during its backoff does, rather than reading "not started", 0 attempts.
func TestRetryStoppedBeforeItStarted(t *testing.T) {
	tasks := ordered(
		&Task{ID: "lost", Attempts: 2},
		&Task{ID: "boom"},
	)
	retryWaits := make(chan struct{})
	exec := &testExec{}
	exec.hook = func(ctx context.Context, task *Task, attempt int) (coordinator.Envelope, bool) {
		switch {
		case task.ID == "lost" && attempt == 1:
			env := envelopeFor(task, attempt, failed)
			env.Instance, env.Host = 1, "vm1"
			env.Error = &coordinator.Error{Kind: coordinator.ErrorKindLost, Message: "instance 1 (vm1) was lost while running lost"}
			return env, true
		case task.ID == "lost":
			close(retryWaits)
			<-ctx.Done()
			now := time.Now()
			return coordinator.Envelope{Status: cancelled, StartedAt: now, EndedAt: now,
				Error: &coordinator.Error{Kind: coordinator.ErrorKindCancelled, Message: "not started: " + context.Cause(ctx).Error()}}, true
		case task.ID == "boom":
			if !await(retryWaits) {
				return stuck(task, attempt, "lost's retry"), true
			}
			return envelopeFor(task, attempt, failed), true
		}
		return coordinator.Envelope{}, false
	}
	_, res, _, _ := runAll(t, context.Background(), tasks, exec, Options{})
	env := envByID(res)["lost"]
	want := "not retried: the pipeline stopped after boom failed (attempt 1 of 2 ended failed: instance 1 (vm1) was lost while running lost)"
	if env.Status != cancelled || env.Error == nil || env.Error.Message != want || env.Error.Kind != coordinator.ErrorKindCancelled {
		t.Errorf("lost: %s %+v, want cancelled %q", env.Status, env.Error, want)
	}
	if env.Attempts != 1 || env.Instance != 1 || env.Host != "vm1" {
		t.Errorf("lost: %d attempts, last on instance %d (%q); want 1, on instance 1 (vm1)", env.Attempts, env.Instance, env.Host)
	}
}

// TestInterruptionSaysWhyTasksDidNotStart: a run cancelled with an
// Interruption as its cause gives its kind and reason to the tasks that
// never started (and to the retries never made), not "the run was
// cancelled".
func TestInterruptionSaysWhyTasksDidNotStart(t *testing.T) {
	tasks := ordered(
		&Task{ID: "a"},
		&Task{ID: "flaky", Attempts: 3, Backoff: time.Hour},
		&Task{ID: "b", Deps: deps("a")},
	)
	entered := make(chan struct{})
	exec := &testExec{plan: map[string][]coordinator.Status{"flaky": {failed}}}
	exec.hook = func(ctx context.Context, task *Task, attempt int) (coordinator.Envelope, bool) {
		if task.ID != "a" {
			return coordinator.Envelope{}, false
		}
		close(entered)
		return blockUntilCancelled(ctx, task, attempt), true
	}
	retrying := make(chan struct{}, 1)
	log := &eventLog{notify: func(e event) {
		if e.kind == evRetry {
			retrying <- struct{}{}
		}
	}}
	s, err := New(tasks, exec, Options{Observer: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	done := make(chan *Result, 1)
	go func() { done <- s.Run(ctx) }()
	wait(t, entered, "a to start")
	wait(t, retrying, "flaky to wait for its retry")
	cancel(&Interruption{Kind: coordinator.ErrorKindCoordinator, Reason: "the master lost the coordinator"})
	res := wait(t, done, "Run to return after cancellation")
	checkOutcomes(t, res, exec, map[string]outcome{
		"a":     {cancelled, "cancelled while running", 1},
		"flaky": {cancelled, "not retried: the master lost the coordinator (attempt 1 of 3 ended failed: flaky attempt 1 failed)", 1},
		"b":     {cancelled, "not started: the master lost the coordinator", 0},
	})
	for _, id := range []string{"flaky", "b"} {
		if env := envByID(res)[id]; env.Error == nil || env.Error.Kind != coordinator.ErrorKindCoordinator {
			t.Errorf("%s: error %+v, want kind %s", id, env.Error, coordinator.ErrorKindCoordinator)
		}
	}
}
