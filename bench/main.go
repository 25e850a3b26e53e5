// Command modpipe-bench is modpipe's benchmark suite (`make bench`): it
// builds the host and the plugins it needs, runs each scenario with
// modpipe and its peers alternately (A B C A B C ...) for a number of
// rounds, prints one table (median and best round of each figure, the
// ratio to each peer, the target and whether it was met) and writes the
// same to bench/results.json. docs/benchmarks.md explains every scenario.
//
// Targets are reported, never asserted: this is a measurement, not a test.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

func main() {
	os.Exit(run())
}

// bench carries what every scenario needs.
type bench struct {
	root   string // the repository
	bin    string // built binaries
	work   string // generated pipelines and scratch files
	quick  bool
	rounds int
	jobs   int // -j / --parallelism for the local DAGs
	// scalingRounds is the rounds of the scaling scenario: one round of
	// 1..16 workers at 200 x 0.5 s is over three minutes of sleeping.
	scalingRounds int
	logger        hclog.Logger
}

// group is a set of scenarios that share setup.
type group struct {
	name string
	run  func(b *bench, ctx context.Context) ([]Row, error)
}

func run() int {
	if spec := os.Getenv(claimWorkerEnv); spec != "" {
		return claimWorker(spec)
	}
	if spec := os.Getenv(watchFloorEnv); spec != "" {
		return watchFloor(spec)
	}
	if spec := os.Getenv(bareSpawnEnv); spec != "" {
		return bareSpawn(spec)
	}
	var (
		quick  = flag.Bool("quick", os.Getenv("QUICK") == "1", "a reduced run: fewer rounds and smaller counts, under a minute on 2 cores (env QUICK=1)")
		rounds = flag.Int("rounds", 0, "rounds per comparison (default 7, 3 with -quick)")
		out    = flag.String("out", "bench/results.json", "where to write the results")
		binDir = flag.String("bin", "bin/bench", "where to build the binaries")
		only   = flag.String("only", "", "comma-separated groups to run: "+strings.Join(groupNames(), ","))
		keep   = flag.Bool("keep", false, "keep the scratch directory (generated pipelines, logs)")
		jobs   = flag.Int("j", 8, "parallelism for the local DAGs: host --parallelism, make -j, ninja -j")
		level  = flag.String("log-level", "info", "progress log level")
		md     = flag.String("markdown", "", "also write the table as Markdown to this file")
		scal   = flag.Int("scaling-rounds", 3, "rounds of the fleet scaling scenario (each is ~3.5 minutes of sleep-bound modules)")
		prof   = flag.String("profile", "", "instead of benchmarking, profile the host in-process at 10,000 no-op modules into this directory")
	)
	flag.Parse()
	logger := hclog.New(&hclog.LoggerOptions{Name: "bench", Level: hclog.LevelFromString(*level), Output: os.Stderr})

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := os.Getwd()
	if err != nil {
		logger.Error("find the working directory", "error", err)
		return 1
	}
	work, err := os.MkdirTemp("", "modpipe-bench-")
	if err != nil {
		logger.Error("create a scratch directory", "error", err)
		return 1
	}
	if *keep {
		logger.Info("keeping the scratch directory", "path", work)
	} else {
		defer os.RemoveAll(work)
	}
	b := &bench{root: root, bin: absPath(root, *binDir), work: work, quick: *quick, rounds: *rounds, jobs: *jobs, scalingRounds: max(1, *scal), logger: logger}
	if b.rounds <= 0 {
		b.rounds = 7
		if b.quick {
			b.rounds = 3
		}
	}
	rep := Report{StartedAt: time.Now().UTC(), Machine: machine(), Quick: b.quick, Rounds: b.rounds}

	if err := b.build(ctx); err != nil {
		logger.Error("build", "error", err)
		return 1
	}
	if *prof != "" {
		if err := b.profileHost(ctx, absPath(root, *prof)); err != nil {
			logger.Error("profile", "error", err)
			return 1
		}
		logger.Info("profiles written", "dir", *prof)
		return 0
	}
	want := map[string]bool{}
	for _, g := range strings.Split(*only, ",") {
		if g = strings.TrimSpace(g); g != "" {
			want[g] = true
		}
	}
	failed := false
	for _, g := range groups() {
		if len(want) > 0 && !want[g.name] {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		start := time.Now()
		logger.Info("running", "group", g.name)
		rows, err := g.run(b, ctx)
		if err != nil {
			failed = true
			logger.Error("scenario group failed", "group", g.name, "error", err)
			rows = append(rows, Row{Scenario: g.name, Modpipe: newFigure(nil, false), Note: "did not complete: " + err.Error()})
		}
		logger.Info("done", "group", g.name, "took", time.Since(start).Round(time.Millisecond))
		rep.Rows = append(rep.Rows, rows...)
	}

	crossJudge(rep.Rows)
	fmt.Printf("\nmodpipe benchmarks: %d rounds%s on %s (%d CPUs); figures are median (best)\n\n",
		b.rounds, map[bool]string{true: ", quick", false: ""}[b.quick], rep.Machine.CPU, rep.Machine.CPUs)
	if err := writeTable(os.Stdout, rep.Rows); err != nil {
		logger.Error("print the table", "error", err)
		return 1
	}
	if err := writeJSON(absPath(root, *out), rep); err != nil {
		logger.Error("write results", "error", err)
		return 1
	}
	if *md != "" {
		var buf bytes.Buffer
		writeMarkdown(&buf, rep.Rows)
		if err := os.WriteFile(*md, buf.Bytes(), 0o644); err != nil {
			logger.Error("write markdown", "error", err)
			return 1
		}
	}
	fmt.Printf("\nwritten to %s\n", *out)
	if failed || ctx.Err() != nil {
		return 1
	}
	return 0
}

func groupNames() []string {
	var names []string
	for _, g := range groups() {
		names = append(names, g.name)
	}
	return names
}

func absPath(root, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(root, p)
}

// build compiles the host, the plugins the scenarios use, the floor
// plugin and etcd (from the version go.mod pins) into b.bin. It uses one
// `go install` into a GOBIN of its own: the packages are loaded once, the
// binaries link in parallel, and a binary that is up to date is not
// linked again (go build always relinks; on a loaded 2-core machine that
// took a good part of QUICK's minute). Each binary is then hard-linked
// under the name the scenarios use; the host finds its plugins next to
// the path it was started by.
func (b *bench) build(ctx context.Context) error {
	targets := []struct{ out, pkg, built string }{
		{"host", "./cmd/host", "host"},
		{"plugins/modpipe-plugin-shell", "./plugins/shell", "shell"},
		{"plugins/modpipe-plugin-bench", "./bench/plugin", "plugin"},
		{"modpipe-bench-bare", "./bench/bareplugin", "bareplugin"},
		{"etcd", "go.etcd.io/etcd/server/v3", "server"},
	}
	gobin := filepath.Join(b.bin, ".gobin")
	if err := os.MkdirAll(filepath.Join(b.bin, "plugins"), 0o755); err != nil {
		return err
	}
	args := []string{"install"}
	for _, t := range targets {
		args = append(args, t.pkg)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = b.root
	// Static, as `make build` links them (the Makefile says why).
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	for _, t := range targets {
		src, dst := filepath.Join(gobin, t.built), filepath.Join(b.bin, t.out)
		_ = os.Remove(dst)
		if err := os.Link(src, dst); err != nil {
			return fmt.Errorf("install %s as %s: %w", src, dst, err)
		}
	}
	return nil
}

// procResult is what one finished command cost.
type procResult struct {
	Wall time.Duration
	// CPU is user+system time of the process and the children it waited for.
	CPU      time.Duration
	MaxRSSKB int64
	Stdout   []byte
}

// runProc runs a command to completion and measures it. A non-zero exit
// is an error carrying the tail of its output.
//
// The command runs under GNU time for its peak RSS: Go starts children
// with vfork, and exec records the parent's high-water RSS as the child's,
// so a small child's own rusage would report this benchmark's memory.
// GNU time forks from its own small image. The wrapper costs every tool
// the same fork.
func runProc(ctx context.Context, dir string, env []string, name string, args ...string) (procResult, error) {
	rssFile, err := os.CreateTemp("", "modpipe-bench-rss-")
	if err != nil {
		return procResult{}, err
	}
	rssFile.Close()
	defer os.Remove(rssFile.Name())
	cmd := exec.CommandContext(ctx, gnuTime, append([]string{"-q", "-f", "%M", "-o", rssFile.Name(), name}, args...)...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	res := procResult{Wall: wall, Stdout: stdout.Bytes()}
	if ps := cmd.ProcessState; ps != nil {
		res.CPU = ps.UserTime() + ps.SystemTime()
	}
	if b, rerr := os.ReadFile(rssFile.Name()); rerr == nil {
		fields := strings.Fields(string(b))
		if len(fields) > 0 {
			res.MaxRSSKB, _ = strconv.ParseInt(fields[len(fields)-1], 10, 64)
		}
	}
	if err != nil {
		return res, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(stderr.String()+stdout.String(), 1500))
	}
	return res, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// machine describes this machine for the report.
func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), CPU: "unknown"}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		if _, err := fmt.Sscanf(strings.SplitN(string(b), "\n", 2)[0], "MemTotal: %d kB", &kb); err == nil {
			m.MemoryMB = kb / 1024
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.Load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return m
}

// timed logs, at debug level, how long what took once the returned
// func is called: where a run's minutes go (-log-level debug).
func (b *bench) timed(what string) func() {
	start := time.Now()
	return func() { b.logger.Debug("took", "what", what, "took", time.Since(start).Round(time.Millisecond)) }
}

// gnuTime is GNU time, installed by bench/setup.sh (Debian "time").
const gnuTime = "/usr/bin/time"

// nan is a missing figure.
var nan = math.NaN()

// errSkipped marks a peer that is not installed.
var errSkipped = errors.New("not installed")

// crossJudge judges the targets that need figures from two groups: the
// host's CPU per module is allowed 50 µs beyond the RPC's own client CPU,
// measured in the plugin group on the bare stream.
func crossJudge(rows []Row) {
	var cpu *Row
	rpc := nan
	for i := range rows {
		switch rows[i].Scenario {
		case cpuRowName:
			cpu = &rows[i]
		case rpcCPURowName:
			// The bare stream in the DAG's shape: the cheapest
			// exchange per module (one call at a time pays a wake-up
			// on each side that 8 messages in flight share).
			if len(rows[i].Peers) > 1 {
				rpc = rows[i].Peers[1].Median
			}
		}
	}
	if cpu != nil {
		cpu.judge(cpu.Modpipe.Median <= 50+rpc, cpu.Modpipe.Median, rpc)
	}
}
