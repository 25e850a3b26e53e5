package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// runFacts are the attributes of run.*.
var runFacts = []string{"os", "arch", "instance", "ci", "capabilities"}

// scopeRoots are the names an expression may start with.
var scopeRoots = []string{"var", "local", "run", "matrix", "module"}

// runTimeExprs returns the expressions evaluated when the module runs:
// the plugin's attributes (in nested blocks too) and run_if.
func (m *Module) runTimeExprs() []hcl.Expression {
	var out []hcl.Expression
	var walk func(b *hclsyntax.Body, top bool)
	walk = func(b *hclsyntax.Body, top bool) {
		for name, a := range b.Attributes {
			if top && isMetaArgument(name) {
				continue
			}
			out = append(out, a.Expr)
		}
		for _, blk := range b.Blocks {
			if top && (blk.Type == "retry" || blk.Type == "matrix") {
				continue
			}
			walk(blk.Body, false)
		}
	}
	if sb, ok := m.Body.(*hclsyntax.Body); ok {
		walk(sb, true)
	}
	if m.RunIf != nil {
		out = append(out, m.RunIf)
	}
	return out
}

// runTimeTraversals returns every variable traversal of runTimeExprs, in
// source order.
func (m *Module) runTimeTraversals() []hcl.Traversal {
	var out []hcl.Traversal
	for _, e := range m.runTimeExprs() {
		out = append(out, e.Variables()...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].SourceRange().Start.Byte < out[j].SourceRange().Start.Byte
	})
	return out
}

// checkReferences records the modules m refers to and reports references
// to names that do not exist, with a suggestion. Unknown module names are
// left to the graph, which reports them with the other graph errors.
func (m *Module) checkReferences() hcl.Diagnostics {
	var diags hcl.Diagnostics
	p := m.pipeline
	var syntax []hclsyntax.Expression
	for _, e := range m.runTimeExprs() {
		if se, ok := e.(hclsyntax.Expression); ok {
			syntax = append(syntax, se)
		}
	}
	indexed := indexedModuleRefs(syntax)
	interpolated := interpolatedNames(syntax)
	for _, tr := range m.runTimeTraversals() {
		root := tr.RootName()
		rng := tr.SourceRange()
		name, hasName := attrName(tr)
		unknown := func(summary, detail string) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  summary,
				Detail:   detail,
				Subject:  rng.Ptr(),
			})
		}
		if !hasName && root != "module" {
			if contains(scopeRoots, root) {
				unknown("Invalid reference", fmt.Sprintf("%s cannot be used on its own; refer to one of its attributes, such as %s.NAME.", root, root))
			} else {
				hint := didYouMean(root, scopeRoots)
				if hint == "" && interpolated[rng.Start.Byte] {
					// ${HOME} in a shell script: the most common first
					// mistake in a module's script.
					hint = fmt.Sprintf(" To pass ${%s} through to a shell or another tool, write $${%s}.", root, root)
				}
				unknown("Unknown variable", fmt.Sprintf("There is no variable named %q.%s", root, hint))
			}
			continue
		}
		switch root {
		case "module":
			if !hasName {
				unknown("Invalid module reference", "Refer to a module as module.NAME, for example module.build.value.")
				continue
			}
			if !contains(m.References, name) {
				m.References = append(m.References, name)
			}
			m.noteInstance(name, tr, indexed[rng.Start.Byte])
			if d := resultAttributeDiag(p, name, tr); d != nil {
				diags = append(diags, d)
			}
			if _, seen := m.RefRanges[name]; !seen {
				m.RefRanges[name] = rng
			}
		case "var":
			if _, ok := p.Variables[name]; !ok {
				unknown("Reference to undeclared variable", fmt.Sprintf("There is no variable %q; declare it with a variable %q block.%s", name, name, didYouMean(name, sortedKeys(p.Variables))))
			}
		case "local":
			if _, ok := p.Locals[name]; !ok {
				unknown("Reference to undeclared local", fmt.Sprintf("There is no local %q; define it in a locals block.%s", name, didYouMean(name, sortedKeys(p.Locals))))
			}
		case "run":
			if !contains(runFacts, name) {
				unknown("Unknown run fact", fmt.Sprintf("run has no attribute %q; it has os, arch, instance, ci and capabilities.%s", name, didYouMean(name, runFacts)))
			}
		case "matrix":
			if m.Matrix == nil {
				if !m.matrixDeclared { // else its errors were reported already
					unknown("Matrix value outside a matrix", fmt.Sprintf("Module %q has no matrix, so matrix.%s has no value here. Add matrix = [...] to the module, or remove the reference.", m.Name, name))
				}
				continue
			}
			axes := m.Matrix.AxisNames()
			if !contains(axes, name) {
				unknown("Unknown matrix axis", fmt.Sprintf("The matrix of %q has no axis %q; its axes are %v.%s", m.Name, name, axes, didYouMean(name, axes)))
			}
		default:
			unknown("Unknown variable", fmt.Sprintf("There is no variable named %q.%s", root, didYouMean(root, scopeRoots)))
		}
	}
	// module.build[matrix.target].valeu: expr.Variables() gives only
	// module.build of it, the rest being a traversal of the index.
	reported := map[hcl.Pos]bool{}
	for _, d := range diags {
		if d.Subject != nil {
			reported[d.Subject.Start] = true
		}
	}
	for _, ref := range resultRefs(syntax) {
		name, ok := attrName(ref.tr)
		if ref.plain || !ok {
			continue
		}
		if d := resultAttributeDiag(p, name, ref.tr); d != nil && !reported[d.Subject.Start] {
			diags = append(diags, d)
		}
	}
	return diags
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// EnvelopeAttributes are the attributes of module.NAME (ModuleValue).
var EnvelopeAttributes = []string{"value", "status", "type", "attempts", "duration_ms", "instance", "host", "skip_reason", "error", "ignored_failure"}

// resultAttributeDiag checks the attribute tr (module.NAME...) reads of
// a module's result, which has a fixed set: a misspelt one (module.build.
// valeu) would otherwise fail only when the module runs. On a matrix
// module, an attribute of the result needs an instance first.
func resultAttributeDiag(p *Pipeline, name string, tr hcl.Traversal) *hcl.Diagnostic {
	target := p.Module(name)
	if target == nil || len(tr) < 3 {
		return nil
	}
	rest := tr[2:]
	if target.Matrix != nil {
		a, ok := rest[0].(hcl.TraverseAttr)
		if !ok {
			rest = rest[1:] // module.test["linux"]...
		} else {
			var keys []string
			for _, in := range target.Matrix.Instances() {
				keys = append(keys, in.Key)
			}
			if contains(keys, a.Name) {
				rest = rest[1:] // module.test.linux...
			} else {
				example := a.Name
				if contains(EnvelopeAttributes, a.Name) && len(keys) > 0 {
					example = fmt.Sprintf("module.%s[%q].%s", name, keys[0], a.Name)
				}
				return &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Matrix module used as one result",
					Detail: fmt.Sprintf("Module %q is a matrix module: module.%s maps each instance key (%s) to that instance's result. Pick an instance, as in %s, or go over them: [for key, r in module.%s : r.%s].",
						name, name, strings.Join(keys, ", "), example, name, a.Name),
					Subject: a.SrcRange.Ptr(),
				}
			}
		}
	}
	if len(rest) == 0 {
		return nil
	}
	a, ok := rest[0].(hcl.TraverseAttr)
	if !ok || contains(EnvelopeAttributes, a.Name) {
		return nil
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Unsupported attribute",
		Detail: fmt.Sprintf("A module's result has no attribute %q; it has %s (the plugin's result is under value).%s",
			a.Name, strings.Join(EnvelopeAttributes, ", "), didYouMean(a.Name, EnvelopeAttributes)),
		Subject: a.SrcRange.Ptr(),
	}
}

// interpolatedNames returns the start of each bare name interpolated in a
// string template ("${NAME}"), where an unknown name is most likely meant
// for the shell or tool that reads the string.
func interpolatedNames(exprs []hclsyntax.Expression) map[int]bool {
	out := map[int]bool{}
	note := func(e hclsyntax.Expression) {
		if st, ok := e.(*hclsyntax.ScopeTraversalExpr); ok && len(st.Traversal) == 1 {
			out[st.SrcRange.Start.Byte] = true
		}
	}
	for _, e := range exprs {
		hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
			switch t := n.(type) {
			case *hclsyntax.TemplateExpr:
				for _, part := range t.Parts {
					note(part)
				}
			case *hclsyntax.TemplateWrapExpr:
				note(t.Wrapped)
			}
			return nil
		})
	}
	return out
}
