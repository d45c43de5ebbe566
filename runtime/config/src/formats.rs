//! Strings with a format of their own: names, topics, broker lists, URLs.

/// The longest topic name Kafka accepts.
const MAX_TOPIC_LEN: usize = 249;

const NAME_CHARS: &str = "only ASCII letters, digits, '.', '_' and '-' are allowed";

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// A pipeline or stage name: ASCII letters, digits, `.`, `_` and `-`.
pub(crate) fn name(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if !text.chars().all(is_name_char) {
        return Err(NAME_CHARS.into());
    }
    Ok(text.to_owned())
}

/// A Kafka topic name.
pub(crate) fn topic(text: &str) -> Result<String, String> {
    if text == "." || text == ".." {
        return Err("\".\" and \"..\" are not allowed".into());
    }
    if text.len() > MAX_TOPIC_LEN {
        return Err(format!("longer than {MAX_TOPIC_LEN} characters"));
    }
    name(text)
}

/// A comma-separated list of `host:port`, returned without blanks around the commas.
pub(crate) fn brokers(text: &str) -> Result<String, String> {
    let brokers: Vec<&str> = text.split(',').map(str::trim).collect();
    let problems: Vec<String> = brokers
        .iter()
        .filter_map(|broker| broker_problem(broker))
        .collect();
    if problems.is_empty() {
        Ok(brokers.join(","))
    } else {
        Err(format!(
            "{} (write each broker as host:port)",
            problems.join("; ")
        ))
    }
}

fn broker_problem(broker: &str) -> Option<String> {
    let Some((host, port)) = broker.rsplit_once(':') else {
        return Some(if broker.is_empty() {
            "empty entry".into()
        } else {
            format!("{broker:?} has no port")
        });
    };
    if host.is_empty() {
        return Some(format!("{broker:?} has no host"));
    }
    if !matches!(port.parse::<u16>(), Ok(1..)) {
        return Some(format!("{broker:?} has an invalid port"));
    }
    None
}

/// An `http://` or `https://` URL.
pub(crate) fn http_url(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err("has no host".into());
    }
    Ok(text.to_owned())
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
}
