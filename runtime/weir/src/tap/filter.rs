//! What a tap client asks for: the query string of `GET /admin/tap`.
//!
//! Owns: [`TapFilter`], its parsing and its test of one record. Pure.

use weir_core::trace::TraceId;

/// Which tapped records a client sees. Every condition given must hold; a condition given more
/// than once (`stage`, `partition`) holds when any of its values does.
#[derive(Debug, Clone, PartialEq)]
pub struct TapFilter {
    /// `stage=NAME`: stages by name; none: every stage.
    pub stages: Vec<String>,
    /// `partition=N`: source partitions; none: every one.
    pub partitions: Vec<i32>,
    /// `key=K`: records whose key is exactly these bytes (UTF-8).
    pub key: Option<Vec<u8>>,
    /// `trace_id=HEX`: the records of one trace (32 hex digits).
    pub trace_id: Option<TraceId>,
    /// `sample=R`: the share of traces shown, 0 < R ≤ 1 (default 1). The choice is by trace
    /// id, so a trace shown is shown at every stage.
    pub sample: f64,
    /// `events=in,out,dead`: which events (default all three).
    pub events: Events,
}

/// Which of a stage's events a client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Events {
    pub input: bool,
    pub output: bool,
    pub dead: bool,
}

impl Default for TapFilter {
    fn default() -> Self {
        Self {
            stages: Vec::new(),
            partitions: Vec::new(),
            key: None,
            trace_id: None,
            sample: 1.0,
            events: Events {
                input: true,
                output: true,
                dead: true,
            },
        }
    }
}

/// One tapped record as the filter sees it.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub stage: &'a str,
    pub partition: i32,
    pub key: Option<&'a [u8]>,
    pub trace_id: &'a TraceId,
    pub event: super::EventKind,
}

impl TapFilter {
    /// The filter a query string asks for; the error says which parameter is wrong.
    pub fn parse(query: &str) -> Result<Self, String> {
        let mut filter = Self::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).ok_or_else(|| format!("{name}: bad escape"))?;
            match name {
                "stage" => filter.stages.push(value),
                "partition" => filter.partitions.push(
                    value
                        .parse()
                        .map_err(|_| format!("partition: {value:?} is not a number"))?,
                ),
                "key" => filter.key = Some(value.into_bytes()),
                "trace_id" => filter.trace_id = Some(parse_trace_id(&value)?),
                "sample" => {
                    let rate: f64 = value
                        .parse()
                        .map_err(|_| format!("sample: {value:?} is not a number"))?;
                    if !(rate > 0.0 && rate <= 1.0) {
                        return Err(format!("sample: {value} is not in (0, 1]"));
                    }
                    filter.sample = rate;
                }
                "events" => {
                    let mut events = Events {
                        input: false,
                        output: false,
                        dead: false,
                    };
                    for event in value.split(',') {
                        match event {
                            "in" => events.input = true,
                            "out" => events.output = true,
                            "dead" => events.dead = true,
                            other => {
                                return Err(format!(
                                    "events: unknown event {other:?} (in, out, dead)"
                                ));
                            }
                        }
                    }
                    filter.events = events;
                }
                other => {
                    return Err(format!(
                        "unknown parameter {other:?} (stage, partition, key, trace_id, sample, \
                         events)"
                    ));
                }
            }
        }
        Ok(filter)
    }

    /// Whether the client sees `record`.
    pub fn admits(&self, record: &Seen<'_>) -> bool {
        let event = match record.event {
            super::EventKind::In => self.events.input,
            super::EventKind::Out => self.events.output,
            super::EventKind::Dead => self.events.dead,
        };
        event
            && (self.stages.is_empty() || self.stages.iter().any(|s| s == record.stage))
            && (self.partitions.is_empty() || self.partitions.contains(&record.partition))
            && self.key.as_deref().is_none_or(|k| record.key == Some(k))
            && self.trace_id.as_ref().is_none_or(|t| t == record.trace_id)
            && (self.sample >= 1.0 || share(record.trace_id) < self.sample)
    }
}

/// Where a trace id falls in [0, 1): its last 8 bytes, which are random, as a fraction.
fn share(trace_id: &TraceId) -> f64 {
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id[8..]);
    u64::from_be_bytes(low) as f64 / (u64::MAX as f64 + 1.0)
}

/// A trace id in its 32-hex-digit form.
pub fn parse_trace_id(text: &str) -> Result<TraceId, String> {
    let text = text.trim();
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("trace_id: {text:?} is not 32 hex digits"));
    }
    let mut id = [0u8; 16];
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("checked hex");
    }
    Ok(id)
}

/// `text` with `%XX` escapes and `+` decoded; `None` for a bad escape or bytes not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `text` escaped for a query string.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::EventKind;
    use super::*;

    fn seen<'a>(stage: &'a str, key: Option<&'a [u8]>, trace_id: &'a TraceId) -> Seen<'a> {
        Seen {
            stage,
            partition: 1,
            key,
            trace_id,
            event: EventKind::Out,
        }
    }

    #[test]
    fn a_query_round_trips_through_encoding() {
        let key = "user 1&2=é";
        let query = format!(
            "stage=enrich&stage=score&partition=1&key={}&trace_id=0af7651916cd43dd8448eb211c80319c&sample=0.5&events=out,dead",
            percent_encode(key)
        );
        let f = TapFilter::parse(&query).unwrap();
        assert_eq!(f.stages, ["enrich", "score"]);
        assert_eq!(f.partitions, [1]);
        assert_eq!(f.key.as_deref(), Some(key.as_bytes()));
        assert_eq!(f.trace_id.unwrap()[0], 0x0a);
        assert_eq!(f.sample, 0.5);
        assert!(!f.events.input && f.events.output && f.events.dead);
    }

    #[test]
    fn bad_parameters_are_named() {
        for (query, names) in [
            ("partition=x", "partition"),
            ("sample=0", "sample"),
            ("sample=2", "sample"),
            ("trace_id=12", "trace_id"),
            ("events=in,sideways", "events"),
            ("colour=red", "colour"),
            ("key=%zz", "key"),
        ] {
            let error = TapFilter::parse(query).unwrap_err();
            assert!(error.contains(names), "{query}: {error}");
        }
    }

    #[test]
    fn every_condition_must_hold() {
        let t = [7u8; 16];
        let other = [8u8; 16];
        let f =
            TapFilter::parse("stage=a&key=k&trace_id=07070707070707070707070707070707").unwrap();
        assert!(f.admits(&seen("a", Some(b"k"), &t)));
        assert!(!f.admits(&seen("b", Some(b"k"), &t)));
        assert!(!f.admits(&seen("a", Some(b"j"), &t)));
        assert!(!f.admits(&seen("a", None, &t)));
        assert!(!f.admits(&seen("a", Some(b"k"), &other)));
        let only_in = TapFilter::parse("events=in").unwrap();
        assert!(!only_in.admits(&seen("a", None, &t)));
    }

    #[test]
    fn sampling_keeps_about_its_share_of_traces() {
        let f = TapFilter::parse("sample=0.25").unwrap();
        let mut ids = weir_core::trace::IdGenerator::default();
        let kept = (0..10_000)
            .filter(|_| f.admits(&seen("a", None, &ids.trace_id())))
            .count();
        assert!((2_000..3_000).contains(&kept), "{kept}");
    }
}
