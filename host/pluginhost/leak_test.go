package pluginhost_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/pluginhost"
)

// TestCloseLeavesNoGoroutines starts, uses (including the broker's Host
// service) and closes plugins, then expects every goroutine that belonged
// to them to end. Goroutines wind down asynchronously, so the count is
// re-checked until a generous deadline that only guards against a leak.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	results := func(_ context.Context, _, dep string) (*coordinator.Envelope, error) {
		return &coordinator.Envelope{Module: dep, Status: coordinator.StatusSucceeded}, nil
	}
	for i := 0; i < 3; i++ {
		p, err := pluginhost.Start(guardCtx(t), pluginhost.Spec{Name: "testkit", Path: testkitBin}, pluginhost.Options{Logger: hclog.NewNullLogger(), Results: results})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := p.Execute(guardCtx(t), pluginhost.Request{Module: "u", Kind: "dep", Config: json.RawMessage(`{"module":"x","raw":true}`), Deps: []string{"x"}}, nil)
		if err != nil || !resp.Succeeded {
			t.Fatalf("execute: %+v %v", resp, err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(deadlockGuard)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines before, %d after closing every plugin:\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

// TestNothingLeaksToTheTerminal runs modules that write to every stream
// and crash the plugin, with the host's own stdout and stderr captured:
// nothing of the plugin's may reach them.
func TestNothingLeaksToTheTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	origOut, origErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = w, w
	captured := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		captured <- b
	}()
	func() {
		defer func() { os.Stdout, os.Stderr = origOut, origErr }()
		p, err := pluginhost.Start(guardCtx(t), pluginhost.Spec{Name: "testkit", Path: testkitBin}, pluginhost.Options{Logger: hclog.NewNullLogger()})
		if err != nil {
			t.Error(err)
			return
		}
		defer p.Close()
		for _, req := range []pluginhost.Request{
			{Module: "l", Kind: "lines", Config: json.RawMessage(`{"count":3}`)},
			{Module: "p", Kind: "panic", Config: json.RawMessage(`{"message":"m"}`)},
			{Module: "x", Kind: "exit", Config: json.RawMessage(`{"code":1,"message":"bye"}`)},
			{Module: "c", Kind: "crash", Config: json.RawMessage(`{"message":"m"}`)},
		} {
			p.Execute(guardCtx(t), req, nil)
		}
	}()
	w.Close()
	if out := <-captured; len(out) > 0 {
		t.Fatalf("the plugin wrote to the host's terminal:\n%s", out)
	}
}
