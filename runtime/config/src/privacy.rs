//! `[privacy]`: which parts of records are personal data, and how they are redacted. Like
//! [`crate::Pipeline`], these structs document every key and its default.

use crate::Secret;

/// `[privacy]`: the fields and headers of records that hold personal data, and how Weir
/// redacts them where it redacts records: in the texts it writes about them (such as error
/// messages that quote a value) and, with `[dead_letter] redact = true`, in dead letters.
///
/// ```toml
/// [privacy]
/// fields = ["/user", "/ip"]
/// headers = ["x-user-id"]
/// method = "hash"
/// key = { env = "WEIR_PRIVACY_KEY" }
///
/// [dead_letter]
/// topic = "clicks.dead"
/// redact = true
/// ```
///
/// At least one field or header is required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Privacy {
    /// `fields`: JSON pointers (RFC 6901, each starting with `/`, such as `"/user/email"` or
    /// `"/items/0"`) into a record's value, read as JSON. A value that is not JSON, or that
    /// lacks a field, is left as it is for that field. Default none.
    pub fields: Vec<String>,
    /// `headers`: names of record headers whose values are redacted, matched in any case.
    /// Default none.
    pub headers: Vec<String>,
    /// `method`: `"mask"` (default) or `"hash"`, with `key` for `"hash"` (refused for
    /// `"mask"`).
    pub method: PrivacyMethod,
    /// `redact` of `[dead_letter]`: whether dead letters are redacted too, their value's
    /// `fields` and their `headers` alike, before they are written. Needs `[privacy]`. Default
    /// false: a dead letter is the record as it failed, so that it can be replayed.
    pub redact_dead_letters: bool,
}

/// `method` of `[privacy]`: what a sensitive part is replaced by.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PrivacyMethod {
    /// `"mask"`: the text `[redacted]`.
    #[default]
    Mask,
    /// `"hash"`: `hmac-sha256:` and the first 16 bytes, in hex, of an HMAC-SHA256 of the part
    /// under `key`. Equal parts give equal hashes, so records can still be joined or counted
    /// by them; without the key, a guessed value cannot be checked.
    Hash {
        /// `key`, required with `"hash"`: the HMAC key, as a secret: `{ env = "NAME" }` or
        /// `{ file = "path" }` (relative to the pipeline file). It is read at start and never
        /// printed; a key written inline is refused. Changing it changes every hash.
        key: Secret,
    },
}
