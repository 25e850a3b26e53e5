// Package ui is what a run prints while it runs: module output and
// progress, in the form the place it runs in reads best (R7.2).
//
// On a terminal a compact live view is redrawn in place below the module
// output; elsewhere every event is one plain line. On GitHub Actions,
// GitLab CI and Buildkite each module's output becomes a collapsible
// group in that CI's own syntax, buffered until the module ends so groups
// never interleave. Everything printed passes through the run's secret
// masker, once: a module's lines that the host masked as they came
// (Options.LinesMasked) are not masked again.
package ui

import "strings"

// Style is the form output takes.
type Style int

// The styles, from the most to the least interactive.
const (
	// StylePlain prints one line per event and each output line prefixed
	// with its module, with no control codes: for pipes and unknown CIs.
	StylePlain Style = iota
	// StyleLive keeps a few status lines at the bottom of a terminal,
	// redrawn in place, with module output printed above them.
	StyleLive
	// StyleGitHub groups each module's output with ::group::/::endgroup::
	// and reports failures as ::error annotations.
	StyleGitHub
	// StyleGitLab groups each module's output in a collapsed section.
	StyleGitLab
	// StyleBuildkite groups each module's output under a "--- " header.
	StyleBuildkite
)

var styleNames = map[Style]string{
	StylePlain: "plain", StyleLive: "live", StyleGitHub: "github", StyleGitLab: "gitlab", StyleBuildkite: "buildkite",
}

func (s Style) String() string {
	if n, ok := styleNames[s]; ok {
		return n
	}
	return "unknown"
}

// DetectStyle picks the style for environ (KEY=VALUE pairs): a CI's own
// grouping when its variables say the run is inside it, else the live
// view when the output is a terminal and progress is wanted, else plain.
// A CI wins over a terminal: CI logs are read after the fact, where a
// redrawn view would be noise.
func DetectStyle(environ []string, terminal, noProgress bool) Style {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	switch {
	case env["GITHUB_ACTIONS"] == "true":
		return StyleGitHub
	case env["GITLAB_CI"] != "" && env["GITLAB_CI"] != "false":
		return StyleGitLab
	case env["BUILDKITE"] == "true":
		return StyleBuildkite
	case terminal && !noProgress && env["TERM"] != "dumb":
		return StyleLive
	}
	return StylePlain
}
