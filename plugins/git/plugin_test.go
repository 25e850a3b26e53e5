package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/modpipe/modpipe/plugins/internal/plugintest"
)

var binary string

func TestMain(m *testing.M) {
	path, cleanup, err := plugintest.Build("git")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = path
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// TestPlugin drives the real binary through the host's plugin client.
func TestPlugin(t *testing.T) {
	p := plugintest.Start(t, "git", binary)
	plugintest.CheckAttributeNames(t, p)
	plugintest.CheckResultSchemas(t, p)
	if k, ok := p.Kind(""); !ok || k.Name != "facts" || k.ResultType != FactsResultType {
		t.Fatalf("default kind = %+v, want facts", k)
	}
	dir := repo(t)

	var facts Facts
	resp, _ := plugintest.Execute(t, p, "facts", fmt.Sprintf(`{"dir": %q}`, dir), &facts)
	if !resp.Succeeded || resp.Type != FactsResultType {
		t.Fatalf("response = %+v", resp)
	}
	if facts.Branch != "main" || facts.Tag != "v1.2.3" || len(facts.SHA) != 40 || facts.Dirty {
		t.Errorf("facts = %+v", facts)
	}

	resp, _ = plugintest.Execute(t, p, "", fmt.Sprintf(`{"dir": %q}`, t.TempDir()), nil)
	if resp.Succeeded || resp.Error == nil || !strings.Contains(resp.Error.Message, "not inside a git repository") {
		t.Errorf("outside a repository: %+v", resp.Error)
	}
}
