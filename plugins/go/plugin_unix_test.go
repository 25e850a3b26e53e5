//go:build unix

package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/modpipe/modpipe/host/pluginhost"
	"github.com/modpipe/modpipe/plugins/internal/plugintest"
)

// TestPluginCancel cancels a go test whose test hangs and checks that the
// test binary (a grandchild of the plugin, started by the go command) is
// gone, then that the same plugin runs the next module.
func TestPluginCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test on a fixture module")
	}
	// The plugin's temporary folder: the go command's work folder (its
	// compiled packages and test binary) must not outlive the module.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	p := startPlugin(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var pid int
	_, err := p.Execute(ctx, pluginhost.Request{Module: "hang", Config: json.RawMessage(`{"dir": "testdata/modules/hang", "packages": ["."], "flags": ["-count=1"]}`)}, func(l pluginhost.Line) {
		if n, ok := strings.CutPrefix(l.Text, "test binary pid "); ok && pid == 0 {
			pid, _ = strconv.Atoi(n)
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Execute err = %v, want context.Canceled", err)
	}
	if pid == 0 {
		t.Fatal("the test binary's pid never arrived")
	}
	plugintest.WaitGone(t, pid)
	left, _ := os.ReadDir(tmp)
	for _, e := range left {
		if !strings.HasPrefix(e.Name(), "plugin-dir") { // go-plugin's socket folder
			t.Errorf("the cancelled go test left %s in the temporary folder", e.Name())
		}
	}

	resp, _ := plugintest.Execute(t, p, "build", `{"dir": "testdata/modules/pass"}`, nil)
	if !resp.Succeeded {
		t.Errorf("module after the cancellation failed: %+v", resp.Error)
	}
}
