//! Reads the document tree into the model, section by section.

mod hot;
mod privacy;
mod schema;
mod security;
mod sinks;
mod stages;
mod test_cases;

use std::collections::BTreeMap;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::formats;
use crate::model::{
    Control, DeadLetter, Delivery, Pipeline, Sample, Sink, Source, StartFrom, Telemetry,
};
use crate::reader::{Table, Value, collect_all};
use crate::report::Report;
use crate::security::Security;
use crate::validate::{Crossrefs, Written};

/// The pipeline in `document`, or `None` when something in it was reported wrong.
pub(crate) fn pipeline(
    document: &Spanned<DeTable<'_>>,
    path: &Path,
    report: &mut Report<'_>,
) -> Option<Pipeline> {
    let mut refs = Crossrefs::default();
    let mut root = Table::root(document);

    let name = root
        .required(report, "name")
        .and_then(|value| value.parsed(report, "name", formats::name));
    let source = required_section(&mut root, report, "source", "table [source]")
        .and_then(|value| source(&value, report, &mut refs));
    let base = path.parent().unwrap_or(Path::new(""));
    let stages = required_section(
        &mut root,
        report,
        "stage",
        "[[stage]] table: a pipeline needs at least one stage",
    )
    .and_then(|value| {
        let pipeline = name.as_deref().unwrap_or("pipeline");
        stages::stages(&value, base, pipeline, report, &mut refs)
    });
    let dead_letter = required_section(&mut root, report, "dead_letter", "table [dead_letter]")
        .and_then(|value| dead_letter(&value, report, &mut refs));
    let sink = root.with_default("sink", Sink::default(), |value| sink(value, report));
    let sinks = root.with_default("sinks", Vec::new(), |value| {
        sinks::sinks(value, base, report, &mut refs)
    });
    let telemetry = root.with_default("telemetry", Telemetry::default(), |value| {
        telemetry(value, report)
    });
    let security = root.with_default("security", Security::default(), |value| {
        security::security(value, base, report)
    });
    let control = root.optional("control", |value| {
        let mut table = value.table(report)?;
        let topic = table
            .required(report, "topic")
            .and_then(|v| v.parsed(report, "topic name", formats::topic));
        table.finish(report);
        Some(Control { topic: topic? })
    });
    let tests = root.with_default("test", Vec::new(), |value| {
        test_cases::test_cases(value, report, &mut refs)
    });
    let privacy = root.optional("privacy", |value| privacy::privacy(value, base, report));
    let privacy = privacy::dead_letters(privacy, refs.dead_letter_redact.as_ref(), report);
    if let (Some(sink), Some(sinks)) = (&sink, &sinks)
        && sink.delivery == Delivery::ExactlyOnce
        && let Some(store) = sinks
            .iter()
            .find(|named| !matches!(named.kind, crate::SinkKind::Kafka { .. }))
        && let Some(value) = root.get("sinks")
    {
        value.error(
            report,
            format_args!(
                "a {} sink cannot take part in `delivery = \"exactly-once\"` Kafka \
                 transactions: use at-least-once delivery (the store writes each record once by \
                 itself)",
                store.kind.name()
            ),
        );
    }
    root.finish(report);
    refs.check(report);

    Some(Pipeline {
        name: name?,
        source: source?,
        stages: stages?,
        dead_letter: dead_letter?,
        sink: sink?,
        sinks: sinks?,
        telemetry: telemetry?,
        security: security?,
        control: control?,
        privacy: privacy?,
        tests: tests?,
        path: path.to_owned(),
    })
}

/// The value under `key`, reporting its absence as `missing required WHAT`.
fn required_section<'a, 'i>(
    root: &mut Table<'a, 'i>,
    report: &mut Report<'_>,
    key: &'static str,
    what: &str,
) -> Option<Value<'a, 'i>> {
    let value = root.get(key);
    if value.is_none() {
        root.missing(report, what);
    }
    value
}

/// The items of an array of tables such as `[[stage]]`.
fn array_of_tables<'a, 'i>(
    value: &Value<'a, 'i>,
    report: &mut Report<'_>,
    key: &str,
) -> Option<Vec<Value<'a, 'i>>> {
    if let DeValue::Table(_) = value.raw() {
        value.error(
            report,
            format_args!(
                "expected an array of tables, found a table (write [[{key}]], not [{key}])"
            ),
        );
        return None;
    }
    value.array(report)
}

/// How messages name item `index` of an array of tables such as `[[stage]]`: by its `name`
/// when it has one, as in `stage "geo"`, else by its index, as in `stage[2]`.
fn item_label(key: &str, item: &Value<'_, '_>, index: usize) -> String {
    match item.raw().get("name").map(Spanned::get_ref) {
        Some(DeValue::String(name)) => format!("{key} {name:?}"),
        _ => format!("{key}[{index}]"),
    }
}

fn source(value: &Value<'_, '_>, report: &mut Report<'_>, refs: &mut Crossrefs) -> Option<Source> {
    let mut table = value.table(report)?;
    let brokers = table
        .required(report, "brokers")
        .and_then(|value| value.parsed(report, "broker list", formats::brokers));
    let topics = table.required(report, "topics").and_then(|value| {
        let topics = value.non_empty_array(report)?.into_iter().map(|item| {
            let topic = item.parsed(report, "topic name", formats::topic)?;
            if refs.source_topics.iter().any(|seen| seen.value == topic) {
                item.error(report, format_args!("{topic:?} is listed twice"));
                return None;
            }
            refs.source_topics.push(Written::new(&item, topic.clone()));
            Some(topic)
        });
        collect_all(topics)
    });
    let group = table
        .required(report, "group")
        .and_then(|value| value.non_empty_string(report));
    let start = table.with_default("start", StartFrom::default(), |value| {
        value.choice(
            report,
            &[
                ("earliest", StartFrom::Earliest),
                ("latest", StartFrom::Latest),
            ],
        )
    });
    let batch = table.get("batch_size");
    let batch_size = batch
        .as_ref()
        .map_or(Some(Source::DEFAULT_BATCH_SIZE), |value| {
            value.integer_in(report, 1..=Source::MAX_BATCH_SIZE)
        });
    let queue = table.get("queue_capacity");
    let queue_capacity = queue
        .as_ref()
        .map_or(Some(Source::DEFAULT_QUEUE_CAPACITY), |value| {
            value.integer_in(report, 1..)
        });
    let commit_interval = table.with_default(
        "commit_interval",
        Source::DEFAULT_COMMIT_INTERVAL,
        |value| value.positive_duration(report),
    );
    let drain_timeout =
        table.with_default("drain_timeout", Source::DEFAULT_DRAIN_TIMEOUT, |value| {
            value.duration(report)
        });
    let instance_id = match table.get("instance_id") {
        Some(value) => value
            .parsed(report, "instance id", formats::instance_id)
            .map(Some),
        None => Some(None),
    };
    // Absent: None; present: Some(the value, or None when it is refused).
    let lane_workers = table
        .get("lane_workers")
        .map(|value| value.integer_in(report, 1..=Source::MAX_LANE_WORKERS));
    let kafka = kafka_properties(&mut table, report, source_refusal);
    table.finish(report);

    let (batch_size, queue_capacity) = (batch_size?, queue_capacity?);
    if queue_capacity < batch_size {
        if let Some(queue) = &queue {
            queue.error(
                report,
                format_args!("must be at least batch_size ({batch_size}), got {queue_capacity}"),
            );
        } else if let Some(batch) = &batch {
            batch.error(
                report,
                format_args!(
                    "{batch_size} is more than queue_capacity (default {queue_capacity}): \
                     raise queue_capacity too"
                ),
            );
        }
    }

    Some(Source {
        brokers: brokers?,
        topics: topics?,
        group: group?,
        start: start?,
        batch_size,
        queue_capacity,
        commit_interval: commit_interval?,
        drain_timeout: drain_timeout?,
        lane_workers: match lane_workers {
            Some(workers) => Some(workers?),
            None => None,
        },
        kafka: kafka?,
        instance_id: instance_id?,
    })
}

/// The `kafka` table of librdkafka properties. `refusal` says why a property (with its value) is
/// not the pipeline's to set, if it is not.
fn kafka_properties(
    table: &mut Table<'_, '_>,
    report: &mut Report<'_>,
    refusal: fn(&str, &str) -> Option<&'static str>,
) -> Option<BTreeMap<String, String>> {
    table.with_default("kafka", BTreeMap::new(), |value| {
        let properties = value.string_table(report, true)?;
        let entries = value.table(report)?;
        let mut refused = false;
        for ((key, text), (_, entry)) in properties.iter().zip(entries.entries()) {
            if secret_property(key) {
                // Not even the value is quoted: it may be the secret itself.
                entry.error(
                    report,
                    "is refused: secrets are never written in the pipeline file; set them in \
                     [security] from the environment or a file",
                );
                refused = true;
            } else if let Some(why) = security_refusal(key).or_else(|| refusal(key, text)) {
                entry.error(report, format_args!("{text:?} is refused: {why}"));
                refused = true;
            }
        }
        (!refused).then(|| properties.into_iter().collect())
    })
}

/// Whether a librdkafka property (or a misspelling of one) may hold a secret.
fn secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "pass",
        "pasw",
        "secret",
        "ssl.key.pem",
        "sasl.oauthbearer.config",
    ]
    .iter()
    .any(|part| key.contains(part))
}

/// Why a security property may not be set in a `kafka` table: `[security]` sets it for every
/// client of the pipeline at once.
fn security_refusal(key: &str) -> Option<&'static str> {
    matches!(
        key,
        "security.protocol"
            | "sasl.mechanism"
            | "sasl.mechanisms"
            | "sasl.username"
            | "ssl.ca.location"
            | "ssl.certificate.location"
            | "ssl.key.location"
            | "ssl.endpoint.identification.algorithm"
    )
    .then_some(
        "set it in [security], which applies to every client of the pipeline (consumer, \
         producers, control and changelog)",
    )
}

/// Why a consumer property may not be set by the pipeline: Weir sets it, or Weir's lanes depend
/// on its default.
fn source_refusal(key: &str, value: &str) -> Option<&'static str> {
    Some(match key {
        "bootstrap.servers" => "set `brokers` (or pass --brokers) instead",
        "group.id" => "set `group` instead",
        "group.instance.id" => "set `instance_id` (or pass --instance-id) instead",
        "enable.auto.commit" | "enable.auto.offset.store" => {
            "Weir commits offsets itself, and only once every output of a record is acknowledged"
        }
        "enable.partition.eof" => "Weir's partition lanes take no end-of-partition events",
        "group.protocol" if value != "classic" => {
            "only the classic group protocol is supported; for incremental rebalancing, set \
             \"partition.assignment.strategy\" = \"cooperative-sticky\""
        }
        _ => return None,
    })
}

/// Why a producer property may not be set by the pipeline: Weir sets it, or the delivery
/// guarantee depends on it.
fn sink_refusal(key: &str, value: &str) -> Option<&'static str> {
    Some(match key {
        "bootstrap.servers" => "set `source.brokers` (or pass --brokers) instead",
        "enable.idempotence" => {
            "Weir's producer is always idempotent, so a retry never duplicates an output"
        }
        "acks" if !matches!(value, "all" | "-1") => {
            "an output counts as delivered only once every in-sync replica has it (`all`)"
        }
        "transactional.id" => "Weir sets one per partition with `delivery = \"exactly-once\"`",
        _ => return None,
    })
}

fn dead_letter(
    value: &Value<'_, '_>,
    report: &mut Report<'_>,
    refs: &mut Crossrefs,
) -> Option<DeadLetter> {
    let mut table = value.table(report)?;
    let topic = table.optional("topic", |value| {
        let topic = value.parsed(report, "topic name", formats::topic)?;
        refs.dead_letter = Some(Written::new(value, topic.clone()));
        Some(topic)
    });
    let sink = table.optional("sink", |value| {
        let name = value.parsed(report, "sink name", formats::name)?;
        refs.dead_letter_sink = Some(Written::new(value, name.clone()));
        Some(name)
    });
    if let Some(value) = table.get("redact")
        && let Some(redact) = value.bool(report)
    {
        refs.dead_letter_redact = Some(Written::new(&value, redact));
    }
    let letter = match (topic?, sink?) {
        (Some(topic), None) => Some(DeadLetter::Topic(topic)),
        (None, Some(sink)) => Some(DeadLetter::Sink(sink)),
        (None, None) => {
            table.missing(
                report,
                "key `topic` (or `sink`, naming a [sinks.<name>] table)",
            );
            None
        }
        (Some(_), Some(_)) => {
            table.error(
                report,
                "has both `topic` and `sink`: dead letters go to one place",
            );
            None
        }
    };
    table.finish(report);
    letter
}

fn sink(value: &Value<'_, '_>, report: &mut Report<'_>) -> Option<Sink> {
    let mut table = value.table(report)?;
    let kafka = kafka_properties(&mut table, report, sink_refusal);
    let delivery = table.with_default("delivery", Delivery::default(), |value| {
        value.choice(
            report,
            &[
                ("at-least-once", Delivery::AtLeastOnce),
                ("exactly-once", Delivery::ExactlyOnce),
            ],
        )
    });
    table.finish(report);
    Some(Sink {
        kafka: kafka?,
        delivery: delivery?,
    })
}

fn telemetry(value: &Value<'_, '_>, report: &mut Report<'_>) -> Option<Telemetry> {
    let mut table = value.table(report)?;
    let defaults = Telemetry::default();
    let listen = table.with_default("listen", defaults.listen, |value| {
        value.parsed(report, "listen address", |text| {
            text.parse()
                .map_err(|_| "expected an IP address and a port, such as \"0.0.0.0:9464\"")
        })
    });
    let otlp = table.optional("otlp", |value| {
        value.parsed(report, "URL", formats::http_url)
    });
    let sample = table.with_default("sample", defaults.sample, |value| sample(value, report));
    let export_queue = table.with_default("export_queue", defaults.export_queue, |value| {
        value.integer_in(report, 16..=1_048_576)
    });
    let export_timeout = table.with_default("export_timeout", defaults.export_timeout, |value| {
        let d = value.duration(report)?;
        if d.is_zero() {
            value.error(report, "must be more than zero");
            return None;
        }
        Some(d)
    });
    table.finish(report);
    Some(Telemetry {
        listen: listen?,
        otlp: otlp?,
        sample: sample?,
        export_queue: export_queue?,
        export_timeout: export_timeout?,
    })
}

fn sample(value: &Value<'_, '_>, report: &mut Report<'_>) -> Option<Sample> {
    let defaults = Sample::default();
    let mut table = value.table(report)?;
    let ratio = table.with_default("ratio", defaults.ratio, |value| {
        let ratio = value.float(report)?;
        if !(0.0..=1.0).contains(&ratio) {
            value.error(report, format_args!("must be between 0 and 1, got {ratio}"));
            return None;
        }
        Some(ratio)
    });
    let keep_errors = table.with_default("keep_errors", defaults.keep_errors, |value| {
        value.bool(report)
    });
    let slow = table.with_default("slow", defaults.slow, |value| value.duration(report));
    let keep_sampled_parents = table.with_default(
        "keep_sampled_parents",
        defaults.keep_sampled_parents,
        |value| value.bool(report),
    );
    table.finish(report);
    Some(Sample {
        ratio: ratio?,
        keep_errors: keep_errors?,
        slow: slow?,
        keep_sampled_parents: keep_sampled_parents?,
    })
}
