package config

import (
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// TestResolvedValues checks that the values a distributed master resolved
// replace an instance's own variables and locals.
func TestResolvedValues(t *testing.T) {
	const src = `
variable "name" {
  type = string
}
variable "n" {
  type    = number
  default = 1
}
locals {
  greeting = "hello ${var.name}"
  where    = env("WHERE")
  derived  = "${local.where}!"
}
`
	tests := []struct {
		name       string
		vars       map[string]string
		environ    []string
		values     map[string]cty.Value
		locals     map[string]cty.Value
		wantVars   map[string]cty.Value
		wantLocals map[string]cty.Value
		wantErr    string
	}{
		{
			name:    "own values without resolved ones",
			vars:    map[string]string{"name": "worker"},
			environ: []string{"WHERE=here"},
			wantVars: map[string]cty.Value{
				"name": cty.StringVal("worker"), "n": cty.NumberIntVal(1),
			},
			wantLocals: map[string]cty.Value{
				"greeting": cty.StringVal("hello worker"), "where": cty.StringVal("here"), "derived": cty.StringVal("here!"),
			},
		},
		{
			name:    "resolved values win over --var, env and defaults",
			vars:    map[string]string{"name": "worker"},
			environ: []string{"WHERE=here", "MODPIPE_VAR_n=7"},
			values:  map[string]cty.Value{"name": cty.StringVal("master"), "n": cty.NumberIntVal(3)},
			wantVars: map[string]cty.Value{
				"name": cty.StringVal("master"), "n": cty.NumberIntVal(3),
			},
			wantLocals: map[string]cty.Value{
				"greeting": cty.StringVal("hello master"), "where": cty.StringVal("here"), "derived": cty.StringVal("here!"),
			},
		},
		{
			name:   "a required variable needs no value of its own",
			values: map[string]cty.Value{"name": cty.StringVal("master")},
			wantVars: map[string]cty.Value{
				"name": cty.StringVal("master"), "n": cty.NumberIntVal(1),
			},
		},
		{
			name:    "resolved locals replace evaluation and feed the others",
			environ: []string{"WHERE=worker-env"},
			values:  map[string]cty.Value{"name": cty.StringVal("m")},
			locals:  map[string]cty.Value{"where": cty.StringVal("master-env")},
			wantLocals: map[string]cty.Value{
				"greeting": cty.StringVal("hello m"), "where": cty.StringVal("master-env"), "derived": cty.StringVal("master-env!"),
			},
		},
		{
			name:   "values are converted to the declared type",
			values: map[string]cty.Value{"name": cty.StringVal("m"), "n": cty.StringVal("42")},
			wantVars: map[string]cty.Value{
				"n": cty.NumberIntVal(42),
			},
		},
		{
			name:    "a value of the wrong type is refused",
			values:  map[string]cty.Value{"name": cty.StringVal("m"), "n": cty.StringVal("many")},
			wantErr: "does not match the variable's type number",
		},
		{
			name:    "a value for an undeclared variable is refused",
			values:  map[string]cty.Value{"name": cty.StringVal("m"), "nmae": cty.StringVal("x")},
			wantErr: `The master resolved variable "nmae"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, diags := loadString(t, src, Options{Vars: tt.vars, Environ: tt.environ, Values: tt.values, Locals: tt.locals})
			if tt.wantErr != "" {
				if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.wantErr) {
					t.Fatalf("diagnostics = %v, want an error containing %q", diags, tt.wantErr)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatalf("Load: %s", diags.Error())
			}
			for name, want := range tt.wantVars {
				if got := p.Variables[name].Value; !got.RawEquals(want) {
					t.Errorf("var.%s = %#v, want %#v", name, got, want)
				}
			}
			for name, want := range tt.wantLocals {
				if got := p.Locals[name]; !got.RawEquals(want) {
					t.Errorf("local.%s = %#v, want %#v", name, got, want)
				}
			}
		})
	}
}
