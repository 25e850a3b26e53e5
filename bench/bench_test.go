package main

import (
	"bytes"
	"flag"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestPercentile(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		p    float64
		want float64
	}{
		{"empty", nil, 50, math.NaN()},
		{"one", []float64{7}, 99, 7},
		{"odd median", []float64{3, 1, 2}, 50, 2},
		{"even median", []float64{4, 1, 3, 2}, 50, 2.5},
		{"p99 interpolates", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 99, 10.9},
		{"max", []float64{5, 9, 1}, 100, 9},
		{"min", []float64{5, 9, 1}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := percentile(tt.xs, tt.p)
			if math.IsNaN(tt.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-tt.want) > 1e-9) {
				t.Fatalf("percentile(%v, %v) = %v, want %v", tt.xs, tt.p, got, tt.want)
			}
		})
	}
}

func TestNewFigureBest(t *testing.T) {
	if f := newFigure([]float64{3, 1, 2}, false); f.Best != 1 || f.Median != 2 {
		t.Fatalf("times: got %+v, want best 1 median 2", f)
	}
	if f := newFigure([]float64{3, 1, 2}, true); f.Best != 3 {
		t.Fatalf("rates: got best %v, want 3", f.Best)
	}
}

func TestDAGShape(t *testing.T) {
	d := newDAG(10, 100, 3, dagSeed)
	if d.Modules() != 1000 {
		t.Fatalf("modules = %d, want 1000", d.Modules())
	}
	for l := range d.Layers {
		for i := range d.Width {
			deps := d.Deps[l][i]
			want := 3
			if l == 0 {
				want = 0
			}
			if len(deps) != want {
				t.Fatalf("m%d_%d has %d deps, want %d", l, i, len(deps), want)
			}
			for k, j := range deps {
				if j < 0 || j >= d.Width || (k > 0 && deps[k-1] >= j) {
					t.Fatalf("m%d_%d deps %v: want distinct ascending indexes in the layer above", l, i, deps)
				}
			}
		}
	}
	if again := newDAG(10, 100, 3, dagSeed); again.Pipeline("shell", "") != d.Pipeline("shell", "") {
		t.Fatal("the same seed gave another graph")
	}
	if other := newDAG(10, 100, 3, dagSeed+1); other.Pipeline("shell", "") == d.Pipeline("shell", "") {
		t.Fatal("another seed gave the same graph")
	}
}

// TestRenderingsGolden pins the three renderings of a small DAG.
func TestRenderingsGolden(t *testing.T) {
	d := newDAG(3, 4, 2, dagSeed)
	for name, got := range map[string]string{
		"small.pipeline.hcl": d.Pipeline("shell", `command = ["/bin/true"]`),
		"small.Makefile":     d.Makefile("/bin/true"),
		"small.ninja":        d.Ninja("/bin/true"),
		"small.noop.ninja":   d.Ninja(""),
	} {
		golden(t, name, got)
	}
}

// TestPeersRespectTheDAG runs the generated Makefile and build.ninja with
// a command that logs each module, and checks every module ran once, after
// its deps: the peers do the same work modpipe does.
func TestPeersRespectTheDAG(t *testing.T) {
	d := newDAG(4, 6, 2, dagSeed)
	tests := []struct {
		tool string
		file string
		body string
		args []string
	}{
		{"make", "Makefile", d.Makefile("echo $@ >> order.log"), []string{"-s", "-j", "4", "-f", "Makefile"}},
		{"ninja", "build.ninja", d.Ninja("echo $out >> order.log"), []string{"--quiet", "-j", "4"}},
	}
	for _, tt := range tests {
		t.Run(tt.tool, func(t *testing.T) {
			if _, err := exec.LookPath(tt.tool); err != nil {
				t.Skipf("%s is not installed (bench/setup.sh installs it)", tt.tool)
			}
			dir := t.TempDir()
			if _, err := writeFile(dir, tt.file, tt.body); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(tt.tool, tt.args...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", tt.tool, err, out)
			}
			raw, err := os.ReadFile(filepath.Join(dir, "order.log"))
			if err != nil {
				t.Fatal(err)
			}
			pos := map[string]int{}
			for i, line := range strings.Fields(string(raw)) {
				if _, dup := pos[line]; dup {
					t.Fatalf("%s ran twice", line)
				}
				pos[line] = i
			}
			if len(pos) != d.Modules() {
				t.Fatalf("%d modules ran, want %d", len(pos), d.Modules())
			}
			for l := 1; l < d.Layers; l++ {
				for i := range d.Width {
					for _, j := range d.Deps[l][i] {
						if pos[name(l-1, j)] > pos[name(l, i)] {
							t.Fatalf("%s ran before its dependency %s", name(l, i), name(l-1, j))
						}
					}
				}
			}
		})
	}
}

func TestTableGolden(t *testing.T) {
	met := true
	rows := []Row{
		{Scenario: "local DAG", Unit: "ms", Modpipe: newFigure([]float64{10, 12, 11}, false),
			Peers:  []Peer{{"make", newFigure([]float64{20, 22, 21}, false)}, {"ninja", newFigure(nil, false)}},
			Target: "<= 1.2x make"},
		{Scenario: "rate", Unit: "modules/s", HigherBetter: true, Modpipe: newFigure([]float64{7000, 6500}, true), Target: ">= 6000"},
		{Scenario: "not run", Modpipe: newFigure(nil, false), Note: "did not complete"},
	}
	rows[0].Met = &met
	rows[1].judge(rows[1].Modpipe.Median >= 6000, rows[1].Modpipe.Median)
	rows[2].judge(true, rows[2].Modpipe.Median)
	if rows[2].Met != nil {
		t.Fatal("a row with a missing figure was judged")
	}
	var b bytes.Buffer
	if err := writeTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	b.WriteString("\n")
	writeMarkdown(&b, rows)
	golden(t, "table.txt", b.String())

	path := filepath.Join(t.TempDir(), "results.json")
	if err := writeJSON(path, Report{Rounds: 3, Rows: rows}); err != nil {
		t.Fatalf("writeJSON with missing figures: %v", err)
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./bench -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file (go test ./bench -update rewrites it)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}
