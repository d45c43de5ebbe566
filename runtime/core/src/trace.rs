//! W3C Trace Context (`traceparent`, `tracestate`) as Kafka record headers.
//!
//! Weir reads an input record's `traceparent` to continue its trace, and writes a `traceparent`
//! into every output record whose parent is the span of the stage that produced it. Parsing
//! follows the W3C Trace Context recommendation, level 1: `00-<32 hex>-<16 hex>-<2 hex>`, lower
//! case, with all-zero trace and span ids invalid; a higher version is read by its first four
//! fields, as the recommendation asks.

use crate::{Bytes, Header, Headers};

/// Header carrying the trace id, parent span id and flags.
pub const TRACEPARENT: &str = "traceparent";
/// Header carrying vendor-specific trace state, passed through unchanged.
pub const TRACESTATE: &str = "tracestate";

/// A 16-byte trace id.
pub type TraceId = [u8; 16];
/// An 8-byte span id.
pub type SpanId = [u8; 8];

/// The trace context of a record: which trace it belongs to and which span is its parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: TraceId,
    /// The span the record's processing descends from.
    pub span_id: SpanId,
    /// Whether the upstream sampler kept the trace (the `sampled` flag).
    pub sampled: bool,
    /// The raw `tracestate` header, carried through unchanged.
    pub tracestate: Option<Bytes>,
}

/// What an input record's headers say about its trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A valid `traceparent`: the record continues that trace.
    Continue(TraceContext),
    /// No `traceparent`: the record starts a new trace.
    Absent,
    /// A `traceparent` that does not parse: the record starts a new trace, and it is counted.
    Invalid,
}

impl Incoming {
    /// Reads `traceparent` and `tracestate` from `headers`.
    pub fn from_headers(headers: &Headers) -> Self {
        match headers.get(TRACEPARENT) {
            None => Self::Absent,
            Some(value) => match value.and_then(parse_traceparent) {
                Some((trace_id, span_id, sampled)) => Self::Continue(TraceContext {
                    trace_id,
                    span_id,
                    sampled,
                    tracestate: headers
                        .get(TRACESTATE)
                        .flatten()
                        .map(Bytes::copy_from_slice),
                }),
                None => Self::Invalid,
            },
        }
    }
}

/// Parses a `traceparent` value into (trace id, parent span id, sampled).
pub fn parse_traceparent(value: &[u8]) -> Option<(TraceId, SpanId, bool)> {
    let s = std::str::from_utf8(value).ok()?.trim();
    let mut parts = s.split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let flags = parts.next()?;
    let rest = parts.next();
    if version.len() != 2 || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let version = hex_byte(version)?;
    // Version ff is forbidden; version 00 has exactly four fields; later versions may add more.
    if version == 0xff || (version == 0 && rest.is_some()) {
        return None;
    }
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    decode_hex(trace, &mut trace_id)?;
    decode_hex(span, &mut span_id)?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    let flags = hex_byte(flags)?;
    Some((trace_id, span_id, flags & 1 == 1))
}

/// Length of a version-00 `traceparent`: `00-` 32 hex digits `-` 16 hex digits `-` 2 hex digits.
pub const TRACEPARENT_LEN: usize = 55;

/// A version-00 `traceparent`, as the bytes of its header value, written without allocating
/// (the lane stamps one on every output).
pub fn write_traceparent(
    trace_id: &TraceId,
    span_id: &SpanId,
    sampled: bool,
) -> [u8; TRACEPARENT_LEN] {
    let mut out = [0u8; TRACEPARENT_LEN];
    out[..3].copy_from_slice(b"00-");
    hex_into(&mut out[3..35], trace_id);
    out[35] = b'-';
    hex_into(&mut out[36..52], span_id);
    out[52..].copy_from_slice(if sampled { b"-01" } else { b"-00" });
    out
}

/// Formats a version-00 `traceparent`.
pub fn format_traceparent(trace_id: &TraceId, span_id: &SpanId, sampled: bool) -> String {
    write_traceparent(trace_id, span_id, sampled)
        .iter()
        .map(|&b| char::from(b))
        .collect()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    push_hex(&mut s, bytes);
    s
}

/// Replaces the trace headers of `headers` with `traceparent` (and `tracestate` when given).
pub fn set_headers(
    headers: &mut Headers,
    traceparent: impl AsRef<[u8]>,
    tracestate: Option<&[u8]>,
) {
    let ours = [
        Some(Header::new(TRACEPARENT, Some(traceparent.as_ref()))),
        tracestate.map(|state| Header::new(TRACESTATE, Some(state))),
    ];
    headers.retain_extend(
        |h| h.name != TRACEPARENT && h.name != TRACESTATE,
        ours.into_iter().flatten(),
    );
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

fn push_hex(s: &mut String, bytes: &[u8]) {
    for &b in bytes {
        s.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
        s.push(char::from(HEX_DIGITS[usize::from(b & 0xf)]));
    }
}

/// Lower-case hex of `bytes` into `out`, which holds exactly two digits per byte.
fn hex_into(out: &mut [u8], bytes: &[u8]) {
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX_DIGITS[usize::from(b >> 4)];
        pair[1] = HEX_DIGITS[usize::from(b & 0xf)];
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn hex_byte(s: &str) -> Option<u8> {
    let b = s.as_bytes();
    Some(hex_digit(b[0])? << 4 | hex_digit(b[1])?)
}

fn decode_hex(s: &str, out: &mut [u8]) -> Option<()> {
    for (i, pair) in s.as_bytes().chunks_exact(2).enumerate() {
        out[i] = hex_digit(pair[0])? << 4 | hex_digit(pair[1])?;
    }
    Some(())
}

/// A fast generator of trace and span ids, one per lane (not for cryptography: ids need only be
/// unique with overwhelming probability). SplitMix64 seeded from the OS-seeded std hasher.
#[derive(Debug, Clone)]
pub struct IdGenerator {
    state: u64,
}

impl Default for IdGenerator {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        );
        Self { state: h.finish() }
    }
}

impl IdGenerator {
    fn next_u64(&mut self) -> u64 {
        loop {
            self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            if z != 0 {
                return z;
            }
        }
    }

    /// A new non-zero span id.
    pub fn span_id(&mut self) -> SpanId {
        self.next_u64().to_be_bytes()
    }

    /// A new non-zero trace id.
    pub fn trace_id(&mut self) -> TraceId {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        id[8..].copy_from_slice(&self.next_u64().to_be_bytes());
        id
    }

    /// A uniform number in `[0, 1)`, for sampling.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_formats_the_w3c_example() {
        let (t, s, sampled) = parse_traceparent(VALID.as_bytes()).unwrap();
        assert!(sampled);
        assert_eq!(hex(&t), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&s), "00f067aa0ba902b7");
        assert_eq!(format_traceparent(&t, &s, true), VALID);
        assert_eq!(
            format_traceparent(&t, &s, false),
            VALID.replace("-01", "-00")
        );
    }

    #[test]
    fn every_byte_is_written_as_the_formatter_writes_it() {
        let mut t = [0u8; 16];
        let mut s = [0u8; 8];
        // From 1: ids of all zeros are not valid, and 0 still fills the bytes not yet reached.
        for b in 1..=255u8 {
            t[usize::from(b) % 16] = b;
            s[usize::from(b) % 8] = b.wrapping_mul(7);
            let want = format!(
                "00-{}-{}-01",
                t.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                s.iter().map(|b| format!("{b:02x}")).collect::<String>()
            );
            assert_eq!(&write_traceparent(&t, &s, true)[..], want.as_bytes());
            assert_eq!(format_traceparent(&t, &s, true), want);
            assert_eq!(parse_traceparent(want.as_bytes()).map(|p| p.2), Some(true));
        }
    }

    #[test]
    fn rejects_what_the_recommendation_rejects() {
        for bad in [
            "",
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad.as_bytes()), None, "{bad:?}");
        }
        // A later version may carry more fields.
        assert!(
            parse_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x")
                .is_some()
        );
    }

    #[test]
    fn reads_headers_and_replaces_them() {
        let mut h = Headers::new();
        assert_eq!(Incoming::from_headers(&h), Incoming::Absent);
        h.push(TRACEPARENT, Some(b"nope"));
        assert_eq!(Incoming::from_headers(&h), Incoming::Invalid);
        set_headers(&mut h, VALID, Some(b"k=v"));
        match Incoming::from_headers(&h) {
            Incoming::Continue(c) => {
                assert!(c.sampled);
                assert_eq!(c.tracestate.as_deref(), Some(&b"k=v"[..]));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(h.len(), 2, "the old traceparent was replaced");
    }

    #[test]
    fn ids_are_non_zero_and_distinct() {
        let mut g = IdGenerator::default();
        let a = g.span_id();
        let b = g.span_id();
        assert_ne!(a, b);
        assert_ne!(a, [0; 8]);
        assert_ne!(g.trace_id(), g.trace_id());
        let u = g.unit();
        assert!((0.0..1.0).contains(&u));
    }
}
