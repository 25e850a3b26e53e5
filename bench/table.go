package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Peer is a peer tool's figure in a row.
type Peer struct {
	Name string `json:"name"`
	Figure
}

// Row is one line of the results table.
type Row struct {
	Scenario string `json:"scenario"`
	// Unit of the figures ("ms", "modules/s", "MB", "µs").
	Unit string `json:"unit"`
	// HigherBetter is true for rates.
	HigherBetter bool   `json:"higher_better"`
	Modpipe      Figure `json:"modpipe"`
	Peers        []Peer `json:"peers,omitempty"`
	// Target is the goal in words; Met is nil when there is none or it
	// could not be judged (a figure is missing).
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
	// Note says what bounds the figure or why it is missing.
	Note string `json:"note,omitempty"`
}

// ratio is modpipe's median over peer's median: below 1 means modpipe
// took less time (or, for rates, ran fewer per second).
func (r Row) ratio(p Peer) float64 { return r.Modpipe.Median / p.Median }

// judge sets Met from a condition, leaving it nil when any figure it
// needs is NaN (the scenario did not run).
func (r *Row) judge(ok bool, figures ...float64) {
	for _, f := range figures {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			r.Met = nil
			return
		}
	}
	r.Met = &ok
}

// Report is bench/results.json.
type Report struct {
	StartedAt time.Time `json:"started_at"`
	Machine   Machine   `json:"machine"`
	Quick     bool      `json:"quick"`
	Rounds    int       `json:"rounds"`
	Rows      []Row     `json:"rows"`
}

// Machine is what the numbers were measured on.
type Machine struct {
	CPU       string `json:"cpu"`
	CPUs      int    `json:"cpus"`
	MemoryMB  int    `json:"memory_mb"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	Load      string `json:"load_before"`
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v == 0:
		return "0"
	case math.Abs(v) >= 1000:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.1f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func (f Figure) String() string {
	if math.IsNaN(f.Median) {
		return "-"
	}
	return num(f.Median) + " (" + num(f.Best) + ")"
}

// writeTable prints the rows as an aligned table: figures are
// "median (best)".
func writeTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tUNIT\tMODPIPE med (best)\tPEERS med (best)\tRATIO\tTARGET\tMET")
	for _, r := range rows {
		var peers, ratios []string
		for _, p := range r.Peers {
			peers = append(peers, p.Name+" "+p.Figure.String())
			if !math.IsNaN(p.Median) && !math.IsNaN(r.Modpipe.Median) && p.Median != 0 {
				ratios = append(ratios, num(r.ratio(p))+"x "+p.Name)
			}
		}
		met := "-"
		if r.Met != nil {
			met = map[bool]string{true: "met", false: "MISSED"}[*r.Met]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Scenario, r.Unit, r.Modpipe.String(),
			orDash(strings.Join(peers, "; ")), orDash(strings.Join(ratios, "; ")), orDash(r.Target), met)
	}
	return tw.Flush()
}

// writeMarkdown renders the rows as a Markdown table for docs/benchmarks.md.
func writeMarkdown(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "| scenario | unit | modpipe median (best) | peers median (best) | ratio | target | met |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, r := range rows {
		var peers, ratios []string
		for _, p := range r.Peers {
			peers = append(peers, p.Name+" "+p.Figure.String())
			if !math.IsNaN(p.Median) && !math.IsNaN(r.Modpipe.Median) && p.Median != 0 {
				ratios = append(ratios, num(r.ratio(p))+"x "+p.Name)
			}
		}
		met := "-"
		if r.Met != nil {
			met = map[bool]string{true: "met", false: "**missed**"}[*r.Met]
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", r.Scenario, r.Unit, r.Modpipe.String(),
			orDash(strings.Join(peers, "<br>")), orDash(strings.Join(ratios, "<br>")), orDash(r.Target), met)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeJSON writes the report to path; NaN figures (scenarios that did
// not run) become null.
func writeJSON(path string, rep Report) error {
	b, err := json.MarshalIndent(sanitize(rep), "", "  ")
	if err != nil {
		return fmt.Errorf("encode the results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the results: %w", err)
	}
	return nil
}

// jsonFigure is Figure with nullable numbers: encoding/json refuses NaN.
type jsonFigure struct {
	Median  *float64  `json:"median"`
	Best    *float64  `json:"best"`
	Samples []float64 `json:"samples"`
}

type jsonPeer struct {
	Name string `json:"name"`
	jsonFigure
}

type jsonRow struct {
	Scenario     string     `json:"scenario"`
	Unit         string     `json:"unit"`
	HigherBetter bool       `json:"higher_better"`
	Modpipe      jsonFigure `json:"modpipe"`
	Peers        []jsonPeer `json:"peers,omitempty"`
	Target       string     `json:"target,omitempty"`
	Met          *bool      `json:"met"`
	Note         string     `json:"note,omitempty"`
}

type jsonReport struct {
	StartedAt time.Time `json:"started_at"`
	Machine   Machine   `json:"machine"`
	Quick     bool      `json:"quick"`
	Rounds    int       `json:"rounds"`
	Rows      []jsonRow `json:"rows"`
}

func nullable(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func jfig(f Figure) jsonFigure {
	var s []float64
	for _, v := range f.Samples {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			s = append(s, v)
		}
	}
	return jsonFigure{Median: nullable(f.Median), Best: nullable(f.Best), Samples: s}
}

func sanitize(rep Report) jsonReport {
	out := jsonReport{StartedAt: rep.StartedAt, Machine: rep.Machine, Quick: rep.Quick, Rounds: rep.Rounds}
	for _, r := range rep.Rows {
		jr := jsonRow{Scenario: r.Scenario, Unit: r.Unit, HigherBetter: r.HigherBetter, Modpipe: jfig(r.Modpipe),
			Target: r.Target, Met: r.Met, Note: r.Note}
		for _, p := range r.Peers {
			jr.Peers = append(jr.Peers, jsonPeer{Name: p.Name, jsonFigure: jfig(p.Figure)})
		}
		out.Rows = append(out.Rows, jr)
	}
	return out
}
