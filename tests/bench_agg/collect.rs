//! `collect`: the output side of `deploy/local/bench-kafka.sh`. Reads a topic from its beginning
//! (every partition, no group) while a contender writes it, until `--expect` records arrived, then
//! for `--grace` more (so that duplicates show). It prints:
//!
//! - when the first and the last record arrived and the rate between them (the contender's steady
//!   throughput when the topic is its output and its input was a backlog);
//! - p50 and p99 of arrival time minus record timestamp (every contender keeps its input's
//!   timestamp, the producer's create time, so this is end-to-end latency when the input was
//!   produced at a steady rate while the contender ran), leaving out the first `--latency-skip`
//!   fraction of the records in arrival order;
//! - digests that do not depend on order: of every (key, value); with `--check clicks` or
//!   `enrich`, also of the `url` of every value that is a JSON object with a string `url` (a
//!   click), and their count; with `--check enrich`, how many clicks lack a field
//!   `examples-wasm/json-enrich` derives or have it wrong. The script compares the output's
//!   digests with the input's.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Check {
    /// The digest of every (key, value) only: no JSON parsing, so that the collector keeps up.
    None,
    /// Also count the clicks and digest their URLs.
    Clicks,
    /// Also check that every click carries the fields json-enrich derives from it.
    Enrich,
}

fn hash<T: Hash>(t: T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

pub fn collect(
    brokers: &str,
    topic: &str,
    expect: u64,
    check: Check,
    grace: Duration,
    timeout: Duration,
    latency_skip: f64,
) -> Result<()> {
    let started = Instant::now();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("weir-bench-collect-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..super::partition_count(brokers, topic)? {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let (mut n, mut clicks, mut bad, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    let (mut same, mut urls) = (0u64, 0u64);
    let mut latencies = Vec::with_capacity(expect as usize);
    let (mut first, mut last) = (None::<f64>, 0.0);
    let mut done_at = None;
    loop {
        let now = Instant::now();
        match done_at {
            Some(t) if now.duration_since(t) >= grace => break,
            None if now.duration_since(started) >= timeout => break,
            _ => {}
        }
        let Some(m) = consumer.poll(Duration::from_millis(50)) else {
            continue;
        };
        let m = m?;
        let at = started.elapsed().as_secs_f64();
        first.get_or_insert(at);
        last = at;
        n += 1;
        if n >= expect && done_at.is_none() {
            done_at = Some(Instant::now());
        }
        if let Some(ts) = m.timestamp().to_millis() {
            let wall = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
            latencies.push(wall - ts);
        }
        let value = m.payload().unwrap_or_default();
        bytes += value.len() as u64;
        same = same.wrapping_add(hash((m.key().unwrap_or_default(), value)));
        if check == Check::None {
            continue;
        }
        if let Ok(Value::Object(click)) = serde_json::from_slice::<Value>(value)
            && let Some(Value::String(url)) = click.get("url")
        {
            clicks += 1;
            urls = urls.wrapping_add(hash(url.as_str()));
            if check == Check::Enrich && !enriched(&click, url) {
                bad += 1;
            }
        }
    }
    let first = first.unwrap_or(0.0);
    let rate = n as f64 / (last - first).max(1e-3);
    println!(
        "collected {n} records from {topic} (expected {expect}): first at {first:.3} s, last at \
         {last:.3} s, {rate:.0} records/s"
    );
    // The first records may have waited for the contender to start.
    latencies.drain(..(latencies.len() as f64 * latency_skip) as usize);
    latencies.sort_unstable();
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(-1)
    };
    println!(
        "latency ms: p50 {} p99 {} max {}",
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "digest: records {n} all {same:016x} clicks {clicks} urls {urls:016x} not-enriched {bad} \
         value-bytes {:.0}",
        bytes as f64 / n.max(1) as f64
    );
    if n < expect {
        bail!("{topic}: {n} records, expected {expect}");
    }
    Ok(())
}

/// Whether a click carries the fields json-enrich derives from its `url` and `ts`, right.
fn enriched(click: &Map<String, Value>, url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = rest[..end]
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let rest = &rest[end..];
    let path_end = rest.find(['?', '#']).unwrap_or(rest.len());
    let path = if path_end == 0 {
        "/"
    } else {
        &rest[..path_end]
    };
    let section = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    let query = rest[path_end..].strip_prefix('?').unwrap_or_default();
    let query = query.split('#').next().unwrap_or_default();
    let str_is = |k: &str, v: &str| click.get(k).and_then(Value::as_str) == Some(v);
    let mut ok = str_is("domain", &host) && str_is("path", path) && str_is("section", section);
    // The benchmark's clicks carry plain query values: no percent-decoding needed to compare.
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "ref" || k.starts_with("utm_") {
            ok &= str_is(k, v);
        }
    }
    if let Some(ts) = click.get("ts").and_then(Value::as_i64) {
        ok &= click.get("hour").and_then(Value::as_i64) == Some(ts.div_euclid(3_600_000) % 24);
    }
    ok
}
