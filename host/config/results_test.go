package config

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/modpipe/modpipe/host/schema"
)

// resultKinds are the kinds of the modules of results tests, by plugin:
// their result types are what each exercises.
var resultKinds = map[string]*schema.Kind{
	"git": {Name: "facts", ResultType: "git.facts/v1", Result: cty.Object(map[string]cty.Type{
		"sha": cty.String, "short_sha": cty.String, "dirty": cty.Bool,
	})},
	"shell": {Name: "exec", ResultType: "shell.exec/v1", Result: cty.Object(map[string]cty.Type{
		"exit_code": cty.Number, "stdout": cty.String, "json": cty.DynamicPseudoType,
	})},
	"file": {Name: "checksum", ResultType: "file.checksum/v1", Result: cty.Object(map[string]cty.Type{
		"files":   cty.List(cty.ObjectWithOptionalAttrs(map[string]cty.Type{"path": cty.String, "size": cty.Number}, []string{"size"})),
		"by_name": cty.Map(cty.Object(map[string]cty.Type{"path": cty.String})),
		"pair":    cty.Tuple([]cty.Type{cty.String, cty.Object(map[string]cty.Type{"a": cty.String})}),
		"count":   cty.Number,
	})},
	// A plugin that declares no result type: nothing is checked.
	"old": {Name: "x", ResultType: "old.x/v1"},
}

// resultKindOf is CheckResultReferences's kindOf for p: each module's
// kind by its plugin.
func resultKindOf(p *Pipeline) func(string) *schema.Kind {
	return func(name string) *schema.Kind {
		if m := p.Module(name); m != nil {
			return resultKinds[m.Plugin]
		}
		return nil
	}
}

const resultsSrc = `
variable "i" { default = 0 }
variable "b" { default = true }
module "git" "checkout" {}
module "shell" "sh" {}
module "file" "sums" {}
module "old" "legacy" {}
module "shell" "build" {
  matrix = ["linux", "arm"]
}
`

func TestCheckResultReferences(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string // the diagnostics' details, in order; none = clean
	}{
		{"attribute", `x = module.checkout.value.sha`, nil},
		{"misspelt attribute", `x = module.checkout.value.sah`, []string{
			`module.checkout.value has no attribute "sah": module "checkout" is of kind git.facts, whose result (git.facts/v1) has dirty, sha, short_sha there. Did you mean "sha"?`}},
		{"in a template", `x = "at ${module.checkout.value.sah}"`, []string{`has no attribute "sah"`}},
		{"as a string index", `x = module.checkout.value["sah"]`, []string{`has no attribute "sah"`}},
		{"in parentheses", `x = (module.checkout.value).sah`, []string{`has no attribute "sah"`}},
		{"in a condition", `x = var.b ? module.checkout.value.sha : module.checkout.value.shaa`, []string{`has no attribute "shaa"`}},
		{"two", "x = module.checkout.value.sah\n  y = [module.sh.value.stdot]", []string{`"sah"`, `"stdot"`}},
		{"run_if", `run_if = module.checkout.value.dirt`, []string{`has no attribute "dirt"`}},
		{"nested block", "extra {\n    x = module.checkout.value.sah\n  }", []string{`has no attribute "sah"`}},
		{"the envelope's attributes", `x = [module.checkout.status, module.checkout.error.message, module.legacy.attempts]`, nil},
		{"a list's element", `x = module.sums.value.files[0].path`, nil},
		{"a list's element misspelt", `x = module.sums.value.files[0].pth`, []string{
			`module.sums.value.files[0] has no attribute "pth": module "sums" is of kind file.checksum, whose result (file.checksum/v1) has path, size there. Did you mean "path"?`}},
		{"a list's element by a legacy index", `x = module.sums.value.files.0.pth`, []string{`module.sums.value.files.0 has no attribute "pth"`}},
		{"a list's element by an expression", `x = module.sums.value.files[var.i].pth`, []string{`module.sums.value.files[var.i] has no attribute "pth"`}},
		{"an optional attribute", `x = module.sums.value.files[0].size`, nil},
		{"a tuple's element", `x = module.sums.value.pair[1].a`, nil},
		{"a tuple's element misspelt", `x = module.sums.value.pair[1].b`, []string{`module.sums.value.pair[1] has no attribute "b"`}},
		{"a tuple's element unknown", `x = module.sums.value.pair[var.i].b`, nil},
		{"a map stops the check", `x = module.sums.value.by_name["x"].nope`, nil},
		{"dynamic stops the check", `x = module.sh.value.json.anything[3].deeper`, nil},
		{"a primitive stops the check", `x = module.sums.value.count.x`, nil},
		{"a number index on an object", `x = module.checkout.value[0]`, nil},
		{"no result type declared", `x = module.legacy.value.anything.at.all`, nil},
		{"unknown module: the graph's", `x = module.nosuch.value.sah`, nil},
		{"try", `x = try(module.checkout.value.sah, "none")`, nil},
		{"can", `x = can(module.checkout.value.sah) ? 1 : 2`, nil},
		{"a matrix instance", `x = [module.build["linux"].value.stdout, module.build.arm.value.exit_code]`, nil},
		{"a matrix instance misspelt", `x = module.build["linux"].value.stdot`, []string{
			`module.build["linux"].value has no attribute "stdot": module "build" is of kind shell.exec, whose result (shell.exec/v1) has exit_code, json, stdout there. Did you mean "stdout"?`}},
		{"a matrix instance by key misspelt", `x = module.build.arm.value.stdot`, []string{`module.build.arm.value has no attribute "stdot"`}},
		{"a matrix instance by expression", "matrix = [\"linux\", \"arm\"]\n  x = module.build[matrix.target].value.stdout", nil},
		{"a matrix instance by expression misspelt", "matrix = [\"linux\", \"arm\"]\n  x = module.build[matrix.target].value.stdot", []string{
			`module.build[matrix.target].value has no attribute "stdot"`}},
		{"a matrix instance by function", "matrix = [\"linux\", \"arm\"]\n  x = module.build[lower(matrix.target)].value.stdot", []string{`has no attribute "stdot"`}},
		{"a result in an index", `x = module.sums.value.by_name[module.checkout.value.sah]`, []string{`has no attribute "sah"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustLoad(t, resultsSrc+"module \"shell\" \"m\" {\n  "+tt.body+"\n}\n", testOptions())
			diags := p.Module("m").CheckResultReferences(resultKindOf(p))
			if len(diags) != len(tt.want) {
				t.Fatalf("got %d diagnostics, want %d: %v", len(diags), len(tt.want), diags)
			}
			for i, w := range tt.want {
				d := diags[i]
				if d.Severity != hcl.DiagError || d.Summary != "Unsupported attribute" || !strings.Contains(d.Detail, w) {
					t.Errorf("diagnostic %d = %s: %s, want an error with %q", i, d.Summary, d.Detail, w)
				}
			}
		})
	}
}

// The diagnostic points at the step that is wrong: .sah, on its line and
// column, within the reference's range.
func TestCheckResultReferencesRange(t *testing.T) {
	body := "module \"shell\" \"m\" {\n  x = [\"a\",\n    module.build[\"arm\"].value.stdot]\n}\n"
	p := mustLoad(t, resultsSrc+body, testOptions())
	diags := p.Module("m").CheckResultReferences(resultKindOf(p))
	if len(diags) != 1 {
		t.Fatalf("diagnostics: %v", diags)
	}
	line := strings.Count(resultsSrc, "\n") + 3
	d := diags[0]
	if s := d.Subject; s == nil || s.Start.Line != line || s.Start.Column != 30 || s.End.Line != line || s.End.Column != 36 {
		t.Errorf("subject %v, want line %d, columns 30 to 36 (.stdot)", d.Subject, line)
	}
	if c := d.Context; c == nil || c.Start.Column != 5 || c.End.Column != 36 {
		t.Errorf("context %v, want the whole reference (columns 5 to 36)", d.Context)
	}
}

// TestCheckResultReferencesGolden renders the diagnostics of
// testdata/results/references.hcl as `host validate` prints them.
func TestCheckResultReferencesGolden(t *testing.T) {
	const file = "testdata/results/references.hcl"
	p, diags := Load(file, testOptions())
	if diags.HasErrors() {
		t.Fatalf("Load: %s", diags.Error())
	}
	diags = nil
	for _, m := range p.Modules {
		diags = append(diags, m.CheckResultReferences(resultKindOf(p))...)
	}
	SortDiagnostics(diags)
	golden(t, strings.TrimSuffix(file, ".hcl")+".golden", renderDiags(t, p, diags))
}
