//! `kind = "postgres"` and `kind = "redis"` sinks.

use std::path::Path;

use super::security::secret;
use crate::formats;
use crate::hot::{
    ColumnMapping, POSTGRES_PROVENANCE, PostgresSink, RedisMode, RedisSink, StatementMode, TlsMode,
    WriteMode, key_template,
};
use crate::reader::{Table, Value, collect_all};
use crate::report::Report;

/// A PostgreSQL identifier as the catalog holds it: letters, digits, `_` and `$`, not starting
/// with a digit, at most 63 bytes. Weir quotes it, so case matters.
fn identifier(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 63
        && !text.starts_with(|c: char| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not a table or column name: 1 to 63 ASCII letters, digits, `_` and `$`, \
             not starting with a digit, as the catalog holds it (lowercase for names created \
             without quotes)"
        ))
    }
}

/// `name` or `schema.name`.
fn table_name(text: &str) -> Result<String, String> {
    match text.split_once('.') {
        Some((schema, name)) => Ok(format!("{}.{}", identifier(schema)?, identifier(name)?)),
        None => identifier(text),
    }
}

pub(super) fn postgres(
    table: &mut Table<'_, '_>,
    base: &Path,
    report: &mut Report<'_>,
) -> Option<PostgresSink> {
    let url = table
        .required(report, "url")
        .and_then(|value| secret(&value, base, report, false));
    let name = table
        .required(report, "table")
        .and_then(|value| value.parsed(report, "table", table_name));
    let columns = table.required(report, "columns").and_then(|value| {
        let items = value.non_empty_array(report)?;
        let mut seen: Vec<String> = Vec::new();
        collect_all(items.iter().map(|item| {
            let mapping = mapping(item, report)?;
            if seen.contains(&mapping.column) {
                item.error(
                    report,
                    format_args!("column {:?} is mapped twice", mapping.column),
                );
                return None;
            }
            seen.push(mapping.column.clone());
            Some(mapping)
        }))
    });
    let mode = table.with_default("mode", WriteMode::default(), |value| {
        value.choice(
            report,
            &[("insert", WriteMode::Insert), ("upsert", WriteMode::Upsert)],
        )
    });
    let key_value = table.get("key");
    let key = table.with_default("key", Vec::new(), |value| {
        let items = value.non_empty_array(report)?;
        collect_all(
            items
                .iter()
                .map(|item| item.parsed(report, "column", identifier)),
        )
    });
    let provenance = table.with_default("provenance", true, |value| value.bool(report));
    let statement = table.with_default("statement", StatementMode::default(), |value| {
        value.choice(
            report,
            &[
                ("batch", StatementMode::Batch),
                ("record", StatementMode::Record),
            ],
        )
    });
    let pool_size = table.with_default("pool_size", PostgresSink::DEFAULT_POOL_SIZE, |value| {
        value.integer_in(report, 1..=256)
    });
    let connect_timeout = table.with_default(
        "connect_timeout",
        PostgresSink::DEFAULT_CONNECT_TIMEOUT,
        |value| value.positive_duration(report),
    );
    let tls = table.with_default("tls", TlsMode::default(), |value| {
        value.choice(
            report,
            &[("disable", TlsMode::Disable), ("require", TlsMode::Require)],
        )
    });
    let ca = table.optional("ca", |value| {
        value.non_empty_string(report).map(|path| base.join(path))
    });
    let (mode, key, provenance, columns) = (mode?, key?, provenance?, columns?);
    let mut sound = true;
    match (mode, &key_value) {
        (WriteMode::Upsert, None) => {
            table.error(
                report,
                "`mode = \"upsert\"` needs `key`: the columns of a primary key or unique \
                 constraint of the table",
            );
            sound = false;
        }
        (WriteMode::Insert, Some(value)) => {
            value.error(
                report,
                "`key` is for `mode = \"upsert\"`; with \"insert\", replays are skipped by the \
                 provenance columns",
            );
            sound = false;
        }
        (WriteMode::Insert, None) if !provenance => {
            table.error(
                report,
                "`mode = \"insert\"` needs `provenance = true`: its unique index on the \
                 provenance columns is what keeps a replay from adding rows twice",
            );
            sound = false;
        }
        _ => {}
    }
    let key_items = match &key_value {
        Some(value) => value.array(report).unwrap_or_default(),
        None => Vec::new(),
    };
    for (key, value) in key.iter().zip(key_items) {
        let known = columns.iter().any(|m| &m.column == key)
            || (provenance && POSTGRES_PROVENANCE.contains(&key.as_str()));
        if !known {
            value.error(
                report,
                format_args!("key column {key:?} is not in `columns` nor a provenance column"),
            );
            sound = false;
        }
    }
    if let (Some(Some(_)), Some(TlsMode::Disable)) = (&ca, tls) {
        table.error(report, "`ca` is for `tls = \"require\"`");
        sound = false;
    }
    sound.then_some(())?;
    Some(PostgresSink {
        url: url?,
        table: name?,
        columns,
        mode,
        key,
        provenance,
        statement: statement?,
        pool_size: pool_size?,
        connect_timeout: connect_timeout?,
        tls: tls?,
        ca: ca?,
    })
}

fn mapping(value: &Value<'_, '_>, report: &mut Report<'_>) -> Option<ColumnMapping> {
    let mut table = value.table(report)?;
    let column = table.required(report, "column").and_then(|value| {
        let column = value.parsed(report, "column", identifier)?;
        if column.starts_with("weir_") {
            value.error(
                report,
                format_args!(
                    "{column:?}: column names starting with `weir_` are Weir's own (provenance \
                     columns: {})",
                    POSTGRES_PROVENANCE.join(", ")
                ),
            );
            return None;
        }
        Some(column)
    });
    let field = table.optional("field", |value| {
        value.parsed(report, "JSON pointer", formats::json_pointer)
    });
    table.finish(report);
    let column = column?;
    Some(ColumnMapping {
        field: field?.unwrap_or_else(|| format!("/{column}")),
        column,
    })
}

pub(super) fn redis(
    table: &mut Table<'_, '_>,
    base: &Path,
    report: &mut Report<'_>,
) -> Option<RedisSink> {
    let url = table
        .required(report, "url")
        .and_then(|value| secret(&value, base, report, false));
    let mode = table.with_default("mode", RedisMode::default(), |value| {
        value.choice(
            report,
            &[
                ("set", RedisMode::Set),
                ("hash", RedisMode::Hash),
                ("stream", RedisMode::Stream),
            ],
        )
    });
    let key = table.optional("key", |value| {
        value.parsed(report, "key template", |text| {
            key_template(text).map(|_| text.to_owned())
        })
    });
    let ttl = table.optional("ttl", |value| value.positive_duration(report));
    let max_len = table.optional("max_len", |value| value.integer_in(report, 1..));
    let mode = mode?;
    let misplaced = match mode {
        RedisMode::Stream => [("ttl", "\"set\" or \"hash\"")],
        RedisMode::Set | RedisMode::Hash => [("max_len", "\"stream\"")],
    };
    let mut sound = true;
    for (key, modes) in misplaced {
        if let Some(value) = table.get(key) {
            value.error(report, format_args!("`{key}` is for `mode = {modes}`"));
            sound = false;
        }
    }
    sound.then_some(())?;
    Some(RedisSink {
        url: url?,
        mode,
        key: key?,
        ttl: ttl?,
        max_len: max_len?,
    })
}
