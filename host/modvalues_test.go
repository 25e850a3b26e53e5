package host

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

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

// Readers of one result that start at once share one decode: each used
// to decode it for itself, 20 readers of a 1 MB result 21 s of a run.
func TestModuleValuesDecodedOnceForReadersAtOnce(t *testing.T) {
	const readers = 20
	c := &moduleValues{readers: map[string]int{"big": readers}, values: map[string]*decodedValue{}}
	var decodes atomic.Int32
	release := make(chan struct{})
	c.decode = func(env *coordinator.Envelope) (cty.Value, error) {
		decodes.Add(1)
		<-release // every reader arrives while the first decodes
		return config.ModuleValue(env)
	}
	env := coordinator.Envelope{Module: "big", Status: coordinator.StatusSucceeded, Attempts: 1, Value: json.RawMessage(`{"n":1}`)}
	want, err := config.ModuleValue(&env)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	got := make([]cty.Value, readers)
	for i := range readers {
		wg.Go(func() {
			v, err := c.value("big", &env)
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		})
	}
	// The readers that found the decode under way wait for it.
	for deadline := time.Now().Add(time.Minute); decodes.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // lets the others reach the wait; not a timing assertion
	close(release)
	wg.Wait()
	if n := decodes.Load(); n != 1 {
		t.Errorf("%d decodes for %d readers at once, want 1", n, readers)
	}
	for i, v := range got {
		if !v.RawEquals(want) {
			t.Errorf("reader %d got %#v", i, v)
		}
	}
	if c.held() != 0 {
		t.Errorf("%d values held after the last reader, want 0", c.held())
	}
}
