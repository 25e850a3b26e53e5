//go:build unix

package proc

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
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
