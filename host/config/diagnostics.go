package config

import (
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// Suggest returns the candidate closest to name when it is close enough to
// be a likely typo, or "". Close enough is an edit distance (a swap of
// two neighbouring letters counts as one edit) below the name's length
// ("m1" is not a typo of "a") and within a third of it, one edit at
// least and two at most: a short name is one slip away from many
// unrelated words ("shell" is two edits from "hello"), so it gets one.
// Ties go to the earlier candidate.
func Suggest(name string, candidates []string) string {
	n := utf8.RuneCountInString(name)
	limit := min(2, max(1, n/3), n-1)
	best, bestDist := "", limit+1
	for _, c := range candidates {
		if c == name {
			continue
		}
		if d := editDistance(name, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of two neighbouring
// runes, one edit each ("tset" is one edit from "test").
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// Three rows of the dynamic programme: the one before last (for
	// swaps), the last and the current.
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// didYouMean formats Suggest's answer as a sentence to append to a detail,
// with a leading space, or "" when there is nothing close.
func didYouMean(name string, candidates []string) string {
	if s := Suggest(name, candidates); s != "" {
		return fmt.Sprintf(" Did you mean %q?", s)
	}
	return ""
}

// WriteDiagnostics renders diags for a person: severity, summary, the
// file:line:col, a snippet of the source with the problem underlined, and
// the detail. p may be nil (for example when the file could not be read);
// diagnostics are then written without snippets.
func WriteDiagnostics(w io.Writer, p *Pipeline, diags hcl.Diagnostics, color bool) error {
	var files map[string]*hcl.File
	if p != nil {
		files = p.Files
	}
	// Each summary starts with file:line:col, the form editors and CI log
	// viewers turn into links; the snippet below it shows the place.
	located := make(hcl.Diagnostics, len(diags))
	for i, d := range diags {
		c := *d
		if d.Subject != nil {
			c.Summary = fmt.Sprintf("%s:%d:%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, d.Summary)
		}
		located[i] = &c
	}
	return hcl.NewDiagnosticTextWriter(w, files, 0, color).WriteDiagnostics(located)
}

// jsonDiagnostic is the wire form of one hcl.Diagnostic.
type jsonDiagnostic struct {
	Severity string     `json:"severity"`
	Summary  string     `json:"summary"`
	Detail   string     `json:"detail,omitempty"`
	Subject  *jsonRange `json:"subject,omitempty"`
	Context  *jsonRange `json:"context,omitempty"`
}

type jsonRange struct {
	Filename string  `json:"filename"`
	Start    jsonPos `json:"start"`
	End      jsonPos `json:"end"`
}

type jsonPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

func toJSONRange(r *hcl.Range) *jsonRange {
	if r == nil {
		return nil
	}
	return &jsonRange{
		Filename: r.Filename,
		Start:    jsonPos{Line: r.Start.Line, Column: r.Start.Column, Byte: r.Start.Byte},
		End:      jsonPos{Line: r.End.Line, Column: r.End.Column, Byte: r.End.Byte},
	}
}

func (r *jsonRange) toHCL() *hcl.Range {
	if r == nil {
		return nil
	}
	return &hcl.Range{
		Filename: r.Filename,
		Start:    hcl.Pos{Line: r.Start.Line, Column: r.Start.Column, Byte: r.Start.Byte},
		End:      hcl.Pos{Line: r.End.Line, Column: r.End.Column, Byte: r.End.Byte},
	}
}

// DiagnosticsJSON encodes diags as a JSON array so they can cross a
// process boundary (a worker reporting to the master, a plugin's
// validation). ParseDiagnosticsJSON reverses it; expressions and eval
// contexts attached to a diagnostic are not carried.
func DiagnosticsJSON(diags hcl.Diagnostics) ([]byte, error) {
	out := make([]jsonDiagnostic, 0, len(diags))
	for _, d := range diags {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		out = append(out, jsonDiagnostic{
			Severity: sev,
			Summary:  d.Summary,
			Detail:   d.Detail,
			Subject:  toJSONRange(d.Subject),
			Context:  toJSONRange(d.Context),
		})
	}
	data, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode diagnostics: %w", err)
	}
	return data, nil
}

// ParseDiagnosticsJSON decodes what DiagnosticsJSON produced.
func ParseDiagnosticsJSON(data []byte) (hcl.Diagnostics, error) {
	var in []jsonDiagnostic
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, fmt.Errorf("decode diagnostics: %w", err)
	}
	diags := make(hcl.Diagnostics, 0, len(in))
	for _, d := range in {
		sev := hcl.DiagError
		switch d.Severity {
		case "warning":
			sev = hcl.DiagWarning
		case "error":
		default:
			return nil, fmt.Errorf("decode diagnostics: unknown severity %q (want \"error\" or \"warning\")", d.Severity)
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: sev,
			Summary:  d.Summary,
			Detail:   d.Detail,
			Subject:  d.Subject.toHCL(),
			Context:  d.Context.toHCL(),
		})
	}
	return diags, nil
}
