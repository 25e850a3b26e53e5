package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/modfile"

	"github.com/modpipe/modpipe/plugins/internal/proc"
	"github.com/modpipe/modpipe/sdk"
)

// Result type names of the build and vet kinds.
const (
	BuildResultType = "go.build/v1"
	VetResultType   = "go.vet/v1"
)

// outputTailLines is how many trailing output lines a result or failure
// carries.
const outputTailLines = 40

// Config is the configuration shared by the build, test and vet kinds.
type Config struct {
	Packages []string          `modpipe:"packages,optional" doc:"Package patterns to work on; default [\"./...\"]."`
	Dir      string            `modpipe:"dir,optional" doc:"Directory to run go in (the module's directory); relative to the host's working directory."`
	Flags    []string          `modpipe:"flags,optional" doc:"Extra flags passed to the go command before the packages, e.g. [\"-race\", \"-count=1\"]."`
	Env      map[string]string `modpipe:"env,optional" doc:"Environment variables added to the inherited environment, e.g. {CGO_ENABLED = \"0\"}."`
}

// Validate checks what the types do not: the environment's names, and a
// packages list that is given but empty (omit it for ./...).
func (c Config) Validate() error {
	if c.Packages != nil && len(c.Packages) == 0 {
		return sdk.AttributeError("packages", "packages is an empty list; omit it to work on [\"./...\"], or name the package patterns")
	}
	return proc.CheckEnvKeys(c.Env)
}

func (c Config) packages() []string {
	if len(c.Packages) == 0 {
		return []string{"./..."}
	}
	return c.Packages
}

func (c Config) environ() []string {
	env := proc.Environ()
	keys := make([]string, 0, len(c.Env))
	for k := range c.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+c.Env[k])
	}
	return env
}

// argv is `go SUBCOMMAND [extra...] FLAGS -- PACKAGES`. Packages come after
// the flags, as the go command requires.
func (c Config) argv(sub string, extra ...string) []string {
	argv := append([]string{"go", sub}, extra...)
	argv = append(argv, c.Flags...)
	return append(argv, c.packages()...)
}

// Streams are where output lines go while the go command runs.
type Streams struct {
	Stdout, Stderr io.Writer
}

// FailureError is a go command that ran and reported failure (failing
// tests, compile errors, vet findings). Tail is the output to show with it.
type FailureError struct {
	Message string
	Tail    string
}

func (e *FailureError) Error() string { return e.Message }

// BuildResult is the value of a finished build module.
type BuildResult struct {
	Packages []string `json:"packages"`
	// Output is the tail of go build's output (empty on a clean build).
	Output string `json:"output"`
}

// VetResult is the value of a finished vet module.
type VetResult struct {
	Packages []string     `json:"packages"`
	Findings []VetFinding `json:"findings"`
}

// VetFinding is one problem go vet reported.
type VetFinding struct {
	// Package is the import path of the finding's package: from its
	// file's place in its module, else the one vet named before it.
	Package  string `json:"package"`
	Position string `json:"position"`
	Message  string `json:"message"`
}

// RunTest runs `go test -json` and parses its events as they arrive,
// streaming the tests' output to s.Stdout and go's own stderr to s.Stderr.
func RunTest(ctx context.Context, cfg Config, s Streams, killGrace time.Duration) (TestResult, error) {
	parser := NewTestParser(func(l string) { writeLine(s.Stdout, l) })
	stderr := proc.NewTail(outputTailLines)
	start := time.Now()
	exit, err := runGo(ctx, proc.Command{
		Argv:      cfg.argv("test", "-json"),
		Dir:       cfg.Dir,
		Env:       cfg.environ(),
		KillGrace: killGrace,
		Stdout:    parser.Line,
		Stderr:    func(l string) { writeLine(s.Stderr, l); stderr.Add(l) },
	})
	res := parser.Result()
	res.Elapsed = time.Since(start).Seconds()
	if err != nil {
		return res, commandError("go test", err)
	}
	if msg, tail := res.Summary(5, outputTailLines); msg != "" {
		if st := stderr.String(); st != "" {
			tail += "\n" + st
		}
		return res, &FailureError{Message: msg, Tail: tail}
	}
	if exit.Code != 0 {
		// go test failed without a failing package: a bad flag, a pattern
		// matching nothing. Its stderr says why.
		return res, &FailureError{Message: fmt.Sprintf("go test failed: %s", exitText(exit)), Tail: stderr.String()}
	}
	return res, nil
}

// RunBuild runs `go build`.
func RunBuild(ctx context.Context, cfg Config, s Streams, killGrace time.Duration) (BuildResult, error) {
	out := proc.NewTail(outputTailLines)
	exit, err := runGo(ctx, proc.Command{
		Argv:      cfg.argv("build"),
		Dir:       cfg.Dir,
		Env:       cfg.environ(),
		KillGrace: killGrace,
		Stdout:    func(l string) { writeLine(s.Stdout, l); out.Add(l) },
		Stderr:    func(l string) { writeLine(s.Stderr, l); out.Add(l) },
	})
	res := BuildResult{Packages: cfg.packages(), Output: out.String()}
	if err != nil {
		return res, commandError("go build", err)
	}
	if exit.Code != 0 {
		return res, &FailureError{Message: fmt.Sprintf("go build failed (%s): %s", exitText(exit), firstProblem(out.Lines())), Tail: res.Output}
	}
	return res, nil
}

// RunVet runs `go vet`; any finding fails the module.
func RunVet(ctx context.Context, cfg Config, s Streams, killGrace time.Duration) (VetResult, error) {
	out := proc.NewTail(outputTailLines)
	vp := &vetParser{}
	exit, err := runGo(ctx, proc.Command{
		Argv:      cfg.argv("vet"),
		Dir:       cfg.Dir,
		Env:       cfg.environ(),
		KillGrace: killGrace,
		Stdout:    func(l string) { writeLine(s.Stdout, l); out.Add(l) },
		Stderr:    func(l string) { writeLine(s.Stderr, l); out.Add(l); vp.Line(l) },
	})
	res := VetResult{Packages: cfg.packages(), Findings: vp.findings}
	if res.Findings == nil {
		res.Findings = []VetFinding{}
	}
	pkgs := packageFinder{}
	for i := range res.Findings {
		if p, ok := pkgs.of(cfg.Dir, res.Findings[i].Position); ok {
			res.Findings[i].Package = p
		}
	}
	if err != nil {
		return res, commandError("go vet", err)
	}
	if n := len(res.Findings); n > 0 {
		f := res.Findings[0]
		return res, &FailureError{Message: fmt.Sprintf("go vet reported %d finding(s); first: %s: %s", n, f.Position, f.Message), Tail: out.String()}
	}
	if exit.Code != 0 {
		return res, &FailureError{Message: fmt.Sprintf("go vet failed (%s): %s", exitText(exit), firstProblem(out.Lines())), Tail: out.String()}
	}
	return res, nil
}

// vetPosition matches "file.go:LINE[:COL]: message", optionally behind the
// "vet: " prefix vet puts on type-checking errors.
var vetPosition = regexp.MustCompile(`^(?:vet: )?(\S+?\.go:\d+(?::\d+)?): (.*)$`)

// vetParser collects findings from go vet's stderr, line by line.
type vetParser struct {
	pkg      string
	findings []VetFinding
}

func (v *vetParser) Line(l string) {
	switch {
	case strings.HasPrefix(l, "# "):
		// "# import/path" or "# [import/path]" (the package's test variant).
		v.pkg = strings.Trim(strings.TrimPrefix(l, "# "), "[]")
	case vetPosition.MatchString(l):
		m := vetPosition.FindStringSubmatch(l)
		v.findings = append(v.findings, VetFinding{Package: v.pkg, Position: m[1], Message: m[2]})
	case strings.HasPrefix(l, "\t") && len(v.findings) > 0:
		// A continuation of the previous finding.
		f := &v.findings[len(v.findings)-1]
		f.Message += "\n" + strings.TrimPrefix(l, "\t")
	}
}

// packageFinder tells the import path of the package a vet finding is in
// from its file's place in its module. vet names a package in a "# path"
// header only before some of its output (type errors), and its analyzers'
// findings come without one: the header seen last would name another
// package, or none. Module roots are remembered by directory.
type packageFinder map[string]string // directory -> import path, "" if none

func (f packageFinder) of(dir, position string) (string, bool) {
	i := strings.Index(position, ".go:")
	if i < 0 {
		return "", false
	}
	file := position[:i+len(".go")]
	if !filepath.IsAbs(file) {
		file = filepath.Join(dir, file)
	}
	d, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return "", false
	}
	if p, ok := f[d]; ok {
		return p, p != ""
	}
	p := ""
	for root := d; ; {
		if data, err := os.ReadFile(filepath.Join(root, "go.mod")); err == nil {
			if mod := modfile.ModulePath(data); mod != "" {
				rel, err := filepath.Rel(root, d)
				if err == nil {
					p = mod
					if rel != "." {
						p = mod + "/" + filepath.ToSlash(rel)
					}
				}
			}
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			break
		}
		root = parent
	}
	f[d] = p
	return p, p != ""
}

// commandError explains an error from proc.Run for the go command.
func commandError(what string, err error) error {
	var nf *proc.NotFoundError
	if errors.As(err, &nf) {
		return fmt.Errorf("%s: the go command was not found on PATH; install Go or put its bin directory on PATH (%w)", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func exitText(e proc.Exit) string {
	if e.Signal != "" {
		return "killed by signal: " + e.Signal
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// firstProblem picks the first line that looks like an error, skipping
// go's "# package" headers.
func firstProblem(lines []string) string {
	for _, l := range lines {
		if l != "" && !strings.HasPrefix(l, "# ") {
			return l
		}
	}
	return "no output"
}

func writeLine(w io.Writer, line string) {
	if w != nil {
		_, _ = io.WriteString(w, line+"\n")
	}
}

// runGo runs a go command with GOTMPDIR set to a folder of its own, which
// it removes when the command ends. The go command builds in a work
// folder there and removes it only when it ends by itself or on an
// interrupt: a module cancelled by its timeout or Ctrl-C (SIGTERM, then
// SIGKILL) would otherwise leave a go-build folder of compiled packages
// and test binaries in the temporary folder each time. A GOTMPDIR the
// module sets is its own to manage.
func runGo(ctx context.Context, c proc.Command) (proc.Exit, error) {
	for _, kv := range c.Env {
		if strings.HasPrefix(kv, "GOTMPDIR=") {
			return proc.Run(ctx, c)
		}
	}
	dir, err := os.MkdirTemp("", "modpipe-go-")
	if err != nil {
		return proc.Exit{}, fmt.Errorf("make a work folder for the go command: %w", err)
	}
	defer os.RemoveAll(dir)
	c.Env = append(c.Env, "GOTMPDIR="+dir)
	return proc.Run(ctx, c)
}
