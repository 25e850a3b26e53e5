//go:build !linux

package pluginhost

import "syscall"

// pluginProcAttr has nothing to add outside Linux, which alone can tie a
// child's life to its parent's.
func pluginProcAttr() *syscall.SysProcAttr { return nil }
