package pluginhost_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/internal/proctest"
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

// TestCancelledStartLeavesNothing starts plugins with a context that is
// cancelled before or while they start. go-plugin's Kill does nothing
// before it has started the process, so such a start ran on to a
// connected plugin whose Host service goroutine waited forever for a
// broker no one closed: Start never returned. It must return the
// cancellation promptly and leave no process of the plugin behind.
func TestCancelledStartLeavesNothing(t *testing.T) {
	if _, err := os.Stat("/proc/self/exe"); err != nil {
		t.Skip("needs /proc to find the plugin's processes")
	}
	sockets := t.TempDir()
	for i := range 6 {
		ctx, cancel := context.WithCancel(context.Background())
		if i%2 == 0 {
			cancel() // before Start
		} else {
			go cancel() // racing the start
		}
		type started struct {
			p   *pluginhost.Plugin
			err error
		}
		done := make(chan started, 1)
		go func() {
			p, err := pluginhost.Start(ctx, pluginhost.Spec{Name: "testkit", Path: testkitBin}, pluginhost.Options{Logger: hclog.NewNullLogger(), SocketRoot: sockets})
			done <- started{p, err}
		}()
		select {
		case s := <-done:
			var se *pluginhost.StartError
			switch {
			case i%2 == 1 && s.err == nil:
				// The start won the race with the cancellation.
				if err := s.p.Close(); err != nil {
					t.Fatal(err)
				}
			case i%2 == 1 && errors.As(s.err, &se):
			case i%2 == 0 && errors.As(s.err, &se) && errors.Is(s.err, context.Canceled):
			default:
				t.Fatalf("round %d: Start returned %v, %v; want a StartError (of the cancellation when it was cancelled before it began)", i, s.p, s.err)
			}
		case <-time.After(deadlockGuard):
			t.Fatalf("round %d: Start with a cancelled context did not return", i)
		}
		cancel()
	}
	deadline := time.Now().Add(deadlockGuard)
	for len(proctest.Children(testkitBin)) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if pids := proctest.Children(testkitBin); len(pids) > 0 {
		t.Fatalf("plugin processes %v still run after their starts were cancelled", pids)
	}
	// Nor their socket folders.
	if left, _ := os.ReadDir(sockets); len(left) > 0 {
		t.Errorf("%d socket folders left after cancelled starts", len(left))
	}
}
