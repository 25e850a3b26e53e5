// Package sdk turns a Go program into a modpipe plugin in a few lines.
//
// A plugin declares module kinds with NewKind: a typed config struct, a
// typed result and a run function. The sdk derives the kind's config
// schema from the struct, decodes and checks each module's config, runs
// the function with a context the host can cancel, streams the module's
// output lines to the host, encodes the result, and turns a panic into a
// failed module instead of a dead plugin. Serve hands it all to the host
// over hashicorp/go-plugin (gRPC, AutoMTLS, protocol version 1).
//
//	type Config struct {
//		Name string `modpipe:"name" doc:"who to greet"`
//	}
//	type Greeting struct {
//		Message string `json:"message"`
//	}
//
//	func main() {
//		sdk.Serve(sdk.Plugin{Name: "hello", Version: "0.1.0", Kinds: []sdk.Kind{
//			sdk.NewKind("greet", "hello.greet/v1", func(ctx context.Context, m *sdk.Module, c Config) (Greeting, error) {
//				return Greeting{Message: "hello, " + c.Name}, nil
//			}),
//		}})
//	}
//
// A running module reads a finished dependency's value with Result.
//
// Module output goes through the Module: Stdout, Stderr, Logf and Logger
// stream lines to the host, which shows them prefixed with the module's
// name. What the process writes to os.Stdout or os.Stderr is not module
// output: the host logs a line written to os.Stdout as a warning (it
// belongs to no module) and keeps os.Stderr in its debug log and, when
// the plugin dies, shows the last stderr lines with the crash. A module that panics fails
// with kind "crash" and its stack; the plugin keeps serving other modules.
// One plugin process runs many modules, concurrently: keep per-module
// state in the run function, not in globals.
//
// The package imports only go-plugin, gRPC, protobuf, go-hclog and the
// protocol package, so a plugin binary never carries the host, HCL or
// etcd; a test enforces it.
package sdk
