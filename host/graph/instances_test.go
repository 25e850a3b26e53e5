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
