package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/modpipe/modpipe/plugins/internal/proc"
)

// TestResultType is the versioned name of the test kind's result.
const TestResultType = "go.test/v1"

// The output kept for one failing test or package: its first headLines
// lines (where a flag error or the first assertion usually is) and its last
// tailLines lines (where a panic or the final FAIL is), so a test that logs
// megabytes does not bloat the envelope.
const (
	headLines = 20
	tailLines = 80
)

// clip keeps the head and the tail of a stream of lines.
type clip struct {
	head []string
	tail *proc.Tail
	n    int
}

func newClip() *clip { return &clip{tail: proc.NewTail(tailLines)} }

func (c *clip) Add(l string) {
	c.n++
	if len(c.head) < headLines {
		c.head = append(c.head, l)
		return
	}
	c.tail.Add(l)
}

func (c *clip) Lines() []string {
	out := append([]string(nil), c.head...)
	if omitted := c.n - headLines - tailLines; omitted > 0 {
		out = append(out, fmt.Sprintf("... (%d lines omitted)", omitted))
	}
	return append(out, c.tail.Lines()...)
}

func (c *clip) String() string { return strings.Join(c.Lines(), "\n") }

// TestResult is the value of a finished test module.
type TestResult struct {
	// Packages holds one entry per package, sorted by import path.
	Packages []PackageResult `json:"packages"`
	// Passed, Failed and Skipped count tests (subtests included) over all
	// packages.
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
	// FailedPackages lists the import paths of packages that failed,
	// sorted.
	FailedPackages []string `json:"failed_packages"`
	// Elapsed is the wall-clock duration of the go test run in seconds.
	Elapsed float64 `json:"elapsed"`
}

// PackageResult is one package's outcome.
type PackageResult struct {
	Package string `json:"package"`
	// Status is "pass", "fail" or "skip" (no test files).
	Status  string  `json:"status"`
	Passed  int     `json:"passed"`
	Failed  int     `json:"failed"`
	Skipped int     `json:"skipped"`
	Elapsed float64 `json:"elapsed"`
	// BuildFailed says the package or its test binary did not compile (or
	// its setup failed: missing package, no Go files).
	BuildFailed bool `json:"build_failed"`
	// Failures are the failing tests with their output. A parent test that
	// failed only because a subtest failed is not repeated here. A package
	// that failed outside any test (build failure, panic in TestMain) has
	// one failure with an empty Test.
	Failures []TestFailure `json:"failures"`
}

// TestFailure is one failing test and its output.
type TestFailure struct {
	Test   string `json:"test"`
	Output string `json:"output"`
}

// testEvent is one line of `go test -json` (cmd/test2json), including the
// build events go 1.24 added.
type testEvent struct {
	Action      string  `json:"Action"`
	Package     string  `json:"Package"`
	Test        string  `json:"Test"`
	Elapsed     float64 `json:"Elapsed"`
	Output      string  `json:"Output"`
	ImportPath  string  `json:"ImportPath"`
	FailedBuild string  `json:"FailedBuild"`
}

type packageState struct {
	res      PackageResult
	done     bool
	output   *clip            // package-level output, outside tests
	running  map[string]*clip // output of tests that have not ended
	failedBy map[string]bool  // tests with a failed subtest
	failures []TestFailure
}

// TestParser turns the `go test -json` event stream into a TestResult,
// one line at a time, as the lines arrive.
type TestParser struct {
	out      func(line string)
	pkgs     map[string]*packageState
	builds   map[string]*clip // build output by ImportPath
	rawLines int
}

// NewTestParser returns a parser that hands every human-readable output
// line to out (nil discards them): test output, build errors and any line
// that is not a JSON event. The framing lines test2json adds (=== RUN,
// === PAUSE, === CONT, === NAME) are left out as noise.
func NewTestParser(out func(line string)) *TestParser {
	if out == nil {
		out = func(string) {}
	}
	return &TestParser{out: out, pkgs: map[string]*packageState{}, builds: map[string]*clip{}}
}

// Line consumes one line of go test's stdout.
func (p *TestParser) Line(line string) {
	var ev testEvent
	if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &ev) != nil || ev.Action == "" {
		// Not an event: a line from a test binary that wrote to the
		// process's stdout in a way test2json could not attribute, or
		// go's own output. Show it.
		p.rawLines++
		p.out(line)
		return
	}
	switch ev.Action {
	case "build-output":
		b := p.builds[ev.ImportPath]
		if b == nil {
			b = newClip()
			p.builds[ev.ImportPath] = b
		}
		for _, l := range splitOutput(ev.Output) {
			b.Add(l)
			p.out(l)
		}
		return
	case "build-fail":
		return
	}
	if ev.Package == "" {
		return
	}
	ps := p.pkg(ev.Package)
	if ev.Test == "" {
		p.packageEvent(ps, ev)
		return
	}
	p.testEvent(ps, ev)
}

func (p *TestParser) pkg(name string) *packageState {
	ps := p.pkgs[name]
	if ps == nil {
		ps = &packageState{
			res:      PackageResult{Package: name, Failures: []TestFailure{}},
			output:   newClip(),
			running:  map[string]*clip{},
			failedBy: map[string]bool{},
		}
		p.pkgs[name] = ps
	}
	return ps
}

func (p *TestParser) packageEvent(ps *packageState, ev testEvent) {
	switch ev.Action {
	case "output":
		for _, l := range splitOutput(ev.Output) {
			ps.output.Add(l)
			p.out(l)
		}
	case "pass", "fail", "skip":
		ps.done = true
		ps.res.Status = ev.Action
		ps.res.Elapsed = ev.Elapsed
		if ev.FailedBuild != "" {
			ps.res.BuildFailed = true
			var out []string
			if b := p.builds[ev.FailedBuild]; b != nil {
				out = b.Lines()
			}
			out = append(out, ps.output.Lines()...)
			ps.failures = append(ps.failures, TestFailure{Output: strings.Join(out, "\n")})
		}
	}
}

func (p *TestParser) testEvent(ps *packageState, ev testEvent) {
	switch ev.Action {
	case "run":
		ps.running[ev.Test] = newClip()
	case "output":
		lines := splitOutput(ev.Output)
		t := ps.running[ev.Test]
		for _, l := range lines {
			if isFraming(l) {
				continue
			}
			if t != nil {
				t.Add(l)
			}
			p.out(l)
		}
	case "pass":
		ps.res.Passed++
		delete(ps.running, ev.Test)
	case "skip":
		ps.res.Skipped++
		delete(ps.running, ev.Test)
	case "fail":
		ps.res.Failed++
		if !ps.failedBy[ev.Test] {
			var out string
			if t := ps.running[ev.Test]; t != nil {
				out = t.String()
			}
			ps.failures = append(ps.failures, TestFailure{Test: ev.Test, Output: out})
		}
		// Subtests end before their parent: mark every ancestor so the
		// parent's own fail event does not repeat the failure.
		for name := ev.Test; ; {
			i := strings.LastIndexByte(name, '/')
			if i < 0 {
				break
			}
			name = name[:i]
			ps.failedBy[name] = true
		}
		delete(ps.running, ev.Test)
	}
}

// Result returns what the events so far describe. A package that started
// but never reported an end (go test was killed) counts as failed, with
// the tests that were still running named.
func (p *TestParser) Result() TestResult {
	res := TestResult{Packages: []PackageResult{}, FailedPackages: []string{}}
	names := make([]string, 0, len(p.pkgs))
	for name := range p.pkgs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ps := p.pkgs[name]
		pr := ps.res
		pr.Failures = append([]TestFailure{}, ps.failures...)
		if !ps.done {
			pr.Status = "fail"
			running := make([]string, 0, len(ps.running))
			for t := range ps.running {
				running = append(running, t)
			}
			sort.Strings(running)
			pr.Failures = append(pr.Failures, TestFailure{
				Output: fmt.Sprintf("package did not finish (tests still running: %s)\n%s", strings.Join(running, ", "), ps.output.String()),
			})
		}
		if pr.Status == "fail" && len(pr.Failures) == 0 {
			// Failed outside any test: TestMain, a panic in init, -race
			// findings after the tests, a timeout.
			pr.Failures = append(pr.Failures, TestFailure{Output: ps.output.String()})
		}
		res.Passed += pr.Passed
		res.Failed += pr.Failed
		res.Skipped += pr.Skipped
		if pr.Status == "fail" {
			res.FailedPackages = append(res.FailedPackages, pr.Package)
		}
		res.Packages = append(res.Packages, pr)
	}
	return res
}

// Summary describes the failures of r for an error message: how many
// failures in how many packages, the first maxNames of them by name, and
// their output, at most tailLines lines in all (each failure's share keeps
// its first and last lines). It returns "" when nothing failed.
func (r TestResult) Summary(maxNames, tailLines int) (msg, tail string) {
	if len(r.FailedPackages) == 0 && r.Failed == 0 {
		return "", ""
	}
	type named struct {
		name   string
		output []string
	}
	var all []named
	for _, pr := range r.Packages {
		for _, f := range pr.Failures {
			name := pr.Package + " [build failed]"
			switch {
			case f.Test != "":
				name = pr.Package + "." + f.Test
			case !pr.BuildFailed:
				name = pr.Package + " [package failed]"
			}
			var out []string
			if f.Output != "" {
				out = strings.Split(f.Output, "\n")
			}
			all = append(all, named{name, out})
		}
	}
	shown := all
	if len(shown) > maxNames {
		shown = shown[:maxNames]
	}
	names := make([]string, len(shown))
	for i, n := range shown {
		names[i] = n.name
	}
	msg = fmt.Sprintf("go test failed: %d failure(s) in %d package(s): %s", len(all), len(r.FailedPackages), strings.Join(names, ", "))
	if more := len(all) - len(shown); more > 0 {
		msg += fmt.Sprintf(" and %d more", more)
	}
	share := max(tailLines/max(len(shown), 1)-1, 2)
	var out []string
	for _, n := range shown {
		out = append(out, "--- "+n.name)
		lines := n.output
		if len(lines) > share {
			keepHead := share / 3
			keepTail := share - keepHead
			lines = append(append(append([]string(nil), lines[:keepHead]...), "..."), lines[len(lines)-keepTail:]...)
		}
		out = append(out, lines...)
	}
	return msg, strings.Join(out, "\n")
}

// splitOutput turns an event's Output (usually one line with its newline,
// sometimes a fragment) into lines without newlines.
func splitOutput(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// isFraming reports test2json's bookkeeping lines, which say which test
// is running rather than anything the test said, and a passing test's
// "--- PASS" line, which go test prints only under -v: with them, a
// suite of 1,600 passing tests streamed 1,600 lines that said nothing
// the result does not. A failure's and a skip's lines stay.
func isFraming(l string) bool {
	if strings.HasPrefix(strings.TrimLeft(l, " "), "--- PASS: ") {
		return true
	}
	for _, p := range []string{"=== RUN ", "=== PAUSE ", "=== CONT ", "=== NAME "} {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	return false
}
