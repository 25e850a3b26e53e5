package report

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/modpipe/modpipe/coordinator"
)

// MarkdownLimit is the most a Markdown report takes, in bytes: GitHub
// refuses a step summary over 1 MiB and shows none of it, and a summary
// too long to read says less than one cut short.
const MarkdownLimit = 1 << 20

// Caps on one failure in the Markdown report: its message, and its log
// tail, of which the last lines are kept.
const (
	mdMessageBytes = 4 << 10
	mdTailBytes    = 16 << 10
	mdTailLines    = 50
)

// mdReserve is the part of the limit kept for the notes on what was left
// out; each note is bounded well below it.
const mdReserve = 4 << 10

// WriteMarkdown writes the run as GitHub-flavoured Markdown: a heading
// with the outcome, the table (failures first), each failure with its
// error and log tail in a collapsed block, skip reasons, and the totals.
// It is what goes to $GITHUB_STEP_SUMMARY and what `--report markdown`
// writes (a GitLab or Buildkite job can attach it as an annotation). It
// takes at most MarkdownLimit bytes (see writeMarkdown).
func WriteMarkdown(w io.Writer, run *Run) error {
	return writeMarkdown(w, run, MarkdownLimit)
}

// writeMarkdown writes the Markdown report in at most limit bytes. Each
// failure's message and tail are cut (the tail keeps its last lines);
// then the table's rows, the failures and the skip reasons are written
// while they fit, and a note says how many of each were left out and
// where to find them: the job's log and the JSON and JUnit reports
// have them all.
func writeMarkdown(w io.Writer, run *Run, limit int) error {
	mods := sorted(run.Modules)
	name := run.Pipeline
	if name == "" {
		name = "pipeline"
	}
	avail := limit - mdReserve
	var b strings.Builder
	fmt.Fprintf(&b, "## %s %s %s\n\n", statusIcon(run.Status), mdEscape(capText(name, 256)), run.Status)
	if run.Error != nil && len(mods) == 0 {
		fmt.Fprintf(&b, "The run did not start:\n\n%s\n", fence("text", capText(run.Error.Message, avail/2)))
		_, err := io.WriteString(w, b.String())
		return err
	}
	if run.Error != nil {
		// It started and could not finish (a fleet master lost its
		// coordinator): the modules are reported as in every other
		// report format (R4.3), below why the run ended.
		fmt.Fprintf(&b, "The run could not finish:\n\n%s\n", fence("text", capText(run.Error.Message, avail/8)))
	}
	if run.RunID != "" {
		fmt.Fprintf(&b, "Run `%s`: %s\n\n", strings.ReplaceAll(capText(run.RunID, 256), "`", "'"), totalsLine(run))
	} else {
		fmt.Fprintf(&b, "%s\n\n", totalsLine(run))
	}
	b.WriteString("| Module | Status | Duration | Attempts | Ran on |\n")
	b.WriteString("| --- | --- | ---: | ---: | --- |\n")
	// The table is the overview: it gets up to half of the room, the
	// failures' details what it leaves.
	for i, e := range mods {
		row := fmt.Sprintf("| %s | %s %s | %s | %d | %s |\n",
			mdEscape(capText(e.Module, 512)), moduleIcon(e), statusText(e), duration(e), e.Attempts, mdEscape(where(e)))
		if b.Len()+len(row) > avail/2 {
			fmt.Fprintf(&b, "\n%s not in this table%s.\n", count(len(mods)-i, "more module"), seeFull)
			break
		}
		b.WriteString(row)
	}
	var failures []coordinator.Envelope
	for _, e := range mods {
		if isFailure(e) {
			failures = append(failures, e)
		}
	}
	if len(failures) > 0 {
		b.WriteString("\n### Failures\n")
	}
	for i, e := range failures {
		section := failureSection(e)
		if b.Len()+len(section) > avail {
			fmt.Fprintf(&b, "\n%s not shown here%s: %s\n", count(len(failures)-i, "more failure"), seeFull, moduleList(failures[i:], 2<<10))
			break
		}
		b.WriteString(section)
	}
	var notRun []coordinator.Envelope
	for _, e := range mods {
		if !ran(e) && e.SkipReason != "" {
			notRun = append(notRun, e)
		}
	}
	if len(notRun) > 0 {
		b.WriteString("\n### Not run\n\n")
	}
	for i, e := range notRun {
		line := fmt.Sprintf("- %s %s: %s\n", mdEscape(capText(e.Module, 512)), e.Status, mdEscape(capText(e.SkipReason, 1<<10)))
		if b.Len()+len(line) > avail {
			fmt.Fprintf(&b, "\n%s not listed%s.\n", count(len(notRun)-i, "more module"), seeFull)
			break
		}
		b.WriteString(line)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// seeFull says where what the Markdown report leaves out is found.
const seeFull = " (the job's log and the JSON and JUnit reports have them all)"

// failureSection is the Markdown report's section on the failure e: its
// error, and its log tail in a collapsed block, each cut.
func failureSection(e coordinator.Envelope) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n#### %s %s", mdEscape(capText(e.Module, 512)), statusText(e))
	if on := where(e); on != "" {
		fmt.Fprintf(&b, " on instance %s", mdEscape(on))
	}
	b.WriteString("\n\n")
	if e.Error == nil {
		return b.String()
	}
	fmt.Fprintf(&b, "%s\n", fence("text", capText(e.Error.Message, mdMessageBytes)))
	lines := tailLines(e.Error.Tail)
	if len(lines) == 0 {
		return b.String()
	}
	kept, size := 0, 0
	for kept < len(lines) && kept < mdTailLines {
		l := lines[len(lines)-1-kept]
		if size+len(l)+1 > mdTailBytes {
			break
		}
		size += len(l) + 1
		kept++
	}
	label := count(len(lines), "line")
	if kept < len(lines) {
		if kept == 0 {
			// One line longer than the whole cap: its end.
			lines, kept = []string{capStart(lines[len(lines)-1], mdTailBytes/2)}, 1
			label = "the end of its last line"
		} else {
			label = fmt.Sprintf("last %d of %s", kept, count(len(lines), "line"))
		}
	}
	fmt.Fprintf(&b, "\n<details><summary>Log tail (%s)</summary>\n\n%s\n\n</details>\n", label, fence("text", strings.Join(lines[len(lines)-kept:], "\n")))
	return b.String()
}

// moduleList names envs' modules, comma-separated, in at most about max
// bytes, ending with "…" when it stops short.
func moduleList(envs []coordinator.Envelope, max int) string {
	names := make([]string, len(envs))
	for i, e := range envs {
		names[i] = mdEscape(capText(e.Module, 256))
	}
	return JoinNames(names, max)
}

// JoinNames joins names with commas in at most about max bytes, ending
// with ", …" when it stops short: a list of modules that may be long, in
// a summary or an annotation that must stay small.
func JoinNames(names []string, max int) string {
	var b strings.Builder
	for i, n := range names {
		if b.Len()+len(n) > max {
			b.WriteString(", …")
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(n)
	}
	return b.String()
}

// capText is s cut to at most n bytes (on a rune's boundary), ending
// with "…" when cut.
func capText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func statusIcon(s Status) string {
	switch s {
	case RunSucceeded:
		return "✅"
	case RunCancelled:
		return "⏹️"
	}
	return "❌"
}

func moduleIcon(e coordinator.Envelope) string {
	if e.IgnoredFailure {
		return "⚠️"
	}
	switch e.Status {
	case coordinator.StatusSucceeded:
		return "✅"
	case coordinator.StatusFailed:
		return "❌"
	case coordinator.StatusTimedOut:
		return "⏱️"
	case coordinator.StatusCancelled:
		return "⏹️"
	}
	return "⏭️"
}

// mdEscape escapes the characters that would turn text into Markdown or
// HTML, so module names and messages print as written.
func mdEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\', '`', '*', '_', '[', ']', '<', '>', '#', '|', '~':
			b.WriteByte('\\')
		case '\n', '\r':
			b.WriteByte(' ')
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// fence puts text in a fenced code block whose fence is longer than any
// run of backticks inside, so the text cannot close it early.
func fence(lang, text string) string {
	longest, run := 0, 0
	for _, r := range text {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	f := strings.Repeat("`", max(3, longest+1))
	return f + lang + "\n" + strings.TrimRight(text, "\n") + "\n" + f
}

// capStart is s cut to its last n bytes at most (on a rune's boundary),
// starting with "…" when cut.
func capStart(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := len(s) - n
	for cut < len(s) && !utf8.RuneStart(s[cut]) {
		cut++
	}
	return "…" + s[cut:]
}
