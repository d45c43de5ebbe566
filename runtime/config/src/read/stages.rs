//! `[[stage]]` tables.

use std::path::Path;

use crate::formats;
use crate::model::{Limits, Partitioning, Stage, StageKind};
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
        line: report.location(span.start).line,
        module_location,
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
