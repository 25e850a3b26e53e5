package pluginhost

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// killTagged SIGKILLs every process whose environment carries ProcessEnv
// with value tag, with its process group, and returns how many it found.
// The environment is the one the process was started with, so a command
// that dropped the variable from its own (env -i) is out of reach.
func killTagged(tag string) int {
	return killMatching([]byte("\x00" + ProcessEnv + "=" + tag + "\x00"))
}

// KillLeftovers SIGKILLs, with their process groups, the plugin
// processes this host started and every process they started in turn
// (all carry ProcessEnv with a value that begins with this process's
// pid), and returns how many it found. It is for a host about to exit
// without stopping its plugins, at a second Ctrl-C: their parent-death
// signal stops the plugins and the command groups they kill, but not a
// command that left its group (setsid), which the plugin's own clean-up
// would have found.
func KillLeftovers() int {
	return killMatching([]byte("\x00" + ProcessEnv + "=" + strconv.Itoa(os.Getpid()) + "."))
}

// killMatching SIGKILLs every other process whose environment, with a NUL
// before and after it, holds want, with its process group.
func killMatching(want []byte) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	own := syscall.Getpgrp()
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(append(append([]byte{0}, env...), 0), want) {
			continue
		}
		n++
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid > 1 && pgid != own {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return n
}
