package schedule_test

import (
	"context"
	"fmt"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/schedule"
)

// printExec is an Executor that prints what it runs; the local executor
// calls a plugin here, the distributed one enqueues to a coordinator.
type printExec struct{}

func (printExec) Execute(ctx context.Context, t *schedule.Task, attempt int) coordinator.Envelope {
	fmt.Println("run", t.ID)
	if t.ID == "lint" {
		return coordinator.Envelope{Status: coordinator.StatusFailed,
			Error: &coordinator.Error{Kind: coordinator.ErrorKindModule, Message: "2 warnings"}}
	}
	return coordinator.Envelope{Status: coordinator.StatusSucceeded}
}

func Example() {
	tasks := []*schedule.Task{
		{ID: "checkout", Order: 0},
		{ID: "lint", Order: 1, Deps: [][]string{{"checkout"}}, IgnoreFailure: true},
		{ID: "test[linux]", Order: 2, Deps: [][]string{{"checkout"}}},
		{ID: "test[macos]", Order: 2, Deps: [][]string{{"checkout"}}},
		{ID: "publish", Order: 3, Deps: [][]string{{"test[linux]", "test[macos]"}, {"lint"}}, Priority: 1},
	}
	s, err := schedule.New(tasks, printExec{}, schedule.Options{Parallelism: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	res := s.Run(context.Background())
	for _, env := range res.Envelopes {
		fmt.Println(env.Module, env.Status, env.Attempts)
	}
	fmt.Println("succeeded:", res.Succeeded)
	// Output:
	// run checkout
	// run lint
	// run test[linux]
	// run test[macos]
	// run publish
	// checkout succeeded 1
	// lint failed 1
	// test[linux] succeeded 1
	// test[macos] succeeded 1
	// publish succeeded 1
	// succeeded: true
}
