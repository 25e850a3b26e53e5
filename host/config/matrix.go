package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// AxisNames returns the axes' names in declaration order.
func (mx *Matrix) AxisNames() []string {
	names := make([]string, len(mx.Axes))
	for i, a := range mx.Axes {
		names[i] = a.Name
	}
	return names
}

// Instances returns the product of the axes (the first axis varies
// slowest) minus the combinations that an exclude entry matches. An
// exclude entry matches when every axis it names has the given value, so
// { target = "windows" } removes every windows combination.
func (mx *Matrix) Instances() []Instance {
	if mx == nil || len(mx.Axes) == 0 {
		return nil
	}
	var out []Instance
	full, partial := mx.excludeIndex()
	combo := make([]int, len(mx.Axes))
	for {
		values := make(map[string]string, len(mx.Axes))
		for i, a := range mx.Axes {
			values[a.Name] = a.Values[combo[i]]
		}
		key := mx.key(values)
		if !full[key] && !excluded(partial, values) {
			out = append(out, Instance{Key: key, Values: values})
		}
		// Advance the odometer, last axis fastest.
		i := len(combo) - 1
		for ; i >= 0; i-- {
			combo[i]++
			if combo[i] < len(mx.Axes[i].Values) {
				break
			}
			combo[i] = 0
		}
		if i < 0 {
			return out
		}
	}
}

// excludeIndex splits the exclude entries: the keys of those that name
// every axis, each of which removes one combination, and the rest, which
// are matched against each combination. Matching all of them against
// every combination took 7 s for 1,000 entries on 100 x 100 values.
func (mx *Matrix) excludeIndex() (full map[string]bool, partial []map[string]string) {
	full = map[string]bool{}
	for _, ex := range mx.Exclude {
		whole := len(ex) == len(mx.Axes)
		for _, a := range mx.Axes {
			if _, ok := ex[a.Name]; !ok {
				whole = false
				break
			}
		}
		if whole {
			full[mx.key(ex)] = true
		} else {
			partial = append(partial, ex)
		}
	}
	return full, partial
}

// excluded reports whether an exclude entry matches values.
func excluded(entries []map[string]string, values map[string]string) bool {
	for _, ex := range entries {
		match := true
		for k, v := range ex {
			if values[k] != v {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// key names an instance: the bare value for one axis, axis=value pairs in
// axis order for several.
func (mx *Matrix) key(values map[string]string) string {
	if len(mx.Axes) == 1 {
		return values[mx.Axes[0].Name]
	}
	parts := make([]string, len(mx.Axes))
	for i, a := range mx.Axes {
		parts[i] = a.Name + "=" + values[a.Name]
	}
	return strings.Join(parts, ",")
}

// decodeMatrixAttr decodes matrix = [...]: one axis named target.
func (m *Module) decodeMatrixAttr(a *hcl.Attribute, ctx *hcl.EvalContext) hcl.Diagnostics {
	values, ok, diags := evalStringList(a, ctx)
	if !ok {
		return diags
	}
	vals, d := checkAxisValues(a, MatrixTargetAxis, values)
	diags = append(diags, d...)
	if d.HasErrors() {
		return diags
	}
	mx := &Matrix{Axes: []Axis{{Name: MatrixTargetAxis, Values: vals}}, List: true, Range: a.Expr.Range()}
	if d := tooLarge(mx, a.Expr.Range()); d != nil {
		return append(diags, d)
	}
	m.Matrix = mx
	return diags
}

// MaxMatrixInstances bounds a module's matrix: the product of its axes
// before exclude. Expanding ten axes of ten values (10^10 instances)
// would take the machine's memory before saying anything; a pipeline
// that needs more than this in one module is better split.
const MaxMatrixInstances = 10000

// tooLarge reports a matrix whose axes have more than MaxMatrixInstances
// combinations, before any is expanded.
func tooLarge(mx *Matrix, rng hcl.Range) *hcl.Diagnostic {
	n := 1
	sizes := make([]string, len(mx.Axes))
	for i, a := range mx.Axes {
		sizes[i] = fmt.Sprintf("%s: %d", a.Name, len(a.Values))
		if n <= MaxMatrixInstances {
			n *= len(a.Values)
		}
	}
	if n <= MaxMatrixInstances {
		return nil
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Matrix too large",
		Detail: fmt.Sprintf("The matrix has more than %d combinations of its axes (%s), the most one module may have. Split the module, or narrow its axes.",
			MaxMatrixInstances, strings.Join(sizes, ", ")),
		Subject: rng.Ptr(),
	}
}

// decodeMatrixBlock decodes matrix { axis = [...] ... exclude = [...] }.
func (m *Module) decodeMatrixBlock(b *hcl.Block, ctx *hcl.EvalContext) hcl.Diagnostics {
	attrs, diags := b.Body.JustAttributes()
	list := make([]*hcl.Attribute, 0, len(attrs))
	for _, a := range attrs {
		list = append(list, a)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Range.Start.Byte < list[j].Range.Start.Byte })

	mx := &Matrix{}
	failed := diags.HasErrors()
	var exclude *hcl.Attribute
	for _, a := range list {
		if a.Name == "exclude" {
			exclude = a
			continue
		}
		if a.Name == "include" {
			// GitHub Actions' word: here it would be an axis of its own.
			diags = append(diags, attrError(a, "Unsupported matrix include",
				"A matrix here is the product of its axes, less exclude; there is no include. Add the values to the axes and exclude the combinations you do not want, or declare the extra combination as a module of its own."))
			failed = true
			continue
		}
		values, ok, d := evalStringList(a, ctx)
		diags = append(diags, d...)
		if !ok {
			failed = true
			continue
		}
		vals, d := checkAxisValues(a, a.Name, values)
		diags = append(diags, d...)
		if d.HasErrors() {
			failed = true
			continue
		}
		mx.Axes = append(mx.Axes, Axis{Name: a.Name, Values: vals})
	}
	if len(mx.Axes) == 0 && !failed {
		return append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Empty matrix",
			Detail:   "A matrix block needs at least one axis, such as target = [\"linux\", \"windows\"].",
			Subject:  b.DefRange.Ptr(),
		})
	}
	if failed {
		return diags
	}
	if d := tooLarge(mx, b.DefRange); d != nil {
		return append(diags, d)
	}
	if exclude != nil {
		d := mx.decodeExclude(exclude, ctx)
		diags = append(diags, d...)
		if d.HasErrors() {
			return diags
		}
	}
	if len(mx.Instances()) == 0 {
		return append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Empty matrix",
			Detail:   "exclude removes every combination of the matrix, so the module would never run.",
			Subject:  exclude.Expr.Range().Ptr(),
		})
	}
	m.Matrix = mx
	return diags
}

func (mx *Matrix) decodeExclude(a *hcl.Attribute, ctx *hcl.EvalContext) hcl.Diagnostics {
	if d := noModuleRefs(a.Expr, "exclude"); d != nil {
		return hcl.Diagnostics{d}
	}
	v, diags := a.Expr.Value(ctx)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		return diags
	}
	bad := func(detail string) hcl.Diagnostics {
		return append(diags, attrError(a, "Invalid matrix exclude", detail))
	}
	ty := v.Type()
	if v.IsNull() || !(ty.IsListType() || ty.IsTupleType() || ty.IsSetType()) {
		return bad("exclude must be a list of objects naming axis values, such as [{ target = \"windows\", go = \"1.25\" }].")
	}
	axes := mx.AxisNames()
	for it := v.ElementIterator(); it.Next(); {
		_, ev := it.Element()
		ety := ev.Type()
		if ev.IsNull() || !(ety.IsObjectType() || ety.IsMapType()) || ev.LengthInt() == 0 {
			return bad("Each element of exclude must be an object naming at least one axis value, such as { target = \"windows\" }.")
		}
		entry := map[string]string{}
		for eit := ev.ElementIterator(); eit.Next(); {
			k, fv := eit.Element()
			axis := k.AsString()
			ax := mx.axis(axis)
			if ax == nil {
				return bad(fmt.Sprintf("exclude names the axis %q, which the matrix does not have; its axes are %v.%s", axis, axes, didYouMean(axis, axes)))
			}
			sv, err := convert.Convert(fv, cty.String)
			if err != nil || sv.IsNull() {
				return bad(fmt.Sprintf("The value for %s in exclude must be a string.", axis))
			}
			s := sv.AsString()
			if !contains(ax.Values, s) {
				return bad(fmt.Sprintf("exclude gives %s = %q, which is not one of the axis's values %v.%s", axis, s, ax.Values, didYouMean(s, ax.Values)))
			}
			entry[axis] = s
		}
		mx.Exclude = append(mx.Exclude, entry)
	}
	return diags
}

func (mx *Matrix) axis(name string) *Axis {
	for i := range mx.Axes {
		if mx.Axes[i].Name == name {
			return &mx.Axes[i]
		}
	}
	return nil
}

// checkAxisValues rejects an empty axis, duplicate values and values that
// would make an ambiguous instance address (NAME[key]).
func checkAxisValues(a *hcl.Attribute, axis string, values []string) ([]string, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	if len(values) == 0 {
		return nil, hcl.Diagnostics{attrError(a, "Empty matrix", fmt.Sprintf("The matrix axis %q has no values, so the module would never run. Give at least one value.", axis))}
	}
	out := make([]string, 0, len(values))
	seen := make(map[string]bool, len(values))
	for _, v := range values {
		if v == "" || strings.ContainsAny(v, "[]=,\"' \t\r\n") {
			diags = append(diags, attrError(a, "Invalid matrix value",
				fmt.Sprintf("%q cannot be a matrix value: values name instances (NAME[value]), so they must be non-empty and contain no spaces, quotes, brackets, commas or equals signs.", v)))
			continue
		}
		if seen[v] {
			diags = append(diags, attrError(a, "Duplicate matrix value", fmt.Sprintf("The matrix axis %q lists %q twice; each instance needs its own name.", axis, v)))
			continue
		}
		seen[v] = true
		out = append(out, v)
	}
	return out, diags
}
