package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/coordinator/memory"
	"github.com/modpipe/modpipe/host/report"
)

// These tests run in-process fleets: a master and workers as goroutines of
// the test process, on one memory coordinator, each with its own real
// plugin processes built in TestMain.

var pluginDir string // where TestMain built the plugins

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "modpipe-host-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		pluginDir = dir
		root, err := filepath.Abs("..")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for name, pkg := range map[string]string{"shell": "./plugins/shell", "testkit": "./sdk/internal/testkit",
			// Served without the sdk, and declaring no result type as
			// plugins older than result_schema do.
			"statusplugin": "./host/pluginhost/testdata/statusplugin"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, BinaryPrefix+name), pkg)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

// deadlockGuard bounds every wait in these tests. It is never an
// assertion about speed: a healthy run finishes far sooner.
const deadlockGuard = 3 * time.Minute

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a run.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// recordingCoordinator remembers every session it hands out, so tests can
// kill a member as a crash would.
type recordingCoordinator struct {
	*memory.Coordinator
	mu       sync.Mutex
	master   *memory.Master
	sessions map[int]*memory.Session
}

func newRecordingCoordinator() *recordingCoordinator {
	return &recordingCoordinator{Coordinator: memory.New(), sessions: map[int]*memory.Session{}}
}

func (c *recordingCoordinator) JoinMaster(ctx context.Context, req coordinator.JoinRequest) (coordinator.MasterSession, error) {
	s, err := c.Coordinator.JoinMaster(ctx, req)
	if err == nil {
		c.mu.Lock()
		c.master = s.(*memory.Master)
		c.mu.Unlock()
	}
	return s, err
}

func (c *recordingCoordinator) Join(ctx context.Context, req coordinator.JoinRequest) (coordinator.Session, error) {
	s, err := c.Coordinator.Join(ctx, req)
	if err == nil {
		c.mu.Lock()
		c.sessions[req.Member.Index] = s.(*memory.Session)
		c.mu.Unlock()
	}
	return s, err
}

func (c *recordingCoordinator) session(index int) *memory.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions[index]
}

// member describes one instance of a test fleet.
type member struct {
	index int
	caps  []string
	slots int
}

// fleet is a running in-process fleet.
type fleet struct {
	t     *testing.T
	coord *recordingCoordinator
	runID string
	file  string
	vars  map[string]string
	// environ is added to every instance's environment.
	environ []string
	cancel  context.CancelFunc
	ctx     context.Context

	masterLog *syncBuffer
	masterOut *syncBuffer
	masterRun chan masterResult
	workers   map[int]chan error
	workerOut map[int]*syncBuffer
	exited    map[int]error // workers already waited for
	wg        sync.WaitGroup
}

type masterResult struct {
	run *report.Run
	err error
}

func newFleet(t *testing.T, file string, vars map[string]string) *fleet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadlockGuard)
	f := &fleet{
		t: t, coord: newRecordingCoordinator(), runID: "test-" + strings.ReplaceAll(t.Name(), "/", "-"),
		file: filepath.Join("testdata", "distributed", file), vars: vars, ctx: ctx, cancel: cancel,
		masterLog: &syncBuffer{}, masterOut: &syncBuffer{}, masterRun: make(chan masterResult, 1), workers: map[int]chan error{}, workerOut: map[int]*syncBuffer{}, exited: map[int]error{},
	}
	t.Cleanup(func() {
		f.cancel()
		f.wg.Wait()
		f.coord.Close()
	})
	return f
}

func (f *fleet) options(m member, stdout, log *syncBuffer) (RunOptions, DistributedOptions) {
	opts := RunOptions{Options: Options{
		File:         f.file,
		Vars:         f.vars,
		Environ:      append([]string{"PATH=" + os.Getenv("PATH")}, f.environ...),
		Capabilities: m.caps,
		Stdout:       stdout,
		Stderr:       stdout,
		Logger:       hclog.New(&hclog.LoggerOptions{Output: log, Level: hclog.Info, Name: fmt.Sprintf("i%d", m.index)}),
		Locator:      &PluginLocator{Dirs: []string{pluginDir}},
	}}
	slots := m.slots
	if slots == 0 {
		slots = 1
	}
	d := DistributedOptions{
		Instance: m.index, Total: 4, RunID: f.runID, Slots: slots,
		HostName: fmt.Sprintf("w%d", m.index), Version: "test",
	}
	if m.index == 0 {
		d.HostName = "master"
	}
	return opts, d
}

// startMaster runs the master on a goroutine.
func (f *fleet) startMaster(m member) {
	opts, d := f.options(m, f.masterOut, f.masterLog)
	// Workers get no --var: the master's values reach them with the run.
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		run, err := RunDistributed(f.ctx, opts, d, f.coord)
		f.masterRun <- masterResult{run, err}
	}()
}

// startWorker runs a worker on a goroutine; wait returns its error.
func (f *fleet) startWorker(m member) {
	out := &syncBuffer{}
	opts, d := f.options(m, out, out)
	opts.Vars = nil
	ch := make(chan error, 1)
	f.workers[m.index] = ch
	f.workerOut[m.index] = out
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		_, err := RunDistributed(f.ctx, opts, d, f.coord)
		if err != nil {
			f.t.Logf("worker %d: %v\n%s", m.index, err, out.String())
		}
		ch <- err
	}()
}

// start runs a master (index 0) and the given workers.
func (f *fleet) start(master member, workers ...member) {
	for _, w := range workers {
		f.startWorker(w)
	}
	f.startMaster(master)
}

func (f *fleet) waitMaster() (*report.Run, error) {
	f.t.Helper()
	select {
	case r := <-f.masterRun:
		if r.err != nil {
			f.t.Logf("master: %v\n%s\n%s", r.err, f.masterOut.String(), f.masterLog.String())
		}
		return r.run, r.err
	case <-time.After(deadlockGuard):
		f.t.Fatalf("deadlock guard: the master did not finish\n%s", f.masterLog.String())
	}
	return nil, nil
}

func (f *fleet) waitWorker(index int) error {
	f.t.Helper()
	if err, ok := f.exited[index]; ok {
		return err
	}
	select {
	case err := <-f.workers[index]:
		f.exited[index] = err
		return err
	case <-time.After(deadlockGuard):
		f.t.Fatalf("deadlock guard: worker %d did not finish", index)
	}
	return nil
}

func (f *fleet) waitWorkers() map[int]error {
	out := map[int]error{}
	for i := range f.workers {
		out[i] = f.waitWorker(i)
	}
	return out
}

// waitFile waits (as a deadlock guard only) until path exists.
func waitFile(t *testing.T, path string) []byte {
	t.Helper()
	deadline := time.Now().Add(deadlockGuard)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil {
			return b
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("deadlock guard: %s never appeared", path)
	return nil
}

func envelopes(run *report.Run) map[string]coordinator.Envelope {
	out := map[string]coordinator.Envelope{}
	if run != nil {
		for _, e := range run.Modules {
			out[e.Module] = e
		}
	}
	return out
}

func workers3(caps ...[]string) []member {
	var out []member
	for i := 1; i <= 3; i++ {
		var c []string
		if i-1 < len(caps) {
			c = caps[i-1]
		}
		out = append(out, member{index: i, caps: c})
	}
	return out
}

var greek = [][]string{{"alpha"}, {"beta"}, {"gamma"}}

func TestDistributedSpreadsIndependentModules(t *testing.T) {
	dir := t.TempDir()
	f := newFleet(t, "spread.hcl", map[string]string{"dir": dir})
	f.start(member{index: 0}, workers3()...)
	run, err := f.waitMaster()
	if err != nil {
		t.Fatalf("master: %v", err)
	}
	seen := map[int]string{}
	for _, e := range run.Modules {
		if e.Status != coordinator.StatusSucceeded {
			t.Errorf("%s: %s %+v", e.Module, e.Status, e.Error)
		}
		if prev, ok := seen[e.Instance]; ok {
			t.Errorf("instance %d ran both %s and %s with one slot", e.Instance, prev, e.Module)
		}
		seen[e.Instance] = e.Module
		if want := map[int]string{0: "master"}[e.Instance]; want == "" && e.Host != fmt.Sprintf("w%d", e.Instance) || want != "" && e.Host != want {
			t.Errorf("%s ran on instance %d with host %q", e.Module, e.Instance, e.Host)
		}
	}
	if len(seen) != 4 {
		t.Errorf("modules ran on instances %v, want all of 0..3", seen)
	}
	for i, err := range f.waitWorkers() {
		if err != nil {
			t.Errorf("worker %d: %v (want exit 0 for a succeeded run)", i, err)
		}
	}
	log := f.masterLog.String()
	for _, want := range []string{"run_id=" + f.runID, "enqueued", "claimed", "queue_wait=", "result", "member joined"} {
		if !strings.Contains(log, want) {
			t.Errorf("master log lacks %q:\n%s", want, log)
		}
	}
}

func TestDistributedDependencyAcrossMembers(t *testing.T) {
	f := newFleet(t, "deps.hcl", nil)
	f.start(member{index: 0}, workers3(greek...)...)
	run, err := f.waitMaster()
	if err != nil {
		t.Fatalf("master: %v", err)
	}
	envs := envelopes(run)
	for name, want := range map[string]int{"producer": 1, "consumer": 2, "reader": 3} {
		e := envs[name]
		if e.Status != coordinator.StatusSucceeded || e.Instance != want {
			t.Errorf("%s: status %s on instance %d, want succeeded on %d (%+v)", name, e.Status, e.Instance, want, e.Error)
		}
	}
	var consumer struct{ Stdout string }
	if err := json.Unmarshal(envs["consumer"].Value, &consumer); err != nil || strings.TrimSpace(consumer.Stdout) != "sha=abc123 count=4" {
		t.Errorf("consumer read the producer's result through HCL as %q (%v)", consumer.Stdout, err)
	}
	var reader struct {
		Value struct {
			JSON struct{ SHA string } `json:"json"`
		} `json:"value"`
	}
	if err := json.Unmarshal(envs["reader"].Value, &reader); err != nil || reader.Value.JSON.SHA != "abc123" {
		t.Errorf("reader read the producer's result through sdk.Result as %s (%v)", envs["reader"].Value, err)
	}
	for i, err := range f.waitWorkers() {
		if err != nil {
			t.Errorf("worker %d: %v", i, err)
		}
	}
}

func TestDistributedNotInParallelAcrossMembers(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "events")
	f := newFleet(t, "not_in_parallel.hcl", map[string]string{"log": logFile})
	f.start(member{index: 0, slots: 4}, []member{{index: 1, caps: greek[0], slots: 4}, {index: 2, caps: greek[1], slots: 4}, {index: 3, caps: greek[2], slots: 4}}...)
	run, err := f.waitMaster()
	if err != nil {
		t.Fatalf("master: %v", err)
	}
	instances := map[int]bool{}
	for _, e := range run.Modules {
		instances[e.Instance] = true
	}
	if len(instances) != 4 {
		t.Errorf("modules ran on instances %v, want four different ones", instances)
	}
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	events := strings.Fields(strings.ReplaceAll(string(b), "\n", " "))
	if len(events) != 16 {
		t.Fatalf("events = %q, want a start and an end for each of 4 modules", events)
	}
	for i := 0; i < len(events); i += 4 {
		if events[i] != "start" || events[i+2] != "end" || events[i+1] != events[i+3] {
			t.Fatalf("modules sharing a not_in_parallel key overlapped: %q", events)
		}
	}
	f.waitWorkers()
}

func TestDistributedRoutingPinAndCapabilityTimeout(t *testing.T) {
	f := newFleet(t, "routing.hcl", nil)
	f.start(member{index: 0}, workers3([]string{"windows"}, []string{"macos"})...)
	run, err := f.waitMaster()
	if err == nil || ExitCode(err) != ExitFailed {
		t.Fatalf("master error = %v, want the pipeline to fail (gpu cannot run)", err)
	}
	envs := envelopes(run)
	for addr, want := range map[string]int{"build[windows]": 1, "build[macos]": 2, "pinned": 0} {
		e := envs[addr]
		if e.Status != coordinator.StatusSucceeded || e.Instance != want {
			t.Errorf("%s: %s on instance %d, want succeeded on %d (%+v)", addr, e.Status, e.Instance, want, e.Error)
		}
	}
	gpu := envs["gpu"]
	if gpu.Status != coordinator.StatusFailed || gpu.Error == nil || gpu.Error.Kind != coordinator.ErrorKindCapability {
		t.Fatalf("gpu: %s %+v, want failed with kind capability", gpu.Status, gpu.Error)
	}
	for _, want := range []string{"[gpu, cuda]", "instance 0 (master)", "instance 1 (w1)", "instance 2 (w2)", "instance 3 (w3)", "lacks [gpu, cuda]", "windows"} {
		if !strings.Contains(gpu.Error.Message, want) {
			t.Errorf("capability message lacks %q: %s", want, gpu.Error.Message)
		}
	}
	if gpu.Plugin != "testkit" || gpu.Type != "testkit.echo/v1" {
		t.Errorf("gpu envelope names plugin %q type %q", gpu.Plugin, gpu.Type)
	}
	for i, err := range f.waitWorkers() {
		if ExitCode(err) != ExitFailed {
			t.Errorf("worker %d: %v, want exit %d mirroring the failed run", i, err, ExitFailed)
		}
	}
}

// signalWriter closes found once the text written to it contains want.
type signalWriter struct {
	syncBuffer
	want  string
	once  sync.Once
	found chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	n, err := w.syncBuffer.Write(p)
	if strings.Contains(w.String(), w.want) {
		w.once.Do(func() { close(w.found) })
	}
	return n, err
}

func TestDistributedCapableMemberJoinsLater(t *testing.T) {
	f := newFleet(t, "late.hcl", nil)
	sig := &signalWriter{want: "waiting for a capable member", found: make(chan struct{})}
	opts, d := f.options(member{index: 0}, f.masterOut, &sig.syncBuffer)
	opts.Logger = hclog.New(&hclog.LoggerOptions{Output: sig, Level: hclog.Info})
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		run, err := RunDistributed(f.ctx, opts, d, f.coord)
		f.masterRun <- masterResult{run, err}
	}()
	select {
	case <-sig.found:
	case <-time.After(deadlockGuard):
		t.Fatalf("deadlock guard: the master never waited for a capable member\n%s", sig.String())
	}
	f.startWorker(member{index: 2, caps: []string{"late"}})
	run, err := f.waitMaster()
	if err != nil {
		t.Fatalf("master: %v", err)
	}
	if e := envelopes(run)["late"]; e.Status != coordinator.StatusSucceeded || e.Instance != 2 {
		t.Errorf("late: %s on %d, want succeeded on the late worker 2", e.Status, e.Instance)
	}
	if err := f.waitWorker(2); err != nil {
		t.Errorf("worker: %v", err)
	}
}

func TestDistributedMemberLoss(t *testing.T) {
	tests := []struct {
		name     string
		attempts int
		want     coordinator.Status
	}{
		{"requeued with attempts left", 2, coordinator.StatusSucceeded},
		{"failed without attempts left", 1, coordinator.StatusFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f := newFleet(t, "lost.hcl", map[string]string{"dir": dir, "attempts": strconv.Itoa(tt.attempts)})
			f.start(member{index: 0}, workers3([]string{"alpha"}, []string{"alpha"})...)
			victim, err := strconv.Atoi(strings.TrimSpace(string(waitFile(t, filepath.Join(dir, "running")))))
			if err != nil || (victim != 1 && victim != 2) {
				t.Fatalf("victim ran on %d (%v), want worker 1 or 2", victim, err)
			}
			f.coord.session(victim).Kill()

			run, err := f.waitMaster()
			e := envelopes(run)["victim"]
			if e.Status != tt.want {
				t.Fatalf("victim: %s %+v, want %s (master error %v)", e.Status, e.Error, tt.want, err)
			}
			if tt.want == coordinator.StatusSucceeded {
				if err != nil || e.Attempts != 2 || e.Instance == victim || e.Instance == 0 || e.Instance == 3 {
					t.Errorf("victim: attempt %d on instance %d (err %v), want attempt 2 on the other alpha worker", e.Attempts, e.Instance, err)
				}
				if !strings.Contains(f.masterLog.String(), "re-queue after a lost member") {
					t.Errorf("the re-queue was not logged:\n%s", f.masterLog.String())
				}
			} else {
				want := fmt.Sprintf("instance %d (w%d) was lost while running victim", victim, victim)
				if e.Error == nil || e.Error.Kind != coordinator.ErrorKindLost || !strings.Contains(e.Error.Message, want) {
					t.Errorf("victim error %+v, want kind lost with %q", e.Error, want)
				}
			}
			if err := f.waitWorker(victim); ExitCode(err) != ExitCoordinator || !errors.Is(err, coordinator.ErrSessionLost) {
				t.Errorf("killed worker: %v, want exit %d with the session lost", err, ExitCoordinator)
			}
			f.waitWorkers()
		})
	}
}

func TestDistributedCancellationReachesEveryWorker(t *testing.T) {
	dir := t.TempDir()
	f := newFleet(t, "cancel.hcl", map[string]string{"dir": dir})
	f.start(member{index: 0}, workers3(greek...)...)
	run, err := f.waitMaster()
	if ExitCode(err) != ExitFailed {
		t.Fatalf("master: %v, want the failed pipeline's exit", err)
	}
	envs := envelopes(run)
	if e := envs["breaker"]; e.Status != coordinator.StatusFailed {
		t.Errorf("breaker: %s", e.Status)
	}
	// Each is reported as the worker that ran it stopped it, as a
	// single-machine run reports a module cancelled while running.
	for i, name := range []string{"long_alpha", "long_beta", "long_gamma"} {
		e := envs[name]
		if e.Status != coordinator.StatusCancelled || e.Instance != i+1 || e.Host != fmt.Sprintf("w%d", i+1) || e.Attempts != 1 {
			t.Errorf("%s: %s on instance %d host %q attempts %d (%+v), want cancelled on instance %d, attempt 1", name, e.Status, e.Instance, e.Host, e.Attempts, e.Error, i+1)
		}
		// Cancelled, and why, said once.
		if e.Error == nil || !strings.HasPrefix(e.Error.Message, "cancelled while running: ") || strings.Count(e.Error.Message, "cancel") != 1 {
			t.Errorf("%s: error %+v, want one 'cancelled while running: ' and the reason", name, e.Error)
		}
	}
	// Never claimed: a module that never started.
	if e := envs["queued_alpha"]; e.Status != coordinator.StatusCancelled || e.Attempts != 0 || e.Error == nil || !strings.HasPrefix(e.Error.Message, "not started: ") {
		t.Errorf("queued_alpha: %s attempts %d %+v, want cancelled, not started, 0 attempts", e.Status, e.Attempts, e.Error)
	}
	for i, err := range f.waitWorkers() {
		if err == nil || !strings.Contains(err.Error(), "cancelled by the master") {
			t.Errorf("worker %d: %v, want a non-zero exit saying the master cancelled the run", i, err)
		}
	}
	if !strings.Contains(f.masterLog.String(), "run cancelled") {
		t.Errorf("the cancellation was not logged:\n%s", f.masterLog.String())
	}
}

func TestDistributedMasterLoss(t *testing.T) {
	dir := t.TempDir()
	f := newFleet(t, "masterloss.hcl", map[string]string{"dir": dir})
	f.start(member{index: 0}, workers3(greek...)...)
	for _, m := range []string{"alpha", "beta", "gamma"} {
		waitFile(t, filepath.Join(dir, m))
	}
	f.coord.mu.Lock()
	master := f.coord.master
	f.coord.mu.Unlock()
	master.Kill()
	for i, err := range f.waitWorkers() {
		if ExitCode(err) != ExitCoordinator || !strings.Contains(err.Error(), "master lost") {
			t.Errorf("worker %d: %v, want exit %d with master lost", i, err, ExitCoordinator)
		}
	}
	if _, err := f.waitMaster(); err == nil {
		t.Errorf("the master whose session was lost reported success")
	}
}

func TestDistributedDuplicateIndexRefused(t *testing.T) {
	dir := t.TempDir()
	f := newFleet(t, "spread.hcl", map[string]string{"dir": dir})
	f.start(member{index: 0}, workers3()...)
	// Wait until worker 1 holds its index, then start a second one.
	deadline := time.Now().Add(deadlockGuard)
	for f.coord.session(1) == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	out := &syncBuffer{}
	opts, d := f.options(member{index: 1}, out, out)
	d.HostName = "intruder"
	_, err := RunDistributed(f.ctx, opts, d, f.coord)
	if ExitCode(err) != ExitInvalid || !errors.Is(err, coordinator.ErrDuplicateIndex) || !strings.Contains(err.Error(), `instance 1`) || !strings.Contains(err.Error(), `"w1"`) {
		t.Errorf("duplicate: %v, want exit %d naming instance 1 and its holder w1", err, ExitInvalid)
	}
	if _, err := f.waitMaster(); err != nil {
		t.Errorf("the run did not go on: %v", err)
	}
	f.waitWorkers()
}

func TestDistributedRefusesADifferentFile(t *testing.T) {
	f := newFleet(t, "deps.hcl", nil)
	f.startMaster(member{index: 0})
	// A worker whose file differs by one comment.
	src, err := os.ReadFile(f.file)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "deps.hcl")
	if err := os.WriteFile(other, append(src, []byte("# changed\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	opts, d := f.options(member{index: 1, caps: greek[0]}, out, out)
	opts.File = other
	_, err = RunDistributed(f.ctx, opts, d, f.coord)
	if ExitCode(err) != ExitInvalid || !strings.Contains(err.Error(), "differs from the master's") {
		t.Errorf("worker: %v, want exit %d refusing the different file", err, ExitInvalid)
	}
	// The master alone cannot run alpha/beta/gamma modules; end the run.
	f.cancel()
	f.waitMaster()
}

// normalize drops what legitimately differs between runs: timings and
// where each module ran.
func normalize(t *testing.T, run *report.Run) string {
	t.Helper()
	if run == nil {
		t.Fatal("no report")
	}
	r := *run
	r.StartedAt, r.EndedAt, r.DurationMS, r.RunID = time.Time{}, time.Time{}, 0, ""
	r.Modules = append([]coordinator.Envelope(nil), run.Modules...)
	for i := range r.Modules {
		e := &r.Modules[i]
		e.StartedAt, e.EndedAt, e.DurationMS, e.Instance, e.Host = time.Time{}, time.Time{}, 0, 0, ""
		// testkit's echo reports the instance that ran it inside its value.
		var v map[string]any
		if json.Unmarshal(e.Value, &v) == nil && v["instance"] != nil {
			v["instance"] = 0
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			e.Value = b
		}
	}
	sort.SliceStable(r.Modules, func(i, j int) bool { return r.Modules[i].Module < r.Modules[j].Module })
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDistributedSummaryEqualsSingleMachine(t *testing.T) {
	for _, tc := range []struct {
		name    string
		workers []member
	}{
		{"master and three workers", workers3()},
		{"master alone", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t, "summary.hcl", nil)
			out := &syncBuffer{}
			local, err := Run(f.ctx, RunOptions{Options: Options{
				File: f.file, Environ: []string{"PATH=" + os.Getenv("PATH")}, Stdout: out, Stderr: out,
				Locator: &PluginLocator{Dirs: []string{pluginDir}}, RunID: f.runID,
			}})
			if ExitCode(err) != ExitFailed {
				t.Fatalf("single machine: %v, want the failed pipeline's exit\n%s", err, out.String())
			}

			f.start(member{index: 0}, tc.workers...)
			dist, err := f.waitMaster()
			if ExitCode(err) != ExitFailed {
				t.Fatalf("distributed: %v, want the failed pipeline's exit", err)
			}
			if got, want := normalize(t, dist), normalize(t, local); got != want {
				t.Errorf("distributed report differs from the single-machine one:\n--- distributed\n%s\n--- single machine\n%s", got, want)
			}
			for i, err := range f.waitWorkers() {
				if ExitCode(err) != ExitFailed {
					t.Errorf("worker %d: %v, want exit %d mirroring the failed run", i, err, ExitFailed)
				}
			}
		})
	}
}

func TestDistributedMasterThatCannotStartEndsTheRun(t *testing.T) {
	f := newFleet(t, "bad_attribute.hcl", nil)
	f.startWorker(member{index: 1})
	// Wait until the worker has joined, so it waits for the run record.
	deadline := time.Now().Add(deadlockGuard)
	for f.coord.session(1) == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	f.startMaster(member{index: 0})
	if _, err := f.waitMaster(); ExitCode(err) != ExitInvalid {
		t.Errorf("master: %v, want exit %d for the invalid file", err, ExitInvalid)
	}
	// The worker says why: the master's reason reaches it.
	if err := f.waitWorker(1); ExitCode(err) != ExitFailed || !strings.Contains(err.Error(), "finished with status failed: the master could not start the run: ") ||
		!strings.Contains(err.Error(), "bad_attribute.hcl") {
		t.Errorf("worker: %v, want exit %d with the master's reason", err, ExitFailed)
	}
}

// A worker runs from its own load of the file only when its variables
// and locals are the master's; otherwise (other --var values, or none)
// it evaluates the file again with the master's.
func TestDistributedWorkerRunsWithTheMastersValues(t *testing.T) {
	for _, tc := range []struct {
		name       string
		workerVars map[string]string
	}{
		{"worker without --var", nil},
		{"worker with the same --var as the master", map[string]string{"greeting": "hello"}},
		{"worker with another --var", map[string]string{"greeting": "bye"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t, "values.hcl", map[string]string{"greeting": "hello"})
			out := &syncBuffer{}
			opts, d := f.options(member{index: 1, caps: []string{"alpha"}}, out, out)
			opts.Vars = tc.workerVars
			worker := make(chan error, 1)
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				_, err := RunDistributed(f.ctx, opts, d, f.coord)
				worker <- err
			}()
			f.startMaster(member{index: 0})
			run, err := f.waitMaster()
			if err != nil {
				t.Fatalf("master: %v", err)
			}
			e := envelopes(run)["echo"]
			var res struct{ Stdout string }
			if err := json.Unmarshal(e.Value, &res); err != nil || e.Instance != 1 || strings.TrimSpace(res.Stdout) != "hello HELLO" {
				t.Errorf("echo on instance %d printed %q (%v), want \"hello HELLO\" on instance 1", e.Instance, res.Stdout, err)
			}
			if err := <-worker; err != nil {
				t.Errorf("worker: %v\n%s", err, out.String())
			}
			if said := strings.Contains(out.String(), "--var is ignored on a worker") && strings.Contains(out.String(), "greeting"); said != (len(tc.workerVars) > 0) {
				t.Errorf("warned of the worker's --var: %v, want %v:\n%s", said, len(tc.workerVars) > 0, out.String())
			}
		})
	}
}

// A worker whose master has not started the run says so at warn level,
// again and again, and stops saying it once the run starts.
func TestWorkerSaysItWaitsForTheMaster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), deadlockGuard)
	defer cancel()
	coord := memory.New()
	w, err := coord.Join(ctx, coordinator.JoinRequest{RunID: "r1", Member: coordinator.Member{Index: 1, Slots: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var buf syncBuffer
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: &buf})
	type waited struct {
		info coordinator.RunInfo
		err  error
	}
	done := make(chan waited, 1)
	go func() {
		info, err := waitRunSaying(ctx, w, log, 20*time.Millisecond)
		done <- waited{info, err}
	}()
	for strings.Count(buf.String(), "still waiting for the master") < 2 {
		select {
		case <-done:
			t.Fatal("WaitRun returned before the master started the run")
		case <-time.After(5 * time.Millisecond):
		}
	}
	m, err := coord.JoinMaster(ctx, coordinator.JoinRequest{RunID: "r1", Member: coordinator.Member{Index: 0, Slots: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.PublishRun(ctx, coordinator.RunInfo{Total: 2, PipelineHash: "h"}); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil || got.info.PipelineHash != "h" {
		t.Fatalf("WaitRun: %+v %v", got.info, got.err)
	}
	n := strings.Count(buf.String(), "still waiting")
	time.Sleep(100 * time.Millisecond)
	if strings.Count(buf.String(), "still waiting") != n {
		t.Fatalf("still saying it waits after the run started:\n%s", buf.String())
	}
}

// A worker says it is ready once its plugins are up, before it waits for
// the master (whose first pushes then go to workers that can start them
// at once), and the run goes on as before.
func TestWorkerSaysWhenItIsReady(t *testing.T) {
	dir := t.TempDir()
	f := newFleet(t, "spread.hcl", map[string]string{"dir": dir})
	out := &syncBuffer{}
	// With the master's --var, as a CI job gives every instance the same
	// flags: the worker can load the file, and start its plugins, alone.
	opts, d := f.options(member{index: 1}, out, out)
	ch := make(chan error, 1)
	f.workers[1] = ch
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		_, err := RunDistributed(f.ctx, opts, d, f.coord)
		ch <- err
	}()
	for !strings.Contains(out.String(), "worker ready") {
		select {
		case err := <-ch:
			t.Fatalf("worker exited before it said it was ready: %v\n%s", err, out.String())
		case <-f.ctx.Done():
			t.Fatalf("worker never said it was ready:\n%s", out.String())
		case <-time.After(5 * time.Millisecond):
		}
	}
	log := out.String()
	ready, up := strings.Index(log, "worker ready"), strings.Index(log, "plugin ready")
	if up < 0 || up > ready {
		t.Fatalf("worker said it was ready before its plugin was up:\n%s", log)
	}
	if line := log[ready:]; !strings.Contains(line[:strings.IndexByte(line, '\n')], "plugins_started=true") {
		t.Errorf("ready line lacks plugins_started=true:\n%s", log)
	}
	f.startWorker(member{index: 2})
	f.startWorker(member{index: 3})
	f.startMaster(member{index: 0})
	run, err := f.waitMaster()
	if err != nil {
		t.Fatalf("master: %v", err)
	}
	if run.Status != report.RunSucceeded {
		t.Errorf("run %s, want succeeded", run.Status)
	}
	for i, err := range f.waitWorkers() {
		if err != nil {
			t.Errorf("worker %d: %v", i, err)
		}
	}
}

// A worker prints a failed attempt that the master retries as such, not
// as the module's failure, and annotates nothing on GitHub: the master
// annotates each module that failed the run, once, as a single machine
// does.
func TestDistributedWorkerRetriedAttempt(t *testing.T) {
	for _, tt := range []struct {
		name    string
		environ []string
	}{
		{"plain", nil},
		{"github", []string{"GITHUB_ACTIONS=true"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFleet(t, "retry.hcl", map[string]string{"dir": t.TempDir()})
			f.environ = tt.environ
			f.start(member{index: 0}, workers3([]string{"docker"})...)
			run, err := f.waitMaster()
			if ExitCode(err) != ExitFailed {
				t.Fatalf("master: %v, want the run failed by broken", err)
			}
			envs := envelopes(run)
			if e := envs["flaky"]; e.Status != coordinator.StatusSucceeded || e.Attempts != 2 {
				t.Errorf("flaky: %s in %d attempts, want succeeded in 2", e.Status, e.Attempts)
			}
			if e := envs["broken"]; e.Status != coordinator.StatusFailed || e.Attempts != 2 {
				t.Errorf("broken: %s in %d attempts, want failed in 2", e.Status, e.Attempts)
			}
			f.waitWorkers()
			worker := f.workerOut[1].String()
			for _, want := range []string{"↻ flaky attempt 1 failed", "↻ broken attempt 1 failed", "✔ flaky succeeded", "✘ broken failed"} {
				if !strings.Contains(worker, want) {
					t.Errorf("worker 1 lacks %q:\n%s", want, worker)
				}
			}
			if strings.Contains(worker, "✘ flaky") || strings.Count(worker, "✘ broken") != 1 {
				t.Errorf("worker 1 shows a retried attempt as a failure:\n%s", worker)
			}
			if strings.Contains(worker, "::error") || strings.Contains(worker, "::warning") {
				t.Errorf("worker 1 annotates:\n%s", worker)
			}
			master := f.masterOut.String()
			if tt.environ != nil && (strings.Count(master, "::error") != 1 || !strings.Contains(master, "::error title=broken failed::")) {
				t.Errorf("want one annotation, broken's, from the master:\n%s", master)
			}
		})
	}
}
