package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/modpipe/modpipe/host/hclscan"
)

// VarEnvPrefix prefixes the environment variables that set variables:
// MODPIPE_VAR_name.
const VarEnvPrefix = "MODPIPE_VAR_"

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "type"}, {Name: "default"}, {Name: "sensitive"}, {Name: "description"}},
}

// decodeVariables decodes the variable blocks and resolves each value:
// --var first, then MODPIPE_VAR_name, then the default.
func (p *Pipeline) decodeVariables(blocks []*hcl.Block, vars map[string]string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	// Defaults, types and descriptions are constants: they may call
	// functions but see no variables.
	constCtx := &hcl.EvalContext{Functions: p.functions}
	for _, b := range blocks {
		name := b.Labels[0]
		if !hclscan.ValidIdentifier(name) {
			diags = append(diags, invalidName("variable", name, b.LabelRanges[0]))
			continue
		}
		if prev, ok := p.Variables[name]; ok {
			diags = append(diags, duplicateBlock("variable", name, b.DefRange, prev.DeclRange))
			continue
		}
		v := &Variable{Name: name, Type: cty.DynamicPseudoType, Value: cty.DynamicVal, DeclRange: b.DefRange}
		p.Variables[name] = v
		content, d := b.Body.Content(variableSchema)
		diags = append(diags, d...)
		if a := content.Attributes["type"]; a != nil {
			ty, d := typeexpr.TypeConstraint(a.Expr)
			diags = append(diags, d...)
			if d.HasErrors() {
				// Without its type the value cannot be checked; the type
				// error is the one to fix first.
				continue
			}
			v.Type = ty
		}
		if a := content.Attributes["sensitive"]; a != nil {
			s, _, d := evalBool(a, constCtx)
			diags = append(diags, d...)
			v.Sensitive = s
		}
		if a := content.Attributes["description"]; a != nil {
			s, _, d := evalString(a, constCtx)
			diags = append(diags, d...)
			v.Description = s
		}

		if given, ok := p.givenValues[name]; ok {
			cv, err := convertValue(given, v.Type)
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  fmt.Sprintf("Invalid value for variable %q", name),
					Detail:   fmt.Sprintf("The value resolved by the master does not match the variable's type %s: %s. Every instance must load the same pipeline file.", typeexpr.TypeString(v.Type), err),
					Subject:  b.DefRange.Ptr(),
				})
				continue
			}
			v.Value = cv
			continue
		}
		if v.Sensitive {
			if s, ok := vars[name]; ok {
				p.sensitiveInputs = append(p.sensitiveInputs, s)
			} else if s, ok := p.environ[VarEnvPrefix+name]; ok {
				p.sensitiveInputs = append(p.sensitiveInputs, s)
			}
		}
		value, set, d := p.variableValue(name, v.Type, vars)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		if !set {
			a := content.Attributes["default"]
			if a == nil {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  fmt.Sprintf("No value for variable %q", name),
					Detail:   fmt.Sprintf("Variable %q has no default, so it must be set: pass --var %s=VALUE or set the environment variable %s%s.", name, name, VarEnvPrefix, name),
					Subject:  b.DefRange.Ptr(),
				})
				continue
			}
			dv, d := a.Expr.Value(constCtx)
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			cv, err := convertValue(dv, v.Type)
			if err != nil {
				diags = append(diags, attrError(a, "Invalid default value for variable",
					fmt.Sprintf("The default of %q does not match its type %s: %s.", name, typeexpr.TypeString(v.Type), err)))
				continue
			}
			value = cv
		}
		v.Value = value
	}

	// A --var for a variable the file does not declare is a mistake the
	// user wants to hear about (a typo would otherwise be silently ignored).
	names := make([]string, 0, len(p.Variables))
	for n := range p.Variables {
		names = append(names, n)
	}
	sort.Strings(names)
	given := make([]string, 0, len(vars))
	for n := range vars {
		given = append(given, n)
	}
	sort.Strings(given)
	for _, n := range given {
		if _, ok := p.Variables[n]; !ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Value for undeclared variable",
				Detail:   fmt.Sprintf("--var %s was given, but %s declares no variable %q.%s", n, p.Filename, n, didYouMean(n, names)),
			})
		}
	}
	resolved := make([]string, 0, len(p.givenValues))
	for n := range p.givenValues {
		resolved = append(resolved, n)
	}
	sort.Strings(resolved)
	for _, n := range resolved {
		if _, ok := p.Variables[n]; !ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Value for undeclared variable",
				Detail:   fmt.Sprintf("The master resolved variable %q, but %s declares no such variable. Every instance must load the same pipeline file.", n, p.Filename),
			})
		}
	}
	return diags
}

// variableValue returns the value given on the command line or in the
// environment, parsed per the declared type, and whether there was one.
func (p *Pipeline) variableValue(name string, ty cty.Type, vars map[string]string) (cty.Value, bool, hcl.Diagnostics) {
	raw, from := "", ""
	if s, ok := vars[name]; ok {
		raw, from = s, "--var "+name
	} else if s, ok := p.environ[VarEnvPrefix+name]; ok {
		raw, from = s, VarEnvPrefix+name
	} else {
		return cty.NilVal, false, nil
	}
	v, err := parseVariable(raw, ty, from)
	if err != nil {
		return cty.NilVal, true, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  fmt.Sprintf("Invalid value for variable %q", name),
			Detail:   err.Error(),
			Subject:  p.Variables[name].DeclRange.Ptr(),
		}}
	}
	return v, true, nil
}

// parseVariable turns the text of --var or MODPIPE_VAR_ into a value of ty.
// Primitive types take the text literally (so --var n=3 is the number 3
// and --var s=hello needs no quotes); collections and structural types
// parse it as an HCL expression (--var 'targets=["linux","macos"]'). An
// untyped variable tries HCL first and falls back to the literal string.
func parseVariable(raw string, ty cty.Type, from string) (cty.Value, error) {
	if ty.IsPrimitiveType() {
		v, err := convert.Convert(cty.StringVal(raw), ty)
		if err != nil {
			return cty.NilVal, fmt.Errorf("%s=%q is not a valid %s: %s", from, raw, typeexpr.TypeString(ty), err)
		}
		return v, nil
	}
	expr, diags := hclsyntax.ParseExpression([]byte(raw), from, hcl.InitialPos)
	var v cty.Value
	if !diags.HasErrors() {
		v, diags = expr.Value(nil)
	}
	if diags.HasErrors() {
		if ty == cty.DynamicPseudoType {
			return cty.StringVal(raw), nil
		}
		why := ""
		if d := diags[0]; d.Summary != "Variables not allowed" { // a bare word: the example says it all
			why = fmt.Sprintf(" (%s)", d.Summary)
		}
		return cty.NilVal, fmt.Errorf("%s=%q is not a value of type %s: a %s is written as an HCL expression, such as %s%s",
			from, raw, typeexpr.TypeString(ty), typeexpr.TypeString(ty), exampleOf(ty), why)
	}
	cv, err := convertValue(v, ty)
	if err != nil {
		return cty.NilVal, fmt.Errorf("%s=%q does not match the variable's type %s: %s", from, raw, typeexpr.TypeString(ty), err)
	}
	return cv, nil
}

// exampleOf is a literal of type ty, for messages about values written
// on the command line.
func exampleOf(ty cty.Type) string {
	switch {
	case ty.IsListType(), ty.IsSetType():
		return "'[" + exampleOf(ty.ElementType()) + "]'"
	case ty.IsMapType():
		return "'{ key = " + strings.Trim(exampleOf(ty.ElementType()), "'") + " }'"
	case ty.IsObjectType():
		return "'{ name = ... }'"
	case ty.IsTupleType():
		return "'[...]'"
	case ty == cty.Number:
		return "1"
	case ty == cty.Bool:
		return "true"
	}
	return `"text"`
}
