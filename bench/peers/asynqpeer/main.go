// Command asynqpeer measures asynq (github.com/hibiken/asynq, default
// settings, Redis on loopback) on the benchmark's no-op tasks, in one
// process so its start-up is paid once: -sparse N tasks enqueued 20 ms
// apart, each's enqueue -> handler start latency; then -throughput M
// tasks enqueued at once, tasks per second until the last completed.
// Either count may be 0. It prints one JSON object. It is a separate Go
// module so the product's go.mod stays clean.
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
	sparse := flag.Int("sparse", 0, "tasks enqueued 20 ms apart (latency)")
	throughput := flag.Int("throughput", 0, "tasks enqueued at once (tasks per second)")
	workers := flag.Int("workers", 4, "server concurrency")
	flag.Parse()
	if err := run(*addr, *sparse, *throughput, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "asynqpeer:", err)
		os.Exit(1)
	}
}

// started is one task's handler start.
type started struct {
	id int
	at time.Time
}

// phase is what the handler reports to: the tasks of one measurement.
type phase struct {
	started chan started
	done    sync.WaitGroup
}

func newPhase(n int) *phase {
	p := &phase{started: make(chan started, n)}
	p.done.Add(n)
	return p
}

func run(addr string, sparseN, thrN, workers int) error {
	redis := asynq.RedisClientOpt{Addr: addr}
	var mu sync.Mutex
	var current *phase
	mux := asynq.NewServeMux()
	warm := make(chan struct{})
	mux.HandleFunc("noop", func(_ context.Context, t *asynq.Task) error {
		at := time.Now()
		if string(t.Payload()) == "warm-up" {
			close(warm)
			return nil
		}
		id, _ := strconv.Atoi(string(t.Payload()))
		mu.Lock()
		p := current
		mu.Unlock()
		p.started <- started{id, at}
		p.done.Done()
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
	begin := func(n int) *phase {
		p := newPhase(n)
		mu.Lock()
		current = p
		mu.Unlock()
		return p
	}

	var res result
	if sparseN > 0 {
		p := begin(sparseN)
		enq := make([]time.Time, sparseN)
		for i := range sparseN {
			enq[i] = time.Now()
			if _, err := client.Enqueue(asynq.NewTask("noop", []byte(strconv.Itoa(i)))); err != nil {
				return fmt.Errorf("enqueue: %w", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		p.done.Wait()
		close(p.started)
		for s := range p.started {
			res.LatenciesMS = append(res.LatenciesMS, float64(s.at.Sub(enq[s.id]))/1e6)
		}
	}
	if thrN > 0 {
		p := begin(thrN)
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
		for i := range thrN {
			next <- i
		}
		close(next)
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		p.done.Wait()
		end := time.Now()
		close(p.started)
		// From the first task's start, not the first enqueue: a server
		// that found its queue empty polls again only after its task
		// check interval (1 s by default), a wait this figure of the
		// rate leaves out (the sparse latencies show it).
		first := end
		for s := range p.started {
			if s.at.Before(first) {
				first = s.at
			}
		}
		res.PerSecond = float64(thrN) / end.Sub(first).Seconds()
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}
