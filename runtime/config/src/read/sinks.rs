//! `[sinks.<name>]` tables.

use std::path::Path;

use crate::formats;
use crate::reader::{Value, collect_all};
use crate::report::Report;
use crate::store::{
    Column, ColumnType, Compression, NamedSink, PROVENANCE_COLUMNS, ParquetSink, PartitionKey,
    SinkKind,
};
use crate::validate::{Crossrefs, SinkRefs, Written};

/// The sinks of the `[sinks]` table, in file order.
pub(super) fn sinks(
    value: &Value<'_, '_>,
    base: &Path,
    report: &mut Report<'_>,
    refs: &mut Crossrefs,
) -> Option<Vec<NamedSink>> {
    let table = value.table(report)?;
    let sinks = table.entries().map(|(name, item)| {
        let named = formats::name(name).map_err(|error| {
            item.owner_error(report, format_args!("invalid sink name {name:?}: {error}"));
        });
        let sink = sink(&item, base, report);
        let line = report.location(item.span().start).line;
        refs.sinks.push(SinkRefs {
            name: name.to_owned(),
            topic: match &sink {
                Some(SinkKind::Kafka { topic }) => Some(Written::new(&item, topic.clone())),
                _ => None,
            },
            parquet: matches!(sink, Some(SinkKind::Parquet(_))),
        });
        named.ok()?;
        Some(NamedSink {
            name: name.to_owned(),
            kind: sink?,
            line,
        })
    });
    collect_all(sinks)
}

fn sink(value: &Value<'_, '_>, base: &Path, report: &mut Report<'_>) -> Option<SinkKind> {
    let mut table = value.table(report)?;
    let kind = table
        .required(report, "kind")
        .and_then(|kind| kind.choice(report, &[("kafka", false), ("parquet", true)]));
    let sink = match kind? {
        false => {
            let topic = table
                .required(report, "topic")
                .and_then(|v| v.parsed(report, "topic name", formats::topic));
            Some(SinkKind::Kafka { topic: topic? })
        }
        true => parquet(&mut table, base, report).map(SinkKind::Parquet),
    };
    table.finish(report);
    sink
}

fn parquet(
    table: &mut crate::reader::Table<'_, '_>,
    base: &Path,
    report: &mut Report<'_>,
) -> Option<ParquetSink> {
    let path = table
        .required(report, "path")
        .and_then(|value| store_path(&value, base, report));
    let schema = table
        .required(report, "schema")
        .and_then(|value| schema(&value, report));
    let partition_by = table.with_default("partition_by", Vec::new(), |value| {
        let items = value.array(report)?;
        collect_all(items.iter().map(|item| partition_key(item, report)))
    });
    let roll_records =
        table.with_default("roll_records", ParquetSink::DEFAULT_ROLL_RECORDS, |value| {
            value.integer_in(report, 1..)
        });
    let roll_bytes = table.optional("roll_bytes", |value| {
        let bytes = value.size(report)?;
        if bytes == 0 {
            value.error(report, "must be more than zero");
            return None;
        }
        Some(bytes)
    });
    let roll_age = table.with_default("roll_age", ParquetSink::DEFAULT_ROLL_AGE, |value| {
        value.positive_duration(report)
    });
    let compression = table.with_default("compression", Compression::default(), |value| {
        value.choice(
            report,
            &[
                ("zstd", Compression::Zstd),
                ("snappy", Compression::Snappy),
                ("none", Compression::None),
            ],
        )
    });
    let row_group_rows = table.with_default(
        "row_group_rows",
        ParquetSink::DEFAULT_ROW_GROUP_ROWS,
        |value| value.integer_in(report, 1..),
    );
    let (schema, partition_by) = (schema?, partition_by?);
    let mut known = true;
    if let Some(partitions) = table.get("partition_by") {
        for (key, item) in partition_by.iter().zip(partitions.array(report)?) {
            match schema.iter().find(|column| column.name == key.column) {
                None => {
                    item.error(
                        report,
                        format_args!("column {:?} is not in the schema", key.column),
                    );
                    known = false;
                }
                Some(column)
                    if matches!(column.data_type, ColumnType::Float32 | ColumnType::Float64) =>
                {
                    item.error(
                        report,
                        format_args!(
                            "column {:?} is a float: it cannot name a folder",
                            key.column
                        ),
                    );
                    known = false;
                }
                Some(_) => {}
            }
        }
    }
    known.then_some(())?;
    Some(ParquetSink {
        path: path?,
        schema,
        partition_by,
        roll_records: roll_records?,
        roll_bytes: roll_bytes?,
        roll_age: roll_age?,
        compression: compression?,
        row_group_rows: row_group_rows?,
    })
}

/// A local folder, relative to the pipeline file's directory.
fn store_path(
    value: &Value<'_, '_>,
    base: &Path,
    report: &mut Report<'_>,
) -> Option<std::path::PathBuf> {
    let text = value.non_empty_string(report)?;
    if let Some((scheme, _)) = text.split_once("://") {
        let why = if scheme == "s3" {
            "s3:// paths are not supported by this version yet: use a local folder"
        } else {
            "expected a local folder"
        };
        value.error(report, format_args!("{text:?}: {why}"));
        return None;
    }
    Some(base.join(text))
}

fn schema(value: &Value<'_, '_>, report: &mut Report<'_>) -> Option<Vec<Column>> {
    let items = value.non_empty_array(report)?;
    let mut names: Vec<String> = Vec::new();
    let columns = items.iter().map(|item| {
        let column = column(item, report)?;
        if names.contains(&column.name) {
            item.error(
                report,
                format_args!("column {:?} is declared twice", column.name),
            );
            return None;
        }
        names.push(column.name.clone());
        Some(column)
    });
    collect_all(columns)
}

fn column(value: &Value<'_, '_>, report: &mut Report<'_>) -> Option<Column> {
    let mut table = value.table(report)?;
    let name = table.required(report, "name").and_then(|value| {
        let name = value.non_empty_string(report)?;
        if PROVENANCE_COLUMNS.contains(&name.as_str()) || name.starts_with("weir_") {
            value.error(
                report,
                format_args!(
                    "{name:?}: column names starting with `weir_` are Weir's own (provenance \
                     columns: {})",
                    PROVENANCE_COLUMNS.join(", ")
                ),
            );
            return None;
        }
        Some(name)
    });
    let data_type = table
        .required(report, "type")
        .and_then(|value| value.choice(report, &ColumnType::NAMES));
    let nullable = table.with_default("nullable", true, |value| value.bool(report));
    table.finish(report);
    Some(Column {
        name: name?,
        data_type: data_type?,
        nullable: nullable?,
    })
}

fn partition_key(value: &Value<'_, '_>, report: &mut Report<'_>) -> Option<PartitionKey> {
    let mut table = value.table(report)?;
    let column = table
        .required(report, "column")
        .and_then(|value| value.non_empty_string(report));
    let name = table.optional("name", |value| {
        value.parsed(report, "folder key", formats::name)
    });
    table.finish(report);
    let column = column?;
    Some(PartitionKey {
        name: name?.unwrap_or_else(|| column.clone()),
        column,
    })
}
