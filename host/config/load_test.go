package config

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var testFacts = Facts{OS: "linux", Arch: "amd64", Instance: 0, CI: true, Capabilities: []string{"linux", "amd64", "docker"}}

func testOptions() Options {
	return Options{Environ: []string{"STAGE=ci", "HOME=/root"}, Facts: testFacts}
}

// golden compares got with the file at path, or rewrites it with -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs from the output (run with -update to accept):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

func renderDiags(t *testing.T, p *Pipeline, diags hcl.Diagnostics) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, p, diags, false); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestLoadInvalid loads every file under testdata/invalid and compares the
// rendered diagnostics (file:line:col, snippet, detail) with its golden.
func TestLoadInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			opts := testOptions()
			p, diags := Load(f, opts)
			if !diags.HasErrors() {
				t.Fatalf("Load(%s) reported no errors", f)
			}
			if p == nil {
				t.Fatalf("Load(%s) returned a nil pipeline for a readable file", f)
			}
			golden(t, strings.TrimSuffix(f, ".hcl")+".golden", renderDiags(t, p, diags))
		})
	}
}

// TestLoadValid loads every file under testdata/valid: no diagnostics at
// all, and a dump of what was decoded equal to its golden.
func TestLoadValid(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, diags := Load(f, testOptions())
			if len(diags) > 0 {
				t.Fatalf("Load(%s):\n%s", f, renderDiags(t, p, diags))
			}
			golden(t, strings.TrimSuffix(f, ".hcl")+".golden", dump(t, p))
		})
	}
}

// dump writes what Load decoded in a stable text form.
func dump(t *testing.T, p *Pipeline) []byte {
	t.Helper()
	var b strings.Builder
	rel := func(path string) string {
		if path == "" {
			return ""
		}
		r, err := filepath.Rel(p.Dir, path)
		if err != nil {
			t.Fatal(err)
		}
		return "<dir>/" + r
	}
	val := func(v cty.Value) string {
		data, err := ctyjson.Marshal(v, v.Type())
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	fmt.Fprintf(&b, "pipeline name=%q on_failure=%s secrets=%q\n", p.Name, p.OnFailure, p.Secrets)
	for _, n := range sortedKeys(p.Plugins) {
		pl := p.Plugins[n]
		fmt.Fprintf(&b, "plugin %s source=%s args=%q env=%v sha256=%s\n", n, rel(pl.Source), pl.Args, pl.Env, pl.SHA256)
	}
	for _, n := range sortedKeys(p.Variables) {
		v := p.Variables[n]
		fmt.Fprintf(&b, "variable %s = %s sensitive=%v\n", n, val(v.Value), v.Sensitive)
	}
	for _, n := range sortedKeys(p.Locals) {
		fmt.Fprintf(&b, "local %s = %s\n", n, val(p.Locals[n]))
	}
	for _, n := range sortedKeys(p.Limits) {
		fmt.Fprintf(&b, "limit %s max=%d\n", n, p.Limits[n].Max)
	}
	if d := p.Distributed; d != nil {
		fmt.Fprintf(&b, "distributed caps=%q interval=%s timeout=%s capability_timeout=%s coordinator=%q\n",
			d.Capabilities, d.HeartbeatInterval, d.HeartbeatTimeout, d.CapabilityTimeout, d.Coordinator)
		if e := d.Etcd; e != nil {
			fmt.Fprintf(&b, "  etcd endpoints=%q prefix=%q ca=%s\n", e.Endpoints, e.Prefix, rel(e.CAFile))
		}
	}
	for _, m := range p.Modules {
		fmt.Fprintf(&b, "module %d %s plugin=%s kind=%q\n", m.Index, m.Name, m.Plugin, m.Kind)
		fmt.Fprintf(&b, "  depends_on=%q references=%q\n", m.DependsOn, m.References)
		fmt.Fprintf(&b, "  timeout=%s retry=%d/%s always_run=%v ignore_failure=%v pin_to_master=%v\n",
			m.Timeout, m.Retry.Attempts, m.Retry.Backoff, m.AlwaysRun, m.IgnoreFailure, m.PinToMaster)
		fmt.Fprintf(&b, "  priority=%d category=%q requires=%q not_in_parallel=%q exclusive=%v limits=%q\n",
			m.Priority, m.Category, m.Requires, m.NotInParallel, m.Exclusive, m.Limits)
		if m.RunIf != nil {
			fmt.Fprintf(&b, "  run_if: %s\n", RunIfSource(m))
		}
		if m.Matrix != nil {
			for _, in := range m.Matrix.Instances() {
				keys := sortedKeys(in.Values)
				var kv []string
				for _, k := range keys {
					kv = append(kv, k+"="+in.Values[k])
				}
				fmt.Fprintf(&b, "  instance [%s] %s\n", in.Key, strings.Join(kv, " "))
			}
		}
		var attrs []string
		for n := range m.bodyAttrs {
			attrs = append(attrs, n)
		}
		sort.Strings(attrs)
		fmt.Fprintf(&b, "  body=%q\n", attrs)
	}
	return []byte(b.String())
}

func TestLoadMissingFile(t *testing.T) {
	p, diags := Load("testdata/no-such-file.hcl", testOptions())
	if p != nil {
		t.Errorf("Load of a missing file returned a pipeline")
	}
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "testdata/no-such-file.hcl") {
		t.Errorf("diagnostics do not name the file: %v", diags)
	}
	// Rendering with a nil pipeline must work.
	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, nil, diags, false); err != nil || buf.Len() == 0 {
		t.Errorf("WriteDiagnostics(nil pipeline) = %q, %v", buf.String(), err)
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct {
		name       string
		candidates []string
		want       string
	}{
		{"bulid", []string{"build", "test"}, "build"},
		{"tset", []string{"build", "test"}, "test"},
		{"deploy", []string{"build", "test"}, ""},
		{"build", []string{"build"}, ""},
		{"", nil, ""},
		{"tests", []string{"test", "tests2"}, "test"},
		{"m1", []string{"a"}, ""}, // every letter replaced: no typo
		{"m1", []string{"a", "m2"}, "m2"},
		{"ab", []string{"ba"}, "ba"}, // a swap is one slip
		{"abc", []string{"xyz"}, ""},
		// A short name is one edit from a typo, no more: "shell" is two
		// from "hello", an unrelated plugin.
		{"shell", []string{"hello"}, ""},
		{"shel", []string{"hello", "shell"}, "shell"},
		{"sehll", []string{"hello", "shell"}, "shell"},
		{"timout", []string{"timeout"}, "timeout"},
		// Longer names may be two edits off.
		{"dependson", []string{"depends_on"}, "depends_on"},
		{"enviroment", []string{"environment"}, "environment"},
		{"ennviroment", []string{"environment"}, "environment"},
		{"lint", []string{"unit"}, ""},
		{"1.27", []string{"1.25", "1.26"}, "1.25"},
	}
	for _, tt := range tests {
		if got := Suggest(tt.name, tt.candidates); got != tt.want {
			t.Errorf("Suggest(%q, %q) = %q, want %q", tt.name, tt.candidates, got, tt.want)
		}
	}
}

func TestDiagnosticsJSONRoundTrip(t *testing.T) {
	_, diags := Load("testdata/invalid/meta_arguments.hcl", testOptions())
	diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "no range"})
	data, err := DiagnosticsJSON(diags)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseDiagnosticsJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(diags) {
		t.Fatalf("round trip gave %d diagnostics, want %d", len(back), len(diags))
	}
	for i := range diags {
		a, b := diags[i], back[i]
		if a.Severity != b.Severity || a.Summary != b.Summary || a.Detail != b.Detail {
			t.Errorf("diagnostic %d: got %+v, want %+v", i, b, a)
		}
		if (a.Subject == nil) != (b.Subject == nil) || (a.Subject != nil && *a.Subject != *b.Subject) {
			t.Errorf("diagnostic %d subject: got %v, want %v", i, b.Subject, a.Subject)
		}
	}
	if _, err := ParseDiagnosticsJSON([]byte(`[{"severity":"fatal"}]`)); err == nil {
		t.Errorf("an unknown severity was accepted")
	}
}

func TestLoadNotHCL(t *testing.T) {
	t.Run("binary", func(t *testing.T) {
		src := append([]byte("pipeline {}\n\x7fELF"), 0, 1, 2)
		_, diags := LoadSource("bin", src, Options{})
		if len(diags) != 1 || diags[0].Summary != "Not a text file" || diags[0].Subject.Start.Line != 2 || diags[0].Subject.Start.Column != 5 ||
			!strings.Contains(diags[0].Detail, "it looks like a binary") {
			t.Fatalf("diags = %v, want one \"Not a text file\" at 2:5", diags)
		}
	})
	t.Run("not UTF-8", func(t *testing.T) {
		_, diags := LoadSource("latin1", []byte("# caf\xe9\n"), Options{})
		if len(diags) != 1 || diags[0].Summary != "Not a text file" || diags[0].Subject.Start.Column != 6 ||
			!strings.Contains(diags[0].Detail, "a byte that is not UTF-8 (0xe9, at byte 5): a pipeline file is UTF-8 text") {
			t.Fatalf("diags = %v, want one \"Not a text file\" at 1:6", diags)
		}
	})
	t.Run("text that is not HCL", func(t *testing.T) {
		var src strings.Builder
		for i := range 50 {
			fmt.Fprintf(&src, "target%d: dep\n\t$(CC) -o $@ $<\n", i)
		}
		_, diags := LoadSource("Makefile", []byte(src.String()), Options{})
		errs := diags.Errs()
		if len(errs) != maxSyntaxErrors+1 {
			t.Fatalf("%d errors, want the first %d and a count of the rest", len(errs), maxSyntaxErrors)
		}
		last := diags[len(diags)-1]
		if last.Summary != "Too many syntax errors" || !strings.Contains(last.Detail, "more syntax errors in Makefile are not shown") {
			t.Errorf("last diagnostic = %v", last)
		}
	})
}

// A matrix with errors is reported once: its module's matrix references
// are not reported again as references outside a matrix.
func TestBadMatrixReportedOnce(t *testing.T) {
	src := "module \"shell\" \"n\" {\n  matrix  = [\"a\", \"a\"]\n  command = [\"echo\", matrix.target, matrix.nope]\n}\n"
	_, diags := LoadSource("mx.hcl", []byte(src), Options{})
	if errs := diags.Errs(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "Duplicate matrix value") {
		t.Fatalf("diags = %v, want the duplicate value alone", diags)
	}
}

// A file with Windows line endings loads as its Unix twin: no \r left at
// the end of a heredoc's lines (a script would fail on every line).
func TestLoadCRLF(t *testing.T) {
	src := "locals {\r\n  script = <<-EOT\r\n    echo one\r\n    echo two\r\n  EOT\r\n}\r\nmodule \"shell\" \"a\" {\r\n  script = local.script\r\n}\r\n"
	p, diags := LoadSource("crlf.hcl", []byte(src), testOptions())
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if got := p.Locals["script"].AsString(); got != "echo one\necho two\n" {
		t.Errorf("script = %q, want %q", got, "echo one\necho two\n")
	}
}

// A pipeline file larger than MaxPipelineFile is refused after reading
// one byte past the limit, also where its size says nothing (a device
// that never ends): before, /dev/zero was read until memory ran out.
func TestLoadTooLarge(t *testing.T) {
	sparse := filepath.Join(t.TempDir(), "huge.hcl")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxPipelineFile + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	small := filepath.Join(t.TempDir(), "limit.hcl")
	if err := os.WriteFile(small, []byte("# a comment\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file string
		tooLarge   bool
	}{
		{"a file one byte over", sparse, true},
		{"a device without end", "/dev/zero", true},
		{"a small file", small, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.file); err != nil {
				t.Skip(err)
			}
			_, err := ReadFile(tc.file)
			if !tc.tooLarge {
				if err != nil {
					t.Fatalf("ReadFile(%s) = %v", tc.file, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.file) || !strings.Contains(err.Error(), "larger than 64 MiB") {
				t.Fatalf("ReadFile(%s) = %v, want an error naming the file and the limit", tc.file, err)
			}
			if tc.file == "/dev/zero" {
				return // read once is enough: each read is 64 MiB
			}
			_, diags := Load(tc.file, testOptions())
			if !diags.HasErrors() || !strings.Contains(diags.Error(), "larger than 64 MiB") {
				t.Errorf("Load(%s) diagnostics = %v", tc.file, diags)
			}
		})
	}
}
