package pluginhost

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// pinnedCopy returns a sealed in-memory copy of the binary read from f,
// and its content through w (the checksum), for the process to be run
// from: what was checked is then what runs, even if the file at the path
// is replaced or rewritten between the check and the exec. It returns
// nil for a script ("#!"), which the kernel hands to its interpreter by
// path, and an in-memory copy could not be read back by name.
func pinnedCopy(name string, f *os.File, w io.Writer) (*os.File, error) {
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if n < 4 || string(head) != "\x7fELF" {
		return nil, nil
	}
	fd, err := unix.MemfdCreate("modpipe-plugin-"+name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("make an in-memory copy of the binary: %w", err)
	}
	mem := os.NewFile(uintptr(fd), "memfd:modpipe-plugin-"+name)
	if _, err := io.Copy(io.MultiWriter(mem, w), f); err != nil {
		mem.Close()
		return nil, fmt.Errorf("copy the binary: %w", err)
	}
	if _, err := unix.FcntlInt(mem.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		mem.Close()
		return nil, fmt.Errorf("seal the copy of the binary: %w", err)
	}
	return mem, nil
}

// execPath is the path to exec mem by: the process's own view of the
// descriptor, which the kernel resolves before it closes it on exec.
func execPath(mem *os.File) string {
	return fmt.Sprintf("/proc/self/fd/%d", mem.Fd())
}
