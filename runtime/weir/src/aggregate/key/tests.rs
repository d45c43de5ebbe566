//! [`KeyFields::read`] against reading the value into a `serde_json::Value` and calling
//! `Value::pointer`: the same key, time and error message for every document and pair of
//! pointers below.

use super::*;

/// What a stage read before [`KeyFields`]: the whole value as a `serde_json::Value`, then
/// `Value::pointer`.
fn reference(
    key: Option<&str>,
    time: Option<&str>,
    record: &Record,
) -> Result<(Arc<[u8]>, i64), Failure> {
    let invalid = |m: String| Failure::new(FailureKind::InvalidInput, m);
    let json = if key.is_some() || time.is_some() {
        let value = record.value.as_deref().unwrap_or_default();
        Some(
            serde_json::from_slice::<serde_json::Value>(value).map_err(|e| {
                invalid(format!(
                    "the value is not JSON, so `key`/`time` cannot be read: {e}"
                ))
            })?,
        )
    } else {
        None
    };
    let key: Arc<[u8]> = match (key, &json) {
        (Some(pointer), Some(json)) => match json.pointer(pointer) {
            None | Some(serde_json::Value::Null) => {
                return Err(invalid(format!("the value has no key at {pointer}")));
            }
            Some(serde_json::Value::String(s)) => Arc::from(s.as_bytes()),
            Some(other) => Arc::from(other.to_string().as_bytes()),
        },
        _ => match &record.key {
            Some(k) => Arc::from(&k[..]),
            None => {
                return Err(invalid(
                    "the record has no Kafka key (set the stage's `key` to a JSON pointer to \
                     group by a field of the value)"
                        .into(),
                ));
            }
        },
    };
    let time = match (time, &json) {
        (Some(pointer), Some(json)) => {
            let t = match json.pointer(pointer) {
                Some(serde_json::Value::Number(n)) => {
                    n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))
                }
                Some(serde_json::Value::String(s)) => s.parse::<i64>().ok(),
                _ => None,
            };
            t.ok_or_else(|| {
                invalid(format!(
                    "no event time at {pointer} (a number of milliseconds since the Unix \
                     epoch, or a string of one)"
                ))
            })?
        }
        _ => record.timestamp.ok_or_else(|| {
            invalid("the record has no timestamp to take its event time from".into())
        })?,
    };
    Ok((key, time))
}

fn documents() -> Vec<Vec<u8>> {
    let mut docs: Vec<Vec<u8>> = [
        r#"{"user":"u1","ts":1000}"#,
        r#"{"user":{"id":7,"tags":["a","b"]},"ts":"1500"}"#,
        r#"{"user":null,"ts":1.5e3}"#,
        r#"{"a":[10,{"b":"x","t":-5}],"a~b":1,"c/d":2}"#,
        r#"{"n":18446744073709551615,"f":-0.0,"big":1e300,"huge":12345678901234567890123}"#,
        r#"{"dup":1,"dup":{"k":"v"},"x":true}"#,
        r#"{"dup":{"k":"v","t":5},"dup":2}"#,
        r#"{"dup":{"k":"v","t":5},"dup":{"t":6}}"#,
        r#"[1,"two",{"three":3}]"#,
        r#""just a string""#,
        "42",
        "-7.9",
        "null",
        "true",
        r#"{"s":"caf\u00e9 \ud83d\ude00","e":"a\"b\n"}"#,
        r#"{"deep":{"deeper":{"deepest":[[1,2],[3,{"t":99}]]}}}"#,
        r#"{"k":[1,2,3],"t":{"x":1}}"#,
        r#"{"k":{"t":"77","u":[{"v":1}]},"x":[]}"#,
        r#"{"k":1.0,"t":"-12","u":"1.5","v":" 3"}"#,
        r#"{"0":"zero","01":"x","":{"":"empty"}}"#,
        r#"  {"user" : "spaced" , "ts" : 3 }  "#,
        // Not JSON, or not only JSON: each is refused with serde_json's own message.
        "",
        "{",
        r#"{"a":1}x"#,
        r#"{"a":1e400,"user":"v"}"#,
        r#"{"user":"v","a":[1e400]}"#,
        r#"{"a":"\ud800","user":"v"}"#,
        r#"{"a":01}"#,
        "[1,]",
        r#"{"user":"v","ts":1,}"#,
        r#"{"user":"v" "ts":1}"#,
        r#"{"user":"\x"}"#,
        "{\"a\":\"\u{1}\",\"user\":\"v\"}",
    ]
    .iter()
    .map(|d| d.as_bytes().to_vec())
    .collect();
    // Bytes that are not UTF-8, in a member no pointer names and in one a pointer names.
    docs.push(b"{\"a\":\"\xff\",\"user\":\"v\"}".to_vec());
    docs.push(b"{\"user\":\"\xc3\x28\"}".to_vec());
    // Past serde_json's nesting limit, in a skipped member and under the key.
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    docs.push(format!(r#"{{"skip":{},"user":"v"}}"#, deep(200)).into_bytes());
    docs.push(format!(r#"{{"user":{}}}"#, deep(200)).into_bytes());
    docs.push(format!(r#"{{"user":{},"ts":1}}"#, deep(100)).into_bytes());
    docs
}

const POINTERS: &[Option<&str>] = &[
    None,
    Some(""),
    Some("/"),
    Some("//"),
    Some("/user"),
    Some("/user/id"),
    Some("/user/tags/1"),
    Some("/user/tags/01"),
    Some("/ts"),
    Some("/a/0"),
    Some("/a/1/b"),
    Some("/a/1/t"),
    Some("/a/-"),
    Some("/a/+1"),
    Some("/a~0b"),
    Some("/c~1d"),
    Some("/n"),
    Some("/f"),
    Some("/big"),
    Some("/huge"),
    Some("/dup"),
    Some("/dup/k"),
    Some("/dup/t"),
    Some("/x"),
    Some("/0"),
    Some("/01"),
    Some("/2/three"),
    Some("/s"),
    Some("/e"),
    Some("/deep/deeper/deepest/1/1/t"),
    Some("/k"),
    Some("/k/1"),
    Some("/k/t"),
    Some("/k/u/0/v"),
    Some("/t"),
    Some("/u"),
    Some("/v"),
    Some("user"),
    Some("/missing"),
    Some("/user/missing/deeper"),
];

fn record(value: &[u8], key: Option<&[u8]>, timestamp: Option<i64>) -> Record {
    Record {
        key: key.map(weir_core::Bytes::copy_from_slice),
        value: Some(weir_core::Bytes::copy_from_slice(value)),
        timestamp,
        ..Record::default()
    }
}

/// Every document, every pair of pointers, with and without a Kafka key and timestamp.
#[test]
fn reads_what_value_pointer_reads() {
    let mut compared = 0;
    for doc in documents() {
        let records = [
            record(&doc, Some(b"kafka-key"), Some(123)),
            record(&doc, None, None),
        ];
        for key in POINTERS {
            for time in POINTERS {
                let fields = KeyFields::from_pointers(*key, *time);
                for r in &records {
                    let expected = reference(*key, *time, r);
                    assert_eq!(
                        fields.read(r),
                        expected,
                        "value {:?}, key {key:?}, time {time:?}",
                        String::from_utf8_lossy(&doc)
                    );
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 50_000, "{compared}");
}

#[test]
fn a_record_without_a_value_reads_as_an_empty_document() {
    let r = Record {
        key: Some(weir_core::Bytes::from_static(b"k")),
        timestamp: Some(1),
        ..Record::default()
    };
    for (key, time) in [(Some("/user"), None), (None, Some("/ts")), (None, None)] {
        assert_eq!(
            KeyFields::from_pointers(key, time).read(&r),
            reference(key, time, &r)
        );
    }
}

#[test]
fn reads_the_fields_a_stage_names() {
    let fields = KeyFields::from_pointers(Some("/user/id"), Some("/ts"));
    let r = record(br#"{"user":{"id":"u-1"},"ts":"1700"}"#, None, None);
    assert_eq!(fields.read(&r).unwrap(), (Arc::from(&b"u-1"[..]), 1700));
    let failure = fields
        .read(&record(br#"{"user":{},"ts":1}"#, None, None))
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::InvalidInput);
    assert_eq!(failure.message, "the value has no key at /user/id");
}
