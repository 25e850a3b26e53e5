package ui

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/secrets"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// clock is a fake clock the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

func env(module string, status coordinator.Status, start, dur time.Duration, attempts int) coordinator.Envelope {
	e := coordinator.Envelope{
		Module: module, Status: status, Attempts: attempts,
		StartedAt: t0.Add(start), EndedAt: t0.Add(start + dur), DurationMS: dur.Milliseconds(),
		Host: "runner-1",
	}
	if status.Failed() {
		e.Error = &coordinator.Error{Kind: "module", Message: "exit status 1: password hunter2 refused"}
	}
	return e
}

// script plays a small run on c: two modules interleaving output, one of
// them retried and failing, one skipped.
func script(c *Console, clk *clock) {
	c.Started("build", 1, 0, "runner-1")
	c.Started("test", 1, 0, "runner-1")
	clk.add(300 * time.Millisecond)
	c.Line("build", "stdout", "compiling")
	c.Line("test", "stdout", "=== RUN TestLogin")
	c.Line("build", "stderr", "warning: token hunter2 in env")
	clk.add(time.Second)
	c.Retrying("test", 1, env("test", coordinator.StatusFailed, 0, 1300*time.Millisecond, 1), 2*time.Second)
	c.Finished(env("build", coordinator.StatusSucceeded, 0, 1300*time.Millisecond, 1))
	clk.add(2 * time.Second)
	c.Started("test", 2, 0, "runner-1")
	c.Line("test", "stdout", "=== RUN TestLogin again")
	clk.add(500 * time.Millisecond)
	c.Finished(env("test", coordinator.StatusFailed, 3300*time.Millisecond, 500*time.Millisecond, 2))
	skipped := coordinator.Envelope{Module: "deploy", Status: coordinator.StatusSkipped, SkipReason: "dependency test failed"}
	c.Finished(skipped)
	c.BeginSummary()
	fmt.Fprintf(c, "SUMMARY line with hunter2\nand a second line\n")
}

func TestStyles(t *testing.T) {
	for _, style := range []Style{StylePlain, StyleLive, StyleGitHub, StyleGitLab, StyleBuildkite} {
		t.Run(style.String(), func(t *testing.T) {
			var out bytes.Buffer
			clk := &clock{now: t0}
			c := New(Options{Style: style, Out: &out, Masker: secrets.New("hunter2"), Total: 3, Now: clk.Now, Refresh: -1, Width: func() int { return 60 }})
			script(c, clk)
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			if style != StyleGitHub && strings.Contains(got, "hunter2") {
				t.Errorf("the secret was printed:\n%s", got)
			}
			if style == StyleGitHub {
				// The only place the secret may appear is its ::add-mask::.
				if n := strings.Count(got, "hunter2"); n != 1 || !strings.HasPrefix(got, "::add-mask::hunter2\n") {
					t.Errorf("want the secret exactly once, in ::add-mask:: first:\n%s", got)
				}
			}
			if style == StylePlain || style == StyleGitHub || style == StyleBuildkite {
				if strings.Contains(got, "\x1b") {
					t.Errorf("%s output has control codes:\n%q", style, got)
				}
			}
			golden(t, style.String()+".golden", []byte(got))
		})
	}
}

// TestGroupsNeverInterleave checks, in every grouping CI style, that each
// module's lines come together after its group's header, whatever order
// they arrived in.
func TestGroupsNeverInterleave(t *testing.T) {
	headers := map[Style]*regexp.Regexp{
		StyleGitHub:    regexp.MustCompile(`^::group::. (\S+) `),
		StyleGitLab:    regexp.MustCompile(`section_start:\d+:modpipe_\d+_(\S+?)(\[|\r)`),
		StyleBuildkite: regexp.MustCompile(`^--- . (\S+) `),
	}
	for style, header := range headers {
		t.Run(style.String(), func(t *testing.T) {
			var out bytes.Buffer
			c := New(Options{Style: style, Out: &out, Total: 3})
			var wg sync.WaitGroup
			for _, m := range []string{"a", "b", "c"} {
				c.Started(m, 1, 0, "h")
			}
			for _, m := range []string{"a", "b", "c"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 50 {
						c.Line(m, "stdout", fmt.Sprintf("%s-line-%d", m, i))
					}
					c.Finished(coordinator.Envelope{Module: m, Status: coordinator.StatusSucceeded, Attempts: 1, StartedAt: t0, EndedAt: t0})
				}()
			}
			wg.Wait()
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			current := ""
			next := map[string]int{}
			for _, l := range strings.Split(out.String(), "\n") {
				if m := header.FindStringSubmatch(l); m != nil {
					current = m[1]
					continue
				}
				mod, n, ok := strings.Cut(l, "-line-")
				if !ok {
					continue
				}
				if mod != current {
					t.Fatalf("line %q printed in the group of %q", l, current)
				}
				if want := strconv.Itoa(next[mod]); n != want {
					t.Fatalf("line %q out of order, want line %s", l, want)
				}
				next[mod]++
			}
			for _, m := range []string{"a", "b", "c"} {
				if next[m] != 50 {
					t.Errorf("%s: %d lines printed, want 50", m, next[m])
				}
			}
		})
	}
}

// A failure that ignore_failure keeps from failing the run is not
// counted as one in the live view's status line: "1 failed" on a run
// that goes on to succeed reads as a failed run.
func TestLiveViewCountsIgnoredFailuresApart(t *testing.T) {
	var out bytes.Buffer
	clk := &clock{now: t0}
	c := New(Options{Style: StyleLive, Out: &out, Total: 3, Now: clk.Now, Refresh: -1, MaxRunning: 2, Width: func() int { return 60 }})
	c.Started("lint", 1, 0, "host")
	c.Started("build", 1, 0, "host")
	clk.add(time.Second)
	c.Finished(coordinator.Envelope{Module: "lint", Status: coordinator.StatusTimedOut, IgnoredFailure: true, Attempts: 1, DurationMS: 1000})
	screen := playTerminal(t, out.String())
	if got, want := screen[1], "1/3 done, 1 running, 1 failed (ignored) · 1.0s"; got != want {
		t.Errorf("status line %q, want %q\n%s", got, want, strings.Join(screen, "\n"))
	}
	c.Finished(coordinator.Envelope{Module: "build", Status: coordinator.StatusFailed, Attempts: 1, DurationMS: 1000})
	screen = playTerminal(t, out.String())
	if got, want := screen[2], "2/3 done, 0 running, 1 failed, 1 failed (ignored) · 1.0s"; got != want {
		t.Errorf("status line %q, want %q\n%s", got, want, strings.Join(screen, "\n"))
	}
	c.Close()
}

// TestLiveViewOnScreen plays the live style's output through a small
// terminal model and checks what a person would see: output lines above,
// the view below, never more than a few lines of it, nothing of it left
// after Close.
func TestLiveViewOnScreen(t *testing.T) {
	var out bytes.Buffer
	clk := &clock{now: t0}
	c := New(Options{Style: StyleLive, Out: &out, Total: 10, Now: clk.Now, Refresh: -1, MaxRunning: 2, Width: func() int { return 40 }})
	for i := range 5 {
		c.Started(fmt.Sprintf("mod%d", i), 1, i%2, "host")
		clk.add(time.Second)
	}
	c.Line("mod0", "stdout", "hello from mod0")
	c.Finished(coordinator.Envelope{Module: "mod1", Status: coordinator.StatusFailed, Attempts: 1, DurationMS: 1500, Error: &coordinator.Error{Message: "boom"}})

	screen := playTerminal(t, out.String())
	want := []string{
		"hello from mod0", // as "mod0 | hello from mod0"
		"✘ mod1 failed in 1.5s: boom [1/10]",
		"1/10 done, 4 running, 1 failed · 5.0s",
		"  5.0s mod0 on instance 0 (host)",
		"  3.0s mod2 on instance 0 (host)",
		"  … and 2 more",
	}
	if len(screen) != len(want) {
		t.Fatalf("screen has %d lines, want %d:\n%s", len(screen), len(want), strings.Join(screen, "\n"))
	}
	if screen[0] != "mod0 | hello from mod0" {
		t.Errorf("line 0 = %q", screen[0])
	}
	for i := 1; i < len(want); i++ {
		if screen[i] != want[i] {
			t.Errorf("line %d = %q, want %q", i, screen[i], want[i])
		}
	}
	for _, l := range screen {
		if w := len([]rune(l)); w > 40 {
			t.Errorf("line %q is %d wide, wider than the terminal", l, w)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	screen = playTerminal(t, out.String())
	if len(screen) != 2 {
		t.Fatalf("after Close the view should be gone, leaving the 2 output lines:\n%s", strings.Join(screen, "\n"))
	}
}

func TestLiveRedrawsOnTimer(t *testing.T) {
	out := &syncBuffer{}
	clk := &clock{now: t0}
	c := New(Options{Style: StyleLive, Out: out, Total: 1, Now: clk.Now, Refresh: time.Millisecond})
	c.Started("slow", 1, 0, "h")
	clk.add(7 * time.Second)
	// The timer, not an event, must bring the new elapsed time on screen;
	// the bound only guards against a hang.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "7.0s slow") {
		if time.Now().After(deadline) {
			t.Fatalf("the view was not redrawn:\n%q", out.String())
		}
		time.Sleep(time.Millisecond)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestDetectStyle(t *testing.T) {
	tests := []struct {
		name       string
		environ    []string
		terminal   bool
		noProgress bool
		want       Style
	}{
		{"pipe", nil, false, false, StylePlain},
		{"terminal", nil, true, false, StyleLive},
		{"terminal without progress", nil, true, true, StylePlain},
		{"dumb terminal", []string{"TERM=dumb"}, true, false, StylePlain},
		{"github", []string{"GITHUB_ACTIONS=true"}, false, false, StyleGitHub},
		{"github wins over a terminal", []string{"GITHUB_ACTIONS=true"}, true, false, StyleGitHub},
		{"gitlab", []string{"GITLAB_CI=true"}, false, false, StyleGitLab},
		{"buildkite", []string{"BUILDKITE=true"}, false, false, StyleBuildkite},
		{"other CI", []string{"CI=true", "CIRCLECI=true"}, false, false, StylePlain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DetectStyle(tt.environ, tt.terminal, tt.noProgress); got != tt.want {
				t.Fatalf("DetectStyle = %s, want %s", got, tt.want)
			}
		})
	}
}

// A group holds at most MaxBuffered bytes: its first lines and its last,
// with a note between them saying how many were dropped there, so that
// no line shown comes after a gap the note does not mark.
func TestGroupBufferIsBounded(t *testing.T) {
	long := strings.Repeat("y", 30)
	tests := []struct {
		name  string
		lines []string
		// want is what the group shows, "NOTE" where the note goes.
		want []string
	}{
		{"fits", []string{"a", "b", "c"}, []string{"a", "b", "c"}},
		{"head and tail", numbered(50), append(numbered(11), "NOTE", "line 49")},
		// A shorter line after long dropped ones comes after the note,
		// not before it as if it were from before the gap.
		{"long lines then a short last one", append(numbered(9), long, long, long, long, "LAST"), append(numbered(9), "NOTE", "LAST")},
		// A first line too long for the head leaves the head empty: the
		// group is still shown, the note and the last lines in it.
		{"first line longer than the head", []string{strings.Repeat("z", 95), "after"}, []string{"NOTE", "after"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			c := New(Options{Style: StyleGitHub, Out: &out, MaxBuffered: 100})
			c.Started("chatty", 1, 0, "h")
			for _, l := range tt.lines {
				c.Line("chatty", "stdout", l)
			}
			c.Finished(coordinator.Envelope{Module: "chatty", Status: coordinator.StatusSucceeded, Attempts: 1})
			_, inside, _ := strings.Cut(out.String(), "::group::")
			inside, _, _ = strings.Cut(inside, "\n::endgroup::")
			got := strings.Split(inside, "\n")[1:]
			size := 0
			for i, l := range got {
				if strings.HasPrefix(l, "… ") && strings.Contains(l, "lines not shown here: the module printed more than a group holds (100 bytes); its last lines follow") {
					got[i] = "NOTE"
					continue
				}
				size += len(l) + 1
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("group shows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if size > 100 {
				t.Errorf("the group held %d bytes, more than 100", size)
			}
		})
	}
}

// numbered is n lines "line 00", "line 01", ...
func numbered(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("line %02d", i)
	}
	return out
}

func TestEscapes(t *testing.T) {
	if got := escapeData("50% done\r\nnext"); got != "50%25 done%0D%0Anext" {
		t.Errorf("escapeData = %q", got)
	}
	if got := escapeProperty("a:b,c"); got != "a%3Ab%2Cc" {
		t.Errorf("escapeProperty = %q", got)
	}
	if got := sectionName("build[linux/amd64]"); got != "build_linux_amd64" {
		t.Errorf("sectionName = %q", got)
	}
}

// playTerminal interprets the few control sequences the live view uses
// (\r, cursor up, erase below) on a model screen and returns its lines.
func playTerminal(t *testing.T, s string) []string {
	t.Helper()
	var rows []string
	row := 0
	seq := regexp.MustCompile(`^\x1b\[(\d*)([AJ])`)
	for len(s) > 0 {
		switch {
		case s[0] == '\r':
			s = s[1:]
		case s[0] == '\n':
			row++
			s = s[1:]
		case s[0] == 0x1b:
			m := seq.FindStringSubmatch(s)
			if m == nil {
				t.Fatalf("unexpected control sequence at %q", s[:min(len(s), 10)])
			}
			s = s[len(m[0]):]
			if m[2] == "A" {
				n := 1
				if m[1] != "" {
					n, _ = strconv.Atoi(m[1])
				}
				row = max(row-n, 0)
			} else if row < len(rows) {
				rows = rows[:row]
			}
		default:
			end := strings.IndexAny(s, "\r\n\x1b")
			if end < 0 {
				end = len(s)
			}
			for len(rows) <= row {
				rows = append(rows, "")
			}
			rows[row] += s[:end]
			s = s[end:]
		}
	}
	return rows
}

// syncBuffer is a bytes.Buffer the redraw goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test -update and review the diff):\n--- got\n%q\n--- want\n%q", name, got, want)
	}
}

// TestBatchHoldsUntilFlushOrClose checks that a batching console writes
// nothing per line, everything at Close, and at once after Close.
func TestBatchHoldsUntilFlushOrClose(t *testing.T) {
	var out strings.Builder
	c := New(Options{Style: StylePlain, Out: &out, Batch: time.Hour})
	c.Started("a", 1, 0, "h")
	c.Line("a", "stdout", "hello")
	if out.Len() != 0 {
		t.Fatalf("written before a flush: %q", out.String())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if want := "▶ a started on instance 0 (h)\na | hello\n"; out.String() != want {
		t.Fatalf("after Close: %q, want %q", out.String(), want)
	}
	fmt.Fprintln(c, "summary")
	if !strings.HasSuffix(out.String(), "summary\n") {
		t.Fatalf("after Close, not written at once: %q", out.String())
	}
}

// A burst of output lines does not redraw the live view below each one:
// the lines are all printed, the view far fewer times.
func TestLiveViewNotRedrawnPerLine(t *testing.T) {
	var out bytes.Buffer
	c := New(Options{Style: StyleLive, Out: &out, Total: 1, Refresh: time.Hour, Width: func() int { return 80 }})
	c.Started("chatty", 1, 0, "host")
	const n = 1000
	for i := range n {
		c.Line("chatty", "stdout", fmt.Sprintf("line %d", i))
	}
	if views := strings.Count(out.String(), "0/1 done, 1 running"); views > n/10 {
		t.Errorf("the view was drawn %d times for %d lines", views, n)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	screen := playTerminal(t, out.String())
	if len(screen) != n || screen[n-1] != fmt.Sprintf("chatty | line %d", n-1) {
		t.Errorf("screen has %d lines, want the %d output lines; last %q", len(screen), n, screen[len(screen)-1])
	}
}

// A line that draws over itself with \r (a progress counter) is shown as a
// terminal would end up showing it, after the module's prefix, in every
// style: its final text.
func TestProgressLineShowsItsFinalText(t *testing.T) {
	for _, style := range []Style{StylePlain, StyleGitHub} {
		t.Run(style.String(), func(t *testing.T) {
			var out bytes.Buffer
			clk := &clock{now: t0}
			c := New(Options{Style: style, Out: &out, Total: 1, Now: clk.Now, Refresh: -1, Width: func() int { return 60 }})
			c.Started("p", 1, 0, "h")
			c.Line("p", "stdout", "progress 10%\rprogress 50%\rprogress 100%")
			c.Line("p", "stdout", "done\r")
			c.Line("p", "stderr", "\rwarning")
			c.Finished(env("p", coordinator.StatusSucceeded, 0, time.Second, 1))
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			if strings.Contains(got, "\r") || strings.Contains(got, "progress 10%") {
				t.Fatalf("a carriage return or an overdrawn state was printed:\n%q", got)
			}
			for _, w := range []string{"progress 100%\n", "done\n", "warning\n"} {
				if !strings.Contains(got, w) {
					t.Errorf("want %q in:\n%s", w, got)
				}
			}
		})
	}
}

// The output of a module that never finished (the run stopped at once)
// is printed at Close in a group of the style's own, as a finished
// module's would be: in a CI style nothing of it was printed before.
func TestUnfinishedModuleGroupedAtClose(t *testing.T) {
	tests := []struct {
		style Style
		want  []string
	}{
		{StyleGitHub, []string{"::group::output of hangs (it did not finish)\nimportant line\n! err line\n::endgroup::\n"}},
		{StyleGitLab, []string{"section_start:", "_hangs\r\x1b[0Koutput of hangs (it did not finish)\nimportant line\n! err line\n\x1b[0Ksection_end:"}},
		{StyleBuildkite, []string{"--- output of hangs (it did not finish)\nimportant line\n! err line\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.style.String(), func(t *testing.T) {
			var out strings.Builder
			c := New(Options{Style: tt.style, Out: &out, Batch: time.Hour, Now: func() time.Time { return t0 }})
			c.Started("hangs", 1, 0, "h")
			c.Line("hangs", "stdout", "important line")
			c.Line("hangs", "stderr", "err line")
			if strings.Contains(out.String(), "important line") {
				t.Fatalf("printed before the module ended: %q", out.String())
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("after Close:\n%q\nwant it to contain %q", out.String(), w)
				}
			}
		})
	}
}

func TestWorkspacePath(t *testing.T) {
	tests := []struct {
		name, workspace, file, want string
	}{
		{"no workspace", "", "/w/ci/pipeline.hcl", "/w/ci/pipeline.hcl"},
		{"inside", "/w", "/w/ci/pipeline.hcl", "ci/pipeline.hcl"},
		{"at its top", "/w", "/w/pipeline.hcl", "pipeline.hcl"},
		{"outside", "/w", "/elsewhere/pipeline.hcl", "/elsewhere/pipeline.hcl"},
		{"a sibling sharing its prefix", "/w", "/w2/pipeline.hcl", "/w2/pipeline.hcl"},
		{"no file", "/w", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := WorkspacePath(tt.workspace, tt.file); got != tt.want {
				t.Errorf("WorkspacePath(%q, %q) = %q, want %q", tt.workspace, tt.file, got, tt.want)
			}
		})
	}
}

// What another stream writes to the terminal while the live view is on it
// (the host's log lines and notices on standard error) stays on the
// screen above the view: the view is taken down before it and drawn again
// below it, and no line of an old view is left behind.
func TestWriteAsideKeepsOtherLinesAboveTheView(t *testing.T) {
	tests := []struct {
		name  string
		aside string
		want  string
	}{
		{"log line", "2026-03-01T10:00:01Z [INFO]  host: result published: module=a\n", "2026-03-01T10:00:01Z [INFO]  host: result published: module=a"},
		{"notice", "Stopping (interrupt): running modules get up to --grace to stop; a second Ctrl-C stops at once.\n", "Stopping (interrupt): running modules get up to --grace to stop; a second Ctrl-C stops at once."},
		{"no newline", "Error: half a line", "Error: half a line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One terminal, written by two streams.
			var screen bytes.Buffer
			stderr := writerFunc(func(p []byte) (int, error) { return screen.Write(p) })
			clk := &clock{now: t0}
			c := New(Options{Style: StyleLive, Out: &screen, Total: 3, Now: clk.Now, Refresh: -1, Width: func() int { return 200 }})
			c.Started("a", 1, 0, "h")
			c.Started("b", 1, 0, "h")
			clk.add(time.Second)
			c.Line("a", "stdout", "from a")
			if _, err := c.WriteAside(stderr, []byte(tt.aside)); err != nil {
				t.Fatal(err)
			}
			// Redraws after it must not eat it.
			clk.add(time.Second)
			c.Line("b", "stdout", "from b")
			c.Finished(coordinator.Envelope{Module: "a", Status: coordinator.StatusSucceeded, Attempts: 1, DurationMS: 2000})
			c.emit(nil)
			want := []string{
				"a | from a",
				tt.want,
				"b | from b",
				"✔ a succeeded in 2.0s [1/3]",
				"1/3 done, 1 running · 2.0s",
				"  2.0s b on instance 0 (h)",
			}
			got := playTerminal(t, screen.String())
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("screen:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			// After Close it is written as it is.
			if _, err := c.WriteAside(stderr, []byte("after\n")); err != nil {
				t.Fatal(err)
			}
			if got := playTerminal(t, screen.String()); got[len(got)-1] != "after" || len(got) != 5 {
				t.Fatalf("after Close:\n%s", strings.Join(got, "\n"))
			}
		})
	}
}

// On a terminal narrower than the view's lines, every line is still cut
// to fit: one that wrapped would take a row the next redraw does not
// take down.
func TestLiveViewFitsNarrowTerminal(t *testing.T) {
	for _, width := range []int{1, 5, 12, 19} {
		t.Run(strconv.Itoa(width), func(t *testing.T) {
			var out bytes.Buffer
			c := New(Options{Style: StyleLive, Out: &out, Total: 3, Refresh: -1, Width: func() int { return width }})
			c.Started("a-module-with-a-long-name", 1, 0, "host")
			for _, l := range c.view() {
				if w := viewWidth.String(l); w >= max(width, 2) {
					t.Errorf("view line %q is %d cells, the terminal %d", l, w, width)
				}
			}
			c.Close()
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// GitHub shows 10 error annotations for a step (and 10 warnings) and drops
// the rest: past 9 failures, the 10th annotation says how many more
// modules failed and names them.
func TestGitHubAnnotationsWithinWhatGitHubShows(t *testing.T) {
	tests := []struct {
		name             string
		errors, warnings int
		wantLast         string // the last ::error, "" for none
		wantLastWarning  string
	}{
		{"3 failures", 3, 0, "::error title=m02 failed::", ""},
		{"10 failures", 10, 0, "::error title=m09 failed::", ""},
		{"11 failures", 11, 0, "::error title=2 more modules failed::m09, m10. GitHub shows 10", ""},
		{"25 failures and 12 ignored", 25, 12, "::error title=16 more modules failed::m09, m10, m11", "::warning title=3 more modules failed (ignored)::w09, w10, w11. GitHub"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			c := New(Options{Style: StyleGitHub, Out: &out})
			fail := func(name string, ignored bool) {
				c.Started(name, 1, 0, "h")
				e := env(name, coordinator.StatusFailed, 0, time.Second, 1)
				e.IgnoredFailure = ignored
				c.Finished(e)
			}
			for i := range max(tt.errors, tt.warnings) {
				if i < tt.errors {
					fail(fmt.Sprintf("m%02d", i), false)
				}
				if i < tt.warnings {
					fail(fmt.Sprintf("w%02d", i), true)
				}
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			for _, k := range []struct {
				level string
				n     int
				last  string
			}{{"::error ", tt.errors, tt.wantLast}, {"::warning ", tt.warnings, tt.wantLastWarning}} {
				var as []string
				for _, l := range strings.Split(out.String(), "\n") {
					if strings.HasPrefix(l, k.level) {
						as = append(as, l)
					}
				}
				if want := min(k.n, MaxAnnotations); len(as) != want {
					t.Fatalf("%d %s annotations, want %d:\n%s", len(as), k.level, want, strings.Join(as, "\n"))
				}
				if k.last != "" && !strings.HasPrefix(as[len(as)-1], k.last) {
					t.Errorf("last annotation %q, want it to start %q", as[len(as)-1], k.last)
				}
			}
		})
	}
}

// A fleet master's view says where each module it handed to the fleet
// runs, once an instance holds its claim, and that it is queued before;
// its end names the instance too.
func TestFleetMasterViewLocatesModules(t *testing.T) {
	var out bytes.Buffer
	clk := &clock{now: t0}
	c := New(Options{Style: StyleLive, Out: &out, Total: 2, Now: clk.Now, Refresh: -1, Width: func() int { return 60 }})
	claimed := map[string]bool{}
	c.SetLocate(func(m string) (int, string, bool) { return 1, "vm", claimed[m] })
	c.Started("onw", 1, -1, "")
	c.Started("other", 1, -1, "")
	clk.add(time.Second)
	claimed["onw"] = true
	c.relocate() // as its timer does
	c.Line("onw", "stdout", "working")
	screen := playTerminal(t, out.String())
	for _, want := range []string{"  1.0s onw on instance 1 (vm)", "  1.0s other queued for the fleet"} {
		if !slices.Contains(screen, want) {
			t.Errorf("the view lacks %q:\n%s", want, strings.Join(screen, "\n"))
		}
	}
	c.Finished(coordinator.Envelope{Module: "onw", Status: coordinator.StatusSucceeded, Attempts: 1, Instance: 1, Host: "vm", DurationMS: 1000})
	screen = playTerminal(t, out.String())
	if want := "✔ onw succeeded on instance 1 (vm) in 1.0s [1/2]"; !slices.Contains(screen, want) {
		t.Errorf("the screen lacks %q:\n%s", want, strings.Join(screen, "\n"))
	}
	c.Close()
}

// Under GitHub Actions a module's workflow commands work as in a step of
// its own, from stdout and stderr alike, except those that would break
// the host's groups: shown, with a space in front, not obeyed.
func TestGitHubCommandsFromModules(t *testing.T) {
	var out bytes.Buffer
	c := New(Options{Style: StyleGitHub, Out: &out, Total: 1, Now: (&clock{now: t0}).Now, Refresh: -1})
	c.Started("lint", 1, 0, "host")
	for _, l := range []struct{ stream, text string }{
		{"stdout", "::error file=a.go,line=3::unused variable"},
		{"stderr", "::warning::deprecated flag"},
		{"stderr", "plain stderr"},
		{"stdout", "::endgroup::"},
		{"stdout", "::group::mine"},
		{"stderr", "::stop-commands::tok"},
		{"stdout", "::tok::"},
	} {
		c.Line("lint", l.stream, l.text)
	}
	c.Finished(coordinator.Envelope{Module: "lint", Status: coordinator.StatusSucceeded, Attempts: 1})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(out.String(), "\n")
	want := []string{
		"::error file=a.go,line=3::unused variable",
		"::warning::deprecated flag",
		"! plain stderr",
		" ::endgroup::",
		" ::group::mine",
		" ::stop-commands::tok",
		"::tok::",
	}
	i := slices.IndexFunc(got, func(l string) bool { return strings.HasPrefix(l, "::group::") })
	if i < 0 || len(got) < i+1+len(want) || !slices.Equal(got[i+1:i+1+len(want)], want) || got[i+1+len(want)] != "::endgroup::" {
		t.Errorf("output:\n%s\nwant in the group:\n%s", out.String(), strings.Join(want, "\n"))
	}
}

// locate takes the coordinator session's lock, which the session holds
// while it logs, and its log lines come back through WriteAside: the
// console must not call locate holding its own lock.
func TestLocateOutsideTheConsoleLock(t *testing.T) {
	var out bytes.Buffer
	c := New(Options{Style: StyleLive, Out: &out, Total: 1, Refresh: time.Millisecond, Width: func() int { return 60 }})
	var session sync.Mutex
	c.SetLocate(func(string) (int, string, bool) {
		session.Lock()
		defer session.Unlock()
		return 1, "vm", true
	})
	c.Started("onw", 1, -1, "")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 300 {
			session.Lock() // the session logs with its lock held
			_, _ = c.WriteAside(io.Discard, []byte("member joined\n"))
			session.Unlock()
			time.Sleep(100 * time.Microsecond)
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("deadlock: the view's redraw and a log line wait for each other")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}
