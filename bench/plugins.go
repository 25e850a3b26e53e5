package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/modpipe/modpipe/bench/internal/bare"
	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/pluginhost"
)

// pluginScenarios: cold start, Execute round trip by result size beside a
// bare go-plugin call, and the sdk.Result callback round trip.
func (b *bench) pluginScenarios(ctx context.Context) ([]Row, error) {
	var rows []Row
	done := b.timed("cold start")
	cold, err := b.coldStart(ctx)
	done()
	rows = append(rows, cold...)
	if err != nil {
		return rows, err
	}
	done = b.timed("round trips")
	rt, err := b.roundTrips(ctx)
	done()
	rows = append(rows, rt...)
	return rows, err
}

// coldPipeline writes a pipeline with n plugins (each a plugin block on
// the bench binary) and one stamp module per plugin.
func (b *bench) coldPipeline(n int) (string, error) {
	var s strings.Builder
	path := filepath.Join(b.bin, "plugins", "modpipe-plugin-bench")
	for i := range n {
		fmt.Fprintf(&s, "plugin \"p%d\" {\n  source = %q\n}\n\nmodule \"p%d.stamp\" \"first%d\" {}\n\n", i, path, i, i)
	}
	return writeFile(filepath.Join(b.work, fmt.Sprintf("cold-%d", n)), "pipeline.hcl", s.String())
}

// coldStart: from starting `host run` to the first module running in its
// plugin (its own clock stamp), with 1 and 8 plugins, beside starting a
// bare go-plugin plugin (handshake with AutoMTLS and one call) the same
// number of times in parallel.
func (b *bench) coldStart(ctx context.Context) ([]Row, error) {
	var rows []Row
	for _, n := range []int{1, 8} {
		pipeline, err := b.coldPipeline(n)
		if err != nil {
			return rows, err
		}
		rounds := b.rounds * 2 // cheap rounds of a noisy figure
		if b.quick {
			rounds = b.rounds
		}
		var host, floor, hostExec, pluginExec []float64
		for range rounds {
			ms, err := b.coldOnce(ctx, pipeline)
			if err != nil {
				return rows, err
			}
			host = append(host, ms)
			ms, err = b.bareStart(n)
			if err != nil {
				return rows, err
			}
			floor = append(floor, ms)
			if n > 1 {
				continue
			}
			// What bounds the figure: a run starts two Go processes one
			// after the other, the host and then its plugin.
			ms, err = execOnce(ctx, filepath.Join(b.bin, "host"), "version")
			if err != nil {
				return rows, err
			}
			hostExec = append(hostExec, ms)
			ms, err = execOnce(ctx, filepath.Join(b.bin, "plugins", "modpipe-plugin-bench"))
			if err != nil {
				return rows, err
			}
			pluginExec = append(pluginExec, ms)
		}
		row := Row{Scenario: fmt.Sprintf("cold start, %d plugin(s): command to first module running", n), Unit: "ms",
			Modpipe: newFigure(host, false), Peers: []Peer{{"bare go-plugin start+call", newFigure(floor, false)}},
			Note: "includes exec of the host, loading the file, the plugins' handshakes (mutual TLS) and Describe; the bare go-plugin floor uses go-plugin's own AutoMTLS (P-521), modpipe P-256"}
		if n == 1 {
			row.Target = "<= 20 ms"
			row.judge(row.Modpipe.Median <= 20, row.Modpipe.Median)
			row.Peers = append(row.Peers,
				Peer{"host binary exec to exit (host version)", newFigure(hostExec, false)},
				Peer{"plugin binary exec to exit (no handshake)", newFigure(pluginExec, false)})
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (b *bench) coldOnce(ctx context.Context, pipeline string) (float64, error) {
	rep := filepath.Join(filepath.Dir(pipeline), "report.json")
	_ = os.Remove(rep)
	cmd := exec.CommandContext(ctx, filepath.Join(b.bin, "host"), "run", pipeline, "--report", "json="+rep)
	cmd.Dir = filepath.Dir(pipeline)
	cmd.Env = append(os.Environ(), "MODPIPE_LOG_LEVEL=error")
	t0 := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return nan, fmt.Errorf("host run %s: %w\n%s", pipeline, err, tail(string(out), 1500))
	}
	raw, err := os.ReadFile(rep)
	if err != nil {
		return nan, fmt.Errorf("read the cold start report: %w", err)
	}
	var run struct {
		Modules []coordinator.Envelope `json:"modules"`
	}
	if err := json.Unmarshal(raw, &run); err != nil {
		return nan, fmt.Errorf("decode the cold start report: %w", err)
	}
	first := int64(0)
	for _, e := range run.Modules {
		var v struct {
			UnixNS int64 `json:"unix_ns"`
		}
		if err := json.Unmarshal(e.Value, &v); err != nil || v.UnixNS == 0 {
			return nan, fmt.Errorf("module %s has no start stamp (status %s)", e.Module, e.Status)
		}
		if first == 0 || v.UnixNS < first {
			first = v.UnixNS
		}
	}
	return float64(first-t0.UnixNano()) / 1e6, nil
}

// execOnce runs a binary to its exit and returns the wall time. Exit
// status is ignored: a plugin started by hand explains that it is a plugin
// and exits with 1, after the runtime and its packages initialised and
// main ran, which is the part measured.
func execOnce(ctx context.Context, path string, args ...string) (float64, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return nan, fmt.Errorf("run %s: %w", path, err)
	}
	return toMS(d), nil
}

// bareStart starts n floor plugins at once and makes one call on each:
// what any go-plugin host pays before its first call.
func (b *bench) bareStart(n int) (float64, error) {
	path := filepath.Join(b.bin, "modpipe-bench-bare")
	t0 := time.Now()
	type started struct {
		c    *bare.Client
		stop func()
		err  error
	}
	ch := make(chan started, n)
	for range n {
		go func() {
			c, stop, err := bare.Start(path)
			if err == nil {
				_, err = c.Payload(context.Background(), 0)
			}
			ch <- started{c, stop, err}
		}()
	}
	var first time.Duration
	var errs []error
	var stops []func()
	for range n {
		s := <-ch
		if first == 0 {
			first = time.Since(t0)
		}
		if s.err != nil {
			errs = append(errs, s.err)
		}
		if s.stop != nil {
			stops = append(stops, s.stop)
		}
	}
	// The host starts every plugin before the first module, so the
	// comparable floor is the last of the n to be ready.
	all := time.Since(t0)
	for _, stop := range stops {
		stop()
	}
	if len(errs) > 0 {
		return nan, errs[0]
	}
	_ = first
	return toMS(all), nil
}

// sizes are the result sizes of the round trip scenario.
var sizes = []struct {
	name  string
	bytes int
}{{"0 B", 0}, {"64 KiB", 64 << 10}, {"1 MiB", 1 << 20}}

// cpuNow is this process's user+system CPU time.
func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// roundTrips: Execute of the payload kind through pluginhost (what the
// host does per module) beside the bare go-plugin call returning the same
// bytes, alternating per round; and sdk.Result's callback round trip.
func (b *bench) roundTrips(ctx context.Context) ([]Row, error) {
	var results pluginhost.ResultFunc = func(_ context.Context, caller, dep string) (*coordinator.Envelope, error) {
		return &coordinator.Envelope{Module: dep, Status: coordinator.StatusSucceeded, Type: "bench.noop/v1", Value: json.RawMessage(`{"cpu_ns":1}`)}, nil
	}
	pl, err := pluginhost.Start(ctx, pluginhost.Spec{Name: "bench", Path: filepath.Join(b.bin, "plugins", "modpipe-plugin-bench")},
		pluginhost.Options{Logger: hclog.NewNullLogger(), Results: results})
	if err != nil {
		return nil, err
	}
	defer pl.Close()
	bc, stop, err := bare.Start(filepath.Join(b.bin, "modpipe-bench-bare"))
	if err != nil {
		return nil, err
	}
	defer stop()

	calls := func(n int) int {
		if b.quick {
			return max(n/4, 20)
		}
		return n
	}
	type series struct{ p50, p99, bp50, bp99 []float64 }
	per := make([]series, len(sizes))
	var cbP50, cbP99, hostCPU, bareCPU, streamCPU []float64
	for round := range b.rounds {
		for i, sz := range sizes {
			n := calls(400)
			if sz.bytes >= 1<<20 {
				n = calls(100)
			}
			cfg := json.RawMessage(fmt.Sprintf(`{"bytes":%d}`, sz.bytes))
			var mp, bp []float64
			c0 := cpuNow()
			for k := range n {
				t := time.Now()
				resp, err := pl.Execute(ctx, pluginhost.Request{Module: fmt.Sprintf("p%d", k), Kind: "payload", Config: cfg, Attempt: 1}, nil)
				d := time.Since(t)
				if err != nil || !resp.Succeeded || len(resp.Value) < sz.bytes {
					return nil, fmt.Errorf("execute payload %s: %v (%+v)", sz.name, err, resp.Error)
				}
				mp = append(mp, toMS(d)*1000)
			}
			c1 := cpuNow()
			for range n {
				t := time.Now()
				got, err := bc.Payload(ctx, sz.bytes)
				d := time.Since(t)
				if err != nil || got != sz.bytes {
					return nil, fmt.Errorf("bare payload %s: got %d bytes: %v", sz.name, got, err)
				}
				bp = append(bp, toMS(d)*1000)
			}
			c2 := cpuNow()
			if sz.bytes == 0 {
				hostCPU = append(hostCPU, float64((c1-c0).Nanoseconds())/1e3/float64(n))
				bareCPU = append(bareCPU, float64((c2-c1).Nanoseconds())/1e3/float64(n))
				// The same exchange in the local DAG's shape: one
				// stream, b.jobs messages in flight, as the host's
				// session stream carries its modules.
				if err := bc.EchoStream(ctx, 4*n, b.jobs); err != nil {
					return nil, fmt.Errorf("bare echo stream: %w", err)
				}
				streamCPU = append(streamCPU, float64((cpuNow()-c2).Nanoseconds())/1e3/float64(4*n))
			}
			per[i].p50 = append(per[i].p50, percentile(mp, 50))
			per[i].p99 = append(per[i].p99, percentile(mp, 99))
			per[i].bp50 = append(per[i].bp50, percentile(bp, 50))
			per[i].bp99 = append(per[i].bp99, percentile(bp, 99))
		}
		// The callback: one module reads a dependency count times.
		n := calls(400)
		resp, err := pl.Execute(ctx, pluginhost.Request{Module: "reader", Kind: "fetch",
			Config: json.RawMessage(fmt.Sprintf(`{"module":"src","count":%d}`, n)), Attempt: 1, Deps: []string{"src"}}, nil)
		if err != nil || !resp.Succeeded {
			msg := ""
			if resp.Error != nil {
				msg = resp.Error.Message
			}
			return nil, fmt.Errorf("execute fetch: %v %s", err, msg)
		}
		var f struct {
			NS []int64 `json:"ns"`
		}
		if err := json.Unmarshal(resp.Value, &f); err != nil {
			return nil, fmt.Errorf("decode fetch's result: %w", err)
		}
		us := make([]float64, len(f.NS))
		for i, ns := range f.NS {
			us[i] = float64(ns) / 1e3
		}
		cbP50 = append(cbP50, percentile(us, 50))
		cbP99 = append(cbP99, percentile(us, 99))
		b.logger.Debug("round", "scenario", "plugins", "round", round)
	}
	var rows []Row
	for i, sz := range sizes {
		p50 := Row{Scenario: "Execute round trip p50, result " + sz.name, Unit: "µs",
			Modpipe: newFigure(per[i].p50, false), Peers: []Peer{{"bare go-plugin call", newFigure(per[i].bp50, false)}}}
		if sz.bytes == 0 {
			p50.Target = "<= 1.5x bare call"
			p50.judge(p50.Modpipe.Median <= 1.5*p50.Peers[0].Median, p50.Modpipe.Median, p50.Peers[0].Median)
		}
		p99 := Row{Scenario: "Execute round trip p99, result " + sz.name, Unit: "µs",
			Modpipe: newFigure(per[i].p99, false), Peers: []Peer{{"bare go-plugin call", newFigure(per[i].bp99, false)}}}
		rows = append(rows, p50, p99)
	}
	rows = append(rows,
		Row{Scenario: "sdk.Result callback round trip p50 (plugin -> host -> plugin)", Unit: "µs",
			Modpipe: newFigure(cbP50, false), Peers: []Peer{{"bare go-plugin call", newFigure(per[0].bp50, false)}},
			Note: "timed inside the plugin around sdk.ResultEnvelope; the host answers from memory"},
		Row{Scenario: "sdk.Result callback round trip p99", Unit: "µs",
			Modpipe: newFigure(cbP99, false), Peers: []Peer{{"bare go-plugin call", newFigure(per[0].bp99, false)}}},
		Row{Scenario: rpcCPURowName, Unit: "µs",
			Modpipe: newFigure(hostCPU, false), Peers: []Peer{{"bare go-plugin call", newFigure(bareCPU, false)},
				{fmt.Sprintf("bare go-plugin stream, %d messages in flight", b.jobs), newFigure(streamCPU, false)}},
			Note: "pluginhost.Execute and the bare call one at a time, and the bare stream in the local DAG's shape: the RPC's own cost that the host CPU target excludes is the stream's, the cheapest of the three and the shape the host's modules travel in"},
	)
	return rows, nil
}
