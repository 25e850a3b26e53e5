package report

import (
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/modpipe/modpipe/coordinator"
)

func BenchmarkZZWriteJSON(b *testing.B) {
	run := &Run{Pipeline: "bench", RunID: "x", Status: RunSucceeded, StartedAt: time.Now(), EndedAt: time.Now()}
	for i := range 1000 {
		run.Modules = append(run.Modules, coordinator.Envelope{Module: fmt.Sprintf("m%d_%d", i/100, i%100), Status: coordinator.StatusSucceeded, Type: "shell.exec/v1",
			Value: json.RawMessage(`{"exit_code":0,"stdout":"","stdout_truncated":false,"stderr_tail":"","json":null}`), Attempts: 1, StartedAt: time.Now(), EndedAt: time.Now(), Host: "vm", Plugin: "shell", PluginVersion: "0.1.0"})
	}
	for b.Loop() {
		WriteJSON(io.Discard, run)
	}
}
