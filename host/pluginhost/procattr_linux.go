package pluginhost

import "syscall"

// pluginProcAttr makes the kernel signal a plugin when its host dies,
// even by SIGKILL: otherwise the plugin would be left running, orphaned,
// after a crashed or killed host. SIGTERM rather than SIGKILL, so that
// the plugin can kill what its commands started on its way out (modpipe's
// plugins kill their commands' process groups; SIGTERM's default ends any
// other plugin as SIGKILL would). The signal follows the host thread that
// started the plugin; Go does not end threads unless a goroutine exits
// locked to one, which the host never does.
//
// The plugin gets a process group of its own, so a SIGKILL of the host's
// group (`timeout -s KILL`, job control) reaches it only through that
// signal, with the same chance to clean up; a terminal's Ctrl-C goes to
// the host alone, which cancels the modules itself.
func pluginProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
