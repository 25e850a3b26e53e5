package sdk

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

	pluginv1 "github.com/modpipe/modpipe/proto/pluginv1"
)

// maxLineBytes bounds one output line; longer lines are sent in pieces so
// a module writing megabytes without a newline cannot exhaust memory.
const maxLineBytes = 64 * 1024

// tailLines is how many of the module's last stderr and log lines the sdk
// keeps for a failure's tail when the run function gave none.
const tailLines = 20

// Module is the handle of one running module: who it is and where its
// output goes. It is valid only while the run function runs; output
// written after it returned is dropped.
type Module struct {
	name     string
	kind     string
	attempt  int
	instance int
	runID    string
	matrix   map[string]string
	deps     []string
	brokerID uint32
	srv      *server

	stdout, stderr, log *lineWriter
	loggerOnce          sync.Once
	logger              hclog.Logger

	mu     sync.Mutex // guards send, the batch, closed and tail
	send   func(*pluginv1.OutputLine) error
	closed bool
	tail   []string
	// tailOpen says the tail's last line is a long line of tailStream
	// still coming in pieces: its next piece is added to it (up to
	// maxLineBytes), so the tail shows the line as written, not cut
	// where the pieces were.
	tailOpen   bool
	tailStream pluginv1.Stream
	// sendLines, set when the host takes batches of lines, sends several
	// in one message. Lines wait in pending until lineBatchLines or
	// lineBatchBytes of them are there, or for lineBatchDelay at most.
	sendLines    func([]*pluginv1.OutputLine) error
	batchDelay   time.Duration // lineBatchDelay, but for tests
	pending      []*pluginv1.OutputLine
	pendingBytes int
	flushTimer   *time.Timer
}

// A batch of output lines goes to the host when it holds lineBatchLines
// lines or lineBatchBytes of text, or lineBatchDelay after its first line:
// a message per line cost the plugin and the host more than the line
// (1,000,000 lines took 3.8 s), and a few milliseconds do not show in a
// log that a person reads as it comes.
const (
	lineBatchLines = 512
	lineBatchBytes = 64 << 10
	lineBatchDelay = 5 * time.Millisecond
)

type moduleKey struct{}

// moduleFrom returns the module whose run ctx is, or nil.
func moduleFrom(ctx context.Context) *Module {
	m, _ := ctx.Value(moduleKey{}).(*Module)
	return m
}

// newModule makes the module of req. sendLines, when not nil, sends
// batches of lines (the host asked for them).
func newModule(req *pluginv1.ExecuteRequest, srv *server, send func(*pluginv1.OutputLine) error, sendLines func([]*pluginv1.OutputLine) error) *Module {
	m := &Module{
		name:       req.GetModule(),
		kind:       req.GetKind(),
		attempt:    int(req.GetAttempt()),
		instance:   int(req.GetInstance()),
		runID:      req.GetRunId(),
		matrix:     maps.Clone(req.GetMatrix()),
		deps:       append([]string(nil), req.GetDependencies()...),
		brokerID:   req.GetHostBrokerId(),
		srv:        srv,
		send:       send,
		sendLines:  sendLines,
		batchDelay: lineBatchDelay,
	}
	if m.matrix == nil {
		m.matrix = map[string]string{}
	}
	m.stdout = &lineWriter{emit: func(lines []string, more bool) { m.emitLines(pluginv1.Stream_STREAM_STDOUT, lines, more) }}
	m.stderr = &lineWriter{emit: func(lines []string, more bool) { m.emitLines(pluginv1.Stream_STREAM_STDERR, lines, more) }}
	m.log = &lineWriter{emit: func(lines []string, more bool) { m.emitLines(pluginv1.Stream_STREAM_LOG, lines, more) }}
	return m
}

// Name is the module's address: NAME, or NAME[key] for a matrix instance.
func (m *Module) Name() string { return m.name }

// Kind is the module's kind name.
func (m *Module) Kind() string { return m.kind }

// Attempt counts tries of this module, from 1.
func (m *Module) Attempt() int { return m.attempt }

// Instance is the index of the fleet instance running the module (0 on a
// single machine).
func (m *Module) Instance() int { return m.instance }

// RunID identifies the pipeline run.
func (m *Module) RunID() string { return m.runID }

// MatrixTarget is the module's matrix target ("linux" for test[linux]),
// or "" when the module is not a matrix instance.
func (m *Module) MatrixTarget() string { return m.matrix["target"] }

// Matrix returns the module's matrix axes and values (a copy).
func (m *Module) Matrix() map[string]string { return maps.Clone(m.matrix) }

// Dependencies returns the addresses of the modules whose results this
// module may fetch with Result.
func (m *Module) Dependencies() []string { return append([]string(nil), m.deps...) }

// Stdout is the module's standard output: line-buffered, each line sent to
// the host as it completes (within a few milliseconds, with the lines
// around it, to a host that takes batches). Safe for concurrent use.
func (m *Module) Stdout() io.Writer { return m.stdout }

// Stderr is the module's standard error, like Stdout. Its last lines become
// the tail of the module's error when it fails without one.
func (m *Module) Stderr() io.Writer { return m.stderr }

// StopGrace is how long the host gives the module to stop once it is
// cancelled (its timeout, Ctrl-C, on_failure = "stop") before it kills
// the plugin process as hung, and every other module running in it with
// it (host run --grace). A module that stops in steps, such as SIGTERM
// and later SIGKILL to a command, must fit them in it. Zero means the
// host did not say.
func (m *Module) StopGrace() time.Duration {
	if m.srv == nil {
		return 0
	}
	return m.srv.stopGrace
}

// Logf sends a log line to the host.
func (m *Module) Logf(format string, args ...any) {
	m.emit(pluginv1.Stream_STREAM_LOG, fmt.Sprintf(format, args...), false)
}

// Logger is a structured logger whose lines go to the host as log lines.
// Its level is Info: Debug and Trace lines are dropped unless the host
// runs with --log-level debug or trace (or MODPIPE_PLUGIN_LOG_LEVEL is set
// in the plugin's environment).
//
// It is made on first use: most modules never log, and building an hclog
// logger for every call was a measurable part of the sdk's per-call cost.
func (m *Module) Logger() hclog.Logger {
	m.loggerOnce.Do(func() {
		level := hclog.Info
		if m.srv != nil && m.srv.moduleLogLevel != hclog.NoLevel {
			level = m.srv.moduleLogLevel
		}
		m.logger = hclog.New(&hclog.LoggerOptions{
			Name:        m.name,
			Level:       level,
			Output:      m.log,
			DisableTime: true, // the host stamps lines as they arrive
		})
	})
	return m.logger
}

// emit sends text, a line or several, unless the module is finished;
// more says its last line is a piece of a longer line that goes on in
// the stream's next line.
func (m *Module) emit(stream pluginv1.Stream, text string, more bool) {
	m.emitLines(stream, strings.Split(strings.TrimSuffix(text, "\n"), "\n"), more)
}

// emitLines sends lines, which hold no newline, unless the module is
// finished; more is emit's, for the last one. It keeps none of the
// slice. Sending under the lock keeps lines in order and gives the
// module backpressure when the host reads slowly; taking it once for all
// the lines a write holds matters for output of short lines (2-byte
// lines: millions a second), where taking it line by line was a sixth
// of the plugin's CPU.
func (m *Module) emitLines(stream pluginv1.Stream, lines []string, more bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, line := range lines {
		if m.closed {
			return
		}
		// Protobuf strings must be UTF-8: one invalid byte (binary
		// output, a Latin-1 file) would fail the send and break the
		// stream for every module of the process. Invalid bytes become
		// U+FFFD.
		line = strings.ToValidUTF8(line, "\uFFFD")
		continued := more && i == len(lines)-1
		if stream != pluginv1.Stream_STREAM_STDOUT {
			m.addTail(stream, line, continued)
		}
		out := &pluginv1.OutputLine{Stream: stream, Text: line, Continued: continued}
		if m.sendLines == nil {
			// A failed send means the stream is gone (cancelled); the
			// run's ctx says so, and the output has nowhere to go.
			_ = m.send(out)
			continue
		}
		m.pending = append(m.pending, out)
		m.pendingBytes += len(line)
		switch {
		case len(m.pending) >= lineBatchLines || m.pendingBytes >= lineBatchBytes:
			m.flushLocked()
		case m.flushTimer == nil:
			m.flushTimer = time.AfterFunc(m.batchDelay, m.flushLater)
		}
	}
}

// tailCutNote ends a tail line that was longer than maxLineBytes.
const tailCutNote = " [... the rest of this line is not kept in the tail]"

// addTail adds a stderr or log line to the tail; continued says it is a
// piece of a longer line. The caller holds m.mu.
func (m *Module) addTail(stream pluginv1.Stream, line string, continued bool) {
	if m.tailOpen && m.tailStream == stream && len(m.tail) > 0 {
		last := &m.tail[len(m.tail)-1]
		switch room := maxLineBytes - len(*last); {
		case strings.HasSuffix(*last, tailCutNote):
		case len(line) <= room:
			*last += line
		default:
			*last += line[:runeCut([]byte(line), max(room, 0))] + tailCutNote
		}
		m.tailOpen = continued
		return
	}
	m.tail = append(m.tail, line)
	if len(m.tail) > tailLines {
		m.tail = m.tail[len(m.tail)-tailLines:]
	}
	m.tailOpen, m.tailStream = continued, stream
}

// flushLocked sends the lines waiting in the batch. The caller holds m.mu.
func (m *Module) flushLocked() {
	if len(m.pending) == 0 {
		return
	}
	// As for a single line, a failed send means the stream is gone.
	_ = m.sendLines(m.pending)
	m.pending, m.pendingBytes = nil, 0
}

// flushLater is the batch's timer: it sends what waited lineBatchDelay.
func (m *Module) flushLater() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.flushTimer = nil
	if !m.closed {
		m.flushLocked()
	}
}

// finish flushes partial lines and stops further output, returning the
// last stderr/log lines.
func (m *Module) finish() string {
	m.stdout.flush()
	m.stderr.flush()
	m.log.flush()
	m.mu.Lock()
	defer m.mu.Unlock()
	// Every line goes before the result, which the caller sends next.
	if m.sendLines != nil {
		m.flushLocked()
		if m.flushTimer != nil {
			m.flushTimer.Stop()
			m.flushTimer = nil
		}
	}
	m.closed = true
	return strings.Join(m.tail, "\n")
}

// lineWriter splits written bytes into lines.
type lineWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// lines gathers the complete lines of one Write, emitted together.
	lines []string
	// emit gets lines; more is set when the last is a piece of a line
	// longer than maxLineBytes that goes on in the next call. It must not
	// keep the slice.
	emit func(lines []string, more bool)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		b := w.buf.Bytes()
		i := bytes.IndexByte(b, '\n')
		switch {
		case i >= 0 && i <= maxLineBytes:
			w.lines = append(w.lines, string(bytes.TrimSuffix(b[:i], []byte("\r"))))
			w.buf.Next(i + 1)
		case len(b) > maxLineBytes || i > maxLineBytes:
			n := runeCut(b, maxLineBytes)
			w.lines = append(w.lines, string(b[:n]))
			w.buf.Next(n)
			w.emitGathered(true)
		default:
			w.emitGathered(false)
			return len(p), nil
		}
	}
}

// emitGathered emits the lines gathered so far, if any.
func (w *lineWriter) emitGathered(more bool) {
	if len(w.lines) == 0 {
		return
	}
	w.emit(w.lines, more)
	clear(w.lines) // let the strings go
	w.lines = w.lines[:0]
}

// runeCut is where to cut b at most n bytes in: n, or a little before it
// so a UTF-8 character is not cut in two (each piece of a long line is
// valid text on its own).
func runeCut(b []byte, n int) int {
	for i := n; i > n-utf8.UTFMax && i > 0; i-- {
		if utf8.RuneStart(b[i]) {
			return i
		}
	}
	return n
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() > 0 {
		w.lines = append(w.lines, w.buf.String())
		w.buf.Reset()
		w.emitGathered(false)
	}
}
