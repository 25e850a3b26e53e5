package host

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/modpipe/modpipe/coordinator"
)

func TestFitEnvelope(t *testing.T) {
	big := json.RawMessage(`"` + strings.Repeat("x", 64*1024) + `"`)
	ok := coordinator.Envelope{Module: "m", Status: coordinator.StatusSucceeded, Value: json.RawMessage(`{"a":1}`)}
	for _, tc := range []struct {
		name  string
		env   coordinator.Envelope
		limit int
		fails bool
	}{
		{"small", ok, 1024, false},
		{"no limit", coordinator.Envelope{Module: "m", Status: coordinator.StatusSucceeded, Value: big}, 0, false},
		{"under the limit", coordinator.Envelope{Module: "m", Status: coordinator.StatusSucceeded, Value: big}, 80 * 1024, false},
		{"over the limit", coordinator.Envelope{Module: "m", Status: coordinator.StatusSucceeded, Value: big}, 32 * 1024, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fitEnvelope(tc.env, tc.limit)
			if !tc.fails {
				if got.Status != tc.env.Status || string(got.Value) != string(tc.env.Value) {
					t.Errorf("changed: %s %+v", got.Status, got.Error)
				}
				return
			}
			if got.Status != coordinator.StatusFailed || got.Value != nil || got.Error == nil || got.Error.Kind != coordinator.ErrorKindEncoding ||
				!strings.Contains(got.Error.Message, "larger than the coordinator's limit of 32768 bytes") {
				t.Errorf("got %s value %d bytes error %+v, want failed for its size", got.Status, len(got.Value), got.Error)
			}
		})
	}
}
