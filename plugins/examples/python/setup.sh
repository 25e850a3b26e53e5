#!/usr/bin/env bash
# Installs what the Python example plugin needs to build and run, from
# Debian, when it is missing: gRPC and protobuf for /usr/bin/python3, the
# protoc gRPC plugin for Python, and cryptography for the AutoMTLS
# certificate. CI starts from a clean machine, so the Makefile and the
# end-to-end test call this rather than relying on anything installed by
# hand. It does nothing (and needs no network) when all is present.
set -euo pipefail

packages=(python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc python3-cryptography)

missing=()
for p in "${packages[@]}"; do
	if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]; then
		missing+=("$p")
	fi
done
if [ "${#missing[@]}" -eq 0 ]; then
	exit 0
fi

echo "setup.sh: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" != 0 ]; then
	sudo="sudo"
fi
# Another apt run (a parallel build, the proto generator) may hold the
# dpkg lock: wait for it instead of failing.
$sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
