package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/modpipe/modpipe/plugins/internal/proc"
)

// lockedBuffer is a bytes.Buffer safe for the two reader goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// execCase is one case of TestExec.
type execCase struct {
	name       string
	cfg        ExecConfig
	wantStdout string
	wantCode   int
	wantJSON   string
	wantTail   string
	wantErr    string // substring; empty = success
	exitErr    bool
	notFound   bool
}

func TestExec(t *testing.T) {
	dir := t.TempDir()
	realDir, _ := filepath.EvalSymlinks(dir)
	var manyErr strings.Builder
	for i := 1; i <= 25; i++ {
		fmt.Fprintf(&manyErr, "echo err%d >&2; ", i)
	}
	var wantTail []string
	for i := 6; i <= 25; i++ {
		wantTail = append(wantTail, fmt.Sprintf("err%d", i))
	}

	tests := []execCase{
		{name: "argv", cfg: ExecConfig{Command: []string{"echo", "hello", "world"}}, wantStdout: "hello world", wantJSON: "null"},
		{name: "argv no shell expansion", cfg: ExecConfig{Command: []string{"echo", "$HOME"}}, wantStdout: "$HOME", wantJSON: "null"},
		{name: "script", cfg: ExecConfig{Script: "echo a\necho b"}, wantStdout: "a\nb", wantJSON: "null"},
		{name: "script stops at first failure", cfg: ExecConfig{Script: "echo before\nfalse\necho after"}, wantStdout: "before", wantCode: 1, wantErr: "exit status 1", exitErr: true},
		{name: "env added", cfg: ExecConfig{Script: `echo "$A-$B"; test -n "$PATH"`, Env: map[string]string{"A": "1", "B": "two"}}, wantStdout: "1-two", wantJSON: "null"},
		{name: "dir", cfg: ExecConfig{Command: []string{"pwd"}, Dir: dir}, wantStdout: realDir, wantJSON: "null"},
		{name: "stdout_json object", cfg: ExecConfig{Script: `echo '{"sha": "abc",'; echo ' "n": 3}'`, StdoutJSON: true}, wantStdout: "{\"sha\": \"abc\",\n \"n\": 3}", wantJSON: `{"sha":"abc","n":3}`},
		{name: "stdout_json scalar", cfg: ExecConfig{Command: []string{"echo", "42"}, StdoutJSON: true}, wantStdout: "42", wantJSON: "42"},
		{name: "stdout_json invalid", cfg: ExecConfig{Command: []string{"echo", "{not json"}, StdoutJSON: true}, wantStdout: "{not json", wantErr: `stdout is not valid JSON: invalid character 'n' looking for beginning of object key string; stdout starts with: "{not json"`},
		{name: "stdout_json empty", cfg: ExecConfig{Command: []string{"true"}, StdoutJSON: true}, wantErr: "printed nothing on stdout"},
		{name: "non-zero exit with tail", cfg: ExecConfig{Script: manyErr.String() + "echo out; exit 3"}, wantStdout: "out", wantCode: 3, wantTail: strings.Join(wantTail, "\n"), wantErr: "exit status 3", exitErr: true},
		{name: "a line longer than a piece stays whole", cfg: ExecConfig{Script: "head -c 100000 /dev/zero | tr '\\0' x; echo"}, wantStdout: strings.Repeat("x", 100000), wantJSON: "null"},
		{name: "stdout_json with a long string", cfg: ExecConfig{Script: "printf '{\"a\": \"'; head -c 100000 /dev/zero | tr '\\0' x; printf '\"}\\n'", StdoutJSON: true}, wantStdout: `{"a": "` + strings.Repeat("x", 100000) + `"}`, wantJSON: `{"a":"` + strings.Repeat("x", 100000) + `"}`},
		{name: "carriage returns kept", cfg: ExecConfig{Script: "printf 'a\\r\\nb\\r\\n'"}, wantStdout: "a\r\nb", wantJSON: "null"},
		{name: "failure said on stdout", cfg: ExecConfig{Script: "echo ok 1; echo 'FAIL: 2 != 3'; exit 1"}, wantStdout: "ok 1\nFAIL: 2 != 3", wantCode: 1, wantErr: "exit status 1", exitErr: true},
		{name: "killed by signal", cfg: ExecConfig{Script: "kill -9 $$"}, wantCode: -1, wantErr: "killed by signal: killed", exitErr: true},
		{name: "command not found", cfg: ExecConfig{Command: []string{"modpipe-no-such-tool", "x"}}, wantCode: -1, wantErr: `command "modpipe-no-such-tool" not found`, notFound: true},
		{name: "neither", cfg: ExecConfig{}, wantErr: "neither is set"},
		{name: "both", cfg: ExecConfig{Command: []string{"true"}, Script: "true"}, wantErr: "not both"},
		{name: "empty program", cfg: ExecConfig{Command: []string{""}}, wantErr: "empty program name"},
		{name: "empty command list", cfg: ExecConfig{Command: []string{}}, wantErr: `attribute "command": the list is empty`},
		{name: "missing dir", cfg: ExecConfig{Command: []string{"true"}, Dir: filepath.Join(dir, "nope")}, wantErr: "working directory"},
		{name: "the longest script exec takes", cfg: ExecConfig{Script: longScript(maxArgBytes)}, wantStdout: "end", wantJSON: "null"},
		{name: "the longest argument exec takes", cfg: ExecConfig{Command: []string{"sh", "-c", "echo end", strings.Repeat("x", maxArgBytes)}}, wantStdout: "end", wantJSON: "null"},
	}
	if runtime.GOOS == "linux" {
		tests = append(tests,
			execCase{name: "a script longer than exec takes", cfg: ExecConfig{Script: longScript(maxArgBytes + 1)}, wantErr: `attribute "script": it is 131072 bytes, and Linux passes at most 131071 in one argument`},
			execCase{name: "an argument longer than exec takes", cfg: ExecConfig{Command: []string{"echo", "a", strings.Repeat("x", maxArgBytes+1)}}, wantErr: `attribute "command": element 2 is 131072 bytes`})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut lockedBuffer
			res, err := Exec(context.Background(), tt.cfg, Streams{Stdout: &out, Stderr: &errOut}, 0)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Exec: %v", err)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				var ee *ExitError
				if errors.As(err, &ee) != tt.exitErr {
					t.Errorf("ExitError = %v, want %v", !tt.exitErr, tt.exitErr)
				}
				var nf *proc.NotFoundError
				if errors.As(err, &nf) != tt.notFound {
					t.Errorf("NotFoundError = %v, want %v", !tt.notFound, tt.notFound)
				}
				switch {
				case tt.exitErr && res.StderrTail != "" && ee.Tail != res.StderrTail:
					t.Errorf("ExitError tail %q differs from result tail %q", ee.Tail, res.StderrTail)
				case tt.exitErr && res.StderrTail == "" && res.Stdout != "" && !strings.HasSuffix(res.Stdout, ee.Tail):
					// Nothing on stderr: stdout's last lines say why.
					t.Errorf("ExitError tail %q is not the end of stdout %q", ee.Tail, res.Stdout)
				}
			}
			if res.Stdout != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", res.Stdout, tt.wantStdout)
			}
			if res.ExitCode != tt.wantCode {
				t.Errorf("exit_code = %d, want %d", res.ExitCode, tt.wantCode)
			}
			if tt.wantJSON != "" {
				got := string(res.JSON)
				if res.JSON == nil {
					got = "null"
				}
				if got != tt.wantJSON {
					t.Errorf("json = %s, want %s", got, tt.wantJSON)
				}
			}
			if tt.wantTail != "" && res.StderrTail != tt.wantTail {
				t.Errorf("stderr_tail = %q, want %q", res.StderrTail, tt.wantTail)
			}
			// Everything in the result's stdout was also streamed, as
			// lines: without carriage returns, a long line in pieces.
			streamed := strings.ReplaceAll(out.String(), "\n", "")
			if res.Stdout != "" && streamed != strings.NewReplacer("\r", "", "\n", "").Replace(res.Stdout) {
				t.Errorf("streamed stdout (%d bytes) differs from the result's (%d)", len(out.String()), len(res.Stdout))
			}
			if !strings.HasSuffix(errOut.String(), res.StderrTail+"\n") && res.StderrTail != "" {
				t.Errorf("streamed stderr %q does not end with the tail %q", errOut.String(), res.StderrTail)
			}
		})
	}
}

func TestExecStdoutCap(t *testing.T) {
	// 1100 lines of 1 KiB: more than MaxStdoutBytes.
	cfg := ExecConfig{Script: `i=0; line=$(head -c 1023 /dev/zero | tr '\0' x); while [ $i -lt 1100 ]; do echo "$line"; i=$((i+1)); done`}
	var out lockedBuffer
	res, err := Exec(context.Background(), cfg, Streams{Stdout: &out}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !res.StdoutTruncated {
		t.Error("stdout_truncated = false, want true")
	}
	if len(res.Stdout) > MaxStdoutBytes || len(res.Stdout) < MaxStdoutBytes-1024 {
		t.Errorf("len(stdout) = %d, want just under %d", len(res.Stdout), MaxStdoutBytes)
	}
	if got := strings.Count(out.String(), "\n"); got != 1100 {
		t.Errorf("streamed %d lines, want all 1100", got)
	}

	cfg.StdoutJSON = true
	if _, err := Exec(context.Background(), cfg, Streams{}, 0); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("stdout_json on truncated stdout: err = %v, want a too-large error", err)
	}
}

func TestExecEnvInherited(t *testing.T) {
	t.Setenv("MODPIPE_SHELL_TEST_INHERITED", "yes")
	res, err := Exec(context.Background(), ExecConfig{Script: `echo "$MODPIPE_SHELL_TEST_INHERITED"`, Env: map[string]string{"X": "1"}}, Streams{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "yes" {
		t.Errorf("inherited variable = %q, want yes", res.Stdout)
	}
}

// longScript is a script of exactly n bytes that prints "end": comment
// lines, then the echo.
func longScript(n int) string {
	const tail = "\necho end"
	var sb strings.Builder
	for sb.Len() < n-len(tail)-80 {
		sb.WriteString("# " + strings.Repeat("x", 76) + "\n")
	}
	sb.WriteString("#" + strings.Repeat("y", n-len(tail)-sb.Len()-1))
	sb.WriteString(tail)
	return sb.String()
}
