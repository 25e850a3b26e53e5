package secrets

import (
	"io"
	"sync/atomic"
)

// Output is a logger's output that masks what passes through it with
// the Masker set last. A program's logger exists before the pipeline is
// read, so the Output starts with nothing to mask, and the engine sets
// the run's Masker once the variables are known. Each Write is masked
// whole, which is right for hclog: it writes one entry per Write. Safe
// for concurrent use.
type Output struct {
	w io.Writer
	m atomic.Pointer[Masker]
}

// NewOutput returns an Output writing to w.
func NewOutput(w io.Writer) *Output { return &Output{w: w} }

// SetMasker makes the Output mask with m (nil: nothing) from now on.
func (o *Output) SetMasker(m *Masker) { o.m.Store(m) }

// Write implements io.Writer.
func (o *Output) Write(p []byte) (int, error) {
	m := o.m.Load()
	if m.Empty() {
		return o.w.Write(p)
	}
	if _, err := io.WriteString(o.w, m.String(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
