//! What the PostgreSQL sink checks at start, before any record moves: the table exists, holds
//! every column the sink fills (their types are read from the catalog for the statement), and
//! has the unique index its replays rely on: on the provenance columns for `insert`, on `key`
//! for `upsert`. Each failure names what is missing and how to add it.

use tokio_postgres::Client;
use weir_config::{POSTGRES_PROVENANCE, PostgresSink, WriteMode};

use super::sql::{TypedColumn, quote_table};
use crate::HotError;

/// The table's columns the sink fills, in statement order (mapped columns, then provenance),
/// with their catalog types.
pub(super) async fn table(
    client: &Client,
    settings: &PostgresSink,
) -> Result<Vec<TypedColumn>, HotError> {
    let quoted = quote_table(&settings.table);
    let query =
        |e: tokio_postgres::Error| HotError::Schema(format!("cannot read the catalog: {e}"));
    let found = client
        .query_one(
            "SELECT to_regclass($1)::oid, current_database()",
            &[&quoted],
        )
        .await
        .map_err(query)?;
    let oid: Option<u32> = found.get(0);
    let database: String = found.get(1);
    let Some(oid) = oid else {
        return Err(HotError::Schema(format!(
            "table {} does not exist in database {database:?} (names are case-sensitive: \
             lowercase for tables created without quotes)",
            settings.table
        )));
    };
    let rows = client
        .query(
            "SELECT attname::text, format_type(atttypid, NULL), \
                    atttypid IN ('json'::regtype, 'jsonb'::regtype) \
             FROM pg_attribute \
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&oid],
        )
        .await
        .map_err(query)?;
    // The type without its modifier: an explicit cast to `varchar(10)` would cut a longer
    // value, where the INSERT's own assignment to the column refuses it (22001).
    let catalog: Vec<(String, String, bool)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let mut wanted: Vec<&str> = settings.columns.iter().map(|m| m.column.as_str()).collect();
    if settings.provenance {
        wanted.extend(POSTGRES_PROVENANCE);
    }
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|w| !catalog.iter().any(|(name, ..)| name == w))
        .collect();
    if !missing.is_empty() {
        let has: Vec<&str> = catalog.iter().map(|(n, ..)| n.as_str()).collect();
        let hint = if missing.iter().any(|m| m.starts_with("weir_")) {
            format!(
                "; the provenance columns are added with ALTER TABLE {} ADD COLUMN weir_topic \
                 text, ADD COLUMN weir_partition integer, ADD COLUMN weir_offset bigint, ADD \
                 COLUMN weir_output integer, ADD COLUMN weir_trace_id text",
                settings.table
            )
        } else {
            String::new()
        };
        return Err(HotError::Schema(format!(
            "table {} has no column {} (it has {}){hint}",
            settings.table,
            missing.join(", "),
            has.join(", ")
        )));
    }
    let columns = wanted
        .iter()
        .map(|w| {
            let (name, sql_type, json) = catalog
                .iter()
                .find(|(n, ..)| n == w)
                .expect("checked above");
            TypedColumn {
                name: name.clone(),
                sql_type: sql_type.clone(),
                json: *json,
            }
        })
        .collect();
    unique_index(client, oid, settings).await?;
    Ok(columns)
}

/// Checks that a unique index (or primary key) covers exactly the conflict columns.
async fn unique_index(client: &Client, oid: u32, settings: &PostgresSink) -> Result<(), HotError> {
    let rows = client
        .query(
            "SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL \
               AND i.indimmediate AND i.indisvalid AND i.indexprs IS NULL \
             GROUP BY i.indexrelid",
            &[&oid],
        )
        .await
        .map_err(|e| HotError::Schema(format!("cannot read the table's indexes: {e}")))?;
    let mut wanted: Vec<String> = match settings.mode {
        WriteMode::Insert => POSTGRES_PROVENANCE[..4]
            .iter()
            .map(|c| c.to_string())
            .collect(),
        WriteMode::Upsert => settings.key.clone(),
    };
    wanted.sort();
    if rows
        .iter()
        .any(|row| row.get::<_, Vec<String>>(0) == wanted)
    {
        return Ok(());
    }
    let why = match settings.mode {
        WriteMode::Insert => "`mode = \"insert\"` skips a replayed row by its provenance",
        WriteMode::Upsert => "`mode = \"upsert\"` updates the row of a key already there",
    };
    Err(HotError::Schema(format!(
        "table {} has no unique index on ({}) that ON CONFLICT can use (valid, not deferrable, \
         of plain columns, without a WHERE): {why}, which needs one: CREATE UNIQUE INDEX ON {} \
         ({})",
        settings.table,
        wanted.join(", "),
        settings.table,
        wanted.join(", ")
    )))
}
