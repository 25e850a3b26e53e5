package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/report"
)

// These tests prove the scheduling semantics end to end (issue 3): each
// runs the real host binary on a pipeline in testdata/schedule and judges
// what happened from the JSON report alone, as a user's tooling would.
// Constraints are checked on the recorded start and end times of real
// plugin executions: overlap of intervals is an invariant of the
// scheduler, not a measurement, so the checks hold on a slow machine.

var update = flag.Bool("update", false, "rewrite the golden files in testdata/schedule")

// ciMarkers are the variables that make a run think it is under CI
// (run.ci); the tests set them explicitly when they want them.
var ciMarkers = []string{"CI", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "CIRCLECI", "JENKINS_URL", "TF_BUILD"}

// schedEnv is env() without CI markers, plus extra.
func schedEnv(extra ...string) []string {
	var out []string
	for _, kv := range env() {
		k, _, _ := strings.Cut(kv, "=")
		if slices.Contains(ciMarkers, k) {
			continue
		}
		out = append(out, kv)
	}
	return append(out, extra...)
}

// runHostEnv is runHost with extra environment variables.
func runHostEnv(t *testing.T, extraEnv []string, args ...string) result {
	t.Helper()
	reportPath := filepath.Join(t.TempDir(), "report.json")
	if len(args) > 0 && args[0] == "run" {
		args = append(args, "--report", "json="+reportPath)
	}
	cmd := exec.Command(hostBin, args...)
	cmd.Env = schedEnv(extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run host %v: %v", args, err)
		}
		r.code = ee.ExitCode()
	}
	r.report = readReport(t, reportPath)
	return r
}

// readReport reads a JSON report, or returns nil when none was written.
func readReport(t *testing.T, path string) *report.Run {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	run := &report.Run{}
	if err := json.Unmarshal(b, run); err != nil {
		t.Fatalf("report %s: %v\n%s", path, err, b)
	}
	return run
}

// schedFile is a fixture of these tests.
func schedFile(name string) string { return filepath.Join("testdata", "schedule", name) }

// hostOS is this machine's OS as modpipe names it (run.os, capabilities).
func hostOS() string {
	if runtime.GOOS == "darwin" {
		return "macos"
	}
	return runtime.GOOS
}

// hostCaps is the capability list the host reports for this machine plus
// extra, formatted as in skip reasons: lower-case, sorted, comma-joined.
func hostCaps(extra ...string) string {
	caps := append([]string{hostOS(), runtime.GOARCH}, extra...)
	for i := range caps {
		caps[i] = strings.ToLower(caps[i])
	}
	sort.Strings(caps)
	return strings.Join(slices.Compact(caps), ", ")
}

// names returns the report's module addresses, sorted.
func (r result) names(t *testing.T) []string {
	t.Helper()
	if r.report == nil {
		t.Fatalf("no report; exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	var out []string
	for _, e := range r.report.Modules {
		out = append(out, e.Module)
	}
	sort.Strings(out)
	return out
}

// span is the interval a module ran in.
type span struct {
	module     string
	start, end time.Time
}

// spans returns the intervals of the named modules, each of which must
// have succeeded: a module that did not run cannot break a constraint,
// so it would make the check vacuous.
func (r result) spans(t *testing.T, modules ...string) []span {
	t.Helper()
	out := make([]span, 0, len(modules))
	for _, m := range modules {
		e := r.module(t, m)
		wantStatus(t, e, coordinator.StatusSucceeded)
		if !e.EndedAt.After(e.StartedAt) {
			t.Fatalf("%s: ended_at %s is not after started_at %s", m, e.EndedAt, e.StartedAt)
		}
		out = append(out, span{module: m, start: e.StartedAt, end: e.EndedAt})
	}
	return out
}

// peak is the largest number of intervals that contain one instant. An
// interval that ends exactly when another starts does not overlap it:
// the scheduler frees a slot when a module ends and only then starts the
// next.
func peak(spans []span) (int, []string) {
	type event struct {
		at    time.Time
		delta int
		mod   string
	}
	var evs []event
	for _, s := range spans {
		evs = append(evs, event{s.start, +1, s.module}, event{s.end, -1, s.module})
	}
	sort.SliceStable(evs, func(i, j int) bool {
		if !evs[i].at.Equal(evs[j].at) {
			return evs[i].at.Before(evs[j].at)
		}
		return evs[i].delta < evs[j].delta // ends first
	})
	best, cur := 0, 0
	var running, worst []string
	for _, e := range evs {
		cur += e.delta
		if e.delta > 0 {
			running = append(running, e.mod)
		} else {
			running = slices.DeleteFunc(running, func(m string) bool { return m == e.mod })
		}
		if cur > best {
			best, worst = cur, slices.Clone(running)
		}
	}
	return best, worst
}

func wantPeak(t *testing.T, what string, spans []span, want int) {
	t.Helper()
	got, running := peak(spans)
	if got != want {
		t.Errorf("%s: peak concurrency %d (%s at once), want %d", what, got, strings.Join(running, ", "), want)
	}
}

func TestNotInParallelKeys(t *testing.T) {
	r := runHost(t, "run", schedFile("keys.hcl"), "--parallelism", "8")
	r.wantCode(t, 0)
	db := r.spans(t, "db1", "db2", "db3", "db4", "db5", "db6", "both")
	ports := r.spans(t, "ports1", "ports2", "both")
	all := r.spans(t, "db1", "db2", "db3", "db4", "db5", "db6", "both", "ports1", "ports2", "free1", "free2")
	wantPeak(t, `key "db"`, db, 1)
	wantPeak(t, `key "ports"`, ports, 1)
	// Modules with different keys, or none, do run side by side: the
	// keys serialise only what shares them.
	if got, _ := peak(all); got < 2 {
		t.Errorf("all modules: peak concurrency %d; modules without a shared key should run side by side", got)
	}
}

func TestNotInParallelAlone(t *testing.T) {
	r := runHost(t, "run", schedFile("alone.hcl"), "--parallelism", "8")
	r.wantCode(t, 0)
	solo := r.spans(t, "solo")[0]
	others := r.spans(t, "a", "b", "c", "d", "e", "f")
	for _, o := range others {
		if o.start.Before(solo.end) && solo.start.Before(o.end) {
			t.Errorf("%s [%s, %s] overlaps solo [%s, %s], which must run alone", o.module,
				o.start.Format(time.StampMicro), o.end.Format(time.StampMicro),
				solo.start.Format(time.StampMicro), solo.end.Format(time.StampMicro))
		}
	}
	if got, _ := peak(others); got < 2 {
		t.Errorf("the unconstrained modules peaked at %d at once; they should run side by side", got)
	}
}

func TestLimits(t *testing.T) {
	r := runHost(t, "run", schedFile("limits.hcl"), "--parallelism", "8")
	r.wantCode(t, 0)
	// Nothing but the group bounds the heavy modules, so the group is
	// filled: exactly max at the peak.
	wantPeak(t, `limit "heavy" (max 2)`, r.spans(t, "heavy1", "heavy2", "heavy3", "heavy4", "heavy5", "heavy6", "io2"), 2)
	wantPeak(t, `limit "io" (max 1)`, r.spans(t, "io1", "io2", "io3"), 1)

	// A module naming a group that does not exist is refused before
	// anything runs.
	r = runHost(t, "run", schedFile("unknown_limit.hcl"))
	r.wantCode(t, 2)
	for _, w := range []string{"unknown_limit.hcl:11:14", `no limit "haevy"`, `Did you mean "heavy"?`} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not mention %q:\n%s", w, r.stderr)
		}
	}
	if r.ranSomething() {
		t.Error("an invalid pipeline wrote a report")
	}
}

func TestDeterministicOrder(t *testing.T) {
	// c: priority 10; b: critical path 2; a before d: file order (both
	// critical path 1); g becomes ready when a is done and jumps the queue
	// with priority 20; b_child (critical path 1) before f; e: priority -5.
	want := []string{"c", "b", "a", "g", "d", "b_child", "f", "b_grand", "d_child", "e"}
	// Several runs: one lucky run would not show that the order is fixed.
	for i := range 3 {
		r := runHost(t, "run", schedFile("order.hcl"), "--parallelism", "1")
		r.wantCode(t, 0)
		spans := r.spans(t, want...)
		sort.Slice(spans, func(i, j int) bool { return spans[i].start.Before(spans[j].start) })
		var got []string
		for _, s := range spans {
			got = append(got, s.module)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("run %d: start order\n  %s\nwant\n  %s", i+1, strings.Join(got, " "), strings.Join(want, " "))
		}
		wantPeak(t, "--parallelism 1", spans, 1)
	}
}

func TestRunIf(t *testing.T) {
	const (
		ok   = coordinator.StatusSucceeded
		skip = coordinator.StatusSkipped
		fail = coordinator.StatusFailed
	)
	type want struct {
		status coordinator.Status
		reason string // the exact skip reason, or text the error must hold
	}
	facts := []string{"--var", "want_os=" + hostOS(), "--var", "want_arch=" + runtime.GOARCH}
	// The failures are the same in every run.
	broken := want{fail, `run_if.hcl:64:37: Unsupported attribute; This object does not have an attribute named "missing"`}
	notBool := want{fail, "The run_if condition must be a boolean, but it is number"}
	tests := []struct {
		name string
		env  []string
		args []string
		want map[string]want
	}{
		{
			name: "defaults",
			env:  []string{"SCHEDULE_TEST_FLAG=on"},
			want: map[string]want{
				"probe":          {ok, ""},
				"when_changed":   {ok, ""},
				"when_unchanged": {skip, "run_if is false: !module.probe.value.json.changed"},
				"deploy":         {ok, ""},
				"full_only":      {ok, ""},
				"quick_only":     {skip, `run_if is false: local.mode == "quick"`},
				"flagged":        {ok, ""},
				"facts":          {ok, ""},
				"in_ci":          {skip, "run_if is false: run.ci"},
				"broken":         broken,
				"not_bool":       notBool,
			},
		},
		{
			name: "var, env and CI flipped",
			env:  []string{"CI=true"},
			args: []string{"--var", "deploy=false"},
			want: map[string]want{
				"probe":          {ok, ""},
				"when_changed":   {ok, ""},
				"when_unchanged": {skip, "run_if is false: !module.probe.value.json.changed"},
				"deploy":         {skip, "run_if is false: var.deploy"},
				"full_only":      {ok, ""},
				"quick_only":     {skip, `run_if is false: local.mode == "quick"`},
				"flagged":        {skip, `run_if is false: env("SCHEDULE_TEST_FLAG") == "on"`},
				"facts": {skip, `run_if is false: run.os == var.want_os && run.arch == var.want_arch && ` +
					`run.instance == 0 && !run.ci && contains(run.capabilities, run.os)`},
				"in_ci":    {ok, ""},
				"broken":   broken,
				"not_bool": notBool,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"run", schedFile("run_if.hcl")}, facts...)
			r := runHostEnv(t, tt.env, append(args, tt.args...)...)
			r.wantCode(t, 1) // broken and not_bool fail the run
			if got := len(r.names(t)); got != len(tt.want) {
				t.Errorf("report has %d modules, want %d: %v", got, len(tt.want), r.names(t))
			}
			for name, w := range tt.want {
				e := r.module(t, name)
				if e.Status != w.status {
					t.Errorf("%s: status %s, want %s (skip %q, error %+v)", name, e.Status, w.status, e.SkipReason, e.Error)
					continue
				}
				switch w.status {
				case skip:
					if e.SkipReason != w.reason {
						t.Errorf("%s: skip reason\n  %q\nwant\n  %q", name, e.SkipReason, w.reason)
					}
				case fail:
					if e.Error == nil || e.Error.Kind != coordinator.ErrorKindConfig || !strings.Contains(e.Error.Message, w.reason) {
						t.Errorf("%s: error %+v, want a config error holding %q", name, e.Error, w.reason)
					}
				}
			}
		})
	}
}

func TestRequires(t *testing.T) {
	onWindows := hostOS() == "windows"
	tests := []struct {
		name string
		env  []string
		args []string
		// skipped maps each module expected to be skipped to its reason;
		// the others must succeed.
		skipped map[string]string
	}{
		{
			name: "this machine's own capabilities",
			skipped: map[string]string{
				"on_windows":  "requires [windows] which this instance does not have (has: " + hostCaps() + ")",
				"with_docker": "requires [Docker, gpu] which this instance does not have (has: " + hostCaps() + ")",
			},
		},
		{
			name: "--capability, any case",
			args: []string{"--capability", "WINDOWS", "--capability", "docker", "--capability", "Gpu"},
		},
		{
			name: "MODPIPE_CAPABILITIES, any case",
			env:  []string{"MODPIPE_CAPABILITIES=DOCKER, gpu"},
			skipped: map[string]string{
				"on_windows": "requires [windows] which this instance does not have (has: " + hostCaps("docker", "gpu") + ")",
			},
		},
		{
			name: "both sources together",
			env:  []string{"MODPIPE_CAPABILITIES=gpu"},
			args: []string{"--capability", "Docker"},
			skipped: map[string]string{
				"on_windows": "requires [windows] which this instance does not have (has: " + hostCaps("docker", "gpu") + ")",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if onWindows {
				delete(tt.skipped, "on_windows")
			}
			r := runHostEnv(t, tt.env, append([]string{"run", schedFile("requires.hcl")}, tt.args...)...)
			r.wantCode(t, 0)
			for _, name := range []string{"anywhere", "on_windows", "with_docker", "here"} {
				e := r.module(t, name)
				reason, skip := tt.skipped[name]
				if !skip {
					wantStatus(t, e, coordinator.StatusSucceeded)
					continue
				}
				wantStatus(t, e, coordinator.StatusSkipped)
				if e.SkipReason != reason {
					t.Errorf("%s: skip reason\n  %q\nwant\n  %q", name, e.SkipReason, reason)
				}
			}
		})
	}
}

// ran is testkit's result for sleep: which process ran which module.
type ran struct {
	PID    int    `json:"pid"`
	Module string `json:"module"`
	Target string `json:"target"`
}

// echoed is the part of testkit's echo result these tests read.
type echoed struct {
	Config struct {
		Text  string   `json:"Text"`
		Count int      `json:"Count"`
		Tags  []string `json:"Tags"`
	} `json:"config"`
	Module string            `json:"module"`
	Matrix map[string]string `json:"matrix"`
	Target string            `json:"target"`
}

func decodeValue[T any](t *testing.T, e coordinator.Envelope) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(e.Value, &v); err != nil {
		t.Fatalf("%s: value %s: %v", e.Module, e.Value, err)
	}
	return v
}

func TestMatrix(t *testing.T) {
	r := runHost(t, "run", schedFile("matrix.hcl"))
	r.wantCode(t, 1) // shard[2] fails
	here := hostOS()

	builds := []string{"build[linux]", "build[windows]", "build[macos]"}
	tests := []string{ // the product minus windows with go 1.25
		"test[target=linux,go=1.25]", "test[target=linux,go=1.26]",
		"test[target=windows,go=1.26]",
		"test[target=macos,go=1.25]", "test[target=macos,go=1.26]",
	}
	wantNames := slices.Concat(builds, tests, []string{"release", "shard[1]", "shard[2]", "shard[3]", "merge"})
	sort.Strings(wantNames)
	if got := r.names(t); !slices.Equal(got, wantNames) {
		t.Fatalf("modules in the report:\n  %v\nwant\n  %v", got, wantNames)
	}

	// Each instance requires its target: this machine's runs, the others
	// are skipped, each with its own envelope.
	release := r.module(t, "release")
	wantStatus(t, release, coordinator.StatusSucceeded)
	for _, addr := range slices.Concat(builds, tests) {
		e := r.module(t, addr)
		target := matrixValues(addr)["target"]
		if target != here {
			wantStatus(t, e, coordinator.StatusSkipped)
			if want := fmt.Sprintf("requires [%s] which this instance does not have (has: %s)", target, hostCaps()); e.SkipReason != want {
				t.Errorf("%s: skip reason %q, want %q", addr, e.SkipReason, want)
			}
			continue
		}
		wantStatus(t, e, coordinator.StatusSucceeded)
		// The dependent waits for every instance.
		if release.StartedAt.Before(e.EndedAt) {
			t.Errorf("release started at %s, before %s ended at %s", release.StartedAt.Format(time.StampMicro), addr, e.EndedAt.Format(time.StampMicro))
		}
		if strings.HasPrefix(addr, "build[") {
			v := decodeValue[ran](t, e)
			if v.Module != addr || v.Target != target {
				t.Errorf("%s: the plugin saw module %q, matrix target %q", addr, v.Module, v.Target)
			}
			continue
		}
		v := decodeValue[echoed](t, e)
		mv := matrixValues(addr)
		if v.Module != addr || v.Target != target || !maps.Equal(v.Matrix, mv) {
			t.Errorf("%s: the plugin saw module %q, target %q, matrix %v", addr, v.Module, v.Target, v.Matrix)
		}
		// matrix.* in the block's own expressions.
		if want := mv["target"] + "/go" + mv["go"]; v.Config.Text != want || !slices.Equal(v.Config.Tags, []string{mv["target"], mv["go"]}) {
			t.Errorf("%s: text %q tags %v, want %q and [%s %s]", addr, v.Config.Text, v.Config.Tags, want, mv["target"], mv["go"])
		}
	}

	// release reads module.build[run.os], and the keys and length of
	// module.test: a matrix module is a map from instance key to result.
	v := decodeValue[echoed](t, release)
	if want := here + " build[" + here + "]"; v.Config.Text != want {
		t.Errorf("release text %q, want %q", v.Config.Text, want)
	}
	wantKeys := []string{"target=linux,go=1.25", "target=linux,go=1.26", "target=macos,go=1.25", "target=macos,go=1.26", "target=windows,go=1.26"}
	if !slices.Equal(v.Config.Tags, wantKeys) || v.Config.Count != len(wantKeys) {
		t.Errorf("keys(module.test) = %v, length(module.test) = %d, want %v and %d", v.Config.Tags, v.Config.Count, wantKeys, len(wantKeys))
	}

	// A matrix without a target axis requires nothing; its failed
	// instance fails the dependent like any dependency.
	wantStatus(t, r.module(t, "shard[1]"), coordinator.StatusSucceeded)
	wantStatus(t, r.module(t, "shard[2]"), coordinator.StatusFailed)
	wantStatus(t, r.module(t, "shard[3]"), coordinator.StatusSucceeded)
	merge := r.module(t, "merge")
	wantStatus(t, merge, coordinator.StatusSkipped)
	if !strings.Contains(merge.SkipReason, "shard[2]") {
		t.Errorf("merge: skip reason %q should name shard[2]", merge.SkipReason)
	}
	if !strings.Contains(r.stdout, "shard[2] | shard 2") {
		t.Errorf("instance output is not prefixed with the instance address:\n%s", r.stdout)
	}
}

// matrixValues parses an instance address: NAME[v] or NAME[a=x,b=y].
func matrixValues(addr string) map[string]string {
	_, key, _ := strings.Cut(strings.TrimSuffix(addr, "]"), "[")
	out := map[string]string{}
	for _, part := range strings.Split(key, ",") {
		if k, v, ok := strings.Cut(part, "="); ok {
			out[k] = v
		} else {
			out["target"] = part
		}
	}
	return out
}

func TestMatrixGraphAndValidate(t *testing.T) {
	for _, format := range []string{"dot", "mermaid"} {
		t.Run(format, func(t *testing.T) {
			r := runHostEnv(t, nil, "graph", schedFile("matrix.hcl"), "--format", format)
			r.wantCode(t, 0)
			golden(t, "matrix."+format+".golden", r.stdout)
		})
	}
	r := runHostEnv(t, nil, "validate", schedFile("matrix.hcl"))
	r.wantCode(t, 0)
	if want := "matrix.hcl is valid: 5 modules (13 after matrix expansion), 2 plugins (shell, testkit)"; !strings.Contains(r.stdout, want) {
		t.Errorf("validate output %q does not say %q", r.stdout, want)
	}
}

func TestFilters(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // the modules run (sorted)
		warn []string // text stderr must hold
	}{
		{"only with its dependencies", []string{"--only", "test"}, []string{"build", "checkout", "test"}, nil},
		{"only twice", []string{"--only", "test", "--only", "docs"}, []string{"build", "checkout", "docs", "test"}, nil},
		{"skip removes dependents", []string{"--skip", "build"}, []string{"checkout", "docs", "lint"},
			[]string{"test depends on build, which was removed by --skip", "package depends on test, which was removed because one of its dependencies was skipped"}},
		{"only and skip", []string{"--only", "package", "--skip", "test"}, []string{"build", "checkout"},
			[]string{"package depends on test, which was removed by --skip"}},
		{"category with dependencies", []string{"--category", "check"}, []string{"build", "checkout", "lint", "test"}, nil},
		{"category and only", []string{"--category", "docs", "--only", "build"}, []string{"build", "checkout", "docs"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runHostEnv(t, nil, append([]string{"run", schedFile("filters.hcl")}, tt.args...)...)
			r.wantCode(t, 0)
			if got := r.names(t); !slices.Equal(got, tt.want) {
				t.Errorf("ran %v, want %v", got, tt.want)
			}
			for _, e := range r.report.Modules {
				wantStatus(t, e, coordinator.StatusSucceeded)
			}
			for _, w := range tt.warn {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not warn %q:\n%s", w, r.stderr)
				}
			}
		})
	}

	bad := []struct {
		args []string
		want string
	}{
		{[]string{"--only", "tset"}, `There is no module "tset" in testdata/schedule/filters.hcl. Did you mean "test"?`},
		{[]string{"--skip", "chekout"}, `There is no module "chekout" in testdata/schedule/filters.hcl. Did you mean "checkout"?`},
		{[]string{"--category", "chek"}, `No module has category "chek". Did you mean "check"?`},
		{[]string{"--category", "nope"}, `No module has category "nope". The categories are: check, compile, docs.`},
		{[]string{"--only", "test", "--skip", "checkout"}, `--only, --skip and --category together leave no module to run.`},
	}
	for _, tt := range bad {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			for _, extra := range [][]string{nil, {"--dry-run"}} {
				r := runHostEnv(t, nil, slices.Concat([]string{"run", schedFile("filters.hcl")}, tt.args, extra)...)
				r.wantCode(t, 2)
				if !strings.Contains(r.stderr, tt.want) {
					t.Errorf("%v: stderr does not say %q:\n%s", extra, tt.want, r.stderr)
				}
				if r.ranSomething() {
					t.Errorf("%v: a run with an unknown name wrote a report", extra)
				}
			}
		})
	}
}

// golden compares got with testdata/schedule/NAME, or rewrites the file
// under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := schedFile(name)
	if *update {
		writeFile(t, path, got)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it; review the diff):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// normalizePlan replaces what depends on the machine in a plan: its
// capabilities (OS and arch) and the default parallelism (CPUs x 4). An
// explicit --parallelism stays as given.
func normalizePlan(plan string, extraCaps ...string) string {
	plan = strings.ReplaceAll(plan, hostCaps(extraCaps...), "<os, arch and extra capabilities>")
	return strings.ReplaceAll(plan, fmt.Sprintf("up to %d at once", runtime.NumCPU()*4), "up to <CPUs x 4> at once")
}

func TestDryRun(t *testing.T) {
	tests := []struct {
		golden string
		args   []string
	}{
		{"plan.golden", nil},
		{"plan_only.golden", []string{"--only", "link", "--only", "notify"}},
		{"plan_publish.golden", []string{"--var", "publish=true", "--parallelism", "3"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "touched")
			args := slices.Concat([]string{"run", schedFile("plan.hcl"), "--dry-run", "--capability", "SPARC", "--var", "marker=" + marker}, tt.args)
			r := runHostEnv(t, nil, args...)
			r.wantCode(t, 0)
			golden(t, tt.golden, normalizePlan(r.stdout, "sparc"))
			if r.report != nil {
				t.Error("--dry-run wrote a report")
			}
			if _, err := os.Stat(marker); !os.IsNotExist(err) {
				t.Errorf("--dry-run ran the touch module: %s exists (%v)", marker, err)
			}
		})
	}
}

// The plan gives each module the skip reason the run will give: a
// module whose dependency is skipped is skipped for that first, as the
// scheduler decides it before the executor looks at what the module
// requires (the plan used to name the requirement instead).
func TestDryRunGivesTheRunsSkipReasons(t *testing.T) {
	file := filepath.Join(t.TempDir(), "matrix.hcl")
	writeFile(t, file, `module "shell" "build" {
  matrix  = ["alpha", "beta"]
  command = ["echo", matrix.target]
}
module "shell" "test" {
  matrix  = ["alpha", "beta"]
  command = ["echo", module.build[matrix.target].value.stdout]
}
module "shell" "all" {
  command    = ["true"]
  depends_on = [module.build]
}
`)
	plan := runHost(t, "run", file, "--dry-run", "--capability", "alpha")
	plan.wantCode(t, 0)
	run := runHost(t, "run", file, "--no-progress", "--capability", "alpha")
	if run.report == nil {
		t.Fatalf("no report:\n%s", run.stderr)
	}
	skipped := 0
	for _, e := range run.report.Modules {
		if e.Status != coordinator.StatusSkipped {
			continue
		}
		skipped++
		want := e.Module + " shell skip: " + strings.Replace(e.SkipReason, " was skipped", " would be skipped", 1)
		if !slices.ContainsFunc(strings.Split(plan.stdout, "\n"), func(l string) bool { return strings.Join(strings.Fields(l), " ") == want }) {
			t.Errorf("the plan lacks %q:\n%s", want, plan.stdout)
		}
	}
	if skipped != 2 {
		t.Errorf("%d modules skipped, want build[beta] and test[beta]:\n%s", skipped, run.stdout)
	}
}

// A dry run checks the file as validate does: no plan for a file run
// would refuse.
func TestDryRunRefusesWhatRunRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, text string
		code       int
		want       string
	}{
		{"unknown kind", `module "shel" "a" { script = "true" }`, 3, `shel`},
		{"misspelt argument", `module "shell" "a" { scrpit = "true" }`, 2, `Did you mean "script"?`},
		{"neither command nor script", `module "shell" "a" {}`, 2, "command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".hcl")
			writeFile(t, file, tc.text+"\n")
			r := runHost(t, "run", file, "--dry-run")
			r.wantCode(t, tc.code)
			if !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stdout, "would run") {
				t.Errorf("want an error with %q and no plan\nstdout:\n%s\nstderr:\n%s", tc.want, r.stdout, r.stderr)
			}
		})
	}
}

// running is a host run in progress whose output the test reads as it
// streams.
type running struct {
	cmd    *exec.Cmd
	report string
	done   chan struct{} // closed when stdout reaches EOF

	mu     sync.Mutex
	lines  []string
	notify chan struct{} // pulsed on every new line
	stderr bytes.Buffer
}

// startHost starts `host run ARGS...` in its own process group, as a
// shell runs a foreground job, so the test can signal the group like a
// terminal's Ctrl-C does.
func startHost(t *testing.T, args ...string) *running {
	t.Helper()
	h := &running{
		report: filepath.Join(t.TempDir(), "report.json"),
		done:   make(chan struct{}),
		notify: make(chan struct{}, 1),
	}
	args = append(args, "--report", "json="+h.report)
	h.cmd = exec.Command(hostBin, args...)
	h.cmd.Env = schedEnv()
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	h.cmd.Stderr = &lockedWriter{mu: &h.mu, w: &h.stderr}
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("start host: %v", err)
	}
	go func() { // owned by h: wait() waits for done
		defer close(h.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.mu.Lock()
			h.lines = append(h.lines, sc.Text())
			h.mu.Unlock()
			select {
			case h.notify <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		// A failed test must not leave the host running: kill its group.
		if h.cmd.ProcessState == nil {
			_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
			<-h.done
			_ = h.cmd.Wait()
		}
	})
	return h
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// deadlockGuard bounds every wait in these tests. It is far beyond what
// any step needs; it only turns a hang into a failure.
const deadlockGuard = 60 * time.Second

// waitFor waits until every pattern has matched a line of stdout and
// returns each pattern's submatches.
func (h *running) waitFor(t *testing.T, patterns ...*regexp.Regexp) [][]string {
	t.Helper()
	guard := time.After(deadlockGuard)
	for {
		h.mu.Lock()
		found := make([][]string, len(patterns))
		n := 0
		for i, p := range patterns {
			for _, l := range h.lines {
				if m := p.FindStringSubmatch(l); m != nil {
					found[i] = m
					n++
					break
				}
			}
		}
		out := strings.Join(h.lines, "\n")
		h.mu.Unlock()
		if n == len(patterns) {
			return found
		}
		select {
		case <-h.notify:
		case <-h.done:
			t.Fatalf("host exited before its output showed %v:\n%s\nstderr:\n%s", patterns, out, h.stderrText())
		case <-guard:
			t.Fatalf("deadlock guard: the output never showed %v:\n%s", patterns, out)
		}
	}
}

func (h *running) stderrText() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stderr.String()
}

// wait waits for the host to exit and returns its exit code and report.
func (h *running) wait(t *testing.T) result {
	t.Helper()
	select {
	case <-h.done:
	case <-time.After(deadlockGuard):
		t.Fatalf("deadlock guard: the host did not exit after the signal")
	}
	err := h.cmd.Wait()
	h.mu.Lock()
	r := result{stdout: strings.Join(h.lines, "\n"), stderr: h.stderr.String()}
	h.mu.Unlock()
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("wait for host: %v", err)
		}
		r.code = ee.ExitCode()
	}
	r.report = readReport(t, h.report)
	return r
}

// procsUnder returns the live processes whose executable is in dir, by
// pid, read from /proc.
func procsUnder(t *testing.T, dir string) map[int]string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("read /proc: %v", err)
	}
	out := map[int]string{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && strings.HasPrefix(exe, dir+string(filepath.Separator)) {
			out[pid] = exe
		}
	}
	return out
}

// alive reports whether pid is a process that has not exited. A zombie
// has exited: it waits only for its parent (here maybe an init that does
// not reap) to collect its status.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and
	// may itself hold spaces or parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] != 'Z' && s[i+2] != 'X'
}

func requireProc(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the process checks read /proc")
	}
}

func TestSignalCancelsRun(t *testing.T) {
	requireProc(t)
	tests := []struct {
		name string
		send func(pid int) error
	}{
		// Ctrl-C in a terminal: SIGINT to the whole foreground group, so
		// the plugins get it too and must leave the stopping to the host.
		{"SIGINT to the process group", func(pid int) error { return syscall.Kill(-pid, syscall.SIGINT) }},
		// A CI runner or `kill`: SIGTERM to the host alone.
		{"SIGTERM to the host", func(pid int) error { return syscall.Kill(pid, syscall.SIGTERM) }},
		// GNU timeout and CI runners: SIGTERM to the host and then to
		// its group, one action that must not count as a second
		// Ctrl-C (which writes no report). Sent a few times over, as
		// the kernel merges a signal still pending into the first.
		{"SIGTERM to the host then its process group", func(pid int) error {
			for range 3 {
				if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
					return err
				}
				if err := syscall.Kill(-pid, syscall.SIGTERM); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHost(t, "run", schedFile("signal.hcl"))
			m := h.waitFor(t, regexp.MustCompile(`^long \| sleeping 1m0s$`), regexp.MustCompile(`^child \| child pid (\d+)$`))
			sleepPID, _ := strconv.Atoi(m[1][1])

			plugins := procsUnder(t, filepath.Join(binDir, "plugins"))
			var names []string
			for _, exe := range plugins {
				names = append(names, filepath.Base(exe))
			}
			sort.Strings(names)
			if want := []string{"modpipe-plugin-shell", "modpipe-plugin-testkit"}; !slices.Equal(names, want) {
				t.Fatalf("plugin processes while running: %v, want %v", names, want)
			}
			if !alive(sleepPID) {
				t.Fatalf("the shell module's child %d is not running", sleepPID)
			}

			if err := tt.send(h.cmd.Process.Pid); err != nil {
				t.Fatal(err)
			}
			r := h.wait(t)
			r.wantCode(t, 130)
			if r.report == nil {
				t.Fatalf("no report written after the signal\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			}
			if r.report.Status != report.RunCancelled {
				t.Errorf("run status %s, want %s", r.report.Status, report.RunCancelled)
			}
			for _, name := range []string{"long", "child"} {
				e := r.module(t, name)
				wantStatus(t, e, coordinator.StatusCancelled)
				if e.Error == nil || e.Error.Kind != coordinator.ErrorKindCancelled {
					t.Errorf("%s: error %+v, want kind %s", name, e.Error, coordinator.ErrorKindCancelled)
				}
			}
			// after never started: cancelled with the run.
			wantStatus(t, r.module(t, "after"), coordinator.StatusCancelled)

			for pid, exe := range plugins {
				if alive(pid) {
					t.Errorf("plugin %s (pid %d) still runs after the host exited", exe, pid)
				}
			}
			if left := procsUnder(t, binDir); len(left) > 0 {
				t.Errorf("processes from %s left behind: %v", binDir, left)
			}
			if alive(sleepPID) {
				t.Errorf("the shell module's child (sleep, pid %d) still runs after the host exited", sleepPID)
			}
		})
	}
}

// A module that ignores its timeout ends when its plugin is killed after
// the grace period, and its error says why it took that long.
func TestTimeoutOfHungModuleSaysThePluginWasKilled(t *testing.T) {
	r := runHost(t, "run", schedFile("hang_timeout.hcl"), "--grace", "300ms")
	r.wantCode(t, 1)
	stuck := r.module(t, "stuck")
	wantStatus(t, stuck, coordinator.StatusTimedOut)
	if stuck.Error == nil || !strings.Contains(stuck.Error.Message, "timed out after 200ms and did not stop within the grace period (--grace), so its plugin \"testkit\" was killed as hung") {
		t.Errorf("stuck's error does not say its plugin was killed: %+v", stuck.Error)
	}
	// Its plugin sent no answer, so no tail: the host's own record of
	// what it wrote is the tail.
	if stuck.Error == nil || stuck.Error.Tail != "hanging forever" {
		t.Errorf("stuck's tail = %q, want the last line it wrote", stuck.Error.Tail)
	}
}

func TestSignalKillsHungPluginAfterGrace(t *testing.T) {
	requireProc(t)
	const grace = time.Second
	h := startHost(t, "run", schedFile("hang.hcl"), "--grace", grace.String())
	h.waitFor(t, regexp.MustCompile(`^stuck \| hanging forever$`))
	plugins := procsUnder(t, filepath.Join(binDir, "plugins"))
	if len(plugins) != 1 {
		t.Fatalf("plugin processes while running: %v, want testkit alone", plugins)
	}

	sent := time.Now()
	if err := syscall.Kill(h.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	r := h.wait(t)
	took := time.Since(sent)
	r.wantCode(t, 130)
	stuck := r.module(t, "stuck")
	wantStatus(t, stuck, coordinator.StatusCancelled)
	// The plugin ignores cancellation, so the host must have given it the
	// whole grace period before killing it: a lower bound, which a slow
	// machine cannot break.
	if took < grace {
		t.Errorf("the host exited %s after SIGINT, before the %s grace period was over", took, grace)
	}
	for pid, exe := range plugins {
		if alive(pid) {
			t.Errorf("hung plugin %s (pid %d) was not killed", exe, pid)
		}
	}
	if left := procsUnder(t, binDir); len(left) > 0 {
		t.Errorf("processes from %s left behind: %v", binDir, left)
	}
}
