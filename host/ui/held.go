package ui

import (
	"fmt"
	"io"
	"strings"
	"sync"
)

// chunkSize is the size of the blocks held output is kept in. A module
// that prints a million lines is held as a few hundred blocks of bytes
// the garbage collector need not look into, rather than as a million
// strings in a slice that grows by copying: that slice cost the GitHub
// style more CPU than everything else the host did with the lines.
const chunkSize = 64 << 10

// chunks is text held in blocks of bytes, appended to without copying
// what it holds. Its first block starts small and grows as append grows a
// slice, so a module that prints a line does not take a whole block.
type chunks struct {
	bufs [][]byte
	size int
}

// appendChunks appends s to c.
func appendChunks[S ~string | ~[]byte](c *chunks, s S) {
	c.size += len(s)
	for len(s) > 0 {
		n := len(c.bufs)
		switch {
		case n == 0:
			c.bufs = append(c.bufs, make([]byte, 0, min(max(len(s), 256), chunkSize)))
			n++
		case len(c.bufs[n-1]) == cap(c.bufs[n-1]) && cap(c.bufs[n-1]) >= chunkSize:
			c.bufs = append(c.bufs, make([]byte, 0, chunkSize))
			n++
		}
		last := c.bufs[n-1]
		k := min(len(s), max(cap(last), chunkSize)-len(last))
		c.bufs[n-1] = append(last, s[:k]...)
		s = s[k:]
	}
}

// adopt appends blocks that the caller gives up: they are held as they
// are, not copied.
func (c *chunks) adopt(bufs ...[]byte) {
	for _, b := range bufs {
		if len(b) > 0 {
			c.bufs = append(c.bufs, b)
			c.size += len(b)
		}
	}
}

// take returns the blocks held and empties c.
func (c *chunks) take() [][]byte {
	bufs := c.bufs
	*c = chunks{}
	return bufs
}

// group is one module's output held until the module ends, masked,
// each line ending with a newline. Past the limit it keeps its first
// lines (head) and its last (tail), and counts the lines between, which
// it drops: the end of a module's output is what says how it ended.
type group struct {
	head chunks
	// full is set once a line did not fit in the head: all later
	// lines go to the tail, to keep the order.
	full bool
	// tail holds, once the head is full, the latest lines from
	// tail[tailStart:], tailBytes at most; tailLens are their lengths
	// (newline included) from tailLens[tailFirst:]. The earliest are
	// dropped as more come, by moving the starts; the space before them
	// is given back when it is as large as what is kept, so each byte
	// is copied once on average.
	tail      []byte
	tailStart int
	tailLens  []int
	tailFirst int
	dropped   int
	limit     int // as add was given it, for the note
}

// add holds the line prefix+text, masked, in a group of at most limit
// bytes: the head takes seven eighths of it, the tail the rest.
func (g *group) add(prefix, text string, limit int) {
	g.limit = limit
	size := len(prefix) + len(text) + 1
	tailLimit := limit / 8
	if !g.full && g.head.size+size <= limit-tailLimit {
		appendChunks(&g.head, prefix)
		appendChunks(&g.head, text)
		appendChunks(&g.head, "\n")
		return
	}
	g.full = true
	g.tail = append(g.tail, prefix...)
	g.tail = append(g.tail, text...)
	g.tail = append(g.tail, '\n')
	g.tailLens = append(g.tailLens, size)
	for len(g.tail)-g.tailStart > tailLimit && g.tailFirst < len(g.tailLens) {
		g.tailStart += g.tailLens[g.tailFirst]
		g.tailFirst++
		g.dropped++
	}
	if kept := len(g.tail) - g.tailStart; g.tailStart >= chunkSize && g.tailStart >= kept {
		g.tail = g.tail[:copy(g.tail, g.tail[g.tailStart:])]
		g.tailStart = 0
	}
	if kept := len(g.tailLens) - g.tailFirst; g.tailFirst >= 1024 && g.tailFirst >= kept {
		g.tailLens = g.tailLens[:copy(g.tailLens, g.tailLens[g.tailFirst:])]
		g.tailFirst = 0
	}
}

// empty reports whether the group holds nothing to show.
func (g *group) empty() bool {
	return g.head.size == 0 && g.dropped == 0 && len(g.tail) == g.tailStart
}

// note is the line between the head and the tail when lines were
// dropped there, or "".
func (g *group) note() string {
	if g.dropped == 0 {
		return ""
	}
	return fmt.Sprintf("… %d lines not shown here: the module printed more than a group holds (%s); its last lines follow", g.dropped, byteSize(g.limit))
}

// defaultMaxQueued is how much output a batching console queues for its
// flusher before the callers that print wait for it to write: enough for
// a few modules' whole groups, so that the scheduler goes on while a
// group of megabytes is written, and a reader that stops reading holds
// the host's memory to that.
const defaultMaxQueued = 16 << 20

// batchWriter is where the console's output goes on its way to Out.
// While hold is set it queues what is written, and the console's flusher
// (Console.flushEvery) writes the queue to Out every Batch, outside
// Console.mu: a finished module's group of megabytes is written while the
// scheduler and the other modules go on. Its fields are used with
// Console.mu held; Out is written by the flusher alone while hold is set,
// and under Console.mu when it is not.
type batchWriter struct {
	w     io.Writer
	hold  bool
	queue chunks
	// max is the queue's size past which a write waits for the
	// flusher; room is signalled when it took the queue. flushing is
	// set while the flusher runs: there is only someone to wait for
	// then.
	max      int
	room     *sync.Cond
	flushing bool
	// kick wakes the flusher before its time when a write waits for
	// room; waiting counts the callers waiting.
	kick    chan struct{}
	waiting int
	// err is the first error the flusher met, for Close to return.
	err error
}

func (b *batchWriter) Write(p []byte) (int, error) {
	if !b.hold {
		return b.w.Write(p)
	}
	appendChunks(&b.queue, p)
	return len(p), nil
}

// WriteString lets the console's LineWriter hand its masked lines over
// without converting them to bytes first.
func (b *batchWriter) WriteString(s string) (int, error) {
	if !b.hold {
		return io.WriteString(b.w, s)
	}
	appendChunks(&b.queue, s)
	return len(s), nil
}

// writeLines writes lines, each with a newline, as they are.
func (b *batchWriter) writeLines(lines []string) error {
	if !b.hold {
		_, err := io.WriteString(b.w, strings.Join(lines, "\n")+"\n")
		return err
	}
	for _, l := range lines {
		appendChunks(&b.queue, l)
		appendChunks(&b.queue, "\n")
	}
	return nil
}

// writeOwned writes bufs, which the caller gives up, as they are: while
// holding, without copying them.
func (b *batchWriter) writeOwned(bufs ...[]byte) error {
	if !b.hold {
		return writeAll(b.w, bufs)
	}
	b.queue.adopt(bufs...)
	return nil
}

// waitRoom waits, while the flusher runs, until the queue has room. The
// writes themselves never wait: the wait lets go of Console.mu, and
// another caller's line must not land inside a group being written, so
// the console waits once before it changes or writes anything (see
// Console.waitRoom).
func (b *batchWriter) waitRoom() {
	for b.hold && b.flushing && b.queue.size >= b.max {
		select {
		case b.kick <- struct{}{}:
		default:
		}
		b.waiting++
		b.room.Wait()
		b.waiting--
	}
}

// flush writes the queue to w at once. Called with Console.mu held and
// the flusher stopped.
func (b *batchWriter) flush() error {
	return writeAll(b.w, b.queue.take())
}

func writeAll(w io.Writer, bufs [][]byte) error {
	for _, p := range bufs {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}
