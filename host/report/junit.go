package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/modpipe/modpipe/coordinator"
)

// The JUnit XML report follows the format Ant's junit task made the
// de-facto standard and that the test reporters of GitHub (through
// marketplace actions), GitLab (artifacts:reports:junit) and Jenkins (the
// junit step) read: one <testsuite> for the run, one <testcase> per
// module with classname = the pipeline's name. testdata/junit.xsd is the
// schema the tests validate it against.

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Hostname   string          `xml:"hostname,attr,omitempty"`
	ID         string          `xml:"id,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Skipped   *junitMessage `xml:"skipped"`
	Failure   *junitMessage `xml:"failure"`
	Error     *junitMessage `xml:"error"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr,omitempty"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",cdata"`
}

// WriteJUnit writes the run as JUnit XML: one testcase per module, in the
// run's order. A failed module is a <failure> (its error kind as type, its
// log tail as text); one that timed out, crashed or was lost, or was
// cancelled while running, is an <error>, since it did not get to say
// whether it passed; a skipped module, or one cancelled before it started,
// is <skipped> with the reason.
func WriteJUnit(w io.Writer, run *Run) error {
	name := run.Pipeline
	if name == "" {
		name = "pipeline"
	}
	suite := junitSuite{
		Name:  name,
		Tests: len(run.Modules),
		Time:  seconds(time.Duration(run.DurationMS) * time.Millisecond),
		ID:    run.RunID,
		Properties: []junitProperty{
			{Name: "run_id", Value: run.RunID},
			{Name: "status", Value: string(run.Status)},
		},
	}
	if !run.StartedAt.IsZero() {
		// The Ant format's timestamp has no zone: it is UTC here.
		suite.Timestamp = run.StartedAt.UTC().Format("2006-01-02T15:04:05")
	}
	hosts := map[string]bool{}
	for _, e := range run.Modules {
		c := junitCase{
			Name:      e.Module,
			Classname: name,
			Time:      seconds(time.Duration(e.DurationMS) * time.Millisecond),
		}
		switch {
		case e.IgnoredFailure:
			// It did not fail the pipeline: not a red test either.
			m := failureMessage(e)
			c.Skipped = &junitMessage{Message: "ignored failure (ignore_failure): " + m.Message}
			suite.Skipped++
		case e.Status == coordinator.StatusFailed && (e.Error == nil || e.Error.Kind == coordinator.ErrorKindModule || e.Error.Kind == coordinator.ErrorKindConfig):
			c.Failure = failureMessage(e)
			suite.Failures++
		case isFailure(e):
			c.Error = failureMessage(e)
			suite.Errors++
		case !ran(e):
			c.Skipped = &junitMessage{Message: e.SkipReason}
			if c.Skipped.Message == "" && e.Error != nil {
				// Cancelled before it started: the reason is the error's
				// ("not started: the pipeline stopped after build failed").
				c.Skipped.Message = string(e.Status) + ": " + e.Error.Message
			}
			if c.Skipped.Message == "" {
				c.Skipped.Message = string(e.Status)
			}
			suite.Skipped++
		}
		if on := where(e); on != "" {
			hosts[e.Host] = true
			c.SystemOut = fmt.Sprintf("ran on instance %s, attempt %d, plugin %s %s", on, e.Attempts, e.Plugin, e.PluginVersion)
		}
		suite.Cases = append(suite.Cases, c)
	}
	if run.Error != nil {
		// The run never started: one case says why, so a CI that reads
		// the file shows the error rather than an empty suite.
		suite.Cases = append(suite.Cases, junitCase{Name: "pipeline file", Classname: name, Time: seconds(0),
			Error: failureMessage(coordinator.Envelope{Status: coordinator.Status(run.Status), Error: run.Error})})
		suite.Tests++
		suite.Errors++
	}
	if len(hosts) == 1 {
		for h := range hosts {
			suite.Hostname = h
		}
	}
	doc := junitSuites{
		Name:     name,
		Tests:    suite.Tests,
		Failures: suite.Failures,
		Errors:   suite.Errors,
		Time:     suite.Time,
		Suites:   []junitSuite{suite},
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("encode JUnit XML: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func failureMessage(e coordinator.Envelope) *junitMessage {
	m := &junitMessage{Message: string(e.Status)}
	if e.Error != nil {
		m.Message = e.Error.Message
		m.Type = e.Error.Kind
		var b strings.Builder
		b.WriteString(e.Error.Message)
		if e.Error.Tail != "" {
			b.WriteString("\n\n")
			b.WriteString(strings.Join(tailLines(e.Error.Tail), "\n"))
		}
		m.Text = b.String()
	}
	// XML 1.0 cannot carry most control characters at all, even escaped:
	// a log tail with an ANSI colour code would make the whole file
	// unreadable, so they go.
	m.Message = xmlSafe(m.Message)
	m.Text = xmlSafe(m.Text)
	return m
}

// xmlSafe drops the characters XML 1.0 does not allow.
func xmlSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return r
		case r < 0x20, r == 0xFFFE, r == 0xFFFF:
			return -1
		}
		return r
	}, s)
}

// seconds renders d the way JUnit readers parse time: seconds with
// millisecond precision, no unit.
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.3f", d.Seconds())
}
