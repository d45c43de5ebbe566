//! The statements the PostgreSQL sink sends, built once at start from the table's catalog: one
//! `INSERT ... SELECT ... FROM json_to_recordset($1)` takes a whole batch as one parameter, so a
//! batch is one statement and one round trip whatever its size, and the server does the type
//! conversions (a value it cannot convert is its error, SQLSTATE class 22, and the row's alone).
//!
//! Owns: quoting, the statement text and its sqlcommenter `traceparent` comment.

use weir_config::{POSTGRES_PROVENANCE, WriteMode};

/// `name` as a quoted identifier: `"name"`, with `"` doubled.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `table` or `schema.table`, each part quoted.
pub fn quote_table(table: &str) -> String {
    table.split('.').map(quote).collect::<Vec<_>>().join(".")
}

/// A column the statement fills, with its type as the catalog spells it (`format_type`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedColumn {
    pub name: String,
    pub sql_type: String,
}

/// The `INSERT` for `table`: `columns` (the mapped ones, then the provenance ones when used)
/// from a JSON array of objects keyed by column name; with `Upsert`, rows whose `key` is there
/// are updated, with `Insert` rows already written (same provenance) are skipped.
pub fn insert(table: &str, columns: &[TypedColumn], mode: WriteMode, key: &[String]) -> String {
    let names: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
    let record: Vec<String> = columns
        .iter()
        .map(|c| format!("{} {}", quote(&c.name), c.sql_type))
        .collect();
    let conflict = match mode {
        WriteMode::Insert => {
            let provenance: Vec<String> =
                POSTGRES_PROVENANCE[..4].iter().map(|c| quote(c)).collect();
            format!("ON CONFLICT ({}) DO NOTHING", provenance.join(", "))
        }
        WriteMode::Upsert => {
            let keys: Vec<String> = key.iter().map(|k| quote(k)).collect();
            let updates: Vec<String> = columns
                .iter()
                .filter(|c| !key.contains(&c.name))
                .map(|c| format!("{0} = EXCLUDED.{0}", quote(&c.name)))
                .collect();
            if updates.is_empty() {
                format!("ON CONFLICT ({}) DO NOTHING", keys.join(", "))
            } else {
                format!(
                    "ON CONFLICT ({}) DO UPDATE SET {}",
                    keys.join(", "),
                    updates.join(", ")
                )
            }
        }
    };
    format!(
        "INSERT INTO {} ({names}) SELECT {names} FROM json_to_recordset($1::text::json) AS r({}) {conflict}",
        quote_table(table),
        record.join(", "),
        names = names.join(", "),
    )
}

/// `statement` with its span's `traceparent` as a trailing SQL comment, the sqlcommenter
/// convention (`/*traceparent='00-...-01'*/`): a server log line of it leads to the trace.
pub fn with_traceparent(statement: &str, traceparent: &str) -> String {
    // A traceparent is hex digits and dashes: nothing to escape.
    format!("{statement} /*traceparent='{traceparent}'*/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, sql_type: &str) -> TypedColumn {
        TypedColumn {
            name: name.into(),
            sql_type: sql_type.into(),
        }
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote("user"), "\"user\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_table("analytics.Clicks"), "\"analytics\".\"Clicks\"");
    }

    #[test]
    fn inserts_skip_replayed_rows_by_provenance() {
        let sql = insert(
            "clicks",
            &[col("user_id", "text"), col("weir_offset", "bigint")],
            WriteMode::Insert,
            &[],
        );
        assert_eq!(
            sql,
            "INSERT INTO \"clicks\" (\"user_id\", \"weir_offset\") SELECT \"user_id\", \
             \"weir_offset\" FROM json_to_recordset($1::text::json) AS r(\"user_id\" text, \
             \"weir_offset\" bigint) ON CONFLICT (\"weir_topic\", \"weir_partition\", \
             \"weir_offset\", \"weir_output\") DO NOTHING"
        );
    }

    #[test]
    fn upserts_update_every_column_but_the_key() {
        let sql = insert(
            "users",
            &[col("id", "integer"), col("page", "text")],
            WriteMode::Upsert,
            &["id".into()],
        );
        assert!(
            sql.ends_with("ON CONFLICT (\"id\") DO UPDATE SET \"page\" = EXCLUDED.\"page\""),
            "{sql}"
        );
        let only_key = insert(
            "users",
            &[col("id", "integer")],
            WriteMode::Upsert,
            &["id".into()],
        );
        assert!(
            only_key.ends_with("ON CONFLICT (\"id\") DO NOTHING"),
            "{only_key}"
        );
    }

    #[test]
    fn the_traceparent_rides_as_a_trailing_comment() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert_eq!(
            with_traceparent("INSERT 1", tp),
            format!("INSERT 1 /*traceparent='{tp}'*/")
        );
    }
}
