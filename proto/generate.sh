#!/usr/bin/env bash
# Regenerates the Go code of the modpipe plugin protocol (proto/pluginv1)
# from proto/modpipe/plugin/v1/plugin.proto.
#
# It installs what it needs when missing: protoc and the well-known types
# from Debian (protobuf-compiler, libprotobuf-dev), and protoc-gen-go /
# protoc-gen-go-grpc at pinned versions into the repo-local ./.tools/bin.
# The output is deterministic, so CI can regenerate and run
# `git diff --exit-code proto/` to catch stale generated code.
set -euo pipefail

# The plugin versions match the module's google.golang.org/protobuf
# (v1.36.12) and a protoc-gen-go-grpc whose output grpc v1.85 supports.
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools="$root/.tools/bin"
mkdir -p "$tools"

if ! command -v protoc >/dev/null 2>&1 || [ ! -e /usr/include/google/protobuf/descriptor.proto ]; then
	echo "generate.sh: installing protoc (protobuf-compiler libprotobuf-dev)" >&2
	sudo=""
	if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq protobuf-compiler libprotobuf-dev >/dev/null
fi

installed_version() { # binary -> version it reports, or empty
	"$1" --version 2>/dev/null | awk '{print $NF}' || true
}
if [ "$(installed_version "$tools/protoc-gen-go")" != "$PROTOC_GEN_GO_VERSION" ]; then
	GOBIN="$tools" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
fi
if [ "$(installed_version "$tools/protoc-gen-go-grpc")" != "${PROTOC_GEN_GO_GRPC_VERSION#v}" ]; then
	GOBIN="$tools" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
fi

rm -f proto/pluginv1/*.pb.go
PATH="$tools:$PATH" protoc \
	--proto_path=proto \
	--go_out=. --go_opt=module=github.com/modpipe/modpipe \
	--go-grpc_out=. --go-grpc_opt=module=github.com/modpipe/modpipe \
	modpipe/plugin/v1/plugin.proto
echo "generate.sh: regenerated proto/pluginv1" >&2
