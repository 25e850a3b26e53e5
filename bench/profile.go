package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"

	"github.com/hashicorp/go-hclog"

	"github.com/modpipe/modpipe/host"
)

// profileHost runs `host validate` and `host run` of the 10,000-module
// no-op pipeline inside this process under the CPU profiler and writes
// validate.pprof, run.pprof and heap.pprof to dir, for finding where the
// host spends its time when it misses a target (go tool pprof -top ...).
// Plugins are found next to this binary (bin/bench/plugins), as the host
// would find them next to itself.
func (b *bench) profileHost(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	d := newDAG(10, 1000, 3, dagSeed)
	f, err := b.writeDAG("profile-10000", d, "bench", "", "")
	if err != nil {
		return err
	}
	opts := host.Options{File: f.pipeline, Stdout: io.Discard, Stderr: os.Stderr, Logger: hclog.NewNullLogger(), Parallelism: b.jobs}
	profile := func(name string, fn func() error) error {
		out, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		defer out.Close()
		if err := pprof.StartCPUProfile(out); err != nil {
			return err
		}
		err = fn()
		pprof.StopCPUProfile()
		return err
	}
	if err := profile("validate.pprof", func() error { return host.Validate(ctx, opts) }); err != nil {
		return fmt.Errorf("validate: %w", err)
	}
	if err := profile("run.pprof", func() error {
		_, err := host.Run(ctx, host.RunOptions{Options: opts})
		return err
	}); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	heap, err := os.Create(filepath.Join(dir, "heap.pprof"))
	if err != nil {
		return err
	}
	defer heap.Close()
	return pprof.Lookup("allocs").WriteTo(heap, 0)
}
