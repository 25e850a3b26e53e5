package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/modpipe/modpipe/coordinator"
	etcdcoord "github.com/modpipe/modpipe/coordinator/etcd"
)

// claimWorkerEnv makes modpipe-bench a claim worker of the sparse-arrival
// scenario instead of the benchmark: "ENDPOINT RUN_ID INDEX SLOTS". A
// worker of its own process, as a fleet's workers are, so its watch and
// Claim do not share a Go runtime with the others; with SLOTS claim loops
// on one session, as a host worker with --slots runs them.
const claimWorkerEnv = "MODPIPE_BENCH_CLAIM_WORKER"

// claimWorker joins the run as member INDEX with SLOTS slots and, in
// SLOTS loops until its session ends (the master finishes the run),
// claims, prints "MODULE UNIX_NANO" for each claim the moment Claim
// returns, and publishes a succeeded envelope.
func claimWorker(spec string) int {
	f := strings.Fields(spec)
	if len(f) != 4 {
		fmt.Fprintf(os.Stderr, "%s=%q: want ENDPOINT RUN_ID INDEX SLOTS\n", claimWorkerEnv, spec)
		return 2
	}
	idx, err := strconv.Atoi(f[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: index %q: %v\n", claimWorkerEnv, f[2], err)
		return 2
	}
	slots, err := strconv.Atoi(f[3])
	if err != nil || slots < 1 {
		fmt.Fprintf(os.Stderr, "%s: slots %q: want a positive number\n", claimWorkerEnv, f[3])
		return 2
	}
	ctx := context.Background()
	c, err := etcdcoord.New(ctx, etcdcoord.Config{Endpoints: []string{f[0]}, Prefix: "/bench"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "claim worker:", err)
		return 1
	}
	defer c.Close()
	s, err := c.Join(ctx, coordinator.JoinRequest{RunID: f[1], Member: coordinator.Member{Index: idx, Host: fmt.Sprintf("bench-%d", idx), Slots: slots},
		HeartbeatInterval: 500 * time.Millisecond, HeartbeatTimeout: 3 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "claim worker:", err)
		return 1
	}
	defer s.Close()
	fmt.Println("joined")
	var (
		mu   sync.Mutex // one line per write, in one piece
		wg   sync.WaitGroup
		errs = make([]error, slots)
	)
	for slot := range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[slot] = claimLoop(ctx, s, idx, &mu)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, "claim worker:", err)
		return 1
	}
	return 0
}

// claimLoop is one slot of a claim worker: claim, print, publish, until
// the run finishes.
func claimLoop(ctx context.Context, s coordinator.Session, idx int, mu *sync.Mutex) error {
	for {
		cl, err := s.Claim(ctx)
		if err != nil {
			var fin *coordinator.RunFinishedError
			if errors.As(err, &fin) {
				return nil
			}
			return fmt.Errorf("claim: %w", err)
		}
		at := time.Now()
		mu.Lock()
		fmt.Printf("%s %d\n", cl.Assignment.Module, at.UnixNano())
		mu.Unlock()
		env := coordinator.Envelope{Module: cl.Assignment.Module, Status: coordinator.StatusSucceeded, Attempts: cl.Assignment.Attempt,
			StartedAt: at, EndedAt: time.Now(), Instance: idx}
		if err := s.Publish(ctx, cl, env); err != nil {
			return fmt.Errorf("publish %s: %w", cl.Assignment.Module, err)
		}
	}
}

// claimWorkers are the worker processes of one sparse-arrival run.
type claimWorkers struct {
	cmds   []*exec.Cmd
	claims chan claimed
	wg     sync.WaitGroup // the stdout readers
	errs   chan error
}

// startClaimWorkers starts n claim worker processes (indexes 1..n) of
// slots slots each on the run and returns once each has joined.
func (b *bench) startClaimWorkers(ctx context.Context, endpoint, runID string, n, slots int) (*claimWorkers, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cw := &claimWorkers{claims: make(chan claimed, 1024), errs: make(chan error, n)}
	joined := make(chan int, n)
	for i := 1; i <= n; i++ {
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d %d", claimWorkerEnv, endpoint, runID, i, slots))
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out, err := cmd.StdoutPipe()
		if err != nil {
			cw.stop()
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			cw.stop()
			return nil, fmt.Errorf("start claim worker %d: %w", i, err)
		}
		cw.cmds = append(cw.cmds, cmd)
		cw.wg.Add(1)
		go func() {
			defer cw.wg.Done()
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				line := sc.Text()
				if line == "joined" {
					joined <- i
					continue
				}
				mod, ns, ok := strings.Cut(line, " ")
				t, err := strconv.ParseInt(ns, 10, 64)
				if !ok || err != nil {
					cw.errs <- fmt.Errorf("claim worker %d printed %q", i, line)
					return
				}
				cw.claims <- claimed{module: mod, claimedAt: time.Unix(0, t), worker: i}
			}
		}()
	}
	timeout := time.NewTimer(30 * time.Second) // a guard, not a measurement
	defer timeout.Stop()
	for range n {
		select {
		case <-joined:
		case err := <-cw.errs:
			cw.stop()
			return nil, err
		case <-timeout.C:
			cw.stop()
			return nil, errors.New("the claim workers did not join within 30 s")
		case <-ctx.Done():
			cw.stop()
			return nil, ctx.Err()
		}
	}
	return cw, nil
}

// wait waits for the workers to exit by themselves (the run finished),
// killing any still there after a grace.
func (cw *claimWorkers) wait() error {
	done := make(chan struct{})
	var errs []error
	go func() {
		defer close(done)
		for i, cmd := range cw.cmds {
			if err := cmd.Wait(); err != nil {
				errs = append(errs, fmt.Errorf("claim worker %d: %w", i+1, err))
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cw.stop()
		<-done
	}
	cw.wg.Wait()
	return errors.Join(errs...)
}

// stop kills every worker process group and reaps them.
func (cw *claimWorkers) stop() {
	for _, cmd := range cw.cmds {
		if cmd.Process != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
}
