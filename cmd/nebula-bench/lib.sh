# lib.sh: what the benchmark scripts share. Source it from the repository
# root, then call prepare.

# prepare DIR makes DIR afresh, builds nebula and nebula-bench (and the
# binaries named after it: nebula-floor → DIR/floor) into it, and moves
# there.
prepare() {
	local dir=$1
	shift
	rm -rf "$dir"
	mkdir -p "$dir"
	export CGO_ENABLED=0
	go build -o "$dir/nebula" ./cmd/nebula
	go build -o "$dir/bench" ./cmd/nebula-bench
	for cmd in "$@"; do
		go build -o "$dir/${cmd#nebula-}" "./cmd/$cmd"
	done
	cd "$dir"
}

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
