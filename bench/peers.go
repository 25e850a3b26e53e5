package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// queuePeers are asynq and Celery on a Redis of their own, started once
// for the etcd group and measured in the same rounds as modpipe.
type queuePeers struct {
	redis, celery *exec.Cmd
	redisAddr     string
	asynqBin      string
	celeryDir     string
	waits         []chan error
}

// peerResult is what a peer program prints.
type peerResult struct {
	LatenciesMS []float64 `json:"latencies_ms"`
	PerSecond   float64   `json:"per_second"`
}

// startPeers builds the asynq peer (its own Go module) and starts
// redis-server and a Celery worker with 4 processes. A peer that is not
// installed is left out (nil commands); bench/setup.sh installs them.
func (b *bench) startPeers(ctx context.Context) (*queuePeers, error) {
	q := &queuePeers{}
	if !havePeer("redis-server") {
		return q, nil
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	q.redisAddr = fmt.Sprintf("127.0.0.1:%d", port)
	q.redis = exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := q.start(q.redis, filepath.Join(b.work, "redis.log")); err != nil {
		return nil, err
	}
	// go install, like bench.build: no relink when it is up to date.
	q.asynqBin = filepath.Join(b.bin, ".gobin", "asynqpeer")
	build := exec.CommandContext(ctx, "go", "install", "./asynqpeer")
	build.Dir = filepath.Join(b.root, "bench", "peers")
	build.Env = append(os.Environ(), "GOBIN="+filepath.Dir(q.asynqBin), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		q.stop()
		return nil, fmt.Errorf("build the asynq peer: %w\n%s", err, out)
	}
	if exec.Command("/usr/bin/python3", "-c", "import celery, redis").Run() == nil {
		q.celeryDir = filepath.Join(b.root, "bench", "peers", "celery")
		q.celery = exec.Command("/usr/bin/python3", "-m", "celery", "-A", "celerypeer", "worker", "-c", "4", "-l", "ERROR")
		q.celery.Dir = q.celeryDir
		q.celery.Env = append(os.Environ(), "BENCH_REDIS=redis://"+q.redisAddr+"/2")
		if err := q.start(q.celery, filepath.Join(b.work, "celery.log")); err != nil {
			q.stop()
			return nil, err
		}
	}
	return q, nil
}

func (q *queuePeers) start(cmd *exec.Cmd, logPath string) error {
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logf.Close() }()
	q.waits = append(q.waits, done)
	return nil
}

// stop ends the Celery worker, then Redis, and waits for both.
func (q *queuePeers) stop() {
	for _, c := range []*exec.Cmd{q.celery, q.redis} {
		if c != nil && c.Process != nil {
			_ = c.Process.Signal(os.Interrupt)
		}
	}
	for _, w := range q.waits {
		select {
		case <-w:
		case <-time.After(10 * time.Second): // a guard: kill what ignores SIGINT
			for _, c := range []*exec.Cmd{q.celery, q.redis} {
				if c != nil && c.Process != nil {
					_ = c.Process.Kill()
				}
			}
			<-w
		}
	}
}

// asynq runs the asynq peer: sparse tasks 20 ms apart, then thr tasks
// at once, in one process.
func (q *queuePeers) asynq(ctx context.Context, sparse, thr int) (peerResult, error) {
	if q.redis == nil {
		return peerResult{}, errSkipped
	}
	return runPeer(ctx, "", nil, q.asynqBin, "-redis", q.redisAddr, "-sparse", strconv.Itoa(sparse), "-throughput", strconv.Itoa(thr), "-workers", "4")
}

// celeryRun runs the Celery producer as asynq does its peer.
func (q *queuePeers) celeryRun(ctx context.Context, sparse, thr int) (peerResult, error) {
	if q.celery == nil {
		return peerResult{}, errSkipped
	}
	return runPeer(ctx, q.celeryDir, []string{"BENCH_REDIS=redis://" + q.redisAddr + "/2"}, "/usr/bin/python3", "celerypeer.py", strconv.Itoa(sparse), strconv.Itoa(thr))
}

func runPeer(ctx context.Context, dir string, env []string, name string, args ...string) (peerResult, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute) // a guard against a hung peer
	defer cancel()
	cmd := exec.CommandContext(cctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = tail(string(ee.Stderr), 800)
		}
		return peerResult{}, fmt.Errorf("%s %v: %w\n%s", name, args, err, msg)
	}
	var r peerResult
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("decode %s's output %q: %w", name, tail(string(out), 200), err)
	}
	return r, nil
}
