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
	// open is the start of a long line given by AddPiece, kept up to
	// just over MaxTailLineBytes; openLen is how long the line is so far.
	open    []byte
	openLen int
}

// NewTail returns a Tail that keeps the last n lines (n >= 1).
func NewTail(n int) *Tail {
	if n < 1 {
		n = 1
	}
	return &Tail{lines: make([]string, n)}
}

// AddPiece records a piece of a long line whose end the next Add gives
// (see Command.StdoutPiece): the tail keeps the line whole, as written,
// rather than cut where the pieces were.
func (t *Tail) AddPiece(piece string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if room := MaxTailLineBytes + utf8.UTFMax - len(t.open); room > 0 {
		t.open = append(t.open, piece[:min(room, len(piece))]...)
	}
	t.openLen += len(piece)
}

// Add records one line, cutting it at MaxTailLineBytes. After AddPiece,
// line is the end of the long line the pieces began.
func (t *Tail) Add(line string) {
	t.mu.Lock()
	if t.openLen > 0 {
		n := t.openLen + len(line)
		head := append(t.open, line[:min(len(line), max(0, MaxTailLineBytes+utf8.UTFMax-len(t.open)))]...)
		t.open, t.openLen = nil, 0
		t.mu.Unlock()
		t.add(string(head), n)
		return
	}
	t.mu.Unlock()
	t.add(line, len(line))
}

// add records line, which is the first bytes of a line n bytes long.
func (t *Tail) add(line string, n int) {
	if n > MaxTailLineBytes {
		// Cut at a character boundary; the output itself went out whole,
		// only this copy is short.
		cut := MaxTailLineBytes
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		unit := "bytes"
		if n-cut == 1 {
			unit = "byte"
		}
		line = fmt.Sprintf("%s [... %d more %s of this line not kept in the tail]", line[:cut], n-cut, unit)
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
