package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/modpipe/modpipe/coordinator"
)

// WriteMarkdown writes the run as GitHub-flavoured Markdown: a heading
// with the outcome, the table (failures first), each failure with its
// error and log tail in a collapsed block, skip reasons, and the totals.
// It is what goes to $GITHUB_STEP_SUMMARY and what `--report markdown`
// writes (a GitLab or Buildkite job can attach it as an annotation).
func WriteMarkdown(w io.Writer, run *Run) error {
	mods := sorted(run.Modules)
	name := run.Pipeline
	if name == "" {
		name = "pipeline"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## %s %s %s\n\n", statusIcon(run.Status), mdEscape(name), run.Status)
	if run.Error != nil {
		fmt.Fprintf(&b, "The run did not start:\n\n%s\n", fence("text", run.Error.Message))
		_, err := io.WriteString(w, b.String())
		return err
	}
	if run.RunID != "" {
		fmt.Fprintf(&b, "Run `%s`: %s\n\n", strings.ReplaceAll(run.RunID, "`", "'"), totalsLine(run))
	} else {
		fmt.Fprintf(&b, "%s\n\n", totalsLine(run))
	}
	b.WriteString("| Module | Status | Duration | Attempts | Ran on |\n")
	b.WriteString("| --- | --- | ---: | ---: | --- |\n")
	for _, e := range mods {
		fmt.Fprintf(&b, "| %s | %s %s | %s | %d | %s |\n",
			mdEscape(e.Module), moduleIcon(e), statusText(e), duration(e), e.Attempts, mdEscape(where(e)))
	}
	failures := false
	for _, e := range mods {
		if !isFailure(e) {
			continue
		}
		if !failures {
			b.WriteString("\n### Failures\n")
			failures = true
		}
		fmt.Fprintf(&b, "\n#### %s %s", mdEscape(e.Module), statusText(e))
		if on := where(e); on != "" {
			fmt.Fprintf(&b, " on instance %s", mdEscape(on))
		}
		b.WriteString("\n\n")
		if e.Error != nil {
			fmt.Fprintf(&b, "%s\n", fence("text", e.Error.Message))
			if lines := tailLines(e.Error.Tail); len(lines) > 0 {
				fmt.Fprintf(&b, "\n<details><summary>Log tail (%s)</summary>\n\n%s\n\n</details>\n", count(len(lines), "line"), fence("text", strings.Join(lines, "\n")))
			}
		}
	}
	skipped := false
	for _, e := range mods {
		if ran(e) || e.SkipReason == "" {
			continue
		}
		if !skipped {
			b.WriteString("\n### Not run\n\n")
			skipped = true
		}
		fmt.Fprintf(&b, "- %s %s: %s\n", mdEscape(e.Module), e.Status, mdEscape(e.SkipReason))
	}
	_, err := io.WriteString(w, b.String())
	return err
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
