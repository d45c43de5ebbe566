//! Dead letters: the record as it entered the failing stage, plus provenance headers (see
//! [`weir_core::headers`]), and the shorter letter sent when the sink refuses the full one.
//!
//! Owns: the shape of a dead letter. Touches nothing else: pure functions of a record.

use weir_core::{Failure, Header, Record, headers};
use weir_kafka::TopicPartition;

use crate::chain::StageInfo;

/// `record` (as it entered stage `stage` of `pipeline`, read from `source`) with the
/// provenance of its failure in headers. Headers named `weir.*` that came with the input are
/// dropped first: whoever produced the input could forge them.
pub(super) fn dead_letter_record(
    pipeline: &str,
    stage: &StageInfo,
    source: &TopicPartition,
    mut record: Record,
    failure: &Failure,
) -> Record {
    let (partition, offset) = (source.partition.to_string(), record.offset.to_string());
    let provenance = [
        (headers::PIPELINE, pipeline),
        (headers::STAGE, &stage.name),
        (headers::MODULE_SHA256, &stage.module_sha256),
        (headers::ERROR_KIND, failure.kind.as_str()),
        (headers::ERROR_CODE, &failure.code),
        (headers::ERROR_MESSAGE, &failure.message),
        (headers::SOURCE_TOPIC, &source.topic),
        (headers::SOURCE_PARTITION, &partition),
        (headers::SOURCE_OFFSET, &offset),
    ];
    record.headers.retain(|h| !headers::is_provenance(h.name));
    record.headers.extend(
        provenance
            .iter()
            // The code is a stage error's own; other kinds have none.
            .filter(|(name, value)| *name != headers::ERROR_CODE || !value.is_empty())
            .map(|(name, value)| Header::new(name, Some(value.as_bytes()))),
    );
    record
}

/// `letter` without its key, value and headers of its own (provenance and trace context kept),
/// with a header saying how many bytes its key and value held.
pub(super) fn truncated_letter(mut letter: Record) -> Record {
    let size =
        letter.key.as_ref().map_or(0, |k| k.len()) + letter.value.as_ref().map_or(0, |v| v.len());
    letter.key = None;
    letter.value = None;
    letter.headers.retain(|h| {
        headers::is_provenance(h.name) || h.name == "traceparent" || h.name == "tracestate"
    });
    letter
        .headers
        .push(headers::TRUNCATED, Some(size.to_string().as_bytes()));
    letter
}
