package config

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/modpipe/modpipe/host/hclscan"
)

// MetaArguments are the names in a module block that the host owns. A
// plugin attribute can never use one of them.
var MetaArguments = []string{
	"always_run", "category", "depends_on", "ignore_failure", "limits", "matrix",
	"not_in_parallel", "pin_to_master", "priority", "requires", "retry", "run_if", "timeout",
}

func isMetaArgument(name string) bool {
	for _, n := range MetaArguments {
		if n == name {
			return true
		}
	}
	return false
}

var moduleMetaSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "depends_on"}, {Name: "timeout"}, {Name: "always_run"}, {Name: "ignore_failure"},
		{Name: "pin_to_master"}, {Name: "priority"}, {Name: "category"}, {Name: "requires"},
		{Name: "not_in_parallel"}, {Name: "limits"}, {Name: "run_if"}, {Name: "matrix"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "retry"}, {Type: "matrix"}},
}

var retrySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "attempts"}, {Name: "backoff"}},
}

func (p *Pipeline) decodeModule(b *hcl.Block, ctx *hcl.EvalContext) hcl.Diagnostics {
	kindLabel, name := b.Labels[0], b.Labels[1]
	var diags hcl.Diagnostics
	m := &Module{
		Name:      name,
		Index:     len(p.Modules),
		DeclRange: b.DefRange,
		KindRange: b.LabelRanges[0],
		RefRanges: map[string]hcl.Range{},
		Retry:     Retry{Attempts: 1},
		wholeRefs: map[string]bool{},
		bodyAttrs: map[string]hcl.Expression{},
		pipeline:  p,
	}
	if !hclscan.ValidIdentifier(name) {
		diags = append(diags, invalidName("module", name, b.LabelRanges[1]))
	}
	if prev, ok := p.byName[name]; ok {
		return append(diags, duplicateBlock("module", name, b.LabelRanges[1], prev.DeclRange))
	}
	plugin, kind, dotted := strings.Cut(kindLabel, ".")
	if !hclscan.ValidIdentifier(plugin) || (dotted && !hclscan.ValidIdentifier(kind)) {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid module kind",
			Detail:   fmt.Sprintf("%q is not a module kind. Write PLUGIN for the plugin's default kind or PLUGIN.KIND, for example \"shell\" or \"go.test\".", kindLabel),
			Subject:  b.LabelRanges[0].Ptr(),
		})
	}
	m.Plugin, m.Kind = plugin, kind
	p.Modules = append(p.Modules, m)
	p.byName[name] = m

	content, remain, d := b.Body.PartialContent(moduleMetaSchema)
	diags = append(diags, d...)
	m.Body = remain
	if sb, ok := b.Body.(*hclsyntax.Body); ok {
		for n, a := range sb.Attributes {
			if !isMetaArgument(n) {
				m.bodyAttrs[n] = a.Expr
			}
		}
		// What the meta-argument schema does not take stays in the
		// body for the plugin's schema to refuse: another block, or
		// `retry` written as an attribute.
		m.plainBody = !slices.ContainsFunc(sb.Blocks, func(b *hclsyntax.Block) bool {
			return !slices.ContainsFunc(moduleMetaSchema.Blocks, func(s hcl.BlockHeaderSchema) bool { return s.Type == b.Type })
		})
		for n := range sb.Attributes {
			if isMetaArgument(n) && !slices.ContainsFunc(moduleMetaSchema.Attributes, func(s hcl.AttributeSchema) bool { return s.Name == n }) {
				m.plainBody = false
			}
		}
	}

	attrs := content.Attributes
	if a := attrs["depends_on"]; a != nil {
		diags = append(diags, m.decodeDependsOn(a)...)
	}
	if a := attrs["timeout"]; a != nil {
		v, _, d := evalDuration(a, ctx, false)
		diags = append(diags, d...)
		m.Timeout = v
	}
	for _, f := range []struct {
		name string
		dst  *bool
	}{{"always_run", &m.AlwaysRun}, {"ignore_failure", &m.IgnoreFailure}, {"pin_to_master", &m.PinToMaster}} {
		if a := attrs[f.name]; a != nil {
			v, _, d := evalBool(a, ctx)
			diags = append(diags, d...)
			*f.dst = v
		}
	}
	if a := attrs["priority"]; a != nil {
		v, _, d := evalInt(a, ctx)
		diags = append(diags, d...)
		m.Priority = v
	}
	if a := attrs["category"]; a != nil {
		v, ok, d := evalString(a, ctx)
		diags = append(diags, d...)
		if ok && !hclscan.ValidIdentifier(v) {
			diags = append(diags, attrError(a, "Invalid category", fmt.Sprintf("%q is not a valid category name: use letters, digits, underscores and dashes, starting with a letter, so that it can be named with --category.", v)))
		} else {
			m.Category = v
		}
	}
	if a := attrs["requires"]; a != nil {
		v, ok, d := evalStringList(a, ctx)
		diags = append(diags, d...)
		if ok {
			m.Requires, d = nonEmptyUnique(a, v, "capability")
			diags = append(diags, d...)
		}
	}
	if a := attrs["not_in_parallel"]; a != nil {
		diags = append(diags, m.decodeNotInParallel(a, ctx)...)
	}
	if a := attrs["limits"]; a != nil {
		v, ok, d := evalStringList(a, ctx)
		diags = append(diags, d...)
		if ok {
			diags = append(diags, m.decodeLimits(a, v)...)
		}
	}
	if a := attrs["run_if"]; a != nil {
		m.RunIf = a.Expr
		m.runIfSource = sourceText(p.Files[a.Expr.Range().Filename], a.Expr.Range())
	}

	var retryBlocks, matrixBlocks []*hcl.Block
	for _, blk := range content.Blocks {
		switch blk.Type {
		case "retry":
			retryBlocks = append(retryBlocks, blk)
		case "matrix":
			matrixBlocks = append(matrixBlocks, blk)
		}
	}
	if len(retryBlocks) > 1 {
		diags = append(diags, duplicateBlock("retry", "", retryBlocks[1].DefRange, retryBlocks[0].DefRange))
	}
	if len(retryBlocks) > 0 {
		diags = append(diags, m.decodeRetry(retryBlocks[0], ctx)...)
	}
	if len(matrixBlocks) > 1 {
		diags = append(diags, duplicateBlock("matrix", "", matrixBlocks[1].DefRange, matrixBlocks[0].DefRange))
	}
	m.matrixDeclared = attrs["matrix"] != nil || len(matrixBlocks) > 0
	switch a := attrs["matrix"]; {
	case a != nil && len(matrixBlocks) > 0:
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Two matrix definitions",
			Detail:   fmt.Sprintf("Module %q has both a matrix attribute and a matrix block (at %s). Use the attribute for one axis (matrix.target) or the block for several.", name, matrixBlocks[0].DefRange),
			Subject:  a.NameRange.Ptr(),
		})
	case a != nil:
		diags = append(diags, m.decodeMatrixAttr(a, ctx)...)
	case len(matrixBlocks) > 0:
		diags = append(diags, m.decodeMatrixBlock(matrixBlocks[0], ctx)...)
	}
	if !m.matrixDeclared {
		// depends_on = [module.build[matrix.target]] names the instance
		// of this module's own matrix values: without a matrix there are
		// none (the body's references are checked with the rest).
		for _, key := range m.dependsKeys {
			for _, tr := range key.Variables() {
				if tr.RootName() == "matrix" {
					diags = append(diags, &hcl.Diagnostic{
						Severity: hcl.DiagError,
						Summary:  "Matrix value outside a matrix",
						Detail:   fmt.Sprintf("Module %q has no matrix, so %s has no value in its depends_on. Add matrix = [...] to the module, or depend on every instance (depends_on = [module.NAME]).", m.Name, "matrix."+matrixAxis(tr)),
						Subject:  tr.SourceRange().Ptr(),
					})
				}
			}
		}
	}
	return diags
}

// IndexedRef returns where m first refers to module dep with an instance
// key (module.dep["linux"], module.dep[matrix.target]), if it does.
func (m *Module) IndexedRef(dep string) (hcl.Range, bool) {
	rng, ok := m.indexedRefs[dep]
	return rng, ok
}

// DeclaresMatrix reports whether the block declares a matrix, even one
// whose errors left Matrix nil.
func (m *Module) DeclaresMatrix() bool { return m.matrixDeclared }

// decodeDependsOn reads depends_on as a list of module references. They
// are traversals (module.build), not strings, so that a typo is a
// reference error with a range rather than a silently unmatched name.
func (m *Module) decodeDependsOn(a *hcl.Attribute) hcl.Diagnostics {
	exprs, diags := hcl.ExprList(a.Expr)
	if diags.HasErrors() {
		return hcl.Diagnostics{attrError(a, "Invalid depends_on", "depends_on must be a list of module references, such as [module.build, module.lint].")}
	}
	for _, e := range exprs {
		// module.build[matrix.target]: each instance depends on its own.
		if se, ok := e.(hclsyntax.Expression); ok {
			if name, key := instanceKeyExpr(se); key != nil {
				if !contains(m.DependsOn, name) {
					m.DependsOn = append(m.DependsOn, name)
				}
				m.noteInstance(name, nil, key)
				m.dependsKeys = append(m.dependsKeys, key)
				if _, seen := m.RefRanges[name]; !seen {
					m.RefRanges[name] = e.Range()
				}
				continue
			}
		}
		tr, d := hcl.AbsTraversalForExpr(e)
		name, ok := attrName(tr)
		if d.HasErrors() || tr.RootName() != "module" || !ok {
			detail := "Each element of depends_on must be a module reference such as module.build."
			if tmpl, isTmpl := e.(*hclsyntax.TemplateExpr); isTmpl && tmpl.IsStringLiteral() {
				v, _ := tmpl.Value(nil)
				ref := v.AsString()
				if !strings.HasPrefix(ref, "module.") {
					ref = "module." + ref
				}
				detail = fmt.Sprintf("depends_on takes module references, not strings: write %s instead of %q.", ref, v.AsString())
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid depends_on element",
				Detail:   detail,
				Subject:  e.Range().Ptr(),
				Context:  a.Range.Ptr(),
			})
			continue
		}
		if !contains(m.DependsOn, name) {
			m.DependsOn = append(m.DependsOn, name)
		}
		m.noteInstance(name, tr, nil)
		if _, seen := m.RefRanges[name]; !seen {
			m.RefRanges[name] = tr.SourceRange()
		}
	}
	return diags
}

func (m *Module) decodeNotInParallel(a *hcl.Attribute, ctx *hcl.EvalContext) hcl.Diagnostics {
	if d := noModuleRefs(a.Expr, a.Name); d != nil {
		return hcl.Diagnostics{d}
	}
	v, diags := a.Expr.Value(ctx)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		return diags
	}
	if v.Type() == cty.Bool && !v.IsNull() {
		m.Exclusive = v.True()
		return diags
	}
	keys, ok, d := evalStringList(a, ctx)
	if !ok {
		return append(diags, attrError(a, "Invalid not_in_parallel",
			"not_in_parallel must be true (the module runs with nothing else running) or a list of keys, such as [\"db\"] (no two modules sharing a key run at once)."))
	}
	diags = append(diags, d...)
	keys, d = nonEmptyUnique(a, keys, "key")
	m.NotInParallel = keys
	return append(diags, d...)
}

func (m *Module) decodeLimits(a *hcl.Attribute, names []string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	declared := make([]string, 0, len(m.pipeline.Limits))
	for n := range m.pipeline.Limits {
		declared = append(declared, n)
	}
	sort.Strings(declared)
	for _, n := range names {
		if _, ok := m.pipeline.Limits[n]; !ok {
			detail := fmt.Sprintf("There is no limit %q. Declare it at the top level with limit %q { max = N }.", n, n)
			if s := Suggest(n, declared); s != "" {
				detail = fmt.Sprintf("There is no limit %q. Did you mean %q?", n, s)
			}
			diags = append(diags, attrError(a, "Unknown limit", detail))
			continue
		}
		if !contains(m.Limits, n) {
			m.Limits = append(m.Limits, n)
		}
	}
	return diags
}

func (m *Module) decodeRetry(b *hcl.Block, ctx *hcl.EvalContext) hcl.Diagnostics {
	content, diags := b.Body.Content(retrySchema)
	if a := content.Attributes["attempts"]; a != nil {
		v, ok, d := evalInt(a, ctx)
		diags = append(diags, d...)
		if ok {
			if v < 1 {
				diags = append(diags, attrError(a, "Invalid retry attempts", fmt.Sprintf("attempts is the total number of tries, so it must be at least 1, not %d.", v)))
			} else {
				m.Retry.Attempts = v
			}
		}
	}
	if a := content.Attributes["backoff"]; a != nil {
		v, _, d := evalDuration(a, ctx, true)
		diags = append(diags, d...)
		m.Retry.Backoff = v
	}
	return diags
}

// nonEmptyUnique rejects empty strings and drops duplicates.
func nonEmptyUnique(a *hcl.Attribute, in []string, what string) ([]string, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	out := make([]string, 0, len(in))
	for _, s := range in {
		if strings.TrimSpace(s) == "" {
			diags = append(diags, attrError(a, fmt.Sprintf("Empty %s in %s", what, a.Name), fmt.Sprintf("The elements of %s must not be empty.", a.Name)))
			continue
		}
		if !contains(out, s) {
			out = append(out, s)
		}
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

// noModuleRefs reports a reference to module.* (or matrix.*) in an
// expression the host evaluates at load time, where no result exists yet.
func noModuleRefs(expr hcl.Expression, what string) *hcl.Diagnostic {
	for _, tr := range expr.Variables() {
		switch tr.RootName() {
		case "module":
			return &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Module result used at load time",
				Detail:   fmt.Sprintf("%s is evaluated when the file is loaded, before any module runs, so it cannot use a module's result. Only run_if and the plugin's attributes may refer to modules.", what),
				Subject:  tr.SourceRange().Ptr(),
			}
		case "matrix":
			return &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Matrix value used at load time",
				Detail:   fmt.Sprintf("%s is evaluated once for the whole module, so it cannot use matrix.*. Only run_if and the plugin's attributes may use matrix values.", what),
				Subject:  tr.SourceRange().Ptr(),
			}
		}
	}
	return nil
}

// sourceText returns the source of rng with line breaks and the
// indentation after them folded to single spaces, for one-line messages.
func sourceText(f *hcl.File, rng hcl.Range) string {
	if f == nil || rng.Start.Byte < 0 || rng.End.Byte > len(f.Bytes) || rng.Start.Byte > rng.End.Byte {
		return ""
	}
	lines := strings.Split(string(f.Bytes[rng.Start.Byte:rng.End.Byte]), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, " ")
}

// RunIfSource returns the source text of m's run_if expression, for the
// skip reason "run_if is false: <text>". It is "" when m has no run_if.
func RunIfSource(m *Module) string { return m.runIfSource }

// noteInstance records which instances of module name the traversal tr
// (module.NAME...) refers to: one, when it is indexed with a literal key
// or with keyExpr (an index expression InstanceKeys evaluates per
// instance; nil when there is none), else all of them.
func (m *Module) noteInstance(name string, tr hcl.Traversal, keyExpr hcl.Expression) {
	if _, seen := m.indexedRefs[name]; !seen {
		rng, indexed := hcl.Range{}, false
		if keyExpr != nil {
			rng, indexed = keyExpr.Range(), true
		} else if _, ok := instanceKey(tr); ok {
			rng, indexed = tr.SourceRange(), true
		}
		if indexed {
			if m.indexedRefs == nil {
				m.indexedRefs = map[string]hcl.Range{}
			}
			m.indexedRefs[name] = rng
		}
	}
	if m.wholeRefs[name] {
		return
	}
	if keyExpr != nil {
		if m.refKeyExprs == nil {
			m.refKeyExprs = map[string][]hcl.Expression{}
		}
		m.refKeyExprs[name] = append(m.refKeyExprs[name], keyExpr)
		return
	}
	key, ok := instanceKey(tr)
	if !ok {
		m.wholeRefs[name] = true
		delete(m.RefInstances, name)
		delete(m.refKeyExprs, name)
		return
	}
	if m.keyRanges == nil {
		m.keyRanges = map[string]map[string]hcl.Range{}
	}
	if m.keyRanges[name] == nil {
		m.keyRanges[name] = map[string]hcl.Range{}
	}
	if _, seen := m.keyRanges[name][key]; !seen {
		m.keyRanges[name][key] = tr[2].SourceRange()
	}
	if m.RefInstances == nil {
		m.RefInstances = map[string][]string{}
	}
	if !contains(m.RefInstances[name], key) {
		m.RefInstances[name] = append(m.RefInstances[name], key)
	}
}

// instanceKey returns the literal string index that follows module.NAME
// in tr, as in module.test["linux"].value.
func instanceKey(tr hcl.Traversal) (string, bool) {
	if len(tr) < 3 {
		return "", false
	}
	idx, ok := tr[2].(hcl.TraverseIndex)
	if !ok || !idx.Key.IsKnown() || idx.Key.IsNull() || idx.Key.Type() != cty.String {
		return "", false
	}
	return idx.Key.AsString(), true
}

// instanceKeyExpr returns the index of an index expression on
// module.NAME (module.build[matrix.target]) when the index is the same
// wherever the module runs: it uses matrix values, variables and locals,
// not module results or run facts (which differ between the instances of
// a fleet, while the master alone builds the graph). It returns nil
// otherwise.
func instanceKeyExpr(e hclsyntax.Expression) (string, hcl.Expression) {
	ie, ok := e.(*hclsyntax.IndexExpr)
	if !ok {
		return "", nil
	}
	coll, ok := ie.Collection.(*hclsyntax.ScopeTraversalExpr)
	if !ok || len(coll.Traversal) != 2 || coll.Traversal.RootName() != "module" {
		return "", nil
	}
	name, ok := attrName(coll.Traversal)
	if !ok {
		return "", nil
	}
	for _, tr := range ie.Key.Variables() {
		if r := tr.RootName(); r != "matrix" && r != "var" && r != "local" {
			return "", nil
		}
	}
	return name, ie.Key
}

// indexedModuleRefs maps the start of each module.NAME traversal that is
// indexed with an expression instanceKeyExpr accepts to that index.
func indexedModuleRefs(exprs []hclsyntax.Expression) map[int]hcl.Expression {
	out := map[int]hcl.Expression{}
	for _, e := range exprs {
		hclsyntax.VisitAll(e, func(n hclsyntax.Node) hcl.Diagnostics {
			if ie, ok := n.(*hclsyntax.IndexExpr); ok {
				if _, key := instanceKeyExpr(ie); key != nil {
					out[ie.Collection.Range().Start.Byte] = key
				}
			}
			return nil
		})
	}
	return out
}

// InstanceKeys returns the instance keys of matrix module dep that the
// instance of m with matrix values (nil outside a matrix) depends on, or
// every = true when it depends on all of them: a reference without an
// index, or one whose index cannot be evaluated to a string here.
func (m *Module) InstanceKeys(dep string, matrix map[string]string) (keys []string, every bool) {
	if m.wholeRefs[dep] {
		return nil, true
	}
	keys = append(keys, m.RefInstances[dep]...)
	exprs := m.refKeyExprs[dep]
	if len(exprs) == 0 {
		return keys, len(keys) == 0
	}
	ctx := m.pipeline.EvalContext(Scope{Facts: m.pipeline.facts, Matrix: matrix})
	for _, e := range exprs {
		v, d := e.Value(ctx)
		if d.HasErrors() || !v.IsWhollyKnown() || v.IsNull() {
			return nil, true
		}
		s, err := convert.Convert(v, cty.String)
		if err != nil {
			return nil, true
		}
		if !contains(keys, s.AsString()) {
			keys = append(keys, s.AsString())
		}
	}
	return keys, false
}

// InstanceKeyRange returns where the instance of m with matrix values
// (as for InstanceKeys) first refers to instance key of module dep: the
// index of that reference, or, when no index is known to give key, m's
// first reference to dep.
func (m *Module) InstanceKeyRange(dep, key string, matrix map[string]string) hcl.Range {
	if rng, ok := m.keyRanges[dep][key]; ok {
		return rng
	}
	if exprs := m.refKeyExprs[dep]; len(exprs) > 0 {
		ctx := m.pipeline.EvalContext(Scope{Facts: m.pipeline.facts, Matrix: matrix})
		for _, e := range exprs {
			v, d := e.Value(ctx)
			if d.HasErrors() || !v.IsWhollyKnown() || v.IsNull() {
				continue
			}
			if s, err := convert.Convert(v, cty.String); err == nil && s.AsString() == key {
				return e.Range()
			}
		}
	}
	return m.RefRanges[dep]
}

// matrixAxis is AXIS of a matrix.AXIS traversal, "" when it names none.
func matrixAxis(tr hcl.Traversal) string {
	name, _ := attrName(tr)
	return name
}
