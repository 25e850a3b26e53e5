package host

import (
	"slices"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/config"
	"github.com/modpipe/modpipe/host/graph"
)

// moduleValues shares the module.NAME value of a finished module among
// the modules that read it. Each read decoded the result's JSON into a
// cty value again: 200 modules reading a matrix module of 200 instances
// decoded 40,000 results, most of that run's 0.8 s. A value is kept only
// while modules that read it are still to start (each start reads it
// once), so a large result is not held twice for the whole run.
type moduleValues struct {
	mu sync.Mutex
	// readers counts the reads of each address still to come; a retried
	// module reads again, which at worst decodes a value once more.
	readers map[string]int
	values  map[string]decodedValue
}

// decodedValue is a value and the result it was decoded from.
type decodedValue struct {
	attempts int
	ended    time.Time
	v        cty.Value
}

func newModuleValues(g *graph.Graph) *moduleValues {
	readers := map[string]int{}
	for _, n := range g.Nodes() {
		for _, d := range n.Deps {
			if slices.Contains(n.Module.References, d.Module) {
				for _, a := range d.Addresses {
					readers[a]++
				}
			}
		}
	}
	return &moduleValues{readers: readers, values: map[string]decodedValue{}}
}

// value is config.ModuleValue(env) for the result of address.
func (c *moduleValues) value(address string, env *coordinator.Envelope) (cty.Value, error) {
	c.mu.Lock()
	dv, ok := c.values[address]
	c.mu.Unlock()
	if !ok || dv.attempts != env.Attempts || !dv.ended.Equal(env.EndedAt) {
		v, err := config.ModuleValue(env)
		if err != nil {
			return cty.NilVal, err
		}
		dv = decodedValue{attempts: env.Attempts, ended: env.EndedAt, v: v}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readers[address]--
	if c.readers[address] > 0 {
		c.values[address] = dv
	} else {
		delete(c.values, address)
	}
	return dv.v, nil
}

// held is how many values are kept (tests).
func (c *moduleValues) held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.values)
}
