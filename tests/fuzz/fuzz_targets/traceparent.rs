//! Arbitrary bytes as a record's `traceparent` header, as they come from Kafka.
//!
//! Checks that parsing never panics; that what parses has non-zero ids and formats to a
//! `traceparent` that parses back to the same context; that a version-00 value is accepted only
//! in its one form (what `format_traceparent` writes, but for the flags' other bits); and that
//! `Incoming::from_headers` and `set_headers` agree with the parser.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_core::Headers;
use weir_core::trace::{
    Incoming, TRACEPARENT, TRACESTATE, format_traceparent, parse_traceparent, set_headers,
};

const OTHER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fuzz_target!(|data: &[u8]| {
    let parsed = parse_traceparent(data);

    // The first `traceparent` header decides; `tracestate` comes along with a valid one.
    let mut headers = Headers::new();
    headers.push(TRACESTATE, Some(b"k=v"));
    headers.push(TRACEPARENT, Some(data));
    headers.push(TRACEPARENT, Some(OTHER.as_bytes()));
    match (Incoming::from_headers(&headers), parsed) {
        (Incoming::Continue(c), Some((trace_id, span_id, sampled))) => {
            assert_eq!(
                (c.trace_id, c.span_id, c.sampled),
                (trace_id, span_id, sampled)
            );
            assert_eq!(c.tracestate.as_deref(), Some(&b"k=v"[..]));
        }
        (Incoming::Invalid, None) => {}
        (incoming, parsed) => panic!("from_headers gave {incoming:?}, the parser {parsed:?}"),
    }

    let Some((trace_id, span_id, sampled)) = parsed else {
        return;
    };
    assert_ne!(trace_id, [0; 16]);
    assert_ne!(span_id, [0; 8]);

    let formatted = format_traceparent(&trace_id, &span_id, sampled);
    assert_eq!(formatted.len(), 55);
    assert_eq!(
        parse_traceparent(formatted.as_bytes()),
        Some((trace_id, span_id, sampled)),
        "{formatted} does not parse back"
    );

    // Version 00 has exactly one spelling, apart from the flags' unused bits.
    let text = std::str::from_utf8(data).unwrap().trim();
    if text.starts_with("00") {
        assert_eq!(text.len(), 55, "{text:?}");
        assert_eq!(&text[..53], &formatted[..53]);
        let flags = u8::from_str_radix(&text[53..], 16).unwrap();
        assert_eq!(flags & 1 == 1, sampled);
        assert_eq!(text[53..].to_ascii_lowercase(), text[53..]);
    }

    // Writing the context into a record's headers replaces the old ones; it reads back.
    set_headers(&mut headers, &formatted, Some(data));
    assert_eq!(headers.len(), 2);
    match Incoming::from_headers(&headers) {
        Incoming::Continue(c) => {
            assert_eq!(
                (c.trace_id, c.span_id, c.sampled),
                (trace_id, span_id, sampled)
            );
            assert_eq!(c.tracestate.as_deref(), Some(data));
        }
        other => panic!("{formatted} reads back as {other:?}"),
    }
});
