//go:build unix

package report

import "golang.org/x/sys/unix"

// hostsOwn reports whether descriptor n was opened by the host itself
// rather than given to it: Go opens every file close-on-exec (the
// runtime's cgroup files, its epoll and eventfd are 3 to 7 in a fresh
// host), while a descriptor that came through exec (a shell's 3>file,
// >(...)) cannot be. A report sent to one of the host's own would run
// the whole pipeline and then fail, or write into a cgroup file.
func hostsOwn(n int) bool {
	if n <= 2 {
		return false
	}
	flags, err := unix.FcntlInt(uintptr(n), unix.F_GETFD, 0)
	return err == nil && flags&unix.FD_CLOEXEC != 0
}
