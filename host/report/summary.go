package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/clipperhouse/displaywidth"
)

// WriteSummary writes the end-of-run summary for a terminal or CI log:
// the table (module, status, duration, attempts, where it ran) with
// failures first; then each failure with its error, log tail and the
// instance that ran it; the skip reasons; and the totals with the wall
// time against the sum of module times.
func WriteSummary(w io.Writer, run *Run) error {
	mods := sorted(run.Modules)
	rows := [][]string{{"MODULE", "STATUS", "DURATION", "ATTEMPTS", "RAN ON"}}
	for _, e := range mods {
		rows = append(rows, []string{e.Module, statusText(e), duration(e), strconv.Itoa(e.Attempts), where(e)})
	}
	if err := writeTable(w, rows); err != nil {
		return err
	}
	for _, e := range mods {
		if !isFailure(e) {
			continue
		}
		fmt.Fprintf(w, "\n%s %s", e.Module, statusText(e))
		if on := where(e); on != "" {
			fmt.Fprintf(w, " on instance %s", on)
		}
		if e.Error != nil {
			fmt.Fprintf(w, ": %s", e.Error.Message)
		}
		fmt.Fprintln(w)
		if e.Error != nil {
			for _, line := range tailLines(e.Error.Tail) {
				fmt.Fprintf(w, "  | %s\n", line)
			}
		}
	}
	first := true
	for _, e := range mods {
		if !ran(e) && e.SkipReason != "" {
			if first {
				fmt.Fprintln(w)
				first = false
			}
			fmt.Fprintf(w, "%s %s: %s\n", e.Module, e.Status, e.SkipReason)
		}
	}
	_, err := fmt.Fprintf(w, "\n%s\n", totalsLine(run))
	return err
}

// totalsLine is the summary's last line: the counts and times.
func totalsLine(run *Run) string {
	t := TotalsOf(run)
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s, %d succeeded, %d failed%s, %d timed out%s, %d skipped, %d cancelled in %s",
		strings.ToUpper(string(run.Status)), count(t.Modules, "module"), t.Succeeded, t.Failed, ignoredNote(t.Failed, t.FailedIgnored),
		t.TimedOut, ignoredNote(t.TimedOut, t.TimedOutIgnored), t.Skipped, t.Cancelled, FormatDuration(t.Wall))
	fmt.Fprintf(&b, " (module time %s", FormatDuration(t.ModuleTime))
	// Below 1 the figure says nothing about parallelism: envelopes time
	// a retried module's last attempt only, and the run's wall time
	// holds the others and the waits between them.
	// A lone module has nothing to run beside.
	// It counts overlap, not a gain: modules that wait for a CPU beside
	// each other (8 at a time on 2 cores) overlap as much as modules
	// that each have one.
	if s := t.Speedup(); s >= 1 && t.Modules > 1 {
		fmt.Fprintf(&b, ", %.1f at a time on average", s)
	}
	b.WriteString(")")
	return b.String()
}

// ignoredNote says how many of n failures ignore_failure kept from
// failing the run, so that a SUCCEEDED line with failures in it explains
// itself.
func ignoredNote(n, ignored int) string {
	switch {
	case ignored == 0:
		return ""
	case ignored == n:
		return " (ignored)"
	}
	return fmt.Sprintf(" (%d ignored)", ignored)
}

// writeTable writes rows as columns two spaces apart, each as wide as its
// widest cell in terminal cells (a CJK character or an emoji takes two,
// where text/tabwriter counts one), without trailing spaces.
func writeTable(w io.Writer, rows [][]string) error {
	var widths []int
	for _, row := range rows {
		for i, cell := range row {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], displaywidth.String(cell))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		var line strings.Builder
		for i, cell := range row {
			line.WriteString(cell)
			if i < len(row)-1 {
				line.WriteString(strings.Repeat(" ", widths[i]-displaywidth.String(cell)+2))
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// count is "1 module", "2 modules".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
