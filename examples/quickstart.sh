#!/usr/bin/env bash
# A first tour of Nebula: start it, apply two workflows (a webhook and a
# cron job), trigger them, and follow a run live.
#
#   ./examples/quickstart.sh        (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."

export NEBULA_ADDR=${NEBULA_ADDR:-http://127.0.0.1:8787}
bin=$(mktemp -d)/nebula
go build -o "$bin" ./cmd/nebula

# Start a desktop node unless one already answers.
if ! curl -sf "$NEBULA_ADDR/readyz" >/dev/null 2>&1; then
  data=$(mktemp -d)
  "$bin" desktop --data "$data" --bind "${NEBULA_ADDR#http://}" 2>"$data/nebula.log" &
  pid=$!
  trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
  for _ in $(seq 100); do curl -sf "$NEBULA_ADDR/readyz" >/dev/null && break; sleep 0.1; done
  echo "started nebula desktop (logs in $data/nebula.log)"
fi

echo "== apply two workflows"
"$bin" workflow apply -f examples/workflows/order-hook.yaml
"$bin" workflow apply -f examples/workflows/heartbeat.yaml
"$bin" workflow list

echo "== trigger the webhook"
curl -s -X POST "$NEBULA_ADDR/hooks/orders" -H 'Content-Type: application/json' -d '{"item": "book", "qty": 12}'
echo

echo "== run it by hand and follow it live"
"$bin" run order-hook --input '{"body": {"item": "pen", "qty": 3}}' --follow

echo "== the cron job has fired by now"
sleep 6
"$bin" execution list --workflow heartbeat
