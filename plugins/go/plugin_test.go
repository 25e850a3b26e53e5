package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modpipe/modpipe/host/pluginhost"
	"github.com/modpipe/modpipe/plugins/internal/plugintest"
)

// binary is the plugin built by TestMain.
var binary string

func TestMain(m *testing.M) {
	path, cleanup, err := plugintest.Build("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = path
	code := m.Run()
	cleanup()
	os.Exit(code)
}

func startPlugin(t *testing.T) *pluginhost.Plugin { return plugintest.Start(t, "go", binary) }

func TestPluginDescribe(t *testing.T) {
	p := startPlugin(t)
	info := p.Info()
	plugintest.CheckAttributeNames(t, p)
	plugintest.CheckResultSchemas(t, p)
	if info.Name != "go" || info.Version != Version {
		t.Errorf("info = %s %s, want go %s", info.Name, info.Version, Version)
	}
	if k, ok := p.Kind(""); !ok || k.Name != "test" {
		t.Errorf("default kind = %+v, want test", k)
	}
	for kind, rt := range map[string]string{"test": TestResultType, "build": BuildResultType, "vet": VetResultType} {
		k, ok := p.Kind(kind)
		if !ok {
			t.Errorf("kind %q missing", kind)
			continue
		}
		if k.ResultType != rt {
			t.Errorf("kind %q result type = %q, want %q", kind, k.ResultType, rt)
		}
		for _, a := range []string{"packages", "dir", "flags", "env"} {
			if attr, ok := k.Attribute(a); !ok || attr.Required {
				t.Errorf("kind %q attribute %q = %+v, %v; want optional", kind, a, attr, ok)
			}
		}
	}
}

func TestPluginKinds(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command on fixture modules")
	}
	p := startPlugin(t)
	tests := []struct {
		name        string
		kind        string
		config      string
		succeeded   bool
		errContains []string
		tailHas     string
		streamHas   string
		check       func(t *testing.T, value json.RawMessage)
	}{
		{
			name: "test pass", kind: "test", config: `{"dir": "testdata/modules/pass", "flags": ["-count=1"]}`, succeeded: true,
			streamHas: "ok  \texample.com/pass",
			check: func(t *testing.T, v json.RawMessage) {
				var r TestResult
				mustDecode(t, v, &r)
				if r.Passed != 4 || r.Skipped != 1 || r.Failed != 0 || len(r.Packages) != 2 {
					t.Errorf("result = %+v, want 4 passed, 1 skipped in 2 packages", r)
				}
			},
		},
		{
			name: "test failure", kind: "", config: `{"dir": "testdata/modules/fail", "flags": ["-count=1"], "packages": ["./..."]}`,
			errContains: []string{"example.com/fail.TestMulBroken", "example.com/fail.TestMulSub/bad"},
			tailHas:     "Mul(3, 3) = 6, want 9", streamHas: "--- FAIL: TestMulBroken",
			check: func(t *testing.T, v json.RawMessage) {
				var r TestResult
				mustDecode(t, v, &r)
				if len(r.FailedPackages) != 1 || r.FailedPackages[0] != "example.com/fail" {
					t.Errorf("failed packages = %q, want [example.com/fail]", r.FailedPackages)
				}
				for _, pr := range r.Packages {
					if pr.Package == "example.com/fail" && (len(pr.Failures) != 2 || pr.Failures[0].Test != "TestMulBroken") {
						t.Errorf("failures = %+v", pr.Failures)
					}
				}
			},
		},
		{
			name: "test build failure", kind: "test", config: `{"dir": "testdata/modules/buildfail"}`,
			errContains: []string{"example.com/buildfail [build failed]"}, tailHas: `cannot use "not an int"`, streamHas: "broken.go:5:28",
			check: func(t *testing.T, v json.RawMessage) {
				var r TestResult
				mustDecode(t, v, &r)
				if len(r.Packages) != 1 || !r.Packages[0].BuildFailed {
					t.Errorf("result = %+v, want one package with build_failed", r)
				}
			},
		},
		{
			name: "test env", kind: "test", config: `{"dir": "testdata/modules/pass", "env": {"GOFLAGS": "-run=TestAdd"}, "flags": ["-count=1"]}`, succeeded: true,
			check: func(t *testing.T, v json.RawMessage) {
				var r TestResult
				mustDecode(t, v, &r)
				if r.Passed != 1 || r.Skipped != 0 {
					t.Errorf("with GOFLAGS=-run=TestAdd: passed %d skipped %d, want 1 and 0", r.Passed, r.Skipped)
				}
			},
		},
		{name: "build", kind: "build", config: `{"dir": "testdata/modules/pass"}`, succeeded: true},
		{name: "build failure", kind: "build", config: `{"dir": "testdata/modules/buildfail"}`, errContains: []string{"go build failed", "broken.go:5:28"}, tailHas: "cannot use"},
		{
			name: "vet findings", kind: "vet", config: `{"dir": "testdata/modules/vet"}`,
			errContains: []string{"2 finding(s)", "vet.go:8:28"}, tailHas: "vet.go:13:22",
			check: func(t *testing.T, v json.RawMessage) {
				var r VetResult
				mustDecode(t, v, &r)
				if len(r.Findings) != 2 || r.Findings[1].Position != "vet.go:13:22" {
					t.Errorf("findings = %+v", r.Findings)
				}
			},
		},
		{name: "vet clean", kind: "vet", config: `{"dir": "testdata/modules/pass"}`, succeeded: true},
		{name: "missing dir", kind: "test", config: `{"dir": "testdata/modules/nope"}`, errContains: []string{"working directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			var mu sync.Mutex
			var streamed strings.Builder
			resp, err := p.Execute(ctx, pluginhost.Request{Module: tt.name, Kind: tt.kind, Config: json.RawMessage(tt.config)}, func(l pluginhost.Line) {
				mu.Lock()
				defer mu.Unlock()
				streamed.WriteString(l.Text + "\n")
			})
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if resp.Succeeded != tt.succeeded {
				t.Fatalf("succeeded = %v, want %v (error: %+v)", resp.Succeeded, tt.succeeded, resp.Error)
			}
			if !tt.succeeded {
				for _, w := range tt.errContains {
					if !strings.Contains(resp.Error.Message, w) {
						t.Errorf("error %q does not contain %q", resp.Error.Message, w)
					}
				}
				if !strings.Contains(resp.Error.Tail, tt.tailHas) {
					t.Errorf("tail %q does not contain %q", resp.Error.Tail, tt.tailHas)
				}
			}
			mu.Lock()
			out := streamed.String()
			mu.Unlock()
			if !strings.Contains(out, tt.streamHas) {
				t.Errorf("streamed output does not contain %q:\n%s", tt.streamHas, out)
			}
			if strings.Contains(out, `"Action":`) {
				t.Errorf("raw go test -json events were streamed:\n%s", out)
			}
			if tt.check != nil {
				tt.check(t, resp.Value)
			}
		})
	}
}

func mustDecode(t *testing.T, v json.RawMessage, into any) {
	t.Helper()
	if err := json.Unmarshal(v, into); err != nil {
		t.Fatalf("decode value %s: %v", v, err)
	}
}

// A packages list given empty, and an environment name with '=', are
// refused by validate, each at its attribute.
func TestPluginValidate(t *testing.T) {
	p := startPlugin(t)
	for config, attr := range map[string]string{
		`{"packages": []}`:              "packages",
		`{"env": {"A=B": "1"}}`:         "env",
		`{"packages": ["./..."]}`:       "",
		`{"env": {"CGO_ENABLED": "0"}}`: "",
	} {
		diags, err := p.Validate(context.Background(), "test", json.RawMessage(config))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case attr == "" && len(diags) != 0:
			t.Errorf("%s: diagnostics %+v, want none", config, diags)
		case attr != "" && (len(diags) != 1 || diags[0].Attribute != attr):
			t.Errorf("%s: diagnostics %+v, want one on %s", config, diags, attr)
		}
	}
}
