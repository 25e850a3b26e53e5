package graph

import (
	"reflect"
	"strings"
	"testing"

	"github.com/modpipe/modpipe/host/config"
)

func TestIndexedReferencesNarrowDependencies(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []string // deps of "use"
		err  string
	}{
		{
			name: "depends_on one instance",
			body: `depends_on = [module.compile["vax"]]`,
			want: []string{"compile[vax]"},
		},
		{
			name: "expression reads one instance",
			body: `text = module.compile["sparc"].value.x`,
			want: []string{"compile[sparc]"},
		},
		{
			name: "two literal keys",
			body: "text = module.compile[\"sparc\"].value.x\ndepends_on = [module.compile[\"vax\"]]",
			want: []string{"compile[vax]", "compile[sparc]"},
		},
		{
			name: "an unindexed reference means every instance",
			body: "text = module.compile[\"sparc\"].value.x\ndepends_on = [module.compile]",
			want: []string{"compile[vax]", "compile[sparc]"},
		},
		{
			name: "a computed index means every instance",
			body: `text = module.compile[run.os].value.x`,
			want: []string{"compile[vax]", "compile[sparc]"},
		},
		{
			name: "unknown instance",
			body: `depends_on = [module.compile["vac"]]`,
			err:  `Did you mean "vax"?`,
		},
		{
			name: "unknown instance lists the keys quoted",
			body: `depends_on = [module.compile["vac"]]`,
			err:  `which has the instances "vax", "sparc".`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "module \"shell\" \"compile\" {\n  matrix = [\"vax\", \"sparc\"]\n}\nmodule \"shell\" \"use\" {\n" + tt.body + "\n}\nmodule \"shell\" \"many\" {\n  matrix = [\"a\", \"b\", \"c\"]\n" + tt.body + "\n}\n"
			p, diags := config.LoadSource("p.hcl", []byte(src), config.Options{Facts: config.Facts{OS: "linux"}})
			if diags.HasErrors() {
				t.Fatalf("load: %s", diags.Error())
			}
			g, diags := Build(p)
			if tt.err != "" {
				if !diags.HasErrors() || !strings.Contains(diags.Error(), tt.err) {
					t.Fatalf("want an error containing %q, got %v", tt.err, diags)
				}
				// One error per module that has the bad reference, not one
				// per matrix instance of it.
				if len(diags) != 2 {
					t.Fatalf("want 2 diagnostics (use, many), got %d: %v", len(diags), diags)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatalf("build: %s", diags.Error())
			}
			n, _ := g.Node("use")
			if len(n.Deps) != 1 || !reflect.DeepEqual(n.Deps[0].Addresses, tt.want) {
				t.Fatalf("deps %+v, want %v", n.Deps, tt.want)
			}
		})
	}
}

// An index made of the instance's own matrix values (or variables) makes
// each instance depend on the instance it names, not on all of them.
func TestInstanceIndexedByMatrixValue(t *testing.T) {
	tests := []struct {
		name, body string
		want       map[string][]string
	}{
		{"reference", `text = module.build[matrix.target].value.x`,
			map[string][]string{"test[linux]": {"build[linux]"}, "test[arm]": {"build[arm]"}}},
		{"depends_on", `depends_on = [module.build[matrix.target]]`,
			map[string][]string{"test[linux]": {"build[linux]"}, "test[arm]": {"build[arm]"}}},
		{"function of the value", `text = module.build[lower(matrix.target)].value.x`,
			map[string][]string{"test[linux]": {"build[linux]"}, "test[arm]": {"build[arm]"}}},
		{"variable", `text = module.build[var.only].value.x`,
			map[string][]string{"test[linux]": {"build[arm]"}, "test[arm]": {"build[arm]"}}},
		{"a module result: every instance", `text = module.build[module.pick.value.x].value.x`,
			map[string][]string{"test[linux]": {"build[linux]", "build[arm]"}, "test[arm]": {"build[linux]", "build[arm]"}}},
		{"a whole reference as well: every instance", "text = module.build[matrix.target].value.x\n  more = module.build",
			map[string][]string{"test[linux]": {"build[linux]", "build[arm]"}, "test[arm]": {"build[linux]", "build[arm]"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := "variable \"only\" {\n  default = \"arm\"\n}\nmodule \"shell\" \"pick\" {}\nmodule \"shell\" \"build\" {\n  matrix = [\"linux\", \"arm\"]\n}\nmodule \"shell\" \"test\" {\n  matrix = [\"linux\", \"arm\"]\n  " + tt.body + "\n}\n"
			p, diags := config.LoadSource("p.hcl", []byte(src), config.Options{Facts: config.Facts{OS: "linux"}})
			if diags.HasErrors() {
				t.Fatalf("load: %s", diags.Error())
			}
			g, diags := Build(p)
			if diags.HasErrors() {
				t.Fatalf("build: %s", diags.Error())
			}
			for addr, want := range tt.want {
				n, _ := g.Node(addr)
				var got []string
				for _, d := range n.Deps {
					if d.Module == "build" {
						got = d.Addresses
					}
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s depends on %v, want %v", addr, got, want)
				}
			}
		})
	}
}
