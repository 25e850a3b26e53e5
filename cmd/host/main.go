// Command host runs modpipe pipelines: `host run pipeline.hcl`.
//
// It is a thin layer over the host package: flags and environment in,
// exit code out. See `host --help` and docs/pipeline-reference.md.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/modpipe/modpipe/host"
	"github.com/modpipe/modpipe/host/pluginhost"
	"github.com/modpipe/modpipe/host/report"
	"github.com/modpipe/modpipe/host/secrets"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// softMemoryLimit keeps the host small at 10,000 modules: its live heap
// peaks near 70 MB, and with the default GC pacing the process grows to
// twice that before collecting. A soft limit makes the GC work harder
// only when the heap nears it. 120 MiB was measured as the balance
// (bench, 10,000 no-op modules): peak RSS 135 MB and 218 µs of host CPU
// per module, where 100 MiB gave 122 MB but 355 µs. A pipeline whose
// live heap needs more gets more (followLiveHeap). GOMEMLIMIT overrides.
const softMemoryLimit = 120 << 20

// gcPercent is GOGC for the host. Loading a pipeline allocates fast and
// keeps most of it, so at the default 100 the heap's early doublings
// (4, 8, 16 MB...) each cost a GC cycle on the way to its working size:
// a fifth of the host's CPU in a 1,000-module run. At 400 the soft
// memory limit above still bounds the large pipelines (peak RSS at
// 10,000 modules unchanged, 133 MB); a 1,000-module run peaks at 51 MB
// instead of 38 and its /bin/true DAG took 0.50 s instead of 0.57-0.60.
// GOGC overrides.
const gcPercent = 400

func main() {
	stopLimit := func() {}
	if os.Getenv("GOMEMLIMIT") == "" {
		stopLimit = followLiveHeap(softMemoryLimit)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	stop := startCPUProfile()
	code := run(os.Args[1:])
	stop()
	stopLimit()
	os.Exit(code)
}

// cpuProfileEnv names a file prefix under which the host writes a CPU
// profile of its whole life (PREFIX.PID, for go tool pprof): for finding
// where an instance of a fleet spends its time in a real run, where an
// in-process benchmark cannot go. Plugins have their own
// (MODPIPE_PLUGIN_CPUPROFILE). Unset, nothing is profiled.
const cpuProfileEnv = "MODPIPE_CPUPROFILE"

// startCPUProfile starts the profile cpuProfileEnv asks for and returns
// what stops it.
func startCPUProfile() (stop func()) {
	prefix := os.Getenv(cpuProfileEnv)
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s.%d", prefix, os.Getpid()))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: cannot write the CPU profile: %v\n", cpuProfileEnv, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "%s: cannot start the CPU profile: %v\n", cpuProfileEnv, err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// globals are the flags every command shares.
type globals struct {
	logLevel string
	logJSON  bool
	vars     []string
	caps     []string
}

// oneFile is the argument rule of the commands that take a pipeline file.
func oneFile(cmd *cobra.Command, args []string) error {
	switch len(args) {
	case 1:
		return nil
	case 0:
		return fmt.Errorf("%s needs the pipeline file: %s FILE", cmd.CommandPath(), cmd.CommandPath())
	default:
		return fmt.Errorf("%s takes one pipeline file, not %d arguments: %q", cmd.CommandPath(), len(args), args)
	}
}

func run(args []string) int {
	began := time.Now()
	// What the run's console holds back, printed before a second signal
	// ends the host.
	held := &host.HeldOutput{}
	// Standard error for everything the command writes there: a run's
	// live view writes it above itself.
	stderr := host.NewStderr(os.Stderr)
	ctx, stop := interruptible(held, stderr)
	defer stop()
	// A reader of the console that goes away (host run ... | head) must
	// not kill the run: Go ends a program that writes to a closed pipe
	// on stdout or stderr unless SIGPIPE is handled. Handled, the writes
	// fail instead, and the run goes on to its end and its reports.
	pipes := make(chan os.Signal, 1)
	signal.Notify(pipes, syscall.SIGPIPE)
	defer signal.Stop(pipes)

	var g globals
	code := 0
	// What the commands leave to undo when run returns (the plugins'
	// socket folder).
	var cleanups []func()
	defer func() {
		for _, f := range cleanups {
			f()
		}
	}()
	root := &cobra.Command{
		Use:           "host",
		Short:         "modpipe runs CI/CD pipelines of plugin modules declared in HCL",
		Long:          "modpipe runs CI/CD pipelines of plugin modules declared in HCL (pipeline.hcl),\non one machine or across a fleet coordinated through etcd.\n\nExit codes: 0 succeeded, 1 pipeline failed, 2 invalid configuration,\n3 a plugin could not start or check its configs, 4 coordinator error, 130 interrupted.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", envOr("MODPIPE_LOG_LEVEL", "warn"), "log level: trace, debug, info, warn, error, off (env MODPIPE_LOG_LEVEL)")
	root.PersistentFlags().BoolVar(&g.logJSON, "log-json", false, "write logs as JSON lines")

	addFileFlags := func(c *cobra.Command) {
		c.Flags().StringArrayVar(&g.vars, "var", nil, "set a variable: --var name=value (repeatable; env MODPIPE_VAR_name also works)")
		c.Flags().StringArrayVar(&g.caps, "capability", nil, "add a capability this instance offers (repeatable; env MODPIPE_CAPABILITIES=a,b)")
	}
	baseOpts := func(file string) (host.Options, error) {
		vars, err := parseVars(g.vars)
		if err != nil {
			return host.Options{}, err
		}
		logOut := secrets.NewOutput(stderr)
		logger, err := newLogger(g.logLevel, g.logJSON, logOut)
		if err != nil {
			return host.Options{}, err
		}
		sockets, cleanup, err := pluginhost.SocketRoot("")
		if err != nil {
			// go-plugin makes its folders in the temporary folder itself
			// then, and says what is wrong with it if it cannot.
			logger.Warn("plugins' sockets go to the temporary folder directly", "error", err)
		}
		cleanups = append(cleanups, cleanup)
		return host.Options{
			SocketRoot:   sockets,
			File:         file,
			Vars:         vars,
			Capabilities: g.caps,
			Logger:       logger,
			LogOutput:    logOut,
			Stderr:       stderr,
			HeldOutput:   held,
			Color:        isatty.IsTerminal(os.Stderr.Fd()),
		}, nil
	}
	finish := func(err error) error {
		code = host.ExitCode(err)
		var ee *host.ExitError
		if err != nil && !(asExit(err, &ee) && ee.Reported) {
			fmt.Fprintf(stderr, "Error: %v\n", err)
		}
		return nil
	}

	var (
		parallelism int
		only, skip  []string
		categories  []string
		reports     []string
		runID       string
		dryRun      bool
		noProgress  bool
		grace       time.Duration
		fleet       fleetFlags
	)
	runCmd := &cobra.Command{
		Use:   "run FILE",
		Short: "Run a pipeline on this machine",
		Long:  "Run a pipeline: load FILE, start its plugins, run the module graph and print a summary.\nExit code 0 only if the pipeline succeeded.",
		Args:  oneFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := baseOpts(args[0])
			if err != nil {
				return finish(&host.ExitError{Code: host.ExitInvalid, Err: err})
			}
			switch {
			case parallelism < 0:
				return finish(&host.ExitError{Code: host.ExitInvalid, Err: fmt.Errorf("--parallelism %d: give a number of modules from 1 up, or 0 for the default (CPUs x 4)", parallelism)})
			case grace <= 0:
				return finish(&host.ExitError{Code: host.ExitInvalid, Err: fmt.Errorf("--grace %s: give a positive duration, such as 10s", grace)})
			case fleet.slots < 0:
				return finish(&host.ExitError{Code: host.ExitInvalid, Err: fmt.Errorf("--slots %d: give a number of modules from 1 up, or 0 for the default (CPUs)", fleet.slots)})
			}
			var specs []report.Spec
			for _, r := range reports {
				s, err := report.ParseSpec(r)
				if err != nil {
					return finish(&host.ExitError{Code: host.ExitInvalid, Err: err})
				}
				specs = append(specs, s)
			}
			if err := report.CheckAll(specs); err != nil {
				return finish(&host.ExitError{Code: host.ExitInvalid, Err: err})
			}
			opts.Parallelism = parallelism
			opts.Only, opts.Skip, opts.Categories = only, skip, categories
			opts.RunID = runID
			opts.Grace = grace
			if dryRun {
				return finish(host.DryRun(ctx, opts))
			}
			role, err := host.ResolveRole(fleet.roleFlags(cmd, runID), os.Environ())
			if err != nil {
				return finish(err)
			}
			if role.Distributed() {
				return finish(runFleet(ctx, host.RunOptions{Options: opts, Reports: specs, NoProgress: noProgress, Began: began}, role, fleet))
			}
			// Fleet settings on a single-machine run do nothing: say so,
			// since a forgotten --instance/--total looks like a fleet run
			// that quietly ran everything here.
			var fleetOnly []string
			for _, name := range []string{"etcd", "slots"} {
				if cmd.Flags().Changed(name) {
					fleetOnly = append(fleetOnly, "--"+name)
				}
			}
			if len(fleetOnly) > 0 {
				opts.Logger.Warn("fleet settings ignored: this is a single-machine run (no --instance/--total, MODPIPE_INSTANCE/MODPIPE_TOTAL or CI parallel job)", "flags", fleetOnly)
			}
			_, err = host.Run(ctx, host.RunOptions{Options: opts, Reports: specs, NoProgress: noProgress, Began: began})
			return finish(err)
		},
	}
	addFileFlags(runCmd)
	runCmd.Flags().IntVar(&parallelism, "parallelism", 0, "modules run at once on this machine (0 or unset: CPUs x 4)")
	runCmd.Flags().StringArrayVar(&only, "only", nil, "run only this module and what it depends on (repeatable)")
	runCmd.Flags().StringArrayVar(&skip, "skip", nil, "do not run this module, nor what depends on it (repeatable)")
	runCmd.Flags().StringArrayVar(&categories, "category", nil, "run only modules of this category and what they depend on (repeatable)")
	runCmd.Flags().StringArrayVar(&reports, "report", nil, "write a report: FORMAT=PATH, FORMAT one of "+strings.Join(report.Formats, ", ")+" (repeatable)")
	runCmd.Flags().BoolVar(&noProgress, "no-progress", false, "on a terminal, print plain lines instead of the live view")
	runCmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan (waves, what would be skipped and why) and run nothing")
	runCmd.Flags().DurationVar(&grace, "grace", 10*time.Second, "how long a cancelled module (SIGINT/SIGTERM, its timeout, on_failure stop) gets to stop before its plugin is killed as hung")
	runCmd.Flags().StringVar(&runID, "run-id", os.Getenv("MODPIPE_RUN_ID"), "the run's id in reports and, in a distributed run, on the coordinator: every instance gives the same (env MODPIPE_RUN_ID; default from the CI, else the time)")
	addFleetFlags(runCmd, &fleet)

	validateCmd := &cobra.Command{
		Use:   "validate FILE",
		Short: "Check a pipeline file, its plugins and its module graph without running anything",
		Args:  oneFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := baseOpts(args[0])
			if err != nil {
				return finish(&host.ExitError{Code: host.ExitInvalid, Err: err})
			}
			return finish(host.Validate(ctx, opts))
		},
	}
	addFileFlags(validateCmd)

	var format string
	graphCmd := &cobra.Command{
		Use:   "graph FILE",
		Short: "Print the module graph (after matrix expansion) as DOT or Mermaid",
		Args:  oneFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := baseOpts(args[0])
			if err != nil {
				return finish(&host.ExitError{Code: host.ExitInvalid, Err: err})
			}
			return finish(host.Graph(opts, format))
		},
	}
	addFileFlags(graphCmd)
	graphCmd.Flags().StringVar(&format, "format", "dot", "output format: dot or mermaid")

	pluginsCmd := &cobra.Command{
		Use:   "plugins FILE",
		Short: "Describe the plugins a pipeline uses: versions, module kinds and their attributes",
		Args:  oneFile,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts, err := baseOpts(args[0])
			if err != nil {
				return finish(&host.ExitError{Code: host.ExitInvalid, Err: err})
			}
			return finish(host.Plugins(ctx, opts))
		},
	}
	addFileFlags(pluginsCmd)

	versionCmd := &cobra.Command{
		Use:   "version",
		Short: "Print the host's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Printf("modpipe host %s\n", version)
		},
	}

	root.AddCommand(runCmd, validateCmd, graphCmd, pluginsCmd, versionCmd)
	root.Version = version
	root.SetVersionTemplate("modpipe host {{.Version}}\n")
	root.SetArgs(args)
	if c, err := root.ExecuteC(); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\nRun '%s --help' for usage.\n", err, c.CommandPath())
		return host.ExitInvalid
	}
	return code
}

func asExit(err error, target **host.ExitError) bool {
	ee, ok := err.(*host.ExitError)
	if ok {
		*target = ee
	}
	return ok
}

func parseVars(kvs []string) (map[string]string, error) {
	vars := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--var %q: want name=value", kv)
		}
		vars[k] = v
	}
	return vars, nil
}

func newLogger(level string, asJSON bool, out io.Writer) (hclog.Logger, error) {
	lv := hclog.LevelFromString(level)
	if lv == hclog.NoLevel {
		return nil, fmt.Errorf("log level %q (--log-level or MODPIPE_LOG_LEVEL): use trace, debug, info, warn, error or off", level)
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "host",
		Level:      lv,
		Output:     out,
		JSONFormat: asJSON,
		// go-plugin warns of these when it stops a plugin the host is done
		// with: after its Shutdown call, even of a plugin that had already
		// exited (one that failed to start), and when the host closed the
		// connection first. What was wrong with a plugin, if anything, is
		// reported on its own.
		Exclude: func(level hclog.Level, msg string, _ ...any) bool {
			return lv > hclog.Debug && (msg == "plugin failed to exit gracefully" || msg == "error closing client during Kill" ||
				// At error level for any exit but 0, a plugin the host
				// stopped itself included; a crash is the host's own entry.
				msg == "plugin process exited" ||
				// A plugin stopped right after it connected (a start given
				// up on: Ctrl-C, a worker the run refused) has no stdio
				// stream to offer any more.
				strings.HasPrefix(msg, "stdio service not available") || strings.HasPrefix(msg, "stdio service unavailable"))
		},
	})
	// go-plugin writes a few events with the standard log package; they
	// become entries of this log, at the level their prefix names.
	log.SetFlags(0)
	log.SetOutput(stdLog{logger.Named("go-plugin")})
	return logger, nil
}

// stdLog makes lines of the standard log package ("[ERR] plugin: ...")
// entries of an hclog logger.
type stdLog struct{ l hclog.Logger }

func (w stdLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := hclog.Info
	for prefix, lv := range map[string]hclog.Level{"[ERR]": hclog.Error, "[ERROR]": hclog.Error, "[WARN]": hclog.Warn, "[INFO]": hclog.Info, "[DEBUG]": hclog.Debug, "[TRACE]": hclog.Trace} {
		if rest, ok := strings.CutPrefix(msg, prefix); ok {
			level, msg = lv, strings.TrimSpace(strings.TrimPrefix(rest, ":"))
			break
		}
	}
	if strings.HasSuffix(msg, "broker closed") ||
		(strings.Contains(msg, "acceptAndServe error") && (strings.Contains(msg, "no such file or directory") || strings.Contains(msg, "use of closed network connection"))) {
		// The plugin was stopped before it connected back, or its
		// broker's socket went with it (a start cancelled, a worker
		// refused by the run): nothing went wrong.
		level = hclog.Debug
	}
	w.l.Log(level, msg)
	return len(p), nil
}

// interruptible returns a context that SIGINT or SIGTERM cancels, as
// signal.NotifyContext's (the cause reads "interrupt signal received"),
// and stop, which releases the signals. The run then stops its modules,
// giving them --grace; a second signal stops the host at once (exit
// 130), as one expects of a second Ctrl-C: the plugins still get their
// parent-death signal and stop their commands, what those commands put
// outside their groups is killed, but no report is written. A signal
// within oneActionWindow of the first is the same action (a runner
// signalling the host and then its group), not a second Ctrl-C. The
// notices go to stderr, which a live view writes above itself.
// What the console holds back (in a CI, the output of the modules still
// running) is printed first: it is what says why they did not stop.
func interruptible(held *host.HeldOutput, stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var first time.Time
		select {
		case sig := <-sigs:
			first = time.Now()
			cancel(fmt.Errorf("%v signal received", sig))
			fmt.Fprintf(stderr, "Stopping (%v): running modules get up to --grace to stop; a second Ctrl-C stops at once.\n", sig)
		case <-done:
			return
		}
		for {
			var sig os.Signal
			select {
			case sig = <-sigs:
			case <-done:
				return
			}
			if time.Since(first) < oneActionWindow {
				// The same action as the first: GNU timeout and CI
				// runners signal the host and then its process
				// group, microseconds apart. Taken as a second
				// Ctrl-C, it would lose the reports and leave a
				// fleet's workers to find their master gone.
				continue
			}
			fmt.Fprintf(stderr, "Stopped at once (%v again): modules were not waited for, no report was written.\n", sig)
			held.Release(heldOutputWait)
			// The plugins stop with the host (their parent-death
			// signal) and kill their commands' groups; a command that
			// left its group would outlive them.
			pluginhost.KillLeftovers()
			os.Exit(host.ExitInterrupted)
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		wg.Wait()
		cancel(context.Canceled)
	}
}

// oneActionWindow is how long after the first signal another one is
// taken as part of the same action (a signal to the host and then to its
// process group) rather than as a second Ctrl-C. It is well under how
// fast a person presses Ctrl-C again on seeing that the host is stopping.
const oneActionWindow = 500 * time.Millisecond

// heldOutputWait bounds the printing of the held-back output at a
// second signal: a stdout no one reads any more must not keep the host
// from stopping at once.
const heldOutputWait = 2 * time.Second

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
