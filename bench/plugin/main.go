// Command modpipe-plugin-bench is the benchmark's plugin: module kinds
// that do (almost) nothing, so what a benchmark measures is the host and
// the protocol rather than the work.
//
//	noop     returns at once; its result carries the plugin process's CPU
//	         time so far, so the benchmark can tell the host's CPU from
//	         the plugin's
//	stamp    returns the wall clock when it started (cold start)
//	payload  returns a value of a given size (round trip by size)
//	fetch    reads a dependency's result through sdk.ResultEnvelope count
//	         times and returns how long each read took (callback round trip)
//	sleep    sleeps (scaling)
package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/modpipe/modpipe/sdk"
)

// Noop is noop's result.
type Noop struct {
	// CPUNS is this plugin process's user+system CPU time so far.
	CPUNS int64 `json:"cpu_ns"`
}

func noop(context.Context, *sdk.Module, struct{}) (Noop, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return Noop{}, fmt.Errorf("getrusage: %w", err)
	}
	return Noop{CPUNS: ru.Utime.Nano() + ru.Stime.Nano()}, nil
}

// Stamp is stamp's result.
type Stamp struct {
	// UnixNS is when the module started running in the plugin.
	UnixNS int64 `json:"unix_ns"`
}

func stamp(context.Context, *sdk.Module, struct{}) (Stamp, error) {
	return Stamp{UnixNS: time.Now().UnixNano()}, nil
}

// PayloadConfig configures payload.
type PayloadConfig struct {
	Bytes int `modpipe:"bytes" doc:"Size of the returned data string."`
}

// Payload is payload's result.
type Payload struct {
	Data string `json:"data"`
}

// payloads caches the strings by size: the benchmark measures moving the
// bytes, not building them.
var payloads sync.Map

func payload(_ context.Context, _ *sdk.Module, c PayloadConfig) (Payload, error) {
	if c.Bytes < 0 || c.Bytes > 4<<20 {
		return Payload{}, sdk.AttributeError("bytes", "must be between 0 and 4 MiB, got %d", c.Bytes)
	}
	if s, ok := payloads.Load(c.Bytes); ok {
		return Payload{Data: s.(string)}, nil
	}
	s := strings.Repeat("x", c.Bytes)
	payloads.Store(c.Bytes, s)
	return Payload{Data: s}, nil
}

// FetchConfig configures fetch.
type FetchConfig struct {
	Module string `modpipe:"module" doc:"The dependency whose result to read."`
	Count  int    `modpipe:"count" doc:"How many reads."`
}

// Fetched is fetch's result.
type Fetched struct {
	// NS is each read's round trip in nanoseconds, in order.
	NS []int64 `json:"ns"`
}

func fetch(ctx context.Context, _ *sdk.Module, c FetchConfig) (Fetched, error) {
	out := Fetched{NS: make([]int64, 0, c.Count)}
	for range c.Count {
		t := time.Now()
		if _, err := sdk.ResultEnvelope(ctx, c.Module); err != nil {
			return out, fmt.Errorf("read %s: %w", c.Module, err)
		}
		out.NS = append(out.NS, time.Since(t).Nanoseconds())
	}
	return out, nil
}

// SleepConfig configures sleep.
type SleepConfig struct {
	Duration time.Duration `modpipe:"duration" doc:"How long to sleep."`
}

// Slept is sleep's result.
type Slept struct {
	// StartNS and EndNS are the wall clock when the sleep began and
	// ended in the plugin: the report's started_at and ended_at around
	// them are the host's, so the difference is the engine's share.
	StartNS int64 `json:"start_ns"`
	EndNS   int64 `json:"end_ns"`
}

// sleepSlack is how much of a sleep is left to nanosleep(2): the Go
// runtime waits for its timers in epoll_wait, whose timeout is in whole
// milliseconds, so a timer fires up to ~1 ms late on an idle machine
// (0.45 ms median measured here), which would count as the engine's
// overhead in the scaling scenario.
const sleepSlack = 2 * time.Millisecond

func sleep(ctx context.Context, _ *sdk.Module, c SleepConfig) (Slept, error) {
	start := time.Now()
	deadline := start.Add(c.Duration)
	if c.Duration > sleepSlack {
		t := time.NewTimer(c.Duration - sleepSlack)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return Slept{}, ctx.Err()
		}
	}
	// The last stretch on this goroutine's thread; at most sleepSlack, so
	// a cancellation waits no longer than that.
	if left := time.Until(deadline); left > 0 {
		ts := syscall.NsecToTimespec(left.Nanoseconds())
		for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
		}
	}
	return Slept{StartNS: start.UnixNano(), EndNS: time.Now().UnixNano()}, nil
}

func main() {
	sdk.Serve(sdk.Plugin{Name: "bench", Version: "0.1.0", Kinds: []sdk.Kind{
		sdk.NewKind("noop", "bench.noop/v1", noop, sdk.Default(), sdk.Doc("Returns at once with the plugin's CPU time so far.")),
		sdk.NewKind("stamp", "bench.stamp/v1", stamp, sdk.Doc("Returns when it started.")),
		sdk.NewKind("payload", "bench.payload/v1", payload, sdk.Doc("Returns a value of the given size.")),
		sdk.NewKind("fetch", "bench.fetch/v1", fetch, sdk.Doc("Reads a dependency's result count times, timing each read.")),
		sdk.NewKind("sleep", "bench.sleep/v1", sleep, sdk.Doc("Sleeps, honouring cancellation.")),
	}})
}
