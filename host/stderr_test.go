package host

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/modpipe/modpipe/host/secrets"
	"github.com/modpipe/modpipe/host/ui"
)

// The host's log, written through a Stderr, reaches the terminal above
// a live view while a console is attached (the view is taken down before
// the entry and drawn again after it), and straight once it is detached.
func TestStderrWritesAboveTheLiveView(t *testing.T) {
	const clear = "\x1b[J"
	tests := []struct {
		name     string
		attached bool
		terminal bool
		routed   bool
	}{
		{"attached on a terminal", true, true, true},
		{"attached, stderr not a terminal", true, false, false},
		{"detached", false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var screen bytes.Buffer
			s := &Stderr{w: &screen, terminal: tt.terminal}
			con := ui.New(ui.Options{Style: ui.StyleLive, Out: &screen, Total: 1, Refresh: -1})
			defer con.Close()
			s.attach(con)
			if !tt.attached {
				s.detach(con)
			}
			con.Started("m", 1, 0, "h") // draws the view
			screen.Reset()
			log := hclog.New(&hclog.LoggerOptions{Name: "host", Output: secrets.NewOutput(s), Level: hclog.Info, DisableTime: true})
			log.Error("no capable member", "module", "m")
			got := screen.String()
			entry := strings.Index(got, "[ERROR] host: no capable member: module=m\n")
			if entry < 0 {
				t.Fatalf("the entry was not written: %q", got)
			}
			// Routed, the entry comes between taking the view down and
			// drawing it again; straight, it is written alone.
			routed := strings.HasSuffix(got[:entry], clear) && strings.Contains(got[entry:], "0/1 done, 1 running")
			if routed != tt.routed {
				t.Fatalf("written above the view: %v, want %v: %q", routed, tt.routed, got)
			}
			if !tt.routed && strings.ContainsAny(got, "\r\x1b") {
				t.Fatalf("written with more than the entry: %q", got)
			}
		})
	}
}
