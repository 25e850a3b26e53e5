package plugintest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPluginBinariesStayLean asserts the first-party plugins link what a
// third-party plugin would (the sdk and its dependencies) and never the
// host, the coordinator, HCL, cty or etcd: they are the examples plugin
// authors copy, and their binaries ship to every instance.
func TestPluginBinariesStayLean(t *testing.T) {
	forbidden := []string{
		"github.com/modpipe/modpipe/host",
		"github.com/modpipe/modpipe/coordinator",
		"github.com/hashicorp/hcl",
		"github.com/zclconf/go-cty",
		"go.etcd.io/",
	}
	for _, pkg := range []string{"shell", "go", "git", "http", "file"} {
		t.Run(pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "github.com/modpipe/modpipe/plugins/"+pkg).CombinedOutput()
			if err != nil {
				t.Fatalf("go list -deps: %v\n%s", err, out)
			}
			for _, dep := range strings.Fields(string(out)) {
				for _, f := range forbidden {
					if strings.HasPrefix(dep, f) {
						t.Errorf("plugins/%s depends on %s", pkg, dep)
					}
				}
			}
		})
	}
}
