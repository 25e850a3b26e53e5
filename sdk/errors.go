package sdk

import (
	"errors"
	"fmt"
)

// Error kinds a module's failure can carry in its envelope. They mirror
// the host's kinds; a run function's plain error is ErrorKindModule.
const (
	ErrorKindModule   = "module"   // the module reported failure
	ErrorKindConfig   = "config"   // the config was refused
	ErrorKindCrash    = "crash"    // the run function panicked
	ErrorKindEncoding = "encoding" // the result could not be encoded
)

// Failure is a module failure with an optional tail (the last lines of
// some output worth showing with the error) and kind. Make one with Failf
// or WithTail; a run function may also return any other error.
type Failure struct {
	Message string
	// Kind is the envelope error kind; empty means ErrorKindModule.
	Kind string
	// Tail is shown under the error in reports. Empty means the sdk uses
	// the module's last stderr and log lines.
	Tail string
	err  error
}

func (f *Failure) Error() string { return f.Message }

// Unwrap returns the error the failure wraps, if any.
func (f *Failure) Unwrap() error { return f.err }

// Failf returns an error that fails the module with the formatted message.
// %w verbs wrap as with fmt.Errorf.
func Failf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Failure{Message: err.Error(), err: errors.Unwrap(err)}
}

// WithTail returns err with tail attached: the module's envelope error
// carries it (say, the last lines of a failed command's stderr). A nil err
// stays nil.
func WithTail(err error, tail string) error {
	if err == nil {
		return nil
	}
	var f *Failure
	if errors.As(err, &f) {
		out := *f
		out.Tail = tail
		if out.Message != err.Error() { // err wraps the failure: keep the outer message
			out.Message = err.Error()
			out.err = err
		}
		return &out
	}
	return &Failure{Message: err.Error(), Tail: tail, err: err}
}
