//! Redaction of a record's sensitive parts: fields of its JSON value, named by JSON pointers
//! (RFC 6901), and headers, named case-insensitively.
//!
//! A [`Redactor`] replaces each sensitive part by its redacted form: the text `[redacted]`
//! ([`Method::Mask`]), or `hmac-sha256:` and the first 16 bytes of an HMAC-SHA256 of the part
//! under a secret key, in lowercase hex ([`Method::Hash`]): equal parts stay equal, so records
//! can still be joined or counted by them, while the key keeps a guess from being checked.
//!
//! Text that is not a record, such as an error message that quotes a field, is cleaned with a
//! [`Scrub`]: the sensitive texts of one or more records, each replaced wherever it occurs.
//!
//! Nothing here does I/O; reading the key is the caller's business.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use weir_wire::{Header, Headers, Record};

#[cfg(test)]
mod tests;

/// What [`Method::Mask`] writes in place of a sensitive part.
pub const MASK: &str = "[redacted]";

/// What starts the redacted form of [`Method::Hash`].
pub const HASH_PREFIX: &str = "hmac-sha256:";

/// Sensitive texts shorter than this are not scrubbed from free text: two bytes occur by chance
/// in almost any message, so replacing them would garble it without hiding anything.
pub const MIN_SCRUB_LEN: usize = 3;

/// How a sensitive part is replaced.
#[derive(Clone, PartialEq, Eq)]
pub enum Method {
    /// By the text [`MASK`].
    Mask,
    /// By [`HASH_PREFIX`] and the first 16 bytes of HMAC-SHA256(`key`, part), in lowercase hex.
    Hash {
        /// The HMAC key. Never printed.
        key: Arc<[u8]>,
    },
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mask => f.write_str("Mask"),
            Self::Hash { .. } => f.write_str("Hash { key: <redacted> }"),
        }
    }
}

impl Method {
    /// The redacted form of `text`.
    pub fn redacted(&self, text: &[u8]) -> String {
        match self {
            Self::Mask => MASK.to_owned(),
            Self::Hash { key } => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
                mac.update(text);
                let digest = mac.finalize().into_bytes();
                let mut out = String::with_capacity(HASH_PREFIX.len() + 32);
                out.push_str(HASH_PREFIX);
                for byte in &digest[..16] {
                    write!(out, "{byte:02x}").expect("writing to a String cannot fail");
                }
                out
            }
        }
    }
}

/// Why a [`Redactor`] cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedactError {
    /// A field is not a JSON pointer.
    #[error("invalid JSON pointer {0:?}: must be empty or start with '/' (RFC 6901)")]
    Pointer(String),
    /// [`Method::Hash`] with an empty key, whose hashes anyone could recompute.
    #[error("the hash key is empty")]
    EmptyKey,
}

/// A JSON pointer, split into its unescaped reference tokens once, when the redactor is built.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pointer {
    tokens: Vec<String>,
}

impl Pointer {
    fn parse(text: &str) -> Result<Self, RedactError> {
        if text.is_empty() {
            return Ok(Self { tokens: Vec::new() });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(RedactError::Pointer(text.to_owned()));
        };
        // `~1` before `~0`, as RFC 6901 says, so that `~01` stands for `~1`, not `/`.
        let tokens = rest
            .split('/')
            .map(|token| token.replace("~1", "/").replace("~0", "~"))
            .collect();
        Ok(Self { tokens })
    }

    fn get<'v>(&self, mut value: &'v Value) -> Option<&'v Value> {
        for token in &self.tokens {
            value = match value {
                Value::Object(map) => map.get(token)?,
                Value::Array(items) => items.get(index(token)?)?,
                _ => return None,
            };
        }
        Some(value)
    }

    fn get_mut<'v>(&self, mut value: &'v mut Value) -> Option<&'v mut Value> {
        for token in &self.tokens {
            value = match value {
                Value::Object(map) => map.get_mut(token)?,
                Value::Array(items) => items.get_mut(index(token)?)?,
                _ => return None,
            };
        }
        Some(value)
    }
}

/// An array index as RFC 6901 writes it: `0`, or digits without a leading zero.
fn index(token: &str) -> Option<usize> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

/// The text a JSON value is hashed and searched as: a string's own text, or else its compact
/// JSON text.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Redacts the listed fields and headers of records.
#[derive(Debug, Clone)]
pub struct Redactor {
    fields: Vec<Pointer>,
    headers: Vec<String>,
    method: Method,
}

impl Redactor {
    /// A redactor of the values at `fields` (JSON pointers into a record's value; `""` is the
    /// whole value) and of the headers named in `headers` (in any case).
    pub fn new(
        fields: Vec<String>,
        headers: Vec<String>,
        method: Method,
    ) -> Result<Self, RedactError> {
        if let Method::Hash { key } = &method
            && key.is_empty()
        {
            return Err(RedactError::EmptyKey);
        }
        let fields = fields
            .iter()
            .map(|field| Pointer::parse(field))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            fields,
            headers,
            method,
        })
    }

    /// How parts are replaced.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Whether the header `name` is listed.
    pub fn is_listed_header(&self, name: &str) -> bool {
        self.headers.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    /// `value` with the value at each field replaced by its redacted form (a JSON string), or
    /// `None` when nothing was replaced: `value` is not JSON, or no field is in it.
    ///
    /// The rest of the value is kept, though not byte for byte: it is written back compact,
    /// object keys in serde_json's order, and numbers as serde_json reads them.
    pub fn redact_value(&self, value: &[u8]) -> Option<Vec<u8>> {
        if self.fields.is_empty() {
            return None;
        }
        let mut json: Value = serde_json::from_slice(value).ok()?;
        let mut changed = false;
        for field in &self.fields {
            if let Some(part) = field.get_mut(&mut json) {
                let text = text_of(part);
                *part = Value::String(self.method.redacted(text.as_bytes()));
                changed = true;
            }
        }
        changed.then(|| serde_json::to_vec(&json).expect("a JSON value always serializes"))
    }

    /// Replaces the value of every listed header by its redacted form (as bytes, unquoted).
    /// Headers without a value are left as they are, and so is the headers' order.
    pub fn redact_headers(&self, headers: &mut Headers) {
        let listed = |h: &Header<'_>| h.value.is_some() && self.is_listed_header(h.name);
        if !headers.iter().any(|h| listed(&h)) {
            return;
        }
        let owned: Vec<(String, Option<Vec<u8>>)> = headers
            .iter()
            .map(|h| {
                let value = match h.value {
                    Some(value) if listed(&h) => Some(self.method.redacted(value).into_bytes()),
                    other => other.map(<[u8]>::to_vec),
                };
                (h.name.to_owned(), value)
            })
            .collect();
        *headers = owned
            .iter()
            .map(|(name, value)| Header::new(name, value.as_deref()))
            .collect();
    }

    /// Redacts `record`'s value and headers in place; whether anything changed.
    pub fn redact_record(&self, record: &mut Record) -> bool {
        let before = record.headers.clone();
        self.redact_headers(&mut record.headers);
        let mut changed = record.headers != before;
        if let Some(value) = record.value.as_deref().and_then(|v| self.redact_value(v)) {
            record.value = Some(value.into());
            changed = true;
        }
        changed
    }

    /// The sensitive texts of `record`, to clean free text that may quote them: the value at
    /// each field (a string as itself and, when it differs, as it is written inside a JSON
    /// string; any other value as its compact JSON text) and each listed header's value (when
    /// it is UTF-8). Texts shorter than [`MIN_SCRUB_LEN`] bytes are left out.
    pub fn scrub_for(&self, record: &Record) -> Scrub {
        let mut scrub = Scrub::default();
        if !self.fields.is_empty()
            && let Some(value) = record.value.as_deref()
            && let Ok(json) = serde_json::from_slice::<Value>(value)
        {
            for field in &self.fields {
                if let Some(part) = field.get(&json) {
                    scrub.add(&text_of(part), &self.method);
                }
            }
        }
        for header in record.headers.iter() {
            if self.is_listed_header(header.name)
                && let Some(Ok(text)) = header.value.map(std::str::from_utf8)
            {
                scrub.add(text, &self.method);
            }
        }
        scrub.sort();
        scrub
    }

    /// `text` with `record`'s sensitive texts replaced: [`Redactor::scrub_for`] then
    /// [`Scrub::apply`].
    pub fn redact_text_in<'a>(&self, record: &Record, text: &'a str) -> Cow<'a, str> {
        self.scrub_for(record).apply(text)
    }
}

/// Sensitive texts, each with its redacted form, to remove from free text such as an error
/// message. `Debug` shows how many there are, never what they are.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Scrub {
    /// (sensitive text, replacement), longest text first, each text once.
    texts: Vec<(String, String)>,
}

impl fmt::Debug for Scrub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scrub({} texts)", self.texts.len())
    }
}

impl Scrub {
    /// Whether there is nothing to scrub.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// How many sensitive texts there are.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Adds the texts of `other`, such as those of the next record of a batch.
    pub fn extend(&mut self, other: Scrub) {
        if other.texts.is_empty() {
            return;
        }
        self.texts.extend(other.texts);
        self.sort();
    }

    /// `text` with every occurrence of each sensitive text replaced by its redacted form; longer
    /// texts are replaced first, so a text that contains another is replaced whole. Borrowed
    /// when nothing matched.
    pub fn apply<'a>(&self, text: &'a str) -> Cow<'a, str> {
        // Spans already replaced are never searched again: a short sensitive text must not be
        // found inside a longer one's span, nor inside a replacement.
        let mut spans: Vec<(usize, usize, &str)> = Vec::new();
        for (needle, replacement) in &self.texts {
            let mut from = 0;
            while let Some(found) = text[from..].find(needle.as_str()) {
                let start = from + found;
                let end = start + needle.len();
                match spans.iter().find(|&&(s, e, _)| start < e && s < end) {
                    Some(_) => {
                        // Overlaps a longer text: look again one character further on.
                        let step = text[start..].chars().next().map_or(1, char::len_utf8);
                        from = start + step;
                    }
                    None => {
                        spans.push((start, end, replacement));
                        from = end;
                    }
                }
            }
        }
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        spans.sort_unstable_by_key(|&(start, _, _)| start);
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end, replacement) in spans {
            out.push_str(&text[at..start]);
            out.push_str(replacement);
            at = end;
        }
        out.push_str(&text[at..]);
        Cow::Owned(out)
    }

    /// Adds `text` (and its form inside a JSON string, when that differs), redacted by `method`.
    fn add(&mut self, text: &str, method: &Method) {
        if text.len() < MIN_SCRUB_LEN {
            return;
        }
        let replacement = method.redacted(text.as_bytes());
        let quoted = serde_json::to_string(text).expect("a string always serializes");
        let escaped = &quoted[1..quoted.len() - 1];
        if escaped != text {
            self.texts.push((escaped.to_owned(), replacement.clone()));
        }
        self.texts.push((text.to_owned(), replacement));
    }

    /// Longest first, each text once.
    fn sort(&mut self) {
        self.texts
            .sort_by(|(a, _), (b, _)| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        self.texts.dedup_by(|(a, _), (b, _)| a == b);
    }
}
