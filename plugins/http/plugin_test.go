package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modpipe/modpipe/plugins/internal/plugintest"
)

var binary string

func TestMain(m *testing.M) {
	path, cleanup, err := plugintest.Build("http")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = path
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// TestPlugin drives the real binary through the host's plugin client
// against a real HTTP server.
func TestPlugin(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			fmt.Fprint(w, `{"status": "ok"}`)
		case "/starting":
			if hits.Add(1) < 3 {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, "still starting")
				return
			}
			fmt.Fprint(w, "ready")
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, "no such page: "+r.URL.Path)
		}
	}))
	defer srv.Close()
	p := plugintest.Start(t, "http", binary)
	plugintest.CheckAttributeNames(t, p)
	plugintest.CheckResultSchemas(t, p)

	var res CheckResult
	resp, _ := plugintest.Execute(t, p, "", fmt.Sprintf(`{"url": %q, "json": true, "body_contains": "ok"}`, srv.URL+"/health"), &res)
	if !resp.Succeeded || resp.Type != CheckResultType || res.Status != 200 || string(res.JSON) != `{"status":"ok"}` {
		t.Errorf("health: %+v %+v", resp, res)
	}

	res = CheckResult{}
	resp, _ = plugintest.Execute(t, p, "check", fmt.Sprintf(`{"url": %q}`, srv.URL+"/missing"), &res)
	if resp.Succeeded || res.Status != 404 {
		t.Fatalf("missing page: %+v %+v", resp, res)
	}
	if !strings.Contains(resp.Error.Message, "status 404, expected 2xx") || !strings.Contains(resp.Error.Tail, "no such page: /missing") {
		t.Errorf("error = %+v, want the status and the body in the tail", resp.Error)
	}

	res = CheckResult{}
	resp, out := plugintest.Execute(t, p, "check", fmt.Sprintf(`{"url": %q, "wait": "1m", "interval": "10ms"}`, srv.URL+"/starting"), &res)
	if !resp.Succeeded || res.Attempts != 3 || res.Body != "ready" {
		t.Errorf("waiting check: %+v %+v", resp, res)
	}
	if logs := out.Stream("log"); len(logs) != 2 || !strings.Contains(logs[0], "status 503") {
		t.Errorf("retry log lines = %q, want two naming status 503", logs)
	}

	resp, _ = plugintest.Execute(t, p, "check", `{"url": "localhost:8080"}`, nil)
	if resp.Succeeded || resp.Error.Kind != "config" {
		t.Errorf("bad url: %+v", resp.Error)
	}
}

// A refused setting names its attribute, so the host points at its line.
func TestValidateNamesTheAttribute(t *testing.T) {
	p := plugintest.Start(t, "http", binary)
	for config, attr := range map[string]string{
		`{"url": "ftp://x"}`:                                  "url",
		`{"url": "http://x", "expect_status": [99]}`:          "expect_status",
		`{"url": "http://x", "interval": "-1s"}`:              "interval",
		`{"url": "http://x", "method": "GE T"}`:               "method",
		`{"url": "http://[::1"}`:                              "url",
		`{"url": "http://"}`:                                  "url",
		`{"url": "http://x", "headers": {"Bad Header": "v"}}`: "headers",
	} {
		diags, err := p.Validate(context.Background(), "check", json.RawMessage(config))
		if err != nil {
			t.Fatal(err)
		}
		if len(diags) != 1 || diags[0].Attribute != attr {
			t.Errorf("%s: diagnostics %+v, want one on %q", config, diags, attr)
		}
	}
}
