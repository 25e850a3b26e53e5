package config

import (
	"fmt"
	"runtime"
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

// BenchmarkParseFile parses the bench's local DAG of 1,000 modules (10
// layers, 3 dependencies each) as one piece per CPU and in pieces of
// pieceBytes, each on every CPU and on one.
func BenchmarkParseFile(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("pipeline {\n  name = \"bench\"\n}\n")
	for layer := range 10 {
		for i := range 100 {
			fmt.Fprintf(&sb, "module \"shell\" \"m%d_%d\" {\n  command = [\"/bin/true\"]\n", layer, i)
			if layer > 0 {
				fmt.Fprintf(&sb, "  depends_on = [module.m%d_%d, module.m%d_%d, module.m%d_%d]\n", layer-1, (i*7)%100, layer-1, (i*13+1)%100, layer-1, (i*31+2)%100)
			}
			sb.WriteString("}\n")
		}
	}
	src := []byte(sb.String())
	for _, bc := range []struct {
		name            string
		pieces, workers int
	}{
		{"one piece per CPU", runtime.GOMAXPROCS(0), runtime.GOMAXPROCS(0)},
		{"small pieces", len(src) / pieceBytes, runtime.GOMAXPROCS(0)},
		{"one piece on one CPU", 1, 1},
		{"small pieces on one CPU", len(src) / pieceBytes, 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if _, diags := parsePieces(src, "p.hcl", bc.pieces, bc.workers); diags.HasErrors() {
					b.Fatal(diags)
				}
			}
		})
	}
}

// BenchmarkMatrixAxis10000 loads a module whose one matrix axis has
// 10,000 values, the most a module may have (1.6 s before convertValue:
// cty unifies a converted tuple's element types pairwise).
func BenchmarkMatrixAxis10000(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("module \"shell\" \"m\" {\n  matrix = [")
	for i := range 10000 {
		fmt.Fprintf(&sb, "\"s%d\", ", i)
	}
	sb.WriteString("]\n}\n")
	src := []byte(sb.String())
	for b.Loop() {
		if _, diags := LoadSource("p.hcl", src, Options{}); diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}

// BenchmarkLocals8000 loads 8,000 locals, each naming the one before
// (7.2 s per load when every local's context held every local).
func BenchmarkLocals8000(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("locals {\n  l0 = 0\n")
	for i := 1; i < 8000; i++ {
		fmt.Fprintf(&sb, "  l%d = local.l%d + 1\n", i, i-1)
	}
	sb.WriteString("}\n")
	src := []byte(sb.String())
	for b.Loop() {
		if _, diags := LoadSource("p.hcl", src, Options{}); diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}
