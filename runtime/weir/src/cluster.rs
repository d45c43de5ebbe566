//! The pipeline's `[security]` and broker list as the Kafka clients take them, with every secret
//! read now, at start, from where the file says it lives.

use weir_config::{Secret, Security, SecurityProtocol};
use weir_kafka::{Cluster, Protocol, Sasl};

/// A secret named by the pipeline file could not be read.
#[derive(Debug, thiserror::Error)]
#[error("security.{field}: {source}")]
pub struct SecretUnavailable {
    field: &'static str,
    source: weir_config::SecretError,
}

/// How every client reaches the cluster at `brokers`.
pub fn cluster(brokers: &str, security: &Security) -> Result<Cluster, SecretUnavailable> {
    let read = |field: &'static str, secret: &Secret| {
        secret
            .read()
            .map_err(|source| SecretUnavailable { field, source })
    };
    let sasl = match &security.sasl {
        Some(sasl) => Some(Sasl {
            mechanism: sasl.mechanism.name(),
            username: read("sasl.username", &sasl.username)?,
            password: read("sasl.password", &sasl.password)?,
        }),
        None => None,
    };
    let key_password = match &security.key_password {
        Some(secret) => Some(read("key_password", secret)?),
        None => None,
    };
    Ok(Cluster {
        brokers: brokers.to_owned(),
        security: weir_kafka::Security {
            protocol: match security.protocol {
                SecurityProtocol::Plaintext => Protocol::Plaintext,
                SecurityProtocol::Ssl => Protocol::Ssl,
                SecurityProtocol::SaslPlaintext => Protocol::SaslPlaintext,
                SecurityProtocol::SaslSsl => Protocol::SaslSsl,
            },
            ca: security.ca.clone(),
            certificate: security.certificate.clone(),
            key: security.key.clone(),
            key_password,
            verify_hostname: security.verify_hostname,
            sasl,
        },
    })
}
