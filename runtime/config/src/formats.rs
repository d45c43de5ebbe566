//! Strings with a format of their own: names, topics, broker lists, URLs, JSON pointers.
//!
//! Each check returns the accepted text or a [`FormatError`] saying what is wrong with it;
//! the reader (`Value::parsed`) adds which value it was and where.

use std::fmt;

/// The longest topic name Kafka accepts.
const MAX_TOPIC_LEN: usize = 249;

/// Why a name, topic, broker list, URL or JSON pointer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FormatError {
    /// An empty name or topic.
    #[error("must not be empty")]
    Empty,
    /// A name or topic with a character other than ASCII letters, digits, `.`, `_` and `-`.
    #[error("only ASCII letters, digits, '.', '_' and '-' are allowed")]
    NameChars,
    /// A topic named `.` or `..`.
    #[error("\".\" and \"..\" are not allowed")]
    DotTopic,
    /// A topic name longer than Kafka accepts.
    #[error("longer than {max} characters")]
    TopicTooLong {
        /// The longest name accepted.
        max: usize,
    },
    /// A broker list with at least one entry that is not `host:port`.
    #[error("{} (write each broker as host:port)", BrokerProblems(.0))]
    Brokers(Vec<BrokerProblem>),
    /// A URL whose scheme is not `http` or `https`.
    #[error("must start with http:// or https://")]
    NotHttp,
    /// A URL with nothing, or only a path, after its scheme.
    #[error("has no host")]
    NoHost,
    /// A JSON pointer that does not start with `/`.
    #[error("must start with '/', such as \"/{text}\" (RFC 6901)")]
    NotPointer {
        /// The pointer as written.
        text: String,
    },
}

/// What is wrong with one entry of a broker list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BrokerProblem {
    /// Nothing between two commas, or after the last one.
    #[error("empty entry")]
    Empty,
    /// An entry without `:port`.
    #[error("{0:?} has no port")]
    NoPort(String),
    /// An entry with nothing before `:port`.
    #[error("{0:?} has no host")]
    NoHost(String),
    /// An entry whose port is not a number from 1 to 65535.
    #[error("{0:?} has an invalid port")]
    InvalidPort(String),
}

/// The problems of a broker list, separated by `; `.
struct BrokerProblems<'a>(&'a [BrokerProblem]);

impl fmt::Display for BrokerProblems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// A pipeline or stage name: ASCII letters, digits, `.`, `_` and `-`.
pub(crate) fn name(text: &str) -> Result<String, FormatError> {
    if text.is_empty() {
        return Err(FormatError::Empty);
    }
    if !text.chars().all(is_name_char) {
        return Err(FormatError::NameChars);
    }
    Ok(text.to_owned())
}

/// A Kafka topic name.
pub(crate) fn topic(text: &str) -> Result<String, FormatError> {
    if text == "." || text == ".." {
        return Err(FormatError::DotTopic);
    }
    if text.len() > MAX_TOPIC_LEN {
        return Err(FormatError::TopicTooLong { max: MAX_TOPIC_LEN });
    }
    name(text)
}

/// A static group member's id (Kafka's `group.instance.id`), such as a StatefulSet pod's name:
/// the characters of a name, at most as long as a topic name.
pub(crate) fn instance_id(text: &str) -> Result<String, FormatError> {
    if text.len() > MAX_TOPIC_LEN {
        return Err(FormatError::TopicTooLong { max: MAX_TOPIC_LEN });
    }
    name(text)
}

/// A comma-separated list of `host:port`, returned without blanks around the commas.
pub(crate) fn brokers(text: &str) -> Result<String, FormatError> {
    let brokers: Vec<&str> = text.split(',').map(str::trim).collect();
    let problems: Vec<BrokerProblem> = brokers
        .iter()
        .filter_map(|broker| broker_problem(broker))
        .collect();
    if problems.is_empty() {
        Ok(brokers.join(","))
    } else {
        Err(FormatError::Brokers(problems))
    }
}

fn broker_problem(broker: &str) -> Option<BrokerProblem> {
    let Some((host, port)) = broker.rsplit_once(':') else {
        return Some(if broker.is_empty() {
            BrokerProblem::Empty
        } else {
            BrokerProblem::NoPort(broker.to_owned())
        });
    };
    if host.is_empty() {
        return Some(BrokerProblem::NoHost(broker.to_owned()));
    }
    if !matches!(port.parse::<u16>(), Ok(1..)) {
        return Some(BrokerProblem::InvalidPort(broker.to_owned()));
    }
    None
}

/// An `http://` or `https://` URL.
pub(crate) fn http_url(text: &str) -> Result<String, FormatError> {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .ok_or(FormatError::NotHttp)?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(FormatError::NoHost);
    }
    Ok(text.to_owned())
}

/// A JSON pointer (RFC 6901) that starts with `/`: never the empty pointer, the whole document.
pub(crate) fn json_pointer(text: &str) -> Result<String, FormatError> {
    if text.starts_with('/') {
        Ok(text.to_owned())
    } else {
        Err(FormatError::NotPointer {
            text: text.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        assert_eq!(
            topic("clicks.enriched_v2-a"),
            Ok("clicks.enriched_v2-a".into())
        );
        assert!(topic("").is_err());
        assert!(topic(".").is_err());
        assert!(topic("..").is_err());
        assert!(topic("a b").is_err());
        assert!(topic("clicks/raw").is_err());
        assert!(topic(&"x".repeat(249)).is_ok());
        assert!(topic(&"x".repeat(250)).is_err());
    }

    #[test]
    fn instance_ids() {
        assert_eq!(instance_id("weir-0"), Ok("weir-0".into()));
        assert_eq!(instance_id(""), Err(FormatError::Empty));
        assert_eq!(instance_id("weir 0"), Err(FormatError::NameChars));
        assert!(instance_id(&"x".repeat(249)).is_ok());
        assert!(instance_id(&"x".repeat(250)).is_err());
    }

    #[test]
    fn broker_lists() {
        assert_eq!(brokers("a:9092"), Ok("a:9092".into()));
        assert_eq!(brokers("a:9092, b:9093"), Ok("a:9092,b:9093".into()));
        assert_eq!(brokers("[::1]:9092"), Ok("[::1]:9092".into()));
        assert!(brokers("a").is_err());
        assert!(brokers("a:9092,").is_err());
        assert!(brokers(":9092").is_err());
        assert!(brokers("a:port").is_err());
        assert!(brokers("a:0").is_err());
        assert!(brokers("a:70000").is_err());
    }

    #[test]
    fn urls() {
        assert!(http_url("http://127.0.0.1:4317").is_ok());
        assert!(http_url("https://otel.example.com").is_ok());
        assert!(http_url("grpc://x:4317").is_err());
        assert!(http_url("http://").is_err());
    }

    #[test]
    fn json_pointers() {
        assert_eq!(json_pointer("/country"), Ok("/country".into()));
        assert_eq!(
            json_pointer("country"),
            Err(FormatError::NotPointer {
                text: "country".into()
            })
        );
        assert!(json_pointer("").is_err());
    }

    #[test]
    fn messages() {
        let cases = [
            (name(""), "must not be empty"),
            (
                name("a b"),
                "only ASCII letters, digits, '.', '_' and '-' are allowed",
            ),
            (topic(".."), r#""." and ".." are not allowed"#),
            (topic(&"x".repeat(250)), "longer than 249 characters"),
            (
                brokers("a,:1, b:0,"),
                r#""a" has no port; ":1" has no host; "b:0" has an invalid port; empty entry (write each broker as host:port)"#,
            ),
            (http_url("ftp://x"), "must start with http:// or https://"),
            (http_url("https:///x"), "has no host"),
            (
                json_pointer("a/b"),
                r#"must start with '/', such as "/a/b" (RFC 6901)"#,
            ),
        ];
        for (result, message) in cases {
            assert_eq!(result.unwrap_err().to_string(), message);
        }
    }
}
