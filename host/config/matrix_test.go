package config

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestLongMatrixAxis loads a module whose one axis has 10,000 values,
// the most a module may have, each an instance of its own.
func TestLongMatrixAxis(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("locals {\n  shards = [")
	for i := range 10000 {
		fmt.Fprintf(&sb, "%q, ", fmt.Sprintf("s%d", i))
	}
	sb.WriteString("]\n}\nmodule \"shell\" \"m\" {\n  matrix = local.shards\n}\n")
	p := mustLoad(t, sb.String(), Options{})
	in := p.Module("m").Matrix.Instances()
	if len(in) != 10000 || in[0].Key != "s0" || in[9999].Key != "s9999" {
		t.Fatalf("%d instances, first %s, last %s", len(in), in[0].Key, in[len(in)-1].Key)
	}
	// A duplicate is still found, at its line.
	src := strings.Replace(sb.String(), `"s9998"`, `"s17"`, 1)
	_, diags := loadString(t, src, Options{})
	if !diags.HasErrors() || !strings.Contains(diags.Error(), `lists "s17" twice`) {
		t.Fatalf("diags = %v, want the duplicate s17", diags)
	}
}

// TestMatrixExcludeIndex checks Instances against matching every exclude
// entry against every combination, on random matrices whose entries name
// every axis, some of them, or values no axis has.
func TestMatrixExcludeIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 6))
	for round := range 300 {
		mx := &Matrix{}
		for a := range 1 + rng.IntN(3) {
			ax := Axis{Name: fmt.Sprintf("a%d", a)}
			for v := range 1 + rng.IntN(4) {
				ax.Values = append(ax.Values, fmt.Sprintf("v%d", v))
			}
			mx.Axes = append(mx.Axes, ax)
		}
		for range rng.IntN(6) {
			ex := map[string]string{}
			for _, ax := range mx.Axes {
				if rng.IntN(3) > 0 {
					ex[ax.Name] = fmt.Sprintf("v%d", rng.IntN(5)) // v4 is on no axis
				}
			}
			if len(ex) > 0 {
				mx.Exclude = append(mx.Exclude, ex)
			}
		}
		var want []string
		for _, in := range product(mx.Axes) {
			if !excluded(mx.Exclude, in) {
				want = append(want, mx.key(in))
			}
		}
		var got []string
		for _, in := range mx.Instances() {
			got = append(got, in.Key)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: axes %v exclude %v: instances %v, want %v", round, mx.Axes, mx.Exclude, got, want)
		}
	}
}

// product is every combination of the axes' values, the first axis
// varying slowest.
func product(axes []Axis) []map[string]string {
	out := []map[string]string{{}}
	for _, ax := range axes {
		var next []map[string]string
		for _, c := range out {
			for _, v := range ax.Values {
				m := maps.Clone(c)
				m[ax.Name] = v
				next = append(next, m)
			}
		}
		out = next
	}
	return out
}
