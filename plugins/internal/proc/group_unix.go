//go:build unix

package proc

import (
	"os"
	"syscall"
)

// The command runs in a process group whose id is its main process's pid;
// signalling -pgid reaches everything the command started.

// signalTerm asks the whole group to stop.
func signalTerm(p *os.Process) { signalGroup(p.Pid, syscall.SIGTERM) }

// signalKill kills the whole group.
func signalKill(p *os.Process) { signalGroup(p.Pid, syscall.SIGKILL) }

// groupAlive reports whether any process is left in the group.
func groupAlive(p *os.Process) bool { return syscall.Kill(-p.Pid, 0) == nil }

// signalGroup signals every process in the group. ESRCH (the group is
// already empty) is the normal case after a clean exit and is ignored.
func signalGroup(pgid int, sig syscall.Signal) { _ = syscall.Kill(-pgid, sig) }
