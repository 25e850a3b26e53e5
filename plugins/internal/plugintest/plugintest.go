// Package plugintest builds a first-party plugin binary and starts it
// through the host's real plugin client (host/pluginhost), so the plugins'
// tests exercise the same go-plugin protocol the host uses. It is imported
// by tests only; plugin binaries never link the host.
package plugintest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/modpipe/modpipe/host/config"
	"github.com/modpipe/modpipe/host/pluginhost"
)

// Build compiles the main package in the current directory (the test's
// package) to a temporary binary named modpipe-plugin-NAME and returns its
// path and a function that removes it. Call it from TestMain.
func Build(name string) (path string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "modpipe-plugin-"+name+"-test")
	if err != nil {
		return "", nil, err
	}
	path = filepath.Join(dir, "modpipe-plugin-"+name)
	if out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("build the %s plugin: %v\n%s", name, err, out)
	}
	return path, func() { os.RemoveAll(dir) }, nil
}

// Start starts the plugin binary at path and closes it when the test ends.
// The host client's log goes to the test log (warnings and up).
func Start(t testing.TB, name, path string) *pluginhost.Plugin {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := pluginhost.Start(ctx, pluginhost.Spec{Name: name, Path: path}, pluginhost.Options{
		Logger: hclog.New(&hclog.LoggerOptions{Name: "pluginhost", Level: hclog.Warn, Output: logWriter{t}}),
	})
	if err != nil {
		t.Fatalf("start the %s plugin: %v", name, err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close the %s plugin: %v", name, err)
		}
	})
	return p
}

// Lines records a module's output lines as they arrive; its Add method is
// the out callback of pluginhost.Plugin.Execute.
type Lines struct {
	mu  sync.Mutex
	all []pluginhost.Line
}

// Add records one line.
func (l *Lines) Add(line pluginhost.Line) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, line)
}

// Stream returns the texts of the lines of one stream ("stdout",
// "stderr", "log"), in arrival order.
func (l *Lines) Stream(name string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.all {
		if line.Stream == name {
			out = append(out, line.Text)
		}
	}
	return out
}

// Text returns every line's text, one per line, in arrival order.
func (l *Lines) Text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, line := range l.all {
		b.WriteString(line.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

// Execute runs one module of kind ("" = default) with config and decodes
// the response's value into value (when value is non-nil and the response
// has one). It fails the test when Execute returns an error (no result).
func Execute(t testing.TB, p *pluginhost.Plugin, kind, config string, value any) (pluginhost.Response, *Lines) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out Lines
	resp, err := p.Execute(ctx, pluginhost.Request{Module: "test", Kind: kind, Config: json.RawMessage(config)}, out.Add)
	if err != nil {
		t.Fatalf("Execute(%s, %s): %v", kind, config, err)
	}
	if value != nil && len(resp.Value) > 0 && string(resp.Value) != "null" {
		if err := json.Unmarshal(resp.Value, value); err != nil {
			t.Fatalf("decode the value %s: %v", resp.Value, err)
		}
	}
	return resp, &out
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// CheckAttributeNames fails the test for every attribute of the plugin's
// kinds that is named like one of the host's meta-arguments: the host owns
// those names on every module block, so such an attribute could never be
// set from a pipeline file.
func CheckAttributeNames(t testing.TB, p *pluginhost.Plugin) {
	t.Helper()
	for _, k := range p.Info().Kinds {
		for _, a := range k.Attributes {
			if slices.Contains(config.MetaArguments, a.Name) {
				t.Errorf("kind %q: attribute %q is a host meta-argument; rename it", k.Name, a.Name)
			}
		}
	}
}
