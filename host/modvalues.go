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
	values  map[string]*decodedValue
	// decode is config.ModuleValue (tests count its calls).
	decode func(*coordinator.Envelope) (cty.Value, error)
}

// decodedValue is a value and the result it was decoded from. The first
// reader decodes it; readers that come meanwhile wait for that decode
// rather than make their own: 20 modules starting at once on a 1 MB
// result each decoded it, 21 s and 384 MB where one decode took 0.2 s.
type decodedValue struct {
	attempts int
	ended    time.Time
	ready    chan struct{} // closed once v and err are set
	v        cty.Value
	err      error
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
	return &moduleValues{readers: readers, values: map[string]*decodedValue{}, decode: config.ModuleValue}
}

// value is config.ModuleValue(env) for the result of address.
func (c *moduleValues) value(address string, env *coordinator.Envelope) (cty.Value, error) {
	c.mu.Lock()
	dv := c.values[address]
	if dv == nil || dv.attempts != env.Attempts || !dv.ended.Equal(env.EndedAt) {
		dv = &decodedValue{attempts: env.Attempts, ended: env.EndedAt, ready: make(chan struct{})}
		c.values[address] = dv
		c.mu.Unlock()
		dv.v, dv.err = c.decode(env)
		close(dv.ready)
	} else {
		c.mu.Unlock()
		<-dv.ready
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readers[address]--
	if c.readers[address] <= 0 && c.values[address] == dv {
		delete(c.values, address)
	}
	if dv.err != nil {
		return cty.NilVal, dv.err
	}
	return dv.v, nil
}

// held is how many values are kept (tests).
func (c *moduleValues) held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.values)
}
