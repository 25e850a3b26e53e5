package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/schema"
)

// loadString writes src to a pipeline file in a temp dir and loads it.
func loadString(t *testing.T, src string, opts Options) (*Pipeline, hcl.Diagnostics) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "pipeline.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return Load(path, opts)
}

func mustLoad(t *testing.T, src string, opts Options) *Pipeline {
	t.Helper()
	p, diags := loadString(t, src, opts)
	if diags.HasErrors() {
		t.Fatalf("Load: %s", diags.Error())
	}
	return p
}

func TestVariablePrecedence(t *testing.T) {
	const src = `
variable "name" {
  type    = string
  default = "from-default"
}
variable "n" {
  type    = number
  default = 1
}
variable "targets" {
  type    = list(string)
  default = ["linux"]
}
variable "anything" {
  default = "d"
}
`
	tests := []struct {
		name    string
		vars    map[string]string
		environ []string
		want    map[string]cty.Value
		wantErr string
	}{
		{
			name: "defaults",
			want: map[string]cty.Value{
				"name": cty.StringVal("from-default"), "n": cty.NumberIntVal(1),
				"targets": cty.ListVal([]cty.Value{cty.StringVal("linux")}), "anything": cty.StringVal("d"),
			},
		},
		{
			name:    "environment over default",
			environ: []string{"MODPIPE_VAR_name=from-env", "MODPIPE_VAR_n=7"},
			want:    map[string]cty.Value{"name": cty.StringVal("from-env"), "n": cty.NumberIntVal(7)},
		},
		{
			name:    "--var over environment",
			vars:    map[string]string{"name": "from-flag"},
			environ: []string{"MODPIPE_VAR_name=from-env"},
			want:    map[string]cty.Value{"name": cty.StringVal("from-flag")},
		},
		{
			name: "collections parse as HCL",
			vars: map[string]string{"targets": `["linux", "macos"]`, "anything": `{ a = 1 }`},
			want: map[string]cty.Value{
				"targets":  cty.ListVal([]cty.Value{cty.StringVal("linux"), cty.StringVal("macos")}),
				"anything": cty.ObjectVal(map[string]cty.Value{"a": cty.NumberIntVal(1)}),
			},
		},
		{
			name: "untyped text that is not HCL stays a string",
			vars: map[string]string{"anything": "hello world"},
			want: map[string]cty.Value{"anything": cty.StringVal("hello world")},
		},
		{
			name:    "a number variable refuses text",
			vars:    map[string]string{"n": "many"},
			wantErr: `--var n="many" is not a valid number`,
		},
		{
			name:    "a list variable refuses a bad expression",
			environ: []string{`MODPIPE_VAR_targets=["linux"`},
			wantErr: `MODPIPE_VAR_targets="[\"linux\"" is not a value of type list(string): a list(string) is written as an HCL expression, such as '["text"]' (Unterminated tuple constructor expression)`,
		},
		{
			name:    "a bare word for a list says how to write one",
			vars:    map[string]string{"targets": "linux"},
			wantErr: `--var targets="linux" is not a value of type list(string): a list(string) is written as an HCL expression, such as '["text"]'`,
		},
		{
			name:    "unknown --var is an error with a suggestion",
			vars:    map[string]string{"nmae": "x"},
			wantErr: `declares no variable "nmae". Did you mean "name"?`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, diags := loadString(t, src, Options{Vars: tt.vars, Environ: tt.environ})
			if tt.wantErr != "" {
				if !strings.Contains(diags.Error(), tt.wantErr) {
					t.Fatalf("diagnostics %q do not contain %q", diags.Error(), tt.wantErr)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			for name, want := range tt.want {
				if got := p.Variables[name].Value; !got.RawEquals(want) {
					t.Errorf("var.%s = %#v, want %#v", name, got, want)
				}
			}
		})
	}
}

func TestFunctions(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "VERSION"), []byte("1.2.3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := `
locals {
  version = trimspace(file("VERSION"))
  home    = env("HOME")
  unset   = env("NOT_SET_ANYWHERE")
  fmt     = format("%s-%03d", "build", 7)
  joined  = join(",", concat(["a"], ["b", "c"]))
  merged  = merge({ a = 1 }, { b = 2 })
  starts  = startswith("linux-amd64", "linux")
  ends    = endswith("linux-amd64", "arm64")
  num     = tonumber("42") + 1
  str     = tostring(5)
  js      = jsondecode(jsonencode({ k = ["v"] })).k[0]
  rng     = length(range(3))
  facts   = "${run.os}/${run.arch}/${run.instance}/${run.ci}/${join(",", run.capabilities)}"
  maybe   = try(local.merged.c, "fallback")
}
`
	path := filepath.Join(dir, "pipeline.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	p, diags := Load(path, testOptions())
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	want := map[string]cty.Value{
		"version": cty.StringVal("1.2.3"),
		"home":    cty.StringVal("/root"),
		"unset":   cty.StringVal(""),
		"fmt":     cty.StringVal("build-007"),
		"joined":  cty.StringVal("a,b,c"),
		"starts":  cty.True,
		"ends":    cty.False,
		"num":     cty.NumberIntVal(43),
		"str":     cty.StringVal("5"),
		"js":      cty.StringVal("v"),
		"rng":     cty.NumberIntVal(3),
		"facts":   cty.StringVal("linux/amd64/0/true/linux,amd64,docker"),
		"maybe":   cty.StringVal("fallback"),
	}
	for name, w := range want {
		if got := p.Locals[name]; !got.RawEquals(w) {
			t.Errorf("local.%s = %#v, want %#v", name, got, w)
		}
	}

	// file() names the path it looked for, resolved against the file's dir.
	_, diags = loadString(t, `locals { x = file("missing.txt") }`, testOptions())
	if !strings.Contains(diags.Error(), "missing.txt") || !strings.Contains(diags.Error(), "no file exists at /") {
		t.Errorf("file() error does not name the resolved path: %s", diags.Error())
	}
}

// index takes what collection[key] takes, objects included, and says
// which positions or keys there are when the key is none of them.
func TestIndexFunction(t *testing.T) {
	for _, tc := range []struct {
		expr    string
		want    cty.Value
		wantErr string
	}{
		{`index(["a", "b"], 1)`, cty.StringVal("b"), ""},
		{`index({ k = "v" }, "k")`, cty.StringVal("v"), ""},
		{`index(tomap({ k = "v" }), "k")`, cty.StringVal("v"), ""},
		{`index({ linux = { status = "succeeded" } }, "linux").status`, cty.StringVal("succeeded"), ""},
		{`index({ k = "v" }, "z")`, cty.NilVal, `the object has no key "z"; its keys are "k"`},
		{`index(["a"], 5)`, cty.NilVal, "position 5 is out of range: the collection has 1 element, at positions 0 to 0"},
		{`index(["a", "b"], -1)`, cty.NilVal, "position -1 is out of range: the collection has 2 elements, at positions 0 to 1"},
		{`index([], 0)`, cty.NilVal, "the collection is empty"},
		{`index(["a", "b"], 1.5)`, cty.NilVal, "a position must be a whole number, not 1.5"},
		{`length("abc")`, cty.NilVal, "for the length of a string use strlen"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			p := mustLoad(t, `module "shell" "a" {}`, testOptions())
			expr, diags := hclsyntax.ParseExpression([]byte(tc.expr), "x.hcl", hcl.InitialPos)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			got, diags := expr.Value(p.EvalContext(Scope{Facts: testFacts}))
			if tc.wantErr != "" {
				if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.wantErr) {
					t.Fatalf("got %#v, %v; want an error with %q", got, diags, tc.wantErr)
				}
				return
			}
			if diags.HasErrors() || !got.RawEquals(tc.want) {
				t.Fatalf("got %#v, %v; want %#v", got, diags, tc.want)
			}
		})
	}
}

func TestMissingFileOnly(t *testing.T) {
	for _, tc := range []struct {
		name, expr string
		want       bool
	}{
		{"a missing file", `file("missing.txt")`, true},
		{"two missing files", `"${file("a.txt")}${file("b.txt")}"`, true},
		{"a missing file and an unknown variable", `"${file("a.txt")}${var.nope}"`, false},
		{"a directory", `file(".")`, false},
		{"another function's error", `parseint("x", 10)`, false},
		{"no error", `upper("a")`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustLoad(t, `module "shell" "a" {}`, testOptions())
			expr, diags := hclsyntax.ParseExpression([]byte(tc.expr), "x.hcl", hcl.InitialPos)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			_, diags = expr.Value(p.EvalContext(Scope{Facts: testFacts}))
			if got := missingFileOnly(diags); got != tc.want {
				t.Errorf("missingFileOnly(%s) = %v, want %v", diags.Error(), got, tc.want)
			}
		})
	}
}

func TestLocalsOrderIndependent(t *testing.T) {
	p := mustLoad(t, `
locals { c = "${local.b}!" }
locals {
  b = upper(local.a)
  a = var.v
}
variable "v" { default = "x" }
`, Options{})
	if got := p.Locals["c"]; !got.RawEquals(cty.StringVal("X!")) {
		t.Errorf("local.c = %#v", got)
	}
}

// TestLocalReferences checks what a local sees: the locals it names, and
// the whole set when it uses local another way.
func TestLocalReferences(t *testing.T) {
	tests := []struct {
		name, src, local string
		want             cty.Value
		wantErr          string
	}{
		{"named", `locals {
  a = "x"
  b = "y"
  c = "${local.a}${local.b}"
}`, "c", cty.StringVal("xy"), ""},
		{"indexed", `locals {
  a = "x"
  c = local["a"]
}`, "c", cty.StringVal("x"), ""},
		{"the whole object", `locals {
  a = "x"
  b = "y"
  c = length(local)
}`, "c", cty.NumberIntVal(2), ""},
		{"with variables and functions", `variable "v" {
  default = "q"
}
locals {
  a = "x"
  c = upper("${var.v}${local.a}${run.instance}")
}`, "c", cty.StringVal("QX0"), ""},
		{"misspelt", `locals {
  alpha = "x"
  c = local.alpah
}`, "", cty.NilVal, `does not have an attribute named "alpah"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, diags := loadString(t, tt.src, Options{})
			if tt.wantErr != "" {
				if !strings.Contains(diags.Error(), tt.wantErr) {
					t.Fatalf("diags = %v, want %q", diags, tt.wantErr)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			if got := p.Locals[tt.local]; !got.RawEquals(tt.want) {
				t.Errorf("local.%s = %#v, want %#v", tt.local, got, tt.want)
			}
		})
	}
}

// kinds used by the EvalConfig and CheckBody tests.
var execKind = &schema.Kind{
	Name: "exec",
	Attributes: []schema.Attribute{
		{Name: "command", Type: cty.List(cty.String)},
		{Name: "script", Type: cty.String},
		{Name: "env", Type: cty.Map(cty.String)},
		{Name: "retries", Type: cty.Number},
		{Name: "verbose", Type: cty.Bool},
		{Name: "dir", Type: cty.String, Required: true},
		{Name: "server", Type: cty.Object(map[string]cty.Type{"host": cty.String, "port": cty.Number})},
		{Name: "steps", Type: cty.List(cty.Object(map[string]cty.Type{"name": cty.String}))},
	},
}

const evalSrc = `
variable "who" { default = "world" }
module "shell" "checkout" {
  dir = "."
}
module "shell" "test" {
  matrix = ["linux", "windows"]
  dir    = "."
}
module "shell" "use" {
  dir     = "/src/${module.checkout.value.sha}"
  script  = "echo hello ${var.who} on ${matrix.target}: ${module.test["linux"].value.out}"
  env     = { COUNT = module.checkout.value.count, OK = module.checkout.status }
  retries = "3"
  verbose = module.checkout.value.flag
  command = [for k in keys(module.test) : "${k}=${module.test[k].status}"]
  matrix  = ["linux"]
  run_if  = module.checkout.value.count > 2 && run.os == "linux"
}
`

func envelope(module string, status coordinator.Status, value string) *coordinator.Envelope {
	return &coordinator.Envelope{Module: module, Status: status, Type: "shell.exec/v1", Value: json.RawMessage(value), Attempts: 1, DurationMS: 5, Host: "h"}
}

func evalScope(t *testing.T) Scope {
	t.Helper()
	checkout, err := ModuleValue(envelope("checkout", coordinator.StatusSucceeded, `{"sha":"abc123","count":3,"flag":"true"}`))
	if err != nil {
		t.Fatal(err)
	}
	linux, err := ModuleValue(envelope("test[linux]", coordinator.StatusSucceeded, `{"out":"ok"}`))
	if err != nil {
		t.Fatal(err)
	}
	// A differently shaped value on another instance must not break the map.
	windows, err := ModuleValue(&coordinator.Envelope{Module: "test[windows]", Status: coordinator.StatusFailed,
		Error: &coordinator.Error{Message: "boom", Kind: coordinator.ErrorKindModule, Tail: "stderr"}})
	if err != nil {
		t.Fatal(err)
	}
	return Scope{
		Facts:  testFacts,
		Matrix: map[string]string{"target": "linux"},
		Modules: map[string]cty.Value{
			"checkout": checkout,
			"test":     MatrixValue(map[string]cty.Value{"linux": linux, "windows": windows}),
		},
	}
}

func TestEvalConfig(t *testing.T) {
	p := mustLoad(t, evalSrc, testOptions())
	m := p.Module("use")
	if diags := m.CheckBody(execKind); diags.HasErrors() {
		t.Fatalf("CheckBody: %s", diags.Error())
	}
	got, diags := m.EvalConfig(p.EvalContext(evalScope(t)), execKind)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	// Values are converted to the schema's types: "3" -> 3, "true" -> true,
	// the number 3 -> "3" inside a map of strings.
	want := `{"command":["linux=succeeded","windows=failed"],"dir":"/src/abc123","env":{"COUNT":"3","OK":"succeeded"},"retries":3,"script":"echo hello world on linux: ok","verbose":true}`
	if string(got) != want {
		t.Errorf("EvalConfig =\n%s\nwant\n%s", got, want)
	}

	// Absent optional attributes are omitted.
	got, diags = p.Module("checkout").EvalConfig(p.EvalContext(Scope{Facts: testFacts}), execKind)
	if diags.HasErrors() || string(got) != `{"dir":"."}` {
		t.Errorf("EvalConfig(checkout) = %s, %v", got, diags)
	}
}

func TestEvalConfigErrors(t *testing.T) {
	scope := evalScope(t)
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"type mismatch at run time", `dir = module.checkout.value`, `Inappropriate value for attribute "dir"`},
		{"missing result attribute", `dir = module.checkout.value.nope`, `does not have an attribute named "nope"`},
		{"missing required", `script = "x"`, `The argument "dir" is required`},
		// The value is known only at run time, so only EvalConfig sees
		// the misspelt key (the conversion would drop it).
		{"object key typo at run time", "dir = \".\"\n  server = { host = module.checkout.value.sha, port = 1, hots = 3 }", `server has no key "hots"; its keys are host, port. Did you mean "host"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := mustLoad(t, `module "shell" "checkout" { dir = "." }
module "shell" "test" {
  matrix = ["linux"]
  dir = "."
}
module "shell" "m" {
  `+tt.src+`
}`, testOptions())
			_, diags := q.Module("m").EvalConfig(q.EvalContext(scope), execKind)
			if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.want) {
				t.Errorf("diagnostics %q do not contain %q", diags.Error(), tt.want)
			}
		})
	}
}

func TestEvalRunIf(t *testing.T) {
	p := mustLoad(t, evalSrc, testOptions())
	ok, diags := p.Module("use").EvalRunIf(p.EvalContext(evalScope(t)))
	if diags.HasErrors() || !ok {
		t.Errorf("EvalRunIf(use) = %v, %v; want true", ok, diags)
	}
	if got := RunIfSource(p.Module("use")); got != `module.checkout.value.count > 2 && run.os == "linux"` {
		t.Errorf("RunIfSource = %q", got)
	}
	ok, diags = p.Module("checkout").EvalRunIf(p.EvalContext(Scope{}))
	if diags.HasErrors() || !ok {
		t.Errorf("EvalRunIf without run_if = %v, %v; want true", ok, diags)
	}

	tests := []struct {
		runIf   string
		want    bool
		wantErr string
	}{
		{`run.os == "windows"`, false, ""},
		{`contains(run.capabilities, "docker")`, true, ""},
		{`"true"`, true, ""},
		{`module.checkout.value.count`, false, "must be a boolean, but it is number"},
		{`null`, false, "is null"},
		{`module.checkout.value.nope`, false, `does not have an attribute named "nope"`},
		{`module.test["windows"].error.message == "boom"`, true, ""},
		{`module.test["windows"].status == "failed" && module.test["linux"].error == null`, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.runIf, func(t *testing.T) {
			q := mustLoad(t, `module "shell" "checkout" {}
module "shell" "test" { matrix = ["linux", "windows"] }
module "shell" "m" {
  run_if = `+tt.runIf+`
}`, testOptions())
			got, diags := q.Module("m").EvalRunIf(q.EvalContext(evalScope(t)))
			if tt.wantErr != "" {
				if !strings.Contains(diags.Error(), tt.wantErr) {
					t.Errorf("diagnostics %q do not contain %q", diags.Error(), tt.wantErr)
				}
				return
			}
			if diags.HasErrors() || got != tt.want {
				t.Errorf("EvalRunIf = %v, %v; want %v", got, diags, tt.want)
			}
		})
	}
}

func TestCheckBody(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string // substrings of the diagnostics, in order; none = clean
	}{
		{"clean", `dir = "."`, nil},
		{"unknown attribute with suggestion", "dir = \".\"\n  scrpit = \"x\"", []string{`An argument named "scrpit" is not expected here. Did you mean "script"?`}},
		{"misspelt meta-argument", "dir = \".\"\n  timout = \"1s\"", []string{`An argument named "timout" is not expected here. Did you mean "timeout"?`}},
		{"object key typo", "dir = \".\"\n  server = { host = \"h\", prot = 3 }", []string{`server has no key "prot"; its keys are host, port. Did you mean "port"?`}},
		{"object key typo in a list", "dir = \".\"\n  steps = [{ name = \"a\" }, { nam = \"b\" }]", []string{`steps[1] has no key "nam"; its keys are name. Did you mean "name"?`}},
		{"object keys right", "dir = \".\"\n  server = { host = \"h\", port = 3 }\n  env = { ANY = \"x\" }", nil},
		{"run_if that is not a boolean", "dir = \".\"\n  run_if = \"yes\"", []string{`The run_if condition must be a boolean, but it is string.`}},
		{"misspelt depends_on", "dir = \".\"\n  depend_on = []", []string{`An argument named "depend_on" is not expected here. Did you mean "depends_on"?`}},
		{"retry as an argument", "dir = \".\"\n  retry = { attempts = 3 }", []string{`An argument named "retry" is not expected here. Retries are a block: retry { attempts = 3 }.`}},
		{"missing required", `script = "x"`, []string{`The argument "dir" is required`}},
		{"constant type mismatch", "dir = \".\"\n  command = \"ls\"", []string{`Inappropriate value for attribute "command"`}},
		{"variable type mismatch", "dir = var.list", []string{`Inappropriate value for attribute "dir"`}},
		{"local ok", "dir = local.d", nil},
		{"module reference is checked at run time", `dir = module.other.value.dir`, nil},
		{"meta-arguments are not plugin attributes", "dir = \".\"\n  timeout = \"1m\"", nil},
		{"nested block", "dir = \".\"\n  extra {}", []string{`Blocks of type "extra" are not expected here`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustLoad(t, `variable "list" { default = ["a"] }
locals { d = "." }
module "shell" "other" { dir = "." }
module "shell" "m" {
  `+tt.body+`
}`, testOptions())
			diags := p.Module("m").CheckBody(execKind)
			if len(tt.want) == 0 {
				if len(diags) > 0 {
					t.Fatalf("CheckBody: %s", diags.Error())
				}
				return
			}
			if len(diags) != len(tt.want) {
				t.Fatalf("got %d diagnostics, want %d: %s", len(diags), len(tt.want), diags.Error())
			}
			for i, w := range tt.want {
				if d := diags[i]; !strings.Contains(d.Summary+": "+d.Detail, w) || d.Subject == nil {
					t.Errorf("diagnostic %d = %s: %s (subject %v), want %q", i, d.Summary, d.Detail, d.Subject, w)
				}
			}
		})
	}

	// A kind that declares a meta-argument name: a warning, or an error
	// when the attribute is required.
	p := mustLoad(t, `module "shell" "m" {}`, Options{})
	kind := &schema.Kind{Name: "k", Attributes: []schema.Attribute{{Name: "timeout", Type: cty.String}, {Name: "retry", Type: cty.Number, Required: true}}}
	diags := p.Module("m").CheckBody(kind)
	if len(diags) != 2 || diags[0].Severity != hcl.DiagWarning || diags[1].Severity != hcl.DiagError {
		t.Errorf("meta-argument attributes: %v", diags)
	}
}

func TestModuleValue(t *testing.T) {
	if _, err := ModuleValue(nil); err == nil {
		t.Error("ModuleValue(nil) succeeded")
	}
	if _, err := ModuleValue(&coordinator.Envelope{Module: "x", Value: json.RawMessage(`{bad`)}); err == nil {
		t.Error("ModuleValue accepted invalid JSON")
	}
	v, err := ModuleValue(&coordinator.Envelope{Module: "x", Status: coordinator.StatusSkipped, SkipReason: "why", Instance: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !v.GetAttr("value").IsNull() || !v.GetAttr("error").IsNull() {
		t.Errorf("a skipped module's value and error should be null: %#v", v)
	}
	if v.GetAttr("skip_reason").AsString() != "why" || !v.GetAttr("instance").RawEquals(cty.NumberIntVal(2)) {
		t.Errorf("ModuleValue = %#v", v)
	}
	if got := MatrixValue(nil); !got.RawEquals(cty.EmptyObjectVal) {
		t.Errorf("MatrixValue(nil) = %#v", got)
	}
}

func TestMatrixInstances(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"single axis", `matrix = ["linux", "windows", "macos"]`, []string{"linux", "windows", "macos"}},
		{"expression", `matrix = [for t in ["a", "b"] : upper(t)]`, []string{"A", "B"}},
		{"single axis block", "matrix {\n go = [\"1.25\", 1.26]\n}", []string{"1.25", "1.26"}},
		{"product minus exclusion", "matrix {\n target = [\"linux\", \"windows\"]\n go = [\"1.25\", \"1.26\"]\n exclude = [{ target = \"windows\", go = \"1.25\" }]\n}",
			[]string{"target=linux,go=1.25", "target=linux,go=1.26", "target=windows,go=1.26"}},
		{"partial exclusion removes every match", "matrix {\n target = [\"linux\", \"windows\"]\n go = [\"1.25\", \"1.26\"]\n exclude = [{ target = \"windows\" }]\n}",
			[]string{"target=linux,go=1.25", "target=linux,go=1.26"}},
		{"three axes", "matrix {\n a = [\"1\", \"2\"]\n b = [\"x\"]\n c = [\"p\", \"q\"]\n}",
			[]string{"a=1,b=x,c=p", "a=1,b=x,c=q", "a=2,b=x,c=p", "a=2,b=x,c=q"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustLoad(t, "module \"shell\" \"m\" {\n"+tt.src+"\n}", Options{})
			var got []string
			for _, in := range p.Module("m").Matrix.Instances() {
				got = append(got, in.Key)
				if len(in.Values) != len(p.Module("m").Matrix.Axes) {
					t.Errorf("instance %s has values %v", in.Key, in.Values)
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("instances = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestEvalConcurrent evaluates one module from many goroutines, as the
// scheduler does when instances run in parallel; run with -race.
func TestEvalConcurrent(t *testing.T) {
	p := mustLoad(t, evalSrc, testOptions())
	scope := evalScope(t)
	m := p.Module("use")
	const workers = 8
	results := make(chan string, workers)
	for range workers {
		go func() {
			got, diags := m.EvalConfig(p.EvalContext(scope), execKind)
			if diags.HasErrors() {
				results <- diags.Error()
				return
			}
			results <- string(got)
		}()
	}
	first := <-results
	for range workers - 1 {
		if got := <-results; got != first {
			t.Errorf("concurrent evaluations differ: %s vs %s", got, first)
		}
	}
}

// TestEvalConfigDirectIsDecode checks EvalConfig's direct path against
// its general one (hcldec): wherever the direct path answers, the general
// one gives the same bytes and no diagnostic; the bodies meant for it
// (direct) are answered by it.
func TestEvalConfigDirectIsDecode(t *testing.T) {
	kind := &schema.Kind{Name: "k", Attributes: []schema.Attribute{
		{Name: "command", Type: cty.List(cty.String)},
		{Name: "script", Type: cty.String},
		{Name: "env", Type: cty.Map(cty.String)},
		{Name: "count", Type: cty.Number},
		{Name: "flag", Type: cty.Bool},
		{Name: "any", Type: cty.DynamicPseudoType},
		{Name: "server", Type: cty.ObjectWithOptionalAttrs(map[string]cty.Type{"host": cty.String, "port": cty.Number}, []string{"port"})},
		{Name: "steps", Type: cty.List(cty.Object(map[string]cty.Type{"name": cty.String}))},
		{Name: "timeout", Type: cty.String}, // a meta-argument: never the plugin's
	}}
	required := &schema.Kind{Name: "r", Attributes: append([]schema.Attribute{{Name: "dir", Type: cty.String, Required: true}}, kind.Attributes...)}
	// A plugin's schema is not checked for names given twice.
	twice := &schema.Kind{Name: "t", Attributes: []schema.Attribute{{Name: "script", Type: cty.String}, {Name: "script", Type: cty.Number}}}
	tests := []struct {
		name   string
		body   string
		kind   *schema.Kind
		direct bool
	}{
		{"list", `command = ["/bin/true"]`, kind, true},
		{"converted elements", `command = ["a", 1, true]`, kind, true},
		{"template with a variable", `script = "echo ${var.who} ${run.os}"`, kind, true},
		{"heredoc", "script = <<EOT\nline \"one\"\n  two\nEOT", kind, true},
		{"map converted", `env = { B = true, A = 1, "C D" = "x" }`, kind, true},
		{"number", `count = 1.5`, kind, true},
		{"number from a string", `count = "42"`, kind, true},
		{"bool", `flag = true`, kind, true},
		{"dynamic", `any = { x = [1, "a"], y = null }`, kind, true},
		{"optional object key absent", `server = { host = "h" }`, kind, true},
		{"list of objects", `steps = [{ name = "a" }, { name = "b" }]`, kind, true},
		{"null is omitted", "script = null\ncount = 2", kind, true},
		{"several, with meta-arguments", "script = \"x\"\ncommand = [\"y\"]\ndepends_on = [module.a]\ntimeout = \"5s\"\nretry {\n  attempts = 2\n}", kind, true},
		{"nothing", ``, kind, true},
		{"required present", "dir = \".\"\ncount = 1", required, true},
		{"required missing", `count = 1`, required, false},
		{"unknown attribute", `nope = 1`, kind, false},
		{"another block", "nope {\n}", kind, false},
		{"retry as an attribute", `retry = 3`, kind, false},
		{"wrong type", `flag = "maybe"`, kind, false},
		{"unknown object key", `server = { host = "h", hots = 1 }`, kind, false},
		{"index out of range", `script = ["a"][3]`, kind, false},
		{"unknown value", `script = module.a.value.x`, kind, false},
		{"error in a function", `count = parseint("x", 10)`, kind, false},
		{"a kind naming an attribute twice", "script = \"1\"\nnope = 1", twice, false},
		{"a kind naming an attribute twice, body fits", `script = "1"`, twice, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustLoad(t, "variable \"who\" { default = \"world\" }\nmodule \"shell\" \"a\" {}\nmodule \"shell\" \"m\" {\n"+tt.body+"\n}\n", testOptions())
			m := p.Module("m")
			// module.a is not finished: its value is unknown, as when
			// the host checks configs before anything runs.
			ctx := p.EvalContext(Scope{Facts: testFacts, Modules: map[string]cty.Value{"a": cty.UnknownVal(cty.DynamicPseudoType)}})
			direct, ok := m.evalConfigDirect(ctx, tt.kind)
			general, diags := m.evalConfigDecode(ctx, tt.kind)
			if ok != tt.direct {
				t.Errorf("direct path answered %v, want %v (general: %s %v)", ok, tt.direct, general, diags)
			}
			if !ok {
				return
			}
			if len(diags) > 0 {
				t.Fatalf("direct path answered %s where the general one reports %v", direct, diags)
			}
			if string(direct) != string(general) {
				t.Errorf("direct path = %s\ngeneral path = %s", direct, general)
			}
		})
	}
}
