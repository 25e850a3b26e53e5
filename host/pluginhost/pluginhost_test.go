package pluginhost_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/internal/proctest"
	"github.com/modpipe/modpipe/host/pluginhost"
)

// Plugin binaries built once by TestMain.
var (
	testkitBin     string
	helloBin       string
	wrongVerBin    string
	silentBin      string
	notAPluginBin  string
	statusBin      string
	deadlockGuard  = 2 * time.Minute // bounds waits that must not hang; never a timing assertion
	buildsFinished bool
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pluginhost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	builds := []struct {
		out *string
		pkg string
	}{
		{&testkitBin, "github.com/modpipe/modpipe/sdk/internal/testkit"},
		{&helloBin, "github.com/modpipe/modpipe/plugins/examples/hello"},
		{&wrongVerBin, "./testdata/wrongversion"},
		{&silentBin, "./testdata/silent"},
		{&notAPluginBin, "./testdata/notaplugin"},
		{&statusBin, "./testdata/statusplugin"},
	}
	for _, b := range builds {
		*b.out = filepath.Join(dir, filepath.Base(b.pkg))
		cmd := exec.Command("go", "build", "-o", *b.out, b.pkg)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n", b.pkg, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	buildsFinished = true
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Debug, Output: newTestWriter(t)})
}

// testWriter logs to t until the test ends, and drops what comes after:
// go-plugin's stdio goroutine may log its "stopping" line once Close has
// returned, and t.Log after the end of a test is a race (and a panic).
type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func newTestWriter(t testing.TB) *testWriter {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Helper()
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

func start(t testing.TB, bin string, opts pluginhost.Options) *pluginhost.Plugin {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadlockGuard)
	defer cancel()
	p, err := pluginhost.Start(ctx, pluginhost.Spec{Name: filepath.Base(bin), Path: bin}, opts)
	if err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		pid := p.PID()
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if pid != 0 && processAlive(pid) {
			t.Errorf("plugin process %d still alive after Close", pid)
		}
	})
	return p
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// the state field follows the parenthesised command name
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func guardCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), deadlockGuard)
	t.Cleanup(cancel)
	return ctx
}

func execute(t testing.TB, p *pluginhost.Plugin, req pluginhost.Request) (pluginhost.Response, []pluginhost.Line, error) {
	t.Helper()
	var lines []pluginhost.Line
	resp, err := p.Execute(guardCtx(t), req, func(l pluginhost.Line) { lines = append(lines, l) })
	return resp, lines, err
}

func TestDescribe(t *testing.T) {
	p := start(t, testkitBin, pluginhost.Options{})
	info := p.Info()
	if info.Name != "testkit" || info.Version != "0.0.1-test" || info.ProtocolVersion != 1 {
		t.Fatalf("info = %+v", info)
	}
	def, ok := p.Kind("")
	if !ok || def.Name != "echo" || !def.Default || def.ResultType != "testkit.echo/v1" || def.Doc != "Returns its config." {
		t.Fatalf("default kind = %+v, %v", def, ok)
	}
	want := map[string]struct {
		typ      cty.Type
		required bool
	}{
		"text":    {cty.String, true},
		"count":   {cty.Number, false},
		"ratio":   {cty.Number, false},
		"enabled": {cty.Bool, false},
		"tags":    {cty.List(cty.String), false},
		"env":     {cty.Map(cty.String), false},
		"nested":  {cty.ObjectWithOptionalAttrs(map[string]cty.Type{"name": cty.String, "deep": cty.Bool}, []string{"deep"}), false},
		"items":   {cty.List(cty.ObjectWithOptionalAttrs(map[string]cty.Type{"name": cty.String, "deep": cty.Bool}, []string{"deep"})), false},
		"extra":   {cty.DynamicPseudoType, false},
		"raw":     {cty.DynamicPseudoType, false},
		"wait":    {cty.String, false},
	}
	if len(def.Attributes) != len(want) {
		t.Fatalf("echo has %d attributes, want %d: %+v", len(def.Attributes), len(want), def.Attributes)
	}
	for name, w := range want {
		a, ok := def.Attribute(name)
		if !ok {
			t.Errorf("attribute %q missing", name)
			continue
		}
		if !a.Type.Equals(w.typ) || a.Required != w.required {
			t.Errorf("attribute %q = %#v required=%v, want %#v required=%v", name, a.Type, a.Required, w.typ, w.required)
		}
	}
	if text, _ := def.Attribute("text"); text.Doc != "Any text." {
		t.Errorf("text doc = %q", text.Doc)
	}
	// The result type, as the sdk derives it from the Go type.
	if lines, _ := p.Kind("lines"); !lines.Result.Equals(cty.Object(map[string]cty.Type{"count": cty.Number})) {
		t.Errorf("lines's result type = %#v, want an object with count", lines.Result)
	}
	// A plugin that sends no result_schema has no result type.
	if k, _ := start(t, statusBin, pluginhost.Options{}).Kind(""); k.Result != cty.NilType {
		t.Errorf("statusplugin's result type = %#v, want none", k.Result)
	}
	if _, ok := p.Kind("sleep"); !ok {
		t.Error("kind sleep missing")
	}
	if _, ok := p.Kind("nope"); ok {
		t.Error("kind nope found")
	}
}

func TestHello(t *testing.T) {
	p := start(t, helloBin, pluginhost.Options{})
	resp, lines, err := execute(t, p, pluginhost.Request{Module: "greet", Config: json.RawMessage(`{"name":"world"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Succeeded || resp.Type != "hello.greet/v1" || string(resp.Value) != `{"message":"hello, world"}` {
		t.Fatalf("resp = %+v value %s", resp, resp.Value)
	}
	if len(lines) != 1 || lines[0] != (pluginhost.Line{Stream: "log", Text: "greeting world"}) {
		t.Fatalf("lines = %+v", lines)
	}
}

func TestValidate(t *testing.T) {
	p := start(t, testkitBin, pluginhost.Options{})
	tests := []struct {
		name, kind, config string
		want               []pluginhost.Diagnostic
	}{
		{name: "valid", kind: "echo", config: `{"text":"x","count":3,"tags":["a"],"nested":{"name":"n"},"wait":"2s"}`},
		{name: "nulls are absent", kind: "echo", config: `{"text":"x","count":null,"nested":null}`},
		{name: "missing required", kind: "echo", config: `{}`, want: []pluginhost.Diagnostic{
			{Severity: "error", Summary: "Missing required attribute", Detail: `The attribute "text" is required, but no value was given.`, Attribute: "text"}}},
		{name: "unknown with suggestion", kind: "echo", config: `{"text":"x","cuont":1}`, want: []pluginhost.Diagnostic{
			{Severity: "error", Summary: "Unsupported attribute", Detail: `An attribute named "cuont" is not expected here. Did you mean "count"?`, Attribute: "cuont"}}},
		{name: "wrong types, all reported", kind: "echo", config: `{"text":1,"count":1.5,"tags":"a"}`, want: []pluginhost.Diagnostic{
			{Severity: "error", Summary: "Incorrect attribute value type", Detail: `attribute "text" must be a string, got 1`, Attribute: "text"},
			{Severity: "error", Summary: "Incorrect attribute value type", Detail: `attribute "count" must be a whole number in range for int, got 1.5`, Attribute: "count"},
			{Severity: "error", Summary: "Incorrect attribute value type", Detail: `attribute "tags" must be a list, got "a"`, Attribute: "tags"}}},
		{name: "nested", kind: "echo", config: `{"text":"x","items":[{"name":"a"},{"deep":true}]}`, want: []pluginhost.Diagnostic{
			{Severity: "error", Summary: "Missing required attribute", Detail: `The attribute "items[1].name" is required, but no value was given.`, Attribute: "items[1].name"}}},
		{name: "bad duration", kind: "echo", config: `{"text":"x","wait":"soon"}`, want: []pluginhost.Diagnostic{
			{Severity: "error", Summary: "Invalid duration", Detail: `attribute "wait": "soon" is not a duration; write it like "30s", "5m" or "1h30m"`, Attribute: "wait"}}},
		{name: "check", kind: "pick", config: `{"command":["a"],"script":"b"}`, want: []pluginhost.Diagnostic{
			{Severity: "error", Summary: "Invalid attribute value", Detail: "set exactly one of command or script", Attribute: "command"}}},
		{name: "check passes", kind: "pick", config: `{"script":"b"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Validate(guardCtx(t), tt.kind, json.RawMessage(tt.config))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("diagnostics:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	if _, err := p.Validate(guardCtx(t), "nope", json.RawMessage(`{}`)); err == nil || !strings.Contains(err.Error(), `no module kind "nope"`) {
		t.Errorf("unknown kind: err = %v", err)
	}
}

// A plugin that dies checking a config is reported with how it ended and
// what it last wrote to stderr, as a crash running a module is, not as
// the gRPC error of a cut connection (which named a socket); the next
// call starts it again.
func TestValidateWhenThePluginDies(t *testing.T) {
	p := start(t, testkitBin, pluginhost.Options{})
	check := func(t *testing.T, err error, what string) {
		t.Helper()
		if err == nil {
			t.Fatal("no error")
		}
		msg := err.Error()
		for _, want := range []string{`plugin "testkit"`, "died while answering " + what, "exit status 5", "the check is exiting"} {
			if !strings.Contains(msg, want) {
				t.Errorf("error lacks %q: %s", want, msg)
			}
		}
		if head, _, _ := strings.Cut(msg, "; the last"); strings.Contains(head, "rpc error") || strings.Contains(head, "unix") {
			t.Errorf("error quotes the connection's: %s", msg)
		}
	}
	_, err := p.Validate(guardCtx(t), "checkpanic", json.RawMessage(`{"message":"exit"}`))
	check(t, err, `Validate for kind "checkpanic"`)
	if _, err := p.Validate(guardCtx(t), "checkpanic", json.RawMessage(`{"message":"fine"}`)); err != nil {
		t.Fatalf("after the death: %v", err)
	}
	vs := p.ValidateMany(guardCtx(t), []pluginhost.Question{{Kind: "checkpanic", Config: json.RawMessage(`{"message":"fine"}`)}, {Kind: "checkpanic", Config: json.RawMessage(`{"message":"exit"}`)}})
	for _, v := range vs {
		check(t, v.Err, "ValidateMany for 2 configs")
	}
	if _, err := p.Validate(guardCtx(t), "checkpanic", json.RawMessage(`{"message":"fine"}`)); err != nil {
		t.Fatalf("after the second death: %v", err)
	}
}

// TestValidateMany: a batch gets, config by config, the verdict a
// Validate call gives, from an sdk plugin (ValidateMany) and from a
// plugin without ValidateMany (a Validate call per config).
func TestValidateMany(t *testing.T) {
	qs := []pluginhost.Question{
		{Kind: "echo", Config: json.RawMessage(`{"text":"x"}`)},
		{Kind: "echo", Config: json.RawMessage(`{}`)},
		{Kind: "pick", Config: json.RawMessage(`{"command":["a"],"script":"b"}`)},
		{Kind: "echo", Config: json.RawMessage(`{"text":1}`)},
	}
	p := start(t, testkitBin, pluginhost.Options{})
	got := p.ValidateMany(guardCtx(t), qs)
	if len(got) != len(qs) {
		t.Fatalf("%d verdicts for %d questions", len(got), len(qs))
	}
	for i, q := range qs {
		want, err := p.Validate(guardCtx(t), q.Kind, q.Config)
		if err != nil || got[i].Err != nil {
			t.Fatalf("question %d: Validate err %v, ValidateMany err %v", i, err, got[i].Err)
		}
		if fmt.Sprint(got[i].Diagnostics) != fmt.Sprint(want) {
			t.Errorf("question %d (%s): ValidateMany says %+v, Validate %+v", i, q.Config, got[i].Diagnostics, want)
		}
	}
	if len(got[0].Diagnostics) != 0 || len(got[1].Diagnostics) != 1 || len(got[2].Diagnostics) != 1 || len(got[3].Diagnostics) != 1 {
		t.Errorf("verdicts out of order: %+v", got)
	}
	// An unknown kind fails the batch, as it fails a Validate call.
	for _, v := range p.ValidateMany(guardCtx(t), []pluginhost.Question{qs[0], {Kind: "nope", Config: json.RawMessage(`{}`)}}) {
		if v.Err == nil || !strings.Contains(v.Err.Error(), `no module kind "nope"`) {
			t.Errorf("unknown kind in a batch: err = %v", v.Err)
		}
	}

	old := start(t, buildStock(t), pluginhost.Options{})
	for range 2 { // the second batch goes straight to Validate
		got := old.ValidateMany(guardCtx(t), []pluginhost.Question{{Kind: "x", Config: json.RawMessage(`{}`)}, {Kind: "x", Config: json.RawMessage(`{"a":1}`)}})
		if got[0].Err != nil || len(got[0].Diagnostics) != 0 {
			t.Errorf("empty config: %+v", got[0])
		}
		if got[1].Err != nil || len(got[1].Diagnostics) != 1 || got[1].Diagnostics[0].Detail != `{"a":1}` {
			t.Errorf("config a: %+v", got[1])
		}
	}
}

func TestExecuteEcho(t *testing.T) {
	p := start(t, testkitBin, pluginhost.Options{})
	cfg := `{"text":"hi","count":7,"ratio":0.5,"enabled":true,"tags":["a","b"],"env":{"K":"V"},"nested":{"name":"n","deep":true},"items":[{"name":"i"}],"extra":{"any":[1,"x"]},"raw":[true],"wait":"1m30s"}`
	resp, _, err := execute(t, p, pluginhost.Request{
		Module: "e[linux]", Config: json.RawMessage(cfg), Matrix: map[string]string{"target": "linux"},
		Attempt: 2, Instance: 3, RunID: "run-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"config":{"Text":"hi","Count":7,"Ratio":0.5,"Enabled":true,"Tags":["a","b"],"Env":{"K":"V"},"Nested":{"Name":"n","Deep":true},"Items":[{"Name":"i","Deep":false}],"Extra":{"any":[1,"x"]},"Raw":[true],"Wait":90000000000},"wait_ms":90000,"module":"e[linux]","matrix":{"target":"linux"},"target":"linux","attempt":2,"instance":3,"run_id":"run-1"}`
	if !resp.Succeeded || resp.Type != "testkit.echo/v1" || string(resp.Value) != want {
		t.Fatalf("resp = %+v\nvalue %s\nwant  %s", resp, resp.Value, want)
	}

	// A bad config at execution fails the module with kind "config".
	resp, _, err = execute(t, p, pluginhost.Request{Module: "e", Kind: "echo", Config: json.RawMessage(`{"text":"x","bogus":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Succeeded || resp.Error == nil || resp.Error.Kind != coordinator.ErrorKindConfig || !strings.Contains(resp.Error.Message, `"bogus"`) {
		t.Fatalf("bad config: resp = %+v %+v", resp, resp.Error)
	}
}

func TestExecuteLines(t *testing.T) {
	// A module logger's Debug lines show only when the host logs at
	// debug or trace itself.
	for _, level := range []hclog.Level{hclog.Warn, hclog.Debug} {
		t.Run(level.String(), func(t *testing.T) {
			logger := hclog.New(&hclog.LoggerOptions{Name: "test", Level: level, Output: newTestWriter(t)})
			p := start(t, testkitBin, pluginhost.Options{Logger: logger})
			resp, lines, err := execute(t, p, pluginhost.Request{Module: "l", Kind: "lines", Config: json.RawMessage(`{"count":50}`)})
			if err != nil {
				t.Fatal(err)
			}
			if !resp.Succeeded || string(resp.Value) != `{"count":50}` {
				t.Fatalf("resp = %+v", resp)
			}
			var want []pluginhost.Line
			for i := 0; i < 50; i++ {
				want = append(want,
					pluginhost.Line{Stream: "stdout", Text: fmt.Sprintf("out %d", i)},
					pluginhost.Line{Stream: "stderr", Text: fmt.Sprintf("err %d", i)},
					pluginhost.Line{Stream: "log", Text: fmt.Sprintf("log %d", i)})
			}
			if level == hclog.Debug {
				want = append(want, pluginhost.Line{Stream: "log", Text: "[DEBUG] l: detail: count=50"})
			}
			want = append(want, pluginhost.Line{Stream: "log", Text: "[INFO]  l: done: count=50"}, pluginhost.Line{Stream: "stdout", Text: "unterminated"})
			if fmt.Sprint(lines) != fmt.Sprint(want) {
				t.Fatalf("lines:\n got %v\nwant %v", lines, want)
			}
		})
	}
}

// TestExecuteManyLines: thousands of lines, which the plugin sends in
// batches (the host asks for them in Describe), arrive whole and in order,
// over the session stream and over Execute calls of their own.
func TestExecuteManyLines(t *testing.T) {
	const count = 2000 // 6,000 lines and more: several full batches
	for _, sessions := range []string{"on", "off"} {
		t.Run("sessions "+sessions, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), deadlockGuard)
			defer cancel()
			p, err := pluginhost.Start(ctx, pluginhost.Spec{Name: "testkit", Path: testkitBin, Env: []string{"MODPIPE_PLUGIN_SESSIONS=" + sessions}}, pluginhost.Options{Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			resp, lines, err := execute(t, p, pluginhost.Request{Module: "l", Kind: "lines", Config: json.RawMessage(fmt.Sprintf(`{"count":%d}`, count))})
			if err != nil || !resp.Succeeded {
				t.Fatalf("resp = %+v, err %v", resp, err)
			}
			next := map[string]int{}
			for _, l := range lines {
				prefix := map[string]string{"stdout": "out", "stderr": "err", "log": "log"}[l.Stream]
				if n := next[l.Stream]; n < count {
					if want := fmt.Sprintf("%s %d", prefix, n); l.Text != want {
						t.Fatalf("%s line %q, want %q: lost or out of order", l.Stream, l.Text, want)
					}
					next[l.Stream] = n + 1
				}
			}
			if next["stdout"] != count || next["stderr"] != count || next["log"] != count {
				t.Errorf("lines per stream %v, want %d each", next, count)
			}
		})
	}
}

func TestFailureCarriesValueAndTail(t *testing.T) {
	p := start(t, testkitBin, pluginhost.Options{})
	tests := []struct {
		name, config, wantTail string
	}{
		{"explicit tail", `{"message":"boom","tail":"line 1\nline 2"}`, "line 1\nline 2"},
		{"stderr tail", `{"message":"boom"}`, "something went wrong"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _, err := execute(t, p, pluginhost.Request{Module: "f", Kind: "fail", Config: json.RawMessage(tt.config)})
			if err != nil {
				t.Fatal(err)
			}
			want := coordinator.Error{Message: "boom", Kind: coordinator.ErrorKindModule, Tail: tt.wantTail}
			if resp.Succeeded || resp.Error == nil || *resp.Error != want || string(resp.Value) != `{"exit_code":2}` || resp.Type != "testkit.fail/v1" {
				t.Fatalf("resp = %+v error %+v value %s", resp, resp.Error, resp.Value)
			}
		})
	}
}

func TestUnencodableValue(t *testing.T) {
	p := start(t, testkitBin, pluginhost.Options{})
	resp, _, err := execute(t, p, pluginhost.Request{Module: "b", Kind: "badvalue", Config: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Succeeded || resp.Error == nil || resp.Error.Kind != coordinator.ErrorKindEncoding || !strings.Contains(resp.Error.Message, "NaN") {
		t.Fatalf("resp = %+v error %+v", resp, resp.Error)
	}
}

func TestBigValueRoundTrip(t *testing.T) {
	p := start(t, testkitBin, pluginhost.Options{})
	for _, size := range []int{1, 5 << 20, 32 << 20} { // beyond gRPC's 4 MiB default
		resp, _, err := execute(t, p, pluginhost.Request{Module: "big", Kind: "big", Config: json.RawMessage(fmt.Sprintf(`{"bytes":%d}`, size))})
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		var v struct{ Data string }
		if err := json.Unmarshal(resp.Value, &v); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if len(v.Data) != size || !resp.Succeeded {
			t.Fatalf("size %d: got %d bytes, succeeded %v", size, len(v.Data), resp.Succeeded)
		}
	}
}

func TestConcurrentExecutesShareOneProcess(t *testing.T) {
	p := start(t, testkitBin, pluginhost.Options{})
	const n = 16
	var wg sync.WaitGroup
	pids := make([]int, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := p.Execute(guardCtx(t), pluginhost.Request{Module: fmt.Sprintf("s%d", i), Kind: "sleep", Config: json.RawMessage(`{"duration":"50ms"}`)}, nil)
			if err != nil {
				errs[i] = err
				return
			}
			var r struct {
				PID    int    `json:"pid"`
				Module string `json:"module"`
			}
			if err := json.Unmarshal(resp.Value, &r); err != nil || r.Module != fmt.Sprintf("s%d", i) {
				errs[i] = fmt.Errorf("value %s: %v", resp.Value, err)
			}
			pids[i] = r.PID
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("execute %d: %v", i, err)
		}
	}
	for i, pid := range pids {
		if pid != p.PID() {
			t.Errorf("execute %d ran in pid %d, plugin pid is %d", i, pid, p.PID())
		}
	}
	if p.Starts() != 1 {
		t.Errorf("started %d processes, want 1", p.Starts())
	}
}

func TestResultThroughBroker(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	results := func(ctx context.Context, caller, dep string) (*coordinator.Envelope, error) {
		mu.Lock()
		calls = append(calls, caller+"->"+dep)
		mu.Unlock()
		switch dep {
		case "build":
			return &coordinator.Envelope{Module: "build", Status: coordinator.StatusSucceeded, Type: "x/v1", Value: json.RawMessage(`{"sha":"abc","n":3}`), Attempts: 1, Plugin: "x"}, nil
		case "broken":
			return &coordinator.Envelope{Module: "broken", Status: coordinator.StatusFailed, Error: &coordinator.Error{Message: "exit 1", Kind: "module"}}, nil
		case "later":
			return nil, fmt.Errorf("result of later: %w", pluginhost.ErrNotFinished)
		}
		return nil, fmt.Errorf("unexpected %s", dep)
	}
	p := start(t, testkitBin, pluginhost.Options{Results: results})
	tests := []struct {
		name, config string
		deps         []string
		wantValue    string
		wantErr      string
	}{
		{"typed value", `{"module":"build"}`, []string{"build"}, `{"value":{"n":3,"sha":"abc"}}`, ""},
		{"raw envelope", `{"module":"broken","raw":true}`, []string{"broken"}, "", ""},
		{"failed dependency", `{"module":"broken"}`, []string{"broken"}, "", `result of "broken": dependency did not succeed (failed: exit 1)`},
		{"not finished", `{"module":"later"}`, []string{"later"}, "", "dependency has not finished"},
		{"not a dependency", `{"module":"build"}`, []string{"other"}, "", "not a dependency of this module"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _, err := execute(t, p, pluginhost.Request{Module: "use", Kind: "dep", Config: json.RawMessage(tt.config), Deps: tt.deps})
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" {
				if resp.Succeeded || resp.Error == nil || !strings.Contains(resp.Error.Message, tt.wantErr) {
					t.Fatalf("resp = %+v error %+v, want error containing %q", resp, resp.Error, tt.wantErr)
				}
				return
			}
			if !resp.Succeeded {
				t.Fatalf("failed: %+v", resp.Error)
			}
			if tt.wantValue != "" && string(resp.Value) != tt.wantValue {
				t.Fatalf("value %s, want %s", resp.Value, tt.wantValue)
			}
			if tt.wantValue == "" {
				var v struct{ Envelope coordinator.Envelope }
				if err := json.Unmarshal(resp.Value, &v); err != nil {
					t.Fatal(err)
				}
				if v.Envelope.Module != "broken" || v.Envelope.Status != coordinator.StatusFailed || v.Envelope.Error == nil || v.Envelope.Error.Message != "exit 1" {
					t.Fatalf("envelope %+v", v.Envelope)
				}
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	// "not a dependency" is refused in the plugin before it reaches the host.
	want := []string{"use->build", "use->broken", "use->broken", "use->later"}
	if fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Errorf("ResultFunc calls = %v, want %v", calls, want)
	}
	if p.Starts() != 1 {
		t.Errorf("started %d processes, want 1", p.Starts())
	}
}

func TestCancellation(t *testing.T) {
	p := start(t, testkitBin, pluginhost.Options{})
	pid := p.PID()
	ctx, cancel := context.WithCancel(guardCtx(t))
	lines := make(chan pluginhost.Line, 10)
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err = p.Execute(ctx, pluginhost.Request{Module: "s", Kind: "sleep", Config: json.RawMessage(`{"duration":"1h"}`)}, func(l pluginhost.Line) { lines <- l })
	}()
	<-lines // the module is running
	cancel()
	<-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// The line the module wrote while it stopped was not lost.
	close(lines)
	var got []string
	for l := range lines {
		got = append(got, l.Text)
	}
	if !slices.Contains(got, "cleaning up after context canceled") {
		t.Errorf("lines after the cancellation: %q, want the module's cleanup line", got)
	}
	// The plugin stopped the module itself: same process, still serving.
	resp, _, err := execute(t, p, pluginhost.Request{Module: "e", Config: json.RawMessage(`{"text":"x"}`)})
	if err != nil || !resp.Succeeded {
		t.Fatalf("after cancel: %+v %v", resp, err)
	}
	if p.PID() != pid || p.Starts() != 1 {
		t.Fatalf("plugin restarted after a clean cancellation: pid %d -> %d, starts %d", pid, p.PID(), p.Starts())
	}

	// A deadline is reported as one, so callers can tell a timeout apart.
	tctx, tcancel := context.WithTimeout(guardCtx(t), 100*time.Millisecond)
	defer tcancel()
	_, err = p.Execute(tctx, pluginhost.Request{Module: "s", Kind: "sleep", Config: json.RawMessage(`{"duration":"1h"}`)}, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
}

func TestHungPluginIsKilledAndRestarted(t *testing.T) {
	p := start(t, testkitBin, pluginhost.Options{KillGrace: 200 * time.Millisecond})
	pid := p.PID()
	// Cancel once the module is surely running: it wrote its first line.
	ctx, cancel := context.WithCancel(guardCtx(t))
	defer cancel()
	_, err := p.Execute(ctx, pluginhost.Request{Module: "h", Kind: "hang", Config: json.RawMessage(`{}`)},
		func(pluginhost.Line) { cancel() })
	if !errors.Is(err, context.Canceled) || !errors.Is(err, pluginhost.ErrKilledAsHung) {
		t.Fatalf("err = %v, want context.Canceled and ErrKilledAsHung", err)
	}
	if processAlive(pid) {
		t.Fatalf("hung plugin process %d still alive", pid)
	}
	resp, _, err := execute(t, p, pluginhost.Request{Module: "e", Config: json.RawMessage(`{"text":"x"}`)})
	if err != nil || !resp.Succeeded {
		t.Fatalf("after kill: %+v %v", resp, err)
	}
	if p.Starts() != 2 || p.PID() == pid {
		t.Fatalf("starts = %d, pid %d -> %d; want a new process", p.Starts(), pid, p.PID())
	}
}

func TestRecoveredPanicFailsOnlyTheModule(t *testing.T) {
	p := start(t, testkitBin, pluginhost.Options{})
	resp, _, err := execute(t, p, pluginhost.Request{Module: "p", Kind: "panic", Config: json.RawMessage(`{"message":"kaboom"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Succeeded || resp.Error == nil || resp.Error.Kind != coordinator.ErrorKindCrash ||
		!strings.Contains(resp.Error.Message, "kaboom") || !strings.Contains(resp.Error.Tail, "panic: kaboom") || !strings.Contains(resp.Error.Tail, "main.panicKind") {
		t.Fatalf("resp = %+v error %+v", resp, resp.Error)
	}
	if p.Starts() != 1 {
		t.Fatalf("a recovered panic restarted the plugin")
	}
}

// A plugin's own stdout after the handshake belongs to no module; what it
// prints there is logged as a warning, shown at the host's default level.
func TestPluginStdoutIsAWarning(t *testing.T) {
	var buf syncBuf
	p := start(t, testkitBin, pluginhost.Options{Logger: hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Warn, Output: &buf})})
	resp, _, err := execute(t, p, pluginhost.Request{Module: "p", Kind: "println", Config: json.RawMessage(`{"message":"hello from fmt.Println"}`)})
	if err != nil || !resp.Succeeded {
		t.Fatalf("%+v %v", resp, err)
	}
	// The line travels on go-plugin's stdio stream, apart from the result.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), "hello from fmt.Println") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := buf.String(); !strings.Contains(got, "[WARN]") || !strings.Contains(got, "plugin wrote to its stdout") || !strings.Contains(got, `line="hello from fmt.Println"`) {
		t.Fatalf("host log at warn level:\n%s", got)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A plugin that completes its handshake and then never answers fails its
// start after the answer timeout, with a message that says so, and its
// process is gone.
func TestSilentPluginFailsItsStart(t *testing.T) {
	_, err := pluginhost.Start(guardCtx(t), pluginhost.Spec{Name: "silent", Path: silentBin}, pluginhost.Options{Logger: testLogger(t), AnswerTimeout: 300 * time.Millisecond})
	var se *pluginhost.StartError
	if !errors.As(err, &se) || se.Reason != pluginhost.ReasonDescribe || !strings.Contains(err.Error(), "did not answer Describe within 300ms") || !strings.Contains(err.Error(), silentBin) {
		t.Fatalf("err = %v; want a StartError saying Describe went unanswered", err)
	}
	deadline := time.Now().Add(deadlockGuard)
	for pids := proctest.Children(silentBin); len(pids) > 0; pids = proctest.Children(silentBin) {
		if time.Now().After(deadline) {
			t.Fatalf("silent plugin processes %v outlive the failed start", pids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A panic in a kind's sdk.Check is the plugin's bug: validate says so at
// the module, and a module run with that config fails alone (kind crash,
// the stack in its tail). The plugin process lives on either way.
func TestPanickingCheckFailsOnlyTheModule(t *testing.T) {
	p := start(t, testkitBin, pluginhost.Options{})
	diags, err := p.Validate(guardCtx(t), "checkpanic", json.RawMessage(`{"message":"boom"}`))
	if err != nil || len(diags) != 1 || diags[0].Severity != "error" || !strings.Contains(diags[0].Detail, "panicked: assignment to entry in nil map") {
		t.Fatalf("validate: %+v %v; want one error saying the check panicked", diags, err)
	}
	resp, _, err := execute(t, p, pluginhost.Request{Module: "c", Kind: "checkpanic", Config: json.RawMessage(`{"message":"boom"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Succeeded || resp.Error == nil || resp.Error.Kind != coordinator.ErrorKindCrash ||
		!strings.Contains(resp.Error.Message, `module "c"`) || !strings.Contains(resp.Error.Tail, "main.checkPanics") {
		t.Fatalf("resp = %+v error %+v", resp, resp.Error)
	}
	resp, _, err = execute(t, p, pluginhost.Request{Module: "d", Kind: "checkpanic", Config: json.RawMessage(`{"message":"fine"}`)})
	if err != nil || !resp.Succeeded {
		t.Fatalf("a good config after the panics: %+v %v", resp, err)
	}
	if p.Starts() != 1 {
		t.Fatalf("a panicking check restarted the plugin (%d starts)", p.Starts())
	}
}

func TestCrashThenRestart(t *testing.T) {
	tests := []struct {
		name, kind, config string
		wantStatus         string
		wantTail           []string
	}{
		{"goroutine panic", "crash", `{"message":"kaboom on a goroutine"}`, "exit status 2", []string{"panic: kaboom on a goroutine", "goroutine "}},
		{"os.Exit", "exit", `{"code":3,"message":"fatal: disk on fire"}`, "exit status 3", []string{"fatal: disk on fire"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, testkitBin, pluginhost.Options{})
			pid := p.PID()
			_, _, err := execute(t, p, pluginhost.Request{Module: "m", Kind: tt.kind, Config: json.RawMessage(tt.config)})
			var crash *pluginhost.CrashError
			if !errors.As(err, &crash) {
				t.Fatalf("err = %v (%T), want *CrashError", err, err)
			}
			if crash.Module != "m" || crash.ExitStatus != tt.wantStatus {
				t.Errorf("crash = %+v", crash)
			}
			for _, w := range tt.wantTail {
				if !strings.Contains(crash.StderrTail, w) {
					t.Errorf("tail lacks %q:\n%s", w, crash.StderrTail)
				}
			}
			if !strings.Contains(crash.Error(), `crashed while running module "m"`) {
				t.Errorf("message: %v", crash)
			}
			if processAlive(pid) {
				t.Errorf("crashed process %d still alive", pid)
			}
			resp, _, err := execute(t, p, pluginhost.Request{Module: "e", Config: json.RawMessage(`{"text":"x"}`)})
			if err != nil || !resp.Succeeded {
				t.Fatalf("after crash: %+v %v", resp, err)
			}
			if p.Starts() != 2 || p.PID() == pid {
				t.Fatalf("starts = %d, pid %d -> %d; want one new process", p.Starts(), pid, p.PID())
			}
		})
	}
}

func TestCrashRestartsOnceForConcurrentCallers(t *testing.T) {
	p := start(t, testkitBin, pluginhost.Options{})
	// Modules sleeping in the process when it crashes all get CrashError.
	const n = 4
	var wg sync.WaitGroup
	started := make(chan struct{}, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = p.Execute(guardCtx(t), pluginhost.Request{Module: fmt.Sprintf("s%d", i), Kind: "sleep", Config: json.RawMessage(`{"duration":"1h"}`)},
				func(pluginhost.Line) { started <- struct{}{} })
		}()
	}
	for i := 0; i < n; i++ {
		<-started
	}
	_, _, err := execute(t, p, pluginhost.Request{Module: "c", Kind: "crash", Config: json.RawMessage(`{"message":"x"}`)})
	var crash *pluginhost.CrashError
	if !errors.As(err, &crash) {
		t.Fatalf("crash: %v", err)
	}
	wg.Wait()
	// Nothing says which module brought the process down: every error
	// names them all.
	all := []string{"c", "s0", "s1", "s2", "s3"}
	for i, err := range append(errs, err) {
		if !errors.As(err, &crash) {
			t.Errorf("call %d: err = %v, want *CrashError", i, err)
			continue
		}
		if !slices.Equal(crash.Running, all) {
			t.Errorf("%s: Running = %q, want %q", crash.Module, crash.Running, all)
		}
		if msg := crash.Error(); !strings.Contains(msg, fmt.Sprintf("crashed while running module %q and 4 others", crash.Module)) || !strings.Contains(msg, "any of them may have caused it") {
			t.Errorf("%s: message %q does not name the other modules", crash.Module, msg)
		}
	}
	// Then many callers at once: exactly one new process.
	errs = make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = p.Execute(guardCtx(t), pluginhost.Request{Module: "e", Config: json.RawMessage(`{"text":"x"}`)}, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("after crash %d: %v", i, err)
		}
	}
	if p.Starts() != 2 {
		t.Fatalf("starts = %d, want 2", p.Starts())
	}
}

func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "modpipe-plugin-missing")
	sum := sha256.New()
	b, err := os.ReadFile(helloBin)
	if err != nil {
		t.Fatal(err)
	}
	sum.Write(b)
	good := hex.EncodeToString(sum.Sum(nil))
	bad := strings.Repeat("0", 64)
	// A plugin that gives up before its handshake, saying why on stderr.
	quits := filepath.Join(dir, "modpipe-plugin-quits")
	if err := os.WriteFile(quits, []byte("#!/bin/sh\necho 'startup: MY_TOKEN is not set' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// One whose first line on stdout has the handshake's shape, not its
	// content: printed before the handshake, or merged into it.
	// One whose handshake line is whole but its certificate padded, a
	// mistake of plugins written in other languages.
	padded := filepath.Join(dir, "modpipe-plugin-padded")
	if err := os.WriteFile(padded, []byte("#!/bin/sh\necho '1|1|unix|/tmp/nowhere.sock|grpc|"+strings.Repeat("QUJD", 20)+"=='\nsleep 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	garbled := filepath.Join(dir, "modpipe-plugin-garbled")
	if err := os.WriteFile(garbled, []byte("#!/bin/sh\necho 'garbage garbage 1|1|tcp|x'\necho 'loading config' >&2\nsleep 0.2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		spec   pluginhost.Spec
		reason pluginhost.StartReason
		want   []string
	}{
		{"missing binary", pluginhost.Spec{Name: "missing", Path: missing}, pluginhost.ReasonNotFound, []string{missing, "no plugin binary at this path"}},
		{"directory", pluginhost.Spec{Name: "dir", Path: dir}, pluginhost.ReasonNotFound, []string{dir, "directory"}},
		{"bad checksum", pluginhost.Spec{Name: "hello", Path: helloBin, SHA256: bad}, pluginhost.ReasonChecksum, []string{helloBin, "expected sha256 " + bad, "found sha256 " + good}},
		{"not a plugin", pluginhost.Spec{Name: "nap", Path: notAPluginBin}, pluginhost.ReasonHandshake, []string{notAPluginBin, "not a modpipe plugin", `"hello, I am just a program"`}},
		{"exits at start", pluginhost.Spec{Name: "quits", Path: quits}, pluginhost.ReasonHandshake, []string{quits, "nothing on stdout", "exit status 3", "its stderr ends with:\n    startup: MY_TOKEN is not set"}},
		{"garbled handshake", pluginhost.Spec{Name: "garbled", Path: garbled}, pluginhost.ReasonHandshake,
			[]string{garbled, "not a valid handshake", "must not print to stdout before the handshake", "a malformed handshake line (error parsing core protocol version"}},
		{"padded certificate", pluginhost.Spec{Name: "padded", Path: padded}, pluginhost.ReasonHandshake,
			[]string{padded, "the certificate in its handshake line could not be read", "without padding"}},
		{"wrong protocol version", pluginhost.Spec{Name: "future", Path: wrongVerBin}, pluginhost.ReasonProtocolVersion, []string{wrongVerBin, "expected protocol version 1, found protocol version 99"}},
		{"no result type", pluginhost.Spec{Name: "st", Path: statusBin, Env: []string{"STATUSPLUGIN_DESCRIBE=no-result-type"}}, pluginhost.ReasonDescribe,
			[]string{`kind "x" declares no result_type`}},
		{"duplicate attribute", pluginhost.Spec{Name: "st", Path: statusBin, Env: []string{"STATUSPLUGIN_DESCRIBE=duplicate-attribute"}}, pluginhost.ReasonDescribe,
			[]string{`kind "x" declares an empty or duplicate attribute name "mode"`}},
		{"type without its quotes", pluginhost.Spec{Name: "st", Path: statusBin, Env: []string{"STATUSPLUGIN_DESCRIBE=bare-type"}}, pluginhost.ReasonDescribe,
			[]string{`attribute "mode" with type string, which is not a cty JSON type (the type is JSON text, quotes included: "\"string\"")`}},
		{"result schema not a type", pluginhost.Spec{Name: "st", Path: statusBin, Env: []string{"STATUSPLUGIN_DESCRIBE=bad-result-schema"}}, pluginhost.ReasonDescribe,
			[]string{`kind "x" declares a result_schema {"mode":"string"}, which is not a cty JSON type`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := pluginhost.Start(guardCtx(t), tt.spec, pluginhost.Options{Logger: testLogger(t)})
			if err == nil {
				p.Close()
				t.Fatal("started")
			}
			var se *pluginhost.StartError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v (%T), want *StartError", err, err)
			}
			if se.Reason != tt.reason || se.Plugin != tt.spec.Name || se.Path != tt.spec.Path {
				t.Errorf("StartError = %+v", se)
			}
			for _, w := range append(tt.want, fmt.Sprintf("plugin %q", tt.spec.Name)) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message lacks %q: %v", w, err)
				}
			}
		})
	}

	// The right checksum starts.
	p, err := pluginhost.Start(guardCtx(t), pluginhost.Spec{Name: "hello", Path: helloBin, SHA256: good}, pluginhost.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("pinned with the right sum: %v", err)
	}
	p.Close()
}

func TestClose(t *testing.T) {
	p := start(t, testkitBin, pluginhost.Options{})
	pid := p.PID()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if processAlive(pid) {
		t.Fatalf("process %d alive after Close", pid)
	}
	_, _, err := execute(t, p, pluginhost.Request{Module: "e", Config: json.RawMessage(`{"text":"x"}`)})
	if !errors.Is(err, pluginhost.ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

func TestEnvArgsAndMTLS(t *testing.T) {
	t.Setenv("MODPIPE_TEST_VAR", "from host")
	t.Setenv("MODPIPE_TEST_HOST_ONLY", "inherited")
	spec := pluginhost.Spec{Name: "testkit", Path: testkitBin, Args: []string{"-a", "b c"}, Env: []string{"MODPIPE_TEST_VAR=from spec"}}
	p, err := pluginhost.Start(guardCtx(t), spec, pluginhost.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	tests := []struct{ getenv, want string }{
		{"MODPIPE_TEST_VAR", "from spec"},
		{"MODPIPE_TEST_HOST_ONLY", "inherited"},
	}
	for _, tt := range tests {
		resp, _, err := execute(t, p, pluginhost.Request{Module: "p", Kind: "proc", Config: json.RawMessage(fmt.Sprintf(`{"getenv":%q}`, tt.getenv))})
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Args     []string `json:"args"`
			Env      string   `json:"env"`
			AutoMTLS bool     `json:"auto_mtls"`
		}
		if err := json.Unmarshal(resp.Value, &got); err != nil {
			t.Fatal(err)
		}
		if got.Env != tt.want || fmt.Sprint(got.Args) != "[-a b c]" || !got.AutoMTLS {
			t.Errorf("%s: got %+v, want env %q, args [-a b c], AutoMTLS on", tt.getenv, got, tt.want)
		}
	}
}

func TestCloseDuringExecute(t *testing.T) {
	p := start(t, testkitBin, pluginhost.Options{})
	started := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		_, err := p.Execute(guardCtx(t), pluginhost.Request{Module: "s", Kind: "sleep", Config: json.RawMessage(`{"duration":"1h"}`)},
			func(pluginhost.Line) { started <- struct{}{} })
		done <- err
	}()
	<-started
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, pluginhost.ErrClosed) {
		t.Fatalf("in-flight Execute after Close: %v, want ErrClosed", err)
	}
}

// TestResultLongAfterStart reads a dependency's result later than
// go-plugin's broker keeps an undialled connection offer (5s), in a
// restarted process too: the plugin must have dialled the host at Describe.
func TestResultLongAfterStart(t *testing.T) {
	results := func(_ context.Context, _, dep string) (*coordinator.Envelope, error) {
		return &coordinator.Envelope{Module: dep, Status: coordinator.StatusSucceeded, Value: json.RawMessage(`{"ok":true}`)}, nil
	}
	p := start(t, testkitBin, pluginhost.Options{Results: results})
	for _, round := range []string{"first process", "restarted process"} {
		resp, _, err := execute(t, p, pluginhost.Request{Module: "u", Kind: "dep", Config: json.RawMessage(`{"module":"d","after":"6s"}`), Deps: []string{"d"}})
		if err != nil || !resp.Succeeded || string(resp.Value) != `{"value":{"ok":true}}` {
			t.Fatalf("%s: %+v %+v %v", round, resp, resp.Error, err)
		}
		var crash *pluginhost.CrashError
		if _, _, err := execute(t, p, pluginhost.Request{Module: "c", Kind: "crash", Config: json.RawMessage(`{"message":"x"}`)}); !errors.As(err, &crash) {
			t.Fatalf("crash: %v", err)
		}
	}
}

// TestExecuteWithoutSessions runs modules in a plugin that does not offer
// the Session stream (as plugins built without the Go sdk may not): the
// host falls back to an Execute call per module, with the same lines,
// results and cancellation.
func TestExecuteWithoutSessions(t *testing.T) {
	ctx := guardCtx(t)
	p, err := pluginhost.Start(ctx, pluginhost.Spec{Name: "testkit", Path: testkitBin, Env: []string{"MODPIPE_PLUGIN_SESSIONS=off"}}, pluginhost.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })

	resp, lines, err := execute(t, p, pluginhost.Request{Module: "l", Kind: "lines", Config: json.RawMessage(`{"count":2}`)})
	if err != nil || !resp.Succeeded || string(resp.Value) != `{"count":2}` {
		t.Fatalf("lines: resp = %+v, err = %v", resp, err)
	}
	// 2 x 3 lines, the logger's Info line (its Debug line only shows at
	// the host's debug level, which testLogger is) and "unterminated".
	if len(lines) != 9 || lines[0] != (pluginhost.Line{Stream: "stdout", Text: "out 0"}) {
		t.Fatalf("lines = %v", lines)
	}

	cctx, cancel := context.WithCancel(ctx)
	started := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		_, err := p.Execute(cctx, pluginhost.Request{Module: "s", Kind: "sleep", Config: json.RawMessage(`{"duration":"1h"}`)}, func(pluginhost.Line) {
			select {
			case started <- struct{}{}:
			default:
			}
		})
		done <- err
	}()
	<-started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if p.Starts() != 1 {
		t.Fatalf("plugin restarted after a clean cancellation: starts %d", p.Starts())
	}
}

// A module running beside one that hangs its plugin goes with the plugin
// when the host kills it; its error says it was not its own doing and
// names the hung module, rather than calling it a crash.
func TestHungPluginNamesTheHungModuleToOthers(t *testing.T) {
	p := start(t, testkitBin, pluginhost.Options{KillGrace: 200 * time.Millisecond})
	started := make(chan struct{}, 1)
	var bystander error
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, bystander = p.Execute(guardCtx(t), pluginhost.Request{Module: "bystander", Kind: "sleep", Config: json.RawMessage(`{"duration":"1h"}`)},
			func(pluginhost.Line) {
				select {
				case started <- struct{}{}:
				default:
				}
			})
	}()
	<-started
	ctx, cancel := context.WithCancel(guardCtx(t))
	defer cancel()
	if _, err := p.Execute(ctx, pluginhost.Request{Module: "h", Kind: "hang", Config: json.RawMessage(`{}`)}, func(pluginhost.Line) { cancel() }); !errors.Is(err, context.Canceled) {
		t.Fatalf("hung module: err = %v, want context.Canceled", err)
	}
	<-done
	var crash *pluginhost.CrashError
	if !errors.As(bystander, &crash) {
		t.Fatalf("bystander: err = %v, want a *CrashError", bystander)
	}
	if !strings.Contains(crash.KilledAsHung, `cancelled module "h"`) || !strings.Contains(bystander.Error(), "killed as hung") ||
		strings.Contains(bystander.Error(), "crashed") || !strings.Contains(bystander.Error(), `module "bystander"`) {
		t.Fatalf("bystander's error does not say what happened: %v (KilledAsHung %q)", bystander, crash.KilledAsHung)
	}
	// A crash of the plugin's own is still a crash.
	_, _, err := execute(t, p, pluginhost.Request{Module: "m", Kind: "exit", Config: json.RawMessage(`{"code":3,"message":"boom"}`)})
	if !errors.As(err, &crash) || crash.KilledAsHung != "" || !strings.Contains(err.Error(), "crashed") {
		t.Fatalf("a real crash after a restart: %v", err)
	}
}

// The sdk says whether a module ended before it was asked to stop, so a
// failure (or success) that crosses a cancellation keeps its own outcome.
func TestFinishedUncancelled(t *testing.T) {
	p := start(t, testkitBin, pluginhost.Options{})
	resp, _, err := execute(t, p, pluginhost.Request{Module: "f", Kind: "fail", Config: json.RawMessage(`{"message":"boom"}`)})
	if err != nil || resp.Succeeded || !resp.FinishedUncancelled {
		t.Errorf("a failure of its own: resp = %+v, err = %v; want FinishedUncancelled", resp, err)
	}
	resp, _, err = execute(t, p, pluginhost.Request{Module: "e", Config: json.RawMessage(`{"text":"x"}`)})
	if err != nil || !resp.Succeeded || !resp.FinishedUncancelled {
		t.Errorf("a success: resp = %+v, err = %v; want FinishedUncancelled", resp, err)
	}
	resp, _, err = execute(t, p, pluginhost.Request{Module: "c", Config: json.RawMessage(`{"bogus":1}`)})
	if err != nil || resp.Succeeded || !resp.FinishedUncancelled {
		t.Errorf("a refused config: resp = %+v, err = %v; want FinishedUncancelled", resp, err)
	}
	// Stopped by the cancellation: the cancellation is the outcome.
	ctx, cancel := context.WithCancel(guardCtx(t))
	lines := make(chan pluginhost.Line, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err = p.Execute(ctx, pluginhost.Request{Module: "s", Kind: "sleep", Config: json.RawMessage(`{"duration":"1h"}`)}, func(l pluginhost.Line) { lines <- l })
	}()
	<-lines
	cancel()
	<-done
	if !errors.Is(err, context.Canceled) || resp.FinishedUncancelled {
		t.Errorf("a cancelled module: resp = %+v, err = %v; want context.Canceled", resp, err)
	}
}

// A live plugin that ends a call with a status a broken connection also
// gives (Internal, Unavailable) fails that module alone, with the
// plugin's own message: the process is not taken for dead, so neither
// waits to be killed nor takes the module running beside it down.
func TestStatusFromALivePluginFailsOnlyItsCall(t *testing.T) {
	for _, tc := range []struct{ mode, msg string }{
		{"internal", "exploded on purpose"},
		{"unavailable", "not in the mood"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			p := start(t, statusBin, pluginhost.Options{})
			pid := p.PID()
			type outcome struct {
				resp pluginhost.Response
				err  error
			}
			beside := make(chan outcome, 1)
			go func() {
				resp, err := p.Execute(guardCtx(t), pluginhost.Request{Module: "beside", Kind: "x", Config: json.RawMessage(`{"mode":"sleep"}`)}, nil)
				beside <- outcome{resp, err}
			}()
			_, _, err := execute(t, p, pluginhost.Request{Module: "bad", Kind: "x", Config: json.RawMessage(`{"mode":"` + tc.mode + `"}`)})
			var perr *pluginhost.ProtocolError
			if !errors.As(err, &perr) || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), `"bad"`) {
				t.Fatalf("bad: error %v; want a protocol error with the plugin's message %q", err, tc.msg)
			}
			if o := <-beside; o.err != nil || !o.resp.Succeeded {
				t.Errorf("the module beside it: %+v %v; want succeeded", o.resp, o.err)
			}
			if p.PID() != pid {
				t.Errorf("the plugin was restarted (pid %d, then %d); it never died", pid, p.PID())
			}
		})
	}
}

// A plugin without go-plugin's stdio stream (any plugin not in Go) that
// prints to its own stdout after the handshake gets the same warning as
// a Go plugin's fmt.Println: nothing it prints vanishes.
func TestRawStdoutAfterTheHandshakeIsAWarning(t *testing.T) {
	var buf syncBuf
	p := start(t, statusBin, pluginhost.Options{Logger: hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Warn, Output: &buf})})
	resp, _, err := execute(t, p, pluginhost.Request{Module: "p", Kind: "x", Config: json.RawMessage(`{"mode":"stdout"}`)})
	if err != nil || !resp.Succeeded {
		t.Fatalf("%+v %v", resp, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), "own stdout") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := buf.String(); !strings.Contains(got, "plugin wrote to its stdout") || !strings.Contains(got, `line="hello from the process's own stdout"`) {
		t.Fatalf("host log at warn level:\n%s", got)
	}
}

// What a plugin writes to its stderr becomes the host's log, at the
// level a go-hclog JSON line gives: with a timestamp of any RFC 3339
// shape (JavaScript's has 3 fractional digits), and without taking the
// host down on a line whose fields have unexpected types.
func TestPluginLogLines(t *testing.T) {
	var buf syncBuf
	p := start(t, statusBin, pluginhost.Options{Logger: hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Info, Output: &buf})})
	for _, line := range []string{
		`{"@level":"warn","@message":"three digits","@timestamp":"2026-01-02T15:04:05.123Z","n":1}`,
		`{"@level":"error","@message":"six digits","@timestamp":"2026-01-02T15:04:05.123456+00:00"}`,
		`{"@level":"info","@message":5,"@timestamp":7}`,
		`{"@level":["warn"],"@message":"odd level"}`,
		`{"@level":"warning","@message":"a synonym","@timestamp":"2026-01-02T15:04:05+01:00"}`,
		`[WARN] a plain warning`,
		`plain text at debug`,
	} {
		cfg, _ := json.Marshal(map[string]string{"mode": "stderr", "line": line})
		resp, _, err := execute(t, p, pluginhost.Request{Module: "p", Kind: "x", Config: cfg})
		if err != nil || !resp.Succeeded {
			t.Fatalf("%s: %+v %v", line, resp, err)
		}
	}
	want := []string{
		`[WARN]  test.plugin.statusplugin: three digits: n=1 timestamp=2026-01-02T15:04:05.123Z`,
		`[ERROR] test.plugin.statusplugin: six digits: timestamp=2026-01-02T15:04:05.123Z`,
		`[INFO]  test.plugin.statusplugin: 5`,
		`[DEBUG]`, // not shown at info
		`[WARN]  test.plugin.statusplugin: a synonym: timestamp="2026-01-02T15:04:05.000+0100"`,
		`[WARN]  test.plugin.statusplugin: [WARN] a plain warning`,
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(buf.String(), "a plain warning") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got := buf.String()
	for _, w := range want {
		if w == "[DEBUG]" {
			if strings.Contains(got, w) || strings.Contains(got, "plain text at debug") {
				t.Errorf("a debug line shown at info:\n%s", got)
			}
			continue
		}
		if !strings.Contains(got, w) {
			t.Errorf("host log lacks %q:\n%s", w, got)
		}
	}
	if strings.Contains(got, "odd level") {
		t.Errorf("a line with no level it knows, which goes to debug, shown at info:\n%s", got)
	}
}

// A pinned binary runs as it was checked: replacing the file at its path
// (renamed over, or rewritten in place) between the check and the start
// does not get the other binary run under the pin.
func TestPinnedBinaryRunsAsChecked(t *testing.T) {
	orig, err := os.ReadFile(testkitBin)
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(helloBin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(orig)
	for name, swap := range map[string]func(path string) error{
		"renamed over": func(path string) error {
			if err := os.WriteFile(path+".new", other, 0o755); err != nil {
				return err
			}
			return os.Rename(path+".new", path)
		},
		"rewritten in place": func(path string) error { return os.WriteFile(path, other, 0o755) },
	} {
		t.Run(name, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "modpipe-plugin-pinned")
			if err := os.WriteFile(bin, orig, 0o755); err != nil {
				t.Fatal(err)
			}
			swapped := false
			opts := pluginhost.WithAfterCheck(pluginhost.Options{Logger: testLogger(t)}, func() {
				if !swapped {
					swapped = true
					if err := swap(bin); err != nil {
						t.Error(err)
					}
				}
			})
			p, err := pluginhost.Start(guardCtx(t), pluginhost.Spec{Name: "pinned", Path: bin, SHA256: hex.EncodeToString(sum[:])}, opts)
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			defer p.Close()
			if !swapped {
				t.Fatal("the binary was not swapped")
			}
			if got := p.Info().Name; got != "testkit" {
				t.Errorf("the plugin that runs is %q, want the checked testkit", got)
			}
		})
	}
}
