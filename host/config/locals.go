package config

import (
	"fmt"
	"maps"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// decodeLocals evaluates every local in dependency order, whatever the
// order in the file, and reports cycles between them.
func (p *Pipeline) decodeLocals(blocks []*hcl.Block) hcl.Diagnostics {
	var diags hcl.Diagnostics
	attrs := map[string]*hcl.Attribute{}
	for _, b := range blocks {
		battrs, d := b.Body.JustAttributes()
		diags = append(diags, d...)
		for name, a := range battrs {
			if prev, ok := attrs[name]; ok {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  fmt.Sprintf("Duplicate local %q", name),
					Detail:   fmt.Sprintf("local.%s was already defined at %s. Each local may be defined once, across all locals blocks.", name, prev.Range),
					Subject:  a.NameRange.Ptr(),
				})
				continue
			}
			attrs[name] = a
		}
	}
	names := make([]string, 0, len(attrs))
	for n := range attrs {
		names = append(names, n)
	}
	// Evaluate in source order so diagnostics come out in a stable order.
	sort.Slice(names, func(i, j int) bool {
		return attrs[names[i]].Range.Start.Byte < attrs[names[j]].Range.Start.Byte
	})

	const (
		unvisited = iota
		visiting
		done
	)
	state := map[string]int{}
	var stack []string
	// A local sees the locals it names, not all of them: an object of
	// every local built for each one made n locals cost n^2 (8,000 took
	// host validate 7 s). Any other use of local (local["x"], local
	// itself) gets the whole context; a local that does not exist is
	// left out either way, and its error reads the same.
	var base *hcl.EvalContext
	localContext := func(expr hcl.Expression) *hcl.EvalContext {
		named := map[string]cty.Value{}
		for _, tr := range expr.Variables() {
			if tr.RootName() != "local" {
				continue
			}
			ref, ok := attrName(tr)
			if !ok {
				return p.EvalContext(Scope{Facts: p.facts})
			}
			if v, exists := p.Locals[ref]; exists {
				named[ref] = v
			}
		}
		if base == nil {
			base = p.EvalContext(Scope{Facts: p.facts})
		}
		vars := maps.Clone(base.Variables)
		vars["local"] = objectOrEmpty(named)
		return &hcl.EvalContext{Variables: vars, Functions: base.Functions}
	}
	var visit func(name string)
	visit = func(name string) {
		switch state[name] {
		case done:
			return
		case visiting:
			// The stack from name's first appearance is the cycle.
			i := 0
			for stack[i] != name {
				i++
			}
			chain := append(append([]string{}, stack[i:]...), name)
			for k := range chain {
				chain[k] = "local." + chain[k]
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cycle between locals",
				Detail:   fmt.Sprintf("These locals refer to each other in a circle: %s. Break the cycle by computing one of them without the others.", strings.Join(chain, " -> ")),
				Subject:  attrs[stack[len(stack)-1]].Expr.Range().Ptr(),
			})
			// Mark the members as failed so they do not report again.
			for _, n := range stack[i:] {
				p.Locals[n] = cty.DynamicVal
			}
			return
		}
		if v, ok := p.givenLocals[name]; ok {
			// Evaluated by the master with its own env() and run.*.
			state[name] = done
			p.Locals[name] = v
			return
		}
		a := attrs[name]
		state[name] = visiting
		stack = append(stack, name)
		bad := false
		for _, tr := range a.Expr.Variables() {
			switch tr.RootName() {
			case "local":
				ref, ok := attrName(tr)
				if !ok {
					continue
				}
				if _, exists := attrs[ref]; !exists {
					// Left for evaluation to report with a suggestion.
					continue
				}
				visit(ref)
			case "module":
				bad = true
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Module result in a local",
					Detail:   fmt.Sprintf("local.%s refers to a module's result, but locals are evaluated when the file is loaded, before any module runs. Use the module reference directly in the module that needs it.", name),
					Subject:  tr.SourceRange().Ptr(),
				})
			case "matrix":
				bad = true
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Matrix value in a local",
					Detail:   fmt.Sprintf("local.%s refers to matrix.*, which exists only inside a module with a matrix.", name),
					Subject:  tr.SourceRange().Ptr(),
				})
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = done
		if _, failed := p.Locals[name]; failed {
			return
		}
		if bad {
			p.Locals[name] = cty.DynamicVal
			return
		}
		v, d := a.Expr.Value(localContext(a.Expr))
		diags = append(diags, d...)
		if d.HasErrors() {
			v = cty.DynamicVal
		}
		p.Locals[name] = v
	}
	for _, n := range names {
		visit(n)
	}
	return diags
}

// attrName returns the attribute name after a traversal's root
// (NAME in var.NAME, local.NAME, module.NAME).
func attrName(tr hcl.Traversal) (string, bool) {
	if len(tr) < 2 {
		return "", false
	}
	if a, ok := tr[1].(hcl.TraverseAttr); ok {
		return a.Name, true
	}
	return "", false
}
