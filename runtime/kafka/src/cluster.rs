//! How every client of the pipeline reaches the cluster: the bootstrap brokers, TLS and SASL.
//! One [`Cluster`] is handed to every client (consumer, producers, control and changelog
//! clients), so none of them connects with weaker settings than the rest.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError as RdError;

use crate::KafkaError;

/// The cluster's address and the security settings every client uses.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    /// Comma-separated `host:port` bootstrap brokers.
    pub brokers: String,
    pub security: Security,
}

/// `security.protocol` of every client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }
}

/// TLS and SASL settings, with secrets already read. `Debug` never shows a secret.
#[derive(Clone)]
pub struct Security {
    pub protocol: Protocol,
    /// PEM file of the CAs that sign the brokers' certificates; `None`: the system's store.
    pub ca: Option<PathBuf>,
    /// Client certificate and private key (PEM files), for mutual TLS.
    pub certificate: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub key_password: Option<String>,
    /// Whether a broker's certificate must name the host it was reached at.
    pub verify_hostname: bool,
    pub sasl: Option<Sasl>,
}

impl Default for Security {
    fn default() -> Self {
        Self {
            protocol: Protocol::Plaintext,
            ca: None,
            certificate: None,
            key: None,
            key_password: None,
            verify_hostname: true,
            sasl: None,
        }
    }
}

/// SASL credentials. `Debug` shows the mechanism alone.
#[derive(Clone)]
pub struct Sasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: &'static str,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Sasl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sasl")
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Security")
            .field("protocol", &self.protocol)
            .field("ca", &self.ca)
            .field("certificate", &self.certificate)
            .field("key", &self.key)
            .field(
                "key_password",
                &self.key_password.as_ref().map(|_| "<redacted>"),
            )
            .field("verify_hostname", &self.verify_hostname)
            .field("sasl", &self.sasl.as_ref().map(|s| s.mechanism))
            .finish()
    }
}

impl Security {
    /// The librdkafka properties these settings stand for.
    fn properties(&self) -> Vec<(&'static str, String)> {
        let mut p = vec![("security.protocol", self.protocol.name().to_owned())];
        let path = |p: &PathBuf| p.to_string_lossy().into_owned();
        if matches!(self.protocol, Protocol::Ssl | Protocol::SaslSsl) {
            if let Some(ca) = &self.ca {
                p.push(("ssl.ca.location", path(ca)));
            }
            if let Some(certificate) = &self.certificate {
                p.push(("ssl.certificate.location", path(certificate)));
            }
            if let Some(key) = &self.key {
                p.push(("ssl.key.location", path(key)));
            }
            if let Some(password) = &self.key_password {
                p.push(("ssl.key.password", password.clone()));
            }
            let algorithm = if self.verify_hostname {
                "https"
            } else {
                "none"
            };
            p.push((
                "ssl.endpoint.identification.algorithm",
                algorithm.to_owned(),
            ));
        }
        if let Some(sasl) = &self.sasl {
            p.push(("sasl.mechanism", sasl.mechanism.to_owned()));
            p.push(("sasl.username", sasl.username.clone()));
            p.push(("sasl.password", sasl.password.clone()));
        }
        p
    }

    /// The secret values, for scrubbing them out of error messages.
    fn secrets(&self) -> impl Iterator<Item = &str> {
        let sasl = self.sasl.as_ref().map(|s| s.password.as_str());
        self.key_password.as_deref().into_iter().chain(sasl)
    }
}

impl Cluster {
    /// A client configuration: the brokers, Weir's `defaults`, the pipeline's raw `overrides`,
    /// then the security settings (which the pipeline file cannot override).
    pub(crate) fn config(
        &self,
        defaults: &[(&str, &str)],
        overrides: &BTreeMap<String, String>,
    ) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for (k, v) in overrides {
            c.set(k, v);
        }
        for (k, v) in self.security.properties() {
            c.set(k, v);
        }
        c
    }

    /// A client that could not be created, as an error that names the property at fault but
    /// never quotes a value: librdkafka's own message quotes it, and it may be a secret.
    pub(crate) fn config_error(&self, error: RdError) -> KafkaError {
        let message = match error {
            RdError::ClientConfig(_, description, key, value) => {
                format!("{key}: {}", scrub(&description, [value.as_str()]))
            }
            other => other.to_string(),
        };
        KafkaError::Config(scrub(&message, self.security.secrets()))
    }
}

/// `text` with every occurrence of each non-empty `secret` replaced.
fn scrub<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut text = text.to_owned();
    for secret in secrets {
        if !secret.is_empty() {
            text = text.replace(secret, "<redacted>");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use rdkafka::consumer::BaseConsumer;

    use super::*;

    fn sasl_cluster(password: &str) -> Cluster {
        Cluster {
            brokers: "127.0.0.1:1".into(),
            security: Security {
                protocol: Protocol::SaslSsl,
                sasl: Some(Sasl {
                    mechanism: "SCRAM-SHA-512",
                    username: "weir".into(),
                    password: password.into(),
                }),
                ..Security::default()
            },
        }
    }

    #[test]
    fn a_bad_value_is_reported_by_key_without_the_value() {
        let cluster = sasl_cluster("hunter2");
        let overrides = BTreeMap::from([("sasl.mechanism".to_owned(), "hunter2".to_owned())]);
        // Overridden by the security settings, so build a bad one by hand too.
        let mut config = cluster.config(&[], &overrides);
        config.set("security.protocol", "hunter2");
        let error = config
            .create::<BaseConsumer>()
            .map(|_| ())
            .map_err(|e| cluster.config_error(e))
            .unwrap_err()
            .to_string();
        assert!(error.contains("security.protocol"), "{error}");
        assert!(!error.contains("hunter2"), "the value leaked: {error}");
    }

    #[test]
    fn debug_shows_no_secret() {
        let mut cluster = sasl_cluster("hunter2");
        cluster.security.key_password = Some("hunter3".into());
        let shown = format!("{cluster:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("hunter3"),
            "{shown}"
        );
        assert!(shown.contains("SCRAM-SHA-512"), "{shown}");
    }

    #[test]
    fn tls_properties_verify_hostnames_unless_told_not_to() {
        let mut security = Security {
            protocol: Protocol::Ssl,
            ca: Some("ca.pem".into()),
            ..Security::default()
        };
        let props = security.properties();
        assert!(props.contains(&("ssl.ca.location", "ca.pem".into())));
        assert!(props.contains(&("ssl.endpoint.identification.algorithm", "https".into())));
        security.verify_hostname = false;
        assert!(
            security
                .properties()
                .contains(&("ssl.endpoint.identification.algorithm", "none".into()))
        );
        // Plaintext sets no TLS property, whatever else is filled in.
        security.protocol = Protocol::Plaintext;
        assert_eq!(security.properties().len(), 1);
    }
}
