//! `[[stage]]` tables.

use std::path::Path;

use crate::formats;
use crate::model::{
    Aggregate, Canary, CanaryCohort, LatePolicy, Limits, OnFull, Partitioning, Rollback, Stage,
    StageKind, WindowKind,
};
use crate::reader::{Value, collect_all};
use crate::report::{Place, Report};
use crate::validate::{Crossrefs, StageRefs, Written};

use super::{array_of_tables, item_label};

pub(super) fn stages(
    value: &Value<'_, '_>,
    base: &Path,
    pipeline: &str,
    report: &mut Report<'_>,
    refs: &mut Crossrefs,
) -> Option<Vec<Stage>> {
    let items = array_of_tables(value, report, "stage")?;
    if items.is_empty() {
        value.error(report, "a pipeline needs at least one stage");
        return None;
    }
    let stages = items
        .iter()
        .enumerate()
        .map(|(index, item)| stage(item, index, base, pipeline, report, refs));
    let stages = collect_all(stages)?;
    let last = stages.len() - 1;
    for (i, stage) in stages.iter().enumerate() {
        if stage.kind == StageKind::Aggregate && i != last {
            let item = &items[i];
            item.owner_error(
                report,
                format_args!(
                    "stage {:?}: an aggregate stage must be the last stage of its pipeline (its \
                     results are window results, not records derived from the input); read its \
                     output topic from a second pipeline to process them further",
                    stage.name
                ),
            );
            return None;
        }
    }
    Some(stages)
}

fn stage(
    value: &Value<'_, '_>,
    index: usize,
    base: &Path,
    pipeline: &str,
    report: &mut Report<'_>,
    refs: &mut Crossrefs,
) -> Option<Stage> {
    let label = item_label("stage", value, index);
    let mut table = value.table(report)?.owned_by(label.clone());

    let name = table.required(report, "name").and_then(|value| {
        let name = value.parsed(report, "stage name", formats::name)?;
        Some(Written::new(&value, name))
    });
    let kind = table.with_default("kind", StageKind::default(), |value| kind(value, report));
    let module = table.required(report, "module").and_then(|value| {
        let module = value.non_empty_string(report)?;
        Some((base.join(module), report.location(value.span().start)))
    });
    let config = table.with_default("config", serde_json::json!({}), |value| {
        value.json_object(report)
    });
    let limits = table.with_default("limits", Limits::default(), |value| limits(value, report));
    let output = table.optional("output", |value| {
        let topic = value.parsed(report, "topic name", formats::topic)?;
        Some(Written::new(value, topic))
    });
    let sink = table.optional("sink", |value| {
        let name = value.parsed(report, "sink name", formats::name)?;
        Some(Written::new(value, name))
    });
    if let (Some(Some(_)), Some(Some(sink))) = (&output, &sink) {
        report.error(
            &sink.span,
            &sink.place,
            "a stage has an `output` topic or a `sink`, not both",
        );
    }
    let partitioning = table.with_default("partitioning", Partitioning::default(), |value| {
        value.choice(
            report,
            &[("source", Partitioning::Source), ("key", Partitioning::Key)],
        )
    });
    let canary = table.optional("canary", |value| canary(value, base, report));
    let input_schema = table.optional("input_schema", |v| super::schema::gate(v, base, report));
    let output_schema = table.optional("output_schema", |v| super::schema::gate(v, base, report));
    if kind == Some(StageKind::Aggregate) {
        for key in ["input_schema", "output_schema"] {
            if let Some(value) = table.get(key) {
                value.owner_error(report, "schema gates are for enrich stages");
            }
        }
    }
    let stage_name = name.as_ref().map_or("stage", |n| n.value.as_str());
    let aggregate = aggregate(&mut table, kind, pipeline, stage_name, report);
    if kind == Some(StageKind::Aggregate)
        && let Some(Some(_)) = &canary
    {
        table.error(
            report,
            "an aggregate stage cannot have a [stage.canary] yet: roll out a new aggregate \
             module with a reload",
        );
    }
    let span = table.span();
    table.finish(report);

    refs.stages.push(StageRefs {
        place: Place::owner(label),
        span: span.clone(),
        name: name.clone(),
        output: output.clone().flatten(),
        sink: sink.clone().flatten(),
        // Absent is `Some(None)`; wrong is `None`, already reported.
        has_output: !matches!(output, Some(None)) || !matches!(sink, Some(None)),
        aggregate: kind == Some(StageKind::Aggregate),
    });
    let (module, module_location) = module?;
    Some(Stage {
        name: name?.value,
        kind: kind?,
        module,
        config: config?,
        limits: limits?,
        output: output?.map(|output| output.value),
        sink: sink?.map(|sink| sink.value),
        partitioning: partitioning?,
        canary: canary?,
        input_schema: input_schema?,
        output_schema: output_schema?,
        aggregate: aggregate?,
        line: report.location(span.start).line,
        module_location,
    })
}

fn canary(value: &Value<'_, '_>, base: &Path, report: &mut Report<'_>) -> Option<Canary> {
    let mut table = value.table(report)?;
    let module = table
        .required(report, "module")
        .and_then(|value| Some(base.join(value.non_empty_string(report)?)));
    let config = table.optional("config", |value| value.json_object(report));
    let partitions = table.optional("partitions", |value| {
        let items = value.array(report)?;
        if items.is_empty() {
            value.error(report, "needs at least one partition");
            return None;
        }
        collect_all(items.iter().map(|v| v.integer_in(report, 0..=i32::MAX)))
    });
    let share = table.optional("share", |value| {
        let share = value.float(report)?;
        if !(share > 0.0 && share < 1.0) {
            value.error(
                report,
                format_args!("must be more than 0 and less than 1, got {share}"),
            );
            return None;
        }
        Some(share)
    });
    let rollback = table.with_default("rollback", Rollback::default(), |value| {
        rollback(value, report)
    });
    let promote_after = table.optional("promote_after", |value| value.positive_duration(report));
    let rescue = table.with_default("rescue", true, |value| value.bool(report));
    let cohort = match (partitions, share) {
        (Some(Some(p)), Some(None)) => Some(CanaryCohort::Partitions(p)),
        (Some(None), Some(Some(s))) => Some(CanaryCohort::Share(s)),
        (Some(Some(_)), Some(Some(_))) => {
            table.error(report, "give `partitions` or `share`, not both");
            None
        }
        (Some(None), Some(None)) => {
            table.error(
                report,
                "say which partitions run the canary: `partitions = [0]` or `share = 0.25`",
            );
            None
        }
        _ => None,
    };
    table.finish(report);
    Some(Canary {
        module: module?,
        config: config?,
        cohort: cohort?,
        rollback: rollback?,
        promote_after: promote_after?,
        rescue: rescue?,
    })
}

fn rollback(value: &Value<'_, '_>, report: &mut Report<'_>) -> Option<Rollback> {
    let defaults = Rollback::default();
    let mut table = value.table(report)?;
    let max_error_rate = table.with_default("max_error_rate", defaults.max_error_rate, |value| {
        let rate = value.float(report)?;
        if !(0.0..=1.0).contains(&rate) {
            value.error(report, format_args!("must be between 0 and 1, got {rate}"));
            return None;
        }
        Some(rate)
    });
    let max_p99 = table.optional("max_p99", |value| value.positive_duration(report));
    let min_records = table.with_default("min_records", defaults.min_records, |value| {
        value.integer_in(report, 1..)
    });
    let window = table.with_default("window", defaults.window, |value| {
        value.positive_duration(report)
    });
    table.finish(report);
    Some(Rollback {
        max_error_rate: max_error_rate?,
        max_p99: max_p99?,
        min_records: min_records?,
        window: window?,
    })
}

fn kind(value: &Value<'_, '_>, report: &mut Report<'_>) -> Option<StageKind> {
    match value.str(report)? {
        "enrich" => Some(StageKind::Enrich),
        "aggregate" => Some(StageKind::Aggregate),
        other => {
            value.owner_error(
                report,
                format_args!("unknown kind {other:?} (supported: enrich, aggregate)"),
            );
            None
        }
    }
}

/// The keys only aggregate stages have.
const AGGREGATE_KEYS: [&str; 9] = [
    "key",
    "time",
    "window",
    "lateness",
    "late",
    "idle_timeout",
    "max_windows",
    "on_full",
    "changelog",
];

/// The aggregate keys of a stage table: `Some(None)` for an enrich stage (which must have none
/// of them), `None` when something is wrong.
fn aggregate(
    table: &mut crate::reader::Table<'_, '_>,
    kind: Option<StageKind>,
    pipeline: &str,
    stage: &str,
    report: &mut Report<'_>,
) -> Option<Option<Aggregate>> {
    match kind {
        Some(StageKind::Aggregate) => {}
        Some(StageKind::Enrich) => {
            let mut ok = true;
            for key in AGGREGATE_KEYS {
                if let Some(value) = table.get(key) {
                    value.error(
                        report,
                        format_args!(
                            "`{key}` applies to aggregate stages only (add kind = \"aggregate\")"
                        ),
                    );
                    ok = false;
                }
            }
            return ok.then_some(None);
        }
        None => {
            // The kind is wrong (reported): take the keys so they are not also "unknown".
            for key in AGGREGATE_KEYS {
                table.get(key);
            }
            return None;
        }
    }
    let key = table.optional("key", |v| json_pointer(v, report));
    let time = table.optional("time", |v| json_pointer(v, report));
    let window = match table.get("window") {
        Some(value) => window(&value, report),
        None => {
            table.missing(report, "key `window` of an aggregate stage");
            None
        }
    };
    let lateness = table.with_default("lateness", std::time::Duration::ZERO, |value| {
        value.duration(report)
    });
    let late = table.with_default("late", LatePolicy::default(), |value| {
        value.choice(
            report,
            &[
                ("dead-letter", LatePolicy::DeadLetter),
                ("drop", LatePolicy::Drop),
            ],
        )
    });
    let idle_timeout = table.with_default("idle_timeout", Aggregate::DEFAULT_IDLE_TIMEOUT, |v| {
        v.positive_duration(report)
    });
    let max_windows = table.with_default("max_windows", Aggregate::DEFAULT_MAX_WINDOWS, |v| {
        v.integer_in(report, 1..=100_000_000)
    });
    let on_full = table.with_default("on_full", OnFull::default(), |value| {
        value.choice(
            report,
            &[
                ("fail", OnFull::Fail),
                ("evict-oldest", OnFull::EvictOldest),
            ],
        )
    });
    let changelog = table.with_default("changelog", format!("{pipeline}.{stage}.changelog"), |v| {
        v.parsed(report, "topic name", formats::topic)
    });
    Some(Some(Aggregate {
        key: key?,
        time: time?,
        window: window?,
        lateness: lateness?,
        late: late?,
        idle_timeout: idle_timeout?,
        max_windows: max_windows?,
        on_full: on_full?,
        changelog: changelog?,
    }))
}

fn json_pointer(value: &Value<'_, '_>, report: &mut Report<'_>) -> Option<String> {
    value.parsed(report, "JSON pointer", formats::json_pointer)
}

fn window(value: &Value<'_, '_>, report: &mut Report<'_>) -> Option<WindowKind> {
    let mut table = value.table(report)?;
    let tumbling = table.optional("tumbling", |v| window_duration(v, report));
    let hopping = table.optional("hopping", |v| {
        let mut t = v.table(report)?;
        let size = t
            .required(report, "size")
            .and_then(|v| window_duration(&v, report));
        let every = t
            .required(report, "every")
            .and_then(|v| window_duration(&v, report));
        t.finish(report);
        let (size, every) = (size?, every?);
        if every > size {
            v.error(
                report,
                "`every` must not be more than `size` (records would fall between windows)",
            );
            return None;
        }
        Some(WindowKind::Hopping { size, every })
    });
    let session = table.optional("session", |v| {
        let mut t = v.table(report)?;
        let gap = t
            .required(report, "gap")
            .and_then(|v| window_duration(&v, report));
        t.finish(report);
        Some(WindowKind::Session { gap: gap? })
    });
    let given: Vec<WindowKind> = [tumbling?.map(WindowKind::Tumbling), hopping?, session?]
        .into_iter()
        .flatten()
        .collect();
    let kind = match given[..] {
        [kind] => Some(kind),
        [] => {
            table.error(
                report,
                "say which window: { tumbling = \"10s\" }, \
                 { hopping = { size = \"1m\", every = \"10s\" } } or { session = { gap = \"30s\" } }",
            );
            None
        }
        _ => {
            table.error(report, "give one of `tumbling`, `hopping` and `session`");
            None
        }
    };
    table.finish(report);
    kind
}

/// A window duration: positive and whole milliseconds.
fn window_duration(value: &Value<'_, '_>, report: &mut Report<'_>) -> Option<std::time::Duration> {
    let d = value.positive_duration(report)?;
    if d.subsec_nanos() % 1_000_000 != 0 {
        value.error(report, "must be whole milliseconds");
        return None;
    }
    Some(d)
}

fn limits(value: &Value<'_, '_>, report: &mut Report<'_>) -> Option<Limits> {
    let defaults = Limits::default();
    let mut table = value.table(report)?;
    let memory = table.with_default("memory", defaults.memory, |value| {
        let memory = value.size(report)?;
        if !(Limits::MIN_MEMORY..=Limits::MAX_MEMORY).contains(&memory) {
            value.error(report, "must be between 1MiB and 4GiB");
            return None;
        }
        Some(memory)
    });
    let timeout = table.with_default("timeout", defaults.timeout, |value| {
        value.positive_duration(report)
    });
    let recycle_after = table.optional("recycle_after", |value| value.integer_in(report, 1..));
    let recycle_memory = table.optional("recycle_memory", |value| {
        let size = value.size(report)?;
        if size < Limits::MIN_MEMORY {
            value.error(report, "must be at least 1MiB");
            return None;
        }
        if memory.is_some_and(|memory| size >= memory) {
            value.error(
                report,
                "must be less than `memory`, which the instance cannot outgrow",
            );
            return None;
        }
        Some(size)
    });
    let fuel = table.optional("fuel", |value| value.integer_in(report, 1..));
    table.finish(report);
    Some(Limits {
        memory: memory?,
        timeout: timeout?,
        recycle_after: recycle_after?,
        recycle_memory: recycle_memory?,
        fuel: fuel?,
    })
}
