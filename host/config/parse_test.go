package config

import (
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/modpipe/modpipe/host/internal/hclfiles"
)

// TestParsePiecesIsTheWholeParse checks that a file parsed in pieces is
// the file a single parse gives, value for value (ranges, navigation,
// bytes), and that a file with errors gets the single parse's errors: on
// every .hcl file of the repository, cut in 2 to 5, 16 and 64 pieces
// parsed by 1 to 3 goroutines, and on sources made to be cut in awkward
// places.
func TestParsePiecesIsTheWholeParse(t *testing.T) {
	srcs := map[string][]byte{
		"indented and one-line blocks":                  []byte("module \"a\" \"b\" {}\n  module \"c\" \"d\" {}\nmodule \"e\" \"f\" { x = 1 }\nname = 1\nmodule \"g\" \"h\" {\n}\n"),
		"attributes between blocks":                     []byte("a = 1\nmodule \"a\" \"b\" {}\nb = [\n  1,\n]\nmodule \"c\" \"d\" {}\nc = \"}\"\nmodule \"e\" \"f\" {}\n"),
		"same attribute in two pieces":                  []byte("a = 1\nmodule \"a\" \"b\" {}\nmodule \"c\" \"d\" {}\nmodule \"e\" \"f\" {}\na = 2\n"),
		"an error in a later piece":                     []byte("module \"a\" \"b\" {}\nmodule \"c\" \"d\" {}\nmodule \"e\" \"f\" {\n  x = (1\n}\n"),
		"a heredoc":                                     []byte("module \"a\" \"b\" {\n  s = <<EOT\nmodule \"x\" \"y\" {\nEOT\n}\nmodule \"c\" \"d\" {}\nmodule \"e\" \"f\" {}\n"),
		"a byte order mark":                             []byte("\xef\xbb\xbfmodule \"a\" \"b\" {}\nmodule \"c\" \"d\" {}\nmodule \"e\" \"f\" {}\n"),
		"a byte order mark starting a later line":       []byte("module \"a\" \"b\" {\n  x = 1\n}\n\xef\xbb\xbfmodule \"c\" \"d\" {}\nmodule \"e\" \"f\" {}\n"),
		"a heredoc marker inside its own interpolation": []byte("module \"shell\" \"a\" {\n  script = <<true\n${\ntrue\n}\nx = \"abc\\\ndef\"\ny = {<<true\ntrue\n}\nmodule \"shell\" \"m0\" {\n  command = [\"true\"]\n}\nmodule \"shell\" \"m1\" {\n  command = [\"true\"]\n}\nmodule \"shell\" \"m2\" {\n  command = [\"true\"]\n}\n"),
		"wide characters before a cut":                  []byte("module \"a\" \"b\" {\n  t = \"日本語 🚀\"\n}\nmodule \"c\" \"d\" { t = \"é\" }\nmodule \"e\" \"f\" {}\n"),
	}
	files, err := hclfiles.Under(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	maps.Copy(srcs, files)
	for name, src := range srcs {
		for _, n := range []int{2, 3, 4, 5, 16, 64} {
			workers := 1 + n%3
			t.Run(fmt.Sprintf("%s/%d", name, n), func(t *testing.T) {
				want, wantDiags := hclsyntax.ParseConfig(src, "p.hcl", hcl.InitialPos)
				got, gotDiags := parsePieces(src, "p.hcl", n, workers)
				if fmt.Sprint(gotDiags) != fmt.Sprint(wantDiags) {
					t.Fatalf("diagnostics differ:\n got %v\nwant %v", gotDiags, wantDiags)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("the file parsed in %d pieces differs from the whole parse", n)
				}
			})
		}
	}
}

// TestCutsSpreadTheFile checks that a large generated file is cut where
// blocks begin, into pieces of about equal size.
func TestCutsSpreadTheFile(t *testing.T) {
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, "module \"shell\" \"m%d\" {\n  command = [\"true\"]\n}\n", i)
	}
	src := []byte(b.String())
	starts := cuts(src, 4)
	if len(starts) != 4 {
		t.Fatalf("cuts = %v; want 4 pieces", starts)
	}
	for i, at := range starts {
		if at.Byte != 0 && (src[at.Byte-1] != '\n' || !strings.HasPrefix(string(src[at.Byte:]), "module ")) {
			t.Errorf("piece %d starts at byte %d, not at a block", i, at.Byte)
		}
		if lo := i * len(src) / 4; at.Byte < lo || at.Byte > lo+100 {
			t.Errorf("piece %d starts at byte %d; want just after %d", i, at.Byte, lo)
		}
		if want := strings.Count(string(src[:at.Byte]), "\n") + 1; at.Line != want {
			t.Errorf("piece %d starts on line %d; want %d", i, at.Line, want)
		}
	}
	f, diags := parseFile(src, "p.hcl")
	if diags.HasErrors() || len(f.Body.(*hclsyntax.Body).Blocks) != 1000 {
		t.Fatalf("parseFile: %v", diags)
	}
}
