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
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	want := []byte(ProcessEnv + "=" + tag + "\x00")
	own := syscall.Getpgrp()
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(append(env, 0), want) {
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
