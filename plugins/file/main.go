// Command modpipe-plugin-file is the first-party modpipe plugin for file
// and artifact steps: "checksum" (the default: sha256 of matched files,
// optionally written as a sums file), "copy" (collect files into a
// directory) and "write" (write a file from the pipeline).
//
//	module "file" "sums" {
//	  paths  = ["dist/**/*.tar.gz"]
//	  output = "dist/SHA256SUMS"
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
		Name:    "file",
		Version: Version,
		Kinds: []sdk.Kind{
			sdk.NewKind("checksum", ChecksumResultType, func(_ context.Context, _ *sdk.Module, cfg ChecksumConfig) (ChecksumResult, error) {
				return Checksum(cfg)
			}, sdk.Default(), sdk.Check(ChecksumConfig.Validate), sdk.Doc("SHA-256 and size of every file matching the patterns; optionally write them in sha256sum format.")),
			sdk.NewKind("copy", CopyResultType, func(_ context.Context, _ *sdk.Module, cfg CopyConfig) (CopyResult, error) {
				return Copy(cfg)
			}, sdk.Check(CopyConfig.Validate), sdk.Doc("Copy the files matching the patterns into a directory, keeping their relative paths (or flattened).")),
			sdk.NewKind("write", WriteResultType, func(_ context.Context, _ *sdk.Module, cfg WriteConfig) (File, error) {
				return Write(cfg)
			}, sdk.Check(WriteConfig.Validate), sdk.Doc("Write a file with the given content and mode.")),
		},
	})
}
