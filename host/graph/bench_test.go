package graph

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/modpipe/modpipe/host/config"
	"github.com/modpipe/modpipe/host/schema"
)

var benchKind = &schema.Kind{Name: "exec", Attributes: []schema.Attribute{
	{Name: "command", Type: cty.List(cty.String)},
	{Name: "script", Type: cty.String},
}}

// layeredPipeline is the benchmark DAG of the requirements: layers of
// width modules, each depending on 3 random modules of the layer above
// (fixed seed), half through depends_on and half through references.
func layeredPipeline(layers, width int) []byte {
	rng := rand.New(rand.NewSource(1))
	var b strings.Builder
	for l := 0; l < layers; l++ {
		for i := 0; i < width; i++ {
			fmt.Fprintf(&b, "module \"shell\" \"m%d_%d\" {\n", l, i)
			if l > 0 {
				var refs []string
				for _, j := range rng.Perm(width)[:3] {
					refs = append(refs, fmt.Sprintf("module.m%d_%d", l-1, j))
				}
				fmt.Fprintf(&b, "  depends_on = [%s]\n", strings.Join(refs[:2], ", "))
				fmt.Fprintf(&b, "  script = \"echo ${%s.value.stdout}\"\n", refs[2])
			} else {
				fmt.Fprintf(&b, "  command = [\"/bin/true\"]\n")
			}
			fmt.Fprintf(&b, "}\n")
		}
	}
	return []byte(b.String())
}

func benchmarkLoadBuild(b *testing.B, layers, width int) {
	src := layeredPipeline(layers, width)
	b.ReportAllocs()
	for b.Loop() {
		p, diags := config.LoadSource("bench.hcl", src, config.Options{})
		if diags.HasErrors() {
			b.Fatal(diags.Error())
		}
		for _, m := range p.Modules {
			if diags := m.CheckBody(benchKind); diags.HasErrors() {
				b.Fatal(diags.Error())
			}
		}
		g, diags := Build(p)
		if diags.HasErrors() {
			b.Fatal(diags.Error())
		}
		if len(g.Nodes()) != layers*width {
			b.Fatalf("%d nodes", len(g.Nodes()))
		}
	}
}

// BenchmarkLoadBuild1000 and BenchmarkLoadBuild10000 measure loading,
// checking every body against a schema and building the graph of the 1,000- and 10,000-module pipelines (R8.2).
func BenchmarkLoadBuild1000(b *testing.B)  { benchmarkLoadBuild(b, 10, 100) }
func BenchmarkLoadBuild10000(b *testing.B) { benchmarkLoadBuild(b, 10, 1000) }
