package pluginhost

import (
	"errors"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// awaitExit blocks until process pid has exited, without reaping it: the
// zombie keeps its pid and process group from being reused while what
// the plugin left behind is killed (see cmdRunner.cleanUp). It reports
// false when it cannot tell (the process was reaped already).
func awaitExit(pid int) bool {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		return err == nil
	}
}

// killGroup kills what is left of the process group cmd's process leads,
// when it was started as the leader of one (pluginProcAttr).
func killGroup(cmd *exec.Cmd) {
	if a := cmd.SysProcAttr; a != nil && a.Setpgid && a.Pgid == 0 && cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
