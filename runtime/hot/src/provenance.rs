//! What both hot sinks read off the outputs they write: each output's trace, its index among
//! the outputs of its input record (`weir_output`), and the traces a statement links to.

use std::sync::Arc;

use weir_core::trace::{SpanId, TRACEPARENT, TraceId, parse_traceparent};
use weir_core::{InputAck, Output, Record};

use crate::MAX_LINKS;

/// A record's `traceparent`: (trace id, span id, sampled).
pub(crate) fn trace(record: &Record) -> Option<(TraceId, SpanId, bool)> {
    record
        .headers
        .get(TRACEPARENT)
        .flatten()
        .and_then(parse_traceparent)
}

/// Each output's index among the outputs of its input record, in order: 0 for a map, 0..n for
/// a flat-map. Outputs of one input are next to each other in a write.
pub(crate) fn output_indexes<'a>(outputs: &'a [Output<'_>]) -> impl Iterator<Item = i64> + 'a {
    let mut previous: Option<(*const InputAck, i64)> = None;
    outputs.iter().map(move |output| {
        let ack = Arc::as_ptr(output.ack);
        let nth = match previous {
            Some((p, n)) if p == ack => n + 1,
            _ => 0,
        };
        previous = Some((ack, nth));
        nth
    })
}

/// Distinct sampled traces among `traces`, at most [`MAX_LINKS`]: what a statement's span links
/// to.
pub(crate) fn links(
    traces: impl IntoIterator<Item = Option<(TraceId, SpanId, bool)>>,
) -> Vec<(TraceId, SpanId)> {
    let mut links: Vec<(TraceId, SpanId)> = Vec::new();
    for (trace_id, span_id, _) in traces.into_iter().flatten().filter(|t| t.2) {
        if links.len() == MAX_LINKS {
            break;
        }
        if !links.iter().any(|(t, _)| *t == trace_id) {
            links.push((trace_id, span_id));
        }
    }
    links
}
