package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pluginv1 "github.com/modpipe/modpipe/proto/pluginv1"
)

type contextT = context.Context

func TestLineWriter(t *testing.T) {
	long := strings.Repeat("x", maxLineBytes+10)
	// € is 3 bytes: maxLineBytes is not a multiple of 3, so a cut at
	// maxLineBytes would split one; the piece ends before it instead.
	euros := strings.Repeat("€", maxLineBytes/3+10)
	cut := maxLineBytes / 3 * 3
	tests := []struct {
		name   string
		writes []string
		want   []string
		// more are the lines the line writer says go on (pieces).
		more []int
	}{
		{"one line", []string{"a\n"}, []string{"a"}, nil},
		{"split writes", []string{"he", "llo\nwor", "ld\n"}, []string{"hello", "world"}, nil},
		{"crlf and empty lines", []string{"a\r\n\n\nb\n"}, []string{"a", "", "", "b"}, nil},
		{"partial flushed", []string{"a\nb"}, []string{"a", "b"}, nil},
		{"many lines in one write", []string{"a\nb\nc\n" + long + "\nd\n"}, []string{"a", "b", "c", long[:maxLineBytes], long[maxLineBytes:], "d"}, []int{3}},
		{"runaway line in pieces", []string{long + "\n"}, []string{long[:maxLineBytes], long[maxLineBytes:]}, []int{0}},
		{"pieces cut between characters", []string{euros + "\n"}, []string{euros[:cut], euros[cut:]}, []int{0}},
		{"runaway line unfinished", []string{long}, []string{long[:maxLineBytes], long[maxLineBytes:]}, []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			var more []int
			w := &lineWriter{emit: func(lines []string, m bool) {
				if m {
					more = append(more, len(got)+len(lines)-1)
				}
				got = append(got, lines...)
			}}
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			w.flush()
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("lines %q, want %q", got, tt.want)
			}
			if fmt.Sprint(more) != fmt.Sprint(tt.more) {
				t.Errorf("lines %v go on, want %v", more, tt.more)
			}
		})
	}
}

func TestModuleOutputAndTail(t *testing.T) {
	var mu sync.Mutex
	var sent []string
	m := newModule(&pluginv1.ExecuteRequest{Module: "m[linux]", Matrix: map[string]string{"target": "linux", "go": "1.26"}, Attempt: 2}, nil,
		func(l *pluginv1.OutputLine) error {
			mu.Lock()
			defer mu.Unlock()
			sent = append(sent, l.GetStream().String()+" "+l.GetText())
			return nil
		}, nil)
	if m.Name() != "m[linux]" || m.MatrixTarget() != "linux" || m.Attempt() != 2 || m.Matrix()["go"] != "1.26" {
		t.Fatalf("module facts wrong: %+v", m)
	}
	m.Matrix()["target"] = "changed" // a copy
	if m.MatrixTarget() != "linux" {
		t.Fatal("Matrix returned the module's own map")
	}
	for i := 0; i < tailLines+5; i++ {
		fmt.Fprintf(m.Stderr(), "err %d\n", i)
	}
	fmt.Fprintln(m.Stdout(), "out")
	m.Logf("two\nlines")
	fmt.Fprint(m.Stderr(), "partial")
	tail := m.finish()
	fmt.Fprintln(m.Stdout(), "after finish is dropped")
	m.Logf("dropped too")

	lines := strings.Split(tail, "\n")
	if len(lines) != tailLines || lines[len(lines)-1] != "partial" || lines[len(lines)-3] != "two" {
		t.Fatalf("tail = %q", lines)
	}
	if len(sent) != tailLines+5+4 || sent[len(sent)-4] != "STREAM_STDOUT out" || sent[len(sent)-1] != "STREAM_STDERR partial" {
		t.Fatalf("sent = %q", sent)
	}
}

// A line longer than maxLineBytes goes out in pieces marked continued,
// and stays one line in the tail, so a secret the cut went through is
// not split between two tail lines either.
func TestModuleLongLinePieces(t *testing.T) {
	var sent []*pluginv1.OutputLine
	m := newModule(&pluginv1.ExecuteRequest{Module: "m"}, nil,
		func(l *pluginv1.OutputLine) error { sent = append(sent, l); return nil }, nil)
	long := strings.Repeat("y", maxLineBytes-3) + "secret" + strings.Repeat("z", maxLineBytes)
	fmt.Fprintln(m.Stderr(), "before")
	fmt.Fprintln(m.Stderr(), long)
	m.Logf("a log line")
	tail := m.finish()

	var pieces []string
	for _, l := range sent {
		pieces = append(pieces, fmt.Sprintf("%d/%v", len(l.GetText()), l.GetContinued()))
	}
	if want := []string{"6/false", "65536/true", "65536/true", "3/false", "10/false"}; fmt.Sprint(pieces) != fmt.Sprint(want) {
		t.Errorf("sent lines (length/continued) %v, want %v", pieces, want)
	}
	lines := strings.Split(tail, "\n")
	if len(lines) != 3 || lines[0] != "before" || lines[2] != "a log line" {
		t.Fatalf("tail has %d lines, want before, the long line, the log line", len(lines))
	}
	if want := long[:maxLineBytes] + tailCutNote; lines[1] != want {
		t.Errorf("tail's long line: %d bytes ending %q, want the first %d bytes and the note", len(lines[1]), lines[1][len(lines[1])-60:], maxLineBytes)
	}
}

func TestFailures(t *testing.T) {
	base := errors.New("base")
	tests := []struct {
		name     string
		err      error
		wantMsg  string
		wantKind string
		wantTail string
		wantIs   error
	}{
		{"plain error", base, "base", ErrorKindModule, "", base},
		{"failf wraps", Failf("step %d: %w", 3, base), "step 3: base", ErrorKindModule, "", base},
		{"with tail", WithTail(base, "t1\nt2"), "base", ErrorKindModule, "t1\nt2", base},
		{"tail on failf", WithTail(Failf("x"), "t"), "x", ErrorKindModule, "t", nil},
		{"wrapped failure keeps outer message", fmt.Errorf("outer: %w", WithTail(base, "t")), "outer: base", ErrorKindModule, "t", base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := asFailure(tt.err)
			if f.Message != tt.wantMsg || f.Kind != tt.wantKind || f.Tail != tt.wantTail {
				t.Errorf("failure = %+v", f)
			}
			if tt.wantIs != nil && !errors.Is(tt.err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", tt.err, tt.wantIs)
			}
		})
	}
	if WithTail(nil, "t") != nil {
		t.Error("WithTail(nil) != nil")
	}
}

func TestNewServerRefusesBadPlugins(t *testing.T) {
	run := func(context.Context, *Module, struct{}) (struct{}, error) { return struct{}{}, nil }
	tests := []struct {
		name string
		p    Plugin
		want string
	}{
		{"no name", Plugin{Kinds: []Kind{NewKind("a", "t/v1", run)}}, "Name is empty"},
		{"no kinds", Plugin{Name: "p"}, "Kinds is empty"},
		{"duplicate kind", Plugin{Name: "p", Kinds: []Kind{NewKind("a", "t/v1", run), NewKind("a", "t/v1", run)}}, `kind "a" is declared twice`},
		{"two defaults", Plugin{Name: "p", Kinds: []Kind{NewKind("a", "t/v1", run, Default()), NewKind("b", "t/v1", run, Default())}}, "both marked sdk.Default()"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newServer(tt.p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	s, err := newServer(Plugin{Name: "p", Kinds: []Kind{NewKind("a", "t/v1", run), NewKind("b", "t/v1", run, Default())}})
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := s.Describe(context.Background(), nil)
	if resp.GetKinds()[0].GetDefault() || !resp.GetKinds()[1].GetDefault() || resp.GetProtocolVersion() != 1 {
		t.Fatalf("describe = %v", resp)
	}
}

func TestNewKindPanicsOnProgrammingErrors(t *testing.T) {
	run := func(context.Context, *Module, struct{}) (struct{}, error) { return struct{}{}, nil }
	tests := []struct {
		name string
		make func()
		want string
	}{
		{"dotted name", func() { NewKind("a.b", "t/v1", run) }, "without dots"},
		{"no result type", func() { NewKind("a", "", run) }, "result type name must not be empty"},
		{"config not a struct", func() {
			NewKind("a", "t/v1", func(context.Context, *Module, string) (int, error) { return 0, nil })
		}, "is not a struct"},
		{"meta-argument name", func() {
			NewKind("a", "t/v1", func(context.Context, *Module, struct {
				Timeout string `modpipe:"timeout,optional"`
			}) (int, error) {
				return 0, nil
			})
		}, `attribute "timeout" has the name of a meta-argument`},
		{"check of another type", func() {
			NewKind("a", "t/v1", run, Check(func(string) error { return nil }))
		}, "sdk.Check is for config type string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), tt.want) {
					t.Fatalf("panic = %v, want %q", r, tt.want)
				}
			}()
			tt.make()
		})
	}
}

// TestModuleOutputBatches: for a host that takes batches, lines go in
// messages of up to lineBatchLines, in the order written, across
// streams; a batch that does not fill goes after the delay while the
// module runs, and what is left goes before the module finishes, after
// which nothing is sent.
func TestModuleOutputBatches(t *testing.T) {
	type sink struct {
		mu      sync.Mutex
		batches [][]string
	}
	newBatching := func(s *sink, delay time.Duration) *Module {
		m := newModule(&pluginv1.ExecuteRequest{Module: "m"}, nil, func(l *pluginv1.OutputLine) error {
			t.Errorf("line %q sent alone to a host that takes batches", l.GetText())
			return nil
		}, func(lines []*pluginv1.OutputLine) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			var b []string
			for _, l := range lines {
				b = append(b, l.GetStream().String()+" "+l.GetText())
			}
			s.batches = append(s.batches, b)
			return nil
		})
		m.batchDelay = delay
		return m
	}
	sent := func(s *sink) (sizes []int, all []string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, b := range s.batches {
			sizes = append(sizes, len(b))
			all = append(all, b...)
		}
		return sizes, all
	}

	// Full batches go at once; the rest when the module finishes.
	var full sink
	m := newBatching(&full, time.Hour)
	var want []string
	for i := range lineBatchLines + 10 {
		fmt.Fprintf(m.Stdout(), "out %d\n", i)
		want = append(want, fmt.Sprintf("STREAM_STDOUT out %d", i))
	}
	fmt.Fprintln(m.Stderr(), "err")
	want = append(want, "STREAM_STDERR err")
	if sizes, _ := sent(&full); len(sizes) != 1 || sizes[0] != lineBatchLines {
		t.Fatalf("batches %v before the module finished, want one of %d lines", sizes, lineBatchLines)
	}
	m.finish()
	fmt.Fprintln(m.Stdout(), "after the end")
	if sizes, all := sent(&full); len(sizes) != 2 || strings.Join(all, "\n") != strings.Join(want, "\n") {
		t.Errorf("batches %v, sent in order:\n%s\nwant:\n%s", sizes, strings.Join(all, "\n"), strings.Join(want, "\n"))
	}

	// A batch that does not fill goes after the delay, the module still
	// running.
	var partial sink
	m = newBatching(&partial, time.Millisecond)
	fmt.Fprintln(m.Stdout(), "one")
	fmt.Fprintln(m.Stdout(), "two")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, all := sent(&partial); len(all) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the partial batch was not sent while the module ran")
		}
		time.Sleep(time.Millisecond)
	}
	m.finish()
	if _, all := sent(&partial); strings.Join(all, ",") != "STREAM_STDOUT one,STREAM_STDOUT two" {
		t.Errorf("sent %q", all)
	}
}

// Output that is not UTF-8 (binary, Latin-1) cannot go into a protobuf
// string; sent as it was, it broke the stream for every module of the
// process. Each invalid byte becomes U+FFFD and the line still goes.
func TestOutputNotUTF8(t *testing.T) {
	var sent []string
	m := newModule(&pluginv1.ExecuteRequest{Module: "m"}, nil, func(l *pluginv1.OutputLine) error {
		if _, err := proto.Marshal(l); err != nil {
			t.Errorf("line %q cannot be sent: %v", l.GetText(), err)
		}
		sent = append(sent, l.GetText())
		return nil
	}, nil)
	fmt.Fprintln(m.Stdout(), "bad \xff byte")
	_, _ = m.Stderr().Write([]byte{0xc3, 0x28, 'x', '\n'})
	m.finish()
	if len(sent) != 2 || sent[0] != "bad \uFFFD byte" || sent[1] != "\uFFFD(x" {
		t.Errorf("sent %q", sent)
	}
}

// A result larger than one gRPC message to the host can carry fails its
// own module with an encoding error, which names the size and the limit
// and keeps what the module wrote last. Sent, gRPC refused it and ended
// the session: every module running in the plugin failed with a broken
// protocol.
func TestResultTooLarge(t *testing.T) {
	run := func(_ context.Context, m *Module, cfg struct {
		Size int `modpipe:"size"`
	}) (map[string]string, error) {
		fmt.Fprintln(m.Stderr(), "made the data")
		return map[string]string{"data": strings.Repeat("x", cfg.Size)}, nil
	}
	s, err := newServer(Plugin{Name: "p", Kinds: []Kind{NewKind("k", "t/v1", run)}})
	if err != nil {
		t.Fatal(err)
	}
	if s.maxValue != maxValueBytes {
		t.Fatalf("maxValue %d, want %d", s.maxValue, maxValueBytes)
	}
	s.maxValue = 100 // what a 255 MiB value would meet
	for _, tc := range []struct {
		size int
		ok   bool
	}{{89, true}, {90, false}} { // {"data":"..."} is 11 bytes more
		req := &pluginv1.ExecuteRequest{Module: "m", Kind: "k", ConfigJson: fmt.Sprintf(`{"size": %d}`, tc.size)}
		r := s.execute(context.Background(), req, newModule(req, nil, func(*pluginv1.OutputLine) error { return nil }, nil))
		if r.GetSucceeded() != tc.ok {
			t.Fatalf("size %d: succeeded %v (%v), want %v", tc.size, r.GetSucceeded(), r.GetError(), tc.ok)
		}
		if tc.ok {
			continue
		}
		e := r.GetError()
		if e.GetKind() != ErrorKindEncoding || !strings.Contains(e.GetMessage(), "it is 101 bytes of JSON, over the 100 a result can have") || e.GetTail() != "made the data" {
			t.Fatalf("size %d: error %+v", tc.size, e)
		}
	}
}

// A result that is not UTF-8 (a json.RawMessage of a command's bytes)
// cannot go into the result's protobuf string; sent, it broke the
// plugin's session and every module running on it. Its module fails
// with an encoding error instead, and that result can be sent.
func TestResultNotUTF8(t *testing.T) {
	type out struct {
		Raw json.RawMessage `json:"raw"`
	}
	run := func(_ context.Context, _ *Module, cfg struct {
		Bad bool `modpipe:"bad,optional"`
	}) (out, error) {
		if cfg.Bad {
			return out{Raw: json.RawMessage("{\"a\": \"\xff\"}")}, nil
		}
		return out{Raw: json.RawMessage(`{"a": "é"}`)}, nil
	}
	s, err := newServer(Plugin{Name: "p", Kinds: []Kind{NewKind("k", "t/v1", run)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		config, want string
		ok           bool
	}{
		{`{"bad": true}`, "not valid UTF-8", false},
		{`{"bad": false}`, "", true},
	} {
		req := &pluginv1.ExecuteRequest{Module: "m", Kind: "k", ConfigJson: tc.config}
		r := s.execute(context.Background(), req, newModule(req, nil, func(*pluginv1.OutputLine) error { return nil }, nil))
		if _, err := proto.Marshal(r); err != nil {
			t.Fatalf("config %s: the result cannot be sent: %v", tc.config, err)
		}
		if r.GetSucceeded() != tc.ok || !strings.Contains(r.GetError().GetMessage(), tc.want) {
			t.Fatalf("config %s: succeeded %v, error %q; want %v, %q", tc.config, r.GetSucceeded(), r.GetError().GetMessage(), tc.ok, tc.want)
		}
		if !tc.ok && r.GetError().GetKind() != ErrorKindEncoding {
			t.Fatalf("error kind %q, want %q", r.GetError().GetKind(), ErrorKindEncoding)
		}
	}
}
