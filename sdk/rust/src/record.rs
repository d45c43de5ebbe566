//! The record a stage receives and returns.

use std::fmt;

use weir_wire::{Header, Headers};

use crate::Error;

/// A Kafka record as a stage sees it: owned, so a stage can change it in place and return it.
///
/// A record keeps the source offset of the record that entered the pipeline, its timestamp
/// (milliseconds since the Unix epoch), an optional key, an optional value and its headers. A
/// stage returns the records it wants written: usually the input changed in place, or new ones
/// made with [`Record::new`] (which keep the input's timestamp unless given one).
///
/// ```
/// use weir_sdk::Record;
///
/// let mut r = Record::new(r#"{"user":"u1"}"#).with_key("u1");
/// r.set_header("source", "web");
/// assert_eq!(r.value_str().unwrap(), r#"{"user":"u1"}"#);
/// assert_eq!(r.key(), Some(&b"u1"[..]));
/// assert_eq!(r.header("source"), Some(&b"web"[..]));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Record(weir_wire::Record);

impl Record {
    /// A record with this value, no key, no headers and no timestamp (on output: the input's).
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Self(weir_wire::Record {
            value: Some(value.into().into()),
            ..Default::default()
        })
    }

    /// The source offset of the record this one derives from.
    pub fn offset(&self) -> i64 {
        self.0.offset
    }

    /// Milliseconds since the Unix epoch, if the record has a timestamp.
    pub fn timestamp(&self) -> Option<i64> {
        self.0.timestamp
    }

    /// Sets the timestamp (milliseconds since the Unix epoch).
    pub fn set_timestamp(&mut self, ms: i64) {
        self.0.timestamp = Some(ms);
    }

    /// Returns the record with this timestamp.
    pub fn with_timestamp(mut self, ms: i64) -> Self {
        self.set_timestamp(ms);
        self
    }

    /// The key; `None` is a null Kafka key.
    pub fn key(&self) -> Option<&[u8]> {
        self.0.key.as_deref()
    }

    /// Sets the key.
    pub fn set_key(&mut self, key: impl Into<Vec<u8>>) {
        self.0.key = Some(key.into().into());
    }

    /// Returns the record with this key.
    pub fn with_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.set_key(key);
        self
    }

    /// Takes the key out, leaving a null key.
    pub fn take_key(&mut self) -> Option<Vec<u8>> {
        self.0.key.take().map(Vec::from)
    }

    /// The value; `None` is a null Kafka value (a tombstone).
    pub fn value(&self) -> Option<&[u8]> {
        self.0.value.as_deref()
    }

    /// The value as UTF-8 text. Errors: `missing-value` (null value), `bad-utf8`.
    pub fn value_str(&self) -> Result<&str, Error> {
        let v = self.value_required()?;
        std::str::from_utf8(v)
            .map_err(|e| Error::new("bad-utf8", format!("value is not UTF-8: {e}")))
    }

    /// The value parsed as JSON into `T` (which may borrow from the record). Errors:
    /// `missing-value` (null value), `bad-json`.
    #[cfg(feature = "serde")]
    pub fn value_json<'a, T: serde::Deserialize<'a>>(&'a self) -> Result<T, Error> {
        Ok(serde_json::from_slice(self.value_required()?)?)
    }

    fn value_required(&self) -> Result<&[u8], Error> {
        self.value()
            .ok_or_else(|| Error::new("missing-value", "the record has a null value"))
    }

    /// Sets the value.
    pub fn set_value(&mut self, value: impl Into<Vec<u8>>) {
        self.0.value = Some(value.into().into());
    }

    /// Sets the value to `value` serialised as JSON.
    #[cfg(feature = "serde")]
    pub fn set_value_json<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.set_value(serde_json::to_vec(value)?);
        Ok(())
    }

    /// Returns the record with this value.
    pub fn with_value(mut self, value: impl Into<Vec<u8>>) -> Self {
        self.set_value(value);
        self
    }

    /// Takes the value out, leaving a null value.
    pub fn take_value(&mut self) -> Option<Vec<u8>> {
        self.0.value.take().map(Vec::from)
    }

    /// The value of the first header called `name`; `None` if there is none or its value is null.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.0.header(name)
    }

    /// [`Record::header`] as UTF-8 text; `None` also if the value is not UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Sets header `name` to `value`: replaces the first header of that name in place and drops
    /// any others of that name, or appends one.
    pub fn set_header(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        let value = value.into();
        let mut placed = false;
        let mut headers = Headers::new();
        headers.extend(self.0.headers.iter().filter_map(|h| {
            if h.name != name {
                Some(h)
            } else if !placed {
                placed = true;
                Some(Header::new(name, Some(&value)))
            } else {
                None
            }
        }));
        if !placed {
            headers.push(name, Some(&value));
        }
        self.0.headers = headers;
    }

    /// Returns the record with header `name` set to `value` (see [`Record::set_header`]).
    pub fn with_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.set_header(name, value);
        self
    }

    /// Removes every header called `name`.
    pub fn remove_header(&mut self, name: &str) {
        self.0.headers.retain(|h| h.name != name);
    }

    /// All headers in order (`headers().iter()`); Kafka allows repeated names and null values.
    pub fn headers(&self) -> &Headers {
        &self.0.headers
    }

    /// The headers, for changes the helpers above do not cover.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.0.headers
    }

    /// The record as the batch encoding's owned record.
    pub fn as_wire(&self) -> &weir_wire::Record {
        &self.0
    }
}

impl From<weir_wire::Record> for Record {
    fn from(r: weir_wire::Record) -> Self {
        Self(r)
    }
}

impl From<Record> for weir_wire::Record {
    fn from(r: Record) -> Self {
        r.0
    }
}

/// Shows keys, values and headers as text when they are UTF-8, which keeps test failures legible.
impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<_> = self
            .0
            .headers
            .iter()
            .map(|h| (h.name, h.value.map(Text)))
            .collect();
        f.debug_struct("Record")
            .field("offset", &self.0.offset)
            .field("timestamp", &self.0.timestamp)
            .field("key", &self.key().map(Text))
            .field("value", &self.value().map(Text))
            .field("headers", &headers)
            .finish()
    }
}

struct Text<'a>(&'a [u8]);

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(self.0) {
            Ok(s) => fmt::Debug::fmt(s, f),
            Err(_) => write!(f, "b\"{}\"", self.0.escape_ascii()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_header_replaces_the_first_and_drops_the_rest() {
        let mut r = Record::new("v");
        r.headers_mut().extend([
            Header::new("a", Some(b"1")),
            Header::new("b", None),
            Header::new("a", Some(b"2")),
        ]);
        r.set_header("a", "3");
        r.set_header("c", "4");
        let names: Vec<_> = r.headers().iter().map(|h| h.name).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(r.header("a"), Some(&b"3"[..]));
        assert_eq!(r.header("b"), None);
        r.remove_header("a");
        assert_eq!(r.header("a"), None);
        assert_eq!(r.header_str("c"), Some("4"));
    }

    #[test]
    fn value_accessors_name_their_failures() {
        let mut r = Record::default();
        assert_eq!(r.value_str().unwrap_err().code(), "missing-value");
        r.set_value(vec![0xff]);
        assert_eq!(r.value_str().unwrap_err().code(), "bad-utf8");
        assert_eq!(r.take_value(), Some(vec![0xff]));
        assert_eq!(r.value(), None);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_round_trip() {
        #[derive(Debug, serde::Deserialize, serde::Serialize)]
        struct Click<'a> {
            user: &'a str,
        }
        let mut r = Record::new(r#"{"user":"u1"}"#);
        assert_eq!(r.value_json::<Click<'_>>().unwrap().user, "u1");
        r.set_value_json(&Click { user: "u2" }).unwrap();
        assert_eq!(r.value_str().unwrap(), r#"{"user":"u2"}"#);
        r.set_value("nope");
        assert_eq!(r.value_json::<Click<'_>>().unwrap_err().code(), "bad-json");
    }

    #[test]
    fn debug_shows_text() {
        let r = Record::new("hi").with_key(vec![0xff, 1]);
        let s = format!("{r:?}");
        assert!(s.contains(r#"value: Some("hi")"#), "{s}");
        assert!(s.contains(r#"key: Some(b"\xff\x01")"#), "{s}");
    }
}
