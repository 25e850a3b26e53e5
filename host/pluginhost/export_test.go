package pluginhost

// WithAfterCheck returns o with f run between a binary's check and the
// start of its process, for tests that change the binary meanwhile.
func WithAfterCheck(o Options, f func()) Options {
	o.afterCheck = f
	return o
}
