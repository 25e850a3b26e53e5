package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modpipe/modpipe/coordinator"
)

// The examples the docs show live in docs/examples and run here, so the
// docs cannot drift from what modpipe does.

func TestDocsFirstPipeline(t *testing.T) {
	file := filepath.Join("..", "..", "docs", "examples", "first.hcl")
	r := runHost(t, "validate", file)
	r.wantCode(t, 0)

	r = runHost(t, "run", file, "--var", "who=modpipe")
	r.wantCode(t, 0)
	a := r.module(t, "announce")
	wantStatus(t, a, coordinator.StatusSucceeded)
	var v struct {
		Stdout string `json:"stdout"`
	}
	if err := json.Unmarshal(a.Value, &v); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v.Stdout, "hello, modpipe from ") {
		t.Errorf("announce printed %q", v.Stdout)
	}

	// The typo shown in getting-started.md is reported as shown.
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "first.hcl")
	writeFile(t, bad, strings.Replace(string(src), "  name = var.who", "  nmae = var.who", 1))
	r = runHost(t, "validate", bad)
	r.wantCode(t, 2)
	for _, want := range []string{"first.hcl:12:3", `Did you mean "name"?`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("validate output lacks %q:\n%s", want, r.stderr)
		}
	}

	// So is the misspelt result field it shows.
	writeFile(t, bad, strings.Replace(string(src), "module.greet.value.message", "module.greet.value.mesage", 1))
	r = runHost(t, "validate", bad)
	r.wantCode(t, 2)
	for _, want := range []string{"first.hcl:21:43: Unsupported attribute", `Did you mean "message"?`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("validate output lacks %q:\n%s", want, r.stderr)
		}
	}
}
