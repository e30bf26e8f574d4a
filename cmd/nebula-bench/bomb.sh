#!/usr/bin/env bash
# bomb.sh asks whether one tenant's costly workflow can take the state
# machine from another: on nebula desktop with tenants on, tenant bench-b
# starts one-node executions back to back while tenant bench-a starts one
# execution of 1,000, then 5,000, parallel builtin.set nodes, each mapping a
# 59-element list over another (see bomb.go). Prints the other tenant's
# latencies before and during each bomb. Nothing else should run meanwhile.
#
#	bash cmd/nebula-bench/bomb.sh                         # from the repository root
#	BASELINE=/path/to/older/nebula bash cmd/nebula-bench/bomb.sh   # that build first
#
# Raw output in $OUT (default /tmp/nebula-bench-bomb).
set -euo pipefail

out=${OUT:-/tmp/nebula-bench-bomb}
sizes=${NODES:-1000 5000}
. "$(dirname "$0")/lib.sh"
prepare "$out"

NEBULA_ADMIN_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export NEBULA_ADMIN_TOKEN NEBULA_TOKEN=$NEBULA_ADMIN_TOKEN
printf '[tenant]\nenabled = true\n' >tenants.toml
builds="nebula"
if [ -n "${BASELINE:-}" ]; then
	cp "$BASELINE" ./baseline
	builds="baseline nebula"
fi
for b in $builds; do
	for n in $sizes; do
		pids=()
		rm -rf "$out/$b-$n-data"
		./"$b" desktop --config tenants.toml --data "$out/$b-$n-data" --bind 127.0.0.1:18997 >"$b-$n.log" 2>&1 &
		pids+=($!)
		waitready http://127.0.0.1:18997
		echo "== $b, $n nodes" | tee -a summary.txt
		timeout 300 ./bench -addr http://127.0.0.1:18997 -workload bomb -bomb-nodes "$n" -pid "${pids[0]}" 2>&1 | tee "$b-$n.txt" |
			grep -E 'bomb |other tenant|failed|rss|nebula-bench' | tee -a summary.txt || true
		cleanup
	done
done

echo
echo "== summary ($out/summary.txt)"
cat summary.txt
