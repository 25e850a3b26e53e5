//go:build unix

package plugintest

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ProcessAlive reports whether pid exists and is not a zombie. It reads
// /proc where there is one, because a zombie still answers kill(pid, 0).
func ProcessAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if _, statErr := os.Stat("/proc/self"); statErr == nil {
				return false // /proc exists and pid is not in it
			}
		}
		return syscall.Kill(pid, 0) == nil
	}
	s := string(b)
	// The state letter follows the parenthesised command name.
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// WaitGone waits for pid to disappear and fails the test if it does not
// within a minute. The bound is only a deadlock guard: a killed process may
// take a moment to be torn down, and the machine may be slow. A process
// still there at the end is killed so it does not outlive the test.
func WaitGone(t testing.TB, pid int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for ProcessAlive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d is still running", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
