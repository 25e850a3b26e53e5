package host

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// console serialises what the run prints: module output lines, prefixed
// with the module's address so interleaved output stays readable, and
// progress events. Every write is one whole line.
type console struct {
	mu  sync.Mutex
	w   io.Writer
	buf bytes.Buffer
}

func newConsole(w io.Writer) *console { return &console{w: w} }

// Line prints one line of a module's output.
func (c *console) Line(module, stream, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Reset()
	c.buf.WriteString(module)
	if stream == "stderr" {
		c.buf.WriteString(" ! ")
	} else {
		c.buf.WriteString(" | ")
	}
	c.buf.WriteString(text)
	c.buf.WriteByte('\n')
	_, _ = c.w.Write(c.buf.Bytes())
}

// Eventf prints one line about the run itself.
func (c *console) Eventf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, format+"\n", args...)
}

// Write lets whole blocks (the summary) go out without interleaving.
func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Write(p)
}
