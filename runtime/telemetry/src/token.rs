//! The admin API's bearer token: kept out of logs, compared in constant time.

use crate::TelemetryError;

/// A bearer token for the admin API. It has no `Display`, its `Debug` hides it, and it is
/// compared with what a request carries in a time that does not depend on where they differ.
#[derive(Clone)]
pub struct AdminToken(String);

impl AdminToken {
    /// Takes `token`, which must be non-empty printable ASCII without spaces, as an
    /// `Authorization: Bearer` header carries it.
    pub fn new(token: String) -> Result<Self, TelemetryError> {
        if token.is_empty() {
            return Err(TelemetryError::Token("it is empty"));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TelemetryError::Token(
                "it must be printable ASCII without spaces",
            ));
        }
        Ok(Self(token))
    }

    /// The token itself, for a client to send. Never log it.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Whether an `Authorization` header's value is `Bearer <this token>`. Its duration depends
    /// on the value's length only, never on how much of the token it gets right.
    pub(crate) fn authorizes(&self, authorization: Option<&str>) -> bool {
        let given = authorization
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("")
            .as_bytes();
        let token = self.0.as_bytes();
        let mut diff = u8::from(given.len() != token.len());
        for (i, &byte) in given.iter().enumerate() {
            diff = std::hint::black_box(diff | (byte ^ token[i % token.len()]));
        }
        diff == 0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<hidden>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorizes_exactly_the_bearer_token() {
        let t = AdminToken::new("s3cret".into()).unwrap();
        assert!(t.authorizes(Some("Bearer s3cret")));
        for wrong in [
            None,
            Some(""),
            Some("Bearer "),
            Some("s3cret"),
            Some("Basic s3cret"),
            Some("Bearer s3cre"),
            Some("Bearer s3crets"),
            Some("Bearer s3cret3cret"),
            Some("Bearer S3cret"),
            Some("Bearer s3creT"),
        ] {
            assert!(!t.authorizes(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn refuses_tokens_a_header_cannot_carry_and_never_shows_one() {
        assert!(AdminToken::new(String::new()).is_err());
        assert!(AdminToken::new("a b".into()).is_err());
        assert!(AdminToken::new("a\r\nX: y".into()).is_err());
        assert!(AdminToken::new("é".into()).is_err());
        let t = AdminToken::new("s3cret".into()).unwrap();
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
