package config

import (
	"slices"
	"testing"

	"github.com/modpipe/modpipe/sdk"
)

// The sdk refuses plugin attributes named like the host's meta-arguments;
// both must know the same names.
func TestMetaArgumentsMatchTheSDK(t *testing.T) {
	host, plugin := slices.Sorted(slices.Values(MetaArguments)), slices.Sorted(slices.Values(sdk.MetaArguments))
	if !slices.Equal(host, plugin) {
		t.Errorf("host meta-arguments %q, sdk's %q", host, plugin)
	}
}
