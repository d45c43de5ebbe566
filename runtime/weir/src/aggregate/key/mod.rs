//! A record's grouping key and event time, as an aggregate stage's `key` and `time` say: JSON
//! pointers (RFC 6901) into the value, or the Kafka key and timestamp.
//!
//! The value is read in one pass by a `serde_json::Deserializer` driven by a visitor that
//! follows only the two pointers: every other field is parsed (so the value is checked exactly
//! as `serde_json` checks a document: syntax, UTF-8, number ranges, nesting depth) and dropped
//! without being kept. Strings and numbers found at a pointer are read in place; no
//! `serde_json::Value` is built, except of the sub-tree a `key` pointer names when that is an
//! object or an array (its JSON text is the key, as `serde_json` writes it). What is found, and
//! every error message, is what reading the value into a `serde_json::Value` and calling
//! `Value::pointer` gave (the tests compare both).
//!
//! Owns reading key and time; may not touch the windows or decide a record's fate beyond the
//! `invalid-input` failure of a record whose key or time cannot be read.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize as _;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use weir_core::{Failure, FailureKind, Record};

/// The stage's `key` and `time` settings, parsed once.
#[derive(Debug, Clone)]
pub(crate) struct KeyFields {
    key: Option<Field>,
    time: Option<Field>,
}

/// A JSON pointer as configured, and its reference tokens (`None`: a pointer that does not start
/// with `/`, which finds nothing).
#[derive(Debug, Clone)]
struct Field {
    pointer: String,
    tokens: Option<Vec<Token>>,
}

/// One reference token: an object member's name, and the array index it also names, if any.
#[derive(Debug, Clone)]
struct Token {
    name: String,
    index: Option<usize>,
}

impl Field {
    fn new(pointer: &str) -> Self {
        // As `serde_json::Value::pointer` reads it.
        let tokens = if pointer.is_empty() {
            Some(Vec::new())
        } else if !pointer.starts_with('/') {
            None
        } else {
            Some(
                pointer
                    .split('/')
                    .skip(1)
                    .map(|t| {
                        let name = t.replace("~1", "/").replace("~0", "~");
                        let index = parse_index(&name);
                        Token { name, index }
                    })
                    .collect(),
            )
        };
        Self {
            pointer: pointer.to_owned(),
            tokens,
        }
    }
}

/// An array index as `serde_json::Value::pointer` accepts it: digits, no sign, no leading zero.
fn parse_index(s: &str) -> Option<usize> {
    if s.starts_with('+') || (s.starts_with('0') && s.len() != 1) {
        return None;
    }
    s.parse().ok()
}

impl KeyFields {
    pub fn new(spec: &weir_config::Aggregate) -> Self {
        Self::from_pointers(spec.key.as_deref(), spec.time.as_deref())
    }

    fn from_pointers(key: Option<&str>, time: Option<&str>) -> Self {
        Self {
            key: key.map(Field::new),
            time: time.map(Field::new),
        }
    }

    /// The record's grouping key and event time, or why they cannot be read (an
    /// [`FailureKind::InvalidInput`] failure).
    pub fn read(&self, record: &Record) -> Result<(Arc<[u8]>, i64), Failure> {
        let invalid = |m: String| Failure::new(FailureKind::InvalidInput, m);
        let found = if self.key.is_some() || self.time.is_some() {
            let value = record.value.as_deref().unwrap_or_default();
            Some(self.scan(value).map_err(|e| {
                invalid(format!(
                    "the value is not JSON, so `key`/`time` cannot be read: {e}"
                ))
            })?)
        } else {
            None
        };
        let key = match (&self.key, &found) {
            (Some(field), Some(found)) => match &found.key {
                Some(key) => key.clone(),
                None => {
                    return Err(invalid(format!(
                        "the value has no key at {}",
                        field.pointer
                    )));
                }
            },
            _ => match &record.key {
                Some(k) => Arc::from(&k[..]),
                None => {
                    return Err(invalid(
                        "the record has no Kafka key (set the stage's `key` to a JSON pointer \
                         to group by a field of the value)"
                            .into(),
                    ));
                }
            },
        };
        let time = match (&self.time, &found) {
            (Some(field), Some(found)) => found.time.ok_or_else(|| {
                invalid(format!(
                    "no event time at {} (a number of milliseconds since the Unix epoch, or a \
                     string of one)",
                    field.pointer
                ))
            })?,
            _ => record.timestamp.ok_or_else(|| {
                invalid("the record has no timestamp to take its event time from".into())
            })?,
        };
        Ok((key, time))
    }

    /// Reads `value` as one JSON document, keeping only what the pointers name.
    fn scan(&self, value: &[u8]) -> Result<Found, serde_json::Error> {
        let paths = Paths {
            key: self.key.as_ref().and_then(|f| f.tokens.as_deref()),
            time: self.time.as_ref().and_then(|f| f.tokens.as_deref()),
        };
        let mut found = Found::default();
        let mut de = serde_json::Deserializer::from_slice(value);
        Node {
            paths,
            found: &mut found,
        }
        .deserialize(&mut de)?;
        de.end()?;
        Ok(found)
    }
}

/// What the pointers found: the key's bytes (`None`: no key there, or `null`) and the event time
/// (`None`: none there, or not a time).
#[derive(Debug, Default)]
struct Found {
    key: Option<Arc<[u8]>>,
    time: Option<i64>,
}

/// The tokens each pointer has left below a value (`None`: the pointer does not lead into it;
/// empty: it names the value itself).
#[derive(Debug, Clone, Copy)]
struct Paths<'t> {
    key: Option<&'t [Token]>,
    time: Option<&'t [Token]>,
}

impl<'t> Paths<'t> {
    fn is_empty(&self) -> bool {
        self.key.is_none() && self.time.is_none()
    }

    fn key_here(&self) -> bool {
        self.key.is_some_and(<[Token]>::is_empty)
    }

    fn time_here(&self) -> bool {
        self.time.is_some_and(<[Token]>::is_empty)
    }

    /// The paths into the child whose token satisfies `names_it`.
    fn child(&self, names_it: impl Fn(&Token) -> bool) -> Paths<'t> {
        let step = |path: Option<&'t [Token]>| {
            path.and_then(<[Token]>::split_first)
                .filter(|(first, _)| names_it(first))
                .map(|(_, rest)| rest)
        };
        Paths {
            key: step(self.key),
            time: step(self.time),
        }
    }
}

/// A value some pointer leads into.
struct Node<'t, 'f> {
    paths: Paths<'t>,
    found: &'f mut Found,
}

impl Node<'_, '_> {
    /// A scalar: what the pointers that name it take from it.
    fn leaf(self, key: impl FnOnce() -> Option<Arc<[u8]>>, time: Option<i64>) {
        if self.paths.key_here() {
            self.found.key = key();
        }
        if self.paths.time_here() {
            self.found.time = time;
        }
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        // A later member of the same name replaces an earlier one, as in a `Value`'s map.
        if self.paths.key.is_some() {
            self.found.key = None;
        }
        if self.paths.time.is_some() {
            self.found.time = None;
        }
        deserializer.deserialize_any(self)
    }
}

fn text(s: impl ToString) -> Option<Arc<[u8]>> {
    Some(Arc::from(s.to_string().as_bytes()))
}

impl<'de> Visitor<'de> for Node<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.leaf(|| text(v), None);
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.leaf(|| text(v), Some(v));
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        // Past i64::MAX a number is read as a float, as `Value::as_f64` would.
        let time = i64::try_from(v).unwrap_or(v as f64 as i64);
        self.leaf(|| text(v), Some(time));
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.leaf(
            || serde_json::Number::from_f64(v).and_then(text),
            Some(v as i64),
        );
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.leaf(|| Some(Arc::from(v.as_bytes())), v.parse::<i64>().ok());
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        // `null`: no key, no time (both were cleared on the way in).
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.paths.key_here() {
            let value = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
            within(&value, self.paths, self.found);
            return Ok(());
        }
        let found = self.found;
        while let Some(paths) = map.next_key_seed(MemberName(self.paths))? {
            if paths.is_empty() {
                map.next_value::<Skip>()?;
            } else {
                map.next_value_seed(Node {
                    paths,
                    found: &mut *found,
                })?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.paths.key_here() {
            let value = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
            within(&value, self.paths, self.found);
            return Ok(());
        }
        let found = self.found;
        for i in 0usize.. {
            let paths = self.paths.child(|t| t.index == Some(i));
            let more = if paths.is_empty() {
                seq.next_element::<Skip>()?.is_some()
            } else {
                seq.next_element_seed(Node {
                    paths,
                    found: &mut *found,
                })?
                .is_some()
            };
            if !more {
                break;
            }
        }
        Ok(())
    }
}

/// An object or array a `key` pointer names, read whole: the key is its JSON text, and the
/// `time` pointer, if it leads inside, is followed within it.
fn within(value: &serde_json::Value, paths: Paths<'_>, found: &mut Found) {
    found.key = match value {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(Arc::from(s.as_bytes())),
        other => text(other),
    };
    if let Some(tokens) = paths.time {
        let target = tokens.iter().try_fold(value, |v, token| match v {
            serde_json::Value::Object(map) => map.get(&token.name),
            serde_json::Value::Array(list) => token.index.and_then(|i| list.get(i)),
            _ => None,
        });
        found.time = match target {
            Some(serde_json::Value::Number(n)) => {
                n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))
            }
            Some(serde_json::Value::String(s)) => s.parse::<i64>().ok(),
            _ => None,
        };
    }
}

/// An object member's name: the paths into its value.
struct MemberName<'t>(Paths<'t>);

impl<'de, 't> DeserializeSeed<'de> for MemberName<'t> {
    type Value = Paths<'t>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Paths<'t>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, 't> Visitor<'de> for MemberName<'t> {
    type Value = Paths<'t>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object member's name")
    }

    fn visit_str<E>(self, v: &str) -> Result<Paths<'t>, E> {
        Ok(self.0.child(|t| t.name == v))
    }
}

/// A value no pointer leads into: parsed as `serde_json` parses any value (unlike
/// [`serde::de::IgnoredAny`], whose skipping checks neither number ranges nor UTF-8), and
/// dropped.
struct Skip;

impl<'de> serde::Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Skip, D::Error> {
        deserializer.deserialize_any(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
}

#[cfg(test)]
mod tests;
