package sdk_test

import (
	"context"
	"fmt"

	"github.com/modpipe/modpipe/sdk"
)

// Config is a module kind's configuration: one attribute per field.
type Config struct {
	URL     string            `modpipe:"url" doc:"What to fetch."`
	Headers map[string]string `modpipe:"headers,optional"`
}

// Fetched is the kind's result value.
type Fetched struct {
	Status int `json:"status"`
}

// A plugin's main declares its kinds and serves them.
func ExampleNewKind() {
	fetch := sdk.NewKind("fetch", "web.fetch/v1",
		func(ctx context.Context, m *sdk.Module, cfg Config) (Fetched, error) {
			m.Logf("fetching %s for %s", cfg.URL, m.MatrixTarget())
			// A dependency's typed result, fetched from the host.
			token, err := sdk.Result[struct{ Token string }](ctx, "login")
			if err != nil {
				return Fetched{}, err
			}
			fmt.Fprintln(m.Stdout(), "using token of length", len(token.Token))
			return Fetched{Status: 200}, nil
		},
		sdk.Default(), sdk.Doc("Fetches a URL."))
	_ = sdk.Plugin{Name: "web", Version: "0.1.0", Kinds: []sdk.Kind{fetch}} // then: sdk.Serve(plugin)
}
