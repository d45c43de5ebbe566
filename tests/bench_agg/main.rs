//! `weir-bench-agg`: the Kafka side of `deploy/local/bench-aggregate.sh`.
//!
//! - `produce`: a backlog of JSON records `{"key":"k00042","ts":…,"amount":…}` over `--keys`
//!   keys (the Kafka key is the same text), event time advancing 1 ms every `--per-ms` records, so
//!   10 s windows close all along the backlog; then one record per partition with an event time an
//!   hour later (key `end`), which closes every window of the backlog.
//! - `passthrough`: the baseline. Consumes the input topic in a consumer group and produces every
//!   record unchanged (key, value, timestamp, headers) to the same partition of the output topic
//!   with an idempotent producer; every `--commit-ms` it commits, per partition, the offsets whose
//!   records the broker acknowledged. Runs until killed.
//! - `watch`: polls a group's committed offsets (and optionally a Weir `/metrics` counter) until
//!   they cover the whole input, and prints when they started to move and when they got there.
//! - `windows`: reads a topic of count-sum window results and checks them against the backlog.
//! - `collect`: reads a contender's output for `deploy/local/bench-kafka.sh` (see `collect.rs`).

mod collect;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

/// Event time of the first record: a multiple of every window size the benchmark uses.
const BASE_MS: i64 = 1_700_000_000_000;
/// Key of the closing records.
const END_KEY: &str = "end";

#[derive(Debug, Parser)]
#[command(about = "Aggregate benchmark client: backlog, rdkafka passthrough, progress watcher")]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(long)]
    brokers: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Produce the backlog.
    Produce {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 10_000)]
        keys: u64,
        /// Records per millisecond of event time.
        #[arg(long, default_value_t = 10)]
        per_ms: u64,
        /// Window size the expectations are computed for, in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        window_ms: i64,
    },
    /// Copy the input topic to the output topic until killed.
    Passthrough {
        #[arg(long)]
        input: String,
        #[arg(long)]
        output: String,
        #[arg(long)]
        group: String,
        #[arg(long, default_value_t = 1000)]
        commit_ms: u64,
        /// Extra librdkafka consumer properties, `name=value`.
        #[arg(long = "consumer", value_parser = property)]
        consumer: Vec<(String, String)>,
    },
    /// Wait until a group's committed offsets (or a /metrics counter) reach `--total`.
    Watch {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        group: String,
        #[arg(long)]
        total: i64,
        /// Do not wait for committed offsets (only for the metric).
        #[arg(long)]
        no_commits: bool,
        /// Admin listener (`host:port`) whose /metrics holds the counter.
        #[arg(long)]
        metrics: Option<String>,
        /// The counter, summed over the series whose labels contain every `--label`.
        #[arg(long, default_value = "weir_records_in_total")]
        metric: String,
        #[arg(long = "label")]
        labels: Vec<String>,
        #[arg(long, default_value_t = 100)]
        poll_ms: u64,
        #[arg(long, default_value_t = 900)]
        timeout_secs: u64,
    },
    /// Read a topic from its beginning until `--expect` records arrived: rate, latency, digests.
    Collect {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        expect: u64,
        #[arg(long, value_enum, default_value_t = collect::Check::None)]
        check: collect::Check,
        /// How long to go on reading after `--expect` records, to see duplicates.
        #[arg(long, default_value_t = 1000)]
        grace_ms: u64,
        #[arg(long, default_value_t = 900)]
        timeout_secs: u64,
        /// Fraction of the records, first in arrival order, left out of the latency percentiles.
        #[arg(long, default_value_t = 0.0)]
        latency_skip: f64,
    },
    /// Check the window results of the backlog in a topic.
    Windows {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 10_000)]
        keys: u64,
        #[arg(long, default_value_t = 10)]
        per_ms: u64,
        #[arg(long, default_value_t = 10_000)]
        window_ms: i64,
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
    },
}

fn property(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{s}` is not name=value"))
}

/// Record `i` of the backlog: its key, event time and amount.
fn record(i: u64, keys: u64, per_ms: u64) -> (String, i64, u64) {
    let key = format!("k{:05}", (i * 7919) % keys);
    let ts = BASE_MS + (i / per_ms) as i64;
    (key, ts, (i * 37) % 1000)
}

/// What the window results of a backlog must add up to.
struct Expected {
    windows: u64,
    count: u64,
    sum: u64,
}

fn expected(count: u64, keys: u64, per_ms: u64, window_ms: i64) -> Expected {
    let mut windows = HashSet::new();
    let mut sum = 0;
    for i in 0..count {
        let (key, ts, amount) = record(i, keys, per_ms);
        windows.insert((key, ts.div_euclid(window_ms)));
        sum += amount;
    }
    Expected {
        windows: windows.len() as u64,
        count,
        sum,
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    match args.command {
        Command::Produce {
            topic,
            count,
            keys,
            per_ms,
            window_ms,
        } => produce(&args.brokers, &topic, count, keys, per_ms, window_ms),
        Command::Passthrough {
            input,
            output,
            group,
            commit_ms,
            consumer,
        } => passthrough(&args.brokers, &input, &output, &group, commit_ms, &consumer),
        Command::Watch {
            topic,
            group,
            total,
            no_commits,
            metrics,
            metric,
            labels,
            poll_ms,
            timeout_secs,
        } => watch(
            &args.brokers,
            &topic,
            &group,
            total,
            !no_commits,
            metrics
                .as_deref()
                .map(|m| (m, metric.as_str(), &labels[..])),
            Duration::from_millis(poll_ms),
            Duration::from_secs(timeout_secs),
        ),
        Command::Collect {
            topic,
            expect,
            check,
            grace_ms,
            timeout_secs,
            latency_skip,
        } => collect::collect(
            &args.brokers,
            &topic,
            expect,
            check,
            Duration::from_millis(grace_ms),
            Duration::from_secs(timeout_secs),
            latency_skip,
        ),
        Command::Windows {
            topic,
            count,
            keys,
            per_ms,
            window_ms,
            timeout_secs,
        } => windows(
            &args.brokers,
            &topic,
            &expected(count, keys, per_ms, window_ms),
            window_ms,
            Duration::from_secs(timeout_secs),
        ),
    }
}

fn produce(
    brokers: &str,
    topic: &str,
    count: u64,
    keys: u64,
    per_ms: u64,
    window_ms: i64,
) -> Result<()> {
    let started = Instant::now();
    let producer: ThreadedProducer<_> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "10")
        .create()
        .context("cannot create the producer")?;
    let partitions = partition_count(brokers, topic)?;
    let send = |r: BaseRecord<'_, [u8], [u8]>| {
        let mut r = r;
        loop {
            match producer.send(r) {
                Ok(()) => return,
                Err((_, back)) => {
                    r = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    };
    let mut value = String::new();
    let mut last_ts = BASE_MS;
    for i in 0..count {
        let (key, ts, amount) = record(i, keys, per_ms);
        last_ts = ts;
        value.clear();
        value.push_str(&format!(r#"{{"key":"{key}","ts":{ts},"amount":{amount}}}"#));
        send(
            BaseRecord::to(topic)
                .key(key.as_bytes())
                .payload(value.as_bytes())
                .timestamp(ts),
        );
    }
    producer.flush(Duration::from_secs(120))?;
    // After the whole backlog, so that it is last in each partition.
    let end = last_ts + 3_600_000;
    let closing = format!(r#"{{"key":"{END_KEY}","ts":{end},"amount":0}}"#);
    for p in 0..partitions {
        send(
            BaseRecord::to(topic)
                .partition(p)
                .key(END_KEY.as_bytes())
                .payload(closing.as_bytes())
                .timestamp(end),
        );
    }
    producer.flush(Duration::from_secs(60))?;
    let e = expected(count, keys, per_ms, window_ms);
    println!(
        "produced {} records to {topic} ({count} over {keys} keys, event time {} s, then one \
         closing record per partition) in {:.2}s",
        count + partitions as u64,
        (last_ts - BASE_MS) / 1000 + 1,
        started.elapsed().as_secs_f64()
    );
    println!(
        "expected window results: {} windows, count {}, sum {}",
        e.windows, e.count, e.sum
    );
    Ok(())
}

fn partition_count(brokers: &str, topic: &str) -> Result<i32> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let n = md.topics().first().map_or(0, |t| t.partitions().len());
    if n == 0 {
        bail!("topic {topic} has no partitions");
    }
    Ok(n as i32)
}

/// Per source partition, one past the last source offset whose copy the broker acknowledged
/// (the output partition is the source partition, and each copy carries its source offset as its
/// delivery opaque), and how many copies failed.
struct Acked {
    next: Vec<AtomicI64>,
    failed: AtomicI64,
}

/// The passthrough producer's context: [`Acked`], shared with the loop that commits.
struct AckContext(Arc<Acked>);

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, source_offset: usize) {
        match result {
            Ok(m) => {
                if let Some(slot) = self.0.next.get(m.partition() as usize) {
                    slot.fetch_max(source_offset as i64 + 1, Ordering::Relaxed);
                }
            }
            Err(_) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn passthrough(
    brokers: &str,
    input: &str,
    output: &str,
    group: &str,
    commit_ms: u64,
    extra: &[(String, String)],
) -> Result<()> {
    let partitions = partition_count(brokers, input)? as usize;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("queued.max.messages.kbytes", "32768");
    for (k, v) in extra {
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create().context("cannot create the consumer")?;
    consumer.subscribe(&[input])?;
    let acked = Arc::new(Acked {
        next: (0..partitions).map(|_| AtomicI64::new(0)).collect(),
        failed: AtomicI64::new(0),
    });
    let producer: ThreadedProducer<AckContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("queue.buffering.max.kbytes", "65536")
        .set("queue.buffering.max.messages", "100000")
        .create_with_context(AckContext(Arc::clone(&acked)))
        .context("cannot create the producer")?;
    let mut committed: Vec<i64> = vec![-1; partitions];
    let mut last_commit = Instant::now();
    let commit_every = Duration::from_millis(commit_ms);
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    while !stop.load(Ordering::Relaxed) {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m?;
            let p = m.partition();
            if p as usize >= partitions {
                bail!("partition {p} is beyond the topic's {partitions}");
            }
            let mut r: BaseRecord<'_, [u8], [u8], usize> =
                BaseRecord::with_opaque_to(output, m.offset() as usize).partition(p);
            if let Some(k) = m.key() {
                r = r.key(k);
            }
            if let Some(v) = m.payload() {
                r = r.payload(v);
            }
            if let Some(ts) = m.timestamp().to_millis() {
                r = r.timestamp(ts);
            }
            if let Some(h) = m.headers() {
                r = r.headers(h.detach());
            }
            loop {
                match producer.send(r) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        r = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        if acked.failed.load(Ordering::Relaxed) > 0 {
            bail!("the broker refused a copy");
        }
        if last_commit.elapsed() >= commit_every {
            last_commit = Instant::now();
            commit_acked(&consumer, input, &acked, &mut committed, CommitMode::Async)?;
        }
    }
    // Stopped: every copy delivered, then their offsets committed.
    producer.flush(Duration::from_secs(30))?;
    if acked.failed.load(Ordering::Relaxed) > 0 {
        bail!("the broker refused a copy");
    }
    commit_acked(&consumer, input, &acked, &mut committed, CommitMode::Sync)?;
    Ok(())
}

/// Commits, per partition, one past the last source offset whose copy was acknowledged, where
/// that moved since the last commit.
fn commit_acked(
    consumer: &BaseConsumer,
    input: &str,
    acked: &Acked,
    committed: &mut [i64],
    mode: CommitMode,
) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    for (p, next) in acked.next.iter().enumerate() {
        let next = next.load(Ordering::Relaxed);
        if next > 0 && next > committed[p] {
            tpl.add_partition_offset(input, p as i32, Offset::Offset(next))?;
            committed[p] = next;
        }
    }
    if tpl.count() > 0 {
        consumer.commit(&tpl, mode)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn watch(
    brokers: &str,
    topic: &str,
    group: &str,
    total: i64,
    commits: bool,
    metric: Option<(&str, &str, &[String])>,
    every: Duration,
    timeout: Duration,
) -> Result<()> {
    let started = Instant::now();
    let partitions = partition_count(brokers, topic)?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    // (first time seen above 0 and the value then, time it reached the total)
    let mut commit_progress: (Option<(f64, i64)>, Option<f64>) = (None, None);
    let mut metric_progress: (Option<(f64, i64)>, Option<f64>) = (None, None);
    loop {
        let now = started.elapsed().as_secs_f64();
        if commits && commit_progress.1.is_none() {
            let sum: i64 = consumer
                .committed_offsets(tpl.clone(), Duration::from_secs(5))
                .map(|c| {
                    c.elements()
                        .iter()
                        .map(|e| match e.offset() {
                            Offset::Offset(o) => o,
                            _ => 0,
                        })
                        .sum()
                })
                .unwrap_or(0);
            note(&mut commit_progress, now, sum, total);
        }
        if let Some((addr, name, labels)) = metric
            && metric_progress.1.is_none()
            && let Ok(text) = http_get(addr, "/metrics")
        {
            note(
                &mut metric_progress,
                now,
                sum_metric(&text, name, labels),
                total,
            );
        }
        let done = (!commits || commit_progress.1.is_some())
            && (metric.is_none() || metric_progress.1.is_some());
        if done {
            break;
        }
        if started.elapsed() >= timeout {
            bail!("the input was not covered within {timeout:?}");
        }
        std::thread::sleep(every);
    }
    let line = |what: &str, p: (Option<(f64, i64)>, Option<f64>)| {
        if let (Some((t1, v1)), Some(t2)) = p {
            if v1 >= total {
                // Everything arrived in the first step: no rate to tell.
                println!("{what}: all {total} at once at {t2:.3} s");
                return;
            }
            let rate = (total - v1) as f64 / (t2 - t1).max(1e-3);
            println!(
                "{what}: first at {t1:.3} s ({v1}), all {total} at {t2:.3} s, {rate:.0} records/s"
            );
        }
    };
    line("committed", commit_progress);
    line("metric", metric_progress);
    Ok(())
}

fn note(progress: &mut (Option<(f64, i64)>, Option<f64>), now: f64, value: i64, total: i64) {
    if value > 0 && progress.0.is_none() {
        progress.0 = Some((now, value));
    }
    if value >= total {
        progress.1 = Some(now);
    }
}

fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The sum of counter `name` over the series whose labels contain every one of `labels`.
fn sum_metric(text: &str, name: &str, labels: &[String]) -> i64 {
    let mut total = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let base = series.split('{').next().unwrap_or_default();
        if base == name && labels.iter().all(|l| series.contains(l.as_str())) {
            total += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    total as i64
}

fn windows(
    brokers: &str,
    topic: &str,
    expected: &Expected,
    window_ms: i64,
    timeout: Duration,
) -> Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("weir-bench-agg-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partition_count(brokers, topic)? {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    let mut seen = HashSet::new();
    let (mut results, mut repeats, mut count, mut sum, mut bad) = (0u64, 0u64, 0u64, 0.0, 0u64);
    while (seen.len() as u64) < expected.windows && Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m?;
        let key = m.key().unwrap_or_default().to_vec();
        if key == END_KEY.as_bytes() {
            continue;
        }
        results += 1;
        let start = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "weir.window.start"))
            .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse::<i64>().ok());
        let value: serde_json::Value =
            serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or_default();
        let (Some(start), Some(c), Some(s)) = (
            start,
            value.get("count").and_then(|v| v.as_u64()),
            value.get("sum").and_then(|v| v.as_f64()),
        ) else {
            bad += 1;
            continue;
        };
        if start.rem_euclid(window_ms) != 0 {
            bad += 1;
        }
        if !seen.insert((key, start)) {
            repeats += 1;
            continue;
        }
        count += c;
        sum += s;
    }
    let ok = seen.len() as u64 == expected.windows
        && count == expected.count
        && sum == expected.sum as f64
        && bad == 0;
    println!(
        "window results in {topic}: {results} ({} distinct, {repeats} repeated, {bad} malformed; \
         expected {} windows); count {count} (expected {}), sum {sum} (expected {}): {}",
        seen.len(),
        expected.windows,
        expected.count,
        expected.sum,
        if ok { "correct" } else { "WRONG" }
    );
    if !ok {
        bail!("the window results do not match the backlog");
    }
    Ok(())
}
