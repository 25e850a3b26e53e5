package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var update = flag.Bool("update", false, "re-capture testdata/events from the fixture modules and rewrite testdata/golden")

// TestParseEvents feeds captured `go test -json` output through the parser
// and compares the result and the human-readable lines with golden files.
func TestParseEvents(t *testing.T) {
	for _, name := range []string{"pass", "fail", "buildfail"} {
		t.Run(name, func(t *testing.T) {
			events := filepath.Join("testdata", "events", name+".jsonl")
			if *update {
				captureEvents(t, name, events)
			}
			f, err := os.Open(events)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var lines []string
			p := NewTestParser(func(l string) { lines = append(lines, l) })
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				p.Line(sc.Text())
			}
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
			got, err := json.MarshalIndent(struct {
				Result TestResult `json:"result"`
				Output []string   `json:"output"`
			}{p.Result(), lines}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join("testdata", "golden", name+".json"), got)
		})
	}
}

func TestParseVet(t *testing.T) {
	for _, name := range []string{"vet", "vet-buildfail"} {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "events", name+".stderr"))
			if err != nil {
				t.Fatal(err)
			}
			var v vetParser
			for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
				v.Line(l)
			}
			got, err := json.MarshalIndent(v.findings, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join("testdata", "golden", name+".json"), got)
		})
	}
}

// TestParserEdgeCases covers streams the fixtures do not produce.
func TestParserEdgeCases(t *testing.T) {
	tests := []struct {
		name       string
		lines      []string
		wantStatus string
		wantFail   []string // failing test names ("" = package-level)
		wantOutput string   // substring of the first failure's output
		wantHuman  []string
	}{
		{
			name: "killed mid-test",
			lines: []string{
				`{"Action":"start","Package":"p"}`,
				`{"Action":"run","Package":"p","Test":"TestHang"}`,
				`{"Action":"output","Package":"p","Test":"TestHang","Output":"=== RUN   TestHang\n"}`,
			},
			wantStatus: "fail", wantFail: []string{""}, wantOutput: "tests still running: TestHang",
		},
		{
			name: "panic outside tests",
			lines: []string{
				`{"Action":"start","Package":"p"}`,
				`{"Action":"output","Package":"p","Output":"panic: boom in TestMain\n"}`,
				`{"Action":"output","Package":"p","Output":"FAIL\tp\t0.01s\n"}`,
				`{"Action":"fail","Package":"p","Elapsed":0.01}`,
			},
			wantStatus: "fail", wantFail: []string{""}, wantOutput: "panic: boom in TestMain",
			wantHuman: []string{"panic: boom in TestMain", "FAIL\tp\t0.01s"},
		},
		{
			name: "raw line and multi-line output",
			lines: []string{
				`go: downloading example.com/x v1.0.0`,
				`{"Action":"start","Package":"p"}`,
				`{"Action":"run","Package":"p","Test":"TestX"}`,
				`{"Action":"output","Package":"p","Test":"TestX","Output":"a\nb\n"}`,
				`{"Action":"fail","Package":"p","Test":"TestX"}`,
				`{"Action":"fail","Package":"p"}`,
			},
			wantStatus: "fail", wantFail: []string{"TestX"}, wantOutput: "a\nb",
			wantHuman: []string{"go: downloading example.com/x v1.0.0", "a", "b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var human []string
			p := NewTestParser(func(l string) { human = append(human, l) })
			for _, l := range tt.lines {
				p.Line(l)
			}
			res := p.Result()
			if len(res.Packages) != 1 {
				t.Fatalf("packages = %+v, want one", res.Packages)
			}
			pr := res.Packages[0]
			if pr.Status != tt.wantStatus {
				t.Errorf("status = %q, want %q", pr.Status, tt.wantStatus)
			}
			var names []string
			for _, f := range pr.Failures {
				names = append(names, f.Test)
			}
			if strings.Join(names, ",") != strings.Join(tt.wantFail, ",") {
				t.Errorf("failures = %q, want %q", names, tt.wantFail)
			}
			if len(pr.Failures) > 0 && !strings.Contains(pr.Failures[0].Output, tt.wantOutput) {
				t.Errorf("failure output %q does not contain %q", pr.Failures[0].Output, tt.wantOutput)
			}
			if tt.wantHuman != nil && strings.Join(human, "|") != strings.Join(tt.wantHuman, "|") {
				t.Errorf("human lines = %q, want %q", human, tt.wantHuman)
			}
			if msg, _ := res.Summary(5, 40); msg == "" {
				t.Error("Summary() is empty for a failed run")
			}
		})
	}
}

// lockedBuffer collects streamed output from the two reader goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func module(name string) string { return filepath.Join("testdata", "modules", name) }

// TestRunTestReal runs the real `go test -json` on the fixture modules.
func TestRunTestReal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test on fixture modules")
	}
	tests := []struct {
		module       string
		wantErr      []string // substrings of the error; none = success
		wantTail     string
		wantPackages map[string]string // package -> status
		wantPassed   int
		wantFailed   int
		wantSkipped  int
		wantStreamed string
		notStreamed  string
	}{
		{
			module:       "pass",
			wantPackages: map[string]string{"example.com/pass": "pass", "example.com/pass/sub": "skip"},
			wantPassed:   4, wantSkipped: 1,
			wantStreamed: "--- SKIP: TestSkipped",
			notStreamed:  "--- PASS",
		},
		{
			module:       "fail",
			wantErr:      []string{"2 failure(s) in 1 package(s)", "example.com/fail.TestMulBroken", "example.com/fail.TestMulSub/bad"},
			wantTail:     "Mul(3, 3) = 6, want 9",
			wantPackages: map[string]string{"example.com/fail": "fail", "example.com/fail/other": "pass"},
			wantPassed:   3, wantFailed: 3,
			wantStreamed: "--- FAIL: TestMulBroken",
		},
		{
			module:       "buildfail",
			wantErr:      []string{"example.com/buildfail [build failed]"},
			wantTail:     `cannot use "not an int"`,
			wantPackages: map[string]string{"example.com/buildfail": "fail"},
			wantStreamed: "broken.go:5:28",
		},
	}
	for _, tt := range tests {
		t.Run(tt.module, func(t *testing.T) {
			var out, errOut lockedBuffer
			cfg := Config{Dir: module(tt.module), Flags: []string{"-count=1"}}
			res, err := RunTest(context.Background(), cfg, Streams{Stdout: &out, Stderr: &errOut}, 0)
			if len(tt.wantErr) == 0 && err != nil {
				t.Fatalf("RunTest: %v", err)
			}
			if len(tt.wantErr) > 0 {
				var fe *FailureError
				if !errors.As(err, &fe) {
					t.Fatalf("err = %v, want a *FailureError", err)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(fe.Message, w) {
						t.Errorf("message %q does not contain %q", fe.Message, w)
					}
				}
				if !strings.Contains(fe.Tail, tt.wantTail) {
					t.Errorf("tail %q does not contain %q", fe.Tail, tt.wantTail)
				}
			}
			got := map[string]string{}
			for _, p := range res.Packages {
				got[p.Package] = p.Status
			}
			if len(got) != len(tt.wantPackages) {
				t.Errorf("packages = %v, want %v", got, tt.wantPackages)
			}
			for p, s := range tt.wantPackages {
				if got[p] != s {
					t.Errorf("package %s status = %q, want %q", p, got[p], s)
				}
			}
			if res.Passed != tt.wantPassed || res.Failed != tt.wantFailed || res.Skipped != tt.wantSkipped {
				t.Errorf("totals passed/failed/skipped = %d/%d/%d, want %d/%d/%d", res.Passed, res.Failed, res.Skipped, tt.wantPassed, tt.wantFailed, tt.wantSkipped)
			}
			streamed := out.String()
			if tt.notStreamed != "" && strings.Contains(streamed, tt.notStreamed) {
				t.Errorf("streamed output contains %q:\n%s", tt.notStreamed, streamed)
			}
			if !strings.Contains(streamed, tt.wantStreamed) {
				t.Errorf("streamed output does not contain %q:\n%s", tt.wantStreamed, streamed)
			}
			if strings.Contains(streamed, `"Action"`) || strings.Contains(streamed, "=== RUN") {
				t.Errorf("streamed output has raw JSON or framing lines:\n%s", streamed)
			}
		})
	}
}

func TestRunBuildAndVetReal(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build and go vet on fixture modules")
	}
	t.Run("build ok", func(t *testing.T) {
		res, err := RunBuild(context.Background(), Config{Dir: module("pass")}, Streams{}, 0)
		if err != nil {
			t.Fatalf("RunBuild: %v", err)
		}
		if strings.Join(res.Packages, ",") != "./..." {
			t.Errorf("packages = %q, want the default ./...", res.Packages)
		}
	})
	t.Run("build error", func(t *testing.T) {
		res, err := RunBuild(context.Background(), Config{Dir: module("buildfail")}, Streams{}, 0)
		var fe *FailureError
		if !errors.As(err, &fe) || !strings.Contains(fe.Message, "broken.go:5:28") {
			t.Fatalf("err = %v, want a FailureError naming broken.go:5:28", err)
		}
		if !strings.Contains(res.Output, "cannot use") {
			t.Errorf("output %q lacks the compiler error", res.Output)
		}
	})
	t.Run("vet clean", func(t *testing.T) {
		res, err := RunVet(context.Background(), Config{Dir: module("pass")}, Streams{}, 0)
		if err != nil || len(res.Findings) != 0 {
			t.Fatalf("RunVet = %+v, %v; want no findings", res, err)
		}
	})
	t.Run("vet findings", func(t *testing.T) {
		res, err := RunVet(context.Background(), Config{Dir: module("vet"), Packages: []string{"."}}, Streams{}, 0)
		var fe *FailureError
		if !errors.As(err, &fe) || !strings.Contains(fe.Message, "2 finding(s)") {
			t.Fatalf("err = %v, want a FailureError with 2 findings", err)
		}
		want := []VetFinding{
			{Position: "vet.go:8:28", Message: "fmt.Sprintf format %d has arg name of wrong type string"},
			{Position: "vet.go:13:22", Message: "fmt.Sprintf format %s has arg n of wrong type int"},
		}
		if len(res.Findings) != len(want) {
			t.Fatalf("findings = %+v, want %+v", res.Findings, want)
		}
		for i := range want {
			if res.Findings[i].Position != want[i].Position || res.Findings[i].Message != want[i].Message || res.Findings[i].Package != "example.com/vet" {
				t.Errorf("finding %d = %+v, want %+v in package example.com/vet", i, res.Findings[i], want[i])
			}
		}
	})
	t.Run("vet findings beside a package that does not type-check", func(t *testing.T) {
		res, _ := RunVet(context.Background(), Config{Dir: module("vetmulti"), Packages: []string{"./vetbad", "./broken"}}, Streams{}, 0)
		found := false
		for _, f := range res.Findings {
			if strings.HasPrefix(f.Position, "vetbad/") {
				found = true
				if f.Package != "example.com/vetmulti/vetbad" {
					t.Errorf("finding %+v: package %q, want example.com/vetmulti/vetbad", f, f.Package)
				}
			}
		}
		if !found {
			t.Fatalf("no finding in vetbad: %+v", res.Findings)
		}
	})
	t.Run("bad flag", func(t *testing.T) {
		_, err := RunTest(context.Background(), Config{Dir: module("pass"), Flags: []string{"-no-such-flag"}}, Streams{}, 0)
		var fe *FailureError
		if !errors.As(err, &fe) || !strings.Contains(fe.Tail, "no-such-flag") {
			t.Fatalf("err = %v, want a FailureError whose tail names the flag", err)
		}
	})
}

func captureEvents(t *testing.T, name, path string) {
	t.Helper()
	cmd := exec.Command("go", "test", "-json", "-count=1", "./...")
	cmd.Dir = module(name)
	out, _ := cmd.Output() // failing fixtures exit non-zero on purpose
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	got = append(got, '\n')
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the result (run with -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}
