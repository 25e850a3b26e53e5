package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/modpipe/modpipe/host/report"
	"github.com/modpipe/modpipe/host/secrets"
)

// The values testdata/secrets.hcl hides: its sensitive variables'
// defaults and the DEPLOY_KEY environment secret the test sets.
var secretValues = []string{"hunter2", "hunter2-deploy-key", "pa55-w0rd-db", "svc-reader",
	`s3"cr\et`, `s3\"cr\\et`} // the last as %q and JSON quote the one before

const deployKey = "hunter2-deploy-key"

// runSecrets runs testdata/secrets.hcl with every report format and the
// extra environment, and returns stdout, stderr and each report's text.
func runSecrets(t *testing.T, extra ...string) (stdout, stderr string, reports map[string]string) {
	t.Helper()
	dir := t.TempDir()
	reports = map[string]string{}
	args := []string{"run", "testdata/secrets.hcl", "--no-progress"}
	for _, f := range report.Formats {
		args = append(args, "--report", f+"="+filepath.Join(dir, "report."+f))
	}
	cmd := exec.Command(hostBin, args...)
	cmd.Env = env(append([]string{"DEPLOY_KEY=" + deployKey}, extra...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err == nil || !asExitError(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("want exit code 1 (one module fails), got %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	for _, f := range report.Formats {
		b, err := os.ReadFile(filepath.Join(dir, "report."+f))
		if err != nil {
			t.Fatalf("%s report: %v", f, err)
		}
		reports[f] = string(b)
	}
	return out.String(), errb.String(), reports
}

func asExitError(err error, target **exec.ExitError) bool {
	ee, ok := err.(*exec.ExitError)
	*target = ee
	return ok
}

// TestSecretsMaskedEverywhere runs modules that print a sensitive
// variable and an environment secret (whole, split across two writes,
// one containing the other, on stderr into the failure's tail) and checks
// that no secret reaches stdout, stderr or any report, and that *** stands
// where each was.
func TestSecretsMaskedEverywhere(t *testing.T) {
	stdout, stderr, reports := runSecrets(t)
	texts := map[string]string{"stdout": stdout, "stderr": stderr}
	for f, r := range reports {
		texts[f+" report"] = r
	}
	for where, text := range texts {
		for _, s := range secretValues {
			if strings.Contains(text, s) {
				t.Errorf("%s shows the secret %q:\n%s", where, s, text)
			}
		}
	}
	for _, want := range []string{
		"echo_var | token=*** password=***",
		"split | key=***",             // written in two pieces
		"overlap | both: *** and ***", // the longer secret masked whole
		"fails ! denied for ***",
		"  | denied for ***", // the failure's tail in the summary
		"fails | user ***",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	// The module really printed the secrets: the envelope's value, masked
	// in the report, held the masked stdout.
	var run report.Run
	if err := json.Unmarshal([]byte(reports["json"]), &run); err != nil {
		t.Fatal(err)
	}
	for _, e := range run.Modules {
		if e.Module == "split" && !strings.Contains(string(e.Value), "key=***") {
			t.Errorf("split's value in the JSON report: %s", e.Value)
		}
		if e.Module == "fails" && (e.Error == nil || !strings.Contains(e.Error.Tail, "denied for ***")) {
			t.Errorf("fails' error in the JSON report: %+v", e.Error)
		}
		if e.Module == "quoted" && (e.Error == nil || !strings.Contains(e.Error.Message, `"/no/such/***"`)) {
			t.Errorf("quoted's error in the JSON report: %+v", e.Error)
		}
	}
}

// TestSecretsMaskedInLogs runs a plugin that writes a secret to its own
// stderr, which the host logs at debug level, and checks the host's log
// shows *** instead, in the text format and in JSON (where the secret's
// quote is escaped).
func TestSecretsMaskedInLogs(t *testing.T) {
	for _, format := range [][]string{nil, {"--log-json"}} {
		name := "text"
		if format != nil {
			name = "json"
		}
		t.Run(name, func(t *testing.T) {
			args := append([]string{"run", "testdata/secrets_log.hcl", "--no-progress", "--log-level", "debug"}, format...)
			r := runHost(t, args...)
			if r.code != 1 {
				t.Fatalf("exit code %d, want 1 (the module fails)\nstderr:\n%s", r.code, r.stderr)
			}
			for _, leaked := range []string{`hunter2"in-a-log`, `hunter2\"in-a-log`, "hunter2"} {
				if strings.Contains(r.stderr+r.stdout, leaked) {
					t.Errorf("the output shows %q:\nstdout:\n%s\nstderr:\n%s", leaked, r.stdout, r.stderr)
				}
			}
			if !strings.Contains(r.stderr, "login with *** refused") {
				t.Errorf("the plugin's line is not in the log, masked:\n%s", r.stderr)
			}
		})
	}
}

// TestSecretsOnGitHubActions checks the GitHub style end to end: secrets
// registered with ::add-mask:: before anything else, each module's output
// in a group, the failure as an ::error annotation, and the Markdown
// summary appended to $GITHUB_STEP_SUMMARY, masked.
func TestSecretsOnGitHubActions(t *testing.T) {
	summary := filepath.Join(t.TempDir(), "step-summary.md")
	writeFile(t, summary, "previous step\n")
	stdout, _, _ := runSecrets(t, "GITHUB_ACTIONS=true", "GITHUB_STEP_SUMMARY="+summary)

	lines := strings.Split(stdout, "\n")
	masks := map[string]bool{}
	for _, l := range lines {
		v, ok := strings.CutPrefix(l, "::add-mask::")
		if !ok {
			break // every ::add-mask:: comes first
		}
		masks[v] = true
	}
	for _, s := range secretValues {
		if !masks[s] {
			t.Errorf("%q was not registered with ::add-mask:: before the output:\n%s", s, stdout)
		}
	}
	rest := strings.Join(lines[len(masks):], "\n")
	for _, s := range secretValues {
		if strings.Contains(rest, s) {
			t.Errorf("the secret %q is printed after ::add-mask::\n%s", s, rest)
		}
	}
	for _, want := range []string{
		"::group::✔ split succeeded", "key=***\n::endgroup::",
		"::group::✘ fails failed", "::error title=fails failed::command failed: exit status 3",
	} {
		if !strings.Contains(rest, want) {
			t.Errorf("stdout lacks %q:\n%s", want, rest)
		}
	}
	b, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	if !strings.HasPrefix(got, "previous step\n## ❌ secrets failed") || !strings.Contains(got, "denied for ***") {
		t.Errorf("$GITHUB_STEP_SUMMARY:\n%s", got)
	}
	for _, s := range secretValues {
		if strings.Contains(got, s) {
			t.Errorf("$GITHUB_STEP_SUMMARY shows %q", s)
		}
	}
}

// Secrets stay hidden when the file is invalid too: in the errors about
// a sensitive value that does not fit (even one that does not parse), in
// the reports and annotations of a run that cannot start, and in module
// addresses a sensitive matrix value makes, wherever they are printed.
func TestSecretsMaskedInErrorsAndAddresses(t *testing.T) {
	const pw, pin = "hunter2-matrix-pw", "12345abcsecret"
	invalid := filepath.Join(t.TempDir(), "invalid.hcl")
	if err := os.WriteFile(invalid, []byte(`variable "pw" {
  type      = string
  sensitive = true
  default   = "`+pw+`"
}
variable "pin" {
  type      = number
  sensitive = true
}
module "shell" "a" {
  command = ["true"]
  timeout = var.pw
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	matrix := filepath.Join(t.TempDir(), "matrix.hcl")
	if err := os.WriteFile(matrix, []byte(`variable "pw" {
  type      = string
  sensitive = true
  default   = "`+pw+`"
}
module "shell" "t" {
  matrix  = [var.pw, "plain"]
  command = ["true"]
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	summary := filepath.Join(dir, "summary.md")
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"invalid run", []string{"run", invalid, "--var", "pin=" + pin, "--report", "json=" + filepath.Join(dir, "i.json"), "--report", "markdown=" + filepath.Join(dir, "i.md")}, 2},
		{"invalid validate", []string{"validate", invalid, "--var", "pin=" + pin}, 2},
		{"matrix run", []string{"run", matrix, "--no-progress", "--report", "json=" + filepath.Join(dir, "m.json"), "--report", "markdown=" + filepath.Join(dir, "m.md")}, 0},
		{"matrix graph", []string{"graph", matrix}, 0},
		{"matrix mermaid", []string{"graph", "--format", "mermaid", matrix}, 0},
		{"matrix dry run", []string{"run", "--dry-run", matrix}, 0},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(hostBin, tt.args...)
			cmd.Env = env("GITHUB_ACTIONS=true", "GITHUB_STEP_SUMMARY="+summary)
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if asExitError(err, &ee) {
				code = ee.ExitCode()
			}
			if code != tt.code {
				t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out.String(), errb.String())
			}
			texts := map[string]string{"stdout": out.String(), "stderr": errb.String()}
			for _, f := range []string{"i.json", "i.md", "m.json", "m.md", "summary.md"} {
				if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
					texts[f] = string(b)
				}
			}
			for where, text := range texts {
				// GitHub is told the secrets to hide with ::add-mask::.
				var kept []string
				for _, line := range strings.Split(text, "\n") {
					if !strings.HasPrefix(line, "::add-mask::") {
						kept = append(kept, line)
					}
				}
				text = strings.Join(kept, "\n")
				for _, secret := range []string{pw, pin} {
					if strings.Contains(text, secret) {
						t.Errorf("%s shows the secret %q:\n%s", where, secret, text)
					}
				}
			}
			if tt.name == "invalid run" && !strings.Contains(out.String(), "::error file=") {
				t.Errorf("an invalid file should get annotations at its lines:\n%s", out.String())
			}
		})
	}
}

// A secret in a line longer than the 64 KiB pieces a plugin sends it in
// is masked wherever the cut falls, and the line is printed whole: the
// host holds a piece's end back until the next piece, never a whole line.
// Under GitHub Actions too, where the pieces are held in the module's
// group, masked once as they come.
func TestSecretsMaskedAcrossLongLinePieces(t *testing.T) {
	const token = "hunter2secret"
	const piece = 64 * 1024
	for _, github := range []bool{false, true} {
		for _, pad := range []int{
			piece - len(token) - 5, // the secret ends just before the cut
			piece - len(token) + 1, // only its last byte is past the cut
			piece - 6,              // cut in its middle
			piece - 1,              // only its first byte is before the cut
			piece,                  // it starts the second piece
			2*piece - 3,            // the second cut in it
		} {
			name := strconv.Itoa(pad)
			if github {
				name = "github/" + name
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				jsonReport := filepath.Join(dir, "report.json")
				cmd := exec.Command(hostBin, "run", "testdata/secrets_long_line.hcl", "--no-progress",
					"--var", "pad="+strconv.Itoa(pad), "--report", "json="+jsonReport)
				cmd.Env = env("LONG_TOKEN=" + token)
				if github {
					cmd.Env = env("LONG_TOKEN="+token, "GITHUB_ACTIONS=true")
				}
				var out, errb bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &errb
				_ = cmd.Run()
				if code := cmd.ProcessState.ExitCode(); code != 1 {
					t.Fatalf("exit code %d, want 1\n%s", code, errb.String())
				}
				rep, err := os.ReadFile(jsonReport)
				if err != nil {
					t.Fatal(err)
				}
				stdout, found := strings.CutPrefix(out.String(), "::add-mask::"+token+"\n")
				if github != found {
					t.Errorf("the secret registered with ::add-mask:: first: %v, want %v", found, github)
				}
				for name, text := range map[string]string{"stdout": stdout, "stderr": errb.String(), "report": string(rep)} {
					for _, part := range []string{token, token[:6], token[6:]} {
						if strings.Contains(text, part) {
							t.Errorf("%s holds %q of the secret", name, part)
						}
					}
				}
				// What the module printed, rejoined from the console's
				// "long | " (stdout) and "long ! " (stderr) lines, or from
				// its group's lines and "! " lines, is every byte written,
				// in order, with the secret masked.
				streams := map[string]*strings.Builder{"|": {}, "!": {}}
				if github {
					_, group, _ := strings.Cut(stdout, "::group::✘ long failed")
					group, _, _ = strings.Cut(group, "\n::endgroup::")
					for _, l := range strings.Split(group, "\n")[1:] {
						if rest, ok := strings.CutPrefix(l, "! "); ok {
							streams["!"].WriteString(rest)
						} else {
							streams["|"].WriteString(l)
						}
					}
				} else {
					for _, l := range strings.Split(stdout, "\n") {
						if rest, ok := strings.CutPrefix(l, "long "); ok && len(rest) >= 2 && streams[rest[:1]] != nil {
							streams[rest[:1]].WriteString(rest[2:])
						}
					}
				}
				for mark, fill := range map[string]string{"|": "x", "!": "y"} {
					line := strings.Repeat(fill, pad) + secrets.Mask + " END"
					if got := streams[mark].String(); got != line+line {
						t.Errorf("%q lines rejoined: %d bytes ending %q, want the %d written, each line ending %q",
							mark, len(got), got[max(0, len(got)-20):], 2*len(line), secrets.Mask+" END")
					}
				}
			})
		}
	}
}

// The etcd password is masked like a secret without being listed in
// secrets, in the console (plain and GitHub's, where it is registered
// with ::add-mask::) and in the report.
func TestSecretsEtcdPasswordMasked(t *testing.T) {
	const password = "S3cr3t-etcd-pw"
	for _, tt := range []struct {
		name    string
		env     []string
		wantOut string
	}{
		{"plain", nil, "print | pw=***"},
		{"GitHub Actions", []string{"GITHUB_ACTIONS=true"}, "::add-mask::" + password},
	} {
		t.Run(tt.name, func(t *testing.T) {
			jsonReport := filepath.Join(t.TempDir(), "report.json")
			cmd := exec.Command(hostBin, "run", "testdata/secrets_etcd_password.hcl", "--no-progress", "--report", "json="+jsonReport)
			cmd.Env = env(append([]string{"ETCD_PASSWORD=" + password}, tt.env...)...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			rep, err := os.ReadFile(jsonReport)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), tt.wantOut) {
				t.Errorf("output lacks %q:\n%s", tt.wantOut, out)
			}
			printed := strings.ReplaceAll(string(out), "::add-mask::"+password+"\n", "")
			if strings.Contains(printed, password) {
				t.Errorf("the output shows the etcd password:\n%s", out)
			}
			if strings.Contains(string(rep), password) || !strings.Contains(string(rep), "pw=***") {
				t.Errorf("the report shows the etcd password or lacks pw=***:\n%s", rep)
			}
		})
	}
}
