#!/usr/bin/env bash
# tls.sh measures what mutual TLS between peers costs: a three-node
# cluster on loopback with peer TLS (the default, CA derived from the
# master key) and with insecure_transport = true, the chain workload at 32
# and 256 clients, in one run. The two modes alternate, twice each, so
# that drift of the machine shows instead of passing for a difference.
# Nothing else should run meanwhile.
#
#	bash cmd/nebula-bench/tls.sh            # from the repository root
#
# BASELINE=/path/to/nebula adds a third mode: the same cluster run by
# another build (its own defaults), to compare against it in the same run.
#
# Raw output in $OUT (default /tmp/nebula-bench-tls); the summary is
# printed at the end.
set -euo pipefail

out=${OUT:-/tmp/nebula-bench-tls}
rounds=${ROUNDS:-2}
. "$(dirname "$0")/lib.sh"
prepare "$out"

NEBULA_MASTER_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
NEBULA_ADMIN_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
export NEBULA_MASTER_KEY NEBULA_ADMIN_TOKEN NEBULA_TOKEN=$NEBULA_ADMIN_TOKEN
printf '' >mtls.toml
printf '[cluster]\ninsecure_transport = true\n' >plain.toml
modes="mtls plain"
if [ -n "${BASELINE:-}" ]; then
	cp "$BASELINE" ./nebula-baseline
	printf '' >baseline.toml
	modes="$modes baseline"
fi
addrs=http://127.0.0.1:9787,http://127.0.0.2:9787,http://127.0.0.3:9787

for round in $(seq 1 "$rounds"); do
	for mode in $modes; do
		pids=()
		bin=./nebula
		if [ "$mode" = baseline ]; then bin=./nebula-baseline; fi
		for i in 1 2 3; do
			rm -rf "$out/$mode-n$i"
			"$bin" server --config "$mode.toml" --node-id "n$i" --data "$out/$mode-n$i" --bind "127.0.0.$i:9787" \
				--raft-addr "127.0.0.$i:9788" --gossip-addr "127.0.0.$i:9789" \
				--join 127.0.0.1:9789,127.0.0.2:9789,127.0.0.3:9789 --bootstrap-expect 3 >"$mode-$round-n$i.log" 2>&1 &
			pids+=($!)
		done
		for i in 1 2 3; do waitready "http://127.0.0.$i:9787"; done
		sleep 2
		{ grep -oE 'peers=("[^"]*"|[^ ]*)' "$mode-$round-n1.log" || true; } | head -1 | sed "s/^/== round $round $mode: /" | tee -a summary.txt
		for c in 32 256; do
			n=20000
			if [ "$c" = 256 ]; then n=30000; fi
			echo "== round $round $mode chain $c clients" | tee -a summary.txt
			./bench -addr "$addrs" -workload chain -clients "$c" -count "$n" -pid "${pids[0]}" |
				tee "$mode-$round-$c.txt" | grep -E 'throughput|latency|failed' | tee -a summary.txt
		done
		cleanup
	done
done

echo
echo "== summary ($out/summary.txt)"
cat summary.txt
