package proc

import (
	"os"
	"syscall"
)

// Windows has no signals for process groups: stopping means killing the
// main process, and its children are not tracked.

func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP}
}

func signalTerm(p *os.Process) { _ = p.Kill() }

func signalKill(p *os.Process) { _ = p.Kill() }

func groupAlive(*os.Process) bool { return false }

// running tracks nothing on Windows: without groups there is nothing to
// kill when the plugin is stopped.
var running groups

type groups struct{}

func (groups) add(int)    {}
func (groups) remove(int) {}
