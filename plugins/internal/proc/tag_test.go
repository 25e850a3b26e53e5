//go:build unix

package proc

import (
	"testing"

	"github.com/modpipe/modpipe/host/pluginhost"
)

// The plugin finds what escaped its groups by the variable the host tags
// it with: the two names must stay one.
func TestProcessEnvIsTheHosts(t *testing.T) {
	if processEnv != pluginhost.ProcessEnv {
		t.Fatalf("processEnv = %q, the host sets %q", processEnv, pluginhost.ProcessEnv)
	}
}
