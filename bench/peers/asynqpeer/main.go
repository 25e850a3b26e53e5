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
	warm := make(chan struct{})
	mux.HandleFunc("noop", func(_ context.Context, t *asynq.Task) error {
		at := time.Now()
		if string(t.Payload()) == "warm-up" {
			close(warm)
			return nil
		}
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

	// One task through first: a new server's processors start polling
	// after a random pause of up to a second or so, which is start-up,
	// not what the figures are about; modpipe's workers are joined and
	// Celery's worker warmed the same way before they are timed.
	if _, err := client.Enqueue(asynq.NewTask("noop", []byte("warm-up"))); err != nil {
		return fmt.Errorf("enqueue the warm-up task: %w", err)
	}
	select {
	case <-warm:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("the warm-up task did not run within 30s")
	}

	var res result
	enq := make([]time.Time, n)
	if mode == "sparse" {
		for i := range n {
			enq[i] = time.Now()
			if _, err := client.Enqueue(asynq.NewTask("noop", []byte(strconv.Itoa(i)))); err != nil {
				return fmt.Errorf("enqueue: %w", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	} else {
		// From 32 goroutines at once, as the benchmark enqueues
		// modpipe's throughput modules.
		next := make(chan int)
		errs := make(chan error, 32)
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				for i := range next {
					if _, err := client.Enqueue(asynq.NewTask("noop", []byte(strconv.Itoa(i)))); err != nil {
						select {
						case errs <- fmt.Errorf("enqueue: %w", err):
						default:
						}
						// Keep taking work: the feeder must not block.
					}
				}
			})
		}
		for i := range n {
			next <- i
		}
		close(next)
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
	}
	done.Wait()
	end := time.Now()
	close(started)
	if mode == "sparse" {
		for s := range started {
			res.LatenciesMS = append(res.LatenciesMS, float64(s.at.Sub(enq[s.id]))/1e6)
		}
	} else {
		// From the first task's start, not the first enqueue: a server
		// that found its queue empty polls again only after its task
		// check interval (1 s by default), a wait this figure of the
		// rate leaves out (the sparse latencies show it).
		first := end
		for s := range started {
			if s.at.Before(first) {
				first = s.at
			}
		}
		res.PerSecond = float64(n) / end.Sub(first).Seconds()
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
