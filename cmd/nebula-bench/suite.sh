#!/usr/bin/env bash
# suite.sh runs every figure of BENCHMARKS.md's main table in one go, on
# this machine: the floor (fsync, raw raft), then nebula desktop and a
# three-node cluster on loopback, each at 1, 32 and 256 clients, with the
# chain workload (3 x builtin.set) and the http workload (3 x builtin.http,
# each a task for a worker). Nothing else should run meanwhile.
#
#	bash cmd/nebula-bench/suite.sh            # from the repository root
#	OUT=/tmp/suite bash cmd/nebula-bench/suite.sh
#
# The raw output of each step is kept in $OUT (default
# /tmp/nebula-bench-suite); the summary is printed at the end.
set -euo pipefail

out=${OUT:-/tmp/nebula-bench-suite}
. "$(dirname "$0")/lib.sh"
prepare "$out" nebula-floor

count() { # clients -> executions to start
	case $1 in 1) echo 2000 ;; 32) echo 20000 ;; *) echo 30000 ;; esac
}

run() { # label addrs workload clients pid
	local n
	n=$(count "$4")
	if [ "$3" = http ]; then n=$((n / 4)); fi
	echo "== $1 $3 $4 clients" | tee -a summary.txt
	./bench -addr "$2" -workload "$3" -clients "$4" -count "$n" -pid "$5" | tee "$1-$3-$4.txt" |
		grep -E 'throughput|latency|rss|failed' | tee -a summary.txt
}

echo "== floor" | tee -a summary.txt
./floor -dir "$out" | tee floor.txt | grep -E '^(fsync|raft)' | tee -a summary.txt

# Desktop: one node, everything embedded.
./nebula desktop --data "$out/desktop" --bind 127.0.0.1:18999 >desktop.log 2>&1 &
pids+=($!)
desktop=$!
waitready http://127.0.0.1:18999
sleep 1
echo "== desktop idle rss $(($(ps -o rss= -p "$desktop") / 1024)) MiB, $(grep -o 'startup=[^ ]*' desktop.log)" | tee -a summary.txt
for w in chain http; do
	for c in 1 32 256; do run desktop http://127.0.0.1:18999 "$w" "$c" "$desktop"; done
done
kill "$desktop"
wait "$desktop" 2>/dev/null || true
pids=()

# Three servers on 127.0.0.1-3; clients spread over all three APIs.
NEBULA_MASTER_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
NEBULA_ADMIN_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export NEBULA_MASTER_KEY NEBULA_ADMIN_TOKEN NEBULA_TOKEN=$NEBULA_ADMIN_TOKEN
# The http workload calls an echo server on loopback, which the selfhost
# preset refuses by default.
printf '[sandbox]\nallow_private_network = true\n' >cluster.toml
for i in 1 2 3; do
	./nebula server --config cluster.toml --node-id "n$i" --data "$out/n$i" --bind "127.0.0.$i:9787" --raft-addr "127.0.0.$i:9788" \
		--gossip-addr "127.0.0.$i:9789" --join 127.0.0.1:9789,127.0.0.2:9789,127.0.0.3:9789 \
		--bootstrap-expect 3 >"n$i.log" 2>&1 &
	pids+=($!)
done
for i in 1 2 3; do waitready "http://127.0.0.$i:9787"; done
sleep 2
addrs=http://127.0.0.1:9787,http://127.0.0.2:9787,http://127.0.0.3:9787
leader=$(curl -fsS -H "Authorization: Bearer $NEBULA_TOKEN" http://127.0.0.1:9787/v1/cluster | grep -o '"leader":"[^"]*"' || true)
echo "== cluster $leader; idle rss $(for p in "${pids[@]}"; do echo -n "$(($(ps -o rss= -p "$p") / 1024)) "; done)MiB" | tee -a summary.txt
for w in chain http; do
	for c in 1 32 256; do run cluster "$addrs" "$w" "$c" "${pids[0]}"; done
done
echo "== cluster rss after the runs: $(for p in "${pids[@]}"; do echo -n "$(($(ps -o rss= -p "$p") / 1024)) "; done)MiB" | tee -a summary.txt

echo
echo "== summary ($out/summary.txt)"
cat summary.txt
