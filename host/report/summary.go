package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteSummary writes the end-of-run summary for a terminal or CI log:
// the table (module, status, duration, attempts, where it ran) with
// failures first; then each failure with its error, log tail and the
// instance that ran it; the skip reasons; and the totals with the wall
// time against the sum of module times.
func WriteSummary(w io.Writer, run *Run) error {
	mods := sorted(run.Modules)
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MODULE\tSTATUS\tDURATION\tATTEMPTS\tRAN ON")
	for _, e := range mods {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", e.Module, statusText(e), duration(e), e.Attempts, where(e))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// tabwriter pads the last column too; a row whose module never ran
	// would end in spaces.
	for _, line := range strings.SplitAfter(table.String(), "\n") {
		if line == "" {
			continue
		}
		if _, err := io.WriteString(w, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return err
		}
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
	fmt.Fprintf(&b, "%s: %d modules, %d succeeded, %d failed, %d timed out, %d skipped, %d cancelled in %s",
		strings.ToUpper(string(run.Status)), t.Modules, t.Succeeded, t.Failed, t.TimedOut, t.Skipped, t.Cancelled,
		FormatDuration(t.Wall))
	fmt.Fprintf(&b, " (module time %s", FormatDuration(t.ModuleTime))
	// Below 1 the figure says nothing about parallelism: envelopes time
	// a retried module's last attempt only, and the run's wall time
	// holds the others and the waits between them.
	if s := t.Speedup(); s >= 1 {
		fmt.Fprintf(&b, ", %.1fx from running in parallel", s)
	}
	b.WriteString(")")
	return b.String()
}
