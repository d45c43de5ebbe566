//! `[security]` and `[security.sasl]`. A secret's value never appears in a message.

use std::path::Path;

use toml::de::DeValue;

use crate::reader::Value;
use crate::report::Report;
use crate::security::{Sasl, SaslMechanism, Secret, Security, SecurityProtocol};

pub(super) fn security(
    value: &Value<'_, '_>,
    base: &Path,
    report: &mut Report<'_>,
) -> Option<Security> {
    let mut table = value.table(report)?;
    let protocol = table.with_default("protocol", SecurityProtocol::default(), |value| {
        value.choice(
            report,
            &[
                ("plaintext", SecurityProtocol::Plaintext),
                ("ssl", SecurityProtocol::Ssl),
                ("sasl_plaintext", SecurityProtocol::SaslPlaintext),
                ("sasl_ssl", SecurityProtocol::SaslSsl),
            ],
        )
    });
    let tls = protocol.map(|p| matches!(p, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl));
    let sasl_protocol = protocol.map(|p| {
        matches!(
            p,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    });
    let tls_only = |value: &Value<'_, '_>, report: &mut Report<'_>| {
        if tls == Some(false) {
            value.error(
                report,
                "applies to TLS only: set protocol = \"ssl\" or \"sasl_ssl\"",
            );
        }
    };
    let file = |value: &Value<'_, '_>, report: &mut Report<'_>| {
        value.non_empty_string(report).map(|path| base.join(path))
    };
    let ca = table.optional("ca", |value| {
        tls_only(value, report);
        file(value, report)
    });
    let certificate_value = table.get("certificate");
    let certificate = match &certificate_value {
        Some(value) => {
            tls_only(value, report);
            file(value, report).map(Some)
        }
        None => Some(None),
    };
    let key_value = table.get("key");
    let key = match &key_value {
        Some(value) => {
            tls_only(value, report);
            file(value, report).map(Some)
        }
        None => Some(None),
    };
    match (&certificate_value, &key_value) {
        (Some(value), None) => value.error(report, "needs `key`, the certificate's private key"),
        (None, Some(value)) => value.error(report, "needs `certificate`, the key's certificate"),
        _ => {}
    }
    let key_password = table.optional("key_password", |value| {
        if key_value.is_none() {
            value.error(report, "needs `key`");
        }
        secret(value, base, report, false)
    });
    let verify_hostname = table.with_default("verify_hostname", true, |value| {
        tls_only(value, report);
        value.bool(report)
    });
    let sasl_value = table.get("sasl");
    let sasl = match &sasl_value {
        Some(value) => {
            if sasl_protocol == Some(false) {
                value.error(
                    report,
                    "applies to SASL only: set protocol = \"sasl_ssl\" or \"sasl_plaintext\"",
                );
            }
            sasl(value, base, report).map(Some)
        }
        None => {
            if sasl_protocol == Some(true) {
                table.missing(report, "table [security.sasl] for a SASL protocol");
            }
            Some(None)
        }
    };
    table.finish(report);
    Some(Security {
        protocol: protocol?,
        ca: ca?,
        certificate: certificate?,
        key: key?,
        key_password: key_password?,
        verify_hostname: verify_hostname?,
        sasl: sasl?,
    })
}

fn sasl(value: &Value<'_, '_>, base: &Path, report: &mut Report<'_>) -> Option<Sasl> {
    let mut table = value.table(report)?;
    let mechanism = table.required(report, "mechanism").and_then(|value| {
        value.choice(
            report,
            &[
                ("PLAIN", SaslMechanism::Plain),
                ("SCRAM-SHA-256", SaslMechanism::ScramSha256),
                ("SCRAM-SHA-512", SaslMechanism::ScramSha512),
            ],
        )
    });
    let username = table
        .required(report, "username")
        .and_then(|value| secret(&value, base, report, true));
    let password = table
        .required(report, "password")
        .and_then(|value| secret(&value, base, report, false));
    table.finish(report);
    Some(Sasl {
        mechanism: mechanism?,
        username: username?,
        password: password?,
    })
}

/// `{ env = "NAME" }` or `{ file = "path" }`; a plain string only where `inline` allows it. The
/// messages never quote what was written, in case it is the secret itself.
pub(super) fn secret(
    value: &Value<'_, '_>,
    base: &Path,
    report: &mut Report<'_>,
    inline: bool,
) -> Option<Secret> {
    if let DeValue::String(text) = value.raw() {
        if inline {
            return Some(Secret::Inline(text.to_string()));
        }
        value.error(
            report,
            "a secret written in the pipeline file is refused: name where it is read from, \
             { env = \"NAME\" } or { file = \"path\" }",
        );
        return None;
    }
    let mut table = value.table(report)?;
    let env = table.optional("env", |value| value.non_empty_string(report));
    let file = table.optional("file", |value| value.non_empty_string(report));
    table.finish(report);
    match (env?, file?) {
        (Some(name), None) => Some(Secret::Env(name)),
        (None, Some(path)) => Some(Secret::File(base.join(path))),
        _ => {
            value.error(
                report,
                "expected exactly one of { env = \"NAME\" } or { file = \"path\" }",
            );
            None
        }
    }
}
