// Package report turns a run's result envelopes into what people and tools
// read: the terminal summary and report files. Everything here is built
// from envelopes alone (R4.3), so a distributed run reports exactly like a
// single-machine run.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/modpipe/modpipe/coordinator"
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
}

// Status is a whole run's outcome.
type Status string

// Run outcomes.
const (
	RunSucceeded Status = "succeeded"
	RunFailed    Status = "failed"
	RunCancelled Status = "cancelled"
)

// Formats lists the report formats Write understands.
var Formats = []string{"json"}

// Spec is one `--report FORMAT=PATH` request.
type Spec struct {
	Format string
	Path   string
}

// ParseSpec parses FORMAT=PATH.
func ParseSpec(s string) (Spec, error) {
	format, path, ok := strings.Cut(s, "=")
	if !ok || format == "" || path == "" {
		return Spec{}, fmt.Errorf("--report %q: want FORMAT=PATH, e.g. json=report.json", s)
	}
	for _, f := range Formats {
		if f == format {
			return Spec{Format: format, Path: path}, nil
		}
	}
	return Spec{}, fmt.Errorf("--report %q: unknown format %q (known: %s)", s, format, strings.Join(Formats, ", "))
}

// Write writes the run in the spec's format to its path, creating parent
// folders. The file is written whole or not at all (temp file + rename),
// so a reader never sees half a report.
func Write(spec Spec, run *Run) error {
	if err := os.MkdirAll(filepath.Dir(spec.Path), 0o755); err != nil {
		return fmt.Errorf("write %s report: %w", spec.Format, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(spec.Path), ".report-*")
	if err != nil {
		return fmt.Errorf("write %s report: %w", spec.Format, err)
	}
	defer os.Remove(tmp.Name())
	switch spec.Format {
	case "json":
		err = WriteJSON(tmp, run)
	default:
		err = fmt.Errorf("unknown report format %q", spec.Format)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s report %s: %w", spec.Format, spec.Path, err)
	}
	if err := os.Rename(tmp.Name(), spec.Path); err != nil {
		return fmt.Errorf("write %s report: %w", spec.Format, err)
	}
	return nil
}

// WriteJSON writes the run as indented JSON.
func WriteJSON(w io.Writer, run *Run) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(run)
}

// WriteSummary writes the end-of-run table (module, status, duration,
// attempts, where it ran) followed by every failure with its error and
// log tail, then the totals.
func WriteSummary(w io.Writer, run *Run) error {
	mods := append([]coordinator.Envelope(nil), run.Modules...)
	// Failures first: they are what the reader came for.
	sort.SliceStable(mods, func(i, j int) bool {
		return rank(mods[i].Status) < rank(mods[j].Status)
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MODULE\tSTATUS\tDURATION\tATTEMPTS\tRAN ON")
	for _, e := range mods {
		where := ""
		if e.Host != "" {
			where = fmt.Sprintf("%d (%s)", e.Instance, e.Host)
		}
		dur := ""
		if e.Status != coordinator.StatusSkipped && !(e.Status == coordinator.StatusCancelled && e.Attempts == 0) {
			dur = FormatDuration(time.Duration(e.DurationMS) * time.Millisecond)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", e.Module, e.Status, dur, e.Attempts, where)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var sum time.Duration
	counts := map[coordinator.Status]int{}
	for _, e := range run.Modules {
		counts[e.Status]++
		sum += time.Duration(e.DurationMS) * time.Millisecond
	}
	for _, e := range mods {
		switch {
		case e.Status.Failed() || (e.Status == coordinator.StatusCancelled && e.Attempts > 0):
			fmt.Fprintf(w, "\n%s %s", e.Module, e.Status)
			if e.Error != nil {
				fmt.Fprintf(w, ": %s", e.Error.Message)
			}
			fmt.Fprintln(w)
			if e.Error != nil && e.Error.Tail != "" {
				for _, line := range strings.Split(strings.TrimRight(e.Error.Tail, "\n"), "\n") {
					fmt.Fprintf(w, "  | %s\n", line)
				}
			}
		}
	}
	fmt.Fprintf(w, "\n%s: %d modules, %d succeeded, %d failed, %d timed out, %d skipped, %d cancelled in %s (module time %s)\n",
		strings.ToUpper(string(run.Status)), len(run.Modules),
		counts[coordinator.StatusSucceeded], counts[coordinator.StatusFailed], counts[coordinator.StatusTimedOut],
		counts[coordinator.StatusSkipped], counts[coordinator.StatusCancelled],
		FormatDuration(time.Duration(run.DurationMS)*time.Millisecond), FormatDuration(sum))
	return nil
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
