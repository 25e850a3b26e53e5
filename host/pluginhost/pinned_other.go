//go:build !linux

package pluginhost

import (
	"io"
	"os"
)

// pinnedCopy has no in-memory copy to offer outside Linux: the binary is
// run by its path, as checked.
func pinnedCopy(string, *os.File, io.Writer) (*os.File, error) { return nil, nil }

func execPath(mem *os.File) string { return mem.Name() }
