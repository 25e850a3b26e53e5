package hclscan

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/modpipe/modpipe/host/internal/hclfiles"
)

// cases are sources with what makes a scan go wrong: braces in strings,
// templates, comments and heredocs, one-line blocks, attributes over
// several lines.
var cases = []string{
	"",
	"# only a comment\n",
	"pipeline {\n  name = \"x\"\n}\n",
	`module "shell" "a" {
  command = ["echo", "}"]
}
module "shell.exec" "b" {
  script = "echo ${jsonencode({a = "}"})} %{ if true }{%{ endif } $${not} %%{not}"
  depends_on = [module.a]
}
`,
	"module \"shell\" \"a\" { command = [\"true\"] }\nmodule \"shell\" \"b\" {}",
	"\xef\xbb\xbfmodule \"a\" \"b\" {}\n",
	"/* { */ module \"a\" \"b\" { // }\n  # }\n  x = 1 /* } */\n}\n",
	"locals {\n  m = {\n    a = [1,\n      2]\n  }\n}\nx = {\n  y = \"}\"\n}\nmodule \"p\" \"q\" {}\n",
	"module \"shell\" \"a\" {\n  script = <<-SH\n    echo }\n    echo \"\n    SH\n}\nmodule \"shell\" \"b\" {\n  script = <<EOT\n{{{\nEOT\n}\n",
	"plugin \"tk\" {\n  source = \"bin/tk\"\n  args = [\"-x\"]\n}\nmodule \"tk.echo\" \"a\" {}\n",
	"module \"a\\\"b\" \"c\" {}\n",
	"variable \"v\" {\n  default = \"${\"}\"}\"\n}\n",
	"attr = 1",
	"a = 1 # trailing\nb = [\n  1, # }\n]\n",
	"module \"x\" \"y\" {\n  a = (1 +\n    2)\n  b = { for k, v in {} : k => v }\n}\n",
	"module x y {}\n",
	"module \"한\" \"글\" {\n  text = \"🚀 }\"\n}\n",
	"module \"shell\" \"a\" {\n  script = <<true\n${\ntrue\n}\nx = \"abc\\\ndef\"\ny = {<<true\ntrue\n}\nmodule \"shell\" \"m0\" {}\n",
	"module \"a\" \"b\" {\n  s = <<EOT\n$${EOT\n%%{\n${ \"}\" }\nEOT\n}\nmodule \"c\" \"d\" {}\n",
	"module \"a\" 3 {}\n", // not HCL
}

// unbalanced are sources the scan must refuse.
var unbalanced = []string{
	"module \"a\" \"b\" {\n",
	"module \"a\" \"b\" {\n  x = \"}\n}\n",
	"}\n",
	"module \"a\" \"b\" {\n  x = [1, 2}\n}\n",
	"/* open\nmodule \"a\" \"b\" {}\n",
	"module \"a\" \"b\" {\n  s = <<EOT\nno end\n}\n",
	"= 1\n",
}

// TestBlocksMatchTheParser checks the scan against hclsyntax on every
// case and every .hcl file of the repository: where the parser reads a
// file without errors, the scan finds the same top-level blocks at the
// same bytes.
func TestBlocksMatchTheParser(t *testing.T) {
	srcs, err := hclfiles.Under(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) < 20 {
		t.Fatalf("found %d .hcl files; the repository's are missing", len(srcs))
	}
	for i, c := range append(slices.Clone(cases), unbalanced...) {
		srcs[fmt.Sprintf("case %d", i)] = []byte(c)
	}
	for name, src := range srcs {
		t.Run(name, func(t *testing.T) { compare(t, src) })
	}
}

func FuzzBlocks(f *testing.F) {
	for _, c := range append(slices.Clone(cases), unbalanced...) {
		f.Add([]byte(c))
	}
	f.Fuzz(compare)
}

// compare fails t when the scan of src disagrees with the parser's.
func compare(t *testing.T, src []byte) {
	if !utf8.Valid(src) {
		return // the parser reads invalid UTF-8 in names its own way
	}
	got, ok := Blocks(src)
	file, diags := hclsyntax.ParseConfig(src, "x.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		return // the scan may or may not see blocks in a broken file
	}
	if !ok {
		t.Fatalf("the parser reads %q; the scan gave up", src)
	}
	var want []Block
	for _, b := range file.Body.(*hclsyntax.Body).Blocks {
		want = append(want, Block{
			Type:   b.Type,
			Labels: b.Labels,
			Start:  b.TypeRange.Start.Byte,
			End:    b.CloseBraceRange.End.Byte,
			Line:   b.TypeRange.Start.Line,
		})
	}
	if len(got) != len(want) {
		t.Fatalf("scan of %q found %d blocks; the parser %d:\n got %+v\nwant %+v", src, len(got), len(want), got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Complex {
			g.Labels, w.Labels = nil, nil
		}
		if g.Type != w.Type || !slices.Equal(g.Labels, w.Labels) || g.Start != w.Start || g.End != w.End || g.Line != w.Line {
			t.Fatalf("scan of %q: block %d is %+v; the parser's %+v", src, i, g, w)
		}
	}
}

// TestBlocksRefusesUnbalanced checks that a broken file is not taken for
// a few blocks.
func TestBlocksRefusesUnbalanced(t *testing.T) {
	for _, src := range unbalanced {
		if blocks, ok := Blocks([]byte(src)); ok {
			t.Errorf("Blocks(%q) = %+v, true; want false", src, blocks)
		}
	}
}

func TestBlocksLabels(t *testing.T) {
	src := "plugin \"tk\" {}\nmodule \"tk.echo\" \"a\" {}\nmodule \"x\\\"y\" \"b\" {}\n"
	blocks, ok := Blocks([]byte(src))
	if !ok || len(blocks) != 3 {
		t.Fatalf("Blocks = %+v, %v", blocks, ok)
	}
	if b := blocks[1]; b.Type != "module" || !slices.Equal(b.Labels, []string{"tk.echo", "a"}) || b.Complex || b.Line != 2 {
		t.Errorf("block 1 = %+v", b)
	}
	if !blocks[2].Complex {
		t.Errorf("block 2 has an escape in a label; Complex not set: %+v", blocks[2])
	}
	if got := src[blocks[0].Start:blocks[0].End]; got != "plugin \"tk\" {}" {
		t.Errorf("block 0 spans %q", got)
	}
}

func TestValidIdentifier(t *testing.T) {
	for _, s := range []string{"", "a", "_a", "a-b", "a_1", "1a", "-a", "a.b", "a b", "é", "éa", "a\x00", "日本", "a\xff", "Abc-9_x"} {
		if got, want := ValidIdentifier(s), hclsyntax.ValidIdentifier(s); got != want {
			t.Errorf("ValidIdentifier(%q) = %v; hclsyntax says %v", s, got, want)
		}
	}
}
