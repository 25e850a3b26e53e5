package host

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

func TestAttributeRange(t *testing.T) {
	src := `env = { A = "1" }
server = {
  host = "h"
  "port" = 1
}
steps = [
  { name = "a" },
  { name = "b" },
]
dynamic = var.x
`
	f, diags := hclsyntax.ParseConfig([]byte(src), "p.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	body := f.Body.(*hclsyntax.Body)
	def := hcl.Range{Filename: "p.hcl", Start: hcl.Pos{Line: 99, Column: 1}}
	for _, tc := range []struct {
		path      string
		line, col int
	}{
		{"env", 1, 1},
		{"server.host", 3, 10},
		{"server.port", 4, 12},
		{"steps[1].name", 8, 12},
		{"steps[1]", 8, 3},
		{"steps[7].name", 6, 1},  // no such element: the attribute
		{"dynamic.field", 10, 1}, // not written out: the attribute
		{"server.nope", 2, 1},    // no such key: the attribute
		{"missing", 99, 1},       // no such attribute: the default
	} {
		got := attributeRange(body, tc.path, def)
		if got.Start.Line != tc.line || got.Start.Column != tc.col {
			t.Errorf("%s: at %d:%d, want %d:%d", tc.path, got.Start.Line, got.Start.Column, tc.line, tc.col)
		}
	}
}
