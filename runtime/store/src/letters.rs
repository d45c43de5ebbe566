//! Dead letters as rows (`schema = "dead-letters"`): the failed record's key and value as
//! bytes, and the `weir.*` provenance headers of the letter as string columns
//! ([`weir_config::DEAD_LETTER_COLUMNS`]). Every letter fits: nothing is refused.
//!
//! Owns: the dead-letter columns. The provenance columns are added by [`crate::encode`].

use std::sync::Arc;

use arrow_array::{ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use weir_config::DEAD_LETTER_COLUMNS;
use weir_core::{Record, headers};

/// The header each string column is read from, in [`DEAD_LETTER_COLUMNS`] order after `key`
/// and `value`, and whether the column is nullable.
const FROM_HEADERS: [(&str, bool); 6] = [
    (headers::STAGE, false),
    (headers::MODULE_SHA256, false),
    (headers::ERROR_KIND, false),
    (headers::ERROR_CODE, true),
    (headers::ERROR_MESSAGE, false),
    (headers::ERROR_FIELD, true),
];

/// The schema of a dead-letter sink's columns, before provenance.
pub fn schema() -> SchemaRef {
    let [key, value, strings @ ..] = DEAD_LETTER_COLUMNS;
    let mut fields = vec![
        Field::new(key, DataType::Binary, true),
        Field::new(value, DataType::Binary, true),
    ];
    // A letter always has the non-nullable headers; should one lack them, the row says "".
    fields.extend(
        strings
            .iter()
            .zip(FROM_HEADERS)
            .map(|(name, (_, nullable))| Field::new(*name, DataType::Utf8, nullable)),
    );
    Arc::new(Schema::new(fields))
}

/// `letters` as one batch of [`schema`].
pub fn rows(schema: &SchemaRef, letters: &[&Record]) -> Result<RecordBatch, ArrowError> {
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(BinaryArray::from_iter(
            letters.iter().map(|r| r.key.as_deref()),
        )),
        Arc::new(BinaryArray::from_iter(
            letters.iter().map(|r| r.value.as_deref()),
        )),
    ];
    for (header, nullable) in FROM_HEADERS {
        let values = letters.iter().map(|r| {
            let text = r.header(header).map(String::from_utf8_lossy);
            match (text, nullable) {
                (None, false) => Some(String::new()),
                (text, _) => text.map(|t| t.into_owned()),
            }
        });
        columns.push(Arc::new(StringArray::from_iter(values)));
    }
    RecordBatch::try_new(Arc::clone(schema), columns)
}
