// Package schedule decides when each task of a pipeline runs: dependency
// order, failure propagation, retries with backoff, on_failure stop or
// continue, and the concurrency constraints (parallelism, not_in_parallel,
// named limits, priority). It is the one piece of scheduling logic that
// single-machine mode and the distributed master share; only the Executor
// differs (a local executor calls plugin processes, a distributed one
// enqueues to a coordinator and waits for the result).
//
// The package knows nothing of HCL, plugins or coordinators beyond the
// result envelope: the caller builds Tasks from its module graph, hands them
// to New with an Executor, and calls Run.
//
// All scheduling decisions are made on one goroutine (the one that called
// Run); each Execute call runs on a goroutine of its own that Run waits for
// before it returns. Ready tasks wait in a heap ordered by priority, then
// critical path, then file order; tasks blocked by a not_in_parallel key or
// a full limit group wait on that resource and are woken when it frees, so a
// scheduling event costs O(log n), not a scan of every task.
package schedule

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/modpipe/modpipe/coordinator"
)

// Task is one unit of work: a module, or one instance of a matrix module.
type Task struct {
	// ID is the module address, e.g. "build" or "test[linux]". Unique.
	ID string
	// Deps has one group per depended-on module. A plain module is a group
	// of one ID; a matrix module is a group with one ID per instance. The
	// task runs when every task in every group has finished. A group whose
	// every member was skipped skips this task; a group only partly skipped
	// does not. An empty group is satisfied trivially.
	Deps [][]string
	// Priority orders ready tasks: higher first.
	Priority int
	// Order is the task's position in the file, the last tie-breaker among
	// ready tasks and the order of Result.Envelopes.
	Order int
	// Exclusive (not_in_parallel = true) runs the task with nothing else
	// running.
	Exclusive bool
	// Keys (not_in_parallel = ["db"]): no two running tasks share a key.
	Keys []string
	// Limits names the limit groups the task counts against; each group's
	// maximum is in Options.Limits.
	Limits []string
	// AlwaysRun runs the task once its dependencies have finished, whatever
	// their outcome, and even after on_failure = "stop" stopped the run.
	AlwaysRun bool
	// IgnoreFailure: the task's failure or timeout does not fail the
	// pipeline, does not stop it, and does not skip its dependents.
	IgnoreFailure bool
	// Attempts is the total number of tries (retry.attempts). 0 means 1.
	Attempts int
	// Backoff is the wait before retry n (n >= 1): Backoff * 2^(n-1).
	Backoff time.Duration
	// Data is the caller's payload (the executor's node); the scheduler
	// never looks at it.
	Data any
}

// OnFailure says what the run does after a task fails.
type OnFailure int

const (
	// Stop (the default) cancels running tasks and starts no new ones
	// except AlwaysRun tasks.
	Stop OnFailure = iota
	// Continue runs every task whose dependencies allow it.
	Continue
)

// String returns the pipeline-file spelling, "stop" or "continue".
func (f OnFailure) String() string {
	switch f {
	case Stop:
		return "stop"
	case Continue:
		return "continue"
	}
	return fmt.Sprintf("OnFailure(%d)", int(f))
}

// ParseOnFailure parses the pipeline file's on_failure value. The empty
// string is the default, Stop.
func ParseOnFailure(s string) (OnFailure, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "stop":
		return Stop, nil
	case "continue":
		return Continue, nil
	}
	return Stop, fmt.Errorf("on_failure %q is not valid: use \"stop\" or \"continue\"", s)
}

// Options configures a Scheduler.
type Options struct {
	// Parallelism is the most tasks executing at once; 0 means unbounded
	// (the distributed executor, whose workers have their own slots).
	Parallelism int
	// Limits gives each named limit group its maximum (limit "heavy" { max }).
	Limits map[string]int
	// OnFailure is Stop (default) or Continue.
	OnFailure OnFailure
	// Logger receives structured debug lines for every scheduling event;
	// nil discards them.
	Logger hclog.Logger
	// Observer, when not nil, is told of every start, retry and finish.
	Observer Observer
}

// Executor runs tasks. The local executor calls a plugin; the distributed
// one enqueues the task to a coordinator and waits for its result.
type Executor interface {
	// Execute runs one attempt of t (attempt counts from 1) and returns its
	// envelope. ctx is cancelled when the run stops (on_failure stop, or
	// the caller's ctx); Execute must then return promptly, normally with
	// status cancelled. Execute is called concurrently for different tasks.
	// The envelope is kept as returned except Module and Attempts, which
	// the scheduler sets. Returning skipped (run_if false, missing
	// capability) skips the task's dependents like any skipped task.
	Execute(ctx context.Context, t *Task, attempt int) coordinator.Envelope
}

// Observer is told of scheduling events, for live views and reports.
// Its methods are called one at a time from the goroutine running Run, in
// the order the scheduler decided things, so they must return quickly.
// TaskFinished is called exactly once per task, also for the tasks the
// scheduler skipped or cancelled without executing them.
type Observer interface {
	// TaskStarted is called just before Execute is called for attempt.
	TaskStarted(t *Task, attempt int)
	// TaskRetrying is called when attempt ended with env (failed or timed
	// out) and the task will be tried again after wait.
	TaskRetrying(t *Task, attempt int, env coordinator.Envelope, wait time.Duration)
	// TaskFinished is called with the task's final envelope.
	TaskFinished(t *Task, env coordinator.Envelope)
}

// Result is the outcome of a Run.
type Result struct {
	// Envelopes has one envelope per task, in task Order (ties in the
	// order the tasks were given to New).
	Envelopes []coordinator.Envelope
	// Succeeded is true when no task failed or timed out (except those with
	// IgnoreFailure), no task was cancelled, and the run was not cancelled.
	Succeeded bool
	// Cancelled is true when the caller's ctx was cancelled during the run.
	Cancelled bool
}

// Interruption is a cause to cancel Run's context with when the run ends
// for a reason its tasks' envelopes should carry: the tasks it never
// starts then read "not started: REASON" with error kind Kind, rather
// than kind cancelled and "the run was cancelled" (a fleet master that
// lost its coordinator says so).
type Interruption struct {
	Kind   string // the error kind, e.g. coordinator.ErrorKindCoordinator
	Reason string // why the run ended, e.g. "the master lost the coordinator"
}

// Error returns the reason.
func (i *Interruption) Error() string { return i.Reason }

// backoffFor returns the wait before retry n (n >= 1): base * 2^(n-1),
// saturating instead of overflowing.
func backoffFor(base time.Duration, n int) time.Duration {
	if base <= 0 {
		return 0
	}
	const maxWait = time.Duration(1<<63 - 1)
	d := base
	for i := 1; i < n; i++ {
		if d > maxWait/2 {
			return maxWait
		}
		d *= 2
	}
	return d
}
