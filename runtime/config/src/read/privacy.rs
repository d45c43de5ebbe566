//! `[privacy]`, and `redact` of `[dead_letter]`, which needs it.

use std::path::Path;

use super::security::secret;
use crate::formats;
use crate::privacy::{Privacy, PrivacyMethod};
use crate::reader::{Value, collect_all};
use crate::report::Report;
use crate::validate::Written;

/// Which of the two `method`s was chosen, before its key is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Mask,
    Hash,
}

/// The `[privacy]` table, with `redact_dead_letters` off: [`dead_letters`] sets it.
pub(super) fn privacy(
    value: &Value<'_, '_>,
    base: &Path,
    report: &mut Report<'_>,
) -> Option<Privacy> {
    let mut table = value.table(report)?;
    let fields = table.with_default("fields", Vec::new(), |value| {
        let items = value.array(report)?;
        let mut seen: Vec<String> = Vec::new();
        collect_all(items.iter().map(|item| {
            let pointer = item.parsed(report, "JSON pointer", formats::json_pointer)?;
            if seen.contains(&pointer) {
                item.error(report, format_args!("{pointer:?} is listed twice"));
                return None;
            }
            seen.push(pointer.clone());
            Some(pointer)
        }))
    });
    let headers = table.with_default("headers", Vec::new(), |value| {
        let items = value.array(report)?;
        let mut seen: Vec<String> = Vec::new();
        collect_all(items.iter().map(|item| {
            let name = item.non_empty_string(report)?;
            // Header names are matched in any case, so two spellings name one header.
            if seen.iter().any(|other| other.eq_ignore_ascii_case(&name)) {
                item.error(report, format_args!("{name:?} is listed twice"));
                return None;
            }
            seen.push(name.clone());
            Some(name)
        }))
    });
    let method = table.with_default("method", Method::Mask, |value| {
        value.choice(report, &[("mask", Method::Mask), ("hash", Method::Hash)])
    });
    let key_value = table.get("key");
    let key = match &key_value {
        Some(value) => secret(value, base, report, false).map(Some),
        None => Some(None),
    };
    table.finish(report);

    // The table's own errors are reported at `value`, which is where the table starts.
    let nothing = matches!((&fields, &headers), (Some(f), Some(h)) if f.is_empty() && h.is_empty());
    if nothing {
        value.error(
            report,
            "names nothing to redact: list JSON pointers in `fields` or header names in \
             `headers`",
        );
    }
    let method = match (method?, key?) {
        (Method::Mask, None) => PrivacyMethod::Mask,
        (Method::Hash, Some(key)) => PrivacyMethod::Hash { key },
        (Method::Hash, None) => {
            value.error(
                report,
                "`method = \"hash\"` needs `key`: the HMAC key, as { env = \"NAME\" } or \
                 { file = \"path\" }",
            );
            return None;
        }
        (Method::Mask, Some(_)) => {
            if let Some(key) = &key_value {
                key.error(
                    report,
                    "`key` is for `method = \"hash\"`: a mask needs no key",
                );
            }
            return None;
        }
    };
    if nothing {
        return None;
    }
    Some(Privacy {
        fields: fields?,
        headers: headers?,
        method,
        redact_dead_letters: false,
    })
}

/// `privacy` (as read: `Some(None)` when absent, `None` when wrong) with `redact` of
/// `[dead_letter]` applied, which is refused without a `[privacy]` table to say what to redact.
pub(super) fn dead_letters(
    privacy: Option<Option<Privacy>>,
    redact: Option<&Written<bool>>,
    report: &mut Report<'_>,
) -> Option<Option<Privacy>> {
    let Some(redact) = redact else {
        return privacy;
    };
    match privacy {
        Some(Some(mut privacy)) => {
            privacy.redact_dead_letters = redact.value;
            Some(Some(privacy))
        }
        Some(None) if redact.value => {
            report.error(
                &redact.span,
                &redact.place,
                "`redact = true` needs a [privacy] table naming the fields and headers to redact",
            );
            None
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::{Privacy, PrivacyMethod, Secret};

    const BASE: &str = r#"
name = "private"

[source]
brokers = "localhost:9092"
topics = ["in"]
group = "g"

[[stage]]
name = "identity"
module = "identity.wasm"
output = "out"
"#;

    fn privacy(rest: &str) -> Option<Privacy> {
        let text = format!("{BASE}{rest}");
        crate::parse(&text, Path::new("pipelines/p.toml"))
            .unwrap()
            .privacy
    }

    #[test]
    fn defaults_to_a_mask_and_unredacted_dead_letters() {
        let read = privacy("[dead_letter]\ntopic = \"dlq\"\n[privacy]\nfields = [\"/user\"]\n");
        assert_eq!(
            read,
            Some(Privacy {
                fields: vec!["/user".into()],
                headers: Vec::new(),
                method: PrivacyMethod::Mask,
                redact_dead_letters: false,
            })
        );
        assert_eq!(privacy("[dead_letter]\ntopic = \"dlq\"\n"), None);
    }

    #[test]
    fn reads_a_hash_key_from_a_file_next_to_the_pipeline_and_redact() {
        let read = privacy(
            "[dead_letter]\ntopic = \"dlq\"\nredact = true\n\
             [privacy]\nheaders = [\"X-User-Id\"]\nmethod = \"hash\"\nkey = { file = \"k\" }\n",
        )
        .unwrap();
        assert_eq!(read.headers, ["X-User-Id"]);
        assert_eq!(
            read.method,
            PrivacyMethod::Hash {
                key: Secret::File(PathBuf::from("pipelines/k"))
            }
        );
        assert!(read.redact_dead_letters);
    }

    #[test]
    fn redact_false_needs_no_privacy() {
        assert_eq!(
            privacy("[dead_letter]\ntopic = \"dlq\"\nredact = false\n"),
            None
        );
    }
}
