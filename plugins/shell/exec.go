package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/modpipe/modpipe/plugins/internal/proc"
	"github.com/modpipe/modpipe/sdk"
)

// ResultType is the versioned name of the exec kind's result.
const ResultType = "shell.exec/v1"

// MaxStdoutBytes caps the stdout kept in the result. The full output still
// streams to the host; the cap keeps the envelope a sane size.
const MaxStdoutBytes = 1 << 20

// StderrTailLines is how many trailing stderr lines the result and a
// failure carry.
const StderrTailLines = 20

// ExecConfig is the configuration of the exec kind.
type ExecConfig struct {
	Command    []string          `modpipe:"command,optional" doc:"Program and arguments to run, without a shell (argv). Exactly one of command and script is required."`
	Script     string            `modpipe:"script,optional" doc:"Shell script run by /bin/sh -e -c: stops at the first failing command. Exactly one of command and script is required."`
	Env        map[string]string `modpipe:"env,optional" doc:"Environment variables added to the inherited environment."`
	Dir        string            `modpipe:"dir,optional" doc:"Working directory; relative paths are relative to the host's working directory."`
	StdoutJSON bool              `modpipe:"stdout_json,optional" doc:"Parse stdout as JSON into the result's json attribute; invalid JSON, or stdout over 1 MiB, fails the module."`
}

// ExecResult is the value of a finished exec module.
type ExecResult struct {
	// ExitCode is the command's exit status; -1 when a signal ended it.
	ExitCode int `json:"exit_code"`
	// Stdout is the command's standard output without its final newline,
	// at most MaxStdoutBytes of it.
	Stdout string `json:"stdout"`
	// StdoutTruncated says Stdout holds only the first MaxStdoutBytes.
	StdoutTruncated bool `json:"stdout_truncated"`
	// StderrTail is the last StderrTailLines lines of standard error.
	StderrTail string `json:"stderr_tail"`
	// JSON is stdout parsed as JSON when stdout_json is set, else null.
	JSON json.RawMessage `json:"json"`
}

// Validate checks what the schema alone cannot: exactly one of command and
// script.
func (c ExecConfig) Validate() error {
	switch {
	case c.Command != nil && len(c.Command) == 0 && c.Script == "":
		return sdk.AttributeError("command", `the list is empty; it needs the program to run and its arguments, such as ["make", "test"]`)
	case len(c.Command) == 0 && c.Script == "":
		return errors.New(`set either "command" (a list: program and arguments) or "script" (a shell script); neither is set`)
	case len(c.Command) > 0 && c.Script != "":
		return errors.New(`set either "command" or "script", not both`)
	case len(c.Command) > 0 && c.Command[0] == "":
		return sdk.AttributeError("command", `it starts with an empty program name; its first element must be the program to run`)
	case runtime.GOOS == "linux" && len(c.Script) > maxArgBytes:
		return sdk.AttributeError("script", "it is %d bytes, and Linux passes at most %d in one argument (the script is one: /bin/sh -e -c SCRIPT), so it could not start; put it in a file and run that, such as command = [\"sh\", \"-e\", \"build.sh\"]", len(c.Script), maxArgBytes)
	}
	if runtime.GOOS == "linux" {
		for i, a := range c.Command {
			if len(a) > maxArgBytes {
				return sdk.AttributeError("command", "element %d is %d bytes, and Linux passes at most %d in one argument, so it could not start; pass it in a file instead", i, len(a), maxArgBytes)
			}
		}
	}
	return proc.CheckEnvKeys(c.Env)
}

// maxArgBytes is the longest argument Linux's exec takes
// (MAX_ARG_STRLEN, 32 pages with the terminating NUL): a longer one
// fails the start with "argument list too long", which says neither
// which attribute nor what the limit is.
const maxArgBytes = 32*4096 - 1

// argv is the command line the config asks for.
func (c ExecConfig) argv() []string {
	if c.Script != "" {
		return []string{"/bin/sh", "-e", "-c", c.Script}
	}
	return c.Command
}

// environ is the inherited environment plus the configured variables, in a
// stable order so the same config always yields the same environment.
func (c ExecConfig) environ() []string {
	env := proc.Environ()
	keys := make([]string, 0, len(c.Env))
	for k := range c.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+c.Env[k])
	}
	return env
}

// ExitError reports a command that ran and did not exit 0.
type ExitError struct {
	Code   int
	Signal string
	Tail   string
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return "command was killed by signal: " + e.Signal
	}
	return fmt.Sprintf("command failed: exit status %d", e.Code)
}

// Streams are where output lines go while the command runs.
type Streams struct {
	Stdout, Stderr io.Writer
}

// Exec runs the configured command, streaming each output line to s as it
// arrives, and returns the result. The result is returned with every error
// that happens after the command started (a non-zero exit is an
// *ExitError), so the caller can report both.
func Exec(ctx context.Context, cfg ExecConfig, s Streams, killGrace time.Duration) (ExecResult, error) {
	if err := cfg.Validate(); err != nil {
		return ExecResult{}, err
	}
	var (
		stdout    bytes.Buffer
		truncated bool
		tail      = proc.NewTail(StderrTailLines)
		outTail   = proc.NewTail(StderrTailLines)
	)
	cmd := proc.Command{
		Argv:      cfg.argv(),
		Dir:       cfg.Dir,
		Env:       cfg.environ(),
		KillGrace: killGrace,
		Stdout: func(line string) {
			writeLine(s.Stdout, line)
			outTail.Add(line)
		},
		// A line longer than proc.MaxLineBytes is written in pieces with
		// no newline between them, so it stays one line to the host,
		// which then masks a secret that a cut went through.
		StdoutPiece: func(piece string) {
			writePiece(s.Stdout, piece)
			outTail.AddPiece(piece)
		},
		// The result's stdout is the bytes as written, not the lines
		// rejoined: a line over MaxLineBytes streams in pieces, but
		// stays one line here (stdout_json parses it).
		StdoutBytes: func(b []byte) {
			if truncated {
				return
			}
			if stdout.Len()+len(b) > MaxStdoutBytes {
				stdout.Write(b[:MaxStdoutBytes-stdout.Len()])
				truncated = true
				return
			}
			stdout.Write(b)
		},
		Stderr: func(line string) {
			writeLine(s.Stderr, line)
			tail.Add(line)
		},
		StderrPiece: func(piece string) {
			writePiece(s.Stderr, piece)
			tail.AddPiece(piece)
		},
	}
	exit, err := proc.Run(ctx, cmd)
	res := ExecResult{
		ExitCode:        exit.Code,
		Stdout:          trimFinalNewline(stdout.String()),
		StdoutTruncated: truncated,
		StderrTail:      tail.String(),
	}
	// A command that says why it failed on stdout (many test runners
	// and linters do) has that in its error's tail: stderr's last lines,
	// or stdout's when it wrote nothing to stderr.
	errTail := res.StderrTail
	if errTail == "" {
		errTail = outTail.String()
	}
	if err != nil {
		var nf *proc.NotFoundError
		if errors.As(err, &nf) {
			return ExecResult{ExitCode: -1}, err
		}
		// Stopped by its timeout or a cancellation: the tail says where
		// it was. Left to the sdk, the tail would hold stderr only, and
		// be empty for a command that wrote to stdout alone.
		if errTail != "" {
			err = sdk.WithTail(err, errTail)
		}
		return res, err
	}
	if exit.Code != 0 {
		return res, &ExitError{Code: exit.Code, Signal: exit.Signal, Tail: errTail}
	}
	if cfg.StdoutJSON {
		v, err := parseJSON(res.Stdout, truncated)
		if err != nil {
			return res, err
		}
		res.JSON = v
	}
	return res, nil
}

// trimFinalNewline drops the newline (\n or \r\n) that ends most
// commands' output, and nothing else.
func trimFinalNewline(s string) string {
	if t, ok := strings.CutSuffix(s, "\n"); ok {
		return strings.TrimSuffix(t, "\r")
	}
	return s
}

// writeLine writes one line to w. A failing writer (the host went away)
// must not stop the command's output from being collected.
func writeLine(w io.Writer, line string) {
	if w != nil {
		_, _ = io.WriteString(w, line+"\n")
	}
}

// writePiece writes a piece of a line that goes on.
func writePiece(w io.Writer, piece string) {
	if w != nil {
		_, _ = io.WriteString(w, piece)
	}
}

// parseJSON parses stdout for stdout_json, with an error that shows where
// and what went wrong.
func parseJSON(stdout string, truncated bool) (json.RawMessage, error) {
	if truncated {
		return nil, fmt.Errorf("stdout_json: stdout is larger than %d bytes, too large to keep and parse; write the JSON to a file instead or make it smaller", MaxStdoutBytes)
	}
	if strings.TrimSpace(stdout) == "" {
		return nil, errors.New("stdout_json: the command printed nothing on stdout, expected a JSON value")
	}
	if !utf8.ValidString(stdout) {
		return nil, fmt.Errorf("stdout_json: stdout is not valid UTF-8, which JSON must be; convert it first (iconv -t UTF-8) or leave stdout_json off; stdout starts with: %q", head(stdout, 200))
	}
	var v json.RawMessage
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		return nil, fmt.Errorf("stdout_json: stdout is not valid JSON: %v; stdout starts with: %q", err, head(stdout, 200))
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, v); err != nil {
		return nil, fmt.Errorf("stdout_json: compact JSON: %w", err)
	}
	return compact.Bytes(), nil
}

func head(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
