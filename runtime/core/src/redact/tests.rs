use std::borrow::Cow;
use std::sync::Arc;

use serde_json::{Value, json};
use weir_wire::{Headers, Record};

use super::*;

fn mask(fields: &[&str], headers: &[&str]) -> Redactor {
    Redactor::new(
        fields.iter().map(|f| f.to_string()).collect(),
        headers.iter().map(|h| h.to_string()).collect(),
        Method::Mask,
    )
    .unwrap()
}

fn hash(fields: &[&str], key: &[u8]) -> Redactor {
    Redactor::new(
        fields.iter().map(|f| f.to_string()).collect(),
        vec!["x-user-id".into()],
        Method::Hash {
            key: Arc::from(key),
        },
    )
    .unwrap()
}

fn redact(redactor: &Redactor, value: Value) -> Option<Value> {
    let bytes = serde_json::to_vec(&value).unwrap();
    let out = redactor.redact_value(&bytes)?;
    Some(serde_json::from_slice(&out).unwrap())
}

fn record(value: &str, headers: &[(&str, &[u8])]) -> Record {
    Record {
        value: Some(value.as_bytes().to_vec().into()),
        headers: headers
            .iter()
            .map(|(name, value)| Header::new(name, Some(value)))
            .collect(),
        ..Record::default()
    }
}

#[test]
fn masks_the_listed_fields_and_keeps_the_others() {
    let redactor = mask(&["/user", "/ip"], &[]);
    let out = redact(
        &redactor,
        json!({"user": "ada", "ip": "10.0.0.1", "page": "/home"}),
    );
    assert_eq!(
        out,
        Some(json!({"user": "[redacted]", "ip": "[redacted]", "page": "/home"}))
    );
}

#[test]
fn masks_values_of_any_type() {
    let redactor = mask(&["/n", "/o"], &[]);
    let out = redact(&redactor, json!({"n": 42, "o": {"a": [1, 2]}, "k": true}));
    assert_eq!(
        out,
        Some(json!({"n": "[redacted]", "o": "[redacted]", "k": true}))
    );
}

#[test]
fn hashes_equal_inputs_equally_and_keys_differently() {
    let one = hash(&["/user"], b"key one");
    let two = hash(&["/user"], b"key two");
    let a = redact(&one, json!({"user": "ada"})).unwrap();
    let b = redact(&one, json!({"user": "ada", "other": 1})).unwrap();
    let c = redact(&two, json!({"user": "ada"})).unwrap();
    let d = redact(&one, json!({"user": "bob"})).unwrap();
    let shown = a["user"].as_str().unwrap();
    assert!(shown.starts_with(HASH_PREFIX), "{shown}");
    let hex = &shown[HASH_PREFIX.len()..];
    assert_eq!(hex.len(), 32);
    assert!(
        hex.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(a["user"], b["user"]);
    assert_ne!(a["user"], c["user"]);
    assert_ne!(a["user"], d["user"]);
}

#[test]
fn hashes_a_string_as_its_text_and_other_values_as_compact_json() {
    let redactor = hash(&["/s", "/n", "/o"], b"k");
    let out = redact(&redactor, json!({"s": "ada", "n": 7, "o": {"a": 1}})).unwrap();
    let method = redactor.method();
    assert_eq!(out["s"], json!(method.redacted(b"ada")));
    assert_eq!(out["n"], json!(method.redacted(b"7")));
    assert_eq!(out["o"], json!(method.redacted(br#"{"a":1}"#)));
}

#[test]
fn the_hash_is_hmac_sha256() {
    // RFC 4231, test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
    let method = Method::Hash {
        key: Arc::from(&b"Jefe"[..]),
    };
    assert_eq!(
        method.redacted(b"what do ya want for nothing?"),
        "hmac-sha256:5bdcc146bf60754e6a042426089575c7"
    );
}

#[test]
fn follows_nested_pointers_array_indexes_and_escapes() {
    let redactor = mask(&["/user/name", "/tags/1", "/a~1b", "/m~0n", "/~01"], &[]);
    let out = redact(
        &redactor,
        json!({
            "user": {"name": "ada", "id": 3},
            "tags": ["x", "y", "z"],
            "a/b": 1,
            "m~n": 2,
            "~1": 3,
            "/": 4,
        }),
    );
    assert_eq!(
        out,
        Some(json!({
            "user": {"name": "[redacted]", "id": 3},
            "tags": ["x", "[redacted]", "z"],
            "a/b": "[redacted]",
            "m~n": "[redacted]",
            "~1": "[redacted]",
            "/": 4,
        }))
    );
}

#[test]
fn array_indexes_follow_rfc_6901() {
    let redactor = mask(&["/a/01", "/a/-", "/a/+1", "/a/9"], &[]);
    assert_eq!(redact(&redactor, json!({"a": [1, 2]})), None);
    let redactor = mask(&["/a/0"], &[]);
    assert_eq!(
        redact(&redactor, json!({"a": [1, 2]})),
        Some(json!({"a": ["[redacted]", 2]}))
    );
}

#[test]
fn the_empty_pointer_is_the_whole_value() {
    let redactor = mask(&[""], &[]);
    assert_eq!(
        redact(&redactor, json!({"a": 1})),
        Some(json!("[redacted]"))
    );
}

#[test]
fn nothing_to_replace_gives_none() {
    let redactor = mask(&["/user"], &[]);
    assert_eq!(redact(&redactor, json!({"name": "ada"})), None);
    assert_eq!(redact(&redactor, json!("user")), None);
    assert_eq!(redactor.redact_value(b"not json {"), None);
    assert_eq!(redactor.redact_value(b""), None);
    assert_eq!(mask(&[], &["h"]).redact_value(br#"{"user":1}"#), None);
}

#[test]
fn refuses_a_pointer_without_a_slash_and_an_empty_key() {
    let error = Redactor::new(vec!["user".into()], Vec::new(), Method::Mask).unwrap_err();
    assert_eq!(error, RedactError::Pointer("user".into()));
    assert_eq!(
        error.to_string(),
        "invalid JSON pointer \"user\": must be empty or start with '/' (RFC 6901)"
    );
    let empty = Method::Hash {
        key: Arc::from(&b""[..]),
    };
    let error = Redactor::new(Vec::new(), Vec::new(), empty).unwrap_err();
    assert_eq!(error, RedactError::EmptyKey);
}

#[test]
fn redacts_listed_headers_in_any_case_and_keeps_their_order() {
    let redactor = mask(&[], &["X-User-Id"]);
    let mut headers: Headers = [
        Header::new("a", Some(b"1")),
        Header::new("x-user-id", Some(b"ada")),
        Header::new("X-USER-ID", None),
        Header::new("b", Some(b"2")),
    ]
    .into_iter()
    .collect();
    redactor.redact_headers(&mut headers);
    let got: Vec<(&str, Option<&[u8]>)> = headers.iter().map(|h| (h.name, h.value)).collect();
    assert_eq!(
        got,
        vec![
            ("a", Some(&b"1"[..])),
            ("x-user-id", Some(&b"[redacted]"[..])),
            ("X-USER-ID", None),
            ("b", Some(&b"2"[..])),
        ]
    );
}

#[test]
fn hashes_a_header_unquoted() {
    let redactor = hash(&[], b"k");
    let mut headers: Headers = [Header::new("X-User-Id", Some(b"ada"))]
        .into_iter()
        .collect();
    redactor.redact_headers(&mut headers);
    let expected = redactor.method().redacted(b"ada");
    assert_eq!(headers.get("X-User-Id"), Some(Some(expected.as_bytes())));
}

#[test]
fn headers_without_a_listed_name_are_untouched() {
    let redactor = mask(&[], &["x-user-id"]);
    let mut headers: Headers = [Header::new("a", Some(b"1"))].into_iter().collect();
    let before = headers.clone();
    redactor.redact_headers(&mut headers);
    assert_eq!(headers, before);
}

#[test]
fn redacts_a_whole_record() {
    let redactor = mask(&["/user"], &["x-user-id"]);
    let mut r = record(r#"{"user":"ada"}"#, &[("x-user-id", b"ada")]);
    assert!(redactor.redact_record(&mut r));
    assert_eq!(r.value.as_deref(), Some(&br#"{"user":"[redacted]"}"#[..]));
    assert_eq!(r.header("x-user-id"), Some(&b"[redacted]"[..]));
    let mut clean = record(r#"{"page":"/"}"#, &[("other", b"x")]);
    assert!(!redactor.redact_record(&mut clean));
}

#[test]
fn scrubs_a_message_that_quotes_a_value() {
    let redactor = mask(&["/user", "/n"], &["x-user-id"]);
    let r = record(
        r#"{"user":"ada lovelace","n":12345}"#,
        &[("X-User-Id", b"u-778")],
    );
    let scrub = redactor.scrub_for(&r);
    assert_eq!(scrub.len(), 3);
    let message = "no account for ada lovelace (id u-778, n=12345)";
    assert_eq!(
        scrub.apply(message),
        "no account for [redacted] (id [redacted], n=[redacted])"
    );
    assert!(matches!(scrub.apply("all clear"), Cow::Borrowed(_)));
}

#[test]
fn scrubs_a_value_as_written_inside_json() {
    let redactor = mask(&["/user"], &[]);
    let r = record(r#"{"user":"ada \"the countess\""}"#, &[]);
    let scrub = redactor.scrub_for(&r);
    let message = r#"bad input {"user":"ada \"the countess\""} and ada "the countess""#;
    assert_eq!(
        scrub.apply(message),
        r#"bad input {"user":"[redacted]"} and [redacted]"#
    );
}

#[test]
fn scrubs_with_the_same_hash_as_the_value() {
    let redactor = hash(&["/user"], b"k");
    let r = record(r#"{"user":"ada"}"#, &[("x-user-id", b"bob")]);
    let scrub = redactor.scrub_for(&r);
    let out = scrub.apply("ada and bob");
    let (ada, bob) = (
        redactor.method().redacted(b"ada"),
        redactor.method().redacted(b"bob"),
    );
    assert_eq!(out, format!("{ada} and {bob}"));
    let value = redactor.redact_value(r.value.as_deref().unwrap()).unwrap();
    assert!(String::from_utf8(value).unwrap().contains(&ada));
}

#[test]
fn scrubs_a_longer_text_whole_before_one_it_contains() {
    let redactor = mask(&["/a", "/b"], &[]);
    let r = record(r#"{"a":"smith","b":"john smith"}"#, &[]);
    assert_eq!(
        redactor.redact_text_in(&r, "john smith, smith"),
        "[redacted], [redacted]"
    );
    // A replacement is never searched: "red" would otherwise be found in "[redacted]".
    let r = record(r#"{"a":"red","b":"fred"}"#, &[]);
    assert_eq!(
        redactor.redact_text_in(&r, "fred red"),
        "[redacted] [redacted]"
    );
}

#[test]
fn skips_short_texts_and_non_utf8_headers() {
    let redactor = mask(&["/a", "/b"], &["h"]);
    let r = record(r#"{"a":"ab","b":7}"#, &[("h", &[0xff, 0xfe, 0xfd])]);
    let scrub = redactor.scrub_for(&r);
    assert!(scrub.is_empty());
    assert!(matches!(scrub.apply("ab 7"), Cow::Borrowed(_)));
}

#[test]
fn the_scrubs_of_a_batch_merge() {
    let redactor = mask(&["/user"], &[]);
    let mut scrub = redactor.scrub_for(&record(r#"{"user":"ada"}"#, &[]));
    scrub.extend(redactor.scrub_for(&record(r#"{"user":"bob"}"#, &[])));
    scrub.extend(redactor.scrub_for(&record(r#"{"user":"ada"}"#, &[])));
    assert_eq!(scrub.len(), 2);
    assert_eq!(scrub.apply("ada, bob"), "[redacted], [redacted]");
}

#[test]
fn debug_never_shows_the_key_or_the_texts() {
    let redactor = hash(&["/user"], b"s3cret-key");
    let shown = format!("{redactor:?} {:?}", redactor.method());
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(!shown.contains("115"), "key bytes leaked: {shown}");
    let scrub = redactor.scrub_for(&record(r#"{"user":"ada lovelace"}"#, &[]));
    let shown = format!("{scrub:?}");
    assert!(!shown.contains("lovelace"), "{shown}");
}
