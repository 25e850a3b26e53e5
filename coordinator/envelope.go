package coordinator

import (
	"encoding/json"
	"time"
)

// Status is the outcome of one module.
type Status string

// The outcomes a module can end with (R3.2).
const (
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusSkipped   Status = "skipped"
	StatusCancelled Status = "cancelled"
	StatusTimedOut  Status = "timed_out"
)

// Failed reports whether the status counts as a failure of the module
// (failed or timed out). Skipped and cancelled are not failures of the
// module itself.
func (s Status) Failed() bool { return s == StatusFailed || s == StatusTimedOut }

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusSkipped, StatusCancelled, StatusTimedOut:
		return true
	}
	return false
}

// Error kinds carried in Error.Kind. They let reports and scripts tell
// classes of failure apart without parsing messages.
const (
	ErrorKindModule     = "module"     // the module itself reported failure (non-zero exit, failing test)
	ErrorKindConfig     = "config"     // the module's configuration could not be evaluated or was refused
	ErrorKindPlugin     = "plugin"     // the plugin could not be started or returned something invalid
	ErrorKindCrash      = "crash"      // the plugin process died while running the module
	ErrorKindTimeout    = "timeout"    // the module ran past its timeout
	ErrorKindCancelled  = "cancelled"  // the run was cancelled
	ErrorKindLost       = "lost"       // the instance running the module was lost
	ErrorKindCapability = "capability" // no instance could offer the required capabilities
	ErrorKindEncoding   = "encoding"   // the result could not be encoded or is too large
	// ErrorKindCoordinator is a run's error (never a module's): the
	// coordinator of a fleet could not be reached or was lost.
	ErrorKindCoordinator = "coordinator"
)

// Error describes why a module did not succeed.
type Error struct {
	Message string `json:"message"`
	Kind    string `json:"kind"`
	// Tail is the last lines of the module's stderr or log, when known.
	Tail string `json:"tail,omitempty"`
	// File, Line and Column place a configuration error (kind config)
	// in the pipeline file, when it has a place: the first error's.
	// The message names it too; these are for tools that point at it
	// (a CI's annotations).
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
}

// Envelope is the one record of a module's outcome (R4.1). It is the only
// thing that crosses the plugin boundary and the coordinator, and reports
// are built from envelopes alone.
type Envelope struct {
	// Module is the module's address: NAME, or NAME[key] for a matrix instance.
	Module string `json:"module"`
	Status Status `json:"status"`
	// Type is the result type name the plugin declared, e.g. "shell.exec/v1".
	Type string `json:"type"`
	// Value is the module's result as JSON; null when it produced none.
	Value      json.RawMessage `json:"value"`
	Error      *Error          `json:"error"`
	SkipReason string          `json:"skip_reason"`
	Attempts   int             `json:"attempts"`
	StartedAt  time.Time       `json:"started_at"`
	EndedAt    time.Time       `json:"ended_at"`
	DurationMS int64           `json:"duration_ms"`
	// Instance is the index of the instance that ran the module (0 = master
	// or single machine); Host is that machine's host name.
	Instance      int    `json:"instance"`
	Host          string `json:"host"`
	Plugin        string `json:"plugin"`
	PluginVersion string `json:"plugin_version"`
	// IgnoredFailure marks a failure (or timeout) of a module with
	// ignore_failure: it did not fail the pipeline, and reports show it
	// as a warning rather than an error. Set by the host's scheduler.
	IgnoredFailure bool `json:"ignored_failure,omitempty"`
}
