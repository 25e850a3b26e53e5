package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/modpipe/modpipe/host/schema"
)

// A reference into another module's result (module.checkout.value.sha) is
// checked before anything runs against the result type the module's kind
// declares (schema.Kind.Result), as Terraform's validate checks a
// resource's attributes: a misspelt attribute would otherwise fail only
// when the module runs, after everything before it did.
//
// The check follows the traversal written in the file, step by step,
// rather than evaluating the expressions with unknown values of the
// declared types: evaluation would change what functions see (a list
// where the run has a tuple, a map where it has an object) and could
// refuse a pipeline the run accepts. A refused valid pipeline is far
// worse than a typo found at run time, so whatever the check cannot
// follow it leaves alone: it stops at a dynamic part, a map, an index it
// cannot know, and anything that is not an object or a list; and it
// looks nowhere inside try() and can(), which exist to test for an
// attribute that may not be there.

// resultRef is one reference into a module's result: the traversal from
// module.NAME as written, with an IndexExpr's key (module.build[matrix.
// target]) as an index step whose key is unknown. plain is true when the
// file wrote it as one traversal (which checkReferences already sees
// through expr.Variables()); guarded when it is inside try() or can().
type resultRef struct {
	tr      hcl.Traversal
	plain   bool
	guarded bool
}

// resultRefs returns every reference into a module's result in exprs,
// each whole: module.build[matrix.target].value.sha is one reference, not
// also module.build.
func resultRefs(exprs []hclsyntax.Expression) []resultRef {
	var out []resultRef
	for _, e := range exprs {
		var guards []hcl.Range
		inner := map[hclsyntax.Node]bool{}
		// VisitAll visits a node before its children, so a chain's
		// outermost node comes first, and a try() before its arguments.
		hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
			if call, ok := n.(*hclsyntax.FunctionCallExpr); ok && (call.Name == "try" || call.Name == "can") {
				guards = append(guards, call.Range())
				return nil
			}
			x, ok := n.(hclsyntax.Expression)
			if !ok || inner[n] {
				return nil
			}
			tr, parts, ok := resultTraversal(x)
			if !ok {
				return nil
			}
			for _, p := range parts {
				inner[p] = true
			}
			start := x.Range().Start.Byte
			guarded := slices.ContainsFunc(guards, func(r hcl.Range) bool {
				return r.Start.Byte <= start && start < r.End.Byte
			})
			_, plain := x.(*hclsyntax.ScopeTraversalExpr)
			out = append(out, resultRef{tr: tr, plain: plain, guarded: guarded})
			return nil
		})
	}
	return out
}

// resultTraversal returns the traversal e makes from module.NAME, when it
// is a chain of traversals and indexes rooted there, and the chain's
// inner nodes.
func resultTraversal(e hclsyntax.Expression) (hcl.Traversal, []hclsyntax.Node, bool) {
	switch x := e.(type) {
	case *hclsyntax.ScopeTraversalExpr:
		if x.Traversal.RootName() != "module" {
			return nil, nil, false
		}
		return x.Traversal, nil, true
	case *hclsyntax.ParenthesesExpr:
		tr, parts, ok := resultTraversal(x.Expression)
		return tr, append(parts, x.Expression), ok
	case *hclsyntax.RelativeTraversalExpr:
		tr, parts, ok := resultTraversal(x.Source)
		if !ok {
			return nil, nil, false
		}
		return append(slices.Clip(tr), x.Traversal...), append(parts, x.Source), true
	case *hclsyntax.IndexExpr:
		tr, parts, ok := resultTraversal(x.Collection)
		if !ok {
			return nil, nil, false
		}
		key := cty.DynamicVal
		if len(x.Key.Variables()) == 0 {
			// A constant key the parser did not fold into the traversal
			// (["a", "b"][0] is rare; "${"x"}" is not).
			if v, d := x.Key.Value(nil); !d.HasErrors() && v.IsWhollyKnown() {
				key = v
			}
		}
		step := hcl.TraverseIndex{Key: key, SrcRange: x.BracketRange}
		return append(slices.Clip(tr), step), append(parts, x.Collection), true
	}
	return nil, nil, false
}

// CheckResultReferences checks every reference m's body and run_if make
// into another module's result value (module.NAME.value..., and
// module.NAME[KEY].value... for a matrix module's instance) against the
// result type that module's kind declares. kindOf returns the kind of a
// module, nil when it is not known (its plugin did not start); a kind
// without a declared result type is not checked.
func (m *Module) CheckResultReferences(kindOf func(module string) *schema.Kind) hcl.Diagnostics {
	var exprs []hclsyntax.Expression
	for _, e := range m.runTimeExprs() {
		if se, ok := e.(hclsyntax.Expression); ok {
			exprs = append(exprs, se)
		}
	}
	var diags hcl.Diagnostics
	for _, ref := range resultRefs(exprs) {
		if ref.guarded {
			continue
		}
		if d := m.resultValueDiag(ref.tr, kindOf); d != nil {
			diags = append(diags, d)
		}
	}
	SortDiagnostics(diags)
	return diags
}

// resultValueDiag checks the steps tr takes into the value of module.NAME
// against its kind's result type; nil when they are fine, or when it
// cannot tell.
func (m *Module) resultValueDiag(tr hcl.Traversal, kindOf func(string) *schema.Kind) *hcl.Diagnostic {
	name, ok := attrName(tr)
	if !ok {
		return nil
	}
	target := m.pipeline.Module(name)
	if target == nil {
		return nil // the graph reports it
	}
	k := kindOf(name)
	if k == nil || k.Result == cty.NilType {
		return nil
	}
	rest := tr[2:]
	if target.DeclaresMatrix() {
		if target.Matrix == nil || len(rest) == 0 {
			return nil
		}
		switch s := rest[0].(type) {
		case hcl.TraverseIndex:
		case hcl.TraverseAttr:
			if !slices.ContainsFunc(target.Matrix.Instances(), func(in Instance) bool { return in.Key == s.Name }) {
				return nil // resultAttributeDiag's to report
			}
		default:
			return nil
		}
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return nil
	}
	if a, ok := rest[0].(hcl.TraverseAttr); !ok || a.Name != "value" {
		return nil // the envelope's attributes: resultAttributeDiag's
	}
	ty := k.Result
	for i, step := range rest[1:] {
		switch {
		case ty.IsObjectType():
			attr, ok := stepName(step)
			if !ok {
				return nil
			}
			if !ty.HasAttribute(attr) {
				return m.unsupportedResultAttribute(tr, len(tr)-len(rest)+1+i, target, k, ty, attr)
			}
			ty = ty.AttributeType(attr)
		case ty.IsListType():
			if _, ok := step.(hcl.TraverseIndex); !ok {
				return nil
			}
			ty = ty.ElementType()
		case ty.IsTupleType():
			i, ok := stepIndex(step)
			if !ok || i < 0 || i >= len(ty.TupleElementTypes()) {
				return nil
			}
			ty = ty.TupleElementType(i)
		default:
			// dynamic, a map (any key), a set, a primitive: nothing
			// more is known.
			return nil
		}
	}
	return nil
}

// stepName is the attribute a step names: .name, or ["name"].
func stepName(step hcl.Traverser) (string, bool) {
	switch s := step.(type) {
	case hcl.TraverseAttr:
		return s.Name, true
	case hcl.TraverseIndex:
		if s.Key.IsKnown() && !s.Key.IsNull() && s.Key.Type() == cty.String {
			return s.Key.AsString(), true
		}
	}
	return "", false
}

// stepIndex is the position a step names: [2], .2 or ["2"].
func stepIndex(step hcl.Traverser) (int, bool) {
	s, ok := step.(hcl.TraverseIndex)
	if !ok || !s.Key.IsKnown() || s.Key.IsNull() {
		return 0, false
	}
	n, err := convert.Convert(s.Key, cty.Number)
	if err != nil {
		return 0, false
	}
	i, acc := n.AsBigFloat().Int64()
	if acc != 0 {
		return 0, false
	}
	return int(i), true
}

// unsupportedResultAttribute reports that step last of tr names attr,
// which the object type ty there does not have.
func (m *Module) unsupportedResultAttribute(tr hcl.Traversal, last int, target *Module, k *schema.Kind, ty cty.Type, attr string) *hcl.Diagnostic {
	known := slices.Sorted(maps.Keys(ty.AttributeTypes()))
	has := "no attributes"
	if len(known) > 0 {
		has = strings.Join(known, ", ")
	}
	where := m.traversalText(tr[:last])
	rng := tr.SourceRange()
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Unsupported attribute",
		Detail: fmt.Sprintf("%s has no attribute %q: module %q is of kind %s, whose result (%s) has %s there.%s",
			where, attr, target.Name, target.Plugin+"."+k.Name, k.ResultType, has, didYouMean(attr, known)),
		Subject: tr[last].SourceRange().Ptr(),
		Context: &rng,
	}
}

// traversalText is tr as the file writes it, for messages.
func (m *Module) traversalText(tr hcl.Traversal) string {
	rng := tr.SourceRange()
	if s := sourceText(m.pipeline.Files[rng.Filename], rng); s != "" {
		return s
	}
	var b strings.Builder
	for _, step := range tr {
		switch s := step.(type) {
		case hcl.TraverseRoot:
			b.WriteString(s.Name)
		case hcl.TraverseAttr:
			b.WriteString("." + s.Name)
		case hcl.TraverseIndex:
			switch {
			case !s.Key.IsKnown() || s.Key.IsNull():
				b.WriteString("[...]")
			case s.Key.Type() == cty.String:
				b.WriteString("[" + strconv.Quote(s.Key.AsString()) + "]")
			case s.Key.Type() == cty.Number:
				b.WriteString("[" + s.Key.AsBigFloat().Text('f', -1) + "]")
			default:
				b.WriteString("[...]")
			}
		}
	}
	return b.String()
}
