// Command modpipe-plugin-shell is the first-party modpipe plugin that runs
// a command or a shell script as a module (kind "exec", the default).
//
//	module "shell" "hello" {
//	  command = ["echo", "hello"]
//	}
//
// Its result (type shell.exec/v1) holds the exit code, the stdout, the
// stderr tail and, with stdout_json, stdout parsed as JSON. Output lines
// stream to the host while the command runs. A non-zero exit fails the
// module and still returns the result.
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

// killGrace is the most time a cancelled command gets between SIGTERM
// and SIGKILL. The host's grace (--grace) may be shorter: each module
// gets what fits in it (proc.KillGraceWithin), so the plugin has killed
// the command's process group before the host would kill the plugin, and
// every other module in it, as hung.
const killGrace = 3 * time.Second

func main() {
	sdk.Serve(sdk.Plugin{
		Name:    "shell",
		Version: Version,
		Kinds: []sdk.Kind{
			sdk.NewKind("exec", ResultType, runExec, sdk.Default(),
				sdk.Check(ExecConfig.Validate),
				sdk.Doc("Run a command (argv, no shell) or a script (/bin/sh -e -c) and return its exit code, stdout and stderr tail.")),
		},
	})
}

// runExec adapts Exec to the sdk: output goes to the module's streams and
// a failed command becomes a failure carrying the stderr tail, sent
// together with the result.
func runExec(ctx context.Context, m *sdk.Module, cfg ExecConfig) (ExecResult, error) {
	res, err := Exec(ctx, cfg, Streams{Stdout: m.Stdout(), Stderr: m.Stderr()}, proc.KillGraceWithin(m.StopGrace(), killGrace))
	var ee *ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &ee):
		return res, sdk.WithTail(sdk.Failf("%s", ee.Error()), ee.Tail)
	default:
		return res, err
	}
}
