// Command modpipe-bench-bare is the benchmark's floor plugin: a bare
// go-plugin gRPC server with one call that returns a payload. See package
// bench/internal/bare.
package main

import (
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/modpipe/modpipe/bench/internal/bare"
)

func main() {
	goplugin.Serve(bare.ServeConfig())
}
