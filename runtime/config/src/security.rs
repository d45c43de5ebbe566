//! `[security]`: how the pipeline's Kafka clients authenticate and encrypt. Secrets are named
//! here (an environment variable or a file), never written inline, and never printed.

use std::fmt;
use std::path::PathBuf;

/// `[security]`: how every Kafka client of the pipeline connects to the cluster: the consumer,
/// the producers (transactional ones included), and the control-topic and changelog clients.
///
/// ```toml
/// [security]
/// protocol = "sasl_ssl"
/// ca = "certs/ca.pem"
///
/// [security.sasl]
/// mechanism = "SCRAM-SHA-512"
/// username = "weir"
/// password = { env = "KAFKA_PASSWORD" }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Security {
    /// `protocol`: `"plaintext"` (default), `"ssl"` (TLS), `"sasl_plaintext"` (SASL without
    /// TLS: the password crosses the network in the clear with PLAIN) or `"sasl_ssl"` (SASL
    /// over TLS).
    pub protocol: SecurityProtocol,
    /// `ca`: a PEM file of the certificate authorities that sign the brokers' certificates,
    /// relative to the pipeline file. Default: the system's trust store. TLS protocols only.
    pub ca: Option<PathBuf>,
    /// `certificate`: the client's certificate (PEM file), for brokers that require mutual TLS.
    /// Needs `key`. TLS protocols only.
    pub certificate: Option<PathBuf>,
    /// `key`: the private key of `certificate` (PEM file). Needs `certificate`.
    pub key: Option<PathBuf>,
    /// `key_password`: the password of an encrypted `key`, as a secret:
    /// `{ env = "NAME" }` or `{ file = "path" }`. Default: the key is not encrypted.
    pub key_password: Option<Secret>,
    /// `verify_hostname`: whether a broker's certificate must name the host it was reached at.
    /// Default `true`; turning it off lets anyone with a certificate from your CA pose as a
    /// broker. TLS protocols only.
    pub verify_hostname: bool,
    /// `[security.sasl]`: the SASL credentials, required with the `sasl_*` protocols.
    pub sasl: Option<Sasl>,
}

impl Security {
    /// Whether the protocol encrypts with TLS.
    pub fn tls(&self) -> bool {
        matches!(
            self.protocol,
            SecurityProtocol::Ssl | SecurityProtocol::SaslSsl
        )
    }
}

/// `protocol` of `[security]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    /// `"plaintext"`: no TLS, no authentication.
    #[default]
    Plaintext,
    /// `"ssl"`: TLS, with a client certificate when `certificate` is set.
    Ssl,
    /// `"sasl_plaintext"`: SASL authentication without TLS.
    SaslPlaintext,
    /// `"sasl_ssl"`: SASL authentication over TLS.
    SaslSsl,
}

/// `[security.sasl]`: who the pipeline is to the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sasl {
    /// `mechanism`, required: `"PLAIN"`, `"SCRAM-SHA-256"` or `"SCRAM-SHA-512"`.
    pub mechanism: SaslMechanism,
    /// `username`, required: a string, or a secret (`{ env = "NAME" }`, `{ file = "path" }`).
    pub username: Secret,
    /// `password`, required: a secret, `{ env = "NAME" }` or `{ file = "path" }` (a file's
    /// trailing newline is dropped). A password written inline is refused.
    pub password: Secret,
}

/// `mechanism` of `[security.sasl]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// `"PLAIN"`: the password itself is sent; use it over TLS only.
    Plain,
    /// `"SCRAM-SHA-256"`: a salted challenge; the password never crosses the network.
    ScramSha256,
    /// `"SCRAM-SHA-512"`: as SCRAM-SHA-256, with SHA-512.
    ScramSha512,
}

impl SaslMechanism {
    /// The mechanism's name, as Kafka spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// Where a credential comes from. Its value is read when the pipeline starts, never when it is
/// validated, and is never printed: `Debug` shows where it comes from, not what it is.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// Written in the pipeline file; allowed for names (a SASL username), never for passwords.
    Inline(String),
    /// `{ env = "NAME" }`: the value of an environment variable.
    Env(String),
    /// `{ file = "path" }`: the content of a file (relative to the pipeline file), without a
    /// trailing newline.
    File(PathBuf),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inline(_) => f.write_str("Inline(<redacted>)"),
            Self::Env(name) => f.debug_tuple("Env").field(name).finish(),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// Why a secret could not be read at start.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set (or not valid UTF-8).
    #[error("environment variable {0} is not set")]
    Unset(String),
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    File {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl Secret {
    /// The secret's value, read now from where it lives.
    pub fn read(&self) -> Result<String, SecretError> {
        match self {
            Self::Inline(value) => Ok(value.clone()),
            Self::Env(name) => std::env::var(name).map_err(|_| SecretError::Unset(name.clone())),
            Self::File(path) => std::fs::read_to_string(path)
                .map(|text| text.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|error| SecretError::File {
                    path: path.clone(),
                    error,
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_an_inline_value() {
        let shown = format!("{:?}", Secret::Inline("hunter2".into()));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn a_file_secret_drops_its_trailing_newline_and_an_unset_variable_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(Secret::File(path).read().unwrap(), "s3cret");
        let error = Secret::Env("WEIR_TEST_SURELY_UNSET_VARIABLE".into())
            .read()
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable WEIR_TEST_SURELY_UNSET_VARIABLE is not set"
        );
    }
}
