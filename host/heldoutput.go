package host

import (
	"sync"
	"time"
)

// HeldOutput lets the command stop a run at once (a second Ctrl-C)
// without losing what the run's console holds back. In the CI styles a
// module's output is held until the module ends, to print it in its own
// group; a host that exits at once would drop the output of the modules
// still running, which is what the reader needs to see why they did not
// stop. The zero value is ready to use; set it in Options.HeldOutput.
type HeldOutput struct {
	mu       sync.Mutex
	consoles map[*console]struct{}
	released bool
}

// add registers the console of a run. A console made after Release has
// nothing held yet and is left alone: the process is exiting.
func (h *HeldOutput) add(c *console) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return
	}
	if h.consoles == nil {
		h.consoles = map[*console]struct{}{}
	}
	h.consoles[c] = struct{}{}
}

// remove forgets a console that was closed: it holds nothing any more.
func (h *HeldOutput) remove(c *console) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.consoles, c)
}

// Release prints what every console of the run holds back (each
// unfinished module's output, in its group) and returns when it is
// written, or after wait: a console writing to a reader that stopped
// reading must not keep the host from exiting. Call it just before the
// process exits without finishing the run; the consoles print at once
// from then on.
func (h *HeldOutput) Release(wait time.Duration) {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.released = true
	consoles := make([]*console, 0, len(h.consoles))
	for c := range h.consoles {
		consoles = append(consoles, c)
	}
	h.consoles = nil
	h.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, c := range consoles {
			// ui.Console's own Close: the console's would remove
			// itself from h, which is done.
			_ = c.Console.Close()
		}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
