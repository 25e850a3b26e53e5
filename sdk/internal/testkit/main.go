// Command modpipe-plugin-testkit is a plugin for tests of the host and the
// sdk: each kind misbehaves (or behaves) in one way that a test needs.
// Build it with
//
//	go build -o bin/plugins/modpipe-plugin-testkit ./sdk/internal/testkit
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/modpipe/modpipe/sdk"
)

// Ran is the result of the kinds that just run: which process ran them.
type Ran struct {
	PID     int    `json:"pid"`
	Module  string `json:"module"`
	Attempt int    `json:"attempt"`
	Target  string `json:"target"`
}

func ran(m *sdk.Module) Ran {
	return Ran{PID: os.Getpid(), Module: m.Name(), Attempt: m.Attempt(), Target: m.MatrixTarget()}
}

// SleepConfig configures sleep.
type SleepConfig struct {
	Duration time.Duration `modpipe:"duration" doc:"How long to sleep, e.g. \"2s\"."`
	Partial  bool          `modpipe:"partial,optional" doc:"Stopped, return what it has with the error."`
}

func sleep(ctx context.Context, m *sdk.Module, c SleepConfig) (Ran, error) {
	m.Logf("sleeping %s", c.Duration)
	select {
	case <-time.After(c.Duration):
		return ran(m), nil
	case <-ctx.Done():
		// What a module writes while it stops must reach the host too.
		fmt.Fprintln(m.Stdout(), "cleaning up after", ctx.Err())
		if c.Partial {
			return ran(m), fmt.Errorf("sleep interrupted: %w", ctx.Err())
		}
		return Ran{}, fmt.Errorf("sleep interrupted: %w", ctx.Err())
	}
}

// HangConfig configures hang.
type HangConfig struct {
	Message string `modpipe:"message,optional"`
}

// hang ignores cancellation: it never returns.
func hang(_ context.Context, m *sdk.Module, c HangConfig) (Ran, error) {
	fmt.Fprintln(m.Stdout(), "hanging", c.Message)
	select {}
}

// MessageConfig carries a message for panic and crash.
type MessageConfig struct {
	Message string `modpipe:"message" doc:"The panic message."`
}

// panicKind panics in the run function, which the sdk recovers.
func panicKind(_ context.Context, m *sdk.Module, c MessageConfig) (Ran, error) {
	fmt.Fprintln(m.Stderr(), "about to panic")
	panic(c.Message)
}

// crash panics on another goroutine, which no one can recover: the whole
// process dies, as a plugin with a bug in a background goroutine would.
func crash(_ context.Context, m *sdk.Module, c MessageConfig) (Ran, error) {
	fmt.Fprintln(os.Stderr, "crash kind: about to panic on a goroutine")
	go func() { panic(c.Message) }()
	select {}
}

// ExitConfig configures exit.
type ExitConfig struct {
	Code    int    `modpipe:"code" doc:"Exit status."`
	Message string `modpipe:"message,optional" doc:"Written to stderr first."`
	// Orphan, when set, is a file to write the pid of a child started
	// first that shares the plugin's stdout and stderr and outlives it.
	Orphan string `modpipe:"orphan,optional"`
}

// exit writes to stderr and exits the process mid-run.
func exit(_ context.Context, m *sdk.Module, c ExitConfig) (Ran, error) {
	fmt.Fprintln(m.Stdout(), "exiting soon")
	if c.Orphan != "" {
		child := exec.Command("sleep", "300")
		child.Stdout, child.Stderr = os.Stdout, os.Stderr
		if err := child.Start(); err != nil {
			return Ran{}, err
		}
		if err := os.WriteFile(c.Orphan, []byte(strconv.Itoa(child.Process.Pid)), 0o644); err != nil {
			return Ran{}, err
		}
	}
	fmt.Fprintln(os.Stderr, c.Message)
	os.Exit(c.Code)
	return Ran{}, nil
}

// EchoConfig exercises every supported attribute type.
type EchoConfig struct {
	Text    string            `modpipe:"text" doc:"Any text."`
	Count   int               `modpipe:"count,optional"`
	Ratio   float64           `modpipe:"ratio,optional"`
	Enabled bool              `modpipe:"enabled,optional"`
	Tags    []string          `modpipe:"tags,optional"`
	Env     map[string]string `modpipe:"env,optional"`
	Nested  *Nested           `modpipe:"nested,optional"`
	Items   []Nested          `modpipe:"items,optional"`
	Extra   any               `modpipe:"extra,optional"`
	Raw     json.RawMessage   `modpipe:"raw,optional"`
	Wait    time.Duration     `modpipe:"wait,optional"`
}

// Nested is an object attribute.
type Nested struct {
	Name string `modpipe:"name"`
	Deep bool   `modpipe:"deep,optional"`
}

// Echoed is echo's result: the decoded config and the module's facts.
type Echoed struct {
	Config   EchoConfig        `json:"config"`
	WaitMS   int64             `json:"wait_ms"`
	Module   string            `json:"module"`
	Matrix   map[string]string `json:"matrix"`
	Target   string            `json:"target"`
	Attempt  int               `json:"attempt"`
	Instance int               `json:"instance"`
	RunID    string            `json:"run_id"`
}

func echo(_ context.Context, m *sdk.Module, c EchoConfig) (Echoed, error) {
	return Echoed{Config: c, WaitMS: c.Wait.Milliseconds(), Module: m.Name(), Matrix: m.Matrix(),
		Target: m.MatrixTarget(), Attempt: m.Attempt(), Instance: m.Instance(), RunID: m.RunID()}, nil
}

// LinesConfig configures lines.
type LinesConfig struct {
	Count int `modpipe:"count" doc:"How many lines to write to each of stdout, stderr and the log."`
}

// Counted is the result of lines.
type Counted struct {
	Count int `json:"count"`
}

func lines(_ context.Context, m *sdk.Module, c LinesConfig) (Counted, error) {
	for i := 0; i < c.Count; i++ {
		fmt.Fprintf(m.Stdout(), "out %d\n", i)
		fmt.Fprintf(m.Stderr(), "err %d\n", i)
		m.Logf("log %d", i)
	}
	fmt.Fprint(m.Stdout(), "unterminated")
	m.Logger().Debug("detail", "count", c.Count)
	m.Logger().Info("done", "count", c.Count)
	return Counted{Count: c.Count}, nil
}

// BigConfig configures big.
type BigConfig struct {
	Bytes int `modpipe:"bytes" doc:"Size of the returned string."`
}

// Big is big's result.
type Big struct {
	Data string `json:"data"`
}

func big(_ context.Context, _ *sdk.Module, c BigConfig) (Big, error) {
	var b strings.Builder
	for b.Len() < c.Bytes {
		fmt.Fprintf(&b, "%09d,", b.Len())
	}
	return Big{Data: b.String()[:c.Bytes]}, nil
}

// DepConfig configures dep.
type DepConfig struct {
	Module string `modpipe:"module" doc:"The dependency to read."`
	Raw    bool   `modpipe:"raw,optional" doc:"Return the whole envelope instead of the value."`
	// As decodes the value with sdk.Result into a typed struct instead
	// of a map: "ran" (this plugin's own result type testkit.ran/v1) or
	// "echo" (a type naming testkit.echo/v1 through sdk.ResultTyper).
	As string `modpipe:"as,optional"`
	// After delays the request, to read a result long after the plugin
	// started (beyond go-plugin's broker handshake window).
	After time.Duration `modpipe:"after,optional"`
}

// Dep is dep's result.
type Dep struct {
	Value    map[string]any `json:"value,omitempty"`
	Envelope *sdk.Envelope  `json:"envelope,omitempty"`
}

func dep(ctx context.Context, _ *sdk.Module, c DepConfig) (Dep, error) {
	select {
	case <-time.After(c.After):
	case <-ctx.Done():
		return Dep{}, ctx.Err()
	}
	if c.Raw {
		env, err := sdk.ResultEnvelope(ctx, c.Module)
		if err != nil {
			return Dep{}, err
		}
		return Dep{Envelope: env}, nil
	}
	switch c.As {
	case "ran":
		v, err := sdk.Result[Ran](ctx, c.Module)
		return Dep{Value: map[string]any{"module": v.Module, "pid": v.PID}}, err
	case "echo":
		v, err := sdk.Result[echoed](ctx, c.Module)
		return Dep{Value: map[string]any{"module": v.Module}}, err
	}
	v, err := sdk.Result[map[string]any](ctx, c.Module)
	if err != nil {
		return Dep{}, err
	}
	return Dep{Value: v}, nil
}

// echoed is the part of echo's result dep reads with as = "echo".
type echoed struct {
	Module string `json:"module"`
}

func (echoed) ModpipeResultType() string { return "testkit.echo/v1" }

// FailConfig configures fail.
type FailConfig struct {
	Message string `modpipe:"message"`
	Tail    string `modpipe:"tail,optional" doc:"Attach this tail; empty means the sdk's own."`
}

// Failed is fail's result, sent alongside the error.
type Failed struct {
	ExitCode int `json:"exit_code"`
}

func fail(_ context.Context, m *sdk.Module, c FailConfig) (Failed, error) {
	fmt.Fprintln(m.Stderr(), "something went wrong")
	if c.Tail != "" {
		return Failed{ExitCode: 2}, sdk.WithTail(errors.New(c.Message), c.Tail)
	}
	return Failed{ExitCode: 2}, sdk.Failf("%s", c.Message)
}

// Unencodable is a result encoding/json refuses.
type Unencodable struct {
	Value float64 `json:"value"`
}

func badValue(context.Context, *sdk.Module, struct{}) (Unencodable, error) {
	return Unencodable{Value: math.NaN()}, nil
}

// PickConfig has a check beyond types.
type PickConfig struct {
	Command []string `modpipe:"command,optional"`
	Script  string   `modpipe:"script,optional"`
}

func pick(_ context.Context, m *sdk.Module, c PickConfig) (Ran, error) { return ran(m), nil }

func checkPick(c PickConfig) error {
	if (len(c.Command) == 0) == (c.Script == "") {
		return sdk.AttributeError("command", "set exactly one of command or script")
	}
	return nil
}

// checkPanics is a check with a bug: it panics on the message "boom",
// and takes the whole process down on "exit".
func checkPanics(c MessageConfig) error {
	switch c.Message {
	case "boom":
		var m map[string]int
		m["boom"]++ // assignment to a nil map
	case "exit":
		fmt.Fprintln(os.Stderr, "the check is exiting")
		os.Exit(5)
	}
	return nil
}

// ProcConfig configures proc.
type ProcConfig struct {
	Getenv string `modpipe:"getenv,optional" doc:"An environment variable to report."`
}

// Proc describes the plugin process.
type Proc struct {
	PID      int      `json:"pid"`
	Args     []string `json:"args"`
	Env      string   `json:"env"`
	AutoMTLS bool     `json:"auto_mtls"`
}

func proc(_ context.Context, _ *sdk.Module, c ProcConfig) (Proc, error) {
	return Proc{PID: os.Getpid(), Args: os.Args[1:], Env: os.Getenv(c.Getenv), AutoMTLS: os.Getenv("PLUGIN_CLIENT_CERT") != ""}, nil
}

func main() {
	sdk.Serve(sdk.Plugin{Name: "testkit", Version: "0.0.1-test", Kinds: []sdk.Kind{
		sdk.NewKind("echo", "testkit.echo/v1", echo, sdk.Default(), sdk.Doc("Returns its config.")),
		sdk.NewKind("sleep", "testkit.ran/v1", sleep, sdk.Doc("Sleeps, honouring cancellation.")),
		sdk.NewKind("hang", "testkit.ran/v1", hang, sdk.Doc("Never returns, ignoring cancellation.")),
		sdk.NewKind("panic", "testkit.ran/v1", panicKind, sdk.Doc("Panics in the run function.")),
		sdk.NewKind("crash", "testkit.ran/v1", crash, sdk.Doc("Panics on a goroutine, killing the process.")),
		sdk.NewKind("exit", "testkit.ran/v1", exit, sdk.Doc("Writes to stderr and exits mid-run.")),
		sdk.NewKind("lines", "testkit.lines/v1", lines, sdk.Doc("Writes count lines to stdout, stderr and the log.")),
		sdk.NewKind("big", "testkit.big/v1", big, sdk.Doc("Returns a large value.")),
		sdk.NewKind("dep", "testkit.dep/v1", dep, sdk.Doc("Returns a dependency's result.")),
		sdk.NewKind("fail", "testkit.fail/v1", fail, sdk.Doc("Fails with a value and an error.")),
		sdk.NewKind("badvalue", "testkit.bad/v1", badValue, sdk.Doc("Returns a value that cannot be encoded.")),
		sdk.NewKind("proc", "testkit.proc/v1", proc, sdk.Doc("Describes the plugin process.")),
		sdk.NewKind("pick", "testkit.ran/v1", pick, sdk.Check(checkPick), sdk.Doc("Needs exactly one of command or script.")),
		sdk.NewKind("println", "testkit.ran/v1", func(_ context.Context, m *sdk.Module, c MessageConfig) (Ran, error) {
			fmt.Println(c.Message) // the plugin's own stdout, not the module's
			return ran(m), nil
		}, sdk.Doc("Prints its message to the plugin's own stdout.")),
		sdk.NewKind("checkpanic", "testkit.ran/v1", func(_ context.Context, m *sdk.Module, _ MessageConfig) (Ran, error) { return ran(m), nil },
			sdk.Check(checkPanics), sdk.Doc("Its config check panics on the message \"boom\".")),
	}})
}
