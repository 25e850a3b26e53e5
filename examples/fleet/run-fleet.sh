#!/usr/bin/env bash
# run-fleet.sh runs examples/fleet/pipeline.hcl (or the file given as $1) as
# a real fleet on this machine: an etcd server on loopback, a master and
# WORKERS workers (default 3) as separate `host run` processes. Worker 1
# offers the extra capability "docker", so the integration module can only
# run there. It prints the master's summary and leaves no process behind,
# whether the run succeeds, fails or is interrupted.
#
#   make fleet                          # builds bin/, then runs this
#   WORKERS=5 examples/fleet/run-fleet.sh
#   KEEP_LOGS=1 examples/fleet/run-fleet.sh   # keep every instance's log
#   ETCD_CLIENT_PORT=2379 ETCD_PEER_PORT=2380 make fleet   # etcd's ports (default: free ones)
#
# Needs bin/host, bin/plugins/ (make build) and bin/etcd (make etcd).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${BIN:-$root/bin}
pipeline=${1:-$root/examples/fleet/pipeline.hcl}
workers=${WORKERS:-3}
total=$((workers + 1))

for f in "$bin/host" "$bin/etcd"; do
	[[ -x $f ]] || { echo "run-fleet: $f is missing: run 'make build etcd' (or 'make fleet')" >&2; exit 2; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/modpipe-fleet.XXXXXX")
# Every process is started in its own process group (set -m), so killing
# the group also kills the plugins a host started.
set -m
host_pids=()
etcd_pid=()

stop_all() {
	set +m # no "Terminated" job notices for the processes stopped here
	local pid alive
	# Hosts first, while etcd still answers, so they can leave cleanly; then
	# etcd; SIGKILL whatever did not stop within 3 seconds.
	for pid in "${host_pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
	for _ in $(seq 1 30); do
		alive=0
		for pid in "${host_pids[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
		((alive)) || break
		sleep 0.1
	done
	for pid in "${host_pids[@]}" "${etcd_pid[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}

cleanup() {
	local code=$?
	trap - EXIT INT TERM
	stop_all
	if [[ ${KEEP_LOGS:-} != "" ]]; then
		echo "run-fleet: logs kept in $work" >&2
	else
		rm -rf "$work"
	fi
	exit "$code"
}
trap cleanup EXIT
trap 'echo "run-fleet: interrupted" >&2; exit 130' INT TERM

# free_port picks a loopback port nothing listens on. A race with another
# program taking it before etcd does is possible but unlikely; etcd then
# fails to start and the script says so.
free_port() {
	local port
	while :; do
		port=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return
		fi
	done
}

client_port=${ETCD_CLIENT_PORT:-$(free_port)}
peer_port=${ETCD_PEER_PORT:-$(free_port)}
while [[ $peer_port == "$client_port" && -z ${ETCD_PEER_PORT:-} ]]; do peer_port=$(free_port); done
if [[ $peer_port == "$client_port" ]]; then
	echo "run-fleet: ETCD_CLIENT_PORT and ETCD_PEER_PORT must differ" >&2
	exit 2
fi
endpoint="127.0.0.1:$client_port"

"$bin/etcd" --name fleet --data-dir "$work/etcd" \
	--listen-client-urls "http://$endpoint" --advertise-client-urls "http://$endpoint" \
	--listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
	--initial-cluster "fleet=http://127.0.0.1:$peer_port" \
	--log-level error >"$work/etcd.log" 2>&1 &
etcd_pid=($!)

# Wait until etcd answers its health check (bounded: 20s).
healthy=0
for _ in $(seq 1 200); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$client_port" && printf 'GET /health HTTP/1.0\r\n\r\n' >&3 && grep -q '"health":"true"' <&3) 2>/dev/null; then
		healthy=1
		break
	fi
	sleep 0.1
done
if ((!healthy)); then
	echo "run-fleet: etcd did not become healthy on $endpoint; its log:" >&2
	cat "$work/etcd.log" >&2
	exit 4
fi

run_id="fleet-$(date +%Y%m%d%H%M%S)-$$"
echo "run-fleet: etcd on $endpoint, run $run_id: 1 master and $workers workers"

export MODPIPE_ETCD_ENDPOINTS=$endpoint MODPIPE_RUN_ID=$run_id
worker_pids=()
for i in $(seq 1 "$workers"); do
	caps=()
	((i == 1)) && caps=(--capability docker)
	"$bin/host" run "$pipeline" --instance "$i" --total "$total" --slots 2 "${caps[@]}" \
		--log-level info >"$work/worker-$i.log" 2>&1 &
	host_pids+=($!)
	worker_pids+=($!)
done

# The master's output (module lines and the summary) goes to the terminal.
master_code=0
"$bin/host" run "$pipeline" --instance 0 --total "$total" --slots 2 --no-progress \
	--log-level "${MODPIPE_LOG_LEVEL:-warn}" &
master=$!
host_pids+=("$master")
wait "$master" || master_code=$?

# Workers end once the master finishes the run; a worker that does not
# within 30s is a bug worth seeing, not a hang.
failed_workers=0
for i in $(seq 1 "$workers"); do
	pid=${worker_pids[$((i - 1))]}
	for _ in $(seq 1 300); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	code=0
	if kill -0 "$pid" 2>/dev/null; then
		echo "run-fleet: worker $i did not exit 30s after the master; stopping it" >&2
		code=124
	else
		wait "$pid" || code=$?
	fi
	ran=$(grep -c 'distributed: claimed:' "$work/worker-$i.log" || true)
	echo "run-fleet: worker $i exited with $code after claiming $ran module(s)"
	if ((code != master_code)); then
		failed_workers=1
		echo "run-fleet: worker $i's log:" >&2
		tail -n 20 "$work/worker-$i.log" >&2
	fi
done

if ((master_code == 0 && failed_workers)); then
	exit 1
fi
exit "$master_code"
