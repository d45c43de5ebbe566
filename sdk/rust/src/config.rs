//! The configuration a stage receives once, before its first batch.

#[cfg(feature = "serde")]
use crate::Error;

/// A stage's configuration: the `config` table of its pipeline entry, as JSON text.
///
/// A stage without a `config` table receives an empty object (`{}`); [`Config::json`] also reads
/// an empty or `null` text as `{}`, so a config struct whose fields all have defaults always
/// parses.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// #[derive(serde::Deserialize)]
/// struct GeoConfig {
///     #[serde(default = "default_field")]
///     field: String,
/// }
/// fn default_field() -> String {
///     "ip".into()
/// }
///
/// let c = weir_sdk::Config::new(r#"{"field":"client_ip"}"#);
/// assert_eq!(c.json::<GeoConfig>().unwrap().field, "client_ip");
/// assert_eq!(weir_sdk::Config::new("").json::<GeoConfig>().unwrap().field, "ip");
/// assert!(weir_sdk::Config::new(" { } ").is_empty());
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    text: String,
}

impl Config {
    /// Wraps configuration text (the host passes JSON).
    pub fn new(text: impl Into<String>) -> Self {
        Self { text: text.into() }
    }

    /// The raw configuration text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether there is no configuration: no text, `{}` or `null` (whitespace aside).
    pub fn is_empty(&self) -> bool {
        let mut text = self.text.chars().filter(|c| !c.is_whitespace());
        match text.next() {
            None => true,
            Some('{') => text.eq(['}']),
            Some('n') => text.eq(['u', 'l', 'l']),
            Some(_) => false,
        }
    }

    #[cfg(feature = "serde")]
    fn normalized(&self) -> &str {
        match self.text.trim() {
            "" | "null" => "{}",
            t => t,
        }
    }

    /// Deserialises the configuration into `T`. Failures are `bad-config` errors, which refuse
    /// the configuration (the pipeline does not start).
    #[cfg(feature = "serde")]
    pub fn json<'a, T: serde::Deserialize<'a>>(&'a self) -> Result<T, Error> {
        serde_json::from_str(self.normalized())
            .map_err(|e| Error::new("bad-config", format!("invalid stage config: {e}")))
    }
}

impl From<String> for Config {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

impl From<&str> for Config {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_configs() {
        for empty in ["", " ", "{}", "{ \n }", "null", " null "] {
            assert!(Config::new(empty).is_empty(), "{empty:?}");
        }
        for full in ["{\"a\":1}", "nul", "nulll", "{}}", "[]", "0"] {
            assert!(!Config::new(full).is_empty(), "{full:?}");
        }
    }
}
