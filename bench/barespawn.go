package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modpipe/modpipe/bench/internal/bare"
)

// bareSpawnEnv makes modpipe-bench the bare runner of the local DAG's
// floor instead of the benchmark: "PLUGIN N J PROG [capture]". It starts
// the bare go-plugin plugin at PLUGIN, has it spawn PROG N times, J calls
// at once, and exits. It is the least a runner can take whose commands
// run in a go-plugin plugin process with one RPC per command, as
// modpipe's do: no dependency graph (J always busy), no configuration
// file, no result kept, and no output read back unless "capture" asks
// for the plugin's SpawnCaptured (pipes read until they close, as a CI
// runner must) or "stream" sends the commands over one stream
// (SpawnStream: one message each way per command, no call set-up).
const bareSpawnEnv = "MODPIPE_BENCH_BARE_SPAWN"

func bareSpawn(spec string) int {
	f := strings.Fields(spec)
	if len(f) != 4 && (len(f) != 5 || (f[4] != "capture" && f[4] != "stream")) {
		fmt.Fprintf(os.Stderr, "%s=%q: want PLUGIN N J PROG [capture|stream]\n", bareSpawnEnv, spec)
		return 2
	}
	n, err1 := strconv.Atoi(f[1])
	j, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || n < 1 || j < 1 {
		fmt.Fprintf(os.Stderr, "%s=%q: N and J must be positive numbers\n", bareSpawnEnv, spec)
		return 2
	}
	spawn := (*bare.Client).Spawn
	if len(f) == 5 && f[4] == "capture" {
		spawn = (*bare.Client).SpawnCaptured
	}
	c, stop, err := bare.Start(f[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bare runner:", err)
		return 1
	}
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a guard
	defer cancel()
	if len(f) == 5 && f[4] == "stream" {
		if err := c.SpawnStream(ctx, f[3], n, j); err != nil {
			fmt.Fprintln(os.Stderr, "bare runner:", err)
			return 1
		}
		return 0
	}
	var (
		left    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		failure error
	)
	left.Store(int64(n))
	for range j {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				code, err := spawn(c, ctx, f[3])
				if err == nil && code != 0 {
					err = fmt.Errorf("%s exited with status %d", f[3], code)
				}
				if err != nil {
					errOnce.Do(func() { failure = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if failure != nil {
		fmt.Fprintln(os.Stderr, "bare runner:", failure)
		return 1
	}
	return 0
}
