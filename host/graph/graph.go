// Package graph expands a loaded pipeline's modules into the graph the
// scheduler runs: one node per module, or per matrix instance, with an
// edge for every depends_on and every module reference in an expression.
// It checks the graph (unknown modules, self-dependencies, cycles), orders
// it (waves, critical path) and selects parts of it (--only, --skip,
// --category). A Graph is immutable and safe for concurrent use.
package graph

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/modpipe/modpipe/host/config"
)

// Node is one unit the scheduler runs: a module, or one instance of a
// matrix module.
type Node struct {
	// Address is NAME, or NAME[key] for a matrix instance.
	Address  string
	Module   *config.Module
	Instance *config.Instance // nil when not a matrix instance
	// Requires are the capabilities the node needs: the module's requires
	// plus the value of the matrix target axis (no other axis).
	Requires []string
	// Deps has one entry per module the node depends on, in file order.
	Deps []Dep
	// Index is the node's position in Nodes().
	Index int
}

// Dep is a dependency on a module: on every one of its instances.
type Dep struct {
	Module    string
	Addresses []string
}

// Graph is the expanded module graph.
type Graph struct {
	pipeline   *config.Pipeline
	nodes      []*Node
	byAddr     map[string]*Node
	byModule   map[string][]*Node
	dependents map[string][]*Node
	critical   map[string]int
	waves      [][]*Node
}

// Address is the address of a module's instance: NAME or NAME[key].
func Address(module string, in *config.Instance) string {
	if in == nil {
		return module
	}
	return module + "[" + in.Key + "]"
}

// Build expands p's matrices and connects the nodes. It reports
// dependencies on unknown modules (with a suggestion), self-dependencies
// and cycles: one diagnostic per cycle, naming every module in it in
// order. The Graph is nil when there are errors.
func Build(p *config.Pipeline) (*Graph, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	names := p.ModuleNames()
	// deps[m] are the module names m depends on, in file order, known only.
	deps := map[string][]string{}
	for _, m := range p.Modules {
		want := map[string]bool{}
		for _, list := range [][]string{m.DependsOn, m.References} {
			for _, d := range list {
				rng := m.RefRanges[d]
				switch {
				case p.Module(d) == nil:
					detail := fmt.Sprintf("Module %q depends on module %q, which is not declared in this file.", m.Name, d)
					// Never the module itself: depending on it is a cycle.
					others := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == m.Name })
					if s := config.Suggest(d, others); s != "" {
						detail += fmt.Sprintf(" Did you mean %q?", s)
					}
					diags = append(diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  "Reference to undeclared module",
						Detail:   detail,
						Subject:  rangePtr(rng),
					})
				case d == m.Name:
					diags = append(diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  "Module depends on itself",
						Detail:   fmt.Sprintf("Module %q refers to itself, so it could never start. A module can use only the results of other modules.", m.Name),
						Subject:  rangePtr(rng),
					})
				default:
					want[d] = true
				}
			}
		}
		list := make([]string, 0, len(want))
		for d := range want {
			list = append(list, d)
		}
		// File order of the depended-on modules, without scanning every
		// module for every module (quadratic at 10,000 modules).
		sort.Slice(list, func(i, j int) bool { return p.Module(list[i]).Index < p.Module(list[j]).Index })
		deps[m.Name] = list
	}
	diags = append(diags, cycles(p, deps)...)
	config.SortDiagnostics(diags)
	if diags.HasErrors() {
		return nil, diags
	}

	g := &Graph{pipeline: p}
	for _, m := range p.Modules {
		if m.Matrix == nil {
			g.nodes = append(g.nodes, &Node{Address: m.Name, Module: m, Requires: requires(m, nil)})
			continue
		}
		for _, in := range m.Matrix.Instances() {
			in := in
			g.nodes = append(g.nodes, &Node{Address: Address(m.Name, &in), Module: m, Instance: &in, Requires: requires(m, &in)})
		}
	}
	byModule := map[string][]string{}
	for _, n := range g.nodes {
		byModule[n.Module.Name] = append(byModule[n.Module.Name], n.Address)
	}
	// Narrow each instance's dependencies to the instances its references
	// name: a literal key names the same for every instance, an index of
	// matrix values (module.build[matrix.target]) its own. A bad key is
	// reported once, however many instances name it.
	reported := map[string]bool{}
	for _, n := range g.nodes {
		var values map[string]string
		if n.Instance != nil {
			values = n.Instance.Values
		}
		for _, d := range deps[n.Module.Name] {
			addrs, d2 := instancesReferred(p, n.Module, d, byModule[d], values)
			for _, diag := range d2 {
				if key := diag.Summary + diag.Detail; !reported[key] {
					reported[key] = true
					diags = append(diags, diag)
				}
			}
			n.Deps = append(n.Deps, Dep{Module: d, Addresses: addrs})
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	g.index()
	return g, diags
}

func rangePtr(r hcl.Range) *hcl.Range {
	if r.Filename == "" {
		return nil
	}
	return &r
}

// requires is the module's requires plus the instance's target, without
// case-insensitive duplicates.
func requires(m *config.Module, in *config.Instance) []string {
	out := make([]string, 0, len(m.Requires)+1)
	add := func(s string) {
		for _, x := range out {
			if strings.EqualFold(x, s) {
				return
			}
		}
		out = append(out, s)
	}
	for _, r := range m.Requires {
		add(r)
	}
	if in != nil {
		if t, ok := in.Values[config.MatrixTargetAxis]; ok {
			add(t)
		}
	}
	return out
}

// index computes everything derived from nodes and their Deps.
func (g *Graph) index() {
	g.byAddr = make(map[string]*Node, len(g.nodes))
	g.byModule = map[string][]*Node{}
	g.dependents = map[string][]*Node{}
	for i, n := range g.nodes {
		n.Index = i
		g.byAddr[n.Address] = n
		g.byModule[n.Module.Name] = append(g.byModule[n.Module.Name], n)
	}
	for _, n := range g.nodes {
		for _, d := range n.Deps {
			for _, a := range d.Addresses {
				g.dependents[a] = append(g.dependents[a], n)
			}
		}
	}
	// Nodes are in file order but a module may depend on one declared
	// later, so compute depths by memoised recursion (the graph is acyclic).
	depth := map[string]int{}
	var depthOf func(n *Node) int
	depthOf = func(n *Node) int {
		if d, ok := depth[n.Address]; ok {
			return d
		}
		d := 0
		for _, dep := range n.Deps {
			for _, a := range dep.Addresses {
				if x := depthOf(g.byAddr[a]) + 1; x > d {
					d = x
				}
			}
		}
		depth[n.Address] = d
		return d
	}
	g.waves = nil
	for _, n := range g.nodes {
		d := depthOf(n)
		for len(g.waves) <= d {
			g.waves = append(g.waves, nil)
		}
		g.waves[d] = append(g.waves[d], n)
	}
	g.critical = map[string]int{}
	var critical func(n *Node) int
	critical = func(n *Node) int {
		if c, ok := g.critical[n.Address]; ok {
			return c
		}
		c := 0
		for _, dn := range g.dependents[n.Address] {
			if x := critical(dn) + 1; x > c {
				c = x
			}
		}
		g.critical[n.Address] = c
		return c
	}
	for _, n := range g.nodes {
		critical(n)
	}
}

// Pipeline returns the pipeline the graph was built from.
func (g *Graph) Pipeline() *config.Pipeline { return g.pipeline }

// Nodes returns every node: modules in file order, a matrix module's
// instances in axis order.
func (g *Graph) Nodes() []*Node { return g.nodes }

// Node returns the node at addr.
func (g *Graph) Node(addr string) (*Node, bool) {
	n, ok := g.byAddr[addr]
	return n, ok
}

// Instances returns the nodes of module: one for a plain module, one per
// instance for a matrix module, none when the module is not in the graph.
func (g *Graph) Instances(module string) []*Node { return g.byModule[module] }

// Dependents returns the nodes that depend on addr, in graph order.
func (g *Graph) Dependents(addr string) []*Node { return g.dependents[addr] }

// Waves returns the nodes in topological layers: the first wave has no
// dependencies, and every node is one wave after its deepest dependency.
func (g *Graph) Waves() [][]*Node { return g.waves }

// CriticalPath returns the length of the longest chain of dependents below
// the node at addr: 0 for a node nothing depends on.
func (g *Graph) CriticalPath(addr string) int { return g.critical[addr] }

// cycles finds the strongly connected components of the module graph
// (Tarjan) and reports each one that has more than one module.
func cycles(p *config.Pipeline, deps map[string][]string) hcl.Diagnostics {
	index := map[string]int{}
	low := map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	var sccs [][]string
	next := 0
	var strong func(v string)
	strong = func(v string) {
		index[v], low[v] = next, next
		next++
		stack = append(stack, v)
		onStack[v] = true
		for _, w := range deps[v] {
			if _, seen := index[w]; !seen {
				strong(w)
				low[v] = min(low[v], low[w])
			} else if onStack[w] {
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			var scc []string
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				scc = append(scc, w)
				if w == v {
					break
				}
			}
			if len(scc) > 1 {
				sccs = append(sccs, scc)
			}
		}
	}
	for _, m := range p.Modules {
		if _, seen := index[m.Name]; !seen {
			strong(m.Name)
		}
	}

	var diags hcl.Diagnostics
	for _, scc := range sccs {
		walk := cycleWalk(p, deps, scc)
		// The edge that closes the walk: the last module's reference to
		// the first.
		last, first := p.Module(walk[len(walk)-2]), walk[0]
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Dependency cycle",
			Detail: fmt.Sprintf("These modules depend on each other in a cycle, so none of them could ever start: %s. Remove one of the dependencies.",
				strings.Join(walk, " -> ")),
			Subject: rangePtr(last.RefRanges[first]),
		})
	}
	return diags
}

// cycleWalk returns a closed walk through every module of a strongly
// connected component, following dependency edges, starting and ending at
// its first module in file order. For a simple cycle that is the cycle
// itself (a -> b -> c -> a); a component made of several cycles gets one
// walk that names every module rather than one diagnostic per cycle.
func cycleWalk(p *config.Pipeline, deps map[string][]string, scc []string) []string {
	in := map[string]bool{}
	for _, s := range scc {
		in[s] = true
	}
	sort.Slice(scc, func(i, j int) bool { return p.Module(scc[i]).Index < p.Module(scc[j]).Index })
	start := scc[0]
	visited := map[string]bool{start: true}
	walk := []string{start}
	cur := start
	for len(visited) < len(scc) {
		path := shortestPath(deps, in, cur, func(n string) bool { return !visited[n] })
		for _, n := range path[1:] {
			visited[n] = true
		}
		walk = append(walk, path[1:]...)
		cur = walk[len(walk)-1]
	}
	back := shortestPath(deps, in, cur, func(n string) bool { return n == start })
	return append(walk, back[1:]...)
}

// shortestPath is a breadth-first search from from (inside the component
// in) to the first node that satisfies goal, exploring edges in file
// order. It returns the path including both ends.
func shortestPath(deps map[string][]string, in map[string]bool, from string, goal func(string) bool) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, d := range deps[n] {
			if !in[d] {
				continue
			}
			if _, seen := prev[d]; seen && !goal(d) {
				continue
			}
			if goal(d) {
				path := []string{d}
				for x := n; x != ""; x = prev[x] {
					path = append(path, x)
				}
				for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
					path[i], path[j] = path[j], path[i]
				}
				return path
			}
			prev[d] = n
			queue = append(queue, d)
		}
	}
	// Unreachable inside a strongly connected component.
	return []string{from}
}

// instancesReferred narrows the dependency on module dep of m's instance
// with matrix values (nil: not a matrix instance) to the instances its
// references name (see config.Module.InstanceKeys); a reference without
// a key depends on every instance. all are dep's addresses in order.
func instancesReferred(p *config.Pipeline, m *config.Module, dep string, all []string, values map[string]string) ([]string, hcl.Diagnostics) {
	target := p.Module(dep)
	if target.Matrix == nil {
		if rng, ok := m.IndexedRef(dep); ok && !target.DeclaresMatrix() {
			return all, hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Instance of a module without a matrix",
				Detail:   fmt.Sprintf("Module %q refers to an instance of module %q, which has no matrix and so no instances: refer to it as module.%s.", m.Name, dep, dep),
				Subject:  rangePtr(rng),
			}}
		}
		return append([]string(nil), all...), nil
	}
	keys, every := m.InstanceKeys(dep, values)
	if every || len(keys) == 0 {
		return append([]string(nil), all...), nil
	}
	var out []string
	var diags hcl.Diagnostics
	for _, k := range keys {
		addr := dep + "[" + k + "]"
		found := false
		for _, a := range all {
			if a == addr {
				found = true
				break
			}
		}
		if !found {
			var known []string
			for _, in := range target.Matrix.Instances() {
				known = append(known, in.Key)
			}
			quoted := make([]string, len(known))
			for i, key := range known {
				quoted[i] = strconv.Quote(key) // multi-axis keys hold commas
			}
			detail := fmt.Sprintf("Module %q refers to instance %q of matrix module %q, which has the instances %s.", m.Name, k, dep, strings.Join(quoted, ", "))
			if s := config.Suggest(k, known); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Reference to an unknown matrix instance",
				Detail:   detail,
				Subject:  rangePtr(m.InstanceKeyRange(dep, k, values)),
			})
			continue
		}
		out = append(out, addr)
	}
	// Keep the matrix's own order, whatever order the references came in.
	sort.Slice(out, func(i, j int) bool { return indexOf(all, out[i]) < indexOf(all, out[j]) })
	return out, diags
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}
