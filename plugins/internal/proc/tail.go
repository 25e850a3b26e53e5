package proc

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// MaxTailLineBytes bounds each line kept in a Tail, so a tail of N lines
// stays small enough for an error message and an envelope.
const MaxTailLineBytes = 2048

// Tail keeps the last N lines written to it. It is safe for concurrent use.
type Tail struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

// NewTail returns a Tail that keeps the last n lines (n >= 1).
func NewTail(n int) *Tail {
	if n < 1 {
		n = 1
	}
	return &Tail{lines: make([]string, n)}
}

// Add records one line, cutting it at MaxTailLineBytes.
func (t *Tail) Add(line string) {
	if len(line) > MaxTailLineBytes {
		// Cut at a character boundary; the output itself went out whole,
		// only this copy is short.
		cut := MaxTailLineBytes
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		unit := "bytes"
		if len(line)-cut == 1 {
			unit = "byte"
		}
		line = fmt.Sprintf("%s [... %d more %s of this line not kept in the tail]", line[:cut], len(line)-cut, unit)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines[t.next] = line
	t.next = (t.next + 1) % len(t.lines)
	if t.next == 0 {
		t.full = true
	}
}

// Lines returns the kept lines, oldest first.
func (t *Tail) Lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.full {
		return append([]string(nil), t.lines[:t.next]...)
	}
	return append(append([]string(nil), t.lines[t.next:]...), t.lines[:t.next]...)
}

// String returns the kept lines joined by newlines.
func (t *Tail) String() string { return strings.Join(t.Lines(), "\n") }
