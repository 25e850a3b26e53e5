package proc

import "syscall"

// sysProcAttr puts the command in its own process group and, on Linux,
// asks the kernel to SIGKILL it if the plugin dies first (the host kills a
// plugin that hangs), so a dead plugin does not leave its command running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
