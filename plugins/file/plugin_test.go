package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modpipe/modpipe/plugins/internal/plugintest"
)

var binary string

func TestMain(m *testing.M) {
	path, cleanup, err := plugintest.Build("file")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = path
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// TestPlugin drives the real binary through the host's plugin client:
// write a file, checksum it, copy it, and fail on a pattern that matches
// nothing.
func TestPlugin(t *testing.T) {
	p := plugintest.Start(t, "file", binary)
	plugintest.CheckAttributeNames(t, p)
	plugintest.CheckResultSchemas(t, p)
	if k, ok := p.Kind(""); !ok || k.Name != "checksum" {
		t.Fatalf("default kind = %+v, want checksum", k)
	}
	dir := t.TempDir()

	var written File
	resp, _ := plugintest.Execute(t, p, "write", fmt.Sprintf(`{"dir": %q, "path": "dist/app.txt", "content": "linux\n"}`, dir), &written)
	if !resp.Succeeded || resp.Type != WriteResultType || written.SHA256 != sumLinux {
		t.Fatalf("write: %+v %+v", resp, written)
	}

	var sums ChecksumResult
	resp, _ = plugintest.Execute(t, p, "", fmt.Sprintf(`{"dir": %q, "paths": ["dist/*.txt"], "output": "SHA256SUMS"}`, dir), &sums)
	if !resp.Succeeded || sums.Count != 1 || sums.Files[0].SHA256 != sumLinux {
		t.Fatalf("checksum: %+v %+v", resp, sums)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS")); err != nil || string(b) != sumLinux+"  dist/app.txt\n" {
		t.Errorf("SHA256SUMS = %q, %v", b, err)
	}

	var copied CopyResult
	resp, _ = plugintest.Execute(t, p, "copy", fmt.Sprintf(`{"dir": %q, "from": ["dist"], "to": "artifacts", "flatten": true}`, dir), &copied)
	if !resp.Succeeded || copied.Count != 1 || copied.Files[0].Path != filepath.Join("artifacts", "app.txt") {
		t.Fatalf("copy: %+v %+v", resp, copied)
	}

	resp, _ = plugintest.Execute(t, p, "", fmt.Sprintf(`{"dir": %q, "paths": ["*.exe"]}`, dir), nil)
	if resp.Succeeded || !strings.Contains(resp.Error.Message, "no file matches") {
		t.Errorf("no match: %+v", resp.Error)
	}
	resp, _ = plugintest.Execute(t, p, "write", `{"path": "x", "content": "", "mode": "u+x"}`, nil)
	if resp.Succeeded || resp.Error.Kind != "config" {
		t.Errorf("bad mode: %+v", resp.Error)
	}
}

// A refused mode names its attribute, so the host points at its line.
func TestValidateNamesTheMode(t *testing.T) {
	p := plugintest.Start(t, "file", binary)
	for _, tc := range []struct{ kind, config, attr string }{
		{"write", `{"path": "x", "content": "", "mode": "999"}`, "mode"},
		{"copy", `{"from": [], "to": "out"}`, "from"},
		{"checksum", `{"paths": []}`, "paths"},
	} {
		diags, err := p.Validate(context.Background(), tc.kind, json.RawMessage(tc.config))
		if err != nil {
			t.Fatal(err)
		}
		if len(diags) != 1 || diags[0].Attribute != tc.attr {
			t.Errorf("%s %s: diagnostics %+v, want one on %s", tc.kind, tc.config, diags, tc.attr)
		}
	}
}
