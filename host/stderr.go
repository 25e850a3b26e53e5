package host

import (
	"io"
	"os"
	"sync/atomic"

	"golang.org/x/term"

	"github.com/modpipe/modpipe/host/ui"
)

// Stderr is the process's standard error shared with the run's live
// view. On a terminal the view is drawn below the output and redrawn by
// moving up over its own lines; whatever else reached the terminal in
// between (a log line, the Ctrl-C notice, an error) was erased by the
// next redraw, and lines of the old view were left behind. Everything
// the command writes to standard error goes through one Stderr, which
// hands each write to the live console while there is one, to write it
// above the view. Safe for concurrent use; set it as Options.Stderr.
type Stderr struct {
	w io.Writer
	// terminal tells whether w can share a screen with the view: a
	// standard error sent to a file never does.
	terminal bool
	con      atomic.Pointer[ui.Console]
}

// NewStderr returns a Stderr writing to w.
func NewStderr(w io.Writer) *Stderr {
	s := &Stderr{w: w}
	if f, ok := w.(*os.File); ok {
		s.terminal = term.IsTerminal(int(f.Fd()))
	}
	return s
}

// Write implements io.Writer.
func (s *Stderr) Write(p []byte) (int, error) {
	if c := s.con.Load(); c != nil {
		return c.WriteAside(s.w, p)
	}
	return s.w.Write(p)
}

// attach routes the writes through c, the console of a live view, until
// detach. A nil Stderr, or one that is no terminal, does nothing.
func (s *Stderr) attach(c *ui.Console) {
	if s != nil && s.terminal {
		s.con.Store(c)
	}
}

// detach stops routing the writes through c, if they still are.
func (s *Stderr) detach(c *ui.Console) {
	if s != nil {
		s.con.CompareAndSwap(c, nil)
	}
}
