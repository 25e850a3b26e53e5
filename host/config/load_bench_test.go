package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/modpipe/modpipe/host/schema"
)

// trueKind is the shell plugin's exec kind, as the bench's DAG of
// /bin/true modules uses it.
var trueKind = &schema.Kind{Name: "exec", Attributes: []schema.Attribute{
	{Name: "command", Type: cty.List(cty.String)}, {Name: "script", Type: cty.String}, {Name: "env", Type: cty.Map(cty.String)},
	{Name: "dir", Type: cty.String}, {Name: "stdout_json", Type: cty.Bool}}}

// loadN loads a pipeline of n modules running /bin/true, the shape of
// the bench's local DAG without its edges.
func loadN(b *testing.B, n int) *Pipeline {
	var sb strings.Builder
	sb.WriteString("pipeline {\n  name = \"bench\"\n}\n")
	for i := range n {
		fmt.Fprintf(&sb, "module \"shell\" \"m%d\" {\n  command = [\"/bin/true\"]\n}\n", i)
	}
	p, diags := LoadSource("p.hcl", []byte(sb.String()), Options{})
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	return p
}

// BenchmarkLoad1000, BenchmarkCheckBody and BenchmarkEvalConfig measure
// the per-module parts of `host run` and `host validate` that happen
// before any module runs, for 1,000 modules per op.
func BenchmarkLoad1000(b *testing.B) {
	for b.Loop() {
		loadN(b, 1000)
	}
}

func BenchmarkCheckBody(b *testing.B) {
	p := loadN(b, 1000)
	for b.Loop() {
		for _, m := range p.Modules {
			m.CheckBody(trueKind)
		}
	}
}

func BenchmarkEvalConfig(b *testing.B) {
	p := loadN(b, 1000)
	ctx := p.EvalContext(Scope{})
	for b.Loop() {
		for _, m := range p.Modules {
			m.EvalConfig(ctx, trueKind)
		}
	}
}
