package memory_test

import (
	"testing"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/coordinator/coordinatortest"
	"github.com/modpipe/modpipe/coordinator/memory"
)

func TestConformance(t *testing.T) {
	coordinatortest.Run(t, coordinatortest.Harness{
		New: func(t *testing.T) coordinator.Coordinator {
			c := memory.New(memory.WithMaxEnvelopeBytes(64 * 1024))
			t.Cleanup(func() { _ = c.Close() })
			return c
		},
		Kill: func(t *testing.T, s coordinator.Session) {
			s.(interface{ Kill() }).Kill()
		},
		MaxEnvelopeBytes: 64 * 1024,
	})
}
