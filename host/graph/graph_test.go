package graph

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/modpipe/modpipe/host/config"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs from the output (run with -update to accept):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

func load(t *testing.T, path string) *config.Pipeline {
	t.Helper()
	p, diags := config.Load(path, config.Options{Facts: config.Facts{OS: "linux", Arch: "amd64"}})
	if diags.HasErrors() {
		t.Fatalf("Load(%s): %s", path, diags.Error())
	}
	return p
}

func build(t *testing.T, path string) *Graph {
	t.Helper()
	g, diags := Build(load(t, path))
	if len(diags) > 0 {
		t.Fatalf("Build(%s): %s", path, diags.Error())
	}
	return g
}

// buildSource builds a graph from pipeline text.
func buildSource(t *testing.T, src string) (*Graph, hcl.Diagnostics) {
	t.Helper()
	p, diags := config.LoadSource("test.hcl", []byte(src), config.Options{})
	if diags.HasErrors() {
		t.Fatalf("Load: %s", diags.Error())
	}
	return Build(p)
}

func addresses(nodes []*Node) string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Address)
	}
	return strings.Join(out, " ")
}

func TestBuildInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p := load(t, f)
			g, diags := Build(p)
			if !diags.HasErrors() || g != nil {
				t.Fatalf("Build(%s) = %v, %v; want errors and no graph", f, g, diags)
			}
			for _, d := range diags {
				if d.Subject == nil {
					t.Errorf("diagnostic without a source range: %s", d.Error())
				}
			}
			var buf bytes.Buffer
			if err := config.WriteDiagnostics(&buf, p, diags, false); err != nil {
				t.Fatal(err)
			}
			golden(t, strings.TrimSuffix(f, ".hcl")+".golden", buf.Bytes())
		})
	}
}

func TestCycleNamesEveryModule(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{
			name: "two",
			src:  `module "s" "a" { depends_on = [module.b] }` + "\n" + `module "s" "b" { x = module.a.value }`,
			want: []string{"a -> b -> a"},
		},
		{
			name: "reference to a matrix module closes the cycle",
			src: `module "s" "a" { x = module.m["linux"].value }
module "s" "m" {
  matrix = ["linux"]
  depends_on = [module.c]
}
module "s" "c" { run_if = module.a.status == "x" }`,
			want: []string{"a -> m -> c -> a"},
		},
		{
			name: "two separate cycles",
			src: `module "s" "a" { depends_on = [module.b] }
module "s" "b" { depends_on = [module.a] }
module "s" "c" { depends_on = [module.d] }
module "s" "d" { depends_on = [module.c] }`,
			want: []string{"a -> b -> a", "c -> d -> c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, diags := buildSource(t, tt.src)
			if g != nil || len(diags) != len(tt.want) {
				t.Fatalf("Build = %v, %d diagnostics (%s); want %d", g, len(diags), diags.Error(), len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(diags[i].Detail, ": "+w+".") {
					t.Errorf("diagnostic %d = %q, want the cycle %q", i, diags[i].Detail, w)
				}
			}
		})
	}
}

func TestBuild(t *testing.T) {
	g := build(t, "testdata/pipeline.hcl")
	if got, want := addresses(g.Nodes()), "checkout lint build test[linux] test[windows] cross[target=linux,go=1.25] cross[target=linux,go=1.26] cross[target=macos,go=1.26] package publish notify"; got != want {
		t.Errorf("Nodes() = %s\nwant      %s", got, want)
	}
	for i, n := range g.Nodes() {
		if n.Index != i {
			t.Errorf("%s has Index %d, want %d", n.Address, n.Index, i)
		}
		if got, ok := g.Node(n.Address); !ok || got != n {
			t.Errorf("Node(%q) = %v, %v", n.Address, got, ok)
		}
	}

	deps := func(addr string) string {
		n, ok := g.Node(addr)
		if !ok {
			t.Fatalf("no node %s", addr)
		}
		var parts []string
		for _, d := range n.Deps {
			parts = append(parts, d.Module+"="+strings.Join(d.Addresses, ","))
		}
		return strings.Join(parts, " ")
	}
	depTests := map[string]string{
		"checkout":                    "",
		"lint":                        "checkout=checkout",
		"build":                       "checkout=checkout",
		"test[windows]":               "build=build",
		"cross[target=linux,go=1.25]": "test=test[linux]",
		// depends_on and references merge, in file order of the modules.
		"package": "lint=lint build=build cross=cross[target=linux,go=1.25],cross[target=linux,go=1.26],cross[target=macos,go=1.26]",
		"publish": "package=package",
	}
	for addr, want := range depTests {
		if got := deps(addr); got != want {
			t.Errorf("deps(%s) = %q, want %q", addr, got, want)
		}
	}

	reqTests := map[string]string{
		"build":                       "docker",
		"test[linux]":                 "Linux go", // the target is already required, case-insensitively
		"test[windows]":               "Linux go windows",
		"cross[target=macos,go=1.26]": "macos", // only the target axis is a capability
		"notify":                      "",
	}
	for addr, want := range reqTests {
		n, _ := g.Node(addr)
		if got := strings.Join(n.Requires, " "); got != want {
			t.Errorf("%s requires %q, want %q", addr, got, want)
		}
	}
	n, _ := g.Node("cross[target=linux,go=1.26]")
	if n.Instance == nil || n.Instance.Values["go"] != "1.26" || n.Instance.Values["target"] != "linux" {
		t.Errorf("instance values = %+v", n.Instance)
	}

	if got := addresses(g.Instances("test")); got != "test[linux] test[windows]" {
		t.Errorf("Instances(test) = %s", got)
	}
	if got := addresses(g.Instances("nope")); got != "" {
		t.Errorf("Instances(nope) = %s", got)
	}
	if got := addresses(g.Dependents("build")); got != "test[linux] test[windows] package" {
		t.Errorf("Dependents(build) = %s", got)
	}

	var waves []string
	for _, w := range g.Waves() {
		waves = append(waves, addresses(w))
	}
	wantWaves := []string{
		"checkout notify",
		"lint build",
		"test[linux] test[windows]",
		"cross[target=linux,go=1.25] cross[target=linux,go=1.26] cross[target=macos,go=1.26]",
		"package",
		"publish",
	}
	if strings.Join(waves, " | ") != strings.Join(wantWaves, " | ") {
		t.Errorf("Waves() =\n%s\nwant\n%s", strings.Join(waves, "\n"), strings.Join(wantWaves, "\n"))
	}

	critical := map[string]int{"checkout": 5, "build": 4, "lint": 2, "test[linux]": 3, "package": 1, "publish": 0, "notify": 0}
	for addr, want := range critical {
		if got := g.CriticalPath(addr); got != want {
			t.Errorf("CriticalPath(%s) = %d, want %d", addr, got, want)
		}
	}
}

func TestDependencyDeclaredLater(t *testing.T) {
	g, diags := buildSource(t, `module "s" "late" { x = module.early.value }
module "s" "early" {}`)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if got := addresses(g.Waves()[0]); got != "early" {
		t.Errorf("first wave = %s", got)
	}
	if g.CriticalPath("early") != 1 {
		t.Errorf("CriticalPath(early) = %d", g.CriticalPath("early"))
	}
}

func TestSelect(t *testing.T) {
	g := build(t, "testdata/pipeline.hcl")
	all := addresses(g.Nodes())
	tests := []struct {
		name       string
		only, skip []string
		categories []string
		want       string
		warnings   []string
		err        string
	}{
		{name: "nothing selects everything", want: all},
		{name: "only with transitive deps", only: []string{"test"}, want: "checkout build test[linux] test[windows]"},
		{name: "only an instance", only: []string{"test[windows]"}, want: "checkout build test[windows]"},
		{name: "only several", only: []string{"lint", "notify"}, want: "checkout lint notify"},
		{name: "category with deps", categories: []string{"check"}, want: "checkout lint build test[linux] test[windows]"},
		{name: "only and category together", only: []string{"notify"}, categories: []string{"setup"}, want: "checkout notify"},
		{name: "skip a leaf", skip: []string{"publish", "notify"}, want: "checkout lint build test[linux] test[windows] cross[target=linux,go=1.25] cross[target=linux,go=1.26] cross[target=macos,go=1.26] package"},
		{
			name: "skip removes dependents and says so", skip: []string{"cross[target=macos,go=1.26]"},
			want:     "checkout lint build test[linux] test[windows] cross[target=linux,go=1.25] cross[target=linux,go=1.26] notify",
			warnings: []string{"package depends on cross[target=macos,go=1.26], which was removed by --skip", "publish depends on package, which was removed because one of its dependencies was skipped"},
		},
		{
			name: "only then skip a dependency", only: []string{"test"}, skip: []string{"build"},
			want:     "checkout",
			warnings: []string{"test[linux] depends on build, which was removed by --skip", "test[windows] depends on build"},
		},
		{name: "unknown instance", skip: []string{"test[solaris-sparc64]"}, err: `Unknown module in --skip; Module "test" has no instance "test[solaris-sparc64]"; its instances are test[linux], test[windows] (or give "test" for all of them).`},
		{name: "unknown only", only: []string{"tset"}, err: `Unknown module in --only; There is no module "tset" in testdata/pipeline.hcl. Did you mean "test"?`},
		{name: "unknown instance", skip: []string{"test[linux"}, err: `Did you mean "test[linux]"?`},
		{name: "unknown skip without suggestion", skip: []string{"deploy-everything"}, err: `There is no module "deploy-everything"`},
		{name: "unknown category", categories: []string{"chek"}, err: `No module has category "chek". Did you mean "check"?`},
		{name: "unknown category lists them", categories: []string{"zzzzzz"}, err: `The categories are: check, setup.`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub, diags := g.Select(tt.only, tt.skip, tt.categories)
			if tt.err != "" {
				if sub != nil || !strings.Contains(diags.Error(), tt.err) {
					t.Fatalf("Select = %v, %q; want error containing %q", sub, diags.Error(), tt.err)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			if got := addresses(sub.Nodes()); got != tt.want {
				t.Errorf("selected %s\nwant     %s", got, tt.want)
			}
			if len(diags) != len(tt.warnings) {
				t.Fatalf("warnings = %s, want %d", diags.Error(), len(tt.warnings))
			}
			for i, w := range tt.warnings {
				if diags[i].Severity != hcl.DiagWarning || !strings.Contains(diags[i].Detail, w) {
					t.Errorf("warning %d = %q, want %q", i, diags[i].Detail, w)
				}
			}
			// The selection is a consistent graph of its own.
			for i, n := range sub.Nodes() {
				if n.Index != i {
					t.Errorf("%s has Index %d in the selection, want %d", n.Address, n.Index, i)
				}
				for _, d := range n.Deps {
					for _, a := range d.Addresses {
						if _, ok := sub.Node(a); !ok {
							t.Errorf("%s depends on %s, which is not in the selection", n.Address, a)
						}
					}
				}
			}
		})
	}
	// The original graph is not changed by selecting from it.
	if got := addresses(g.Nodes()); got != all {
		t.Errorf("Select changed the graph: %s", got)
	}
	if n, _ := g.Node("publish"); n.Index != 9 {
		t.Errorf("Select changed node indexes in the original graph: publish is %d", n.Index)
	}
}

func TestRender(t *testing.T) {
	g := build(t, "testdata/pipeline.hcl")
	for _, f := range []struct {
		ext   string
		write func(*bytes.Buffer) error
	}{
		{"dot", func(b *bytes.Buffer) error { return g.WriteDOT(b) }},
		{"mmd", func(b *bytes.Buffer) error { return g.WriteMermaid(b) }},
	} {
		t.Run(f.ext, func(t *testing.T) {
			var first, second bytes.Buffer
			if err := f.write(&first); err != nil {
				t.Fatal(err)
			}
			if err := f.write(&second); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first.Bytes(), second.Bytes()) {
				t.Fatal("two renderings of the same graph differ")
			}
			golden(t, fmt.Sprintf("testdata/pipeline.%s.golden", f.ext), first.Bytes())
		})
	}
}

// Mermaid's front matter is YAML: a title that YAML would misread is a
// quoted string there, not Mermaid's #quot; codes (which it does not
// decode in front matter).
func TestMermaidTitleQuoted(t *testing.T) {
	g := build(t, "testdata/pipeline.hcl")
	g.pipeline.Name = `my "quoted": app`
	var b bytes.Buffer
	if err := g.WriteMermaid(&b); err != nil {
		t.Fatal(err)
	}
	if want := "---\ntitle: \"my \\\"quoted\\\": app\"\n---\n"; !strings.HasPrefix(b.String(), want) {
		t.Errorf("front matter:\n%s\nwant:\n%s", b.String()[:min(len(b.String()), 80)], want)
	}
}
