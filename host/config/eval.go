package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/customdecode"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/schema"
)

// Scope is what an expression sees beyond the file's own variables and
// locals: the running instance's facts, the matrix values of the instance
// being evaluated, and the results of finished modules.
type Scope struct {
	Facts Facts
	// Matrix holds matrix.<axis> values; nil outside a matrix instance.
	Matrix map[string]string
	// Modules holds module.NAME values, built with ModuleValue (or
	// MatrixValue for a matrix module), for the modules that have finished.
	Modules map[string]cty.Value
}

// EvalContext builds the evaluation context for s: var.*, local.*, run.*,
// matrix.* and module.* plus every function. It may be called
// concurrently; each call returns a fresh context.
func (p *Pipeline) EvalContext(s Scope) *hcl.EvalContext {
	vars := make(map[string]cty.Value, len(p.Variables))
	for n, v := range p.Variables {
		vars[n] = v.Value
	}
	caps := make([]cty.Value, len(s.Facts.Capabilities))
	for i, c := range s.Facts.Capabilities {
		caps[i] = cty.StringVal(c)
	}
	capList := cty.ListValEmpty(cty.String)
	if len(caps) > 0 {
		capList = cty.ListVal(caps)
	}
	variables := map[string]cty.Value{
		"var":   objectOrEmpty(vars),
		"local": objectOrEmpty(p.Locals),
		"run": cty.ObjectVal(map[string]cty.Value{
			"os":           cty.StringVal(s.Facts.OS),
			"arch":         cty.StringVal(s.Facts.Arch),
			"instance":     cty.NumberIntVal(int64(s.Facts.Instance)),
			"ci":           cty.BoolVal(s.Facts.CI),
			"capabilities": capList,
		}),
		"module": objectOrEmpty(s.Modules),
	}
	if s.Matrix != nil {
		mv := make(map[string]cty.Value, len(s.Matrix))
		for k, v := range s.Matrix {
			mv[k] = cty.StringVal(v)
		}
		variables["matrix"] = objectOrEmpty(mv)
	}
	return &hcl.EvalContext{Variables: variables, Functions: p.functions}
}

func objectOrEmpty(m map[string]cty.Value) cty.Value {
	if len(m) == 0 {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(m)
}

// errorType is the type of module.NAME.error.
var errorType = cty.Object(map[string]cty.Type{
	"message": cty.String,
	"kind":    cty.String,
	"tail":    cty.String,
})

// ModuleValue is module.NAME for a finished module: an object with value
// (the result JSON as a cty value, null when there is none), status,
// type, attempts, duration_ms, instance, host, skip_reason, error and
// ignored_failure (EnvelopeAttributes)
// (an object with message, kind and tail, or null).
func ModuleValue(env *coordinator.Envelope) (cty.Value, error) {
	if env == nil {
		return cty.NilVal, errors.New("module value: no envelope")
	}
	value := cty.NullVal(cty.DynamicPseudoType)
	if raw := bytes.TrimSpace(env.Value); len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		ty, err := ctyjson.ImpliedType(raw)
		if err != nil {
			return cty.NilVal, fmt.Errorf("module %s: decode result value: %w", env.Module, err)
		}
		value, err = ctyjson.Unmarshal(raw, ty)
		if err != nil {
			return cty.NilVal, fmt.Errorf("module %s: decode result value: %w", env.Module, err)
		}
	}
	errVal := cty.NullVal(errorType)
	if env.Error != nil {
		errVal = cty.ObjectVal(map[string]cty.Value{
			"message": cty.StringVal(env.Error.Message),
			"kind":    cty.StringVal(env.Error.Kind),
			"tail":    cty.StringVal(env.Error.Tail),
		})
	}
	return cty.ObjectVal(map[string]cty.Value{
		"value":           value,
		"status":          cty.StringVal(string(env.Status)),
		"type":            cty.StringVal(env.Type),
		"attempts":        cty.NumberIntVal(int64(env.Attempts)),
		"duration_ms":     cty.NumberIntVal(env.DurationMS),
		"instance":        cty.NumberIntVal(int64(env.Instance)),
		"host":            cty.StringVal(env.Host),
		"skip_reason":     cty.StringVal(env.SkipReason),
		"error":           errVal,
		"ignored_failure": cty.BoolVal(env.IgnoredFailure),
	}), nil
}

// MatrixValue is module.NAME for a matrix module: instance key -> the
// instance's ModuleValue. It is an object rather than a cty map so that
// instances whose results have different shapes can sit side by side;
// indexing (module.test["linux"]), for expressions, keys() and length()
// work on it as on a map.
func MatrixValue(instances map[string]cty.Value) cty.Value {
	return objectOrEmpty(instances)
}

// attrSpec builds the hcldec spec of a kind, leaving out attributes whose
// names are meta-arguments (the host consumes those before the plugin
// could see them; CheckBody reports such a schema).
func attrSpec(k *schema.Kind) hcldec.ObjectSpec {
	spec := hcldec.ObjectSpec{}
	for _, a := range k.Attributes {
		if isMetaArgument(a.Name) {
			continue
		}
		spec[a.Name] = &hcldec.AttrSpec{Name: a.Name, Type: a.Type, Required: a.Required}
	}
	return spec
}

// EvalConfig evaluates the plugin's attributes of m with ctx and returns
// them as a JSON object, each value converted to the type the kind's
// schema declares. Optional attributes that are absent (or null) are
// omitted.
func (m *Module) EvalConfig(ctx *hcl.EvalContext, k *schema.Kind) (json.RawMessage, hcl.Diagnostics) {
	if cfg, ok := m.evalConfigDirect(ctx, k); ok {
		return cfg, nil
	}
	return m.evalConfigDecode(ctx, k)
}

// evalConfigDecode is EvalConfig through hcldec: every case, and every
// diagnostic.
func (m *Module) evalConfigDecode(ctx *hcl.EvalContext, k *schema.Kind) (json.RawMessage, hcl.Diagnostics) {
	val, diags := hcldec.Decode(m.Body, attrSpec(k), ctx)
	SortDiagnostics(diags)
	if diags.HasErrors() {
		return nil, diags
	}
	// The decode converted objects to the schema's types, dropping keys
	// the types do not have: a key misspelt in a value known only now
	// (it reads a module's result) must not pass silently either.
	for _, a := range k.Attributes {
		expr := m.bodyAttrs[a.Name]
		if expr == nil || isMetaArgument(a.Name) || !hasObjectType(a.Type) {
			continue
		}
		v, d := expr.Value(ctx)
		if d.HasErrors() {
			continue
		}
		if path, key, known := unknownKey(v, a.Type, a.Name); key != "" {
			return nil, append(diags, unknownKeyDiag(path, key, known, expr.Range(), nil, nil))
		}
	}
	if !val.IsWhollyKnown() {
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Module configuration not known",
			Detail:   fmt.Sprintf("The configuration of module %q depends on values that are not known yet; every module it refers to must have finished.", m.Name),
			Subject:  m.DeclRange.Ptr(),
		})
	}
	// The object is written directly, keys in the sorted order an
	// object's iterator gives and json.Marshal of a map would write, each
	// value compact as ctyjson writes it: the same bytes json.Marshal of a
	// map of RawMessages gave, without its re-validation of every value.
	var buf bytes.Buffer
	buf.WriteByte('{')
	for it := val.ElementIterator(); it.Next(); {
		k, v := it.Element()
		if v.IsNull() {
			continue
		}
		data, err := ctyjson.Marshal(v, v.Type())
		if err != nil {
			return nil, append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cannot encode module configuration",
				Detail:   fmt.Sprintf("Attribute %q of module %q cannot be encoded as JSON: %s.", k.AsString(), m.Name, err),
				Subject:  m.DeclRange.Ptr(),
			})
		}
		key, err := json.Marshal(k.AsString())
		if err != nil {
			return nil, append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cannot encode module configuration",
				Detail:   fmt.Sprintf("Module %q: %s.", m.Name, err),
				Subject:  m.DeclRange.Ptr(),
			})
		}
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(data)
	}
	buf.WriteByte('}')
	return buf.Bytes(), diags
}

// evalConfigDirect is EvalConfig for a body with nothing to report, the
// common case: each attribute is evaluated and converted once and
// written, without hcldec's content check, object and iteration, which
// were most of EvalConfig's cost (18 µs per `command = ["/bin/true"]`,
// BenchmarkEvalConfig). Whatever would give a diagnostic (an attribute
// the kind does not have, a block, a missing required attribute, any
// diagnostic of an expression, a value of the wrong type, an unknown key
// or value, a value JSON cannot hold) returns ok false, and EvalConfig's
// general path reports it: both give the same bytes where this one
// answers (TestEvalConfigDirectIsDecode).
func (m *Module) evalConfigDirect(ctx *hcl.EvalContext, k *schema.Kind) (json.RawMessage, bool) {
	if !m.plainBody {
		return nil, false
	}
	type attr struct {
		name string
		v    cty.Value
	}
	vals := make([]attr, 0, len(m.bodyAttrs))
	found := 0
	for i, a := range k.Attributes {
		if isMetaArgument(a.Name) {
			continue
		}
		if slices.ContainsFunc(k.Attributes[:i], func(b schema.Attribute) bool { return b.Name == a.Name }) {
			return nil, false // a kind naming an attribute twice: hcldec says what it makes of it
		}
		expr := m.bodyAttrs[a.Name]
		if expr == nil {
			if a.Required {
				return nil, false
			}
			continue
		}
		found++
		if customdecode.CustomExpressionDecoderForType(a.Type) != nil {
			return nil, false
		}
		v, d := expr.Value(ctx)
		if len(d) > 0 {
			return nil, false
		}
		if hasObjectType(a.Type) {
			if _, key, _ := unknownKey(v, a.Type, a.Name); key != "" {
				return nil, false
			}
		}
		cv, err := convertValue(v, a.Type)
		if err != nil || !cv.IsWhollyKnown() {
			return nil, false
		}
		if !cv.IsNull() {
			vals = append(vals, attr{a.Name, cv})
		}
	}
	if found != len(m.bodyAttrs) {
		return nil, false // an attribute the kind does not have
	}
	// In the order of an object's keys, as EvalConfig's general path
	// writes them.
	slices.SortFunc(vals, func(a, b attr) int { return strings.Compare(a.name, b.name) })
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, a := range vals {
		data, err := ctyjson.Marshal(a.v, a.v.Type())
		if err != nil {
			return nil, false
		}
		key, err := json.Marshal(a.name)
		if err != nil {
			return nil, false
		}
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(data)
	}
	buf.WriteByte('}')
	return buf.Bytes(), true
}

// EvalRunIf evaluates run_if with ctx. It is true when m has no run_if.
// A value that is not a boolean, or null, is an error.
func (m *Module) EvalRunIf(ctx *hcl.EvalContext) (bool, hcl.Diagnostics) {
	if m.RunIf == nil {
		return true, nil
	}
	v, diags := m.RunIf.Value(ctx)
	if diags.HasErrors() {
		return false, diags
	}
	bad := func(detail string) (bool, hcl.Diagnostics) {
		return false, append(diags, &hcl.Diagnostic{
			Severity:    hcl.DiagError,
			Summary:     "Invalid run_if",
			Detail:      detail,
			Subject:     m.RunIf.Range().Ptr(),
			Expression:  m.RunIf,
			EvalContext: ctx,
		})
	}
	if !v.IsKnown() {
		return bad("The run_if condition depends on a value that is not known yet.")
	}
	if v.IsNull() {
		return bad("The run_if condition is null; it must be true or false.")
	}
	bv, err := convert.Convert(v, cty.Bool)
	if err != nil {
		return bad(fmt.Sprintf("The run_if condition must be a boolean, but it is %s.", v.Type().FriendlyName()))
	}
	return bv.True(), diags
}

// CheckBody checks m's plugin attributes against the kind's schema before
// anything runs: unknown attributes (with the closest valid name),
// missing required ones, and type mismatches of every value that can be
// known at load time. Values that depend on module results or matrix
// values are treated as unknown and checked when the module runs.
func (m *Module) CheckBody(k *schema.Kind) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, a := range k.Attributes {
		if !isMetaArgument(a.Name) {
			continue
		}
		sev, tail := hcl.DiagWarning, "it can never be set from a pipeline file."
		if a.Required {
			sev, tail = hcl.DiagError, "it is required, so no module of this kind can be configured."
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: sev,
			Summary:  "Plugin attribute shadowed by a meta-argument",
			Detail:   fmt.Sprintf("Module kind %q declares an attribute %q, which is a meta-argument the host owns; %s Rename the attribute in the plugin.", m.KindLabel(), a.Name, tail),
			Subject:  m.KindRange.Ptr(),
		})
	}

	ctx := m.staticContext()
	if m.RunIf != nil {
		// A condition known now must be one run can use; one that reads
		// module results is checked when the module is ready.
		if v, d := m.RunIf.Value(ctx); !d.HasErrors() && v.IsWhollyKnown() {
			if _, rd := m.EvalRunIf(ctx); rd.HasErrors() {
				diags = append(diags, rd...)
			}
		}
	}
	spec := attrSpec(k)
	bodySchema := hcldec.ImpliedSchema(spec)
	content, d := m.Body.Content(bodySchema)
	diags = append(diags, suggestMetaArguments(d)...)
	for _, a := range k.Attributes {
		attr := content.Attributes[a.Name]
		if attr == nil || isMetaArgument(a.Name) {
			continue
		}
		v, d := attr.Expr.Value(ctx)
		if d.HasErrors() {
			if m.FileMayComeLater(d) {
				continue
			}
			// Errors that involve references to unknown modules are the
			// graph's to report; evaluation errors are reported here.
			diags = append(diags, d...)
			continue
		}
		if path, key, known := unknownKey(v, a.Type, a.Name); key != "" {
			// Conversion to an object type drops keys it does not know:
			// a typo in one would pass silently.
			diags = append(diags, unknownKeyDiag(path, key, known, attr.Expr.Range(), attr, ctx))
			continue
		}
		if _, err := convertValue(v, a.Type); err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity:    hcl.DiagError,
				Summary:     "Incorrect attribute value type",
				Detail:      fmt.Sprintf("Inappropriate value for attribute %q of %s: %s; it must be %s.", a.Name, m.KindLabel(), err, typeexpr.TypeString(a.Type)),
				Subject:     attr.Expr.Range().Ptr(),
				Context:     attr.Range.Ptr(),
				Expression:  attr.Expr,
				EvalContext: ctx,
			})
		}
	}
	SortDiagnostics(diags)
	return diags
}

// staticContext is an EvalContext for checking m at load time: module
// results and matrix values are unknown, and names that Load already
// reported as undeclared are unknown too, so they are not reported twice.
func (m *Module) staticContext() *hcl.EvalContext {
	p := m.pipeline
	// What every module sees is built once: building it per module was 40%
	// of CheckBody (bench: host validate of 1,000 modules). The object of
	// every module's unknown result in it is shared too: building it per
	// module would be quadratic in their number. Each module gets its own
	// copy of the (small) variables map, which it changes below.
	p.staticOnce.Do(func() {
		mods := make(map[string]cty.Value, len(p.Modules))
		for _, other := range p.Modules {
			mods[other.Name] = cty.DynamicVal
		}
		p.static = p.EvalContext(Scope{Facts: p.facts})
		p.static.Variables["module"] = objectOrEmpty(mods)
	})
	ctx := &hcl.EvalContext{Variables: maps.Clone(p.static.Variables), Functions: p.static.Functions}
	axes := map[string]cty.Value{}
	if m.Matrix != nil {
		for _, a := range m.Matrix.Axes {
			axes[a.Name] = cty.UnknownVal(cty.String)
		}
	}
	ctx.Variables["matrix"] = objectOrEmpty(axes)

	for _, tr := range m.runTimeTraversals() {
		root := tr.RootName()
		name, hasName := attrName(tr)
		scope, ok := ctx.Variables[root]
		if !ok {
			ctx.Variables[root] = cty.DynamicVal
			continue
		}
		if !hasName || !scope.Type().IsObjectType() || scope.Type().HasAttribute(name) {
			continue
		}
		// Reported by Load already: make it unknown here.
		attrs := scope.AsValueMap()
		if attrs == nil {
			attrs = map[string]cty.Value{}
		}
		attrs[name] = cty.DynamicVal
		ctx.Variables[root] = cty.ObjectVal(attrs)
	}
	return ctx
}

// suggestMetaArguments adds a "Did you mean" to each unsupported argument
// that HCL found no plugin attribute close to, when a meta-argument is
// (depend_on, timout): HCL only knows the kind's schema.
func suggestMetaArguments(diags hcl.Diagnostics) hcl.Diagnostics {
	for _, d := range diags {
		if d.Summary != "Unsupported argument" || strings.Contains(d.Detail, "Did you mean") {
			continue
		}
		_, rest, ok := strings.Cut(d.Detail, `An argument named "`)
		if !ok {
			continue
		}
		name, _, ok := strings.Cut(rest, `"`)
		if !ok {
			continue
		}
		if s := didYouMean(name, MetaArguments); s != "" {
			d.Detail += s
		} else if strings.HasPrefix(name, "retr") || name == "attempts" {
			// retry is a block, which HCL does not suggest for an argument.
			d.Detail += ` Retries are a block: retry { attempts = 3 }.`
		}
	}
	return diags
}

// unknownKey finds, in a known value v meant for type ty, the first key of
// an object that ty's object type does not have, with the path to it
// ("server", "steps[1]") and the keys ty knows there; "" when none.
func unknownKey(v cty.Value, ty cty.Type, path string) (string, string, []string) {
	if !v.IsKnown() || v.IsNull() {
		return "", "", nil
	}
	vt := v.Type()
	switch {
	case ty.IsObjectType() && (vt.IsObjectType() || vt.IsMapType()):
		want := ty.AttributeTypes()
		known := slices.Sorted(maps.Keys(want))
		for it := v.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			name := k.AsString()
			at, ok := want[name]
			if !ok {
				return path, name, known
			}
			if p, key, kn := unknownKey(ev, at, path+"."+name); key != "" {
				return p, key, kn
			}
		}
	case (ty.IsListType() || ty.IsSetType()) && (vt.IsTupleType() || vt.IsListType() || vt.IsSetType()):
		i := 0
		for it := v.ElementIterator(); it.Next(); i++ {
			_, ev := it.Element()
			if p, key, kn := unknownKey(ev, ty.ElementType(), fmt.Sprintf("%s[%d]", path, i)); key != "" {
				return p, key, kn
			}
		}
	case ty.IsMapType() && (vt.IsObjectType() || vt.IsMapType()):
		for it := v.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			if p, key, kn := unknownKey(ev, ty.ElementType(), path+"."+k.AsString()); key != "" {
				return p, key, kn
			}
		}
	}
	return "", "", nil
}

// hasObjectType reports whether ty is or holds an object type (whose
// conversion drops unknown keys).
func hasObjectType(ty cty.Type) bool {
	switch {
	case ty.IsObjectType():
		return true
	case ty.IsListType() || ty.IsSetType() || ty.IsMapType():
		return hasObjectType(ty.ElementType())
	}
	return false
}

// unknownKeyDiag reports an object key the attribute's type does not have
// (see unknownKey); attr and ctx, when known, give the snippet context.
func unknownKeyDiag(path, key string, known []string, subject hcl.Range, attr *hcl.Attribute, ctx *hcl.EvalContext) *hcl.Diagnostic {
	d := &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Unsupported key",
		Detail:   fmt.Sprintf("%s has no key %q; its keys are %s.%s", path, key, strings.Join(known, ", "), didYouMean(key, known)),
		Subject:  subject.Ptr(),
	}
	if attr != nil {
		d.Context, d.Expression, d.EvalContext = attr.Range.Ptr(), attr.Expr, ctx
	}
	return d
}

// FileMayComeLater reports whether diags, of evaluating the module's body
// before the run, are all file() of a file that is not there yet, in a
// module that runs after another one (depends_on or a reference), which
// may write it: not an error before the run. The body is evaluated again
// when the module starts, and a file still missing is an error then.
func (m *Module) FileMayComeLater(diags hcl.Diagnostics) bool {
	return (len(m.DependsOn) > 0 || len(m.References) > 0) && missingFileOnly(diags)
}
