package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/report"
)

// The Python example plugin (plugins/examples/python) proves R2.6: a
// plugin in another language, speaking go-plugin and the modpipe protocol
// without Go, in one pipeline with Go plugins. Its build script installs
// what it needs from Debian when missing, so nothing here is skipped.

var (
	pythonOnce sync.Once
	pythonErr  error
)

// pythonPlugin builds the Python plugin into binDir/plugins (next to the
// Go plugins TestMain built) once, and returns its path.
func pythonPlugin(t *testing.T) string {
	t.Helper()
	out := filepath.Join(binDir, "plugins", "modpipe-plugin-template")
	pythonOnce.Do(func() {
		root, err := filepath.Abs("../..")
		if err != nil {
			pythonErr = err
			return
		}
		cmd := exec.Command("bash", filepath.Join(root, "plugins/examples/python/build.sh"), out)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			pythonErr = fmt.Errorf("build the Python plugin: %v\n%s", err, b)
		}
	})
	if pythonErr != nil {
		t.Fatal(pythonErr)
	}
	return out
}

// TestPythonPluginPipeline runs Go and Python modules together: a shell
// module's result reaches the Python module through an HCL reference and
// through the broker (the Python plugin calling the host), and the Python
// modules' results reach a shell module through HCL references.
func TestPythonPluginPipeline(t *testing.T) {
	pythonPlugin(t)
	dir := t.TempDir()
	r := runHost(t, "run", "testdata/python.hcl", "--var", "dir="+dir)
	r.wantCode(t, 0)

	notes := r.module(t, "notes")
	wantStatus(t, notes, coordinator.StatusSucceeded)
	if notes.Type != "template.render/v1" || notes.Plugin != "template" || notes.PluginVersion != "0.1.0" {
		t.Errorf("notes envelope: type %q plugin %q %q", notes.Type, notes.Plugin, notes.PluginVersion)
	}
	var rendered struct {
		Text         string            `json:"text"`
		SHA256       string            `json:"sha256"`
		Lines        int               `json:"lines"`
		Placeholders []string          `json:"placeholders"`
		From         map[string]string `json:"from"`
		Output       string            `json:"output"`
	}
	if err := json.Unmarshal(notes.Value, &rendered); err != nil {
		t.Fatalf("notes value: %v\n%s", err, notes.Value)
	}
	const wantText = "release 1.3 of abc123 (succeeded, shell.exec/v1)"
	if rendered.Text != wantText {
		t.Errorf("notes text %q, want %q", rendered.Text, wantText)
	}
	if sum := sha256.Sum256([]byte(wantText)); rendered.SHA256 != hex.EncodeToString(sum[:]) || rendered.Lines != 1 {
		t.Errorf("notes sha256 %s lines %d", rendered.SHA256, rendered.Lines)
	}
	if got := strings.Join(rendered.Placeholders, ","); got != "from.status,from.type,from.value.json.sha,version" {
		t.Errorf("notes placeholders %s", got)
	}
	// from is what the plugin fetched from the host through the broker.
	if rendered.From["module"] != "producer" || rendered.From["status"] != "succeeded" || rendered.From["type"] != "shell.exec/v1" {
		t.Errorf("notes from %v", rendered.From)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "out", "notes.txt")); err != nil || string(b) != wantText {
		t.Errorf("notes output file: %q, %v", b, err)
	}

	sums := r.module(t, "sums")
	wantStatus(t, sums, coordinator.StatusSucceeded)
	var checksum struct {
		Algorithm string `json:"algorithm"`
		Count     int    `json:"count"`
		Bytes     int    `json:"bytes"`
		Digest    string `json:"digest"`
		Files     []struct {
			Path   string `json:"path"`
			Digest string `json:"digest"`
			Bytes  int    `json:"bytes"`
		} `json:"files"`
	}
	if err := json.Unmarshal(sums.Value, &checksum); err != nil {
		t.Fatalf("sums value: %v\n%s", err, sums.Value)
	}
	// The digest is the sha256 of sha256sum's listing of the files.
	var listing strings.Builder
	for _, f := range []struct{ path, data string }{{"src/a.txt", "alpha\n"}, {"src/deep/b.txt", "beta\n"}} {
		sum := sha256.Sum256([]byte(f.data))
		fmt.Fprintf(&listing, "%x  %s\n", sum, f.path)
	}
	wantDigest := sha256.Sum256([]byte(listing.String()))
	if sums.Type != "template.checksum/v1" || checksum.Algorithm != "sha256" || checksum.Count != 2 || checksum.Bytes != 11 ||
		checksum.Digest != hex.EncodeToString(wantDigest[:]) || len(checksum.Files) != 2 || checksum.Files[1].Path != "src/deep/b.txt" {
		t.Errorf("sums: type %q value %s; want digest %x", sums.Type, sums.Value, wantDigest)
	}

	consumer := r.module(t, "consumer")
	wantStatus(t, consumer, coordinator.StatusSucceeded)
	var shell struct {
		Stdout string `json:"stdout"`
	}
	if err := json.Unmarshal(consumer.Value, &shell); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(shell.Stdout) != "verified 2 files and 1 line" {
		t.Errorf("consumer stdout %q", shell.Stdout)
	}
	for _, want := range []string{
		"notes | fetching the result of producer from the host",
		"notes | producer: succeeded, shell.exec/v1",
		"notes | " + wantText,
		"sums | " + checksum.Files[0].Digest + "  src/a.txt",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the Python module's output lines should stream to the host; missing %q in:\n%s", want, r.stdout)
		}
	}
}

// TestPythonPluginValidate: the plugin's Validate diagnostics reach the
// user at the attribute they concern, before anything runs.
func TestPythonPluginValidate(t *testing.T) {
	pythonPlugin(t)
	for _, cmd := range []string{"validate", "run"} {
		t.Run(cmd, func(t *testing.T) {
			r := runHost(t, cmd, "testdata/python_invalid.hcl")
			r.wantCode(t, 2)
			for _, want := range []string{
				"python_invalid.hcl:4:3: Placeholder ${who} has no value",
				`4:   template = "hello $who"`,
				"Add who to values (values set: name)",
				`python_invalid.hcl:9:3: Unknown algorithm "sha3"`,
				"Use one of: sha256, sha512, sha1, md5, blake2b.",
			} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr does not mention %q:\n%s", want, r.stderr)
				}
			}
			if r.ranSomething() {
				t.Errorf("an invalid pipeline must not run anything, but a report was written")
			}
		})
	}
}

// TestPythonPluginErrors: failures only known at run time come back as
// failed envelopes with the right error kind and a clear message.
func TestPythonPluginErrors(t *testing.T) {
	pythonPlugin(t)
	r := runHost(t, "run", "testdata/python_errors.hcl", "--var", "dir="+t.TempDir())
	r.wantCode(t, 1)
	tests := []struct {
		module, kind, message string
	}{
		{"typo", coordinator.ErrorKindConfig, "placeholder ${from.value.json.shaa} has no value (from.value.json has: sha)"},
		{"sneaky", coordinator.ErrorKindConfig, `module "producer" is not a dependency of module "sneaky"`},
		{"none", coordinator.ErrorKindModule, "0 files match *.nothing"},
	}
	for _, tt := range tests {
		e := r.module(t, tt.module)
		wantStatus(t, e, coordinator.StatusFailed)
		if e.Error == nil || e.Error.Kind != tt.kind || !strings.Contains(e.Error.Message, tt.message) {
			t.Errorf("%s: error %+v, want kind %s and message containing %q", tt.module, e.Error, tt.kind, tt.message)
		}
	}
	// A failed module may still carry its value.
	var none struct {
		Count *int `json:"count"`
	}
	if err := json.Unmarshal(r.module(t, "none").Value, &none); err != nil || none.Count == nil || *none.Count != 0 {
		t.Errorf("none should carry its (empty) result: %s (%v)", r.module(t, "none").Value, err)
	}
	wantStatus(t, r.module(t, "producer"), coordinator.StatusSucceeded)
}

// hugeFile makes dir/huge.bin: sparse, so it uses no disk, but hashing it
// takes minutes.
func hugeFile(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	f, err := os.Create(filepath.Join(dir, "huge.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(64 << 30); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPythonPluginTimeout: a module that runs past its timeout is
// cancelled and stops in the plugin, which goes on serving the next
// module in the same process (it is neither killed as hung nor restarted).
func TestPythonPluginTimeout(t *testing.T) {
	pythonPlugin(t)
	r := runHost(t, "run", "testdata/python_timeout.hcl", "--var", "dir="+hugeFile(t), "--log-level", "info")
	r.wantCode(t, 0)
	wantStatus(t, r.module(t, "huge"), coordinator.StatusTimedOut)
	wantStatus(t, r.module(t, "after"), coordinator.StatusSucceeded)
	for _, bad := range []string{"as hung", "restarting plugin"} {
		if strings.Contains(r.stderr, bad) {
			t.Errorf("the plugin should stop the timed-out module itself; the host log says %q:\n%s", bad, r.stderr)
		}
	}
}

// TestPythonPluginCancel: a module the host cancels on Ctrl-C stops in the
// plugin within the host's grace: the plugin is not killed as hung.
func TestPythonPluginCancel(t *testing.T) {
	pythonPlugin(t)
	dir := hugeFile(t)

	reportPath := filepath.Join(t.TempDir(), "report.json")
	cmd := exec.Command(hostBin, "run", "testdata/python_cancel.hcl", "--var", "dir="+dir,
		"--report", "json="+reportPath, "--log-level", "info", "--grace", "20s")
	cmd.Env = env()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt once the module is hashing: ordered by its output, not by
	// a clock.
	sc := bufio.NewScanner(stdout)
	var seen []string
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if strings.Contains(sc.Text(), "huge | hashing 1 file with sha256") {
			break
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 {
		t.Fatalf("host exit: %v, want status 130 (interrupted)\nstdout:\n%s\nstderr:\n%s", err, strings.Join(seen, "\n"), stderr.String())
	}
	b, err := os.ReadFile(reportPath)
	if err != nil {
		t.Fatalf("report: %v\nstderr:\n%s", err, stderr.String())
	}
	r := result{stderr: stderr.String(), code: 130, report: &report.Run{}}
	if err := json.Unmarshal(b, r.report); err != nil {
		t.Fatal(err)
	}
	huge := r.module(t, "huge")
	wantStatus(t, huge, coordinator.StatusCancelled)
	if strings.Contains(r.stderr, "as hung") {
		t.Errorf("the plugin should stop the cancelled module itself, but the host killed it:\n%s", r.stderr)
	}
}

// TestPythonPluginDescribe: `host plugins` shows what the Python plugin
// declared.
func TestPythonPluginDescribe(t *testing.T) {
	pythonPlugin(t)
	r := runHost(t, "plugins", "testdata/python.hcl", "--var", "dir="+t.TempDir())
	r.wantCode(t, 0)
	for _, want := range []string{
		"plugin template 0.1.0 (protocol 1)",
		`module "template.render" (default) -> template.render/v1`,
		`module "template.checksum" -> template.checksum/v1`,
		"values       map of string  optional  Values",
		"patterns   list of string  required  Glob",
		// The result fields its kinds declare (result_schema).
		"    result: from {module string, status string, type string}, lines number,",
		"    result: algorithm string, bytes number, count number, digest string, dir",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("host plugins output does not mention %q:\n%s", want, r.stdout)
		}
	}
}

// TestPythonPluginByHand: started without the host, the plugin explains
// itself and exits 1 instead of waiting for a host that never comes.
func TestPythonPluginByHand(t *testing.T) {
	cmd := exec.Command(pythonPlugin(t))
	cmd.Env = env()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1", err)
	}
	if stdout.Len() != 0 || !strings.Contains(stderr.String(), "This binary is a modpipe plugin") {
		t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
}

// TestPythonPluginUnitTests runs the plugin's own Python unit tests
// (plugins/examples/python/tests) against the built plugin.
func TestPythonPluginUnitTests(t *testing.T) {
	plugin := pythonPlugin(t)
	cmd := exec.Command("/usr/bin/python3", "-m", "unittest", "discover", "-v", "-s", "../../plugins/examples/python/tests")
	cmd.Env = append(env(), "PYTHONPATH="+plugin, "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python unit tests: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "OK") {
		t.Fatalf("python unit tests did not report OK:\n%s", out)
	}
}

// TestWritingPluginsDoc runs the examples of docs/writing-plugins.md: the
// HCL blocks whose first line is "# file: NAME" are written to a folder,
// each "$ bin/host ..." line of a console block is run there, and the
// module output, plugin descriptions and diagnostics the page shows must
// be in what the host printed. Paths, timings and summary tables vary by
// machine and are not compared.
func TestWritingPluginsDoc(t *testing.T) {
	pythonPlugin(t)
	doc, err := os.ReadFile("../../docs/writing-plugins.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	outDir := t.TempDir() // stands for the page's /tmp/out

	type command struct {
		line string
		want []string
	}
	var (
		cmds  []*command
		files int
		lang  string
		block []string
		fence bool
	)
	for _, line := range strings.Split(string(doc), "\n") {
		switch {
		case !fence && strings.HasPrefix(line, "```"):
			fence, lang, block = true, strings.TrimPrefix(line, "```"), nil
		case fence && line == "```":
			fence = false
			if lang == "hcl" && len(block) > 0 && strings.HasPrefix(block[0], "# file: ") {
				name := strings.TrimPrefix(block[0], "# file: ")
				if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(block, "\n")+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				files++
			}
		case fence && lang == "console" && strings.HasPrefix(line, "$ "):
			cmds = append(cmds, &command{line: strings.TrimPrefix(line, "$ ")})
		case fence && lang == "console" && len(cmds) > 0:
			c := cmds[len(cmds)-1]
			c.want = append(c.want, line)
		case fence:
			block = append(block, line)
		}
	}
	if files < 3 || len(cmds) < 4 {
		t.Fatalf("found %d example files and %d commands in the page; the examples are not where this test looks", files, len(cmds))
	}

	summaryRow := regexp.MustCompile(`^\S+\s+(succeeded|failed|skipped|cancelled|timed_out)\s`)
	// What differs from run to run and machine to machine in the lines
	// the page shows: durations, the parallel factor (shown only from
	// 1.0x up), the host's name.
	varying := []struct {
		re  *regexp.Regexp
		out string
	}{
		{regexp.MustCompile(`\d+(\.\d+)?(ns|µs|ms|s|m)\b`), "D"},
		{regexp.MustCompile(`, \d+(\.\d+)? at a time on average`), ""}, // shown from 1.0 up
		{regexp.MustCompile(`on instance (\d+) \([^)]*\)`), "on instance $1 (HOST)"},
	}
	normal := func(s string) string {
		for _, v := range varying {
			s = v.re.ReplaceAllString(s, v.out)
		}
		return s
	}
	for _, c := range cmds {
		t.Run(c.line, func(t *testing.T) {
			args := strings.Fields(strings.ReplaceAll(c.line, "/tmp/out", outDir))
			if args[0] != "bin/host" {
				t.Fatalf("the page shows %q; only bin/host commands are checked here", c.line)
			}
			cmd := exec.Command(hostBin, args[1:]...)
			cmd.Dir = dir
			cmd.Env = env()
			out, _ := cmd.CombinedOutput()
			checked := 0
			for _, w := range c.want {
				w = strings.TrimRight(strings.ReplaceAll(w, "/tmp/out", outDir), " ")
				if strings.TrimSpace(w) == "" || w == "..." || strings.Contains(w, "binary: ") ||
					strings.HasPrefix(w, "MODULE ") || summaryRow.MatchString(w) {
					continue
				}
				checked++
				if !strings.Contains(normal(string(out)), normal(w)) {
					t.Errorf("the page shows %q, but the host printed:\n%s", w, out)
				}
			}
			if checked == 0 {
				t.Errorf("nothing of the page's output for %q was checked", c.line)
			}
		})
	}
}
