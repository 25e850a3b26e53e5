package pluginhost

import "syscall"

// pluginProcAttr makes the kernel SIGKILL a plugin when its host dies,
// even by SIGKILL: otherwise the plugin would be left running, orphaned,
// after a crashed or killed host (plugins stop their own commands when
// they die). The signal follows the host thread that started the plugin;
// Go does not end threads unless a goroutine exits locked to one, which
// the host never does.
func pluginProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
