package main

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/modpipe/modpipe/host/config"
)

// TestFleetPipelinesLoad loads each generated fleet pipeline with the
// host's own loader and checks the shape each scenario relies on: the
// chain crosses instances at every step, scaling and failure modules are
// for workers only, and the failure module has an attempt left.
func TestFleetPipelinesLoad(t *testing.T) {
	load := func(t *testing.T, src string) *config.Pipeline {
		t.Helper()
		p, diags := config.LoadSource("pipeline.hcl", []byte(src), config.Options{})
		if diags.HasErrors() {
			t.Fatalf("the generated pipeline does not load: %s\n%s", diags.Error(), src)
		}
		return p
	}
	t.Run("chain", func(t *testing.T) {
		p := load(t, chainPipeline(7))
		if len(p.Modules) != 7 {
			t.Fatalf("%d modules, want 7", len(p.Modules))
		}
		for i, m := range p.Modules {
			if want := []string{fmt.Sprintf("w%d", i%3+1)}; !slices.Equal(m.Requires, want) {
				t.Errorf("%s requires %v, want %v", m.Name, m.Requires, want)
			}
			if i > 0 {
				if want := []string{fmt.Sprintf("c%d", i-1)}; !slices.Equal(m.DependsOn, want) {
					t.Errorf("%s depends on %v, want %v", m.Name, m.DependsOn, want)
				}
				if slices.Equal(m.Requires, p.Modules[i-1].Requires) {
					t.Errorf("%s and its dependency run on the same worker", m.Name)
				}
			}
		}
	})
	t.Run("scaling", func(t *testing.T) {
		p := load(t, scalingPipeline(5, 500*time.Millisecond))
		if len(p.Modules) != 5 {
			t.Fatalf("%d modules, want 5", len(p.Modules))
		}
		for _, m := range p.Modules {
			if m.Kind != "sleep" || !slices.Equal(m.Requires, []string{workerCap}) || len(m.DependsOn) != 0 {
				t.Errorf("%s: kind %q, requires %v, depends on %v; want an independent sleep for workers only", m.Name, m.Kind, m.Requires, m.DependsOn)
			}
		}
	})
	t.Run("failure", func(t *testing.T) {
		p := load(t, failurePipeline("/tmp/x", 2*time.Second))
		if p.Distributed == nil || p.Distributed.HeartbeatTimeout != 2*time.Second {
			t.Fatalf("distributed block %+v, want heartbeat_timeout 2s", p.Distributed)
		}
		m := p.Modules[0]
		if m.Retry.Attempts < 2 || !slices.Equal(m.Requires, []string{workerCap}) {
			t.Errorf("victim: %d attempts, requires %v; want an attempt left and workers only", m.Retry.Attempts, m.Requires)
		}
	})
}
