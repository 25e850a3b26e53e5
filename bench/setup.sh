#!/usr/bin/env bash
# Installs the benchmark's peers when they are missing, so a clean machine
# (CI, a new laptop) runs `make bench` with nothing installed by hand:
# GNU make and ninja (local DAGs), GNU time (peak RSS of each command), redis-server (broker of asynq and
# Celery), Celery with its Redis transport (for Debian's /usr/bin/python3,
# which the benchmark uses whatever python3 comes first on PATH). The asynq peer is a Go module
# under bench/peers, built by the benchmark itself.
set -euo pipefail

need=()
command -v make >/dev/null || need+=(make)
[ -x /usr/bin/time ] || need+=(time)
command -v ninja >/dev/null || need+=(ninja-build)
command -v redis-server >/dev/null || need+=(redis-server)
/usr/bin/python3 -c 'import celery' 2>/dev/null || need+=(python3-celery)
/usr/bin/python3 -c 'import redis' 2>/dev/null || need+=(python3-redis)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "bench/setup.sh: installing ${need[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null; then
    echo "bench/setup.sh: need root (or sudo) to apt-get install ${need[*]}" >&2
    exit 1
  fi
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
