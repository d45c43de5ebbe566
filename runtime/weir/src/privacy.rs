//! `[privacy]` in force: the pipeline file's table made into the [`Redactor`] that every place
//! a record's content can leave the data path for human eyes goes through: error messages
//! (and with them dead-letter headers, log lines and spans), guest log lines, `weir tap`, and
//! with `[dead_letter] redact = true` the dead letters themselves.
//!
//! Owns: reading the key and building the redactor, and `scrub_failures`, which cleans a
//! batch's failure messages.

use std::collections::BTreeMap;
use std::sync::Arc;

use weir_config::{Pipeline, PrivacyMethod};
use weir_core::{Method, Record, Redactor, Scrub};

use crate::chain::{Emit, Emits, SpanOutcome, StageSpan};
use crate::error::EngineError;

/// The pipeline's redactor, `None` without `[privacy]`. The hash key is read here, once.
pub fn redactor(pipeline: &Pipeline) -> Result<Option<Arc<Redactor>>, EngineError> {
    let Some(privacy) = &pipeline.privacy else {
        return Ok(None);
    };
    let method = match &privacy.method {
        PrivacyMethod::Mask => Method::Mask,
        PrivacyMethod::Hash { key } => {
            let key = key
                .read()
                .map_err(|e| EngineError::Privacy(format!("key: {e}")))?;
            Method::Hash {
                key: Arc::from(key.into_bytes()),
            }
        }
    };
    Redactor::new(privacy.fields.clone(), privacy.headers.clone(), method)
        .map(|r| Some(Arc::new(r)))
        .map_err(|e| EngineError::Privacy(e.to_string()))
}

/// Cleans the failure messages of a batch, in its dead letters and in its spans, of the
/// sensitive texts of the records they are about: the input (`batch[i]`) and the record as it
/// entered the failing stage. Only inputs with a failure are read.
pub(crate) fn scrub_failures(
    privacy: &Redactor,
    batch: &[Record],
    emits: &mut [Emits],
    spans: &mut [StageSpan],
) {
    let mut scrubs: BTreeMap<usize, Scrub> = BTreeMap::new();
    for (origin, emits) in emits.iter_mut().enumerate() {
        for emit in emits.iter_mut() {
            if let Emit::DeadLetter {
                record, failure, ..
            } = emit
            {
                let scrub = scrubs
                    .entry(origin)
                    .or_insert_with(|| privacy.scrub_for(&batch[origin]));
                scrub.extend(privacy.scrub_for(record));
                if let std::borrow::Cow::Owned(clean) = scrub.apply(&failure.message) {
                    failure.message = clean;
                }
            }
        }
    }
    if scrubs.is_empty() {
        return;
    }
    for span in spans {
        if let (SpanOutcome::Failed(message), Some(scrub)) =
            (&mut span.outcome, scrubs.get(&span.origin))
            && let std::borrow::Cow::Owned(clean) = scrub.apply(message)
        {
            *message = clean;
        }
    }
}
