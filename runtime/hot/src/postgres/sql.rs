//! The statements the PostgreSQL sink sends, built once at start from the table's catalog: one
//! `INSERT ... SELECT ... FROM unnest($1::text[], $2::text[], ...)` takes a whole batch as one
//! text array per column, so a batch is one statement and one round trip whatever its size, and
//! the server converts each value from text to its column's type with the type's input function,
//! as `COPY` does (a value it cannot convert is its error, SQLSTATE class 22, and the row's
//! alone). Measured on 200,000 rows, this costs the server about 2.2 times what `COPY` does, where
//! one JSON parameter read with `json_to_recordset` cost 3.3 times (`BENCHMARKS.md`).
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

/// A column the statement fills, with its type as the catalog spells it (`format_type`),
/// without its modifier (`character varying`, not `character varying(10)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedColumn {
    pub name: String,
    pub sql_type: String,
    /// Whether the type is `json` or `jsonb`: its values are sent as JSON text, strings
    /// quoted.
    pub json: bool,
}

/// The `INSERT` for `table`: `columns` (the mapped ones, then the provenance ones when used),
/// the `i`th from text array parameter `$i`; with `Upsert`, rows whose `key` is there
/// are updated, with `Insert` rows already written (same provenance) are skipped.
pub fn insert(table: &str, columns: &[TypedColumn], mode: WriteMode, key: &[String]) -> String {
    let names: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
    let arrays: Vec<String> = (1..=columns.len())
        .map(|i| format!("${i}::text[]"))
        .collect();
    let fields: Vec<String> = (1..=columns.len()).map(|i| format!("v{i}")).collect();
    let casts: Vec<String> = columns
        .iter()
        .zip(&fields)
        .map(|(c, v)| format!("CAST({v} AS {})", c.sql_type))
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
        "INSERT INTO {} ({}) SELECT {} FROM unnest({}) AS r({}) {conflict}",
        quote_table(table),
        names.join(", "),
        casts.join(", "),
        arrays.join(", "),
        fields.join(", "),
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
            json: false,
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
            "INSERT INTO \"clicks\" (\"user_id\", \"weir_offset\") SELECT CAST(v1 AS text), \
             CAST(v2 AS bigint) FROM unnest($1::text[], $2::text[]) AS r(v1, v2) ON CONFLICT \
             (\"weir_topic\", \"weir_partition\", \"weir_offset\", \"weir_output\") DO NOTHING"
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
