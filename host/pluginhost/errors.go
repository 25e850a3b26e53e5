package pluginhost

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// StartReason classifies why a plugin could not be started.
type StartReason string

// The reasons a plugin is refused or fails to start.
const (
	ReasonNotFound        StartReason = "not_found"        // no binary at the path
	ReasonChecksum        StartReason = "checksum"         // the binary's sha256 differs from the pinned one
	ReasonHandshake       StartReason = "handshake"        // the binary does not speak go-plugin with our cookie
	ReasonProtocolVersion StartReason = "protocol_version" // it speaks another version of our protocol
	ReasonDescribe        StartReason = "describe"         // it started but described itself wrongly
	ReasonExec            StartReason = "exec"             // the process could not be started or died at once
)

// StartError says why a plugin could not be started, naming the plugin,
// its binary, what was expected and what was found.
type StartError struct {
	Plugin string
	Path   string
	Reason StartReason
	// Expected and Found are filled when the reason is a mismatch
	// (checksum, protocol version).
	Expected, Found string
	// Msg is the explanation, written for the user.
	Msg string
	Err error
}

func (e *StartError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "start plugin %q (%s): %s", e.Plugin, e.Path, e.Msg)
	if e.Expected != "" || e.Found != "" {
		fmt.Fprintf(&b, " (expected %s, found %s)", e.Expected, e.Found)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *StartError) Unwrap() error { return e.Err }

// CrashError is returned by Execute when the plugin process died (or its
// connection broke) while running the module, so there is no result. The
// plugin is restarted for the next call.
type CrashError struct {
	Plugin string
	Path   string
	Module string
	// ExitStatus describes how the process ended, e.g. "exit status 3" or
	// "signal: killed"; empty when it is unknown.
	ExitStatus string
	// StderrTail is the last lines the plugin wrote to its stderr (a
	// panic's message and stack when it panicked).
	StderrTail string
	// KilledAsHung is set when the process did not crash but the host
	// killed it as hung: why (which cancelled module it did not stop).
	// The module of this error was running in it and went with it.
	KilledAsHung string
	// Running lists, sorted, every module the process was running when
	// it died, Module among them: with more than one, any of them may
	// have caused the crash.
	Running []string
	Err     error
}

func (e *CrashError) Error() string {
	if e.KilledAsHung != "" {
		return fmt.Sprintf("module %q stopped: its plugin %q (%s) was killed as hung (%s), with every module running in it; the module itself did nothing wrong", e.Module, e.Plugin, e.Path, e.KilledAsHung)
	}
	msg := fmt.Sprintf("plugin %q (%s) crashed while running module %q", e.Plugin, e.Path, e.Module)
	if others := slices.DeleteFunc(slices.Clone(e.Running), func(m string) bool { return m == e.Module }); len(others) > 0 {
		// The process went down with all of them; nothing says which
		// one brought it down.
		hint := " (see the stderr tail)"
		if strings.TrimSpace(e.StderrTail) == "" {
			hint = " (it wrote nothing to stderr)"
		}
		msg = fmt.Sprintf("plugin %q (%s) crashed while running module %q and %d other%s (%s); any of them may have caused it%s",
			e.Plugin, e.Path, e.Module, len(others), plural(len(others)), quoteAll(others), hint)
	}
	if e.ExitStatus != "" {
		msg += ": " + e.ExitStatus
	}
	if first := firstPanicLine(e.StderrTail); first != "" {
		msg += ": " + first
	}
	return msg
}

func (e *CrashError) Unwrap() error { return e.Err }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func quoteAll(ms []string) string {
	q := make([]string, len(ms))
	for i, m := range ms {
		q[i] = strconv.Quote(m)
	}
	return strings.Join(q, ", ")
}

func firstPanicLine(tail string) string {
	for _, l := range strings.Split(tail, "\n") {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			return l
		}
	}
	return ""
}

// ErrKilledAsHung is wrapped by the error of a cancelled module whose
// plugin did not stop it within the grace period and was killed for it.
var ErrKilledAsHung = errors.New("its plugin was killed as hung")

// ErrClosed is returned by calls on a Plugin after Close.
var ErrClosed = errors.New("plugin is closed")

// Errors a ResultFunc may wrap so that the plugin's sdk can tell the
// cases apart (sdk.ErrNotDependency, sdk.ErrNotFinished).
var (
	ErrNotDependency = errors.New("not a dependency of the calling module")
	ErrNotFinished   = errors.New("dependency has not finished")
)

// ProtocolError means the plugin broke the protocol while running a module
// (say, closed the stream without a result) but its process is alive.
type ProtocolError struct {
	Plugin, Module string
	Msg            string
	Err            error
}

func (e *ProtocolError) Error() string {
	msg := fmt.Sprintf("plugin %q broke the protocol while running module %q: %s", e.Plugin, e.Module, e.Msg)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// diedError is a plugin's death outside a module (checking a config): its
// message says how it ended; the connection's error stays underneath for
// errors.Is, out of the message, where it only named a socket.
type diedError struct {
	msg string
	err error
}

func (e *diedError) Error() string { return e.msg }
func (e *diedError) Unwrap() error { return e.err }
