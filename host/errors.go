package host

import (
	"errors"
	"fmt"
	"strings"
)

// Exit codes of the host CLI. Scripts can tell classes of failure apart
// by them; docs/pipeline-reference.md lists them.
const (
	ExitOK          = 0   // the pipeline succeeded (or the command did its job)
	ExitFailed      = 1   // the pipeline ran and failed
	ExitInvalid     = 2   // the pipeline file or the command line is invalid
	ExitPluginStart = 3   // a plugin could not be found or started, or failed checking configs
	ExitCoordinator = 4   // the coordinator could not be reached or was lost
	ExitInterrupted = 130 // cancelled by SIGINT/SIGTERM
)

// ExitError is an error that carries the exit code the CLI should end with.
// Its message has already been shown to the user when Reported is true
// (diagnostics are printed as they are found, with their snippets).
type ExitError struct {
	Code     int
	Err      error
	Reported bool
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode returns the exit code for err: 0 for nil, the carried code for
// an *ExitError, else ExitFailed.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return ExitFailed
}

func exitErrorf(code int, format string, args ...any) *ExitError {
	return &ExitError{Code: code, Err: fmt.Errorf(format, args...)}
}

// invalidFileError is a pipeline file's errors, as reports and CI
// annotations give them: each one's place and summary, secrets masked
// (the terminal got them in full, with snippets).
type invalidFileError struct {
	file string
	errs []placedError
	// selection: the errors are the command line's choice of modules
	// (--only, --skip, --category), not the file's.
	selection bool
}

// placedError is one error of a pipeline file; File is empty when it has
// no place in the file (a --var for no variable).
type placedError struct {
	File         string
	Line, Column int
	Summary      string
	Detail       string
}

func (e placedError) String() string {
	if e.File == "" {
		// Nothing in the file to look at: the detail says what is wrong.
		if e.Detail != "" {
			return e.Summary + ": " + e.Detail
		}
		return e.Summary
	}
	// The detail too: a report is read where the terminal's snippets are
	// not, and a summary alone ("Plugin did not start", "Unsupported
	// argument") does not say what to fix.
	s := fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Summary)
	if d := oneLine(e.Detail, maxDetailRunes); d != "" {
		s += ": " + d
	}
	return s
}

// maxDetailRunes bounds the detail a placed error's line carries: a
// plugin's stderr tail can be long.
const maxDetailRunes = 400

// oneLine is s with its lines joined by spaces, cut to at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return s
}

// maxListedErrors bounds the errors an invalidFileError's message lists:
// a report or an annotation is not the place for hundreds.
const maxListedErrors = 10

func (e *invalidFileError) Error() string {
	var b strings.Builder
	noun := "errors"
	if len(e.errs) == 1 {
		noun = "error"
	}
	where := "in the pipeline file"
	if e.selection {
		where = "in the modules chosen with --only, --skip or --category"
	}
	fmt.Fprintf(&b, "%s: %d %s %s:", e.file, len(e.errs), noun, where)
	for i, pe := range e.errs {
		if i == maxListedErrors {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.errs)-i)
			break
		}
		b.WriteString("\n  " + pe.String())
	}
	return b.String()
}
