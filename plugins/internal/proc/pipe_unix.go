//go:build unix

package proc

import (
	"os"
	"syscall"
)

// pipe is os.Pipe for a command's output: the read end is ours and goes
// through the runtime's poller, the write end is only handed to the child
// and closed, so it is not registered with the poller (os.Pipe registers
// both: an epoll_ctl to add and one to remove per pipe, per command).
func pipe() (r, w *os.File, err error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return nil, nil, os.NewSyscallError("pipe2", err)
	}
	// Non-blocking, os.NewFile makes the read end pollable; the write end
	// stays blocking, as the child expects its output to be.
	if err := syscall.SetNonblock(p[0], true); err != nil {
		_ = syscall.Close(p[0])
		_ = syscall.Close(p[1])
		return nil, nil, os.NewSyscallError("fcntl", err)
	}
	return os.NewFile(uintptr(p[0]), "|0"), os.NewFile(uintptr(p[1]), "|1"), nil
}
