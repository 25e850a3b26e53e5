// Command modpipe-plugin-go is the first-party modpipe plugin for Go
// projects: kinds "test" (the default; go test -json parsed into a
// per-package result), "build" and "vet".
//
//	module "go.test" "unit" {
//	  packages = ["./..."]
//	  flags    = ["-race"]
//	}
//
// Test output streams to the host as readable lines while the tests run; a
// failing test, a package that does not build, a vet finding or a failed
// build fails the module, and the result is still returned.
package main

import (
	"context"
	"errors"
	"time"

	"github.com/modpipe/modpipe/plugins/internal/proc"
	"github.com/modpipe/modpipe/sdk"
)

// Version is the plugin's version, reported to the host.
const Version = "0.1.0"

// killGrace is the most time a cancelled go command gets between SIGTERM
// and SIGKILL. The host's grace (--grace) may be shorter: each module
// gets what fits in it (proc.KillGraceWithin), so the plugin has killed
// the process group before the host would kill the plugin, and every
// other module in it, as hung.
const killGrace = 3 * time.Second

func main() {
	sdk.Serve(sdk.Plugin{
		Name:    "go",
		Version: Version,
		Kinds: []sdk.Kind{
			sdk.NewKind("test", TestResultType, runKind(RunTest), sdk.Default(), sdk.Check(Config.Validate),
				sdk.Doc("Run go test -json on packages and return per-package passed/failed/skipped counts with each failing test's output.")),
			sdk.NewKind("build", BuildResultType, runKind(RunBuild), sdk.Check(Config.Validate),
				sdk.Doc("Run go build on packages.")),
			sdk.NewKind("vet", VetResultType, runKind(RunVet), sdk.Check(Config.Validate),
				sdk.Doc("Run go vet on packages; every finding is in the result and any finding fails the module.")),
		},
	})
}

// runKind adapts one of RunTest, RunBuild, RunVet to the sdk: output goes
// to the module's streams and a reported failure keeps its output tail.
func runKind[R any](run func(context.Context, Config, Streams, time.Duration) (R, error)) func(context.Context, *sdk.Module, Config) (R, error) {
	return func(ctx context.Context, m *sdk.Module, cfg Config) (R, error) {
		res, err := run(ctx, cfg, Streams{Stdout: m.Stdout(), Stderr: m.Stderr()}, proc.KillGraceWithin(m.StopGrace(), killGrace))
		var fe *FailureError
		if errors.As(err, &fe) {
			return res, sdk.WithTail(sdk.Failf("%s", fe.Message), fe.Tail)
		}
		return res, err
	}
}
