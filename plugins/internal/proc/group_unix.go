//go:build unix

package proc

import (
	"bytes"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// The command runs in a process group whose id is its main process's pid;
// signalling -pgid reaches everything the command started.

// signalTerm asks the whole group to stop.
func signalTerm(p *os.Process) { signalGroup(p.Pid, syscall.SIGTERM) }

// signalKill kills the whole group.
func signalKill(p *os.Process) { signalGroup(p.Pid, syscall.SIGKILL) }

// groupAlive reports whether any live process is left in the group.
// kill(-pgid, 0) alone also succeeds for zombies, and orphaned zombies
// stay forever where PID 1 does not reap (minimal containers), which
// would make every cancellation wait out the whole grace period; so where
// /proc exists, zombies are not counted.
func groupAlive(p *os.Process) bool {
	if syscall.Kill(-p.Pid, 0) != nil {
		return false
	}
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil || len(stats) == 0 {
		return true
	}
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces and
		// parentheses, so parse from the last ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		fields := bytes.Fields(b[i+1:])
		if len(fields) < 3 || string(fields[0]) == "Z" {
			continue
		}
		if pgrp, err := strconv.Atoi(string(fields[2])); err == nil && pgrp == p.Pid {
			return true
		}
	}
	return false
}

// signalGroup signals every process in the group. ESRCH (the group is
// already empty) is the normal case after a clean exit and is ignored.
func signalGroup(pgid int, sig syscall.Signal) { _ = syscall.Kill(-pgid, sig) }

// running holds the process groups of the commands this plugin runs now.
// It is process-wide because signals are: when the plugin itself is told
// to stop with SIGTERM (the kernel sends it when the host dies, even by
// SIGKILL, and the host sends it to a plugin it kills as hung), every
// group is killed before the plugin goes. A command's main process dies
// with the plugin by itself (Pdeathsig), but what it started (the sleep
// of `sh -c 'sleep 60; echo done'`) would be orphaned and run on.
var running = &groups{pgids: map[int]struct{}{}}

type groups struct {
	watch sync.Once
	mu    sync.Mutex
	pgids map[int]struct{}
}

// add registers the group led by pid, and on first use starts listening
// for SIGTERM.
func (g *groups) add(pid int) {
	g.watch.Do(g.listen)
	g.mu.Lock()
	g.pgids[pid] = struct{}{}
	g.mu.Unlock()
}

// remove forgets a group that is empty or killed.
func (g *groups) remove(pid int) {
	g.mu.Lock()
	delete(g.pgids, pid)
	g.mu.Unlock()
}

// processEnv is the host's pluginhost.ProcessEnv: the variable, with a
// value of this plugin process alone, that the host puts in a plugin's
// environment and every command inherits.
const processEnv = "MODPIPE_PLUGIN_PROCESS"

// killEscaped SIGKILLs, with their process groups, the processes other
// than this one that carry this plugin's processEnv value (on Linux,
// where /proc has environments): what a command started outside its
// group (setsid), which killing the groups misses. The host sweeps for
// them itself whenever it stops a plugin, but not when it was killed by
// SIGKILL: then the plugin's SIGTERM from the kernel is the last chance.
func killEscaped() {
	tag := os.Getenv(processEnv)
	if tag == "" {
		return
	}
	want := []byte("\x00" + processEnv + "=" + tag + "\x00")
	environs, _ := filepath.Glob("/proc/[0-9]*/environ")
	self := os.Getpid()
	for _, f := range environs {
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(f)
		if err != nil || !bytes.Contains(append(append([]byte{0}, env...), 0), want) {
			continue
		}
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid > 1 && pgid != syscall.Getpgrp() {
			signalGroup(pgid, syscall.SIGKILL)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// listen kills every group on SIGTERM and then lets the signal end the
// plugin as it would have without us. The goroutine lives as long as the
// process: it exists to outlive everything else in it.
func (g *groups) listen() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM)
	go func() {
		<-ch
		// Held to the end: no command starts past this point, and none
		// of the running ones can be forgotten while it is killed.
		g.mu.Lock()
		for pgid := range g.pgids {
			signalGroup(pgid, syscall.SIGKILL)
		}
		killEscaped()
		signal.Reset(syscall.SIGTERM)
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}()
}
