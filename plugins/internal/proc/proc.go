// Package proc runs the child commands of first-party plugins (shell, go):
// it starts the command in its own process group, hands every stdout and
// stderr line to the caller while the command runs, and on cancellation
// terminates the whole group (SIGTERM, then SIGKILL after a grace period)
// so that no child or grandchild outlives the module that started it.
//
// On Windows there are no process groups to signal: cancellation kills the
// command's main process only (a Job Object would be needed for its
// children).
package proc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// DefaultKillGrace is how long a cancelled command gets between SIGTERM and
// SIGKILL when Command.KillGrace is zero.
const DefaultKillGrace = 5 * time.Second

// KillGraceWithin is the KillGrace for a command of a module the host
// gives stopGrace to stop once cancelled (sdk.Module.StopGrace): most,
// cut to a quarter of stopGrace. Run may wait up to the kill grace three
// times over (the main process, what is left of its group, pipes held
// by a process that left it), and the result must still reach the host
// before its grace is over, or the host kills the plugin and every
// module in it. A zero stopGrace (not known) leaves most.
func KillGraceWithin(stopGrace, most time.Duration) time.Duration {
	if stopGrace <= 0 {
		return most
	}
	return min(most, stopGrace/4)
}

// MaxLineBytes bounds one output line. Longer lines are delivered in pieces
// of this size so that a command writing megabytes without a newline cannot
// make the plugin hold it all in memory at once.
const MaxLineBytes = 64 * 1024

// Command describes one command to run.
type Command struct {
	// Argv is the program and its arguments. Argv[0] is looked up in PATH
	// (of Env when it sets PATH) unless it contains a slash.
	Argv []string
	// Dir is the working directory; empty means the plugin's own.
	Dir string
	// Env is the complete environment; nil means Environ(): the plugin's
	// environment without the plugin protocol's variables.
	Env []string
	// Stdout and Stderr receive each output line, without its trailing
	// newline, as soon as the line is complete. Each is called from a
	// single goroutine, so calls for one stream never overlap; calls for
	// the two streams may. Nil discards the stream.
	Stdout, Stderr func(line string)
	// StdoutPiece and StderrPiece, when set, get every piece of a line
	// longer than MaxLineBytes but its last, which goes to Stdout or
	// Stderr as the line's end. A caller that passes the output on to a
	// module's stream writes a piece without a newline, so the line
	// reaches the host as one line in pieces (sdk), which the host can
	// join: a secret the cut went through is still masked. When nil,
	// every piece goes to Stdout or Stderr as a line of its own. Each is
	// called from the goroutine of its stream.
	StdoutPiece, StderrPiece func(piece string)
	// StdoutBytes, when set, also gets stdout exactly as the command
	// wrote it (newlines, carriage returns, lines longer than
	// MaxLineBytes whole), in pieces, from the same goroutine as Stdout;
	// a piece is valid only during the call.
	StdoutBytes func([]byte)
	// KillGrace is the time between SIGTERM and SIGKILL on cancellation;
	// zero means DefaultKillGrace.
	KillGrace time.Duration
}

// Exit is how a command ended.
type Exit struct {
	// Code is the exit status, or -1 when a signal ended the command.
	Code int
	// Signal names the signal that ended the command, if one did.
	Signal string
}

// NotFoundError reports that the program could not be found or executed.
type NotFoundError struct {
	Program string
	Err     error
}

func (e *NotFoundError) Error() string {
	if errors.Is(e.Err, os.ErrPermission) {
		return fmt.Sprintf("command %q cannot be run: %v (it is not executable: chmod +x it, or run it through its interpreter, such as [\"sh\", %q])", e.Program, e.Err, e.Program)
	}
	if hasPathSeparator(e.Program) {
		if errors.Is(e.Err, syscall.EISDIR) {
			return fmt.Sprintf("command %q is a directory, not a program to run", e.Program)
		}
		// PATH plays no part in a path.
		return fmt.Sprintf("command %q not found: %v (check the path; a relative one is taken from the module's dir, or the host's working directory without one)", e.Program, e.Err)
	}
	return fmt.Sprintf("command %q not found: %v (check the spelling, that it is installed, and that its directory is on PATH)", e.Program, e.Err)
}

func (e *NotFoundError) Unwrap() error { return e.Err }

// Run runs c to completion and reports how it exited. A non-zero exit is not
// an error: it is reported in Exit. Run returns an error when the command
// could not be started (a *NotFoundError when the program does not exist)
// or when ctx was cancelled, in which case the error wraps ctx.Err() and the
// whole process group has been terminated before Run returns.
//
// When the command's main process exits, anything it left running in its
// process group (background jobs of a script) is terminated too, because a
// module's processes must not outlive the module and because such leftovers
// would keep the output pipes open forever.
func Run(ctx context.Context, c Command) (Exit, error) {
	if len(c.Argv) == 0 || c.Argv[0] == "" {
		return Exit{}, errors.New("no command to run: the argument list is empty")
	}
	grace := c.KillGrace
	if grace <= 0 {
		grace = DefaultKillGrace
	}
	if err := ctx.Err(); err != nil {
		return Exit{}, fmt.Errorf("run %q: %w", c.Argv[0], err)
	}

	// A path is handed to exec as it is: exec's own failure says whether
	// it is there and runnable, and a stat first cost as much of the
	// plugin's CPU per command as reading the command's output. A name is
	// looked up in PATH.
	path := c.Argv[0]
	if !hasPathSeparator(path) {
		var err error
		if path, err = lookPath(c.Argv[0], c.Env); err != nil {
			return Exit{}, &NotFoundError{Program: c.Argv[0], Err: err}
		}
	}
	if c.Dir != "" {
		if st, err := os.Stat(c.Dir); err != nil {
			return Exit{}, fmt.Errorf("run %q: working directory: %w", c.Argv[0], err)
		} else if !st.IsDir() {
			return Exit{}, fmt.Errorf("run %q: working directory %q is not a directory", c.Argv[0], c.Dir)
		}
	}

	// Our own pipes rather than cmd.StdoutPipe: exec.Cmd.Wait closes the
	// read ends as soon as the main process exits, which would drop output
	// still buffered in the pipe.
	outR, outW, err := pipe()
	if err != nil {
		return Exit{}, fmt.Errorf("run %q: create stdout pipe: %w", c.Argv[0], err)
	}
	errR, errW, err := pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return Exit{}, fmt.Errorf("run %q: create stderr pipe: %w", c.Argv[0], err)
	}

	stdin, err := devNull()
	if err != nil {
		outR.Close()
		outW.Close()
		errR.Close()
		errW.Close()
		return Exit{}, fmt.Errorf("run %q: open %s for stdin: %w", c.Argv[0], os.DevNull, err)
	}
	env, err := environ(c)
	if err != nil {
		outR.Close()
		outW.Close()
		errR.Close()
		errW.Close()
		return Exit{}, fmt.Errorf("run %q: %w", c.Argv[0], err)
	}
	// os.StartProcess rather than os/exec: with every descriptor an
	// *os.File already, exec.Cmd only adds work per command (opening
	// /dev/null, copying and de-duplicating the environment, its own
	// bookkeeping), which showed in the shell plugin's profile of a DAG of
	// /bin/true modules.
	proc, err := os.StartProcess(path, c.Argv, &os.ProcAttr{
		Dir: c.Dir,
		Env: env,
		// A module never reads the plugin's stdin.
		Files: []*os.File{stdin, outW, errW},
		// A process group of its own lets us signal the command and
		// everything it started, in one call.
		Sys: sysProcAttr(),
	})
	// The child holds its own copies; ours must go so EOF can arrive.
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		// A path exec could not run is looked up now, where the command
		// runs (Dir): the lookup says more than exec does (a directory,
		// a file without the execute bit, a component that is not a
		// directory), and its failure is a NotFoundError, as it was
		// when the lookup came first.
		if hasPathSeparator(c.Argv[0]) {
			if _, lerr := exec.LookPath(inDir(c.Argv[0], c.Dir)); lerr != nil {
				return Exit{}, &NotFoundError{Program: c.Argv[0], Err: lerr}
			}
		}
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return Exit{}, &NotFoundError{Program: c.Argv[0], Err: err}
		}
		return Exit{}, fmt.Errorf("start %q: %w", c.Argv[0], err)
	}
	running.add(proc.Pid)
	stderrDone := make(chan struct{})
	go func() { defer close(stderrDone); readLines(errR, c.Stderr, c.StderrPiece, nil) }()
	readersDone := make(chan struct{})
	go func() { readLines(outR, c.Stdout, c.StdoutPiece, c.StdoutBytes); <-stderrDone; close(readersDone) }()
	// The wait has a goroutine of its own so that cancellation can
	// interrupt it.
	waited := make(chan waitResult, 1)
	go func() {
		st, err := proc.Wait()
		waited <- waitResult{st, err}
	}()
	var (
		w         waitResult
		cancelled bool
	)
	select {
	case w = <-waited:
	case <-ctx.Done():
		cancelled = true
		w = terminate(proc, grace, waited)
	}
	// The main process is gone. Whatever else is left in its group would
	// hold the pipes open and outlive the module: give it the same
	// SIGTERM, grace period, SIGKILL.
	cleanupGroup(proc, grace)
	running.remove(proc.Pid)
	// The pipes close when the last writer is gone. A process that left
	// the group (setsid) but kept them open is out of reach: stop reading
	// after the grace period so the module can finish.
	select {
	case <-readersDone:
	case <-time.After(grace):
		outR.Close()
		errR.Close()
		<-readersDone
	}
	outR.Close()
	errR.Close()

	exit := exitOf(w.state)
	if cancelled {
		return exit, fmt.Errorf("run %q: stopped because the module was cancelled: %w", c.Argv[0], context.Cause(ctx))
	}
	if w.err != nil {
		return exit, fmt.Errorf("wait for %q: %w", c.Argv[0], w.err)
	}
	return exit, nil
}

// environ is the command's environment as os/exec would pass it: the
// plugin's own when c.Env is nil (with PWD set to Dir when there is one),
// and without duplicate keys, the last value winning, where a C program's
// getenv would find the first.
func environ(c Command) ([]string, error) {
	env := c.Env
	if env == nil {
		env = Environ()
		if c.Dir != "" && runtime.GOOS != "windows" {
			pwd, err := filepath.Abs(c.Dir)
			if err != nil {
				return nil, err
			}
			env = append(env, "PWD="+pwd)
		}
	}
	seen := make(map[string]int, len(env))
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if runtime.GOOS == "windows" {
			k = strings.ToUpper(k)
		}
		if i, dup := seen[k]; dup {
			out[i] = kv
			continue
		}
		seen[k] = len(out)
		out = append(out, kv)
	}
	return out, nil
}

// waitResult is what os.Process.Wait returned.
type waitResult struct {
	state *os.ProcessState
	err   error
}

// devNull is every command's stdin: opened once and shared, since a
// descriptor the children only inherit is never changed by them.
var devNull = sync.OnceValues(func() (*os.File, error) { return os.Open(os.DevNull) })

// terminate asks the command's group to stop, waits up to grace for the
// main process, then kills the group and waits for the main process.
func terminate(p *os.Process, grace time.Duration, waited <-chan waitResult) waitResult {
	signalTerm(p)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case w := <-waited:
		return w
	case <-timer.C:
		signalKill(p)
		return <-waited
	}
}

// cleanupGroup stops what is left of the process group after its leader
// has exited: SIGTERM, up to grace to go, then SIGKILL. In the common case
// the group is already empty and this returns at once.
func cleanupGroup(p *os.Process, grace time.Duration) {
	if !groupAlive(p) {
		return
	}
	signalTerm(p)
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for groupAlive(p) {
		select {
		case <-deadline.C:
			signalKill(p)
			return
		case <-tick.C:
		}
	}
}

func exitOf(ps *os.ProcessState) Exit {
	if ps == nil {
		return Exit{Code: -1}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return Exit{Code: -1, Signal: ws.Signal().String()}
	}
	return Exit{Code: ps.ExitCode()}
}

// lineReaders recycles the line readers' buffers. Each command needs two
// of MaxLineBytes, and allocating them afresh was the shell plugin's
// largest allocation and most of its GC work per module (128 KiB for a
// /bin/true that prints nothing).
var lineReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, MaxLineBytes) }}

// readLines calls fn with each line read from r until EOF or a read error.
// A final line without a newline is delivered too. A line longer than
// MaxLineBytes comes in pieces: each but the last goes to piece when it
// is set, else to fn as a line. raw, when set, gets every byte read, as
// read, before it is split.
func readLines(r io.Reader, fn, piece func(string), raw func([]byte)) {
	br := lineReaders.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() {
		br.Reset(nil) // drop the pipe; the buffer is what is worth keeping
		lineReaders.Put(br)
	}()
	// carry is the start of a UTF-8 character that a piece of a long line
	// would have cut in two: it goes with the next piece instead, so each
	// piece is text on its own.
	var carry []byte
	out := func(b []byte, more bool) {
		if len(carry) > 0 {
			b = append(carry, b...)
			carry = nil
		}
		if more && piece != nil {
			// Not the line's end: a carriage return here is text.
			piece(string(b))
			return
		}
		emit(fn, b)
	}
	// cut is set while a long line is being handed over in pieces: its
	// newline right after a full piece ends it, and is no empty line
	// (but an empty end where pieces go to piece: fn hears it ended).
	cut := false
	for {
		chunk, err := br.ReadSlice('\n')
		if raw != nil && len(chunk) > 0 {
			raw(chunk)
		}
		switch {
		case err == nil:
			if !cut || len(chunk) > 1 || len(carry) > 0 || piece != nil {
				out(chunk[:len(chunk)-1], false)
			}
			cut = false
		case errors.Is(err, bufio.ErrBufferFull):
			// A line longer than the buffer: hand it over in pieces.
			n := runeEnd(chunk)
			rest := append([]byte(nil), chunk[n:]...)
			out(chunk[:n], true)
			carry = rest
			cut = true
		default:
			if len(chunk) > 0 || len(carry) > 0 || (cut && piece != nil) {
				out(chunk, false)
			}
			return
		}
	}
}

// runeEnd is len(b), or where an incomplete UTF-8 character at b's end
// starts.
func runeEnd(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if utf8.FullRune(b[i:]) {
				return len(b)
			}
			return i
		}
	}
	return len(b)
}

func emit(fn func(string), line []byte) {
	if fn != nil {
		fn(strings.TrimSuffix(string(line), "\r"))
	}
}

// lookPath resolves prog the way the shell would, but against the PATH of
// the command's own environment when it sets one.
func lookPath(prog string, env []string) (string, error) {
	if hasPathSeparator(prog) || env == nil || runtime.GOOS == "windows" {
		return exec.LookPath(prog)
	}
	for i := len(env) - 1; i >= 0; i-- {
		if p, ok := strings.CutPrefix(env[i], "PATH="); ok {
			for _, dir := range filepath.SplitList(p) {
				if dir == "" {
					dir = "."
				}
				cand := filepath.Join(dir, prog)
				if st, err := os.Stat(cand); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
					return cand, nil
				}
			}
			return "", fmt.Errorf("%w (PATH=%s)", exec.ErrNotFound, p)
		}
	}
	return exec.LookPath(prog)
}

// inDir is where exec finds the path prog for a command run in dir: a
// relative path is relative to dir.
func inDir(prog, dir string) string {
	if dir == "" || filepath.IsAbs(prog) {
		return prog
	}
	return filepath.Join(dir, prog)
}

// hasPathSeparator reports whether prog is a path rather than a name to
// look up in PATH.
func hasPathSeparator(prog string) bool {
	return strings.ContainsRune(prog, '/') || strings.ContainsRune(prog, os.PathSeparator)
}
