// Package plugintest builds a first-party plugin binary and starts it
// through the host's real plugin client (host/pluginhost), so the plugins'
// tests exercise the same go-plugin protocol the host uses. It is imported
// by tests only; plugin binaries never link the host.
package plugintest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/zclconf/go-cty/cty"

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
	// Every value a plugin's tests see must be one its declared result
	// type admits: a schema that leaves out a key the value has would
	// make the host refuse a pipeline that reads it.
	if k, ok := p.Kind(kind); ok {
		if err := CheckResult(k.Result, resp.Value); err != nil {
			t.Errorf("Execute(%s, %s): the value does not match the kind's result_schema %s: %v\n%s", kind, config, k.Result.GoString(), err, resp.Value)
		}
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

// CheckResult checks a result value (JSON) against the result type its
// kind declares (ty; cty.NilType, nothing declared, admits anything):
// every object in it has exactly the declared attributes, but for
// optional ones that may be missing; each scalar is of its declared type;
// null stands for anything. It is what makes the host's check of
// references to results safe.
func CheckResult(ty cty.Type, value json.RawMessage) error {
	if ty == cty.NilType || len(value) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("decode the value: %w", err)
	}
	return checkValue(ty, v, "value")
}

func checkValue(ty cty.Type, v any, path string) error {
	if v == nil || ty == cty.DynamicPseudoType {
		return nil
	}
	mismatch := func() error {
		return fmt.Errorf("%s is %T, the result type says %s", path, v, ty.FriendlyName())
	}
	switch {
	case ty == cty.String:
		if _, ok := v.(string); !ok {
			return mismatch()
		}
	case ty == cty.Number:
		if _, ok := v.(json.Number); !ok {
			return mismatch()
		}
	case ty == cty.Bool:
		if _, ok := v.(bool); !ok {
			return mismatch()
		}
	case ty.IsListType() || ty.IsSetType():
		items, ok := v.([]any)
		if !ok {
			return mismatch()
		}
		for i, item := range items {
			if err := checkValue(ty.ElementType(), item, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case ty.IsMapType():
		obj, ok := v.(map[string]any)
		if !ok {
			return mismatch()
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			if err := checkValue(ty.ElementType(), obj[k], path+"."+k); err != nil {
				return err
			}
		}
	case ty.IsObjectType():
		obj, ok := v.(map[string]any)
		if !ok {
			return mismatch()
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			if !ty.HasAttribute(k) {
				return fmt.Errorf("%s has %q, which the result type does not", path, k)
			}
			if err := checkValue(ty.AttributeType(k), obj[k], path+"."+k); err != nil {
				return err
			}
		}
		for _, k := range slices.Sorted(maps.Keys(ty.AttributeTypes())) {
			if _, ok := obj[k]; !ok && !ty.AttributeOptional(k) {
				return fmt.Errorf("%s lacks %q, which the result type does not mark optional", path, k)
			}
		}
	default:
		return fmt.Errorf("%s: the result type %s is not one a JSON value has", path, ty.FriendlyName())
	}
	return nil
}

// CheckResultSchemas fails the test for every kind of the plugin that
// declares no result type (ModuleKind.result_schema): the first-party
// plugins are built with the sdk, which derives one from any result type
// encoding/json can encode, so a missing one is a result type the host
// cannot check references to.
func CheckResultSchemas(t testing.TB, p *pluginhost.Plugin) {
	t.Helper()
	for _, k := range p.Info().Kinds {
		if k.Result == cty.NilType {
			t.Errorf("kind %q declares no result type", k.Name)
		}
	}
}
