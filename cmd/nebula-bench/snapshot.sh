#!/usr/bin/env bash
# snapshot.sh shows whether snapshots stall the state machine: a desktop
# node with a low snapshot threshold is filled to a large database (default
# about 500 MB, of padded inputs), then one client starts one-node
# executions back to back for 60 s, through several snapshots, and the
# longest latency is printed with the snapshots the node took meanwhile.
# Nothing else should run meanwhile.
#
#	bash cmd/nebula-bench/snapshot.sh                    # from the repository root
#	BASELINE=/path/to/older/nebula bash cmd/nebula-bench/snapshot.sh   # the same for another build first
#
# FILL (executions, default 11000) and PAD (bytes per input, default 24000)
# size the database; SECONDS_LOAD (default 60) the measured run. Raw
# output in $OUT (default /tmp/nebula-bench-snapshot).
set -euo pipefail

out=${OUT:-/tmp/nebula-bench-snapshot}
fill=${FILL:-11000}
pad=${PAD:-24000}
load=${SECONDS_LOAD:-60}
. "$(dirname "$0")/lib.sh"
prepare "$out"

# A snapshot every 2,048 entries, checked every 2 s.
printf '[cluster]\nsnapshot_threshold = 2048\nsnapshot_interval = "2s"\ntrailing_logs = 1024\n' >snap.toml

builds="nebula"
if [ -n "${BASELINE:-}" ]; then
	cp "$BASELINE" ./baseline
	builds="baseline nebula"
fi
for b in $builds; do
	pids=()
	./"$b" desktop --config snap.toml --data "$out/$b-data" --bind 127.0.0.1:18998 >"$b.log" 2>&1 &
	pids+=($!)
	waitready http://127.0.0.1:18998
	./bench -addr http://127.0.0.1:18998 -workload set -clients 16 -count "$fill" -pad "$pad" >"$b-fill.txt"
	size=$(du -m "$out/$b-data/nebula.sqlite" | cut -f1)
	before=$(grep -c 'starting snapshot up to' "$b.log" || true)
	echo "== $b: database ${size} MB after $fill executions; $before snapshots so far" | tee -a summary.txt
	./bench -addr http://127.0.0.1:18998 -workload set -clients 1 -duration "${load}s" | tee "$b-load.txt" |
		grep -E 'throughput|latency|failed' | tee -a summary.txt
	after=$(grep -c 'starting snapshot up to' "$b.log" || true)
	echo "   snapshots during the run: $((after - before))" | tee -a summary.txt
	echo "   apply pauses of its snapshots: $(grep -o 'apply_paused=[^ ]*' "$b.log" | cut -d= -f2 | tr '\n' ' ')" | tee -a summary.txt
	grep -o 'msg="snapshot written".*' "$b.log" | tail -1 | sed 's/^/   last: /' | tee -a summary.txt || true
	# Applies by duration, cumulative (Prometheus buckets), since start.
	curl -fsS http://127.0.0.1:18998/metrics | grep '^nebula_raft_apply_duration_seconds_bucket' |
		sed 's/nebula_raft_apply_duration_seconds_bucket{le="\([^"]*\)"} /le=\1s:/' | tr '\n' ' ' | sed 's/^/   applies (cumulative) /' | tee -a summary.txt || true
	echo | tee -a summary.txt
	cleanup
done

echo
echo "== summary ($out/summary.txt)"
cat summary.txt
