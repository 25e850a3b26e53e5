package graph

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/modpipe/modpipe/host/config"
)

// Select returns the part of g that --only, --skip and --category ask for.
//
// Names in only and skip are module names (every instance) or instance
// addresses (test[linux]). With only or categories, the selection is the
// named modules and the modules of those categories, plus everything they
// depend on, transitively; with neither, it is the whole graph. skip then
// removes the named nodes, and with them every node that depends on a
// removed one, which is reported as a warning so the user knows. Unknown
// names and categories are errors with a "did you mean" suggestion.
func (g *Graph) Select(only, skip, categories []string) (*Graph, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	onlyNodes, d := g.resolve("--only", only)
	diags = append(diags, d...)
	skipNodes, d := g.resolve("--skip", skip)
	diags = append(diags, d...)

	var known []string
	for _, m := range g.pipeline.Modules {
		if m.Category != "" && !contains(known, m.Category) {
			known = append(known, m.Category)
		}
	}
	sort.Strings(known)
	for _, c := range categories {
		if !contains(known, c) {
			detail := fmt.Sprintf("No module has category %q.", c)
			if len(known) == 0 {
				detail += " No module in this file sets category."
			} else if s := config.Suggest(c, known); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			} else {
				detail += fmt.Sprintf(" The categories are: %s.", strings.Join(known, ", "))
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown category in --category", Detail: detail})
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}

	keep := map[string]bool{}
	if len(only) == 0 && len(categories) == 0 {
		for _, n := range g.nodes {
			keep[n.Address] = true
		}
	} else {
		var visit func(n *Node)
		visit = func(n *Node) {
			if keep[n.Address] {
				return
			}
			keep[n.Address] = true
			for _, d := range n.Deps {
				for _, a := range d.Addresses {
					visit(g.byAddr[a])
				}
			}
		}
		for _, n := range onlyNodes {
			visit(n)
		}
		for _, n := range g.nodes {
			if n.Module.Category != "" && contains(categories, n.Module.Category) {
				visit(n)
			}
		}
	}

	skipped := map[string]bool{}
	for _, n := range skipNodes {
		skipped[n.Address] = true
		delete(keep, n.Address)
	}
	// Nodes are not in dependency order, so remove dependents until
	// nothing changes; the first removed dependency is the one reported.
	for changed := true; changed; {
		changed = false
		for _, n := range g.nodes {
			if !keep[n.Address] {
				continue
			}
			if gone := firstMissing(n, keep); gone != "" {
				delete(keep, n.Address)
				changed = true
				why := "was removed by --skip"
				if !skipped[gone] {
					why = "was removed because one of its dependencies was skipped"
				}
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagWarning,
					Summary:  fmt.Sprintf("%s is not selected", n.Address),
					Detail:   fmt.Sprintf("%s depends on %s, which %s, so %s will not run either.", n.Address, gone, why, n.Address),
				})
			}
		}
	}

	sub := &Graph{pipeline: g.pipeline}
	for _, n := range g.nodes {
		if !keep[n.Address] {
			continue
		}
		c := *n
		c.Deps = append([]Dep(nil), n.Deps...)
		sub.nodes = append(sub.nodes, &c)
	}
	if len(sub.nodes) == 0 {
		// A run of nothing would pass for a run of everything asked for.
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Nothing selected",
			Detail:   "--only, --skip and --category together leave no module to run.",
		})
	}
	sub.index()
	return sub, diags
}

// firstMissing returns the first dependency address of n that is not kept.
func firstMissing(n *Node, keep map[string]bool) string {
	for _, d := range n.Deps {
		for _, a := range d.Addresses {
			if !keep[a] {
				return a
			}
		}
	}
	return ""
}

// resolve turns module names and instance addresses into nodes.
func (g *Graph) resolve(flag string, names []string) ([]*Node, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	var out []*Node
	for _, name := range names {
		if n, ok := g.byAddr[name]; ok {
			out = append(out, n)
			continue
		}
		if ns := g.byModule[name]; len(ns) > 0 {
			out = append(out, ns...)
			continue
		}
		candidates := make([]string, 0, len(g.nodes))
		for _, m := range g.pipeline.Modules {
			candidates = append(candidates, m.Name)
		}
		for _, n := range g.nodes {
			if n.Instance != nil {
				candidates = append(candidates, n.Address)
			}
		}
		detail := fmt.Sprintf("There is no module %q in %s.", name, g.pipeline.Filename)
		if s := config.Suggest(name, candidates); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		} else if base, _, indexed := strings.Cut(name, "["); indexed && len(g.byModule[base]) > 0 {
			// A matrix module, an instance it does not have: name them.
			var addrs []string
			for _, n := range g.byModule[base] {
				addrs = append(addrs, n.Address)
			}
			const show = 10
			list := strings.Join(addrs[:min(len(addrs), show)], ", ")
			if len(addrs) > show {
				list += fmt.Sprintf(" and %d more", len(addrs)-show)
			}
			detail = fmt.Sprintf("Module %q has no instance %q; its instances are %s (or give %q for all of them).", base, name, list, base)
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown module in " + flag, Detail: detail})
	}
	return out, diags
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
