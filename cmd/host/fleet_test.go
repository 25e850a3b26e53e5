package main

// Fleet tests: real `host run` processes (a master and workers) and real
// etcd processes on loopback, with real failures: SIGKILL of a worker, of
// the master, of etcd or of one member of an etcd cluster. Each test owns
// every process it starts (its own process group, killed in t.Cleanup)
// and checks at the end that none of them, nor any plugin or command they
// started, is left: every process carries MODPIPE_FLEET_TEST=<test id> in
// its environment, which children inherit, and /proc is searched for it.
//
// Waits are bounded only as deadlock guards. The requirement that a lost
// member is noticed within heartbeat_timeout + 2s is a speed target: these
// tests log the measured delay and fail only past a generous guard (the
// machine is shared and noisy); the benchmark measures it against the
// target (make bench, failure detection).

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/modpipe/modpipe/coordinator"
	"github.com/modpipe/modpipe/host/config"
	"github.com/modpipe/modpipe/host/report"
	"github.com/modpipe/modpipe/host/secrets"
)

// guard bounds every wait that should end by itself: reaching it means a
// hang, not slowness.
const guard = 60 * time.Second

var (
	etcdOnce sync.Once
	etcdBin  string
	etcdErr  error
)

// etcdBinary builds the etcd server from the module pinned in go.mod,
// once per test binary, next to the host binary.
func etcdBinary(t *testing.T) string {
	t.Helper()
	etcdOnce.Do(func() {
		root, err := filepath.Abs("../..")
		if err != nil {
			etcdErr = err
			return
		}
		out := filepath.Join(binDir, "etcd")
		cmd := exec.Command("go", "build", "-o", out, "go.etcd.io/etcd/server/v3")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			etcdErr = fmt.Errorf("go build go.etcd.io/etcd/server/v3: %v\n%s", err, b)
			return
		}
		etcdBin = out
	})
	if etcdErr != nil {
		t.Fatal(etcdErr)
	}
	return etcdBin
}

// syncBuffer is a bytes.Buffer safe for a process's output goroutine and
// the test reading it.
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

// proc is one process started by a fleet test, in its own process group.
type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{} // closed once the process is reaped
	exitedAt       time.Time     // set before done closes
}

// code is the exit code; -1 when a signal ended the process. Call after done.
func (p *proc) code() int { return p.cmd.ProcessState.ExitCode() }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill SIGKILLs the process's whole group, as a job control kill does;
// its plugins, in groups of their own, go with it through their
// parent-death signal.
func (p *proc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

func (p *proc) output() string {
	return fmt.Sprintf("--- %s stdout:\n%s\n--- %s stderr:\n%s", p.name, p.stdout, p.name, p.stderr)
}

// wait waits for the process to end (bounded by guard) and returns its code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code()
	case <-time.After(guard):
		t.Fatalf("%s did not exit within %s\n%s", p.name, guard, p.output())
		return 0
	}
}

// fleet is one test's set of processes.
type fleet struct {
	t     *testing.T
	tag   string // MODPIPE_FLEET_TEST of every process of this test
	dir   string
	tmp   string // TMPDIR of every process of this test
	procs []*proc
	mu    sync.Mutex
}

var fleetSeq struct {
	sync.Mutex
	n int
}

func newFleet(t *testing.T) *fleet {
	fleetSeq.Lock()
	fleetSeq.n++
	n := fleetSeq.n
	fleetSeq.Unlock()
	f := &fleet{t: t, tag: fmt.Sprintf("%d-%d", os.Getpid(), n), dir: t.TempDir()}
	// The processes' TMPDIR: a host killed with SIGKILL leaves go-plugin's
	// socket directories behind, and they go with it. Short, because the
	// sockets inside must stay under the 108-byte limit of a unix socket
	// path, which t.TempDir's long names can pass.
	tmp, err := os.MkdirTemp("", "mpf")
	if err != nil {
		t.Fatal(err)
	}
	f.tmp = tmp
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	// Registered first, so it runs after every process's own cleanup.
	t.Cleanup(func() {
		if left := f.waitNoneLeft(nil); len(left) > 0 {
			t.Errorf("processes of this test are still running after it killed its own:\n%s", strings.Join(left, "\n"))
		}
	})
	return f
}

// start starts bin with args as a process of this test.
func (f *fleet) start(name, bin string, args []string, extraEnv ...string) *proc {
	f.t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env(append([]string{"MODPIPE_FLEET_TEST=" + f.tag, "TMPDIR=" + f.tmp}, extraEnv...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &proc{name: name, cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		f.t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = cmd.Wait()
		p.exitedAt = time.Now()
		close(p.done)
	}()
	f.mu.Lock()
	f.procs = append(f.procs, p)
	f.mu.Unlock()
	f.t.Cleanup(func() {
		f.killGroup(p)
		select {
		case <-p.done:
		case <-time.After(guard):
			f.t.Errorf("%s survived SIGKILL for %s", name, guard)
		}
		if f.t.Failed() {
			f.t.Logf("%s exited (code %d)\n%s", name, p.cmd.ProcessState.ExitCode(), p.output())
		}
	})
	return p
}

// killGroup SIGKILLs p's process group if anything of it may still run.
// Once p itself was reaped its group id could in principle be reused, so
// the group is killed only while a process of this test is still in it.
func (f *fleet) killGroup(p *proc) {
	if !p.exited() {
		p.kill()
		return
	}
	for _, pi := range f.tagged() {
		if pi.pgid == p.cmd.Process.Pid {
			p.kill()
			return
		}
	}
}

// procInfo is a running process found in /proc.
type procInfo struct {
	pid, pgid int
	cmdline   string
}

// tagged lists the live processes (zombies excluded) that carry this
// test's tag.
func (f *fleet) tagged() []procInfo {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		f.t.Fatalf("list processes: %v", err)
	}
	want := []byte("MODPIPE_FLEET_TEST=" + f.tag + "\x00")
	var out []procInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		environ, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(append(environ, 0), want) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 3 || fields[0] == "Z" {
			continue
		}
		pgid, _ := strconv.Atoi(fields[2])
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out = append(out, procInfo{pid: pid, pgid: pgid, cmdline: strings.ReplaceAll(string(bytes.TrimRight(cmdline, "\x00")), "\x00", " ")})
	}
	return out
}

// waitNoneLeft waits (bounded) until no process of this test is running
// except those in the process groups of keep, and returns what is left.
func (f *fleet) waitNoneLeft(keep []*proc) []string {
	kept := map[int]bool{}
	for _, p := range keep {
		kept[p.cmd.Process.Pid] = true
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var left []string
		for _, pi := range f.tagged() {
			if !kept[pi.pgid] {
				left = append(left, fmt.Sprintf("pid %d (group %d): %s", pi.pid, pi.pgid, pi.cmdline))
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// assertNoneLeft fails the test if any process other than keep's groups
// (the etcd servers, typically) is still running once the instances ended.
func (f *fleet) assertNoneLeft(keep ...*proc) {
	f.t.Helper()
	if left := f.waitNoneLeft(keep); len(left) > 0 {
		f.t.Errorf("processes left behind by the instances:\n%s", strings.Join(left, "\n"))
	}
}

// freePorts returns n distinct loopback ports nothing listens on.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// etcdMember is one etcd server process of a test cluster.
type etcdMember struct {
	name                 string
	dataDir              string
	clientPort, peerPort int
	cluster              string // --initial-cluster
	proc                 *proc
}

func (m *etcdMember) endpoint() string { return fmt.Sprintf("127.0.0.1:%d", m.clientPort) }

// startEtcd starts an n-member etcd cluster on loopback and waits until
// every member reports healthy. A port taken between choosing it and etcd
// binding it (other test packages run at the same time) means new ports.
func (f *fleet) startEtcd(n int) []*etcdMember {
	f.t.Helper()
	for try := 1; ; try++ {
		members := f.tryStartEtcd(n)
		var err error
		for _, m := range members {
			if err = f.healthy(m); err != nil {
				break
			}
		}
		if err == nil {
			return members
		}
		taken := false
		for _, m := range members {
			f.killGroup(m.proc)
			<-m.proc.done
			taken = taken || strings.Contains(m.proc.stderr.String(), "address already in use")
		}
		if !taken || try == 3 {
			f.t.Fatal(err)
		}
		f.t.Logf("a port was taken before etcd bound it; trying new ports")
	}
}

func (f *fleet) tryStartEtcd(n int) []*etcdMember {
	f.t.Helper()
	ports := freePorts(f.t, 2*n)
	var members []*etcdMember
	var cluster []string
	for i := range n {
		m := &etcdMember{name: fmt.Sprintf("etcd%d", i), dataDir: filepath.Join(f.dir, fmt.Sprintf("etcd%d-%d", i, ports[2*i])), clientPort: ports[2*i], peerPort: ports[2*i+1]}
		members = append(members, m)
		cluster = append(cluster, fmt.Sprintf("%s=http://127.0.0.1:%d", m.name, m.peerPort))
	}
	for _, m := range members {
		m.cluster = strings.Join(cluster, ",")
		f.runEtcd(m)
	}
	return members
}

// runEtcd starts (or restarts, on the same data dir) m's process.
func (f *fleet) runEtcd(m *etcdMember) {
	f.t.Helper()
	client := fmt.Sprintf("http://127.0.0.1:%d", m.clientPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", m.peerPort)
	m.proc = f.start(m.name, etcdBinary(f.t), []string{
		"--name", m.name, "--data-dir", m.dataDir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", m.cluster, "--initial-cluster-token", "modpipe-" + f.tag,
		"--heartbeat-interval", "50", "--election-timeout", "500",
		"--log-level", "error",
	})
}

// waitHealthy waits until m answers /health with a leader.
func (f *fleet) waitHealthy(m *etcdMember) {
	f.t.Helper()
	if err := f.healthy(m); err != nil {
		f.t.Fatal(err)
	}
}

// healthy waits (bounded) until m answers /health with a leader, or
// returns why not.
func (f *fleet) healthy(m *etcdMember) error {
	url := fmt.Sprintf("http://%s/health", m.endpoint())
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(guard)
	for time.Now().Before(deadline) {
		if m.proc.exited() {
			return fmt.Errorf("%s exited while starting\n%s", m.name, m.proc.output())
		}
		resp, err := c.Get(url)
		if err == nil {
			var h struct {
				Health string `json:"health"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&h)
			resp.Body.Close()
			if h.Health == "true" {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not healthy within %s\n%s", m.name, guard, m.proc.output())
}

// etcdLeader asks each member for its status (the v3 JSON gateway's
// maintenance/status) and returns the one that is the leader.
func (f *fleet) etcdLeader(members []*etcdMember) *etcdMember {
	f.t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	var leader string
	ids := map[string]*etcdMember{}
	for _, m := range members {
		resp, err := c.Post(fmt.Sprintf("http://%s/v3/maintenance/status", m.endpoint()), "application/json", strings.NewReader("{}"))
		if err != nil {
			f.t.Fatalf("status of %s: %v", m.name, err)
		}
		var st struct {
			Header struct {
				MemberID string `json:"member_id"`
			} `json:"header"`
			Leader string `json:"leader"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || st.Leader == "" {
			f.t.Fatalf("status of %s: %v (leader %q)", m.name, err, st.Leader)
		}
		ids[st.Header.MemberID] = m
		leader = st.Leader
	}
	m := ids[leader]
	if m == nil {
		f.t.Fatalf("the leader %s is none of the members %v", leader, ids)
	}
	return m
}

// endpoints joins the members' client endpoints for --etcd.
func endpoints(members []*etcdMember) string {
	var eps []string
	for _, m := range members {
		eps = append(eps, m.endpoint())
	}
	return strings.Join(eps, ",")
}

// instance is one `host run` process of a fleet.
type instance struct {
	*proc
	index      int
	reportPath string
}

// host starts instance index of total for runID against etcd endpoints.
func (f *fleet) host(file string, index, total int, runID, etcd string, args ...string) *instance {
	f.t.Helper()
	return f.hostEnv(nil, file, index, total, runID, etcd, args...)
}

// hostEnv is host with extra environment variables.
func (f *fleet) hostEnv(extraEnv []string, file string, index, total int, runID, etcd string, args ...string) *instance {
	f.t.Helper()
	reportPath := filepath.Join(f.dir, fmt.Sprintf("report-%s-%d.json", runID, index))
	all := append([]string{"run", file,
		"--instance", strconv.Itoa(index), "--total", strconv.Itoa(total),
		"--run-id", runID, "--etcd", etcd, "--slots", "2",
		"--no-progress", "--log-level", "info", "--report", "json=" + reportPath,
	}, args...)
	p := f.start(fmt.Sprintf("%s/instance %d", runID, index), hostBin, all, extraEnv...)
	return &instance{proc: p, index: index, reportPath: reportPath}
}

// report reads the master's JSON report.
func (i *instance) report(t *testing.T) *report.Run {
	t.Helper()
	b, err := os.ReadFile(i.reportPath)
	if err != nil {
		t.Fatalf("%s wrote no report: %v\n%s", i.name, err, i.output())
	}
	var r report.Run
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s report: %v\n%s", i.name, err, b)
	}
	return &r
}

func (i *instance) wantCode(t *testing.T, code int) {
	t.Helper()
	if got := i.wait(t); got != code {
		t.Fatalf("%s: exit code %d, want %d\n%s", i.name, got, code, i.output())
	}
}

// waitFile waits (bounded) until path exists and returns its trimmed
// content and when it was seen. Modules that write a marker with
// something in it write it whole (to a temporary name, then mv): a file
// read the moment a shell's > created it is empty.
func waitFile(t *testing.T, path string, watch ...*instance) (string, time.Time) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil {
			return strings.TrimSpace(string(b)), time.Now()
		}
		for _, w := range watch {
			if w.exited() {
				t.Fatalf("%s exited (code %d) before %s appeared\n%s", w.name, w.code(), path, w.output())
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s did not appear within %s", path, guard)
	return "", time.Time{}
}

func moduleOf(t *testing.T, r *report.Run, name string) coordinator.Envelope {
	t.Helper()
	for _, e := range r.Modules {
		if e.Module == name {
			return e
		}
	}
	t.Fatalf("module %s not in the report", name)
	return coordinator.Envelope{}
}

// normalized is a report without what legitimately differs between runs
// of the same pipeline: timings, the run id, and where modules ran.
func normalized(t *testing.T, r *report.Run) any {
	t.Helper()
	c := *r
	c.RunID, c.StartedAt, c.EndedAt, c.DurationMS = "", time.Time{}, time.Time{}, 0
	c.Modules = append([]coordinator.Envelope(nil), r.Modules...)
	for i := range c.Modules {
		m := &c.Modules[i]
		m.StartedAt, m.EndedAt, m.DurationMS = time.Time{}, time.Time{}, 0
		m.Instance, m.Host = 0, ""
	}
	sort.Slice(c.Modules, func(i, j int) bool { return c.Modules[i].Module < c.Modules[j].Module })
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestFleetThirtyModulesOverMasterAndThreeWorkers(t *testing.T) {
	f := newFleet(t)
	etcd := f.startEtcd(1)
	file := "testdata/fleet/wide.hcl"
	const total = 4
	var workers []*instance
	for i := 1; i < total; i++ {
		workers = append(workers, f.host(file, i, total, "wide", endpoints(etcd)))
	}
	master := f.host(file, 0, total, "wide", endpoints(etcd))
	master.wantCode(t, 0)
	for _, w := range workers {
		w.wantCode(t, 0)
	}
	f.assertNoneLeft(etcd[0].proc)

	fleetRun := master.report(t)
	if len(fleetRun.Modules) != 30 || fleetRun.Status != report.RunSucceeded || fleetRun.RunID != "wide" {
		t.Fatalf("fleet report: %d modules, status %s, run id %q", len(fleetRun.Modules), fleetRun.Status, fleetRun.RunID)
	}
	ran := map[int]int{}
	for _, e := range fleetRun.Modules {
		wantStatus(t, e, coordinator.StatusSucceeded)
		ran[e.Instance]++
	}
	t.Logf("modules per instance: %v", ran)
	for i := range total {
		if ran[i] == 0 {
			t.Errorf("instance %d ran no module; per instance: %v", i, ran)
		}
	}

	single := runHost(t, "run", file)
	single.wantCode(t, 0)
	if want, got := normalized(t, single.report), normalized(t, fleetRun); !reflect.DeepEqual(want, got) {
		wb, _ := json.MarshalIndent(want, "", "  ")
		gb, _ := json.MarshalIndent(got, "", "  ")
		t.Errorf("the fleet's report differs from the single machine's beyond timings and placement\nsingle:\n%s\nfleet:\n%s", wb, gb)
	}
}

func TestFleetWorkerKilled(t *testing.T) {
	const heartbeatTimeout = 2 * time.Second // lost.hcl
	for _, tc := range []struct {
		name     string
		attempts int
	}{
		{name: "attempts left", attempts: 2},
		{name: "no attempts left", attempts: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t)
			etcd := f.startEtcd(1)
			file := "testdata/fleet/lost.hcl"
			vars := []string{"--var", "dir=" + f.dir, "--var", "attempts=" + strconv.Itoa(tc.attempts)}
			runID := "lost-" + strconv.Itoa(tc.attempts)
			workers := map[int]*instance{}
			for i := 1; i <= 2; i++ {
				workers[i] = f.host(file, i, 3, runID, endpoints(etcd), append([]string{"--capability", "fragile"}, vars...)...)
			}
			master := f.host(file, 0, 3, runID, endpoints(etcd), vars...)

			holder, _ := waitFile(t, filepath.Join(f.dir, "started"), master)
			index, err := strconv.Atoi(holder)
			if err != nil || workers[index] == nil {
				t.Fatalf("victim started on %q, want worker 1 or 2", holder)
			}
			victim, other := workers[index], workers[3-index]
			// Only the host process: its plugin and the module's command
			// must go with it (checked at the end).
			if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed := time.Now()
			<-victim.done

			if tc.attempts > 1 {
				where, seen := waitFile(t, filepath.Join(f.dir, "rerun"), master)
				delay := seen.Sub(killed)
				t.Logf("the module ran again on instance %s %s after the kill", where, delay)
				if where != strconv.Itoa(other.index) {
					t.Errorf("the module ran again on instance %s, want the surviving worker %d", where, other.index)
				}
				if guard := 3 * (heartbeatTimeout + 2*time.Second); delay > guard {
					t.Errorf("the module ran again only %s after its worker was killed (target heartbeat_timeout + 2s = %s; guard %s): loss detection is stuck", delay, heartbeatTimeout+2*time.Second, guard)
				}
				master.wantCode(t, 0)
				other.wantCode(t, 0)
				t.Logf("master exited %s, worker %s after the kill", master.exitedAt.Sub(killed), other.exitedAt.Sub(killed))
				r := master.report(t)
				v := moduleOf(t, r, "victim")
				wantStatus(t, v, coordinator.StatusSucceeded)
				if v.Attempts != 2 || v.Instance != other.index {
					t.Errorf("victim: attempts %d on instance %d, want 2 on %d", v.Attempts, v.Instance, other.index)
				}
				wantStatus(t, moduleOf(t, r, "after"), coordinator.StatusSucceeded)
			} else {
				master.wantCode(t, 1)
				other.wantCode(t, 1)
				lostAfter := master.exitedAt.Sub(killed)
				t.Logf("the master ended the run %s after the kill", lostAfter)
				r := master.report(t)
				v := moduleOf(t, r, "victim")
				wantStatus(t, v, coordinator.StatusFailed)
				wantMsg := fmt.Sprintf("instance %d", index)
				if v.Error == nil || v.Error.Kind != coordinator.ErrorKindLost || !strings.Contains(v.Error.Message, "was lost while running victim") || !strings.Contains(v.Error.Message, wantMsg) {
					t.Errorf("victim's error: %+v; want kind %q naming %s lost while running victim", v.Error, coordinator.ErrorKindLost, wantMsg)
				}
				if v.Instance != index || v.Host == "" {
					t.Errorf("victim is reported on instance %d host %q, want the lost worker %d and its host", v.Instance, v.Host, index)
				}
				after := moduleOf(t, r, "after")
				wantStatus(t, after, coordinator.StatusSkipped)
				if !strings.Contains(after.SkipReason, "victim") {
					t.Errorf("after's skip reason %q does not name victim", after.SkipReason)
				}
			}
			f.assertNoneLeft(etcd[0].proc)
		})
	}
}

// A module whose worker was lost, and whose retry the pipeline stopped
// (another module failed) before any member took it, keeps the attempt
// that ran and where: it read "not started", 0 attempts, no instance.
func TestFleetLostModuleNotRetriedAfterAStop(t *testing.T) {
	f := newFleet(t)
	etcd := f.startEtcd(1)
	file := "testdata/fleet/lost_stopped.hcl"
	vars := []string{"--var", "dir=" + f.dir}
	worker := f.host(file, 1, 2, "lost-stopped", endpoints(etcd), append([]string{"--capability", "x"}, vars...)...)
	master := f.host(file, 0, 2, "lost-stopped", endpoints(etcd), vars...)
	waitFile(t, filepath.Join(f.dir, "started"), master, worker)
	if err := worker.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-worker.done
	// The second attempt waits for a member offering x (the first one
	// may have too, before the worker joined).
	retryWaits := func() bool {
		log := master.stderr.String()
		lost := regexp.MustCompile(`member lost while running a module: .*module=lostone`).FindStringIndex(log)
		return lost != nil && regexp.MustCompile(`waiting for a capable member: .*module=lostone`).MatchString(log[lost[1]:])
	}
	deadline := time.Now().Add(guard)
	for !retryWaits() {
		if time.Now().After(deadline) || master.exited() {
			t.Fatalf("the master did not wait for a member to retry lostone\n%s", master.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "boom"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	master.wantCode(t, 1)
	r := master.report(t)
	wantStatus(t, moduleOf(t, r, "boom"), coordinator.StatusFailed)
	e := moduleOf(t, r, "lostone")
	wantStatus(t, e, coordinator.StatusCancelled)
	want := "not retried: the pipeline stopped after boom failed (attempt 1 of 2 ended failed: instance 1 ("
	if e.Error == nil || !strings.HasPrefix(e.Error.Message, want) || !strings.Contains(e.Error.Message, ") was lost while running lostone") {
		t.Errorf("lostone: error %+v, want %q...", e.Error, want)
	}
	if e.Attempts != 1 || e.Instance != 1 || e.Host == "" {
		t.Errorf("lostone: %d attempts, last on instance %d (%q); want 1, on instance 1", e.Attempts, e.Instance, e.Host)
	}
	f.assertNoneLeft(etcd[0].proc)
}

// A worker whose host process was frozen past heartbeat_timeout (its
// module ran on and finished meanwhile) and then resumed says its module
// was cancelled by the session's loss and is not published, as when its
// whole process group was frozen: it said "succeeded", then logged the
// refused publish as an error.
func TestFleetZombieWorkerSaysItsResultIsThrownAway(t *testing.T) {
	f := newFleet(t)
	etcd := f.startEtcd(1)
	file := "testdata/fleet/zombie.hcl"
	vars := []string{"--var", "dir=" + f.dir}
	workers := map[int]*instance{}
	for i := 1; i <= 2; i++ {
		workers[i] = f.host(file, i, 3, "zombie", endpoints(etcd), append([]string{"--capability", "z"}, vars...)...)
	}
	master := f.host(file, 0, 3, "zombie", endpoints(etcd), vars...)
	holder, _ := waitFile(t, filepath.Join(f.dir, "started"), master)
	index, err := strconv.Atoi(holder)
	if err != nil || workers[index] == nil {
		t.Fatalf("work started on %q, want worker 1 or 2", holder)
	}
	zombie, other := workers[index], workers[3-index]
	if err := zombie.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = zombie.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	// The master sees the claim lost and runs work again on the other.
	master.wantCode(t, 0)
	other.wantCode(t, 0)
	if err := os.WriteFile(filepath.Join(f.dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(f.dir, "finished"))
	if err := zombie.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	if code := zombie.wait(t); code != 4 {
		t.Errorf("the zombie exited %d, want 4 (its session lost)\n%s", code, zombie.output())
	}
	out, errs := zombie.stdout.String(), zombie.stderr.String()
	if strings.Contains(out, "✔ work succeeded") || !regexp.MustCompile(`■ work cancelled in \S+: cancelled while running: session lost`).MatchString(out) {
		t.Errorf("the zombie's console does not say work was cancelled by the session's loss:\n%s", out)
	}
	if strings.Contains(errs, "[ERROR]") || !strings.Contains(errs, "not publishing: this instance's coordinator session ended") {
		t.Errorf("the zombie's log does not say, as a warning, that it does not publish work:\n%s", errs)
	}
	r := master.report(t)
	if w := moduleOf(t, r, "work"); w.Status != coordinator.StatusSucceeded || w.Attempts != 2 || w.Instance != other.index {
		t.Errorf("work: %s, %d attempts, on instance %d; want succeeded, 2 attempts, on %d", w.Status, w.Attempts, w.Instance, other.index)
	}
	f.assertNoneLeft(etcd[0].proc)
}

// A module no live instance can run fails naming the instances of
// --total that never joined: the capable one may be a worker that could
// not start (a missing plugin), whose own job's log says why.
func TestFleetCapabilityErrorNamesWhoNeverJoined(t *testing.T) {
	f := newFleet(t)
	etcd := f.startEtcd(1)
	file := filepath.Join(f.dir, "absent.hcl")
	writeFile(t, file, `distributed {
  heartbeat_interval = "500ms"
  heartbeat_timeout  = "2s"
  capability_timeout = "1s"
}
module "shell" "w" {
  requires = ["w"]
  command  = ["echo", "w"]
}
`)
	// Instance 2 joins (without w); instance 1, which would offer w,
	// never does.
	worker := f.host(file, 2, 3, "absent", endpoints(etcd))
	deadline := time.Now().Add(guard)
	for !strings.Contains(worker.stderr.String(), "worker ready") {
		if time.Now().After(deadline) || worker.exited() {
			t.Fatalf("worker 2 did not join\n%s", worker.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	master := f.host(file, 0, 3, "absent", endpoints(etcd))
	master.wantCode(t, 1)
	worker.wait(t)
	e := moduleOf(t, master.report(t), "w")
	wantStatus(t, e, coordinator.StatusFailed)
	if e.Error == nil || e.Error.Kind != coordinator.ErrorKindCapability || !strings.Contains(e.Error.Message, "; instance 1 of --total never joined (see its job's log)") {
		t.Errorf("w: error %+v, want the capability error naming instance 1 as never joined", e.Error)
	}
	f.assertNoneLeft(etcd[0].proc)
}

func TestFleetMasterKilled(t *testing.T) {
	const heartbeatTimeout = 2 * time.Second // hold.hcl's default
	f := newFleet(t)
	etcd := f.startEtcd(1)
	file := "testdata/fleet/hold.hcl"
	vars := []string{"--var", "dir=" + f.dir}
	w1 := f.host(file, 1, 3, "master-killed", endpoints(etcd), append([]string{"--capability", "holder"}, vars...)...)
	w2 := f.host(file, 2, 3, "master-killed", endpoints(etcd), vars...)
	master := f.host(file, 0, 3, "master-killed", endpoints(etcd), vars...)
	waitFile(t, filepath.Join(f.dir, "holding"), master, w1, w2)

	// Only the host process, as when it crashes: its plugins must not
	// outlive it (checked at the end).
	if err := master.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-master.done
	for _, w := range []*instance{w1, w2} {
		if code := w.wait(t); code != 4 {
			t.Errorf("%s exited with %d after the master was killed, want 4 (coordinator error)\n%s", w.name, code, w.output())
		}
		if !strings.Contains(w.stderr.String(), "master lost") {
			t.Errorf("%s does not say \"master lost\"\n%s", w.name, w.output())
		}
		delay := w.exitedAt.Sub(killed)
		t.Logf("%s exited with %d %s after the master was killed", w.name, w.code(), delay)
		if guard := 3 * (heartbeatTimeout + 2*time.Second); delay > guard {
			t.Errorf("%s exited only %s after the master was killed (target heartbeat_timeout + 2s = %s; guard %s): master loss detection is stuck", w.name, delay, heartbeatTimeout+2*time.Second, guard)
		}
	}
	// The workers saw the master's member key go, so a new master joins;
	// the run id is used up, which is the user's to fix (exit 2).
	again := f.host(file, 0, 3, "master-killed", endpoints(etcd), vars...)
	if code := again.wait(t); code != 2 || !strings.Contains(again.stderr.String(), "run master-killed was already started by a master that is gone; start a new run with a new --run-id") {
		t.Errorf("a new master for the run of a killed one exited with %d, want 2 naming the used run id\n%s", code, again.output())
	}
	// A worker that joins only now finds the run record without a master:
	// it must not wait forever for work.
	late := f.host(file, 1, 3, "master-killed", endpoints(etcd), append([]string{"--capability", "holder"}, vars...)...)
	if code := late.wait(t); code != 4 || !strings.Contains(late.stderr.String(), "master lost") || !strings.Contains(late.stderr.String(), "master-killed") {
		t.Errorf("a worker joining the run of a killed master exited with %d, want 4 with \"master lost\" and the run id\n%s", code, late.output())
	}
	f.assertNoneLeft(etcd[0].proc)
}

// Ctrl-C on the master: the modules running are cancelled where they run,
// and the queued ones, including those an instance took ahead and never
// started, are reported not started with 0 attempts, as on one machine.
// The master's own slots used to claim the queued modules after the
// cancellation, and a claim held ahead kept the master waiting 5 s for
// an outcome that never came, then reported the module as having run.
func TestFleetMasterInterrupted(t *testing.T) {
	f := newFleet(t)
	etcd := f.startEtcd(1)
	file := filepath.Join(f.dir, "interrupted.hcl")
	writeFile(t, file, `distributed {
  heartbeat_interval = "500ms"
  heartbeat_timeout  = "2s"
}
variable "dir" {
  type = string
}
module "shell" "a" {
  matrix {
    n = ["1", "2", "3", "4", "5", "6"]
  }
  script = "touch ${var.dir}/started-${matrix.n}; sleep 30"
}
`)
	vars := []string{"--var", "dir=" + f.dir, "--slots", "1"}
	worker := f.host(file, 1, 2, "interrupted", endpoints(etcd), vars...)
	master := f.host(file, 0, 2, "interrupted", endpoints(etcd), vars...)
	started := func() int {
		n, _ := filepath.Glob(filepath.Join(f.dir, "started-*"))
		return len(n)
	}
	for deadline := time.Now().Add(guard); started() < 2 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if started() < 2 {
		t.Fatalf("the two slots did not start their modules\n%s\n%s", master.output(), worker.output())
	}
	if err := master.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	interrupted := time.Now()
	master.wantCode(t, 130)
	t.Logf("the master exited %s after Ctrl-C", master.exitedAt.Sub(interrupted))
	r := master.report(t)
	ran, notStarted := 0, 0
	for _, e := range r.Modules {
		wantStatus(t, e, coordinator.StatusCancelled)
		_, err := os.Stat(filepath.Join(f.dir, "started-"+strings.TrimSuffix(strings.TrimPrefix(e.Module, "a["), "]")))
		switch {
		case err == nil:
			ran++
			if e.Attempts != 1 || e.Error == nil || !strings.Contains(e.Error.Message, "cancelled while running") {
				t.Errorf("%s started, but is reported with %d attempts: %+v", e.Module, e.Attempts, e.Error)
			}
			// Wherever it ran, in the words of a run on one machine
			// (R4.3): the worker's read "the master stopped (...)".
			want := "cancelled while running: interrupt signal received"
			if e.Error != nil && e.Error.Message != want {
				t.Errorf("%s on instance %d: error %q, want %q", e.Module, e.Instance, e.Error.Message, want)
			}
		default:
			notStarted++
			if e.Attempts != 0 || e.Error == nil || e.Error.Message != "not started: the run was cancelled" {
				t.Errorf("%s never started, but is reported with %d attempts on instance %d: %+v", e.Module, e.Attempts, e.Instance, e.Error)
			}
		}
	}
	if ran != 2 || notStarted != 4 {
		t.Errorf("%d modules reported as started and %d not, want 2 and 4\n%s", ran, notStarted, master.output())
	}
	worker.wait(t)
	// No always_run module runs after Ctrl-C: the worker does not say it
	// stays for them.
	if log := worker.stderr.String(); strings.Contains(log, "stays for always_run") || !strings.Contains(log, "always_run ones too") {
		t.Errorf("the worker's log does not say it cancels always_run modules too:\n%s", log)
	}
	f.assertNoneLeft(etcd[0].proc)
}

// A stop after a failure (on_failure = "stop", the default) still runs
// always_run modules in a fleet, as on one machine: the workers cancel
// what they were running but stay until the master ends the run. They
// used to leave at the stop, so an always_run module on a worker was
// cancelled, or waited capability_timeout for a worker that had gone.
func TestFleetAlwaysRunAfterAStop(t *testing.T) {
	f := newFleet(t)
	etcd := f.startEtcd(1)
	file := filepath.Join(f.dir, "always.hcl")
	writeFile(t, file, `distributed {
  heartbeat_interval = "500ms"
  heartbeat_timeout  = "2s"
  capability_timeout = "20s"
}
variable "dir" {
  type = string
}
module "shell" "slow" {
  requires = ["w1"]
  script   = "touch ${var.dir}/slow-started; sleep 30"
}
module "shell" "boom" {
  requires = ["w1"]
  script   = "while [ ! -e ${var.dir}/slow-started ]; do sleep 0.05; done; exit 3"
}
module "shell" "cleanup" {
  requires   = ["w1"]
  always_run = true
  command    = ["echo", "boom was ${module.boom.status}"]
}
`)
	vars := []string{"--var", "dir=" + f.dir}
	worker := f.host(file, 1, 2, "always", endpoints(etcd), append([]string{"--capability", "w1"}, vars...)...)
	master := f.host(file, 0, 2, "always", endpoints(etcd), vars...)
	master.wantCode(t, 1)
	worker.wantCode(t, 1)
	r := master.report(t)
	wantStatus(t, moduleOf(t, r, "boom"), coordinator.StatusFailed)
	wantStatus(t, moduleOf(t, r, "slow"), coordinator.StatusCancelled)
	c := moduleOf(t, r, "cleanup")
	wantStatus(t, c, coordinator.StatusSucceeded)
	if c.Instance != 1 || !strings.Contains(string(c.Value), "boom was failed") {
		t.Errorf("cleanup ran on instance %d with value %s, want instance 1 and boom's status", c.Instance, c.Value)
	}
	f.assertNoneLeft(etcd[0].proc)
}

func TestFleetEtcdStoppedForGood(t *testing.T) {
	f := newFleet(t)
	etcd := f.startEtcd(1)
	// Both a worker and the master run a module that never ends by itself:
	// each instance must stop its own when its session ends.
	file := "testdata/fleet/etcd_gone.hcl"
	vars := []string{"--var", "dir=" + f.dir}
	md := filepath.Join(f.dir, "master.md")
	w1 := f.host(file, 1, 3, "etcd-gone", endpoints(etcd), append([]string{"--capability", "holder"}, vars...)...)
	w2 := f.host(file, 2, 3, "etcd-gone", endpoints(etcd), vars...)
	master := f.host(file, 0, 3, "etcd-gone", endpoints(etcd), append([]string{"--report", "markdown=" + md}, vars...)...)
	waitFile(t, filepath.Join(f.dir, "holding"), master, w1, w2)
	waitFile(t, filepath.Join(f.dir, "master-holding"), master, w1, w2)
	waitFile(t, filepath.Join(f.dir, "master-waiting"), master, w1, w2)

	etcd[0].proc.kill()
	stopped := time.Now()
	<-etcd[0].proc.done
	// master_done ends now, long before the master's session does
	// (heartbeat_timeout 5s): its result cannot be published.
	if err := os.WriteFile(filepath.Join(f.dir, "finish"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, i := range []*instance{master, w1, w2} {
		code := i.wait(t)
		t.Logf("%s exited with %d %s after etcd stopped", i.name, code, i.exitedAt.Sub(stopped))
		if code != 4 {
			t.Errorf("%s: exit code %d, want 4 (coordinator error)\n%s", i.name, code, i.output())
		}
		if !strings.Contains(i.stderr.String(), "Error:") {
			t.Errorf("%s exited without saying why\n%s", i.name, i.output())
		}
	}
	// The master's report says the coordinator's loss ended the run, and
	// what it knows of each module: no module failed, none was stopped
	// "after" another's failure (the first loss it saw used to be
	// reported failed, and the others cancelled after it).
	r := master.report(t)
	if r.Status != report.RunError || r.Error == nil || r.Error.Kind != coordinator.ErrorKindCoordinator || !strings.Contains(r.Error.Message, "the master lost the coordinator") {
		t.Errorf("the report's run: status %s, error %+v; want status error, kind coordinator", r.Status, r.Error)
	}
	for _, e := range r.Modules {
		if e.Error != nil && strings.Contains(e.Error.Message, "stopped after") {
			t.Errorf("%s: %q, a chain of failures that did not happen", e.Module, e.Error.Message)
		}
	}
	type want struct {
		status   coordinator.Status
		kind     string
		msg      string
		attempts int
		instance int
	}
	for name, w := range map[string]want{
		// Running on worker 1: what became of it is unknown.
		"hold": {coordinator.StatusCancelled, coordinator.ErrorKindCoordinator, "outcome unknown: the master lost the coordinator while hold was running on instance 1 (", 1, 1},
		// Running on the master, which stopped it.
		"master_hold": {coordinator.StatusCancelled, coordinator.ErrorKindCancelled, "cancelled while running: the master lost the coordinator", 1, 0},
		// Ended on the master: the master knows.
		"master_done": {coordinator.StatusSucceeded, "", "", 1, 0},
		// Never started, for want of the coordinator.
		"after":  {coordinator.StatusCancelled, coordinator.ErrorKindCoordinator, "not started: the master lost the coordinator", 0, 0},
		"nobody": {coordinator.StatusCancelled, coordinator.ErrorKindCoordinator, "not started: the master lost the coordinator", 0, 0},
	} {
		e := moduleOf(t, r, name)
		kind, msg := "", ""
		if e.Error != nil {
			kind, msg = e.Error.Kind, e.Error.Message
		}
		if e.Status != w.status || kind != w.kind || !strings.HasPrefix(msg, w.msg) || e.Attempts != w.attempts {
			t.Errorf("%s: %s, %d attempts, error %s %q; want %s, %d attempts, error %s %q...", name, e.Status, e.Attempts, kind, msg, w.status, w.attempts, w.kind, w.msg)
		}
		if w.attempts > 0 && (e.Instance != w.instance || e.Host == "") {
			t.Errorf("%s: ran on instance %d (%q), want %d", name, e.Instance, e.Host, w.instance)
		}
	}
	// The Markdown report has the modules too (R4.3), under why the run
	// could not finish.
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "The run could not finish") || !strings.Contains(string(b), `| master\_done | ✅ succeeded`) {
		t.Errorf("the Markdown report has no module table under why the run ended:\n%s", b)
	}
	f.assertNoneLeft()
}

func TestFleetEtcdRestarted(t *testing.T) {
	f := newFleet(t)
	etcd := f.startEtcd(1)
	file := "testdata/fleet/hold.hcl"
	// Heartbeats must outlast the outage: a member that cannot renew
	// within heartbeat_timeout leaves the run.
	vars := []string{"--var", "dir=" + f.dir, "--var", "heartbeat_timeout=15s"}
	w1 := f.host(file, 1, 3, "etcd-restart", endpoints(etcd), append([]string{"--capability", "holder"}, vars...)...)
	w2 := f.host(file, 2, 3, "etcd-restart", endpoints(etcd), vars...)
	master := f.host(file, 0, 3, "etcd-restart", endpoints(etcd), vars...)
	waitFile(t, filepath.Join(f.dir, "holding"), master, w1, w2)

	etcd[0].proc.kill()
	<-etcd[0].proc.done
	time.Sleep(2 * time.Second) // the outage
	f.runEtcd(etcd[0])
	f.waitHealthy(etcd[0])
	if err := os.WriteFile(filepath.Join(f.dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	master.wantCode(t, 0)
	w1.wantCode(t, 0)
	w2.wantCode(t, 0)
	r := master.report(t)
	for _, name := range []string{"first", "hold", "last"} {
		wantStatus(t, moduleOf(t, r, name), coordinator.StatusSucceeded)
	}
	if h := moduleOf(t, r, "hold"); h.Instance != 1 || h.Attempts != 1 {
		t.Errorf("hold ran %d times, last on instance %d; want once, on worker 1", h.Attempts, h.Instance)
	}
	f.assertNoneLeft(etcd[0].proc)
}

func TestFleetEtcdClusterMemberKilled(t *testing.T) {
	f := newFleet(t)
	etcd := f.startEtcd(3)
	file := "testdata/fleet/hold.hcl"
	vars := []string{"--var", "dir=" + f.dir, "--var", "heartbeat_timeout=10s"}
	eps := endpoints(etcd)
	w1 := f.host(file, 1, 3, "cluster", eps, append([]string{"--capability", "holder"}, vars...)...)
	w2 := f.host(file, 2, 3, "cluster", eps, vars...)
	master := f.host(file, 0, 3, "cluster", eps, vars...)
	waitFile(t, filepath.Join(f.dir, "holding"), master, w1, w2)

	// Kill the leader: the cluster elects another, and every client must
	// move its requests, watches and lease keepalives to the survivors.
	leader := f.etcdLeader(etcd)
	t.Logf("killing the leader %s", leader.name)
	leader.proc.kill()
	<-leader.proc.done
	// Hold the run a while on two members: heartbeats every 200ms must
	// keep going through them for the run to survive.
	time.Sleep(2 * time.Second)
	if err := os.WriteFile(filepath.Join(f.dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	master.wantCode(t, 0)
	w1.wantCode(t, 0)
	w2.wantCode(t, 0)
	r := master.report(t)
	if r.Status != report.RunSucceeded {
		t.Errorf("run status %s", r.Status)
	}
	for _, name := range []string{"first", "hold", "last"} {
		wantStatus(t, moduleOf(t, r, name), coordinator.StatusSucceeded)
	}
	if h := moduleOf(t, r, "hold"); h.Instance != 1 || h.Attempts != 1 {
		t.Errorf("hold ran %d times, last on instance %d; want once, on worker 1 (no session was lost)", h.Attempts, h.Instance)
	}
	var survivors []*proc
	for _, m := range etcd {
		if m != leader {
			survivors = append(survivors, m.proc)
		}
	}
	f.assertNoneLeft(survivors...)
}

func TestFleetLateWorkerAndMasterAlone(t *testing.T) {
	file := "testdata/fleet/late.hcl"
	t.Run("late worker gets work", func(t *testing.T) {
		f := newFleet(t)
		etcd := f.startEtcd(1)
		w1 := f.host(file, 1, 3, "late", endpoints(etcd))
		master := f.host(file, 0, 3, "late", endpoints(etcd))
		// The worker with "late" joins only once the early modules ran,
		// wherever they ran: the master reports every module's end.
		done := regexp.MustCompile(`early\[[1-4]\] succeeded`)
		deadline := time.Now().Add(guard)
		for len(done.FindAllString(master.stdout.String(), -1)) < 4 {
			if time.Now().After(deadline) || master.exited() {
				t.Fatalf("the early modules did not run\n%s", master.output())
			}
			time.Sleep(20 * time.Millisecond)
		}
		w2 := f.host(file, 2, 3, "late", endpoints(etcd), "--capability", "late")
		master.wantCode(t, 0)
		w1.wantCode(t, 0)
		w2.wantCode(t, 0)
		late := moduleOf(t, master.report(t), "late")
		wantStatus(t, late, coordinator.StatusSucceeded)
		if late.Instance != 2 {
			t.Errorf("late ran on instance %d, want the late worker 2", late.Instance)
		}
		f.assertNoneLeft(etcd[0].proc)
	})
	t.Run("master alone", func(t *testing.T) {
		f := newFleet(t)
		etcd := f.startEtcd(1)
		master := f.host(file, 0, 3, "alone", endpoints(etcd), "--capability", "late")
		master.wantCode(t, 0)
		r := master.report(t)
		if len(r.Modules) != 5 {
			t.Fatalf("%d modules, want 5", len(r.Modules))
		}
		for _, e := range r.Modules {
			wantStatus(t, e, coordinator.StatusSucceeded)
			if e.Instance != 0 {
				t.Errorf("%s ran on instance %d with no worker in the run", e.Module, e.Instance)
			}
		}
		f.assertNoneLeft(etcd[0].proc)
	})
}

func TestFleetConcurrentRunsDoNotInterfere(t *testing.T) {
	f := newFleet(t)
	etcd := f.startEtcd(1)
	file := "testdata/fleet/late.hcl"
	type run struct {
		id, tag        string
		master, worker *instance
	}
	runs := []*run{{id: "concurrent-a", tag: "a"}, {id: "concurrent-b", tag: "b"}}
	for _, r := range runs {
		// Only the worker offers "late", so each run's late module must go
		// to its own run's worker.
		r.worker = f.host(file, 1, 2, r.id, endpoints(etcd), "--capability", "late", "--var", "tag="+r.tag)
		r.master = f.host(file, 0, 2, r.id, endpoints(etcd), "--var", "tag="+r.tag)
	}
	for _, r := range runs {
		r.master.wantCode(t, 0)
		r.worker.wantCode(t, 0)
		rep := r.master.report(t)
		if rep.RunID != r.id || len(rep.Modules) != 5 {
			t.Errorf("run %s: report of run %q with %d modules", r.id, rep.RunID, len(rep.Modules))
		}
		for _, e := range rep.Modules {
			wantStatus(t, e, coordinator.StatusSucceeded)
			var v struct {
				Stdout string `json:"stdout"`
			}
			if err := json.Unmarshal(e.Value, &v); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(v.Stdout, "of run "+r.tag) {
				t.Errorf("run %s: %s printed %q, which is not this run's", r.id, e.Module, v.Stdout)
			}
		}
		if late := moduleOf(t, rep, "late"); late.Instance != 1 {
			t.Errorf("run %s: late ran on instance %d", r.id, late.Instance)
		}
		if other := runs[0]; other != r && strings.Contains(r.master.stdout.String(), "of run "+other.tag) {
			t.Errorf("run %s shows output of run %s\n%s", r.id, other.id, r.master.output())
		}
	}
	f.assertNoneLeft(etcd[0].proc)
}

func TestFleetDuplicateIndexRefused(t *testing.T) {
	f := newFleet(t)
	etcd := f.startEtcd(1)
	file := "testdata/fleet/hold.hcl"
	vars := []string{"--var", "dir=" + f.dir}
	w1 := f.host(file, 1, 2, "duplicate", endpoints(etcd), append([]string{"--capability", "holder"}, vars...)...)
	master := f.host(file, 0, 2, "duplicate", endpoints(etcd), vars...)
	waitFile(t, filepath.Join(f.dir, "holding"), master, w1)

	second := f.host(file, 1, 2, "duplicate", endpoints(etcd), append([]string{"--capability", "holder"}, vars...)...)
	second.wantCode(t, 2)
	msg := second.stderr.String()
	if !strings.Contains(msg, coordinator.ErrDuplicateIndex.Error()) || !strings.Contains(msg, "instance 1 of run duplicate") {
		t.Errorf("the second instance 1 was not refused with the duplicate-index error\n%s", second.output())
	}
	// A total other than the master's is refused as well.
	wrongTotal := f.host(file, 2, 3, "duplicate", endpoints(etcd), vars...)
	wrongTotal.wantCode(t, 2)
	if msg := wrongTotal.stderr.String(); !strings.Contains(msg, "started with a total of 3 instances, the master of run duplicate with 2") {
		t.Errorf("an instance with another total was not refused with the totals named\n%s", wrongTotal.output())
	}
	// A refusal is all a refused instance says: no echo of the plugins
	// it was starting meanwhile.
	for _, p := range []*instance{second, wrongTotal} {
		if msg := p.stderr.String(); strings.Contains(msg, "start plugin") || strings.Contains(msg, "acceptAndServe") {
			t.Errorf("%s: the refusal comes with plugin start errors\n%s", p.name, p.output())
		}
	}

	// The holder was not disturbed: the run completes with it.
	if err := os.WriteFile(filepath.Join(f.dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	master.wantCode(t, 0)
	w1.wantCode(t, 0)
	if h := moduleOf(t, master.report(t), "hold"); h.Instance != 1 || h.Status != coordinator.StatusSucceeded {
		t.Errorf("hold: %s on instance %d", h.Status, h.Instance)
	}
	f.assertNoneLeft(etcd[0].proc)
}

// etcdAPI posts body to the v3 JSON gateway of m and fails the test on an
// error status.
func (f *fleet) etcdAPI(m *etcdMember, path, body string) {
	f.t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://%s%s", m.endpoint(), path), "application/json", strings.NewReader(body))
	if err != nil {
		f.t.Fatalf("etcd %s: %v", path, err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		f.t.Fatalf("etcd %s: %s: %s", path, resp.Status, out.String())
	}
}

// TestFleetExampleWithAuth runs examples/fleet/pipeline.hcl, whose etcd
// block takes its credentials from the environment, against an etcd with
// authentication on: the right password runs it, a wrong one is exit 4.
func TestFleetExampleWithAuth(t *testing.T) {
	f := newFleet(t)
	etcd := f.startEtcd(1)
	for _, call := range [][2]string{
		{"/v3/auth/role/add", `{"name": "root"}`},
		{"/v3/auth/user/add", `{"name": "root", "password": "s3cret"}`},
		{"/v3/auth/user/grant", `{"user": "root", "role": "root"}`},
		{"/v3/auth/enable", `{}`},
	} {
		f.etcdAPI(etcd[0], call[0], call[1])
	}
	file := filepath.Join("..", "..", "examples", "fleet", "pipeline.hcl")

	// A master alone, with the capability the integration module needs.
	start := func(runID, password string) *instance {
		return f.hostEnv([]string{"ETCD_USERNAME=root", "ETCD_PASSWORD=" + password},
			file, 0, 2, runID, endpoints(etcd), "--capability", "docker")
	}

	wrong := start("auth-wrong", "guess")
	wrong.wantCode(t, 4)
	if msg := wrong.stderr.String(); !strings.Contains(msg, "connect to etcd at "+endpoints(etcd)) || !strings.Contains(msg, "authentication failed") {
		t.Errorf("a wrong password should fail to connect, naming the endpoint and the cause\n%s", wrong.output())
	}

	ok := start("auth-right", "s3cret")
	ok.wantCode(t, 0)
	r := ok.report(t)
	if r.Pipeline != "fleet-example" || len(r.Modules) != 13 || r.Status != report.RunSucceeded {
		t.Errorf("example run: pipeline %q, %d modules, status %s", r.Pipeline, len(r.Modules), r.Status)
	}
	publish := moduleOf(t, r, "publish")
	var v struct {
		Stdout string `json:"stdout"`
	}
	if err := json.Unmarshal(publish.Value, &v); err != nil {
		t.Fatal(err)
	}
	if want := "published app-3f2a9c1.tar.gz (built on instance 0, commit 3f2a9c1)"; v.Stdout != want {
		t.Errorf("publish printed %q, want %q", v.Stdout, want)
	}
	f.assertNoneLeft(etcd[0].proc)
}

func TestEtcdConfigSources(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCertAndKey(t, cert, key)
	writeCertAndKey(t, ca, filepath.Join(dir, "ca-key.pem"))
	notPEM := filepath.Join(dir, "not.pem")
	writeFile(t, notPEM, "not a certificate")
	block := &config.Distributed{Etcd: &config.Etcd{
		Endpoints: []string{"file-1:2379", "file-2:2379"},
		Prefix:    "/team", Username: "ci", Password: "pw",
		CAFile: ca, CertFile: cert, KeyFile: key,
	}}
	// The TLS files are this machine's, looked for before joining.
	noCA := &config.Distributed{Etcd: &config.Etcd{Endpoints: []string{"e:2379"}, CAFile: filepath.Join(dir, "nope.pem")}}
	for _, tc := range []struct {
		name      string
		block     *config.Distributed
		flag      string
		environ   []string
		endpoints []string
		wantErr   string
	}{
		{name: "flag wins", block: block, flag: "flag:2379, flag2:2379", environ: []string{"MODPIPE_ETCD_ENDPOINTS=env:2379"}, endpoints: []string{"flag:2379", "flag2:2379"}},
		{name: "env over file", block: block, environ: []string{"MODPIPE_ETCD_ENDPOINTS=env:2379"}, endpoints: []string{"env:2379"}},
		{name: "file", block: block, endpoints: []string{"file-1:2379", "file-2:2379"}},
		{name: "no block", flag: "flag:2379", endpoints: []string{"flag:2379"}},
		{name: "none", block: &config.Distributed{}, wantErr: "a distributed run needs an etcd cluster"},
		{name: "other coordinator", block: &config.Distributed{Coordinator: "memory"}, flag: "x:1", wantErr: `coordinator = "memory"`},
		{name: "missing CA file", block: noCA, wantErr: "distributed { etcd { ca_file } }: open " + filepath.Join(dir, "nope.pem") + ": no such file or directory"},
		// Files that are there but wrong are the settings' mistake too.
		{name: "CA file without a certificate", block: &config.Distributed{Etcd: &config.Etcd{Endpoints: []string{"e:2379"}, CAFile: notPEM}},
			wantErr: "distributed { etcd }: etcd CA file " + notPEM + " holds no PEM certificate"},
		{name: "certificate without its key", block: &config.Distributed{Etcd: &config.Etcd{Endpoints: []string{"e:2379"}, CertFile: cert}},
			wantErr: "distributed { etcd }: etcd TLS needs both a client certificate file and its key file"},
		{name: "key of another certificate", block: &config.Distributed{Etcd: &config.Etcd{Endpoints: []string{"e:2379"}, CertFile: cert, KeyFile: filepath.Join(dir, "ca-key.pem")}},
			wantErr: "load etcd client certificate " + cert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := etcdConfig(tc.block, tc.flag, tc.environ, hclog.NewNullLogger())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Endpoints, tc.endpoints) {
				t.Errorf("endpoints %q, want %q", cfg.Endpoints, tc.endpoints)
			}
			if tc.block != nil && tc.block.Etcd != nil {
				if cfg.Prefix != "/team" || cfg.Username != "ci" || cfg.Password != "pw" || cfg.CAFile != ca || cfg.CertFile != cert || cfg.KeyFile != key {
					t.Errorf("the etcd block's settings were not all carried over: %+v", cfg)
				}
			}
		})
	}
}

// chainFile writes a chain of n shell modules, module c<i> requiring the
// capability of worker i%3+1, so every step crosses to another worker.
// c<flaky> fails its first attempt (it has two); c<broken>, if >= 0,
// always fails.
func chainFile(t *testing.T, n, flaky, broken int) string {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("pipeline {\n  name = \"fleet-chain\"\n}\n\ndistributed {\n  capability_timeout = \"1m\"\n}\n")
	for i := range n {
		script := "true"
		switch i {
		case flaky:
			script = fmt.Sprintf("if [ -e %[1]s/flaky ]; then true; else touch %[1]s/flaky; exit 1; fi", dir)
		case broken:
			script = "exit 3"
		}
		fmt.Fprintf(&b, "\nmodule \"shell\" \"c%d\" {\n  requires = [\"w%d\"]\n  script   = %q\n", i, i%3+1, script)
		if i > 0 {
			fmt.Fprintf(&b, "  depends_on = [module.c%d]\n", i-1)
		}
		if i == flaky {
			b.WriteString("  retry {\n    attempts = 2\n    backoff  = \"1ms\"\n  }\n")
		}
		b.WriteString("}\n")
	}
	path := filepath.Join(dir, "chain.hcl")
	writeFile(t, path, b.String())
	return path
}

// On a chain, the worker that publishes a module's success dispatches its
// staged dependent itself (no round trip through the master). Each module
// still runs once, where its capability is, after its dependency; a retry
// is dispatched the same way once it succeeds, and a module whose
// dependency failed is never dispatched.
func TestFleetChainDispatchedByWorkers(t *testing.T) {
	tests := []struct {
		name   string
		broken int // -1: none
		code   int
	}{
		{name: "succeeds", broken: -1, code: 0},
		{name: "fails", broken: 9, code: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n, flaky = 14, 4
			file := chainFile(t, n, flaky, tt.broken)
			f := newFleet(t)
			etcd := f.startEtcd(1)
			var workers []*instance
			for i := 1; i <= 3; i++ {
				workers = append(workers, f.host(file, i, 4, "chain-"+tt.name, endpoints(etcd),
					"--capability", fmt.Sprintf("w%d", i), "--log-level", "debug"))
			}
			master := f.host(file, 0, 4, "chain-"+tt.name, endpoints(etcd))
			master.wantCode(t, tt.code)
			for _, w := range workers {
				w.wantCode(t, tt.code)
			}
			f.assertNoneLeft(etcd[0].proc)

			r := master.report(t)
			if len(r.Modules) != n {
				t.Fatalf("%d modules in the report, want %d", len(r.Modules), n)
			}
			var prevEnd time.Time
			for i := range n {
				e := moduleOf(t, r, fmt.Sprintf("c%d", i))
				switch {
				case tt.broken >= 0 && i > tt.broken:
					wantStatus(t, e, coordinator.StatusSkipped)
					continue
				case i == tt.broken:
					wantStatus(t, e, coordinator.StatusFailed)
				default:
					wantStatus(t, e, coordinator.StatusSucceeded)
				}
				if want := i%3 + 1; e.Instance != want {
					t.Errorf("c%d ran on instance %d, want %d", i, e.Instance, want)
				}
				if want := map[bool]int{true: 2, false: 1}[i == flaky]; e.Attempts != want {
					t.Errorf("c%d took %d attempts, want %d", i, e.Attempts, want)
				}
				if e.StartedAt.Before(prevEnd) {
					t.Errorf("c%d started at %s, before its dependency ended at %s", i, e.StartedAt, prevEnd)
				}
				prevEnd = e.EndedAt
			}
			dispatched := 0
			for _, w := range workers {
				out := w.output()
				dispatched += strings.Count(out, "dispatched a staged module")
				if tt.broken >= 0 {
					for i := tt.broken + 1; i < n; i++ {
						if strings.Contains(out, fmt.Sprintf("module=c%d ", i)) {
							t.Errorf("%s mentions c%d, whose dependency failed", w.name, i)
						}
					}
				}
			}
			if dispatched == 0 {
				t.Errorf("no worker dispatched a staged module; every step went through the master")
			}
			t.Logf("%d of %d steps dispatched by workers", dispatched, n-1)
		})
	}
}

// writeCertAndKey writes a self-signed certificate and its key, PEM.
func writeCertAndKey(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})))
}

// A secret that only a worker has in its environment is masked in what
// the worker publishes: the master cannot mask what it does not know,
// and neither can an instance that reads the value.
func TestFleetWorkerOnlySecretIsMaskedOnTheMaster(t *testing.T) {
	for _, tc := range []struct {
		name, token string
	}{
		{"plain", "dckr_pat_SECRET42"},
		{"escaped in JSON", `pa"ss\w0rd-Z9`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t)
			etcd := f.startEtcd(1)
			runID := "wsec-" + strings.ReplaceAll(tc.name, " ", "-")
			file := "testdata/fleet/worker_secret.hcl"
			worker := f.hostEnv([]string{"WORKER_TOKEN=" + tc.token}, file, 1, 2, runID, endpoints(etcd), "--capability", "docker")
			master := f.host(file, 0, 2, runID, endpoints(etcd))
			master.wantCode(t, 0)
			worker.wantCode(t, 0)
			r := master.report(t)
			wantStatus(t, moduleOf(t, r, "push"), coordinator.StatusSucceeded)
			wantStatus(t, moduleOf(t, r, "show"), coordinator.StatusSucceeded)
			raw, err := os.ReadFile(master.reportPath)
			if err != nil {
				t.Fatal(err)
			}
			j, _ := json.Marshal(tc.token)
			forms := []string{tc.token, string(j[1 : len(j)-1]), strings.Trim(strconv.Quote(tc.token), `"`)}
			for _, form := range forms {
				if strings.Contains(string(raw), form) {
					t.Errorf("the master's report holds the worker's secret as %q:\n%s", form, raw)
				}
				if strings.Contains(master.output(), form) {
					t.Errorf("the master's output holds the worker's secret as %q:\n%s", form, master.output())
				}
			}
			if !strings.Contains(string(raw), "token is "+secrets.Mask) {
				t.Errorf("the master's report does not hold push's masked stdout:\n%s", raw)
			}
			f.assertNoneLeft(etcd[0].proc)
		})
	}
}
