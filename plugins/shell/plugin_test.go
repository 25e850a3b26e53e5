//go:build unix

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/modpipe/modpipe/host/pluginhost"
	"github.com/modpipe/modpipe/plugins/internal/plugintest"
)

// binary is the plugin built by TestMain.
var binary string

func TestMain(m *testing.M) {
	path, cleanup, err := plugintest.Build("shell")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = path
	code := m.Run()
	cleanup()
	os.Exit(code)
}

func startPlugin(t *testing.T) *pluginhost.Plugin { return plugintest.Start(t, "shell", binary) }

func execute(t *testing.T, p *pluginhost.Plugin, config string) (pluginhost.Response, ExecResult, *plugintest.Lines) {
	t.Helper()
	var res ExecResult
	resp, out := plugintest.Execute(t, p, "", config, &res)
	return resp, res, out
}

func TestPluginDescribe(t *testing.T) {
	p := startPlugin(t)
	info := p.Info()
	plugintest.CheckAttributeNames(t, p)
	plugintest.CheckResultSchemas(t, p)
	if info.Name != "shell" || info.Version != Version {
		t.Errorf("info = %s %s, want shell %s", info.Name, info.Version, Version)
	}
	k, ok := p.Kind("")
	if !ok || k.Name != "exec" || k.ResultType != ResultType {
		t.Fatalf("default kind = %+v, %v; want exec with %s", k, ok, ResultType)
	}
	want := map[string]string{"command": "list of string", "script": "string", "env": "map of string", "dir": "string", "stdout_json": "bool"}
	for name, typ := range want {
		a, ok := k.Attribute(name)
		if !ok {
			t.Errorf("attribute %q missing", name)
			continue
		}
		if a.Required {
			t.Errorf("attribute %q is required, want optional", name)
		}
		if got := a.Type.FriendlyName(); got != typ {
			t.Errorf("attribute %q type = %s, want %s", name, got, typ)
		}
	}
	// The result's fields, with json (stdout parsed, any shape) left
	// dynamic: the host checks module.x.value.json.anything no further.
	wantResult := cty.Object(map[string]cty.Type{
		"exit_code": cty.Number, "stdout": cty.String, "stdout_truncated": cty.Bool,
		"stderr_tail": cty.String, "json": cty.DynamicPseudoType,
	})
	if !k.Result.Equals(wantResult) {
		t.Errorf("result type = %#v, want %#v", k.Result, wantResult)
	}
}

func TestPluginExec(t *testing.T) {
	p := startPlugin(t)
	var manyErr strings.Builder
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&manyErr, "echo err%d >&2; ", i)
	}
	tests := []struct {
		name        string
		config      string
		succeeded   bool
		stdout      string
		exitCode    int
		json        string
		errContains []string
		tailHas     string
		tailLacks   string
		errKind     string
	}{
		{name: "argv", config: `{"command": ["echo", "hello", "$HOME"]}`, succeeded: true, stdout: "hello $HOME", json: "null"},
		{name: "script", config: `{"script": "echo one\necho two"}`, succeeded: true, stdout: "one\ntwo", json: "null"},
		{name: "env", config: `{"script": "echo \"$GREETING $USER_NAME\"", "env": {"GREETING": "hi", "USER_NAME": "modpipe"}}`, succeeded: true, stdout: "hi modpipe", json: "null"},
		// The host sets these for the plugin's own connection; they must not
		// leak into the module's commands, while the rest is inherited.
		{name: "plugin protocol variables not inherited", config: `{"script": "env | grep -E '^(MODPIPE_PLUGIN|PLUGIN_CLIENT_CERT|PLUGIN_PROTOCOL_VERSIONS|PLUGIN_MIN_PORT|PLUGIN_UNIX_SOCKET_DIR)=' | cut -d= -f1; test -n \"$PATH\" && echo inherited"}`,
			succeeded: true, stdout: "inherited", json: "null"},
		{name: "dir relative to host", config: `{"command": ["cat", "marker.txt"], "dir": "testdata/workdir"}`, succeeded: true, stdout: "marker file for the dir test", json: "null"},
		{name: "stdout_json", config: `{"script": "echo '{\"sha\": \"abc123\", \"files\": [1, 2]}'", "stdout_json": true}`, succeeded: true, stdout: `{"sha": "abc123", "files": [1, 2]}`, json: `{"sha":"abc123","files":[1,2]}`},
		{name: "stdout_json invalid", config: `{"command": ["echo", "not json"], "stdout_json": true}`, stdout: "not json", errKind: "module",
			errContains: []string{"stdout is not valid JSON", `stdout starts with: "not json"`}},
		{name: "stdout_json not UTF-8", config: `{"script": "printf '{\"a\": \"\\377\"}'", "stdout_json": true}`, stdout: "{\"a\": \"\uFFFD\"}", errKind: "module",
			errContains: []string{"stdout is not valid UTF-8"}},
		{name: "non-zero exit", config: fmt.Sprintf(`{"script": %q}`, manyErr.String()+"echo partial; exit 3"), stdout: "partial", exitCode: 3, errKind: "module",
			errContains: []string{"exit status 3"}, tailHas: "err11\n", tailLacks: "err10\n"},
		{name: "command not found", config: `{"command": ["modpipe-no-such-command"]}`, exitCode: -1, errKind: "module",
			errContains: []string{`command "modpipe-no-such-command" not found`}},
		{name: "neither command nor script", config: `{}`, errKind: "config", errContains: []string{"neither is set"}},
		{name: "unknown attribute", config: `{"comand": ["true"]}`, errKind: "config", errContains: []string{"comand"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, res, _ := execute(t, p, tt.config)
			if resp.Succeeded != tt.succeeded {
				t.Fatalf("succeeded = %v, want %v (error: %+v)", resp.Succeeded, tt.succeeded, resp.Error)
			}
			if tt.errKind != "config" && resp.Type != ResultType {
				t.Errorf("type = %q, want %q", resp.Type, ResultType)
			}
			if res.Stdout != tt.stdout || res.ExitCode != tt.exitCode {
				t.Errorf("stdout, exit_code = %q, %d; want %q, %d", res.Stdout, res.ExitCode, tt.stdout, tt.exitCode)
			}
			if tt.json != "" && string(res.JSON) != tt.json {
				t.Errorf("json = %s, want %s", res.JSON, tt.json)
			}
			if tt.succeeded {
				if resp.Error != nil {
					t.Errorf("error = %+v on success", resp.Error)
				}
				return
			}
			if resp.Error == nil {
				t.Fatal("no error on failure")
			}
			if resp.Error.Kind != tt.errKind {
				t.Errorf("error kind = %q, want %q (%s)", resp.Error.Kind, tt.errKind, resp.Error.Message)
			}
			for _, w := range tt.errContains {
				if !strings.Contains(resp.Error.Message, w) {
					t.Errorf("error %q does not contain %q", resp.Error.Message, w)
				}
			}
			tail := resp.Error.Tail + "\n"
			if tt.tailHas != "" && !strings.Contains(tail, tt.tailHas) {
				t.Errorf("tail %q does not contain %q", tail, tt.tailHas)
			}
			if tt.tailLacks != "" && strings.Contains(tail, tt.tailLacks) {
				t.Errorf("tail %q contains %q, beyond the last %d lines", tail, tt.tailLacks, StderrTailLines)
			}
		})
	}
}

func TestPluginValidate(t *testing.T) {
	p := startPlugin(t)
	tests := []struct {
		config string
		want   string // "" = no diagnostics
	}{
		{config: `{"command": ["true"]}`},
		{config: `{"script": "true", "env": {"A": "1"}}`},
		{config: `{}`, want: "neither is set"},
		{config: `{"command": ["true"], "script": "true"}`, want: "not both"},
		{config: `{"command": "true"}`, want: "command"},
		{config: `{"command": ["true"], "env": {"A=B": "1"}}`, want: `"A=B" is not a valid environment variable name (it must be non-empty, without '=' or NUL) @env`},
	}
	for _, tt := range tests {
		t.Run(tt.config, func(t *testing.T) {
			diags, err := p.Validate(context.Background(), "exec", json.RawMessage(tt.config))
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if len(diags) != 0 {
					t.Errorf("diagnostics = %+v, want none", diags)
				}
				return
			}
			var all []string
			for _, d := range diags {
				all = append(all, d.Summary+": "+d.Detail+" @"+d.Attribute)
			}
			if !strings.Contains(strings.Join(all, "\n"), tt.want) {
				t.Errorf("diagnostics %q do not mention %q", all, tt.want)
			}
		})
	}
}

// TestPluginStreamsLive proves output lines cross the plugin boundary while
// the command runs, in order: the script blocks after its first lines until
// the test, having received them, opens the gate.
func TestPluginStreamsLive(t *testing.T) {
	p := startPlugin(t)
	gate := filepath.Join(t.TempDir(), "gate")
	script := `for i in 1 2 3; do echo out$i; echo err$i >&2; done
while [ ! -e "` + gate + `" ]; do sleep 0.01; done
for i in 4 5 6; do echo out$i; done`
	var out plugintest.Lines
	var once sync.Once
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := p.Execute(ctx, pluginhost.Request{Module: "live", Config: json.RawMessage(fmt.Sprintf(`{"script": %q}`, script))}, func(l pluginhost.Line) {
		out.Add(l)
		if l.Text == "out3" {
			once.Do(func() {
				if err := os.WriteFile(gate, nil, 0o644); err != nil {
					t.Error(err)
				}
			})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Succeeded {
		t.Fatalf("failed: %+v", resp.Error)
	}
	if got, want := strings.Join(out.Stream("stdout"), ","), "out1,out2,out3,out4,out5,out6"; got != want {
		t.Errorf("stdout lines = %s, want %s", got, want)
	}
	if got, want := strings.Join(out.Stream("stderr"), ","), "err1,err2,err3"; got != want {
		t.Errorf("stderr lines = %s, want %s", got, want)
	}
}

// TestPluginCancelKillsProcessGroup cancels a module whose script has a
// background child and checks the child is gone, then that the same plugin
// process runs the next module.
func TestPluginCancelKillsProcessGroup(t *testing.T) {
	p := startPlugin(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var child int
	_, err := p.Execute(ctx, pluginhost.Request{Module: "cancel", Config: json.RawMessage(`{"script": "sleep 1000 & echo $!; wait"}`)}, func(l pluginhost.Line) {
		if pid, err := strconv.Atoi(l.Text); err == nil && l.Stream == "stdout" {
			child = pid
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Execute err = %v, want context.Canceled", err)
	}
	if child == 0 {
		t.Fatal("the script's child pid never arrived")
	}
	plugintest.WaitGone(t, child)

	resp, res, _ := execute(t, p, `{"command": ["echo", "after"]}`)
	if !resp.Succeeded || res.Stdout != "after" {
		t.Errorf("module after the cancellation: %+v %+v", resp, res)
	}
}

// TestPluginCancelledKeepsTheTail cancels a module (as its timeout
// does) once its last line has arrived: its error's tail holds stderr's
// last lines, or stdout's for a command that wrote nothing to stderr, as
// a command that exits non-zero gets.
func TestPluginCancelledKeepsTheTail(t *testing.T) {
	p := startPlugin(t)
	tests := []struct {
		name, script, wantTail string
	}{
		{"stdout only", "for i in 1 2 3 4 5; do echo out$i; done; echo last", "out1\nout2\nout3\nout4\nout5\nlast"},
		{"stderr only", "for i in 1 2; do echo err$i >&2; done; echo last >&2", "err1\nerr2\nlast"},
		{"stderr wins over stdout", "echo out1; echo err1 >&2; echo last >&2", "err1\nlast"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			stop, stopCause := context.WithCancel(ctx)
			defer stopCause()
			// trap '' TERM would outlive the kill grace; a plain sleep
			// stops at SIGTERM.
			config := fmt.Sprintf(`{"script": %q}`, tt.script+"; sleep 60")
			resp, err := p.Execute(stop, pluginhost.Request{Module: "stopped", Config: json.RawMessage(config)}, func(l pluginhost.Line) {
				if l.Text == "last" {
					stopCause()
				}
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Execute err = %v, want context.Canceled", err)
			}
			if resp.Error == nil {
				t.Fatalf("no error in the response: %+v", resp)
			}
			if resp.Error.Tail != tt.wantTail {
				t.Errorf("tail = %q, want %q", resp.Error.Tail, tt.wantTail)
			}
		})
	}
}

// BenchmarkPluginExec measures one shell module through the plugin
// protocol: gRPC round trip, config decoding, fork/exec of a no-op command
// and result encoding.
func BenchmarkPluginExec(b *testing.B) {
	p := plugintest.Start(b, "shell", binary)
	ctx := context.Background()
	req := pluginhost.Request{Module: "bench", Config: json.RawMessage(`{"command": ["true"]}`)}
	for b.Loop() {
		resp, err := p.Execute(ctx, req, func(pluginhost.Line) {})
		if err != nil || !resp.Succeeded {
			b.Fatalf("Execute: %+v %v", resp, err)
		}
	}
}

// BenchmarkExecDirect runs the same no-op command without the plugin
// protocol, to tell process start cost from protocol cost.
func BenchmarkExecDirect(b *testing.B) {
	for b.Loop() {
		if _, err := Exec(context.Background(), ExecConfig{Command: []string{"true"}}, Streams{}, 0); err != nil {
			b.Fatal(err)
		}
	}
}
