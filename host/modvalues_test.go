package host

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/config"
	"github.com/modpipe/modpipe/host/graph"
)

// TestModuleValues checks the values shared among a module's readers:
// each read gets config.ModuleValue of the result it passes, a value is
// kept until its last reader has it, and a different result of the same
// module (another attempt) is decoded afresh.
func TestModuleValues(t *testing.T) {
	src := `
module "shell" "t" {
  matrix  = ["a", "b"]
  command = ["true"]
}
module "shell" "r1" {
  command = ["echo", length(module.t)]
}
module "shell" "r2" {
  command = ["echo", module.t["a"].status]
}
module "shell" "ordered" {
  command    = ["true"]
  depends_on = [module.t]
}
`
	cfg, diags := config.LoadSource("p.hcl", []byte(src), config.Options{Facts: config.Facts{Capabilities: []string{"a", "b"}}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	g, diags := graph.Build(cfg)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	c := newModuleValues(g)
	// r1 reads both instances, r2 only t[a]; ordered reads nothing.
	if c.readers["t[a]"] != 2 || c.readers["t[b]"] != 1 {
		t.Fatalf("readers = %v, want t[a] 2 and t[b] 1", c.readers)
	}
	ended := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	env := coordinator.Envelope{Module: "t[a]", Status: coordinator.StatusSucceeded, Attempts: 1, EndedAt: ended, Value: json.RawMessage(`{"stdout":"x"}`)}
	want, err := config.ModuleValue(&env)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.value("t[a]", &env)
	if err != nil || !got.RawEquals(want) {
		t.Fatalf("first read: %#v, %v; want %#v", got, err, want)
	}
	if c.held() != 1 {
		t.Fatalf("after the first of two reads %d values held, want 1", c.held())
	}
	// A second attempt's result is not the value kept for the first.
	env2 := env
	env2.Attempts, env2.Value = 2, json.RawMessage(`{"stdout":"y"}`)
	want2, _ := config.ModuleValue(&env2)
	if got, err := c.value("t[a]", &env2); err != nil || !got.RawEquals(want2) {
		t.Fatalf("read of attempt 2: %#v, %v; want %#v", got, err, want2)
	}
	if c.held() != 0 {
		t.Fatalf("after the last read %d values held, want 0", c.held())
	}
	// A read beyond the count (a retried reader) still gets its value.
	if got, err := c.value("t[a]", &env); err != nil || !got.RawEquals(want) {
		t.Fatalf("extra read: %#v, %v", got, err)
	}
	if c.held() != 0 {
		t.Fatalf("after an extra read %d values held, want 0", c.held())
	}
	bad := env
	bad.Value = json.RawMessage(`{`)
	if _, err := c.value("t[b]", &bad); err == nil {
		t.Fatal("an undecodable result gave no error")
	}
}
