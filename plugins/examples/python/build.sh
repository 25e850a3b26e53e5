#!/usr/bin/env bash
# Builds the Python example plugin into one executable file:
#
#   plugins/examples/python/build.sh bin/plugins/modpipe-plugin-template
#
# The output is a Python zip application (PEP 441) whose first line is
# #!/usr/bin/python3: the plugin's code plus the gRPC code generated from
# proto/ (the modpipe protocol), go-plugin's broker and controller protocols
# and gRPC's health protocol. Nothing generated is committed: the code is
# generated here, from the .proto files of this checkout and of the
# go-plugin version in go.mod, on every build, so it cannot go stale.
#
# /usr/bin/python3 (Debian's) is used on purpose: it is the Python that has
# Debian's python3-grpcio, whatever python3 comes first on PATH.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTPUT (e.g. bin/plugins/modpipe-plugin-template)" >&2
	exit 2
fi
out="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
python=/usr/bin/python3

"$here/setup.sh"

# go-plugin's own services (GRPCBroker, GRPCController) are defined in its
# module; take the .proto files of exactly the version the host is built with.
goplugin="$(cd "$root" && go list -m -f '{{.Dir}}' github.com/hashicorp/go-plugin 2>/dev/null || true)"
if [ -z "$goplugin" ] || [ ! -f "$goplugin/internal/plugin/grpc_broker.proto" ]; then
	(cd "$root" && go mod download github.com/hashicorp/go-plugin)
	goplugin="$(cd "$root" && go list -m -f '{{.Dir}}' github.com/hashicorp/go-plugin)"
fi

# Build in a private folder and move the result into place at the end, so
# concurrent builds (make build while a test builds) never see half a file.
stage="$(mktemp -d "${TMPDIR:-/tmp}/modpipe-python-plugin.XXXXXX")"
trap 'rm -rf "$stage"' EXIT

mkdir -p "$stage/app/gen"
protoc \
	--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin \
	--proto_path="$root/proto" \
	--proto_path="$goplugin/internal" \
	--proto_path="$here/proto" \
	--python_out="$stage/app/gen" \
	--grpc_python_out="$stage/app/gen" \
	modpipe/plugin/v1/plugin.proto \
	plugin/grpc_broker.proto \
	plugin/grpc_controller.proto \
	grpc_health/v1/health.proto
# Regular packages, so every Python version's zipimport finds them.
find "$stage/app/gen" -mindepth 1 -type d -exec touch {}/__init__.py \;

cp -R "$here/modpipe_plugin" "$stage/app/"
find "$stage/app" -name __pycache__ -type d -prune -exec rm -rf {} +
cat >"$stage/app/__main__.py" <<'PY'
from modpipe_plugin.main import main

main()
PY

# Fail the build, not the first run, on a syntax error.
"$python" -m compileall -q "$stage/app"
find "$stage/app" -name __pycache__ -type d -prune -exec rm -rf {} +

mkdir -p "$(dirname "$out")"
"$python" -m zipapp "$stage/app" --python "$python" --output "$stage/plugin.pyz"
chmod 0755 "$stage/plugin.pyz"
mv -f "$stage/plugin.pyz" "$out"
