//! `[sinks.<name>]` tables.

use std::path::Path;

use crate::formats;
use crate::reader::{Value, collect_all};
use crate::report::Report;
use crate::store::{
    Column, ColumnType, Compression, DEAD_LETTER_COLUMNS, NamedSink, PROVENANCE_COLUMNS,
    ParquetSink, PartitionKey, SinkKind, StorePath,
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
    let mut paths: Vec<(String, StorePath)> = Vec::new();
    let sinks = table.entries().map(|(name, item)| {
        let named = formats::name(name).map_err(|error| {
            item.owner_error(report, format_args!("invalid sink name {name:?}: {error}"));
        });
        let sink = sink(&item, base, report);
        if let Some(SinkKind::Parquet(parquet)) = &sink {
            if let Some((other, _)) = paths.iter().find(|(_, p)| overlap(p, &parquet.path)) {
                item.error(
                    report,
                    format_args!(
                        "its path is, or is inside or around, the path of sink {other:?}: two \
                         sinks would overwrite each other's files and progress"
                    ),
                );
            }
            paths.push((name.to_owned(), parquet.path.clone()));
        }
        let line = report.location(item.span().start).line;
        refs.sinks.push(SinkRefs {
            name: name.to_owned(),
            topic: match &sink {
                Some(SinkKind::Kafka { topic }) => Some(Written::new(&item, topic.clone())),
                _ => None,
            },
            parquet: matches!(sink, Some(SinkKind::Parquet(_))),
            store: sink
                .as_ref()
                .map(|s| s.name())
                .filter(|&kind| kind != "kafka"),
            dead_letters: matches!(&sink, Some(SinkKind::Parquet(p)) if p.dead_letters),
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
    let kind = table.required(report, "kind").and_then(|kind| {
        kind.choice(
            report,
            &[
                ("kafka", "kafka"),
                ("parquet", "parquet"),
                ("postgres", "postgres"),
                ("redis", "redis"),
            ],
        )
    });
    let sink = match kind? {
        "kafka" => {
            let topic = table
                .required(report, "topic")
                .and_then(|v| v.parsed(report, "topic name", formats::topic));
            Some(SinkKind::Kafka { topic: topic? })
        }
        "parquet" => parquet(&mut table, base, report).map(SinkKind::Parquet),
        "postgres" => super::hot::postgres(&mut table, base, report).map(SinkKind::Postgres),
        _ => super::hot::redis(&mut table, base, report).map(SinkKind::Redis),
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
    let endpoint = table.optional("endpoint", |value| {
        value.parsed(report, "URL", formats::http_url)
    });
    let region = table.optional("region", |value| value.non_empty_string(report));
    if let Some(StorePath::Local(_)) = &path {
        for key in ["endpoint", "region"] {
            if table.contains(key) {
                table.error(
                    report,
                    format_args!("`{key}` is for an s3:// path; `path` is a local folder"),
                );
            }
        }
    }
    // A list of columns, or "dead-letters".
    let schema = table.required(report, "schema").and_then(|value| {
        if matches!(value.raw(), toml::de::DeValue::String(_)) {
            let fixed = value.choice(report, &[("dead-letters", ())]);
            fixed.map(|()| (Vec::new(), true))
        } else {
            schema(&value, report).map(|columns| (columns, false))
        }
    });
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
    let ((schema, dead_letters), partition_by) = (schema?, partition_by?);
    let mut known = true;
    if let Some(partitions) = table.get("partition_by") {
        for (key, item) in partition_by.iter().zip(partitions.array(report)?) {
            if let Err(why) = partitionable(&key.column, &schema, dead_letters) {
                item.error(report, format_args!("column {:?} {why}", key.column));
                known = false;
            }
        }
    }
    known.then_some(())?;
    Some(ParquetSink {
        path: path?,
        endpoint: endpoint?,
        region: region?,
        schema,
        dead_letters,
        partition_by,
        roll_records: roll_records?,
        roll_bytes: roll_bytes?,
        roll_age: roll_age?,
        compression: compression?,
        row_group_rows: row_group_rows?,
    })
}

/// Whether two stores' paths are the same place or one holds the other.
fn overlap(a: &StorePath, b: &StorePath) -> bool {
    match (a, b) {
        (StorePath::Local(a), StorePath::Local(b)) => a.starts_with(b) || b.starts_with(a),
        (
            StorePath::S3 { bucket, prefix },
            StorePath::S3 {
                bucket: other,
                prefix: within,
            },
        ) => {
            let nested = |outer: &str, inner: &str| {
                outer.is_empty() || inner == outer || inner.starts_with(&format!("{outer}/"))
            };
            bucket == other && (nested(prefix, within) || nested(within, prefix))
        }
        _ => false,
    }
}

/// Whether `column` can name folders: a column of `schema` that is not a float, a provenance
/// column, or a string column of a dead-letter sink.
fn partitionable(column: &str, schema: &[Column], dead_letters: bool) -> Result<(), String> {
    if PROVENANCE_COLUMNS.contains(&column) {
        return Ok(());
    }
    if dead_letters {
        return match DEAD_LETTER_COLUMNS.iter().position(|c| *c == column) {
            Some(0 | 1) => Err("holds bytes: it cannot name a folder".into()),
            Some(_) => Ok(()),
            None => Err(format!(
                "is not a dead-letter column ({}) nor a provenance column",
                DEAD_LETTER_COLUMNS[2..].join(", ")
            )),
        };
    }
    match schema.iter().find(|c| c.name == column) {
        None => Err("is not in the schema".into()),
        Some(c) if matches!(c.data_type, ColumnType::Float32 | ColumnType::Float64) => {
            Err("is a float: it cannot name a folder".into())
        }
        Some(_) => Ok(()),
    }
}

/// A local folder, relative to the pipeline file's directory, or `s3://bucket/prefix`.
fn store_path(value: &Value<'_, '_>, base: &Path, report: &mut Report<'_>) -> Option<StorePath> {
    let text = value.non_empty_string(report)?;
    let Some((scheme, rest)) = text.split_once("://") else {
        return Some(StorePath::Local(base.join(text)));
    };
    if scheme != "s3" {
        value.error(
            report,
            format_args!("{text:?}: expected a local folder or s3://bucket/prefix"),
        );
        return None;
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    if !valid_bucket {
        value.error(
            report,
            format_args!(
                "{text:?}: expected s3://bucket/prefix with a bucket name of 3 to 63 lowercase \
                 letters, digits, `-` and `.`"
            ),
        );
        return None;
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|part| part == "." || part == "..") || prefix.contains("//") {
        value.error(
            report,
            format_args!("{text:?}: the prefix has an empty, `.` or `..` part"),
        );
        return None;
    }
    Some(StorePath::S3 {
        bucket: bucket.to_owned(),
        prefix: prefix.to_owned(),
    })
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
