package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clipperhouse/displaywidth"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/secrets"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixture loads testdata/run.json: a failed run with every outcome, a
// matrix, a log tail with Markdown- and XML-hostile characters and the
// secret "hunter2" in a value, an error message and nowhere else.
func fixture(t *testing.T) *Run {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var run Run
	if err := json.Unmarshal(data, &run); err != nil {
		t.Fatalf("testdata/run.json: %v", err)
	}
	return &run
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (run go test -update and review the diff):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestRenderings(t *testing.T) {
	masker := secrets.New("hunter2")
	tests := []struct {
		golden string
		render func(*bytes.Buffer, *Run) error
	}{
		{"summary.golden", func(b *bytes.Buffer, r *Run) error { return WriteSummary(b, r) }},
		{"junit.golden", func(b *bytes.Buffer, r *Run) error { return WriteJUnit(b, r) }},
		{"markdown.golden", func(b *bytes.Buffer, r *Run) error { return WriteMarkdown(b, r) }},
		{"json.golden", func(b *bytes.Buffer, r *Run) error { return WriteJSON(b, r) }},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			run := fixture(t)
			var plain bytes.Buffer
			if err := tt.render(&plain, run); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(plain.String(), "hunter2") {
				t.Fatal("the unmasked rendering should show the fixture's secret; the test would prove nothing")
			}
			var masked bytes.Buffer
			if err := tt.render(&masked, run.Masked(masker)); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(masked.String(), "hunter2") {
				t.Errorf("the masked rendering still shows the secret:\n%s", masked.String())
			}
			if !strings.Contains(masked.String(), secrets.Mask) {
				t.Errorf("the masked rendering shows no %s", secrets.Mask)
			}
			golden(t, tt.golden, masked.Bytes())
		})
	}
}

func TestMaskedLeavesRunAlone(t *testing.T) {
	run := fixture(t)
	_ = run.Masked(secrets.New("hunter2"))
	var b bytes.Buffer
	if err := WriteJSON(&b, run); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "hunter2") {
		t.Fatal("Masked changed the run it was given")
	}
}

func TestSummaryFailuresFirst(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSummary(&b, fixture(t)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	var order []string
	for _, l := range lines[1:] {
		if l == "" {
			break
		}
		order = append(order, strings.Fields(l)[1])
	}
	want := "failed timed_out cancelled cancelled skipped skipped succeeded succeeded succeeded"
	if got := strings.Join(order, " "); got != want {
		t.Fatalf("statuses in table order: %s\nwant %s", got, want)
	}
}

func TestTotals(t *testing.T) {
	tot := TotalsOf(fixture(t))
	if tot.Modules != 9 || tot.Succeeded != 3 || tot.Failed != 1 || tot.TimedOut != 1 || tot.Skipped != 2 || tot.Cancelled != 2 {
		t.Fatalf("counts: %+v", tot)
	}
	// 1.2 + 8 + 7.5 + 2 + 1 + 2.1 seconds of modules in a 12.5s run.
	if tot.ModuleTime.Milliseconds() != 21800 || tot.Wall.Milliseconds() != 12500 {
		t.Fatalf("times: %+v", tot)
	}
	if s := tot.Speedup(); s < 1.74 || s > 1.75 {
		t.Fatalf("speedup %.3f, want 21.8/12.5", s)
	}
	if (Totals{}).Speedup() != 0 {
		t.Fatal("a run that took no time has no speedup")
	}
	// A lone retried module: its envelope times the last attempt, less
	// than the run's wall time; no "0.3 at a time on average".
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	run := &Run{Status: RunSucceeded, StartedAt: start, EndedAt: start.Add(3300 * time.Millisecond), DurationMS: 3300,
		Modules: []coordinator.Envelope{{Module: "r", Status: coordinator.StatusSucceeded, Attempts: 3, DurationMS: 1000}}}
	if line := totalsLine(run); !strings.HasSuffix(line, "(module time 1.0s)") {
		t.Errorf("totals line %q: want no parallelism figure below 1", line)
	}
	// Failures that ignore_failure kept from failing the run say so on
	// the SUCCEEDED line that counts them.
	ign := &Run{Status: RunSucceeded, StartedAt: start, EndedAt: start.Add(time.Second), DurationMS: 1000, Modules: []coordinator.Envelope{
		{Module: "a", Status: coordinator.StatusSucceeded},
		{Module: "b", Status: coordinator.StatusFailed, IgnoredFailure: true},
		{Module: "c", Status: coordinator.StatusTimedOut, IgnoredFailure: true},
		{Module: "d", Status: coordinator.StatusTimedOut, IgnoredFailure: true},
		{Module: "e", Status: coordinator.StatusTimedOut},
	}}
	if line := totalsLine(ign); !strings.HasPrefix(line, "SUCCEEDED: 5 modules, 1 succeeded, 1 failed (ignored), 3 timed out (2 ignored), 0 skipped,") {
		t.Errorf("totals line %q: want the ignored failures marked", line)
	}
	// One module: singular, and no parallelism figure for one that ran
	// as long as the run.
	run.Modules[0].DurationMS = 3300
	if line := totalsLine(run); !strings.HasPrefix(line, "SUCCEEDED: 1 module, 1 succeeded,") || !strings.HasSuffix(line, "(module time 3.3s)") {
		t.Errorf("totals line %q: want one module, singular, without a parallelism figure", line)
	}
}

// TestJUnitStructure reads the report back the way a test reporter does
// and checks each module became the testcase it should.
// A module cancelled before it started says why in JUnit too: the host
// puts the reason in its error, not in skip_reason.
func TestJUnitNotStartedKeepsTheReason(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	run := &Run{Pipeline: "p", Status: RunFailed, StartedAt: at, EndedAt: at, Modules: []coordinator.Envelope{
		{Module: "deploy", Status: coordinator.StatusCancelled, StartedAt: at, EndedAt: at,
			Error: &coordinator.Error{Kind: coordinator.ErrorKindCancelled, Message: "not started: the pipeline stopped after build failed"}},
	}}
	var b bytes.Buffer
	if err := WriteJUnit(&b, run); err != nil {
		t.Fatal(err)
	}
	if want := `<skipped message="cancelled: not started: the pipeline stopped after build failed">`; !strings.Contains(b.String(), want) {
		t.Fatalf("want %s in:\n%s", want, b.String())
	}
}

func TestJUnitStructure(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJUnit(&b, fixture(t)); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("the report is not XML: %v", err)
	}
	if len(doc.Suites) != 1 {
		t.Fatalf("%d suites, want 1", len(doc.Suites))
	}
	s := doc.Suites[0]
	if s.Tests != 9 || s.Failures != 1 || s.Errors != 2 || s.Skipped != 3 {
		t.Fatalf("suite counts tests=%d failures=%d errors=%d skipped=%d", s.Tests, s.Failures, s.Errors, s.Skipped)
	}
	want := map[string]string{
		"checkout": "pass", "build[linux]": "pass", "build[windows]": "pass",
		"test": "failure", "lint": "error", "upload": "error",
		"package": "skipped", "docs": "skipped", "notify": "skipped",
	}
	for _, c := range s.Cases {
		got := "pass"
		switch {
		case c.Failure != nil:
			got = "failure"
		case c.Error != nil:
			got = "error"
		case c.Skipped != nil:
			got = "skipped"
		}
		if got != want[c.Name] {
			t.Errorf("testcase %s is %s, want %s", c.Name, got, want[c.Name])
		}
		if c.Classname != "release" {
			t.Errorf("testcase %s classname %q, want the pipeline's name", c.Name, c.Classname)
		}
	}
}

// TestJUnitSchema validates the report against testdata/junit.xsd with
// xmllint (Debian's libxml2-utils, installed by `make deps`), and checks
// the schema is strict enough to refuse a broken report.
func TestJUnitSchema(t *testing.T) {
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("xmllint is not installed: run `make deps` (apt-get install libxml2-utils) before the tests")
		}
		t.Skip("xmllint is not installed; `make deps` installs it (apt-get install libxml2-utils)")
	}
	dir := t.TempDir()
	validate := func(doc []byte) error {
		path := filepath.Join(dir, "report.xml")
		if err := os.WriteFile(path, doc, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(xmllint, "--noout", "--schema", filepath.Join("testdata", "junit.xsd"), path).CombinedOutput()
		if err != nil {
			return errors.New(string(out))
		}
		return nil
	}
	for _, name := range []string{"full run", "empty run"} {
		t.Run(name, func(t *testing.T) {
			run := fixture(t)
			if name == "empty run" {
				run = &Run{Status: RunSucceeded}
			}
			var b bytes.Buffer
			if err := WriteJUnit(&b, run.Masked(secrets.New("hunter2"))); err != nil {
				t.Fatal(err)
			}
			if err := validate(b.Bytes()); err != nil {
				t.Fatalf("the JUnit report does not validate:\n%s\n%s", err, b.String())
			}
		})
	}
	t.Run("schema refuses a broken report", func(t *testing.T) {
		var b bytes.Buffer
		if err := WriteJUnit(&b, fixture(t)); err != nil {
			t.Fatal(err)
		}
		broken := strings.Replace(b.String(), `classname="release"`, "", 1)
		if err := validate([]byte(broken)); err == nil {
			t.Fatal("a testcase without classname validated: the schema checks nothing")
		}
	})
}

func TestParseSpec(t *testing.T) {
	tests := []struct {
		in      string
		want    Spec
		wantErr string
	}{
		{in: "json=out/r.json", want: Spec{Format: "json", Path: "out/r.json"}},
		{in: "junit=r.xml", want: Spec{Format: "junit", Path: "r.xml"}},
		{in: "xml=r.xml", want: Spec{Format: "junit", Path: "r.xml"}},
		{in: "markdown=r.md", want: Spec{Format: "markdown", Path: "r.md"}},
		{in: "MD=r.md", want: Spec{Format: "markdown", Path: "r.md"}},
		{in: "json", wantErr: "want FORMAT=PATH"},
		{in: "=x", wantErr: "want FORMAT=PATH"},
		{in: "html=x.html", wantErr: `unknown format "html" (known: json, junit, markdown)`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSpec(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSpec = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestWriteEveryFormat(t *testing.T) {
	dir := t.TempDir()
	run := fixture(t)
	for _, f := range Formats {
		path := filepath.Join(dir, "nested", "report."+f)
		if err := Write(Spec{Format: f, Path: path}, run); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var want bytes.Buffer
		if err := Render(&want, f, run); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s: the file differs from Render's output", f)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "nested"))
	if len(entries) != len(Formats) {
		t.Errorf("%d files in the report folder, want %d (temp files left behind?)", len(entries), len(Formats))
	}
}

func TestWriteUnwritablePath(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := Write(Spec{Format: "json", Path: filepath.Join(file, "r.json")}, fixture(t))
	if err == nil || !strings.Contains(err.Error(), "write json report") {
		t.Fatalf("err = %v, want a write json report error", err)
	}
}

func TestAppendMarkdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "step_summary.md")
	if err := os.WriteFile(path, []byte("# earlier step\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := AppendMarkdown(path, fixture(t)); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(got), "# earlier step\n## ") {
		t.Fatalf("the summary should be appended after what other steps wrote:\n%s", got)
	}
}

func TestMarkdownFenceOutlastsBackticks(t *testing.T) {
	got := fence("text", "a ```` b")
	if !strings.HasPrefix(got, "`````text\n") || !strings.HasSuffix(got, "\n`````") {
		t.Fatalf("fence = %q", got)
	}
}

// Columns line up in terminal cells: a wide (CJK) module name takes two
// cells a character, which text/tabwriter counted as one.
func TestSummaryAlignsWideNames(t *testing.T) {
	run := &Run{Pipeline: "p", Status: RunSucceeded, Modules: []coordinator.Envelope{
		{Module: "构建", Status: coordinator.StatusSucceeded, Attempts: 1},
		{Module: "build", Status: coordinator.StatusSucceeded, Attempts: 1},
	}}
	var b bytes.Buffer
	if err := WriteSummary(&b, run); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")[:3]
	var cols []int
	for _, l := range lines {
		i := strings.IndexAny(l, "Ss") // STATUS, succeeded: the second column
		if i < 0 {
			t.Fatalf("no status in %q", l)
		}
		cols = append(cols, displaywidth.String(l[:i]))
	}
	if cols[0] != cols[1] || cols[1] != cols[2] {
		t.Errorf("the status column starts at cells %v:\n%s", cols, strings.Join(lines, "\n"))
	}
}

// A tail line redrawn with carriage returns (a progress counter) or ended
// with \r\n shows in every report as a terminal shows it: its final text,
// with no \r left to overwrite a prefix or make a line break of its own.
func TestTailCarriageReturns(t *testing.T) {
	run := &Run{Pipeline: "cr", RunID: "r1", Status: RunFailed, Modules: []coordinator.Envelope{{
		Module: "prog", Status: coordinator.StatusFailed, Attempts: 1,
		Error: &coordinator.Error{Kind: coordinator.ErrorKindModule, Message: "command failed: exit status 1",
			Tail: "\rprogress 33%\rprogress 66%\rprogress 99%\nwindows line\r\nlast\r\n"},
	}}}
	for _, format := range []string{"summary", FormatMarkdown, FormatJUnit} {
		t.Run(format, func(t *testing.T) {
			var b bytes.Buffer
			var err error
			if format == "summary" {
				err = WriteSummary(&b, run)
			} else {
				err = Render(&b, format, run)
			}
			if err != nil {
				t.Fatal(err)
			}
			got := b.String()
			if strings.Contains(got, "\r") || strings.Contains(got, "progress 66%") {
				t.Fatalf("a carriage return or an overdrawn state is in the report:\n%q", got)
			}
			for _, want := range []string{"progress 99%\nwindows line\nlast"} {
				if !strings.Contains(strings.ReplaceAll(got, "  | ", ""), want) {
					t.Errorf("want %q in:\n%s", want, got)
				}
			}
		})
	}
}

// A run that started and could not finish (a fleet master that lost its
// coordinator) has its modules in the Markdown report, as in the JSON and
// JUnit ones (R4.3), below why it ended; one that never started has only
// the why.
func TestMarkdownOfARunThatCouldNotFinish(t *testing.T) {
	cause := &coordinator.Error{Kind: coordinator.ErrorKindCoordinator, Message: "the master lost the coordinator before the run finished"}
	for _, tc := range []struct {
		name    string
		modules bool
		want    string
	}{
		{"modules ran", true, "The run could not finish:"},
		{"nothing ran", false, "The run did not start:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := fixture(t)
			run.Status, run.Error = RunError, cause
			if !tc.modules {
				run.Modules = []coordinator.Envelope{}
			}
			var b bytes.Buffer
			if err := WriteMarkdown(&b, run); err != nil {
				t.Fatal(err)
			}
			md := b.String()
			if !strings.Contains(md, tc.want) || !strings.Contains(md, cause.Message) {
				t.Errorf("no %q with the cause:\n%s", tc.want, md)
			}
			if got := strings.Contains(md, "| Module | Status |"); got != tc.modules {
				t.Errorf("module table shown: %v, want %v:\n%s", got, tc.modules, md)
			}
			for _, e := range run.Modules {
				if !strings.Contains(md, "| "+mdEscape(e.Module)+" |") {
					t.Errorf("no row for %s:\n%s", e.Module, md)
				}
			}
		})
	}
}
