// Command asynqpeer measures asynq (github.com/hibiken/asynq, default
// settings, Redis on loopback) on the benchmark's no-op tasks: with
// -mode sparse, N tasks enqueued 20 ms apart, each's enqueue -> handler
// start latency; with -mode throughput, N tasks enqueued at once, tasks
// per second until the last completed. It prints one JSON object. It is a
// separate Go module so the product's go.mod stays clean.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"
)

type result struct {
	LatenciesMS []float64 `json:"latencies_ms,omitempty"`
	PerSecond   float64   `json:"per_second,omitempty"`
}

func main() {
	addr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	mode := flag.String("mode", "sparse", "sparse or throughput")
	n := flag.Int("n", 100, "tasks")
	workers := flag.Int("workers", 4, "server concurrency")
	flag.Parse()
	if err := run(*addr, *mode, *n, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "asynqpeer:", err)
		os.Exit(1)
	}
}

func run(addr, mode string, n, workers int) error {
	redis := asynq.RedisClientOpt{Addr: addr}
	started := make(chan struct {
		id int
		at time.Time
	}, n)
	var done sync.WaitGroup
	done.Add(n)
	mux := asynq.NewServeMux()
	mux.HandleFunc("noop", func(_ context.Context, t *asynq.Task) error {
		at := time.Now()
		id, _ := strconv.Atoi(string(t.Payload()))
		started <- struct {
			id int
			at time.Time
		}{id, at}
		done.Done()
		return nil
	})
	srv := asynq.NewServer(redis, asynq.Config{Concurrency: workers, LogLevel: asynq.ErrorLevel})
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("start the asynq server: %w", err)
	}
	defer srv.Shutdown()
	client := asynq.NewClient(redis)
	defer client.Close()

	var res result
	enq := make([]time.Time, n)
	start := time.Now()
	for i := range n {
		enq[i] = time.Now()
		if _, err := client.Enqueue(asynq.NewTask("noop", []byte(strconv.Itoa(i)))); err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
		if mode == "sparse" {
			time.Sleep(20 * time.Millisecond)
		}
	}
	done.Wait()
	elapsed := time.Since(start)
	close(started)
	if mode == "sparse" {
		for s := range started {
			res.LatenciesMS = append(res.LatenciesMS, float64(s.at.Sub(enq[s.id]))/1e6)
		}
	} else {
		res.PerSecond = float64(n) / elapsed.Seconds()
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
