package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// DAG is a layered module graph: Layers layers of Width modules, each
// module after the first layer depending on Fanin distinct random modules
// of the layer above. The same seed gives the same graph, so every tool
// runs exactly the same work.
type DAG struct {
	Layers, Width, Fanin int
	// Deps[l][i] are the indexes in layer l-1 that module (l, i) needs.
	Deps [][][]int
}

// newDAG builds the graph from seed.
func newDAG(layers, width, fanin int, seed uint64) *DAG {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	d := &DAG{Layers: layers, Width: width, Fanin: min(fanin, width), Deps: make([][][]int, layers)}
	for l := range layers {
		d.Deps[l] = make([][]int, width)
		if l == 0 {
			continue
		}
		for i := range width {
			picked := map[int]bool{}
			for len(picked) < d.Fanin {
				picked[r.IntN(width)] = true
			}
			deps := make([]int, 0, d.Fanin)
			for j := range width { // in index order, so the files are stable
				if picked[j] {
					deps = append(deps, j)
				}
			}
			d.Deps[l][i] = deps
		}
	}
	return d
}

// Modules is the number of modules.
func (d *DAG) Modules() int { return d.Layers * d.Width }

// names lists every module, layer by layer.
func (d *DAG) names() []string {
	out := make([]string, 0, d.Modules())
	for l := range d.Layers {
		for i := range d.Width {
			out = append(out, name(l, i))
		}
	}
	return out
}

func name(l, i int) string { return fmt.Sprintf("m%d_%d", l, i) }

// moduleName, in a module body given to Pipeline, is replaced by the
// module's name.
const moduleName = "@MODULE@"

// Pipeline renders the DAG as a pipeline.hcl. kind is the module kind
// ("shell" or "bench.noop"); body is each module's attributes, where
// moduleName stands for the module's own name (so that every module's
// config differs, as in a real file).
func (d *DAG) Pipeline(kind, body string) string {
	var b strings.Builder
	b.WriteString("pipeline {\n  name = \"bench\"\n}\n\n")
	for l := range d.Layers {
		for i := range d.Width {
			fmt.Fprintf(&b, "module %q %q {\n", kind, name(l, i))
			if body != "" {
				b.WriteString("  " + strings.ReplaceAll(body, moduleName, name(l, i)) + "\n")
			}
			if deps := d.Deps[l][i]; len(deps) > 0 {
				refs := make([]string, len(deps))
				for k, j := range deps {
					refs[k] = "module." + name(l-1, j)
				}
				fmt.Fprintf(&b, "  depends_on = [%s]\n", strings.Join(refs, ", "))
			}
			b.WriteString("}\n")
		}
	}
	return b.String()
}

// Makefile renders the DAG for GNU make: phony targets, so every run
// runs every recipe. An empty recipe is make's own cost alone.
func (d *DAG) Makefile(recipe string) string {
	var b strings.Builder
	// all names every module: a module no one depends on (possible with
	// random edges) must run too, as it does under modpipe.
	all := d.names()
	fmt.Fprintf(&b, "all: %s\n", strings.Join(all, " "))
	b.WriteString(".PHONY: all")
	for l := range d.Layers {
		for i := range d.Width {
			b.WriteString(" " + name(l, i))
		}
	}
	b.WriteString("\n")
	for l := range d.Layers {
		for i := range d.Width {
			fmt.Fprintf(&b, "%s:", name(l, i))
			for _, j := range d.Deps[l][i] {
				b.WriteString(" " + name(l-1, j))
			}
			b.WriteString("\n")
			if recipe != "" {
				b.WriteString("\t@" + recipe + "\n")
			}
		}
	}
	return b.String()
}

// Ninja renders the DAG for ninja. With a command, each module is an
// edge running it (its output never appears, so every run runs every
// edge); without one, every module is a phony edge: ninja's own cost.
func (d *DAG) Ninja(command string) string {
	var b strings.Builder
	rule := "phony"
	if command != "" {
		rule = "run"
		fmt.Fprintf(&b, "rule run\n  command = %s\n\n", command)
	}
	for l := range d.Layers {
		for i := range d.Width {
			fmt.Fprintf(&b, "build %s: %s", name(l, i), rule)
			if deps := d.Deps[l][i]; len(deps) > 0 {
				if rule != "phony" {
					b.WriteString(" |")
				}
				for _, j := range deps {
					b.WriteString(" " + name(l-1, j))
				}
			}
			b.WriteString("\n")
		}
	}
	fmt.Fprintf(&b, "build all: phony %s\ndefault all\n", strings.Join(d.names(), " "))
	return b.String()
}

// writeFile writes content to dir/name and returns the path.
func writeFile(dir, name, content string) (string, error) {
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	return p, nil
}
