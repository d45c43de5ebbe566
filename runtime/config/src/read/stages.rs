//! `[[stage]]` tables.

use std::path::Path;

use crate::formats;
use crate::model::{Canary, CanaryCohort, Limits, Partitioning, Rollback, Stage, StageKind};
use crate::reader::{Value, collect_all};
use crate::report::{Place, Report};
use crate::validate::{Crossrefs, StageRefs, Written};

use super::{array_of_tables, item_label};

pub(super) fn stages(
    value: &Value<'_, '_>,
    base: &Path,
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
        .map(|(index, item)| stage(item, index, base, report, refs));
    collect_all(stages)
}

fn stage(
    value: &Value<'_, '_>,
    index: usize,
    base: &Path,
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
    let partitioning = table.with_default("partitioning", Partitioning::default(), |value| {
        value.choice(
            report,
            &[("source", Partitioning::Source), ("key", Partitioning::Key)],
        )
    });
    let canary = table.optional("canary", |value| canary(value, base, report));
    let span = table.span();
    table.finish(report);

    refs.stages.push(StageRefs {
        place: Place::owner(label),
        span: span.clone(),
        name: name.clone(),
        output: output.clone().flatten(),
        // Absent is `Some(None)`; wrong is `None`, already reported.
        has_output: !matches!(output, Some(None)),
    });
    let (module, module_location) = module?;
    Some(Stage {
        name: name?.value,
        kind: kind?,
        module,
        config: config?,
        limits: limits?,
        output: output?.map(|output| output.value),
        partitioning: partitioning?,
        canary: canary?,
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
        "aggregate" => {
            value.owner_error(
                report,
                "kind \"aggregate\" is not supported by this version of weir yet \
                 (supported: enrich)",
            );
            None
        }
        other => {
            value.owner_error(
                report,
                format_args!("unknown kind {other:?} (supported: enrich)"),
            );
            None
        }
    }
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
    table.finish(report);
    Some(Limits {
        memory: memory?,
        timeout: timeout?,
        recycle_after: recycle_after?,
    })
}
