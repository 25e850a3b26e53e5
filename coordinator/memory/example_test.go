package memory_test

import (
	"context"
	"fmt"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/coordinator/memory"
)

// A master enqueues a module that needs a GPU; the worker that has one
// claims it, runs it and publishes the result, which the master receives.
func Example() {
	ctx := context.Background()
	c := memory.New()
	defer c.Close()

	master, _ := c.JoinMaster(ctx, coordinator.JoinRequest{RunID: "run-1", Member: coordinator.Member{Index: 0, Host: "ci-0"}})
	defer master.Close()
	worker, _ := c.Join(ctx, coordinator.JoinRequest{RunID: "run-1", Member: coordinator.Member{Index: 1, Host: "ci-1", Capabilities: []string{"linux", "gpu"}}})
	defer worker.Close()

	_ = master.Enqueue(ctx, coordinator.Assignment{Module: "train", Attempt: 1, Requires: []string{"GPU"}})

	claim, _ := worker.Claim(ctx)
	_ = worker.Publish(ctx, claim, coordinator.Envelope{
		Module: claim.Assignment.Module, Status: coordinator.StatusSucceeded,
		Value: []byte(`{"accuracy":0.93}`), Instance: 1, Host: "ci-1",
	})

	env := <-master.Results()
	fmt.Println(env.Module, env.Status, "on", env.Host, string(env.Value))

	_ = master.Finish(ctx, coordinator.StatusSucceeded)
	<-worker.Done()
	fmt.Println("worker:", worker.Err())
	// Output:
	// train succeeded on ci-1 {"accuracy":0.93}
	// worker: run finished with status succeeded
}
