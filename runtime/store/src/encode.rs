//! JSON record values into Arrow: the declared schema, batch decoding with arrow-json, the
//! provenance columns, and the Hive-style folder of each row.
//!
//! Owns: every conversion from records to Arrow. Touches no file.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Int32Type, Int64Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{
    Array, ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
    UInt32Array,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use weir_config::{Column, ColumnType, PROVENANCE_COLUMNS, PartitionKey, TimeUnit};
use weir_core::Refused;

/// The Arrow schema of a store's declared columns.
pub fn value_schema(columns: &[Column]) -> SchemaRef {
    let fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(&c.name, data_type(c.data_type), c.nullable))
        .collect();
    Arc::new(Schema::new(fields))
}

/// The schema of the files: the declared columns, then the provenance columns.
pub fn file_schema(values: &Schema) -> SchemaRef {
    let [topic, partition, offset, timestamp, trace_id] = PROVENANCE_COLUMNS;
    let mut fields: Vec<Field> = values.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend([
        Field::new(topic, DataType::Utf8, false),
        Field::new(partition, DataType::Int32, false),
        Field::new(offset, DataType::Int64, false),
        Field::new(
            timestamp,
            timestamp_type(arrow_schema::TimeUnit::Millisecond),
            true,
        ),
        Field::new(trace_id, DataType::Utf8, true),
    ]);
    Arc::new(Schema::new(fields))
}

fn timestamp_type(unit: arrow_schema::TimeUnit) -> DataType {
    DataType::Timestamp(unit, Some("+00:00".into()))
}

fn data_type(column: ColumnType) -> DataType {
    use arrow_schema::TimeUnit as Unit;
    match column {
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Int32 => DataType::Int32,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float32 => DataType::Float32,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::String => DataType::Utf8,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp(unit) => timestamp_type(match unit {
            TimeUnit::Second => Unit::Second,
            TimeUnit::Millisecond => Unit::Millisecond,
            TimeUnit::Microsecond => Unit::Microsecond,
            TimeUnit::Nanosecond => Unit::Nanosecond,
        }),
    }
}

/// Decodes `values` (one JSON object each) into one batch of `schema`. Returns the batch of
/// the values that fit, in order, and the refusals of the others, by index into `values`.
///
/// The values are decoded together, in one arrow-json decoder; only when that fails are they
/// decoded one by one, to tell the values that fit from those that do not.
pub fn decode(
    schema: &SchemaRef,
    values: &[Option<&[u8]>],
) -> (Option<RecordBatch>, Vec<(usize, Refused)>) {
    if let Ok(batch) = decode_all(schema, values.iter().copied()) {
        return (batch, Vec::new());
    }
    let mut refused = Vec::new();
    let mut fit = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        match decode_all(schema, [*value]) {
            Ok(_) => fit.push((i, *value)),
            Err(error) => refused.push((i, refusal(error))),
        }
    }
    match decode_all(schema, fit.iter().map(|(_, value)| *value)) {
        Ok(batch) => (batch, refused),
        // Values that each fit fit together; should they not, none is taken.
        Err(error) => {
            let why = refusal(error);
            refused.extend(fit.into_iter().map(|(i, _)| (i, why.clone())));
            refused.sort_by_key(|(i, _)| *i);
            (None, refused)
        }
    }
}

/// Why a value does not fit.
#[derive(Debug)]
enum Misfit {
    NoValue,
    NotUtf8,
    NotOneObject,
    Arrow(ArrowError),
}

fn decode_all<'v>(
    schema: &SchemaRef,
    values: impl IntoIterator<Item = Option<&'v [u8]>>,
) -> Result<Option<RecordBatch>, Misfit> {
    let values = values.into_iter();
    let mut decoder = arrow_json::ReaderBuilder::new(Arc::clone(schema))
        .with_batch_size(values.size_hint().0.max(1))
        .build_decoder()
        .map_err(Misfit::Arrow)?;
    for (n, value) in values.enumerate() {
        let value = value.ok_or(Misfit::NoValue)?;
        std::str::from_utf8(value).map_err(|_| Misfit::NotUtf8)?;
        let read = decoder.decode(value).map_err(Misfit::Arrow)?;
        if read != value.len() || decoder.has_partial_record() || decoder.len() != n + 1 {
            return Err(Misfit::NotOneObject);
        }
    }
    decoder.flush().map_err(Misfit::Arrow)
}

/// A refusal naming the field at fault, when arrow-json's message names one.
fn refusal(misfit: Misfit) -> Refused {
    let reason = match misfit {
        Misfit::NoValue => "the record has no value".to_owned(),
        Misfit::NotUtf8 => "the value is not valid UTF-8".to_owned(),
        Misfit::NotOneObject => "the value is not exactly one JSON object".to_owned(),
        Misfit::Arrow(error) => error.to_string(),
    };
    Refused {
        field: field_named(&reason),
        reason: format!("the value does not fit the store's schema: {reason}"),
        code: None,
    }
}

/// The field an arrow error message names, as in `field 'user'` (a value of the wrong type) or
/// `Field { "user": Utf8 }` (a required field missing).
fn field_named(message: &str) -> Option<String> {
    if let Some(at) = message.find("Field { \"") {
        let name = &message[at + "Field { \"".len()..];
        return Some(name[..name.find('"')?].to_owned());
    }
    let at = message.find("field ")? + "field ".len();
    let rest = &message[at..];
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let name = &rest[1..];
    Some(name[..name.find(quote)?].to_owned())
}

/// The provenance of one row.
#[derive(Debug, Clone, Copy)]
pub struct Provenance<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub trace_id: Option<&'a str>,
}

/// `values` with the provenance columns appended, one provenance per row.
pub fn with_provenance(
    schema: &SchemaRef,
    values: &RecordBatch,
    rows: &[Provenance<'_>],
) -> Result<RecordBatch, ArrowError> {
    let mut columns: Vec<ArrayRef> = values.columns().to_vec();
    columns.push(Arc::new(StringArray::from_iter_values(
        rows.iter().map(|r| r.topic),
    )));
    columns.push(Arc::new(Int32Array::from_iter_values(
        rows.iter().map(|r| r.partition),
    )));
    columns.push(Arc::new(Int64Array::from_iter_values(
        rows.iter().map(|r| r.offset),
    )));
    columns.push(Arc::new(
        TimestampMillisecondArray::from_iter(rows.iter().map(|r| r.timestamp))
            .with_timezone("+00:00"),
    ));
    columns.push(Arc::new(StringArray::from_iter(
        rows.iter().map(|r| r.trace_id),
    )));
    RecordBatch::try_new(Arc::clone(schema), columns)
}

/// The rows of one folder: its name, its rows, and their indices in the batch they were taken
/// from (`None`: all of them, in order).
pub type FolderRows = (String, RecordBatch, Option<Vec<u32>>);

/// The rows of `batch` grouped by their folder under the store's path (`""` without
/// `partition_by`), each group in row order with the indices of its rows in `batch` (`None`:
/// all of them), groups in the order they first appear.
pub fn split_by_folder(
    batch: &RecordBatch,
    keys: &[PartitionKey],
) -> Result<Vec<FolderRows>, ArrowError> {
    if keys.is_empty() || batch.num_rows() == 0 {
        return Ok(vec![(String::new(), batch.clone(), None)]);
    }
    let mut columns = Vec::with_capacity(keys.len());
    for key in keys {
        let column = batch.column_by_name(&key.column).ok_or_else(|| {
            ArrowError::SchemaError(format!("no column {:?} to partition by", key.column))
        })?;
        columns.push((key.name.as_str(), column));
    }
    let mut groups: Vec<(String, Vec<u32>)> = Vec::new();
    for row in 0..batch.num_rows() {
        let folder = columns
            .iter()
            .map(|(name, column)| format!("{name}={}", folder_value(column.as_ref(), row)))
            .collect::<Vec<_>>()
            .join("/");
        match groups.iter_mut().find(|(f, _)| *f == folder) {
            Some((_, rows)) => rows.push(row as u32),
            None => groups.push((folder, vec![row as u32])),
        }
    }
    groups
        .into_iter()
        .map(|(folder, rows)| {
            let indices = UInt32Array::from_iter_values(rows.iter().copied());
            let taken = arrow_select::take::take_record_batch(batch, &indices)?;
            Ok((folder, taken, Some(rows)))
        })
        .collect()
}

/// The folder value of row `row` of `column`: a day for dates and timestamps, else the value
/// as text, percent-encoded where it could break a path.
fn folder_value(column: &dyn Array, row: usize) -> String {
    if column.is_null(row) {
        return "__HIVE_DEFAULT_PARTITION__".to_owned();
    }
    let text = match column.data_type() {
        DataType::Date32 => return day(i64::from(column.as_primitive::<Date32Type>().value(row))),
        DataType::Timestamp(unit, _) => {
            use arrow_schema::TimeUnit as Unit;
            let (value, per_day) = match unit {
                Unit::Second => (
                    column.as_primitive::<TimestampSecondType>().value(row),
                    86_400,
                ),
                Unit::Millisecond => (
                    column.as_primitive::<TimestampMillisecondType>().value(row),
                    86_400_000,
                ),
                Unit::Microsecond => (
                    column.as_primitive::<TimestampMicrosecondType>().value(row),
                    86_400_000_000,
                ),
                Unit::Nanosecond => (
                    column.as_primitive::<TimestampNanosecondType>().value(row),
                    86_400_000_000_000,
                ),
            };
            return day(value.div_euclid(per_day));
        }
        DataType::Utf8 => column.as_string::<i32>().value(row).to_owned(),
        DataType::Int32 => column.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => column.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::Boolean => column.as_boolean().value(row).to_string(),
        other => unreachable!("validation refuses partitioning by a {other} column"),
    };
    escape(&text)
}

/// `text` with the characters that could break a path or a Hive key percent-encoded.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || matches!(c, '/' | '\\' | '=' | '%' | ':' | '#' | '"' | '\'') {
            let mut bytes = [0; 4];
            for b in c.encode_utf8(&mut bytes).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    match out.as_str() {
        "" => "__HIVE_DEFAULT_PARTITION__".to_owned(),
        "." | ".." => out.replace('.', "%2E"),
        _ => out,
    }
}

/// The UTC day `days` after 1970-01-01, as `YYYY-MM-DD` (Howard Hinnant's civil-from-days).
pub fn day(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
