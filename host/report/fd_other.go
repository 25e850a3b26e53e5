//go:build !unix

package report

// hostsOwn is false where descriptors have no close-on-exec flag to tell
// the host's own from those it was given.
func hostsOwn(int) bool { return false }
