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
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// watchFloorEnv makes modpipe-bench the watcher of the dispatch floor
// instead of the benchmark: "ENDPOINT PREFIX". It watches PREFIX with a
// bare etcd client and prints "KEY UNIX_NANO" the moment each put
// arrives, until a key ending in "/end".
const watchFloorEnv = "MODPIPE_BENCH_WATCH_FLOOR"

// watchFloorWarmup puts are not counted: the new process's first events
// (page faults, the first GC) are its start-up, not a dispatch.
const watchFloorWarmup = 3

func watchFloor(spec string) int {
	f := strings.Fields(spec)
	if len(f) != 2 {
		fmt.Fprintf(os.Stderr, "%s=%q: want ENDPOINT PREFIX\n", watchFloorEnv, spec)
		return 2
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{f[0]}, DialTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "watch floor:", err)
		return 1
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a guard
	defer cancel()
	for resp := range cli.Watch(ctx, f[1], clientv3.WithPrefix(), clientv3.WithCreatedNotify()) {
		now := time.Now()
		if err := resp.Err(); err != nil {
			fmt.Fprintln(os.Stderr, "watch floor:", err)
			return 1
		}
		if resp.Created {
			fmt.Println("watching")
			continue
		}
		for _, ev := range resp.Events {
			fmt.Printf("%s %d\n", ev.Kv.Key, now.UnixNano())
			if strings.HasSuffix(string(ev.Kv.Key), "/end") {
				return 0
			}
		}
	}
	fmt.Fprintln(os.Stderr, "watch floor: the watch ended")
	return 1
}

// watchFloorRun measures the floor of dispatching to another process
// through etcd: n create-if-absent Txns, each 20 ms after the last (as
// sparse arrivals come), from cli; each sample is the Txn's start -> the
// moment a bare watcher in a process of its own sees the put. Any
// etcd-based push to a separate worker pays at least this: one commit
// after an idle gap, and one watch event reaching another process that
// was idle.
func (b *bench) watchFloorRun(ctx context.Context, cli *clientv3.Client, endpoint string, round, n int) ([]float64, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	prefix := fmt.Sprintf("/watch-floor/%d/%d/", round, time.Now().UnixNano())
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s", watchFloorEnv, endpoint, prefix))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the watch floor process: %w", err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, n+8)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	kill := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	next := func() (string, error) {
		select {
		case l, ok := <-lines:
			if !ok {
				return "", errors.New("the watch floor process exited early")
			}
			return l, nil
		case <-time.After(30 * time.Second): // a guard, not a measurement
			return "", errors.New("the watch floor process printed nothing for 30 s")
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if l, err := next(); err != nil || l != "watching" {
		kill()
		return nil, fmt.Errorf("watch floor: want \"watching\", got %q (%v)", l, err)
	}
	var ms []float64
	for i := range n + watchFloorWarmup {
		time.Sleep(20 * time.Millisecond)
		k := prefix + strconv.Itoa(i)
		t := time.Now()
		if _, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).Then(clientv3.OpPut(k, "x")).Commit(); err != nil {
			kill()
			return nil, fmt.Errorf("watch floor txn: %w", err)
		}
		l, err := next()
		if err != nil {
			kill()
			return nil, err
		}
		key, ns, _ := strings.Cut(l, " ")
		seen, err := strconv.ParseInt(ns, 10, 64)
		if key != k || err != nil {
			kill()
			return nil, fmt.Errorf("watch floor: want %s, got %q", k, l)
		}
		if i >= watchFloorWarmup {
			ms = append(ms, toMS(time.Unix(0, seen).Sub(t)))
		}
	}
	if _, err := cli.Put(ctx, prefix+"end", "x"); err != nil {
		kill()
		return nil, err
	}
	for range lines {
	}
	select {
	case err := <-exited:
		if err != nil {
			return nil, fmt.Errorf("watch floor process: %w", err)
		}
	case <-time.After(10 * time.Second):
		kill()
		return nil, errors.New("the watch floor process did not exit")
	}
	return ms, nil
}
