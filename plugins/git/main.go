// Command modpipe-plugin-git is the first-party modpipe plugin that reports
// facts about the git repository a pipeline runs in (kind "facts", the
// default): commit, branch, tag, dirty state, author, remote.
//
//	module "git" "checkout" {}
//	module "shell" "build" {
//	  command = ["go", "build", "-ldflags", "-X main.commit=${module.checkout.value.short_sha}", "./..."]
//	}
package main

import (
	"context"

	"github.com/modpipe/modpipe/sdk"
)

// Version is the plugin's version, reported to the host.
const Version = "0.1.0"

func main() {
	sdk.Serve(sdk.Plugin{
		Name:    "git",
		Version: Version,
		Kinds: []sdk.Kind{
			sdk.NewKind("facts", FactsResultType, func(ctx context.Context, _ *sdk.Module, cfg FactsConfig) (Facts, error) {
				return CollectFacts(ctx, cfg)
			}, sdk.Default(), sdk.Doc("Report the checked-out commit of the repository: sha, branch, tag, describe, dirty, author, commit time, remote URL.")),
		},
	})
}
