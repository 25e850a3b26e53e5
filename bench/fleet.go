package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/report"
)

// The fleet group runs real `host run` processes (a master and workers)
// over a real etcd process: scaling, dispatch along a chain, failure
// detection; and, through the coordinator API, queue hygiene over one
// long run.

// workerCap is the capability every benchmark worker offers and the
// master does not, so modules that require it run on workers only and a
// figure "on W workers" means W slots, not W+1.
const workerCap = "bench-worker"

// hostProc is one `host run` instance of a fleet.
type hostProc struct {
	name     string
	cmd      *exec.Cmd
	done     chan struct{}
	err      error
	exitedAt time.Time
	log      string
}

// startHost starts one instance in its own process group, so a SIGKILL of
// the group takes whatever the host is running (its plugins, each in a
// group of its own, go with it through their parent-death signal).
func (b *bench) startHost(dir, pipeline string, instance, total int, runID, endpoint, logLevel string, extra ...string) (*hostProc, error) {
	name := fmt.Sprintf("instance-%d", instance)
	args := append([]string{"run", pipeline, "--instance", strconv.Itoa(instance), "--total", strconv.Itoa(total),
		"--run-id", runID, "--etcd", endpoint, "--no-progress"}, extra...)
	cmd := exec.Command(filepath.Join(b.bin, "host"), args...)
	cmd.Dir = dir
	// TMPDIR in the scratch directory: a host SIGKILLed by the failure
	// scenario cannot remove go-plugin's socket directory itself.
	cmd.Env = append(os.Environ(), "MODPIPE_LOG_LEVEL="+logLevel, "TMPDIR="+b.work)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &hostProc{name: name, cmd: cmd, done: make(chan struct{}), log: filepath.Join(dir, name+".log")}
	logf, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		p.exitedAt = time.Now()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// kill SIGKILLs the instance's process group and waits for it.
func (p *hostProc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// wait waits for the instance to exit on its own within guard (a deadlock
// guard, not a measurement), else kills it.
func (p *hostProc) wait(guard time.Duration) error {
	select {
	case <-p.done:
	case <-time.After(guard):
		p.kill()
		return fmt.Errorf("%s did not exit within %s; killed (log: %s)", p.name, guard, p.log)
	}
	if p.err != nil {
		out, _ := os.ReadFile(p.log)
		return fmt.Errorf("%s: %w\n%s", p.name, p.err, tail(string(out), 1500))
	}
	return nil
}

// fleet is a running fleet: the master last in procs.
type fleet struct {
	dir     string
	master  *hostProc
	workers []*hostProc
	// launched is when the first process was started; ready, when every
	// worker was ready (zero unless startFleet waited for that).
	launched, ready time.Time
}

// readyLine is what a worker logs once it joined and its plugins are up.
const readyLine = "worker ready: waiting for the master"

// waitReady waits until every worker's log has its ready line, within
// guard (a deadlock guard, not a measurement). A worker that exits first
// is an error, with its log.
func waitReady(workers []*hostProc, guard time.Duration) error {
	deadline := time.Now().Add(guard)
	left := slices.Clone(workers)
	for len(left) > 0 {
		var still []*hostProc
		for _, p := range left {
			select {
			case <-p.done:
				out, _ := os.ReadFile(p.log)
				return fmt.Errorf("%s exited before it was ready (%v)\n%s", p.name, p.err, tail(string(out), 1500))
			default:
			}
			out, err := os.ReadFile(p.log)
			if err != nil || !strings.Contains(string(out), readyLine) {
				still = append(still, p)
			}
		}
		left = still
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d worker(s) not ready within %s, %s first (log: %s)", len(left), guard, left[0].name, left[0].log)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// startFleet starts the workers, then the master, of one run on
// endpoint. workerArgs(i) are worker i's extra flags. With ready, the
// master starts once every worker said it is ready (joined, its plugins
// up, waiting for the run), as on a fleet whose workers start on
// machines of their own; else right after the workers.
func (b *bench) startFleet(dir, pipeline, runID, endpoint string, workers int, workerArgs func(i int) []string, ready bool) (*fleet, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f := &fleet{dir: dir, launched: time.Now()}
	total := workers + 1
	// The ready line is logged at info; at info a worker also logs two
	// lines per module it runs (claimed, published).
	level := "error"
	if ready {
		level = "info"
	}
	for i := 1; i <= workers; i++ {
		p, err := b.startHost(dir, pipeline, i, total, runID, endpoint, level, append([]string{"--slots", "1"}, workerArgs(i)...)...)
		if err != nil {
			f.killAll()
			return nil, err
		}
		f.workers = append(f.workers, p)
	}
	if ready {
		if err := waitReady(f.workers, 2*time.Minute); err != nil {
			f.killAll()
			return nil, err
		}
		f.ready = time.Now()
	}
	m, err := b.startHost(dir, pipeline, 0, total, runID, endpoint, "error", "--slots", "1", "--report", "json="+filepath.Join(dir, "report.json"))
	if err != nil {
		f.killAll()
		return nil, err
	}
	f.master = m
	return f, nil
}

func (f *fleet) killAll() {
	for _, p := range append(slices.Clone(f.workers), f.master) {
		if p != nil {
			p.kill()
		}
	}
}

// finish waits for the master and then every worker (except those in
// skip) and returns the master's report.
func (f *fleet) finish(skip ...*hostProc) (*report.Run, error) {
	var errs []error
	if err := f.master.wait(10 * time.Minute); err != nil {
		errs = append(errs, err)
	}
	for _, w := range f.workers {
		if slices.Contains(skip, w) {
			continue
		}
		if err := w.wait(30 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		f.killAll()
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(f.dir, "report.json"))
	if err != nil {
		return nil, fmt.Errorf("read the master's report: %w", err)
	}
	var run report.Run
	if err := json.Unmarshal(raw, &run); err != nil {
		return nil, fmt.Errorf("decode the master's report: %w", err)
	}
	if run.Status != report.RunSucceeded {
		return &run, fmt.Errorf("the fleet run in %s did not succeed: %s", f.dir, run.Status)
	}
	return &run, nil
}

// envelopeOf finds a module's envelope in a report.
func envelopeOf(run *report.Run, module string) (coordinator.Envelope, bool) {
	for _, e := range run.Modules {
		if e.Module == module {
			return e, true
		}
	}
	return coordinator.Envelope{}, false
}

// fleetScenarios: scaling, dispatch along a chain and failure detection
// with real host processes over a real etcd, and queue hygiene through the
// coordinator API.
func (b *bench) fleetScenarios(ctx context.Context) ([]Row, error) {
	var rows []Row
	for _, s := range []struct {
		name string
		run  func(context.Context) ([]Row, error)
	}{{"fleet chain", b.fleetChain}, {"fleet throughput", b.fleetThroughput}, {"failure detection", b.failureDetection}, {"scaling", b.scaling}, {"queue hygiene", b.queueHygiene}} {
		if ctx.Err() != nil {
			return rows, ctx.Err()
		}
		done := b.timed(s.name)
		r, err := s.run(ctx)
		done()
		rows = append(rows, r...)
		if err != nil {
			return rows, err
		}
	}
	return rows, nil
}

// withEtcd runs fn against a fresh etcd with its data in dataDir.
func (b *bench) withEtcd(ctx context.Context, dataDir string, fn func(endpoint string) error) error {
	srv, err := b.startEtcd(ctx, dataDir)
	if err != nil {
		return err
	}
	defer func() {
		srv.stop()
		_ = os.RemoveAll(dataDir)
		if filepath.Dir(dataDir) != b.work {
			// On tmpfs, outside the scratch directory: its log too.
			_ = os.Remove(dataDir + ".log")
		}
	}()
	return fn(strings.TrimPrefix(srv.endpoint, "http://"))
}

// chainPipeline is a chain of n no-op modules; module i requires the
// capability of worker i%3+1, so every step crosses to another instance
// and the master only schedules.
func chainPipeline(n int) string {
	var sb strings.Builder
	sb.WriteString("pipeline {\n  name = \"bench-chain\"\n}\n\n")
	for i := range n {
		fmt.Fprintf(&sb, "module \"bench\" \"c%d\" {\n  requires = [\"w%d\"]\n", i, i%3+1)
		if i > 0 {
			fmt.Fprintf(&sb, "  depends_on = [module.c%d]\n", i-1)
		}
		sb.WriteString("}\n")
	}
	return sb.String()
}

// fleetChain: the etcd dispatch scenario with real host processes: a
// master and 3 workers, a chain of no-op modules; each step is the end of
// a module (its envelope's ended_at) to the start of its dependent on
// another worker (started_at), from the master's JSON report. The
// instances share this machine's clock.
func (b *bench) fleetChain(ctx context.Context) ([]Row, error) {
	n := 200
	rounds := b.rounds
	if b.quick {
		n, rounds = 40, 1
	}
	pipeline, err := writeFile(filepath.Join(b.work, "fleet-chain"), "pipeline.hcl", chainPipeline(n))
	if err != nil {
		return nil, err
	}
	media := []struct{ name, dir string }{
		{"disk", filepath.Join(b.work, "fleet-etcd-disk")},
		{"tmpfs", filepath.Join("/dev/shm", filepath.Base(b.work)+"-fleet-etcd")},
	}
	if b.quick {
		media = media[:1] // a quick run must stay short
	}
	p50, p99 := map[string][]float64{}, map[string][]float64{}
	for round := range rounds {
		for _, m := range media {
			err := b.withEtcd(ctx, m.dir, func(ep string) error {
				dir := filepath.Join(b.work, fmt.Sprintf("fleet-chain-%s-%d", m.name, round))
				f, err := b.startFleet(dir, pipeline, fmt.Sprintf("chain-%d", round), ep, 3, func(i int) []string {
					return []string{"--capability", fmt.Sprintf("w%d", i)}
				}, false)
				if err != nil {
					return err
				}
				run, err := f.finish()
				if err != nil {
					return err
				}
				var steps []float64
				for i := 1; i < n; i++ {
					prev, ok1 := envelopeOf(run, fmt.Sprintf("c%d", i-1))
					cur, ok2 := envelopeOf(run, fmt.Sprintf("c%d", i))
					if !ok1 || !ok2 {
						return fmt.Errorf("the chain's report lacks c%d or c%d", i-1, i)
					}
					if prev.Instance == cur.Instance {
						return fmt.Errorf("c%d and c%d both ran on instance %d; the chain must cross instances", i-1, i, cur.Instance)
					}
					steps = append(steps, toMS(cur.StartedAt.Sub(prev.EndedAt)))
				}
				p50[m.name] = append(p50[m.name], percentile(steps, 50))
				p99[m.name] = append(p99[m.name], percentile(steps, 99))
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("fleet chain on %s: %w", m.name, err)
			}
		}
	}
	var rows []Row
	for _, m := range media {
		r50 := Row{Scenario: fmt.Sprintf("etcd dispatch p50, chain of %d, host master+3 workers (%s)", n, m.name), Unit: "ms",
			Modpipe: newFigure(p50[m.name], false),
			Note:    "real host processes: a module's ended_at on one worker -> its dependent's started_at on another, from the master's report"}
		r99 := Row{Scenario: fmt.Sprintf("etcd dispatch p99, chain of %d, host processes (%s)", n, m.name), Unit: "ms",
			Modpipe: newFigure(p99[m.name], false)}
		if m.name == "disk" {
			r50.Target, r99.Target = "<= 3 ms", "<= 10 ms"
			r50.judge(r50.Modpipe.Median <= 3, r50.Modpipe.Median)
			r99.judge(r99.Modpipe.Median <= 10, r99.Modpipe.Median)
		} else {
			r50.Target = "<= 2 ms"
			r50.judge(r50.Modpipe.Median <= 2, r50.Modpipe.Median)
		}
		rows = append(rows, r50, r99)
	}
	return rows, nil
}

// workersRun runs pipeline, whose n modules require workerCap, on a
// master and the given number of workers offering it, and returns the
// fleet and the master's report once every instance exited; ready is
// startFleet's.
func (b *bench) workersRun(dir, pipeline, runID, endpoint string, workers, n int, ready bool) (*fleet, *report.Run, error) {
	f, err := b.startFleet(dir, pipeline, runID, endpoint, workers, func(int) []string {
		return []string{"--capability", workerCap}
	}, ready)
	if err != nil {
		return nil, nil, err
	}
	run, err := f.finish()
	if err != nil {
		return nil, nil, err
	}
	if len(run.Modules) != n {
		return nil, nil, fmt.Errorf("run %s reported %d modules, want %d", runID, len(run.Modules), n)
	}
	return f, run, nil
}

// throughputPipeline is n independent no-op modules that only workers
// run.
func throughputPipeline(n int) string {
	var sb strings.Builder
	sb.WriteString("pipeline {\n  name = \"bench-throughput\"\n}\n\n")
	for i := range n {
		fmt.Fprintf(&sb, "module \"bench\" \"t%d\" {\n  requires = [%q]\n}\n", i, workerCap)
	}
	return sb.String()
}

// fleetThroughput: the throughput scenario with real host processes, a
// master that schedules and 4 single-slot workers that run every module
// (plugin call, envelope, publish), etcd's data on disk. The figure is
// modules over the master's run start (its report's started_at, after it
// loaded the file) -> the last module's end. As in scaling, the master
// starts once the workers are ready, so their start-up is not inside the
// figure (by hand, 5 alternating runs each: 756-863 modules/s, median
// 793, with the workers still starting; 795-880, median 859, ready).
// The etcd group measures the same through the coordinator API alone.
func (b *bench) fleetThroughput(ctx context.Context) ([]Row, error) {
	n, rounds := 2000, b.rounds
	if b.quick {
		n, rounds = 300, 1
	}
	pipeline, err := writeFile(filepath.Join(b.work, "fleet-throughput"), "pipeline.hcl", throughputPipeline(n))
	if err != nil {
		return nil, err
	}
	var rates []float64
	for round := range rounds {
		err := b.withEtcd(ctx, filepath.Join(b.work, "fleet-etcd-throughput"), func(ep string) error {
			dir := filepath.Join(b.work, fmt.Sprintf("fleet-throughput-%d", round))
			_, run, err := b.workersRun(dir, pipeline, fmt.Sprintf("throughput-%d", round), ep, 4, n, true)
			if err != nil {
				return err
			}
			var last time.Time
			for _, e := range run.Modules {
				if e.Status != coordinator.StatusSucceeded {
					return fmt.Errorf("%s: %s", e.Module, e.Status)
				}
				if e.EndedAt.After(last) {
					last = e.EndedAt
				}
			}
			rates = append(rates, float64(n)/last.Sub(run.StartedAt).Seconds())
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("fleet throughput: %w", err)
		}
	}
	row := Row{Scenario: fmt.Sprintf("throughput, %d no-op modules, host master + 4 single-slot workers (disk)", n), Unit: "modules/s", HigherBetter: true,
		Modpipe: newFigure(rates, true),
		Note:    "real host processes, the master started once the 4 workers are ready; the master's run start -> the last module's end, from its report; asynq and Celery beside it are in the etcd group's throughput row"}
	if b.quick {
		row.Target = ">= 800 (judged on the full run: 2,000 modules)"
	} else {
		row.Target = ">= 800"
		row.judge(row.Modpipe.Median >= 800, row.Modpipe.Median)
	}
	return []Row{row}, nil
}

// failurePipeline: a module only workers run; its first attempt writes a
// marker and hangs until its worker is killed, a later attempt returns at
// once. heartbeat_timeout is the figure's yardstick.
func failurePipeline(dir string, heartbeatTimeout time.Duration) string {
	return fmt.Sprintf(`pipeline {
  name = "bench-failure"
}

distributed {
  heartbeat_interval = "200ms"
  heartbeat_timeout  = %q
}

module "shell" "victim" {
  requires = [%q]
  script   = "if [ -e %[3]s/started ]; then echo rerun; else echo ${run.instance} > %[3]s/started.tmp; mv %[3]s/started.tmp %[3]s/started; exec sleep 30; fi"

  retry {
    attempts = 2
    backoff  = "1ms"
  }
}
`, heartbeatTimeout.String(), workerCap, dir)
}

// failureDetection: SIGKILL the worker running a module with attempts
// left; the figure is the kill to the module's second attempt starting on
// the other worker (its started_at in the master's report), beside the
// configured heartbeat_timeout.
func (b *bench) failureDetection(ctx context.Context) ([]Row, error) {
	// 2 s: etcd grants no lease shorter than its minimum TTL (1.5 s at
	// its default election timeout), and modpipe rounds up to seconds.
	const heartbeatTimeout = 2 * time.Second
	rounds := b.rounds
	if b.quick {
		rounds = 1
	}
	var delays []float64
	for round := range rounds {
		dir := filepath.Join(b.work, fmt.Sprintf("fleet-failure-%d", round))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		pipeline, err := writeFile(dir, "pipeline.hcl", failurePipeline(dir, heartbeatTimeout))
		if err != nil {
			return nil, err
		}
		err = b.withEtcd(ctx, filepath.Join(b.work, "fleet-etcd-failure"), func(ep string) error {
			f, err := b.startFleet(dir, pipeline, fmt.Sprintf("failure-%d", round), ep, 2, func(int) []string {
				return []string{"--capability", workerCap}
			}, false)
			if err != nil {
				return err
			}
			holder, err := waitMarker(ctx, filepath.Join(dir, "started"), f.master)
			if err != nil {
				f.killAll()
				return err
			}
			idx, err := strconv.Atoi(holder)
			if err != nil || idx < 1 || idx > len(f.workers) {
				f.killAll()
				return fmt.Errorf("the victim started on instance %q, want a worker", holder)
			}
			victim := f.workers[idx-1]
			killed := time.Now()
			victim.kill()
			run, err := f.finish(victim)
			if err != nil {
				return err
			}
			e, ok := envelopeOf(run, "victim")
			if !ok || e.Attempts != 2 || e.Instance == idx {
				return fmt.Errorf("victim: attempts %d on instance %d, want its second attempt on the other worker than %d", e.Attempts, e.Instance, idx)
			}
			delays = append(delays, toMS(e.StartedAt.Sub(killed)))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("failure detection: %w", err)
		}
	}
	limit := toMS(heartbeatTimeout + time.Second)
	row := Row{Scenario: fmt.Sprintf("failure detection: SIGKILL of a worker mid-module -> module runs again elsewhere (heartbeat_timeout %s)", heartbeatTimeout),
		Unit: "ms", Modpipe: newFigure(delays, false),
		Peers:  []Peer{{"heartbeat_timeout", newFigure([]float64{toMS(heartbeatTimeout)}, false)}},
		Target: fmt.Sprintf("<= heartbeat_timeout + 1 s (%.0f ms)", limit),
		Note:   "kill -> the second attempt's started_at on the other worker, from the master's report; heartbeat_interval 200ms"}
	row.judge(row.Modpipe.Median <= limit, row.Modpipe.Median)
	return []Row{row}, nil
}

// waitMarker waits for a file a module writes and returns its content; a
// guard of 60 s, or the master exiting, ends the wait with an error.
func waitMarker(ctx context.Context, path string, master *hostProc) (string, error) {
	guard := time.After(60 * time.Second)
	for {
		if b, err := os.ReadFile(path); err == nil {
			return strings.TrimSpace(string(b)), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-master.done:
			return "", fmt.Errorf("the master exited before %s appeared (log: %s)", path, master.log)
		case <-guard:
			return "", fmt.Errorf("%s did not appear within 60s", path)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// scalingPipeline is n independent modules that each sleep d, on workers
// only.
func scalingPipeline(n int, d time.Duration) string {
	var sb strings.Builder
	sb.WriteString("pipeline {\n  name = \"bench-scaling\"\n}\n\n")
	for i := range n {
		fmt.Fprintf(&sb, "module \"bench.sleep\" \"s%d\" {\n  duration = %q\n  requires = [%q]\n}\n", i, d.String(), workerCap)
	}
	return sb.String()
}

// scaling: n modules that each sleep d on 1, 2, 4, 8 and 16 single-slot
// workers (the master schedules but runs none: the modules require a
// capability only workers offer). Wall time is from the master's start of
// the run (its report's started_at, after it loaded the file and joined)
// to the last module's end. The master is launched once every worker is
// ready (joined, plugins up), as on a fleet whose workers start on
// machines of their own: launched together, 16 workers and 16 plugins
// still starting on these 2 cores delayed the first modules of the run
// by 20-200 ms (the note's launch -> ready and launch -> master exit
// hold the start-up). Worker counts alternate within each round.
func (b *bench) scaling(ctx context.Context) ([]Row, error) {
	n, d := 200, 500*time.Millisecond
	counts := []int{1, 2, 4, 8, 16}
	rounds := b.scalingRounds
	if b.quick {
		n, d, counts, rounds = 16, 50*time.Millisecond, []int{1, 16}, 1
	}
	pipeline, err := writeFile(filepath.Join(b.work, "fleet-scaling"), "pipeline.hcl", scalingPipeline(n, d))
	if err != nil {
		return nil, err
	}
	wall := map[int][]float64{}
	launch := map[int][]float64{}
	ready := map[int][]float64{}
	phase := map[int][]float64{}
	took := map[int][]float64{}  // every module's started -> ended, all rounds
	share := map[int][]float64{} // of that, what is not the plugin's sleep
	for round := range rounds {
		for _, w := range counts {
			err := b.withEtcd(ctx, filepath.Join(b.work, "fleet-etcd-scaling"), func(ep string) error {
				dir := filepath.Join(b.work, fmt.Sprintf("fleet-scaling-%d-%d", w, round))
				f, run, err := b.workersRun(dir, pipeline, fmt.Sprintf("scaling-%d-%d", w, round), ep, w, n, true)
				if err != nil {
					return err
				}
				var first, last time.Time
				for _, e := range run.Modules {
					if e.Instance == 0 {
						return fmt.Errorf("%s ran on the master; the scaling modules are for workers only", e.Module)
					}
					if first.IsZero() || e.StartedAt.Before(first) {
						first = e.StartedAt
					}
					if e.EndedAt.After(last) {
						last = e.EndedAt
					}
					took[w] = append(took[w], toMS(e.EndedAt.Sub(e.StartedAt)))
					var v struct {
						StartNS int64 `json:"start_ns"`
						EndNS   int64 `json:"end_ns"`
					}
					if err := json.Unmarshal(e.Value, &v); err != nil || v.StartNS == 0 {
						return fmt.Errorf("%s has no sleep times in its value (status %s)", e.Module, e.Status)
					}
					share[w] = append(share[w], toMS(e.EndedAt.Sub(e.StartedAt)-time.Duration(v.EndNS-v.StartNS)))
				}
				wall[w] = append(wall[w], toMS(last.Sub(run.StartedAt)))
				launch[w] = append(launch[w], toMS(f.master.exitedAt.Sub(f.launched)))
				ready[w] = append(ready[w], toMS(f.ready.Sub(f.launched)))
				phase[w] = append(phase[w], toMS(last.Sub(first)))
				b.logger.Debug("round", "scenario", "scaling", "workers", w, "round", round, "wall_ms", wall[w][len(wall[w])-1])
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("scaling on %d workers: %w", w, err)
			}
		}
	}
	var rows []Row
	// The ideal is the work split evenly, n*d/w, as the tables before
	// had it. Whole modules on single-slot workers take ceil(n/w) rounds,
	// longer whenever w does not divide n (200 over 16 is 12.5 rounds:
	// 6,500 ms against 6,250), so at 16 workers no scheduler reaches
	// 1.0; the note gives the efficiency against that schedule as well,
	// and the target is judged on the stricter figure.
	ideal := func(w int) float64 { return toMS(time.Duration(n) * d / time.Duration(w)) }
	wholeRounds := func(w int) float64 { return toMS(time.Duration((n+w-1)/w) * d) }
	for _, w := range counts {
		var eff, roundsEff, speedup, phaseEff []float64
		for i, ms := range wall[w] {
			eff = append(eff, ideal(w)/ms)
			roundsEff = append(roundsEff, wholeRounds(w)/ms)
			phaseEff = append(phaseEff, ideal(w)/phase[w][i])
			if i < len(wall[counts[0]]) {
				speedup = append(speedup, wall[counts[0]][i]/ms)
			}
		}
		rows = append(rows, Row{Scenario: fmt.Sprintf("scaling: %d x sleep %s on %d single-slot worker(s) (wall)", n, d, w), Unit: "ms",
			Modpipe: newFigure(wall[w], false),
			Note: fmt.Sprintf("ideal %.0f ms (%d x %s / %d); master's run start -> last module end; launch of the workers -> all ready: median %.0f ms; launch -> master exit: median %.0f ms; one module, started -> ended: median %.1f ms, of which not the plugin's sleep (the host's start of the module -> the sleep's start, and its end -> the host's end): median %.2f ms",
				ideal(w), n, d, w, median(ready[w]), median(launch[w]), median(took[w]), median(share[w]))})
		e := Row{Scenario: fmt.Sprintf("scaling efficiency on %d worker(s) (ideal / wall)", w), Unit: "ratio", HigherBetter: true,
			Modpipe: newFigure(eff, true),
			Note: fmt.Sprintf("speedup vs 1 worker: median %.2f (/%d = %.3f); first module start -> last end: efficiency %.3f",
				median(speedup), w, median(speedup)/float64(w), median(phaseEff))}
		if n%w != 0 {
			e.Note += fmt.Sprintf("; whole modules take %d rounds (%.0f ms), %.3f of the wall: the most this figure can reach is %.3f",
				(n+w-1)/w, wholeRounds(w), median(roundsEff), ideal(w)/wholeRounds(w))
		}
		switch {
		case w == 16 && b.quick:
			// QUICK's 50 ms modules are about as long as a worker's
			// start-up, which the wall includes: no run of this size
			// gets near 0.95, so judging it would only report a miss
			// the target does not describe.
			e.Target = ">= 0.95 (judged on the full run: 200 x 0.5 s)"
		case w == 16:
			e.Target = ">= 0.95"
			e.judge(e.Modpipe.Median >= 0.95, e.Modpipe.Median)
		}
		rows = append(rows, e)
	}
	return rows, nil
}

// queueHygiene: one long run on the coordinator API (a master and 4
// workers, each its own etcd client): claim latency (enqueue called ->
// claim returned, one module at a time, as in the sparse scenario) over
// probes at the start, then n no-op modules through the same run, then
// the same probes at the end. Deleted queue and claim keys must not slow
// claims down. The coordinator API, not host processes: 50,000 modules
// through host processes take longer than the whole benchmark's budget.
//
// The long run is done hygieneRounds times, each on a fresh etcd: one
// run's figure is the p50 of 200 probes, a fraction of a second at each
// end, which a burst of load from another tenant moves by half.
func (b *bench) queueHygiene(ctx context.Context) ([]Row, error) {
	n, probes, rounds := 50000, 200, hygieneRounds
	if b.quick {
		n, probes, rounds = 1000, 30, 1
	}
	var s50, e50, s99, e99, rates []float64
	for round := range rounds {
		start, end, took, err := b.hygieneRun(ctx, round, n, probes)
		if err != nil {
			return nil, fmt.Errorf("queue hygiene, round %d: %w", round+1, err)
		}
		s50 = append(s50, percentile(start, 50))
		e50 = append(e50, percentile(end, 50))
		s99 = append(s99, percentile(start, 99))
		e99 = append(e99, percentile(end, 99))
		rates = append(rates, float64(n)/took.Seconds())
	}
	var each []string
	for i := range s50 {
		each = append(each, fmt.Sprintf("%.2f -> %.2f ms (%.2fx, p99 %.2f -> %.2f, %.0f modules/s)", s50[i], e50[i], e50[i]/s50[i], s99[i], e99[i], rates[i]))
	}
	row := Row{Scenario: fmt.Sprintf("queue hygiene: claim latency p50 after %d modules in one run (coordinator API, tmpfs)", n), Unit: "ms",
		Modpipe: newFigure(e50, false),
		Peers:   []Peer{{"same run at its start", newFigure(s50, false)}},
		Target:  "<= 1.5x the start",
		Note: fmt.Sprintf("enqueue -> claim returned, %d probes one at a time before and after, master + 4 workers; %d runs of %d modules, each on a fresh etcd, median and best over the runs; each run's p50 start -> end: %s",
			probes, rounds, n, strings.Join(each, "; "))}
	ms, me := median(s50), median(e50)
	row.judge(me <= 1.5*ms, me, ms)
	return []Row{row}, nil
}

// hygieneRounds is how many long runs queue hygiene does: each run of
// 50,000 modules takes 70-85 s here.
const hygieneRounds = 3

// hygieneRun is one long run of queueHygiene: the probes' latencies at
// its start and its end, and how long the n modules between took.
func (b *bench) hygieneRun(ctx context.Context, round, n, probes int) (start, end []float64, took time.Duration, err error) {
	dataDir := filepath.Join("/dev/shm", fmt.Sprintf("%s-hygiene-etcd-%d", filepath.Base(b.work), round))
	err = b.withEtcd(ctx, dataDir, func(ep string) error {
		cl, err := b.newCluster(ctx, "http://"+ep, fmt.Sprintf("hygiene-%d", time.Now().UnixNano()), 4)
		if err != nil {
			return err
		}
		defer cl.close()
		wctx, stop := context.WithCancel(ctx)
		claims := make(chan claimed, n+2*probes)
		wait := cl.runWorkers(wctx, claims, nil)
		probe := func(tag string) ([]float64, error) {
			var out []float64
			for i := range probes {
				m := fmt.Sprintf("%s%d", tag, i)
				at := time.Now()
				if err := cl.master.Enqueue(ctx, coordinator.Assignment{Module: m, Attempt: 1}); err != nil {
					return nil, err
				}
				c := <-claims
				if c.module != m {
					return nil, fmt.Errorf("probe claimed %s, want %s", c.module, m)
				}
				out = append(out, toMS(c.claimedAt.Sub(at)))
				<-cl.master.Results()
			}
			return out, nil
		}
		runErr := func() error {
			var err error
			if start, err = probe("start"); err != nil {
				return err
			}
			// The bulk: at most window modules queued at once, as a DAG
			// releases them; every one is enqueued, claimed, published,
			// its result seen.
			const window = 500
			t := time.Now()
			sent, seen := 0, 0
			for seen < n {
				for sent < n && sent-seen < window {
					if err := cl.master.Enqueue(ctx, coordinator.Assignment{Module: fmt.Sprintf("bulk%d", sent), Attempt: 1}); err != nil {
						return err
					}
					sent++
				}
				select {
				case <-cl.master.Results():
					seen++
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			took = time.Since(t)
			for range n {
				<-claims
			}
			end, err = probe("end")
			return err
		}()
		stop()
		return errors.Join(runErr, wait())
	})
	return start, end, took, err
}
