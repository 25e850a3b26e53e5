package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad loads arbitrary bytes as a pipeline file (R9.2). Whatever the
// input, Load must not panic, must return a pipeline for readable input,
// and everything it returns must be safe to use.
func FuzzLoad(f *testing.F) {
	for _, pattern := range []string{"testdata/valid/*.hcl", "testdata/invalid/*.hcl"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		p, diags := LoadSource("fuzz.hcl", src, testOptions())
		if p == nil {
			t.Fatal("LoadSource returned a nil pipeline")
		}
		if err := WriteDiagnostics(discard{}, p, diags, false); err != nil {
			t.Fatal(err)
		}
		if _, err := DiagnosticsJSON(diags); err != nil {
			t.Fatal(err)
		}
		for _, m := range p.Modules {
			m.Matrix.Instances()
			_ = RunIfSource(m)
			m.CheckBody(execKind)
			ctx := p.EvalContext(Scope{Facts: testFacts})
			m.EvalRunIf(ctx)
			m.EvalConfig(ctx, execKind)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
