//! The host's fixed caps on what a guest may cost it, beyond the stage's `limits` (memory, time):
//! log lines, outputs, error texts and the size of a store. A guest that goes over a cap loses
//! what is over (log lines, log fields, error text) or fails the record with kind `limit`
//! (outputs); it never makes the host keep an unbounded amount of anything.
//!
//! Owns the caps' values and the helpers that apply them to texts and outputs; the store-size
//! caps are applied by the limiter (`state.rs`).

use weir_core::{Failure, FailureKind, Outputs, Record, StageOutcome};

/// Log lines one stage call may write; later lines are dropped and counted.
pub const MAX_LOG_LINES_PER_CALL: u32 = 256;
/// Bytes of log text (messages, field names and values) one stage call may write; a line that
/// would go past it is dropped and counted.
pub const MAX_LOG_BYTES_PER_CALL: usize = 256 * 1024;
/// Bytes of a log line's message; the rest is cut.
pub const MAX_LOG_MESSAGE: usize = 8 * 1024;
/// Fields of one log line; later fields are dropped and counted.
pub const MAX_LOG_FIELDS: usize = 16;
/// Bytes of a log field's name; the rest is cut.
pub const MAX_LOG_FIELD_NAME: usize = 64;
/// Bytes of a log field's value; the rest is cut.
pub const MAX_LOG_FIELD_VALUE: usize = 1024;

/// Outputs one input record may have; a record with more fails with kind `limit`.
pub const MAX_OUTPUTS_PER_INPUT: usize = 10_000;
/// Output bytes one batch may produce, unless the stage's `limits.memory` is larger (then that).
/// Each output counts its key, value and headers, whether new or taken from its input (a guest
/// can repeat its input at no cost in its own memory), plus [`OUTPUT_OVERHEAD`]. The record whose
/// outputs would go past it fails with kind `limit` and its outputs count for nothing; the
/// records after it are judged against what is left.
pub const MAX_OUTPUT_BYTES_PER_BATCH: u64 = 256 * 1024 * 1024;
/// What an output counts beyond its fields: about what the host keeps per record.
pub const OUTPUT_OVERHEAD: u64 = 128;

/// Bytes of a guest's error code (in dead-letter headers and logs); the rest is cut.
pub const MAX_ERROR_CODE: usize = 128;
/// Bytes of a guest's error message, and of a trap message that quotes the guest (a panic
/// message, a backtrace with the guest's function names); the rest is cut.
pub const MAX_ERROR_MESSAGE: usize = 1024;

/// What a cut text ends with.
pub const TRUNCATED: &str = "…[truncated]";

/// Core module instances one store may hold. Measured: a Rust stage instantiates 3 core
/// modules, a C or JavaScript stage 4, a componentize-py Python stage 14 (its libraries are
/// modules of their own, and native Python extensions would add more).
pub const MAX_INSTANCES: usize = 64;
/// Tables one store may hold. Measured: every example stage defines 2.
pub const MAX_TABLES: usize = 16;
/// Linear memories one store may hold. Measured: every example stage defines 1.
pub const MAX_MEMORIES: usize = 8;
/// Elements one table may grow to.
pub const MAX_TABLE_ELEMENTS: usize = 1_000_000;
/// What one table element counts against a stage's `limits.memory`: the host keeps a
/// pointer-sized slot per element (a function reference).
pub const TABLE_ELEMENT_BYTES: usize = 8;

/// Cuts `text` to at most `max` bytes (at a character boundary) and marks the cut with
/// [`TRUNCATED`]; the result is at most `max + TRUNCATED.len()` bytes. Returns whether it cut.
pub fn truncate(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push_str(TRUNCATED);
    true
}

/// A guest's error for one record, its code and message cut to their caps.
pub(crate) fn stage_error(mut code: String, mut message: String) -> Failure {
    truncate(&mut code, MAX_ERROR_CODE);
    truncate(&mut message, MAX_ERROR_MESSAGE);
    Failure::stage_error(code, message)
}

/// The output bytes one batch of a stage whose `limits.memory` is `memory` may produce.
pub(crate) fn output_bytes_cap(memory: u64) -> u64 {
    MAX_OUTPUT_BYTES_PER_BATCH.max(memory)
}

/// What an output counts against [`MAX_OUTPUT_BYTES_PER_BATCH`].
fn output_bytes(r: &Record) -> u64 {
    let len = |b: &Option<weir_core::Bytes>| b.as_ref().map_or(0, |b| b.len() as u64);
    len(&r.key) + len(&r.value) + r.headers.encoded_len() as u64 + OUTPUT_OVERHEAD
}

/// Holds one batch's outputs to the caps.
#[derive(Debug)]
pub(crate) struct OutputBudget {
    left: u64,
    cap: u64,
}

impl OutputBudget {
    pub fn new(cap: u64) -> Self {
        Self { left: cap, cap }
    }

    /// The failure of an input whose entry holds `count` outputs, when that is over the cap.
    pub fn too_many(count: usize) -> Failure {
        Failure::new(
            FailureKind::Limit,
            format!(
                "the record has {count} outputs, more than the {MAX_OUTPUTS_PER_INPUT} one input \
                 may have"
            ),
        )
    }

    /// Charges `outputs` to the batch, or fails the record they belong to when they do not fit
    /// in what is left (they are then not charged).
    pub fn charge(&mut self, outputs: Vec<Record>) -> StageOutcome {
        if outputs.len() > MAX_OUTPUTS_PER_INPUT {
            return Err(Self::too_many(outputs.len()));
        }
        let bytes: u64 = outputs.iter().map(output_bytes).sum();
        if bytes > self.left {
            return Err(Failure::new(
                FailureKind::Limit,
                format!(
                    "the record's outputs take {bytes} bytes, and with the outputs before it in \
                     its batch that is more than the {} bytes one batch may produce",
                    self.cap
                ),
            ));
        }
        self.left -= bytes;
        Ok(Outputs::Records(outputs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_cuts_at_a_character_boundary_and_marks_the_cut() {
        let mut short = "short".to_owned();
        assert!(!truncate(&mut short, 5));
        assert_eq!(short, "short");

        // 'é' is two bytes: a cut at 3 would split the second one.
        let mut s = "éééé".to_owned();
        assert!(truncate(&mut s, 3));
        assert_eq!(s, format!("é{TRUNCATED}"));

        let mut long = "x".repeat(10_000);
        assert!(truncate(&mut long, MAX_ERROR_MESSAGE));
        assert_eq!(long.len(), MAX_ERROR_MESSAGE + TRUNCATED.len());
        assert!(long.ends_with(TRUNCATED));
    }

    #[test]
    fn guest_errors_are_capped() {
        let f = stage_error("c".repeat(5000), "m".repeat(1 << 20));
        assert_eq!(f.kind, FailureKind::StageError);
        assert_eq!(f.code.len(), MAX_ERROR_CODE + TRUNCATED.len());
        assert_eq!(f.message.len(), MAX_ERROR_MESSAGE + TRUNCATED.len());
        let f = stage_error("bad-json".into(), "not JSON".into());
        assert_eq!(
            (f.code.as_str(), f.message.as_str()),
            ("bad-json", "not JSON")
        );
    }

    fn record(value_len: usize) -> Record {
        Record {
            value: Some(vec![b'v'; value_len].into()),
            ..Record::default()
        }
    }

    #[test]
    fn output_budget_fails_the_record_that_goes_over_and_keeps_the_rest() {
        let per_output = 1000 + OUTPUT_OVERHEAD;
        let mut budget = OutputBudget::new(3 * per_output);
        assert!(budget.charge(vec![record(1000), record(1000)]).is_ok());
        let over = budget.charge(vec![record(1000), record(1000)]).unwrap_err();
        assert_eq!(over.kind, FailureKind::Limit);
        assert!(over.message.contains("bytes"), "{over}");
        // The failed record was not charged: one more output still fits, two do not.
        assert!(budget.charge(vec![record(1000)]).is_ok());
        assert!(budget.charge(vec![record(0)]).is_err());
        assert!(
            budget.charge(Vec::new()).is_ok(),
            "a filtered record costs nothing"
        );
    }

    #[test]
    fn output_budget_caps_outputs_per_input() {
        let mut budget = OutputBudget::new(u64::MAX);
        let ok = budget.charge(vec![Record::default(); MAX_OUTPUTS_PER_INPUT]);
        assert!(ok.is_ok());
        let over = budget
            .charge(vec![Record::default(); MAX_OUTPUTS_PER_INPUT + 1])
            .unwrap_err();
        assert_eq!(over.kind, FailureKind::Limit);
        assert!(over.message.contains("10001 outputs"), "{over}");
    }

    #[test]
    fn the_batch_byte_cap_grows_with_the_memory_limit() {
        assert_eq!(output_bytes_cap(64 << 20), MAX_OUTPUT_BYTES_PER_BATCH);
        assert_eq!(output_bytes_cap(1 << 30), 1 << 30);
    }
}
