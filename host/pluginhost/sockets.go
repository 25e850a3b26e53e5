package pluginhost

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// socketRootPrefix starts the name of a host process's socket root:
// modpipe-sock-PID-RANDOM (short: the sockets inside must fit in a
// Unix socket path).
const socketRootPrefix = "modpipe-sock-"

// maxSocketPath is the longest Unix socket path every Unix takes (macOS
// and the BSDs allow 104 bytes, Linux 108), and socketSuffix the longest
// go-plugin adds to its folder's parent: plugin-dirRANDOM/pluginRANDOM.
const (
	maxSocketPath = 103
	socketSuffix  = len("/plugin-dir4294967295/plugin4294967295")
)

// SocketRoot makes the folder in base (the system's temporary folder
// when empty) that a host process's plugins keep their Unix sockets in
// (Options.SocketRoot), and returns it with a function that removes it.
// go-plugin makes a plugin-dir folder per plugin process and removes it
// when the process stops; a host killed with SIGKILL leaves them behind.
// Naming the root after the host's pid lets the next host find them:
// SocketRoot also removes every root in base whose host no longer
// exists, so a CI machine's temporary folder does not fill up with them.
// It does that on a goroutine, off the way to the first module (reading
// a busy temporary folder can take milliseconds); the returned function
// waits for it.
//
// A root whose sockets' paths would be too long for the system (a deep
// temporary folder, as macOS has) is not made: SocketRoot returns "",
// and go-plugin's folders go straight to base, as without a root.
func SocketRoot(base string) (string, func(), error) {
	if base == "" {
		base = os.TempDir()
	}
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		sweepSocketRoots(base)
	}()
	dir, err := os.MkdirTemp(base, fmt.Sprintf("%s%d-", socketRootPrefix, os.Getpid()))
	if err != nil {
		<-swept
		return "", func() {}, fmt.Errorf("make the plugins' socket folder: %w", err)
	}
	if len(dir)+socketSuffix > maxSocketPath {
		_ = os.Remove(dir)
		return "", func() { <-swept }, nil
	}
	return dir, func() {
		<-swept
		_ = os.RemoveAll(dir)
	}, nil
}

// sweepSocketRoots removes the socket roots in base of hosts that are
// gone. A root it cannot read the pid of, or whose pid is alive (another
// host, or a reused pid), stays.
func sweepSocketRoots(base string) {
	roots, _ := filepath.Glob(filepath.Join(base, socketRootPrefix+"*"))
	for _, root := range roots {
		rest := strings.TrimPrefix(filepath.Base(root), socketRootPrefix)
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() || processExists(pid) {
			continue
		}
		_ = os.RemoveAll(root)
	}
}
