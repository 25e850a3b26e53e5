// Command modpipe-plugin-http is the first-party modpipe plugin for HTTP
// checks (kind "check", the default): request a URL, check the status and
// body, optionally parse JSON, optionally keep retrying until a service is
// up.
//
//	module "http" "healthy" {
//	  url           = "http://localhost:8080/healthz"
//	  body_contains = "ok"
//	  wait          = "2m"
//	}
package main

import (
	"context"
	"errors"
	"net/http"

	"github.com/modpipe/modpipe/sdk"
)

// Version is the plugin's version, reported to the host.
const Version = "0.1.0"

func main() {
	// One client for the plugin process, so connections are reused
	// across modules; each request carries its own timeout.
	client := &http.Client{}
	sdk.Serve(sdk.Plugin{
		Name:    "http",
		Version: Version,
		Kinds: []sdk.Kind{
			sdk.NewKind("check", CheckResultType, func(ctx context.Context, m *sdk.Module, cfg CheckConfig) (CheckResult, error) {
				res, err := Check(ctx, client, cfg, m.Logf)
				var ce *CheckError
				if errors.As(err, &ce) {
					return res, sdk.WithTail(err, ce.Body)
				}
				return res, err
			}, sdk.Default(), sdk.Check(CheckConfig.Validate),
				sdk.Doc("Request a URL and check the status (default 2xx) and body; with wait, retry until it passes.")),
		},
	})
}
