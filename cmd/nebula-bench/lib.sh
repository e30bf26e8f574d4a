# lib.sh: what the benchmark scripts share. Source it after cd-ing into
# the output directory.

# pids are the servers a script started; cleanup stops them, and runs on
# exit too.
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

# waitready URL waits until the node at URL answers /readyz, for 10 s.
waitready() {
	for _ in $(seq 1 200); do
		curl -fsS -o /dev/null "$1/readyz" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "$(basename "$0"): $1 never became ready" >&2
	exit 1
}
