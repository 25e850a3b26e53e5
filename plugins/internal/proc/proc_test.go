//go:build unix

package proc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// collector gathers the lines of one run.
type collector struct {
	mu     sync.Mutex
	stdout []string
	stderr []string
}

func (c *collector) cmd(argv ...string) Command {
	return Command{
		Argv:   argv,
		Stdout: func(l string) { c.mu.Lock(); c.stdout = append(c.stdout, l); c.mu.Unlock() },
		Stderr: func(l string) { c.mu.Lock(); c.stderr = append(c.stderr, l); c.mu.Unlock() },
	}
}

func TestRunOutputAndExit(t *testing.T) {
	long := strings.Repeat("x", MaxLineBytes+10)
	tests := []struct {
		name       string
		script     string
		wantCode   int
		wantSignal string
		wantOut    []string
		wantErr    []string
	}{
		{name: "ok", script: "echo one; echo two; echo oops >&2", wantOut: []string{"one", "two"}, wantErr: []string{"oops"}},
		{name: "exit code", script: "echo before; exit 7", wantCode: 7, wantOut: []string{"before"}},
		{name: "no trailing newline", script: "printf 'a\\nb'", wantOut: []string{"a", "b"}},
		{name: "crlf", script: "printf 'a\\r\\n'", wantOut: []string{"a"}},
		{name: "empty lines kept", script: "printf 'a\\n\\nb\\n'", wantOut: []string{"a", "", "b"}},
		{name: "long line split", script: "printf '%s\\n' " + long, wantOut: []string{long[:MaxLineBytes], long[MaxLineBytes:]}},
		{name: "signal", script: "kill -9 $$", wantCode: -1, wantSignal: "killed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c collector
			exit, err := Run(context.Background(), c.cmd("/bin/sh", "-c", tt.script))
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if exit.Code != tt.wantCode || exit.Signal != tt.wantSignal {
				t.Errorf("exit = %+v, want code %d signal %q", exit, tt.wantCode, tt.wantSignal)
			}
			if !equal(c.stdout, tt.wantOut) {
				t.Errorf("stdout = %q, want %q", short(c.stdout), short(tt.wantOut))
			}
			if !equal(c.stderr, tt.wantErr) {
				t.Errorf("stderr = %q, want %q", c.stderr, tt.wantErr)
			}
		})
	}
}

func TestRunDirAndEnv(t *testing.T) {
	dir := t.TempDir()
	var c collector
	cmd := c.cmd("/bin/sh", "-c", `pwd; echo "$GREETING"`)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GREETING=hi there")
	if _, err := Run(context.Background(), cmd); err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(dir)
	if want := []string{real, "hi there"}; !equal(c.stdout, want) {
		t.Errorf("stdout = %q, want %q", c.stdout, want)
	}
}

// TestRunRelativeToDir: a path relative to Dir runs from Dir, as
// `cd DIR && ./script` would, whether or not the plugin's own directory
// has a file of that name.
func TestRunRelativeToDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.sh"), []byte("#!/bin/sh\necho hello from dir\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var c collector
	cmd := c.cmd("./hello.sh")
	cmd.Dir = dir
	if _, err := Run(context.Background(), cmd); err != nil {
		t.Fatal(err)
	}
	if want := []string{"hello from dir"}; !equal(c.stdout, want) {
		t.Errorf("stdout = %q, want %q", c.stdout, want)
	}
}

// TestRunStartErrorsInDir: a relative path exec cannot run is explained
// from Dir, where it was looked for, and a path through a file is a
// NotFoundError as a missing one is.
func TestRunStartErrorsInDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "noexec.sh"), []byte("echo hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		argv0    string
		contains string
	}{
		{"a directory in dir", "./adir", "is a directory"},
		{"not executable in dir", "./noexec.sh", "cannot be run: "},
		{"missing in dir", "./missing.sh", "not found"},
		{"through a file", "/bin/true/", "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), Command{Argv: []string{tt.argv0}, Dir: dir})
			var nf *NotFoundError
			if !errors.As(err, &nf) {
				t.Fatalf("Run = %v, want a NotFoundError", err)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q does not contain %q", err, tt.contains)
			}
		})
	}
}

func TestRunStartErrors(t *testing.T) {
	emptyPath := t.TempDir()
	script := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(script, []byte("echo hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		cmd      Command
		notFound bool
		contains string
	}{
		{name: "not on PATH", cmd: Command{Argv: []string{"modpipe-no-such-command"}}, notFound: true, contains: `"modpipe-no-such-command" not found`},
		{name: "absolute missing", cmd: Command{Argv: []string{"/no/such/binary"}}, notFound: true, contains: `"/no/such/binary" not found: exec: "/no/such/binary": stat /no/such/binary: no such file or directory (check the path;`},
		{name: "a directory", cmd: Command{Argv: []string{emptyPath}}, notFound: true, contains: fmt.Sprintf("command %q is a directory, not a program to run", emptyPath)},
		{name: "PATH from env", cmd: Command{Argv: []string{"sh"}, Env: []string{"PATH=" + emptyPath}}, notFound: true, contains: "executable file not found in $PATH (PATH=" + emptyPath + ")"},
		{name: "not executable", cmd: Command{Argv: []string{script}}, notFound: true, contains: "cannot be run: "},
		{name: "missing dir", cmd: Command{Argv: []string{"/bin/true"}, Dir: "/no/such/dir"}, contains: "working directory"},
		{name: "empty argv", cmd: Command{}, contains: "argument list is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), tt.cmd)
			if err == nil {
				t.Fatal("Run succeeded, want an error")
			}
			var nf *NotFoundError
			if got := errors.As(err, &nf); got != tt.notFound {
				t.Errorf("NotFoundError = %v, want %v (err: %v)", got, tt.notFound, err)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q does not contain %q", err, tt.contains)
			}
		})
	}
}

// TestRunStreamsLive proves lines reach the caller while the command is
// still running: the script blocks until the test, having seen its first
// line, creates a file.
func TestRunStreamsLive(t *testing.T) {
	gate := filepath.Join(t.TempDir(), "gate")
	seen := make(chan struct{})
	var once sync.Once
	var got []string
	cmd := Command{
		Argv: []string{"/bin/sh", "-c", `echo waiting; while [ ! -e "$1" ]; do sleep 0.01; done; echo released`, "sh", gate},
		Stdout: func(l string) {
			got = append(got, l)
			once.Do(func() { close(seen) })
		},
	}
	done := make(chan error, 1)
	go func() { _, err := Run(context.Background(), cmd); done <- err }()
	select {
	case <-seen:
	case err := <-done:
		t.Fatalf("Run ended before the first line was seen: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("no line streamed within a minute (deadlock guard)")
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if want := []string{"waiting", "released"}; !equal(got, want) {
		t.Errorf("stdout = %q, want %q", got, want)
	}
}

func TestRunCancelKillsGroup(t *testing.T) {
	tests := []struct {
		name   string
		script string
	}{
		// The child sleeps in the background while the shell waits.
		{name: "sigterm", script: `sleep 1000 & echo $!; wait`},
		// Everything ignores SIGTERM, so only SIGKILL ends it.
		{name: "sigterm ignored", script: `trap '' TERM; sleep 1000 & echo $!; wait; wait`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pids := make(chan int, 1)
			cmd := Command{
				Argv:      []string{"/bin/sh", "-c", tt.script},
				KillGrace: 200 * time.Millisecond,
				Stdout: func(l string) {
					if pid, err := strconv.Atoi(l); err == nil {
						pids <- pid
					}
				},
			}
			done := make(chan error, 1)
			go func() { _, err := Run(ctx, cmd); done <- err }()
			var child int
			select {
			case child = <-pids:
			case err := <-done:
				t.Fatalf("Run ended early: %v", err)
			case <-time.After(time.Minute):
				t.Fatal("child pid not reported (deadlock guard)")
			}
			if !processAlive(child) {
				t.Fatalf("child %d not running before cancel", child)
			}
			cancel()
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				t.Fatal("Run did not return after cancel (deadlock guard)")
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
			waitGone(t, child)
		})
	}
}

// TestRunReapsLeftovers: a script that exits leaving a background job must
// not leave that job running.
func TestRunReapsLeftovers(t *testing.T) {
	var child int
	cmd := Command{
		Argv:      []string{"/bin/sh", "-c", `sleep 1000 >/dev/null 2>&1 & echo $!`},
		KillGrace: 200 * time.Millisecond,
		Stdout:    func(l string) { child, _ = strconv.Atoi(l) },
	}
	exit, err := Run(context.Background(), cmd)
	if err != nil || exit.Code != 0 {
		t.Fatalf("Run = %+v, %v; want clean exit", exit, err)
	}
	if child == 0 {
		t.Fatal("child pid not reported")
	}
	waitGone(t, child)
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return syscall.Kill(pid, 0) == nil && !errors.Is(err, os.ErrNotExist)
	}
	// The state follows the parenthesised command name.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// waitGone waits (bounded, as a deadlock guard only) for pid to disappear:
// a SIGKILLed process may take a moment to be torn down by the kernel.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			exec.Command("kill", "-9", strconv.Itoa(pid)).Run()
			t.Fatalf("child process %d still running after Run returned", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func short(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		if len(l) > 40 {
			l = l[:20] + "..." + strconv.Itoa(len(l))
		}
		out[i] = l
	}
	return out
}

func TestTail(t *testing.T) {
	tests := []struct {
		name string
		n    int
		add  []string
		want []string
	}{
		{name: "empty", n: 3, want: []string{}},
		{name: "partial", n: 3, add: []string{"a", "b"}, want: []string{"a", "b"}},
		{name: "exactly full", n: 3, add: []string{"a", "b", "c"}, want: []string{"a", "b", "c"}},
		{name: "wrapped", n: 3, add: []string{"a", "b", "c", "d", "e"}, want: []string{"c", "d", "e"}},
		{name: "long line cut", n: 1, add: []string{strings.Repeat("y", MaxTailLineBytes+1)}, want: []string{strings.Repeat("y", MaxTailLineBytes) + " [... 1 more byte of this line not kept in the tail]"}},
		{name: "cut at a character", n: 1, add: []string{strings.Repeat("y", MaxTailLineBytes-1) + "é" + "z"}, want: []string{strings.Repeat("y", MaxTailLineBytes-1) + " [... 3 more bytes of this line not kept in the tail]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tail := NewTail(tt.n)
			for _, l := range tt.add {
				tail.Add(l)
			}
			if got := tail.Lines(); !equal(got, tt.want) {
				t.Errorf("Lines() = %q, want %q", short(got), short(tt.want))
			}
			if got, want := tail.String(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("String() = %q, want %q", got, want)
			}
		})
	}
}

// TestRunEscapedChildDoesNotHang: a child that leaves the process group
// (setsid) but keeps stdout open cannot be signalled through the group;
// Run must still return once the grace period is over.
func TestRunEscapedChildDoesNotHang(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("setsid not installed")
	}
	var child int
	done := make(chan struct{})
	var exit Exit
	var err error
	go func() {
		defer close(done)
		exit, err = Run(context.Background(), Command{
			Argv:      []string{"/bin/sh", "-c", `setsid sleep 1000 & echo $!`},
			KillGrace: 200 * time.Millisecond,
			Stdout:    func(l string) { child, _ = strconv.Atoi(l) },
		})
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Run hung on a child that escaped the process group (deadlock guard)")
	}
	if child != 0 {
		defer syscall.Kill(child, syscall.SIGKILL)
	}
	if err != nil || exit.Code != 0 {
		t.Errorf("Run = %+v, %v; want a clean exit", exit, err)
	}
	if child == 0 {
		t.Error("the child's pid was not read before the pipes were closed")
	}
}

func TestEnvironLastValueWins(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cmd  Command
		want map[string]string
	}{
		{name: "duplicate key", cmd: Command{Env: []string{"A=1", "B=2", "A=3"}}, want: map[string]string{"A": "3", "B": "2"}},
		{name: "inherited with PWD", cmd: Command{Dir: dir}, want: map[string]string{"PWD": dir}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := environ(tt.cmd)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, kv := range env {
				k, v, _ := strings.Cut(kv, "=")
				if _, dup := got[k]; dup {
					t.Fatalf("key %s twice in %q", k, env)
				}
				got[k] = v
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

// A line longer than MaxLineBytes comes in pieces, each cut between two
// characters (each piece valid UTF-8), and StdoutBytes gets it exactly.
func TestLongLinePiecesAreText(t *testing.T) {
	line := strings.Repeat("€", MaxLineBytes/3+100) // 3 bytes each: a cut at MaxLineBytes would split one
	var pieces []string
	var raw []byte
	readLines(strings.NewReader(line+"\r\n"), func(s string) { pieces = append(pieces, s) }, nil, func(b []byte) { raw = append(raw, b...) })
	if len(pieces) < 2 {
		t.Fatalf("%d pieces, want the line in several", len(pieces))
	}
	for i, p := range pieces {
		if !utf8.ValidString(p) {
			t.Errorf("piece %d is not valid UTF-8 (%d bytes)", i, len(p))
		}
	}
	if strings.Join(pieces, "") != line {
		t.Error("the pieces do not make the line")
	}
	if string(raw) != line+"\r\n" {
		t.Errorf("raw bytes: %d, want the %d written", len(raw), len(line)+2)
	}
}

// A long line whose end falls on a piece's end comes as its pieces, with
// no empty line after them that the command never wrote.
func TestLongLineEndingOnAPiece(t *testing.T) {
	line := strings.Repeat("x", 2*MaxLineBytes)
	var pieces []string
	readLines(strings.NewReader(line+"\nnext\n\n"), func(s string) { pieces = append(pieces, s) }, nil, nil)
	if len(pieces) != 4 || pieces[0]+pieces[1] != line || pieces[2] != "next" || pieces[3] != "" {
		lens := make([]int, len(pieces))
		for i, p := range pieces {
			lens[i] = len(p)
		}
		t.Errorf("pieces of lengths %v, want %d, %d, then \"next\" and the empty line written", lens, MaxLineBytes, MaxLineBytes)
	}
}

// The kill grace fits in the host's: a quarter of it at most.
func TestKillGraceWithin(t *testing.T) {
	tests := []struct {
		name                  string
		stopGrace, most, want time.Duration
	}{
		{"host did not say", 0, 3 * time.Second, 3 * time.Second},
		{"long host grace keeps the plugin's own", 60 * time.Second, 3 * time.Second, 3 * time.Second},
		{"default --grace", 10 * time.Second, 3 * time.Second, 2500 * time.Millisecond},
		{"short --grace", time.Second, 3 * time.Second, 250 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KillGraceWithin(tt.stopGrace, tt.most); got != tt.want {
				t.Errorf("KillGraceWithin(%s, %s) = %s, want %s", tt.stopGrace, tt.most, got, tt.want)
			}
		})
	}
}

// With piece set, a long line's pieces but its last go there, untrimmed,
// and its end (empty when the line ends on a piece) goes to fn, so a
// caller can pass the line on as one.
func TestLongLinePiecesToPiece(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string // P: a piece (its length), L: a line
	}{
		{"short lines", "a\r\nb\n", []string{"L a", "L b"}},
		{"long line", strings.Repeat("x", MaxLineBytes+5) + "\r\nnext\n", []string{"P 65536", "L xxxxx", "L next"}},
		{"ends on a piece", strings.Repeat("x", 2*MaxLineBytes) + "\nnext\n", []string{"P 65536", "P 65536", "L ", "L next"}},
		{"carriage return inside", strings.Repeat("x", MaxLineBytes-1) + "\rx\n", []string{"P 65536", "L x"}},
		{"ends on a piece at EOF", strings.Repeat("x", MaxLineBytes), []string{"P 65536", "L "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			readLines(strings.NewReader(tt.input),
				func(s string) { got = append(got, "L "+s) },
				func(s string) { got = append(got, "P "+strconv.Itoa(len(s))) }, nil)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// A long line given to a Tail in pieces is kept as one line, cut as a
// whole line is.
func TestTailJoinsPieces(t *testing.T) {
	tests := []struct {
		name   string
		pieces []string
		end    string
		want   string
	}{
		{"short", []string{"ab", "cd"}, "e", "abcde"},
		{"long", []string{strings.Repeat("a", 3000), "secret"}, " end", strings.Repeat("a", MaxTailLineBytes) + " [... 962 more bytes of this line not kept in the tail]"},
		{"first piece short", []string{"ab"}, strings.Repeat("c", 3000), "ab" + strings.Repeat("c", MaxTailLineBytes-2) + " [... 954 more bytes of this line not kept in the tail]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tail := NewTail(3)
			tail.Add("before")
			for _, p := range tt.pieces {
				tail.AddPiece(p)
			}
			tail.Add(tt.end)
			tail.Add("after")
			if got, want := tail.Lines(), []string{"before", tt.want, "after"}; fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
				t.Errorf("lines %q, want %q", got, want)
			}
		})
	}
}
