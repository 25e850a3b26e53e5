package host

import (
	"errors"
	"fmt"
)

// Exit codes of the host CLI. Scripts can tell classes of failure apart
// by them; docs/pipeline-reference.md lists them.
const (
	ExitOK          = 0   // the pipeline succeeded (or the command did its job)
	ExitFailed      = 1   // the pipeline ran and failed
	ExitInvalid     = 2   // the pipeline file or the command line is invalid
	ExitPluginStart = 3   // a plugin could not be found or started
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
