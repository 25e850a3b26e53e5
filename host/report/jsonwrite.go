package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/modpipe/modpipe/coordinator"
)

// WriteJSON writes the run as indented JSON: the bytes a json.Encoder
// indenting by two spaces writes, built field by field. The encoder
// marshalled every envelope by reflection, compacted each value and then
// re-read the whole document to indent it: 10 ms for 1,000 modules, at
// the end of every run that asks for a JSON report
// (BenchmarkWriteJSON). TestWriteJSONIsEncoder holds the two to the
// same bytes, for every field of the run and of an envelope.
func WriteJSON(w io.Writer, run *Run) error {
	if run == nil {
		_, err := io.WriteString(w, "null\n")
		return err
	}
	j := jsonWriter{b: make([]byte, 0, 4096+600*len(run.Modules))}
	j.open('{')
	j.key(1, "pipeline")
	j.str(run.Pipeline)
	j.key(1, "run_id")
	j.str(run.RunID)
	j.key(1, "status")
	j.str(string(run.Status))
	j.key(1, "started_at")
	j.time(run.StartedAt)
	j.key(1, "ended_at")
	j.time(run.EndedAt)
	j.key(1, "duration_ms")
	j.int(run.DurationMS)
	j.key(1, "modules")
	if run.Modules == nil {
		j.b = append(j.b, "null"...)
	} else if len(run.Modules) == 0 {
		j.b = append(j.b, "[]"...)
	} else {
		j.open('[')
		for i := range run.Modules {
			if i > 0 {
				j.b = append(j.b, ',')
			}
			j.newline(2)
			j.envelope(&run.Modules[i], 2)
		}
		j.close(1, ']')
	}
	if run.Error != nil {
		j.key(1, "error")
		j.marshal(run.Error, 1)
	}
	j.close(0, '}')
	j.b = append(j.b, '\n')
	if j.err != nil {
		return fmt.Errorf("json: %w", j.err)
	}
	_, err := w.Write(j.b)
	return err
}

// jsonWriter appends indented JSON to b; the first error sticks.
type jsonWriter struct {
	b     []byte
	err   error
	first bool // no member written yet in the innermost object
	// scratch buffers of raw and indent, reused value after value
	compact, escaped, indented bytes.Buffer
}

func (j *jsonWriter) newline(depth int) {
	j.b = append(j.b, '\n')
	for range depth {
		j.b = append(j.b, "  "...)
	}
}

func (j *jsonWriter) open(c byte) {
	j.b = append(j.b, c)
	j.first = true
}

func (j *jsonWriter) close(depth int, c byte) {
	j.newline(depth)
	j.b = append(j.b, c)
	j.first = false
}

// key starts the member name of an object at depth.
func (j *jsonWriter) key(depth int, name string) {
	if !j.first {
		j.b = append(j.b, ',')
	}
	j.first = false
	j.newline(depth)
	j.str(name)
	j.b = append(j.b, ": "...)
}

func (j *jsonWriter) envelope(e *coordinator.Envelope, depth int) {
	j.open('{')
	in := depth + 1
	j.key(in, "module")
	j.str(e.Module)
	j.key(in, "status")
	j.str(string(e.Status))
	j.key(in, "type")
	j.str(e.Type)
	j.key(in, "value")
	j.raw(e.Value, in)
	j.key(in, "error")
	if e.Error == nil {
		j.b = append(j.b, "null"...)
	} else {
		j.marshal(e.Error, in)
	}
	j.key(in, "skip_reason")
	j.str(e.SkipReason)
	j.key(in, "attempts")
	j.int(int64(e.Attempts))
	j.key(in, "started_at")
	j.time(e.StartedAt)
	j.key(in, "ended_at")
	j.time(e.EndedAt)
	j.key(in, "duration_ms")
	j.int(e.DurationMS)
	j.key(in, "instance")
	j.int(int64(e.Instance))
	j.key(in, "host")
	j.str(e.Host)
	j.key(in, "plugin")
	j.str(e.Plugin)
	j.key(in, "plugin_version")
	j.str(e.PluginVersion)
	if e.IgnoredFailure {
		j.key(in, "ignored_failure")
		j.b = append(j.b, "true"...)
	}
	j.close(depth, '}')
}

func (j *jsonWriter) int(n int64) { j.b = strconv.AppendInt(j.b, n, 10) }

func (j *jsonWriter) time(t time.Time) {
	data, err := t.MarshalJSON()
	if err != nil {
		j.fail(err)
		return
	}
	j.b = append(j.b, data...)
}

// str appends s as encoding/json quotes it (HTML characters escaped, as
// the encoder does by default). Most strings here need no escaping.
func (j *jsonWriter) str(s string) {
	if !needsEscape(s) {
		j.b = append(j.b, '"')
		j.b = append(j.b, s...)
		j.b = append(j.b, '"')
		return
	}
	data, err := json.Marshal(s)
	if err != nil {
		j.fail(err)
		return
	}
	j.b = append(j.b, data...)
}

// needsEscape reports whether s has a byte encoding/json would not copy
// as it is: a control character, a quote or backslash, an HTML character
// or anything beyond ASCII (invalid UTF-8, U+2028 and U+2029).
func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return true
		}
	}
	return false
}

// raw appends a JSON value as the encoder writes a json.RawMessage at
// depth: null when empty, else compacted with HTML characters escaped
// and indented.
func (j *jsonWriter) raw(v json.RawMessage, depth int) {
	if v == nil {
		j.b = append(j.b, "null"...)
		return
	}
	j.compact.Reset()
	if err := json.Compact(&j.compact, v); err != nil {
		j.fail(err)
		return
	}
	src := j.compact.Bytes()
	// encoding/json refuses a document nested deeper than 10,000: the
	// encoder saw the value inside the report's own depth levels, and so
	// must this. Nesting that deep takes two bytes a level.
	if len(src) >= 2*(maxNestingDepth-depth) && depth+nesting(src) > maxNestingDepth {
		j.fail(fmt.Errorf("a result value is nested deeper than %d levels with the report around it", maxNestingDepth))
		return
	}
	if hasHTML(src) {
		j.escaped.Reset()
		json.HTMLEscape(&j.escaped, src)
		src = j.escaped.Bytes()
	}
	j.indent(src, depth)
}

// maxNestingDepth is encoding/json's limit on nesting.
const maxNestingDepth = 10000

// nesting is how deep compact JSON text nests its arrays and objects.
func nesting(src []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range src {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}

// hasHTML reports whether JSON text may hold what HTMLEscape changes:
// <, >, & or the first byte of U+2028 and U+2029.
func hasHTML(src []byte) bool {
	for _, c := range src {
		if c == '<' || c == '>' || c == '&' || c == 0xE2 {
			return true
		}
	}
	return false
}

// marshal appends v marshalled and indented at depth.
func (j *jsonWriter) marshal(v any, depth int) {
	data, err := json.Marshal(v)
	if err != nil {
		j.fail(err)
		return
	}
	j.indent(data, depth)
}

func (j *jsonWriter) indent(src []byte, depth int) {
	j.indented.Reset()
	if err := json.Indent(&j.indented, src, strings.Repeat("  ", depth), "  "); err != nil {
		j.fail(err)
		return
	}
	j.b = append(j.b, j.indented.Bytes()...)
}

func (j *jsonWriter) fail(err error) {
	if j.err == nil {
		j.err = err
	}
}
