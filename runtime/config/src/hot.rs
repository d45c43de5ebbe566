//! The hot stores' settings: `kind = "postgres"` and `kind = "redis"` sinks, which hold recent
//! results for dashboards and services. Like [`crate::Pipeline`], these structs document every
//! key and its default.

use std::path::PathBuf;
use std::time::Duration;

use crate::Secret;

/// The keys of a `kind = "postgres"` sink: one row per record, written to an existing table.
///
/// ```toml
/// [sinks.recent]
/// kind = "postgres"
/// url = { env = "WEIR_POSTGRES_URL" }
/// table = "clicks"
/// columns = [{ column = "user_id", field = "/user" }, { column = "page" }]
/// ```
///
/// Each batch of a lane's results is one `INSERT` statement in one transaction; the input records
/// are committed only after that transaction commits. The sink's connections run with a
/// `statement_timeout` of 30 s: a statement held up longer (a lock, a synchronous standby that is
/// down) fails and its batch is written again later, as when the server is down. Rows are keyed so that a replay after a
/// crash writes no row twice: by the provenance columns with `mode = "insert"`, by `key` with
/// `mode = "upsert"`. Every statement carries the W3C `traceparent` of its span as a SQL comment
/// (the sqlcommenter convention), so a slow-query log line leads to the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresSink {
    /// `url`, required: a libpq connection URL (`postgres://user:password@host:port/database`)
    /// or key-value string, as a secret: `{ env = "NAME" }` or `{ file = "path" }`. It is read
    /// at start and never printed.
    pub url: Secret,
    /// `table`, required: the table rows go to, which must exist: `name` or `schema.name`.
    pub table: String,
    /// `columns`, required: the table's columns Weir fills, each from a field of the record's
    /// value (a JSON object): `{ column = "name", field = "/json/pointer" }`, `field` defaulting
    /// to `"/<column>"`. A missing field writes `NULL` (the table's constraints decide whether
    /// that is refused); a value that is not a JSON object is dead-lettered as `sink-rejected`.
    /// The server converts each field to its column's type (a JSON string to `timestamptz`, an
    /// object to `jsonb`...); a value it cannot convert is refused like a constraint violation.
    /// The provenance columns are added to these when `provenance` is on.
    pub columns: Vec<ColumnMapping>,
    /// `mode`: `"insert"` (default) or `"upsert"`.
    pub mode: WriteMode,
    /// `key`: with `mode = "upsert"`, required: the columns of the table's primary key or of a
    /// unique constraint; a row whose key is already there is updated. Not allowed with
    /// `insert`.
    pub key: Vec<String>,
    /// `provenance`: whether each row also fills the columns [`POSTGRES_PROVENANCE`] (they
    /// must exist in the table). Default `true`; required with `mode = "insert"`, whose
    /// replays are made harmless by a unique index on the first four.
    pub provenance: bool,
    /// `statement`: `"batch"` (default: one statement per batch of a lane's results, linked to
    /// the traces of its records) or `"record"` (one statement per record, each carrying its
    /// record's own trace: for low rates, where a slow-query log line should lead straight to
    /// the record's trace).
    pub statement: StatementMode,
    /// `pool_size`: the most connections the sink holds open. Lanes that find every
    /// connection busy wait for one (the pool's waiting count and wait time are metrics).
    /// From 1 to 256. Default 4.
    pub pool_size: u32,
    /// `connect_timeout`: how long a connection attempt may take. Default 5s.
    pub connect_timeout: Duration,
    /// `tls`: `"disable"` (default) or `"require"` (TLS, the server's certificate and host name
    /// verified against `ca` or the system's roots). `sslmode=require` in `url` asks for the
    /// same; TLS is never turned off when the url asks for it.
    pub tls: TlsMode,
    /// `ca`: with `tls = "require"`, a PEM file of the certificate authorities that sign the
    /// server's certificate, relative to the pipeline file. Default: the system's roots.
    pub ca: Option<PathBuf>,
}

impl PostgresSink {
    /// Default of [`PostgresSink::pool_size`].
    pub const DEFAULT_POOL_SIZE: u32 = 4;
    /// Default of [`PostgresSink::connect_timeout`].
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
}

/// The provenance columns of a postgres sink: the source topic (`text`), partition
/// (`integer`), offset (`bigint`), the index of the output among its input record's outputs
/// (`integer`, 0 for a map, 0..n for a flat-map), and the trace id of its `traceparent` (`text`,
/// 32 hex digits, nullable). With `mode = "insert"` the table needs a unique index on the
/// first four, such as
/// `CREATE UNIQUE INDEX ON clicks (weir_topic, weir_partition, weir_offset, weir_output)`.
pub const POSTGRES_PROVENANCE: [&str; 5] = [
    "weir_topic",
    "weir_partition",
    "weir_offset",
    "weir_output",
    "weir_trace_id",
];

/// One entry of a postgres sink's `columns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMapping {
    /// `column`, required: the table's column.
    pub column: String,
    /// `field`: a JSON pointer into the record's value. Default `"/<column>"`.
    pub field: String,
}

/// `mode` of a postgres sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriteMode {
    /// `"insert"`: every record adds a row; a replayed record's row is skipped
    /// (`ON CONFLICT DO NOTHING` on the provenance index).
    #[default]
    Insert,
    /// `"upsert"`: the row of the record's `key` is inserted or updated
    /// (`ON CONFLICT (key) DO UPDATE`), so the table holds the latest value per key.
    Upsert,
}

/// `statement` of a postgres sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatementMode {
    /// `"batch"`: one statement per batch.
    #[default]
    Batch,
    /// `"record"`: one statement per record.
    Record,
}

/// `tls` of a postgres sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// `"disable"`: no TLS.
    #[default]
    Disable,
    /// `"require"`: TLS, with the server's certificate verified.
    Require,
}

/// The keys of a `kind = "redis"` sink: the latest value per key, or a stream, written with
/// pipelined commands.
///
/// ```toml
/// [sinks.latest]
/// kind = "redis"
/// url = { env = "WEIR_REDIS_URL" }
/// mode = "hash"
/// key = "user:{/user}"
/// ttl = "1h"
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RedisSink {
    /// `url`, required: `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS), as
    /// a secret: `{ env = "NAME" }` or `{ file = "path" }`. Read at start, never printed.
    pub url: Secret,
    /// `mode`: `"set"` (default: `SET key value`, the latest value per key), `"hash"` (`HSET
    /// key value <value> weir_trace_id <id> weir_topic ... weir_partition ... weir_offset ...`:
    /// the latest value per key with its trace id and provenance) or `"stream"` (`XADD key * value
    /// <value> weir_trace_id <id> ...`: every record, in order).
    pub mode: RedisMode,
    /// `key`: the Redis key, a template in which `{/json/pointer}` is replaced by that field of
    /// the record's value (a string or a number), such as `"user:{/user}"`. Default: the
    /// record's own key (a record without a key, or a field missing, is dead-lettered as
    /// `sink-rejected`).
    pub key: Option<String>,
    /// `ttl`: with `set` or `hash`, how long a key lives after its last write, such as `"1h"`.
    /// Default: forever.
    pub ttl: Option<Duration>,
    /// `max_len`: with `stream`, trims each stream to about this many entries (`MAXLEN ~`).
    /// Default: no trimming.
    pub max_len: Option<u64>,
}

/// `mode` of a redis sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedisMode {
    /// `"set"`.
    #[default]
    Set,
    /// `"hash"`.
    Hash,
    /// `"stream"`.
    Stream,
}

/// One piece of a redis `key` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    /// Text written as is.
    Text(String),
    /// `{/pointer}`: a field of the record's value.
    Field(String),
}

/// Splits a redis `key` template into its pieces: text, and `{/json/pointer}` fields. `{{` and
/// `}}` stand for a brace.
pub fn key_template(text: &str) -> Result<Vec<KeyPart>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                literal.push('}');
            }
            '{' => {
                let mut field = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    field.push(c);
                }
                if !closed {
                    return Err("a `{` is not closed (write `{{` for a brace)".into());
                }
                if !field.starts_with('/') {
                    return Err(format!(
                        "expected a JSON pointer such as {{/user}} inside braces, \
                         found {{{field}"
                    ));
                }
                if !literal.is_empty() {
                    parts.push(KeyPart::Text(std::mem::take(&mut literal)));
                }
                parts.push(KeyPart::Field(field));
            }
            '}' => return Err("a `}` closes no field (write `}}`)".into()),
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        parts.push(KeyPart::Text(literal));
    }
    if parts.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_templates_split_into_text_and_fields() {
        let field = |p: &str| KeyPart::Field(p.into());
        let text = |t: &str| KeyPart::Text(t.into());
        assert_eq!(
            key_template("user:{/user}:{/a~1b}"),
            Ok(vec![
                text("user:"),
                field("/user"),
                text(":"),
                field("/a~1b")
            ])
        );
        assert_eq!(key_template("{{x}}"), Ok(vec![text("{x}")]));
        assert_eq!(key_template("{/id}"), Ok(vec![field("/id")]));
        assert!(key_template("").is_err());
        assert!(key_template("{id}").is_err());
        assert!(key_template("{/id").is_err());
        assert!(key_template("id}").is_err());
    }
}
