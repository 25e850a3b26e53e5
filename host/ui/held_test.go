package ui

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/secrets"
)

// gate is an Out that blocks every write until opened, telling when the
// first write came, as a CI runner's log pipe does when it stops reading.
type gate struct {
	entered chan struct{}
	open    chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}, 1), open: make(chan struct{})}
}

func (g *gate) Write(p []byte) (int, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

func (g *gate) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String()
}

// within fails the test if done is not closed within a minute: what it
// waits for would otherwise wait forever.
func within(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("deadlock: %s", what)
	}
}

// lines returns the lines the group shows, the note among them.
func (g *group) lines() []string {
	var b strings.Builder
	for _, p := range g.head.bufs {
		b.Write(p)
	}
	out := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if b.Len() == 0 {
		out = nil
	}
	if n := g.note(); n != "" {
		out = append(out, n)
	}
	if tail := string(g.tail[g.tailStart:]); tail != "" {
		out = append(out, strings.Split(strings.TrimSuffix(tail, "\n"), "\n")...)
	}
	return out
}

// A finished module's group is written by the console's flusher, not by
// the caller of Finished (the scheduler), and not with the console's lock
// held: while a reader is slow to take a group of megabytes, the other
// modules start, print and finish, and the scheduler goes on. Close
// waits for the write, so the summary comes after every group, and the
// groups keep the order their modules finished in.
func TestGroupWrittenOffTheSchedulersPath(t *testing.T) {
	out := newGate()
	c := New(Options{Style: StyleGitHub, Out: out, Total: 2, Batch: time.Millisecond})
	c.Started("big", 1, 0, "h")
	for i := range 1000 {
		c.Line("big", "stdout", fmt.Sprintf("big line %d", i))
	}
	c.Finished(coordinator.Envelope{Module: "big", Status: coordinator.StatusSucceeded, Attempts: 1})
	within(t, out.entered, "the flusher never wrote")

	// The flusher is in its write, which does not return until the gate
	// opens.
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Started("next", 1, 0, "h")
		c.Line("next", "stdout", "next line")
		c.Finished(coordinator.Envelope{Module: "next", Status: coordinator.StatusSucceeded, Attempts: 1})
	}()
	within(t, done, "a module's events wait for another's group to be written")

	close(out.open)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(c, "SUMMARY")
	got := out.String()
	big := strings.Index(got, "::group::✔ big succeeded")
	next := strings.Index(got, "::group::✔ next succeeded")
	if big < 0 || next < big || !strings.HasSuffix(got, "::endgroup::\nSUMMARY\n") {
		t.Fatalf("want big's group, then next's, then the summary:\n%s", got)
	}
	if !strings.Contains(got, "big line 999\n::endgroup::\n") || strings.Count(got, "big line ") != 1000 {
		t.Errorf("big's group is not whole:\n%s", got)
	}
}

// Output that comes faster than Out takes it waits once the queue is
// full: a reader that stops reading holds the host's memory to the queue,
// and nothing is lost or reordered once it reads again.
func TestQueueBoundsOutputWaitingForTheReader(t *testing.T) {
	out := newGate()
	c := New(Options{Style: StylePlain, Out: out, Batch: time.Millisecond})
	const limit = 1024
	c.mu.Lock()
	c.batch.max = limit
	c.mu.Unlock()
	const n = 5000
	var printed atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			c.Line("m", "stdout", fmt.Sprintf("line %04d", i))
			printed.Add(1)
		}
	}()
	within(t, out.entered, "the flusher never wrote")
	waited := false
	for range 60000 {
		c.mu.Lock()
		waiting, queued := c.batch.waiting, c.batch.queue.size
		c.mu.Unlock()
		if waiting > 0 {
			waited = true
			if max := limit + len("m | line 0000\n"); queued > max {
				t.Errorf("%d bytes queued, want at most %d", queued, max)
			}
			break
		}
		select {
		case <-done:
		default:
			time.Sleep(time.Millisecond)
			continue
		}
		break
	}
	if !waited {
		t.Fatalf("%d lines taken while nothing was written: the queue is not bounded", printed.Load())
	}
	close(out.open)
	within(t, done, "the lines never went out")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("%d lines written, want %d", len(lines), n)
	}
	for i, l := range lines {
		if want := fmt.Sprintf("m | line %04d", i); l != want {
			t.Fatalf("line %d is %q, want %q", i, l, want)
		}
	}
}

// A group of many lines past its limit shows its first lines, the note
// with the count of those dropped, and its last lines, in order, and
// never holds more than its limit, however many lines went through its
// tail.
func TestGroupOfManyLines(t *testing.T) {
	const limit = 4096
	var g group
	const n = 100000
	for i := range n {
		g.add("", fmt.Sprintf("line %06d", i), limit)
		if i%997 == 0 {
			if held := g.head.size + len(g.tail) - g.tailStart; held > limit {
				t.Fatalf("after %d lines the group holds %d bytes, more than %d", i+1, held, limit)
			}
		}
	}
	lines := g.lines()
	size := len("line 000000\n")
	head, tail := (limit-limit/8)/size, (limit/8)/size
	if len(lines) != head+1+tail {
		t.Fatalf("%d lines shown, want %d of the head, the note and %d of the tail", len(lines), head, tail)
	}
	for i := range head {
		if want := fmt.Sprintf("line %06d", i); lines[i] != want {
			t.Fatalf("head line %d is %q, want %q", i, lines[i], want)
		}
	}
	if want := fmt.Sprintf("… %d lines not shown here: the module printed more than a group holds (4 KiB); its last lines follow", n-head-tail); lines[head] != want {
		t.Errorf("note %q, want %q", lines[head], want)
	}
	for i, l := range lines[head+1:] {
		if want := fmt.Sprintf("line %06d", n-tail+i); l != want {
			t.Fatalf("tail line %d is %q, want %q", i, l, want)
		}
	}
	if held := cap(g.tail); held > 2*chunkSize {
		t.Errorf("the tail's buffer grew to %d bytes for %d kept", held, limit/8)
	}
}

// With LinesMasked the console takes a module's lines as masked by the
// caller (who masks the pieces of a long line together) and masks only
// what it puts in front of them: a secret that starts in the module's
// prefix, or in the mark of a stderr line in a group, is still hidden.
func TestLinesMaskedMasksWhatTheConsoleAdds(t *testing.T) {
	m := secrets.New("b ! hid", "! sec", "tok-4567")
	tests := []struct {
		style Style
		want  []string
	}{
		{StylePlain, []string{"a | *** as given\n", "b | hidden\n", "***den\n", "a ***ret\n"}},
		{StyleLive, []string{"a | *** as given\n", "b | hidden\n", "***den\n", "a ***ret\n"}},
		{StyleGitHub, []string{"\n*** as given\n", "\nhidden\n", "\n! hidden\n", "\n***ret\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.style.String(), func(t *testing.T) {
			var out bytes.Buffer
			c := New(Options{Style: tt.style, Out: &out, Masker: m, LinesMasked: true, Refresh: -1})
			for _, mod := range []string{"a", "b"} {
				c.Started(mod, 1, 0, "h")
			}
			c.Line("a", "stdout", "*** as given")
			c.Line("b", "stdout", "hidden")
			c.Line("b", "stderr", "hidden")
			c.Line("a", "stderr", "secret")
			for _, mod := range []string{"a", "b"} {
				c.Finished(coordinator.Envelope{Module: mod, Status: coordinator.StatusSucceeded, Attempts: 1})
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			var kept []string
			for _, l := range strings.SplitAfter(out.String(), "\n") {
				if !strings.HasPrefix(l, "::add-mask::") {
					kept = append(kept, l)
				}
			}
			got := strings.Join(kept, "")
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("want %q in:\n%s", w, got)
				}
			}
			if tt.style != StyleGitHub && strings.Contains(got, "b ! hid") {
				t.Errorf("a secret across the prefix is shown:\n%s", got)
			}
			if strings.Contains(got, "! sec") {
				t.Errorf("a secret across the stderr mark is shown:\n%s", got)
			}
		})
	}
}

// BenchmarkGitHubGroup is a module printing 100,000 short lines under
// GitHub Actions: held in its group, then written when it ends, as a
// chatty build or test module is.
func BenchmarkGitHubGroup(b *testing.B) {
	const n = 100000
	lines := make([]string, n)
	size := 0
	for i := range lines {
		lines[i] = strconv.Itoa(i)
		size += len(lines[i]) + 1
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		c := New(Options{Style: StyleGitHub, Out: io.Discard, Total: 1})
		c.Started("chatty", 1, 0, "h")
		for _, l := range lines {
			c.Line("chatty", "stdout", l)
		}
		c.Finished(coordinator.Envelope{Module: "chatty", Status: coordinator.StatusSucceeded, Attempts: 1})
		_ = c.Close()
	}
}
