//go:build unix

package pluginhost

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Killing a plugin asks first (SIGTERM, which modpipe's plugins answer by
// killing their commands' process groups) and forces (SIGKILL) only a
// process still there after stopGrace.
func TestRunnerKillTermsThenKills(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		status       string // how the process must have ended
	}{
		{"stops on SIGTERM", "sleep 30", "signal: terminated"},
		{"ignores SIGTERM", "trap '' TERM; echo trapped; while :; do sleep 0.05; done", "signal: killed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := newCmdRunner(hclog.NewNullLogger(), exec.Command("sh", "-c", tc.script), "")
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			waited := make(chan struct{})
			go func() {
				defer close(waited)
				_ = r.Wait(context.Background())
			}()
			if strings.Contains(tc.script, "trapped") {
				// The trap must be set before the signal comes.
				buf := make([]byte, 8)
				if _, err := r.Stdout().Read(buf); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Kill(context.Background()); err != nil {
				t.Fatal(err)
			}
			select {
			case <-waited:
			case <-time.After(time.Minute): // a guard
				t.Fatal("the process outlived Kill")
			}
			if got := r.exitStatus(); got != tc.status {
				t.Errorf("the process ended with %q, want %q", got, tc.status)
			}
		})
	}
}
