// Command modpipe-plugin-hello is the smallest useful modpipe plugin: one
// module kind, "greet", that greets someone. Copy it to start a plugin.
package main

import (
	"context"

	"github.com/modpipe/modpipe/sdk"
)

// Config is what a module "hello" block accepts.
type Config struct {
	Name string `modpipe:"name" doc:"Who to greet."`
}

// Greeting is the module's result, type "hello.greet/v1".
type Greeting struct {
	Message string `json:"message"`
}

func greet(ctx context.Context, m *sdk.Module, cfg Config) (Greeting, error) {
	m.Logf("greeting %s", cfg.Name)
	return Greeting{Message: "hello, " + cfg.Name}, nil
}

func main() {
	sdk.Serve(sdk.Plugin{Name: "hello", Version: "0.1.0", Kinds: []sdk.Kind{
		sdk.NewKind("greet", "hello.greet/v1", greet, sdk.Doc("Greets someone by name.")),
	}})
}
