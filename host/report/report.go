// Package report turns a run's result envelopes into what people and tools
// read: the terminal summary and report files (JSON, JUnit XML, Markdown).
// Everything here is built from envelopes alone (R4.3), so a distributed
// run reports exactly like a single-machine run.
package report

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/secrets"
)

// Run is one pipeline run as reported: the JSON report's top level.
type Run struct {
	Pipeline   string                 `json:"pipeline"`
	RunID      string                 `json:"run_id"`
	Status     Status                 `json:"status"`
	StartedAt  time.Time              `json:"started_at"`
	EndedAt    time.Time              `json:"ended_at"`
	DurationMS int64                  `json:"duration_ms"`
	Modules    []coordinator.Envelope `json:"modules"`
	// Error says why the run did not start (status invalid or error):
	// a pipeline file with errors, a plugin that could not start; or,
	// with the modules it ran, why it could not finish (a fleet master
	// that lost its coordinator).
	Error *coordinator.Error `json:"error,omitempty"`
}

// Status is a whole run's outcome.
type Status string

// Run outcomes.
const (
	RunSucceeded Status = "succeeded"
	RunFailed    Status = "failed"
	RunCancelled Status = "cancelled"
	// RunInvalid: the pipeline file has errors; nothing ran.
	RunInvalid Status = "invalid"
	// RunError: the run could not start (a plugin, the coordinator), or
	// could not finish (a fleet master lost its coordinator).
	RunError Status = "error"
)

// Report formats for Spec.Format.
const (
	FormatJSON     = "json"
	FormatJUnit    = "junit"
	FormatMarkdown = "markdown"
)

// Formats lists the report formats Write understands.
var Formats = []string{FormatJSON, FormatJUnit, FormatMarkdown}

// Spec is one `--report FORMAT=PATH` request.
type Spec struct {
	Format string
	Path   string
}

// ParseSpec parses FORMAT=PATH. "md" and "xml" are accepted as aliases of
// markdown and junit.
func ParseSpec(s string) (Spec, error) {
	format, path, ok := strings.Cut(s, "=")
	if !ok || format == "" || path == "" {
		return Spec{}, fmt.Errorf("--report %q: want FORMAT=PATH, e.g. junit=report.xml", s)
	}
	switch format = strings.ToLower(format); format {
	case "md":
		format = FormatMarkdown
	case "xml":
		format = FormatJUnit
	}
	for _, f := range Formats {
		if f == format {
			return Spec{Format: format, Path: path}, nil
		}
	}
	return Spec{}, fmt.Errorf("--report %q: unknown format %q (known: %s)", s, format, strings.Join(Formats, ", "))
}

// Render writes the run in format to w.
func Render(w io.Writer, format string, run *Run) error {
	switch format {
	case FormatJSON:
		return WriteJSON(w, run)
	case FormatJUnit:
		return WriteJUnit(w, run)
	case FormatMarkdown:
		return WriteMarkdown(w, run)
	}
	return fmt.Errorf("unknown report format %q (known: %s)", format, strings.Join(Formats, ", "))
}

// Check reports, before a run, whether Write could write spec's file: not
// a directory, its folder there or creatable, a file creatable in it. It
// creates the missing folders, as Write would at the end, so a report
// that cannot be written is refused before the run rather than lost
// after it.
func Check(spec Spec) error {
	fail := func(err error) error { return fmt.Errorf("--report %s=%s: %w", spec.Format, spec.Path, err) }
	if f := stdStream(spec.Path); f != nil {
		if _, err := f.Stat(); err != nil {
			return fail(fmt.Errorf("the host's %s is not open", f.Name()))
		}
		return nil
	}
	path, inPlace, err := destination(spec.Path)
	if err != nil {
		return fail(err)
	}
	if inPlace {
		return nil // opened as it is at the end
	}
	tmp, err := createNextTo(path)
	if err != nil {
		return fail(err)
	}
	tmp.Close()
	return os.Remove(tmp.Name())
}

// CheckAll is Check for every report of a run, and refuses two reports
// that would write to the same place: the second would replace the first
// (or, on a stream, follow it where no tool could read either).
func CheckAll(specs []Spec) error {
	seen := make(map[string]Spec, len(specs))
	for _, spec := range specs {
		if err := Check(spec); err != nil {
			return err
		}
		key := placeOf(spec.Path)
		if first, dup := seen[key]; dup {
			return fmt.Errorf("--report %s=%s: --report %s=%s writes to the same place; give each report a path of its own", spec.Format, spec.Path, first.Format, first.Path)
		}
		seen[key] = spec
	}
	return nil
}

// placeOf names where a report path ends up, the same for two paths to
// one file or one of the host's streams.
func placeOf(path string) string {
	if f := stdStream(path); f != nil {
		return f.Name()
	}
	if n, ok := fdNumber(path); ok {
		return "/dev/fd/" + strconv.Itoa(n)
	}
	if target, _, err := destination(path); err == nil {
		path = target
	}
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// stdStream is the host's own stdout or stderr when path names it: "-",
// /dev/stdout, /dev/stderr, or descriptor 1 or 2 under /dev/fd or
// /proc/self/fd. The report goes to the stream the host holds, after what
// it printed there, as a shell's > would have it: reopened by its name,
// a pipe's /proc link names no file, and a file starts over at its
// beginning, over the console's output.
func stdStream(path string) *os.File {
	switch path {
	case "-", "/dev/stdout":
		return os.Stdout
	case "/dev/stderr":
		return os.Stderr
	}
	switch n, _ := fdNumber(path); n {
	case 1:
		return os.Stdout
	case 2:
		return os.Stderr
	}
	return nil
}

// fdNumber is the descriptor a /dev/fd/N or /proc/self/fd/N path names (a
// shell's >(...) passes one).
func fdNumber(path string) (int, bool) {
	for _, dir := range []string{"/dev/fd/", "/proc/self/fd/"} {
		if rest, ok := strings.CutPrefix(path, dir); ok {
			if n, err := strconv.Atoi(rest); err == nil && n >= 0 {
				return n, true
			}
		}
	}
	return 0, false
}

// destination is where a report for path goes: the file a symlink names
// (a symlink stays one), written in place (inPlace) if it is a device, a
// FIFO or a terminal, or one of the host's descriptors (/dev/fd/N, a
// shell's >(...)), as a shell's > would, rather than replaced by a file
// of the same name. A directory is an error.
func destination(path string) (_ string, inPlace bool, _ error) {
	if n, ok := fdNumber(path); ok {
		// Its link names the descriptor's file, or nothing for a pipe
		// (pipe:[N]); opened by this name it is the descriptor's own.
		st, err := os.Stat(path)
		switch {
		case err != nil:
			return "", false, fmt.Errorf("descriptor %d is not open in the host", n)
		case hostsOwn(n):
			return "", false, fmt.Errorf("descriptor %d was not given to the host (it is one the host opened itself); open it for the host, as in 3>report.json", n)
		case st.IsDir():
			return "", false, errors.New("it is a directory")
		}
		return path, true, nil
	}
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	} else {
		path = danglingTarget(path)
	}
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		if st.IsDir() {
			return "", false, errors.New("it is a directory")
		}
		return path, true, nil
	}
	return path, false, nil
}

// danglingTarget is the file a symlink whose target does not exist yet
// names (following links to links), so that the report is written there
// and the link stays one; path itself when it is no symlink.
func danglingTarget(path string) string {
	for range 40 { // the kernel's own limit on links followed
		st, err := os.Lstat(path)
		if err != nil || st.Mode()&os.ModeSymlink == 0 {
			return path
		}
		target, err := os.Readlink(path)
		if err != nil {
			return path
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(path), target)
		}
		path = target
	}
	return path
}

// createNextTo creates a temporary file in path's folder, creating the
// folder if it is missing.
func createNextTo(path string) (*os.File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return os.CreateTemp(dir, ".report-*")
}

// Write writes the run in the spec's format to its path, creating parent
// folders. The file is written whole or not at all (temp file + rename),
// so a reader never sees half a report.
func Write(spec Spec, run *Run) error {
	fail := func(err error) error { return fmt.Errorf("write %s report %s: %w", spec.Format, spec.Path, err) }
	if f := stdStream(spec.Path); f != nil {
		if err := Render(f, spec.Format, run); err != nil {
			return fail(err)
		}
		return nil
	}
	path, inPlace, err := destination(spec.Path)
	if err != nil {
		return fail(err)
	}
	if inPlace {
		// Appending: a descriptor's file opened anew starts at its
		// beginning, and a device or pipe does not mind.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return fail(err)
		}
		err = Render(f, spec.Format, run)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fail(err)
		}
		return nil
	}
	// A file is written whole or not at all: into a temporary file next
	// to it, renamed over it once complete.
	tmp, err := createNextTo(path)
	if err != nil {
		return fail(err)
	}
	defer os.Remove(tmp.Name())
	err = Render(tmp, spec.Format, run)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	// CreateTemp makes the file 0600; a report is for everyone to read.
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fail(err)
	}
	return nil
}

// AppendMarkdown appends the run's Markdown report to the file at path
// (GitHub's $GITHUB_STEP_SUMMARY, which other commands of the step may
// append to as well), in what the file leaves of MarkdownLimit: GitHub
// drops a step summary over 1 MiB whole.
func AppendMarkdown(path string, run *Run) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("append the summary to %s: %w", path, err)
	}
	limit := MarkdownLimit
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		// Over the limit already, the step's summary is lost anyway;
		// what is written is the heading and the totals at least.
		limit = max(MarkdownLimit-int(min(st.Size(), MarkdownLimit)), minMarkdownLimit)
	}
	err = writeMarkdown(f, run, limit)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append the summary to %s: %w", path, err)
	}
	return nil
}

// minMarkdownLimit is the least room AppendMarkdown writes in.
const minMarkdownLimit = 16 << 10

// Masked returns a copy of run with every secret m knows replaced in the
// envelopes (see MaskEnvelope) and the run's error, so reports never
// carry them (R7.4). run itself is left as it is.
func (run *Run) Masked(m *secrets.Masker) *Run {
	out := *run
	if m.Empty() {
		return &out
	}
	out.Modules = make([]coordinator.Envelope, len(run.Modules))
	for i, e := range run.Modules {
		out.Modules[i] = MaskEnvelope(e, m)
	}
	if run.Error != nil {
		err := *run.Error
		err.Message = m.String(err.Message)
		err.Tail = m.String(err.Tail)
		out.Error = &err
	}
	return &out
}

// MaskEnvelope returns e with every secret m knows replaced in its
// address (a matrix value can be one), error text, log tail, skip reason
// and value.
func MaskEnvelope(e coordinator.Envelope, m *secrets.Masker) coordinator.Envelope {
	if m.Empty() {
		return e
	}
	e.Module = m.String(e.Module)
	if e.Error != nil {
		err := *e.Error
		err.Message = m.String(err.Message)
		err.Tail = m.String(err.Tail)
		e.Error = &err
	}
	e.SkipReason = m.String(e.SkipReason)
	e.Value = m.JSON(e.Value)
	return e
}

// Totals are a run's counts and times, shared by every rendering.
type Totals struct {
	Modules   int
	Succeeded int
	Failed    int
	TimedOut  int
	Skipped   int
	Cancelled int
	// FailedIgnored and TimedOutIgnored are the failures and timeouts
	// among Failed and TimedOut that ignore_failure kept from failing
	// the run.
	FailedIgnored   int
	TimedOutIgnored int
	// Wall is the run's duration; ModuleTime is the sum of its modules'
	// durations: their ratio is the speedup running the graph in
	// parallel gave.
	Wall       time.Duration
	ModuleTime time.Duration
}

// Speedup is ModuleTime / Wall, or 0 when the run took no time.
func (t Totals) Speedup() float64 {
	if t.Wall <= 0 {
		return 0
	}
	return float64(t.ModuleTime) / float64(t.Wall)
}

// TotalsOf counts run's modules by status and adds up their times.
func TotalsOf(run *Run) Totals {
	t := Totals{Modules: len(run.Modules), Wall: time.Duration(run.DurationMS) * time.Millisecond}
	for _, e := range run.Modules {
		switch e.Status {
		case coordinator.StatusSucceeded:
			t.Succeeded++
		case coordinator.StatusFailed:
			t.Failed++
			if e.IgnoredFailure {
				t.FailedIgnored++
			}
		case coordinator.StatusTimedOut:
			t.TimedOut++
			if e.IgnoredFailure {
				t.TimedOutIgnored++
			}
		case coordinator.StatusSkipped:
			t.Skipped++
		case coordinator.StatusCancelled:
			t.Cancelled++
		}
		t.ModuleTime += time.Duration(e.DurationMS) * time.Millisecond
	}
	return t
}

// sorted returns the envelopes failures first, then cancelled, skipped
// and succeeded, keeping the run's order within each: failures are what
// the reader came for.
func sorted(envs []coordinator.Envelope) []coordinator.Envelope {
	mods := append([]coordinator.Envelope(nil), envs...)
	sort.SliceStable(mods, func(i, j int) bool {
		return rank(mods[i].Status) < rank(mods[j].Status)
	})
	return mods
}

func rank(s coordinator.Status) int {
	switch s {
	case coordinator.StatusFailed, coordinator.StatusTimedOut:
		return 0
	case coordinator.StatusCancelled:
		return 1
	case coordinator.StatusSkipped:
		return 2
	}
	return 3
}

// ran reports whether the module was started at all: a skipped module and
// one cancelled before it started have no duration nor place to show.
func ran(e coordinator.Envelope) bool {
	return e.Status != coordinator.StatusSkipped && !(e.Status == coordinator.StatusCancelled && e.Attempts == 0)
}

// isFailure reports whether e belongs in the failures section: it failed,
// timed out, or was cancelled while running.
// statusText is e's status as reports show it: "failed (ignored)" for
// a failure ignore_failure let pass.
func statusText(e coordinator.Envelope) string {
	if e.IgnoredFailure {
		return string(e.Status) + " (ignored)"
	}
	return string(e.Status)
}

func isFailure(e coordinator.Envelope) bool {
	return e.Status.Failed() || (e.Status == coordinator.StatusCancelled && e.Attempts > 0)
}

// where names the instance and host that ran e, or "" when none did.
func where(e coordinator.Envelope) string {
	if e.Host == "" || !ran(e) {
		return ""
	}
	return fmt.Sprintf("%d (%s)", e.Instance, e.Host)
}

// duration is e's duration for people, or "" when it never ran.
func duration(e coordinator.Envelope) string {
	if !ran(e) {
		return ""
	}
	return FormatDuration(time.Duration(e.DurationMS) * time.Millisecond)
}

// tailLines splits a log tail into its lines, without a trailing empty
// one, each as a terminal would show it (FinalText).
func tailLines(tail string) []string {
	tail = strings.TrimRight(tail, "\r\n")
	if tail == "" {
		return nil
	}
	lines := strings.Split(tail, "\n")
	for i, l := range lines {
		lines[i] = FinalText(l)
	}
	return lines
}

// FinalText is what a terminal would show of a line that returns the
// cursor with \r to draw over itself (a progress counter): the text after
// the last \r that ends none of it (a \r\n line end goes). Printed as it
// is, the \r would move the cursor back over a prefix, and in Markdown
// or XML it becomes a line break of its own.
func FinalText(line string) string {
	line = strings.TrimRight(line, "\r")
	if i := strings.LastIndexByte(line, '\r'); i >= 0 {
		return line[i+1:]
	}
	return line
}

// FormatDuration renders d for people: 850ms, 12.3s, 4m05s.
func FormatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	default:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
}
