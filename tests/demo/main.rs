//! `weir-demo`: the client side of `make demo`. Produces sample clicks (with a few bots and a few
//! malformed records), then reads what the pipeline wrote and where the dead letters went.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

#[derive(Debug, Parser)]
#[command(about = "Produce sample clicks and report what a Weir pipeline made of them")]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(long, env = "WEIR_BROKERS")]
    brokers: String,
    /// Topic to produce clicks to.
    #[arg(long, default_value = "clicks")]
    input: String,
    /// Topic the pipeline writes enriched clicks to.
    #[arg(long, default_value = "clicks.enriched")]
    output: String,
    /// The pipeline's dead-letter topic.
    #[arg(long, default_value = "clicks.dlq")]
    dead_letter: String,
    /// How many clicks to produce.
    #[arg(long, default_value_t = 20_000)]
    count: usize,
    /// Produce at most this many clicks per second (0: as fast as the producer goes).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// How long to wait for the pipeline's results.
    #[arg(long, default_value = "120")]
    timeout_secs: u64,
    /// `produce` the clicks, `report` what the pipeline made of them, or `both`; `one`
    /// produces a single click with `--traceparent`, for `weir tap --follow-trace` to follow.
    #[arg(long, value_enum, default_value_t = Phase::Both)]
    phase: Phase,
    /// The `traceparent` header of the click of `--phase one`.
    #[arg(long, required_if_eq("phase", "one"))]
    traceparent: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Phase {
    Produce,
    Report,
    Both,
    One,
}

/// What a click is: a normal one, a bot (the filter drops it), or garbage (dead-lettered).
fn click(i: usize) -> (Vec<u8>, Kind) {
    const SECTIONS: [&str; 4] = ["products", "cart", "search", "account"];
    if i % 200 == 7 {
        return (
            format!("<html>not a click {i}</html>").into_bytes(),
            Kind::Malformed,
        );
    }
    let (ua, kind) = if i % 50 == 3 {
        ("Googlebot/2.1", Kind::Bot)
    } else {
        ("Mozilla/5.0", Kind::Normal)
    };
    let value = format!(
        r#"{{"user":"u{}","url":"https://shop.example/{}/{}?ref=mail","ts":{},"ua":"{ua}"}}"#,
        i % 997,
        SECTIONS[i % SECTIONS.len()],
        i,
        1_700_000_000_000u64 + i as u64 * 37
    );
    (value.into_bytes(), kind)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    Bot,
    Malformed,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.phase == Phase::One {
        return produce_one(&args);
    }
    let kinds: Vec<Kind> = (0..args.count).map(|i| click(i).1).collect();
    let expected_out = kinds.iter().filter(|k| **k == Kind::Normal).count();
    let expected_dead = kinds.iter().filter(|k| **k == Kind::Malformed).count();
    if args.phase != Phase::Report {
        let started = Instant::now();
        produce(&args)?;
        println!(
            "produced {} clicks to {} in {:.2}s ({expected_out} normal, {} bots for the filter, \
             {expected_dead} malformed)",
            args.count,
            args.input,
            started.elapsed().as_secs_f64(),
            args.count - expected_out - expected_dead
        );
    }
    if args.phase != Phase::Produce {
        report(&args, expected_out, expected_dead)?;
    }
    Ok(())
}

fn produce(args: &Args) -> Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", if args.rate > 0 { "1" } else { "10" })
        .create()
        .context("cannot create the producer")?;
    let started = Instant::now();
    for i in 0..args.count {
        if args.rate > 0 && i % 16 == 0 {
            // Paced in steps of 16 clicks, so that the rate holds over any stretch of time.
            let due = Duration::from_secs_f64(i as f64 / args.rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let (value, _) = click(i);
        let key = format!("u{}", i % 997);
        let mut r: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&args.input)
            .key(key.as_bytes())
            .payload(&value);
        loop {
            match producer.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    r = back;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(())
}

/// One click, with the `traceparent` of `--traceparent`.
fn produce_one(args: &Args) -> Result<()> {
    use rdkafka::message::{Header, OwnedHeaders};
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .create()
        .context("cannot create the producer")?;
    let (value, _) = click(42);
    let traceparent = args.traceparent.as_deref().unwrap_or_default();
    let headers = OwnedHeaders::new().insert(Header {
        key: "traceparent",
        value: Some(traceparent),
    });
    producer
        .send(
            BaseRecord::to(&args.input)
                .key("u42")
                .payload(&value)
                .headers(headers),
        )
        .map_err(|(e, _)| e)?;
    producer.flush(Duration::from_secs(30))?;
    println!(
        "produced one click to {} with traceparent {traceparent}",
        args.input
    );
    Ok(())
}

/// Reads the output and dead-letter topics until every expected record arrived.
fn report(args: &Args, expected_out: usize, expected_dead: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let out = reader(&args.brokers, &args.output)?;
    let dead = reader(&args.brokers, &args.dead_letter)?;
    let (mut n_out, mut n_dead) = (0usize, 0usize);
    let mut samples = Vec::new();
    let mut reasons: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let (mut first, mut last) = (None, Instant::now());
    while (n_out < expected_out || n_dead < expected_dead) && Instant::now() < deadline {
        let mut idle = true;
        while let Some(m) = out.poll(Duration::ZERO) {
            let m = m?;
            idle = false;
            n_out += 1;
            first.get_or_insert_with(Instant::now);
            last = Instant::now();
            if samples.len() < 3 {
                samples.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            }
        }
        while let Some(m) = dead.poll(Duration::ZERO) {
            let m = m?;
            idle = false;
            n_dead += 1;
            let h = |name: &str| -> String {
                m.headers()
                    .and_then(|hs| hs.iter().find(|h| h.key == name).and_then(|h| h.value))
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            let reason = format!(
                "stage={} kind={} code={}",
                h("weir.stage"),
                h("weir.error.kind"),
                h("weir.error.code")
            );
            let e = reasons
                .entry(reason)
                .or_insert((0, h("weir.error.message")));
            e.0 += 1;
        }
        if idle {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    println!(
        "\n{n_out} enriched clicks in {} (expected {expected_out}); for example:",
        args.output
    );
    for s in &samples {
        println!("  {s}");
    }
    println!(
        "\n{n_dead} dead letters in {} (expected {expected_dead}):",
        args.dead_letter
    );
    for (reason, (n, message)) in &reasons {
        println!("  {n:>6} × {reason}\n         e.g. {message}");
    }
    if let Some(first) = first {
        let secs = last.duration_since(first).as_secs_f64().max(1e-3);
        println!(
            "\nthroughput: {n_out} outputs over {secs:.2}s between the first and the last \
             = {:.0} records/s",
            n_out as f64 / secs
        );
    }
    if n_out != expected_out || n_dead != expected_dead {
        bail!("the pipeline's results are incomplete");
    }
    Ok(())
}

fn reader(brokers: &str, topic: &str) -> Result<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("weir-demo-reader-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .create()?;
    let md = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    Ok(consumer)
}
