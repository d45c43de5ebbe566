//! The named sinks of a pipeline file, `[sinks.<name>]`, and the Parquet cold store's settings.
//! Like [`crate::Pipeline`], these structs document every key and its default.

use std::path::PathBuf;
use std::time::Duration;

/// `[sinks.<name>]`: a named place a stage's results (`sink = "<name>"` in the `[[stage]]`) or
/// the dead letters (`sink = "<name>"` in `[dead_letter]`) go, instead of a topic. The name is
/// the table's key, made of ASCII letters, digits, `.`, `_` and `-`.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedSink {
    /// The table's key: `lake` in `[sinks.lake]`.
    pub name: String,
    /// `kind`, required: `"kafka"`, `"parquet"`, `"postgres"` or `"redis"`, with the keys of
    /// that kind.
    pub kind: SinkKind,
    /// Line of the table in the pipeline file, for messages.
    pub line: usize,
}

/// `kind` of a `[sinks.<name>]` table, and the keys that go with it.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkKind {
    /// `kind = "kafka"`: a topic, written by the pipeline's producer (`[sink]`) exactly as a
    /// stage's `output` topic is.
    Kafka {
        /// `topic`, required: the topic. The same rules hold as for `output`: it may not be a
        /// source topic, nor the dead-letter topic.
        topic: String,
    },
    /// `kind = "parquet"`: Parquet files, one row per record.
    Parquet(ParquetSink),
    /// `kind = "postgres"`: rows of a PostgreSQL table (the hot store).
    Postgres(crate::PostgresSink),
    /// `kind = "redis"`: the latest value per key, or a stream, in Redis (the hot store).
    Redis(crate::RedisSink),
}

impl SinkKind {
    /// The `kind` as written in the pipeline file.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Kafka { .. } => "kafka",
            Self::Parquet(_) => "parquet",
            Self::Postgres(_) => "postgres",
            Self::Redis(_) => "redis",
        }
    }
}

/// The keys of a `kind = "parquet"` sink. Each record's value is a JSON object whose fields are
/// the columns of `schema`; a value that does not fit (not JSON, a field of the wrong type, a
/// non-nullable field missing) is dead-lettered with error kind `sink-rejected`. Every row also
/// holds the provenance columns ([`PROVENANCE_COLUMNS`]).
///
/// A file is complete, and the input records whose rows it holds committable, only once it is
/// durable: written under a hidden temporary name, synced, renamed into place and its folder
/// synced. Files are named `<source topic>-<source partition>-<first source offset>.parquet`
/// (the offset zero-padded to 20 digits), so a rewrite after a crash replaces a file rather than
/// adding a second copy; `ARCHITECTURE.md` (Cold store) says what makes that exactly once.
#[derive(Debug, Clone, PartialEq)]
pub struct ParquetSink {
    /// `path`, required: where files go: a local folder (a relative path is relative to the
    /// directory of the pipeline file) or `s3://bucket/prefix` on S3 or an S3-compatible store.
    pub path: StorePath,
    /// `endpoint`: with an `s3://` path, the store's URL, such as `"http://127.0.0.1:9000"` for
    /// an S3-compatible server. Default: `AWS_ENDPOINT_URL` if set, else AWS itself. Credentials
    /// come from the standard AWS variables only (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), never from the pipeline file.
    pub endpoint: Option<String>,
    /// `region`: with an `s3://` path, the bucket's region. Default: `AWS_REGION` or
    /// `AWS_DEFAULT_REGION` if set, else `us-east-1`.
    pub region: Option<String>,
    /// `schema`, required: the columns, in order, such as
    /// `[{ name = "user", type = "string" }, { name = "at", type = "timestamp[ms]", nullable = false }]`;
    /// or `"dead-letters"` for the sink `[dead_letter]` names, whose rows are dead letters in
    /// the fixed columns of [`DEAD_LETTER_COLUMNS`] (then this list is empty).
    pub schema: Vec<Column>,
    /// Whether `schema = "dead-letters"`: the sink holds dead letters, and only them.
    pub dead_letters: bool,
    /// `partition_by`: Hive-style folders under `path`, outermost first, such as
    /// `[{ name = "dt", column = "at" }]` for `dt=2026-12-05/`. A column is one of the schema
    /// (not a float), a provenance column (`weir_timestamp` gives the record's day), or, in a
    /// dead-letter sink, a string column such as `error_kind`. Default: none.
    pub partition_by: Vec<PartitionKey>,
    /// `roll_records`: a file is completed once it holds the rows of this many input records
    /// (all the files a source partition has open are completed together). From 1. Default 100000.
    pub roll_records: u64,
    /// `roll_bytes`: also complete a source partition's files once they hold about this many
    /// bytes, such as `"128MiB"`. Default: no limit.
    pub roll_bytes: Option<u64>,
    /// `roll_age`: also complete a source partition's files once the oldest has been open this
    /// long, such as `"5m"`, so a quiet partition still commits. Default 1m.
    pub roll_age: Duration,
    /// `compression`: `"zstd"` (default), `"snappy"` or `"none"`.
    pub compression: Compression,
    /// `row_group_rows`: the most rows in one Parquet row group; a file's rows are buffered in
    /// memory up to this many before they are written out. From 1. Default 65536.
    pub row_group_rows: usize,
}

impl ParquetSink {
    /// Default of [`ParquetSink::roll_records`].
    pub const DEFAULT_ROLL_RECORDS: u64 = 100_000;
    /// Default of [`ParquetSink::roll_age`].
    pub const DEFAULT_ROLL_AGE: Duration = Duration::from_secs(60);
    /// Default of [`ParquetSink::row_group_rows`].
    pub const DEFAULT_ROW_GROUP_ROWS: usize = 65_536;
}

/// `path` of a Parquet sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorePath {
    /// A local folder, resolved against the pipeline file's directory.
    Local(PathBuf),
    /// `s3://bucket/prefix`: objects under `prefix` (no leading or trailing `/`; may be empty).
    S3 { bucket: String, prefix: String },
}

/// The columns Weir adds to every row, after the schema's: the source topic (`string`), source
/// partition (`int32`), source offset (`int64`), the record's timestamp (`timestamp[ms]`,
/// nullable) and the trace id of its `traceparent` (32 lowercase hex digits, nullable). Schema
/// columns may not use these names, nor start with `weir_`.
pub const PROVENANCE_COLUMNS: [&str; 5] = [
    "weir_topic",
    "weir_partition",
    "weir_offset",
    "weir_timestamp",
    "weir_trace_id",
];

/// The columns of a dead-letter sink (`schema = "dead-letters"`), before the provenance
/// columns: the failed record's `key` and `value` as they entered the failing stage (`binary`,
/// nullable), then, as strings, the `stage` and its `module_sha256`, the `error_kind`
/// (`trap`, `timeout`, `sink-rejected`...), the stage's own `error_code` (nullable), the
/// `error_message` and the `error_field` a store refused (nullable): the `weir.*` headers of a
/// dead letter on a topic. The input's other headers are not kept.
pub const DEAD_LETTER_COLUMNS: [&str; 8] = [
    "key",
    "value",
    "stage",
    "module_sha256",
    "error_kind",
    "error_code",
    "error_message",
    "error_field",
];

/// One column of a Parquet sink's `schema`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// `name`, required: the JSON field it is read from, and the column's name.
    pub name: String,
    /// `type`, required: see [`ColumnType`].
    pub data_type: ColumnType,
    /// `nullable`: whether the field may be missing or `null`. Default true.
    pub nullable: bool,
}

/// `type` of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `"bool"`: JSON `true` or `false`.
    Bool,
    /// `"int32"`: a JSON integer that fits 32 bits.
    Int32,
    /// `"int64"`: a JSON integer.
    Int64,
    /// `"float32"`: a JSON number.
    Float32,
    /// `"float64"`: a JSON number.
    Float64,
    /// `"string"`: a JSON string.
    String,
    /// `"date"`: a day, as `"2026-12-05"`.
    Date,
    /// `"timestamp[s]"`, `"timestamp[ms]"`, `"timestamp[us]"` or `"timestamp[ns]"`: an instant in
    /// UTC, as an RFC 3339 string or an integer count of the unit since the Unix epoch.
    Timestamp(TimeUnit),
}

impl ColumnType {
    /// Every `type` name, for messages.
    pub const NAMES: [(&'static str, ColumnType); 11] = [
        ("bool", ColumnType::Bool),
        ("int32", ColumnType::Int32),
        ("int64", ColumnType::Int64),
        ("float32", ColumnType::Float32),
        ("float64", ColumnType::Float64),
        ("string", ColumnType::String),
        ("date", ColumnType::Date),
        ("timestamp[s]", ColumnType::Timestamp(TimeUnit::Second)),
        (
            "timestamp[ms]",
            ColumnType::Timestamp(TimeUnit::Millisecond),
        ),
        (
            "timestamp[us]",
            ColumnType::Timestamp(TimeUnit::Microsecond),
        ),
        ("timestamp[ns]", ColumnType::Timestamp(TimeUnit::Nanosecond)),
    ];
}

/// The unit of a `timestamp[...]` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Second,
    Millisecond,
    Microsecond,
    Nanosecond,
}

/// One entry of `partition_by`: folder `<name>=<value>/`. A `date` or `timestamp` column gives
/// its UTC day (`2026-12-05`); other columns their value as text, with `/`, `=`, `%` and control
/// characters percent-encoded. A null gives `__HIVE_DEFAULT_PARTITION__`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionKey {
    /// `name`: the folder's key. Default: the column's name.
    pub name: String,
    /// `column`, required: a column of the schema, of any type but a float.
    pub column: String,
}

/// `compression` of a Parquet sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// `"zstd"`.
    #[default]
    Zstd,
    /// `"snappy"`.
    Snappy,
    /// `"none"`.
    None,
}
