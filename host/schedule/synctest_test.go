package schedule

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/modpipe/modpipe/coordinator"
)

// TestBackoffSchedule checks the exponential backoff on synctest's fake
// clock: the attempts start exactly Backoff * 2^(n-1) apart, without the
// test waiting for real time. synctest also fails the test if Run leaves
// a goroutine behind.
func TestBackoffSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var startedAt []time.Duration
		begin := time.Now()
		exec := &testExec{plan: map[string][]coordinator.Status{"a": {failed, timedOut, failed, succeeded}}}
		exec.hook = func(ctx context.Context, task *Task, attempt int) (coordinator.Envelope, bool) {
			mu.Lock()
			startedAt = append(startedAt, time.Since(begin))
			mu.Unlock()
			return coordinator.Envelope{}, false
		}
		s, err := New([]*Task{{ID: "a", Attempts: 4, Backoff: time.Second}}, exec, Options{})
		if err != nil {
			t.Fatal(err)
		}
		res := s.Run(context.Background())
		want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second}
		if len(startedAt) != len(want) {
			t.Fatalf("attempts started at %v, want %v", startedAt, want)
		}
		for i := range want {
			if startedAt[i] != want[i] {
				t.Errorf("attempt %d started at +%s, want +%s", i+1, startedAt[i], want[i])
			}
		}
		if env := res.Envelopes[0]; env.Status != succeeded || env.Attempts != 4 {
			t.Errorf("envelope %+v", env)
		}
	})
}

// TestCancelDuringBackoff cancels the run while a retry waits an hour on
// the fake clock: Run returns at once, the retry abandoned.
func TestCancelDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		exec := &testExec{plan: map[string][]coordinator.Status{"a": {failed}}}
		s, err := New([]*Task{{ID: "a", Attempts: 2, Backoff: time.Hour}}, exec, Options{})
		if err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		time.AfterFunc(time.Minute, cancel)
		res := s.Run(ctx)
		if took := time.Since(begin); took != time.Minute {
			t.Errorf("Run returned after %s, want 1m (when cancelled)", took)
		}
		if env := res.Envelopes[0]; env.Status != cancelled || env.Attempts != 1 || !res.Cancelled {
			t.Errorf("envelope %+v, cancelled %v", env, res.Cancelled)
		}
	})
}

// TestAlwaysRunRetriesThroughStop: an always_run task waiting out its
// backoff when the pipeline stops still retries.
func TestAlwaysRunRetriesThroughStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tasks := ordered(
			&Task{ID: "cleanup", AlwaysRun: true, Attempts: 2, Backoff: time.Hour},
			&Task{ID: "fail"},
		)
		retrying := make(chan struct{})
		exec := &testExec{plan: map[string][]coordinator.Status{"cleanup": {failed, succeeded}, "fail": {failed}}}
		exec.hook = func(ctx context.Context, task *Task, attempt int) (coordinator.Envelope, bool) {
			if task.ID == "fail" {
				<-retrying
			}
			return coordinator.Envelope{}, false
		}
		log := &eventLog{notify: func(e event) {
			if e.kind == evRetry {
				close(retrying)
			}
		}}
		s, err := New(tasks, exec, Options{Observer: log})
		if err != nil {
			t.Fatal(err)
		}
		res := s.Run(context.Background())
		checkLog(t, tasks, Options{}, log.snapshot())
		checkOutcomes(t, res, exec, map[string]outcome{
			"cleanup": {succeeded, "", 2},
			"fail":    {failed, "fail attempt 1 failed", 1},
		})
		want := "start cleanup/1|start fail/1|retry cleanup/1 failed wait=1h0m0s|finish fail failed|" +
			"start cleanup/2|finish cleanup succeeded"
		if got := strings.Join(eventStrings(log.snapshot()), "|"); got != want {
			t.Errorf("events:\n%s\nwant:\n%s", got, want)
		}
	})
}
