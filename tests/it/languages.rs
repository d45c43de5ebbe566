//! Stages in every wasm language agree: the same records through the JSON enrich stage of each
//! language (Rust, C, Go, Zig, Python, JavaScript) give the same outcomes, a trap in each language's trap stage
//! dead-letters exactly its record, a module built against another contract version is refused
//! with a clear error, and a non-Rust aggregate stage folds like the Rust one.
//!
//! The non-Rust modules are built by `make languages` (each `examples-wasm/<name>/build.sh`); a
//! missing module fails these tests with that instruction, never skips them.
//!
//! What "the same" means: error kinds and codes are equal (messages are each language's own);
//! keys, headers and timestamps are byte-identical; values are equal as JSON values (parsed with
//! serde_json), and byte-identical too for inputs already in serde_json's canonical form (members
//! sorted, no escapes that serde_json would write differently, integers), because every enrich
//! implementation writes members sorted by name, a repeated name keeping its last value, as the
//! Rust stage's `serde_json::Map` does; numbers and strings of the input are copied as written, so
//! `2.50` stays `2.50` where serde_json writes `2.5`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use weir_core::{FailureKind, Header, Record, Stage, StageOutcome};
use weir_wasm::{AggregateModule, EnrichModule, Limits, ModuleSpec, WasmError, WasmHost};

use crate::harness::{
    Rec, Weir, consume, create_topic, produce, repo, source_table, unique, write_pipeline,
};

/// Every language's enrich stage: (language, module name in `pipelines/modules/`).
const ENRICH: &[(&str, &str)] = &[
    ("rust", "json_enrich"),
    ("c", "json_enrich_c"),
    ("go", "json_enrich_go"),
    ("zig", "json_enrich_zig"),
    ("python", "json_enrich_python"),
    ("js", "json_enrich_js"),
];

/// Every language's trap stage: passes records through, traps on a value containing `poison`.
const TRAP: &[(&str, &str)] = &[
    ("rust", "trap"),
    ("c", "trap_c"),
    ("go", "trap_go"),
    ("zig", "trap_zig"),
    ("python", "trap_python"),
    ("js", "trap_js"),
];

/// Modules built against `weir:stage@0.2.0`.
const WRONG_VERSION: &[(&str, &str)] = &[("rust", "wrong_version"), ("c", "wrong_version_c")];

const LIMITS: Limits = Limits {
    memory: 64 << 20,
    timeout: Duration::from_secs(5),
    recycle_after: None,
    recycle_memory: None,
    fuel: None,
};

/// `pipelines/modules/<name>.wasm`; fails (never skips) when it has not been built.
fn module_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("WEIR_MODULES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("pipelines/modules"));
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build the example modules first (`make wasm languages`)",
        path.display()
    );
    path
}

/// One engine for the module: compiled modules are cached in memory and on disk (Python and
/// JavaScript guests take seconds to compile, much longer in a debug build).
fn host() -> WasmHost {
    static HOST: OnceLock<WasmHost> = OnceLock::new();
    HOST.get_or_init(|| WasmHost::new(Some(std::env::temp_dir().join("weir-test-cache"))).unwrap())
        .clone()
}

fn enrich(host: &WasmHost, name: &str, config: &str) -> Result<Arc<EnrichModule>, WasmError> {
    let compiled = host
        .compile_file(&module_path(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    EnrichModule::new(
        host,
        ModuleSpec {
            stage: "enrich",
            module: compiled,
            config: config.into(),
            limits: LIMITS,
        },
    )
}

fn record(offset: i64, value: Option<&[u8]>) -> Record {
    Record {
        offset,
        timestamp: Some(1_700_000_000_000 + offset),
        key: Some(format!("k{offset}").into_bytes().into()),
        value: value.map(|v| v.to_vec().into()),
        headers: [Header::new("origin", Some(format!("o{offset}").as_bytes()))]
            .into_iter()
            .collect(),
    }
}

/// The conformance inputs: (value, whether it is in serde_json's canonical form).
fn inputs() -> Vec<(Option<Vec<u8>>, bool)> {
    let s = |v: &str| Some(v.as_bytes().to_vec());
    let mut deep_ok = String::from(r#"{"url":"http://h/","d":"#);
    let mut deep_bad = deep_ok.clone();
    // serde_json allows 127 nested arrays and objects: the object plus 126 arrays.
    deep_ok.push_str(&"[".repeat(126));
    deep_ok.push_str(&"]".repeat(126));
    deep_ok.push('}');
    deep_bad.push_str(&"[".repeat(127));
    deep_bad.push_str(&"]".repeat(127));
    deep_bad.push('}');
    let big = format!(
        r#"{{"blob":"{}","url":"https://big.example/x"}}"#,
        "y".repeat(200_000)
    );
    vec![
        // Clicks.
        (
            s(
                r#"{"ip":"81.2.69.160","ts":1700000000000,"ua":"Mozilla/5.0","url":"https://shop.example/products/42?ref=mail","user":"u17"}"#,
            ),
            true,
        ),
        (
            s(
                r#"{"url":"http://A.Example:8080/?utm_source=news%20letter&utm_medium=email&x=1#top"}"#,
            ),
            true,
        ),
        (
            s(
                r#"{"url":"https://user:pw@Shop.Example:8443/a/b?x=1&ref=mail&ref=again#frag","ts":-1}"#,
            ),
            false,
        ),
        (s(r#"{"url":"http://[::1]:80","ts":0}"#), true),
        (s(r#"{"url":"http://h:/p","ts":"soon"}"#), true),
        // Unicode, raw and escaped, and escapes serde_json writes differently.
        (
            s(
                r#"{"url":"https://bücher.example/straße?ref=caf%C3%A9","user":"Zoë 🚀","ts":1700000000000}"#,
            ),
            false,
        ),
        (
            s(
                r#"{"u\u0072l":"https:\/\/a.example\/x","note":"tab\there \"q\" \u00e9 \ud83d\ude80 \u001f"}"#,
            ),
            false,
        ),
        // Query decoding: empty pairs, malformed escapes, invalid UTF-8 after decoding.
        (
            s(
                r#"{"url":"http://h/?a=1&&b&ref=%zz&utm_x=%e2%82%ac&utm_y=%E2%82&utm_z=+a+&utm_w=%4&utm_v=%ff%fe"}"#,
            ),
            true,
        ),
        // Repeated members (the last wins) and derived fields overwriting input ones.
        (
            s(
                r#"{"domain":"old","url":"http://x.example/a","url":"https://y.example/b","hour":99}"#,
            ),
            false,
        ),
        // Numbers: floats, big integers, negative zero, exponents.
        (
            s(
                r#"{"url":"http://h/","ts":1.7e12,"f":2.50,"big":18446744073709551616,"z":-0,"e":1E3,"neg":-12}"#,
            ),
            false,
        ),
        (s(r#"{"url":"http://h/","ts":-9223372036854775809}"#), false),
        (s(r#"{"url":"http://h/","ts":18446744073709551615}"#), false),
        (s(r#"{"url":"http://h/","ts":-3600001}"#), true),
        // Whitespace around and inside.
        (
            s(" \n{ \"url\" : \"http://h/x\" ,\t\"n\" : [ 1 , { } ] }\r\n"),
            false,
        ),
        (s(&deep_ok), true),
        (s(&big), true),
        // Refused: bad-json.
        (s("this is not json"), false),
        (s(""), false),
        (None, false),
        (s("[1,2]"), false),
        (s("null"), false),
        (s(r#"{"url":"http://h/",}"#), false),
        (s(r#"{"url":"http://h/","n":01}"#), false),
        (s(r#"{"url":"http://h/","n":1e400}"#), false),
        (s(r#"{"url":"http://h/","n":-}"#), false),
        (s(r#"{"url":"http://h/","s":"\ud800"}"#), false),
        (s(r#"{"url":"http://h/","s":"\udc00\ud800"}"#), false),
        (s(r#"{"url":"http://h/","s":"\x"}"#), false),
        (s("{\"url\":\"http://h/\",\"s\":\"a\tb\"}"), false),
        (
            Some(b"{\"url\":\"http://h/\",\"s\":\"\xff\"}".to_vec()),
            false,
        ),
        (
            Some(b"{\"url\":\"http://h/\",\"s\":\"\xed\xa0\x80\"}".to_vec()),
            false,
        ),
        (s(r#"{"url":"http://h/"} x"#), false),
        (s(r#"{"url":"http://h/"}{}"#), false),
        (s(r#"{"url":"http://h/","b":tru}"#), false),
        (s(r#"{url:"http://h/"}"#), false),
        (s(&deep_bad), false),
        // Refused: missing-field.
        (s(r#"{"user":"u1"}"#), false),
        (s(r#"{"url":42}"#), false),
        (s(r#"{"url":null}"#), false),
        (s("{}"), false),
        // Refused: bad-url.
        (s(r#"{"url":"/products/42"}"#), false),
        (s(r#"{"url":"https://"}"#), false),
        (s(r#"{"url":"example.com/path"}"#), false),
        (s(r#"{"url":"1http://h"}"#), false),
        (s(r#"{"url":"http://h:99999"}"#), false),
        (s(r#"{"url":"http://h:8o"}"#), false),
        (s(r#"{"url":"http://ho st/"}"#), false),
        (s(r#"{"url":"http://h/\n"}"#), false),
        (s(r#"{"url":"http://[::1/"}"#), false),
        (s(r#"{"url":"http://[::1]x/"}"#), false),
        (s(r#"{"url":"http://h<x>/"}"#), false),
        (s(r#"{"url":"http:///path"}"#), false),
        (s(r#"{"url":"http://[]/"}"#), false),
    ]
}

/// The records of `inputs()`, plus a record with a null key and one with several headers
/// (repeated names, a null header value) and no timestamp.
fn records() -> (Vec<Record>, Vec<bool>) {
    let mut records = Vec::new();
    let mut canonical = Vec::new();
    for (i, (value, canon)) in inputs().into_iter().enumerate() {
        records.push(record(i as i64, value.as_deref()));
        canonical.push(canon);
    }
    let click = br#"{"url":"https://shop.example/cart","ts":1700000000000}"#;
    let mut null_key = record(records.len() as i64, Some(click));
    null_key.key = None;
    records.push(null_key);
    canonical.push(false);
    let mut headers = record(records.len() as i64, Some(click));
    headers.timestamp = None;
    headers.headers = [
        Header::new("traceparent", Some(b"00-abc-def-01".as_slice())),
        Header::new("dup", Some(b"1".as_slice())),
        Header::new("dup", Some(b"2".as_slice())),
        Header::new("nothing", None),
        Header::new("bytes", Some(b"\x00\xff".as_slice())),
    ]
    .into_iter()
    .collect();
    records.push(headers);
    canonical.push(false);
    (records, canonical)
}

fn value_json(r: &Record) -> serde_json::Value {
    serde_json::from_slice(r.value.as_deref().unwrap()).unwrap_or_else(|e| {
        panic!(
            "output is not JSON ({e}): {}",
            String::from_utf8_lossy(r.value.as_deref().unwrap())
        )
    })
}

/// An outcome for a failure message, cut short.
fn brief(outcome: &StageOutcome) -> String {
    format!("{outcome:?}").chars().take(300).collect()
}

/// Checks `got` (from `lang`) against the Rust stage's outcome `want` for input `i`.
fn assert_same(
    lang: &str,
    i: usize,
    input: &Record,
    canonical: bool,
    want: &StageOutcome,
    got: &StageOutcome,
) {
    let show = || {
        String::from_utf8_lossy(input.value.as_deref().unwrap_or(b"<null>"))
            .chars()
            .take(200)
            .collect::<String>()
    };
    match (want, got) {
        (Err(w), Err(g)) => {
            assert_eq!(
                (w.kind, &w.code),
                (g.kind, &g.code),
                "{lang}, input {i} ({}): {g:?}",
                show()
            );
        }
        (Ok(w), Ok(g)) => {
            assert_eq!(w.len(), g.len(), "{lang}, input {i}: output count");
            for (w, g) in w.iter(input).zip(g.iter(input)) {
                assert_eq!(w.key, g.key, "{lang}, input {i}: key");
                assert_eq!(w.headers, g.headers, "{lang}, input {i}: headers");
                // `None` keeps the input's timestamp (the caller fills it in).
                assert_eq!(
                    w.timestamp.or(input.timestamp),
                    g.timestamp.or(input.timestamp),
                    "{lang}, input {i}: timestamp"
                );
                assert_eq!(
                    value_json(w),
                    value_json(g),
                    "{lang}, input {i} ({})",
                    show()
                );
                if canonical {
                    assert!(
                        w.value == g.value,
                        "{lang}, input {i}: canonical input, byte-identical output expected: \
                         rust gave {}, {lang} gave {}",
                        brief(want),
                        brief(got)
                    );
                }
            }
        }
        _ => panic!(
            "{lang}, input {i} ({}): rust gave {want:?}, {lang} gave {got:?}",
            show()
        ),
    }
}

#[test]
fn every_language_enriches_the_same() {
    let host = host();
    let (records, canonical) = records();
    let reference = enrich(&host, "json_enrich", r#"{"field":"url"}"#)
        .unwrap()
        .instance()
        .unwrap()
        .process("clicks", 3, &records);
    assert!(
        reference.iter().filter(|o| o.is_ok()).count() >= 15,
        "{reference:?}"
    );
    for &(lang, name) in &ENRICH[1..] {
        let module =
            enrich(&host, name, r#"{"field":"url"}"#).unwrap_or_else(|e| panic!("{lang}: {e}"));
        let mut instance = module.instance().unwrap();
        // Twice through one instance: state from one batch must not leak into the next.
        for _ in 0..2 {
            let got = instance.process("clicks", 3, &records);
            assert_eq!(got.len(), records.len(), "{lang}");
            for (i, (want, got)) in reference.iter().zip(&got).enumerate() {
                assert_same(lang, i, &records[i], canonical[i], want, got);
            }
        }
        // One record per call gives the same as one batch.
        for (i, r) in records.iter().enumerate().take(12) {
            let got = instance.process("clicks", 3, std::slice::from_ref(r));
            assert_same(lang, i, r, canonical[i], &reference[i], &got[0]);
        }
    }
}

#[test]
fn every_language_reads_its_config_the_same() {
    let host = host();
    let click = record(
        0,
        Some(br#"{"link":"https://shop.example/cart","ts":0,"url":5}"#),
    );
    for &(lang, name) in ENRICH {
        // The configured field, and the defaults for an empty config.
        let module =
            enrich(&host, name, r#"{"field":"link"}"#).unwrap_or_else(|e| panic!("{lang}: {e}"));
        let out = module
            .instance()
            .unwrap()
            .process("t", 0, std::slice::from_ref(&click));
        let v = value_json(out[0].as_ref().unwrap().iter(&click).next().unwrap());
        assert_eq!(
            (v["section"].as_str(), v["hour"].as_u64()),
            (Some("cart"), Some(0)),
            "{lang}"
        );
        for empty in ["", " ", "{}", "null"] {
            let module =
                enrich(&host, name, empty).unwrap_or_else(|e| panic!("{lang} {empty:?}: {e}"));
            let out = module
                .instance()
                .unwrap()
                .process("t", 0, std::slice::from_ref(&click));
            assert_eq!(
                out[0].as_ref().unwrap_err().code,
                "missing-field",
                "{lang} {empty:?}"
            );
        }
        // Refused configurations.
        for bad in [
            r#"{"feild":"url"}"#,
            r#"{"field":1}"#,
            "[",
            r#"{"field":"a","field":"b"}"#,
            "42",
        ] {
            let err = enrich(&host, name, bad).expect_err(&format!("{lang} accepted {bad:?}"));
            let text = err.to_string();
            assert!(
                matches!(err, WasmError::Init { ref code, .. } if code == "bad-config"),
                "{lang} {bad:?}: {text}"
            );
        }
    }
}

#[test]
fn a_trap_in_any_language_fails_its_record_alone() {
    let host = host();
    let records: Vec<Record> = [
        &br#"{"url":"http://h/1"}"#[..],
        br#"{"url":"http://h/poison"}"#,
        br#"{"url":"http://h/3"}"#,
    ]
    .iter()
    .enumerate()
    .map(|(i, v)| record(i as i64, Some(v)))
    .collect();
    for &(lang, name) in TRAP {
        let compiled = host.compile_file(&module_path(name)).unwrap();
        let module = EnrichModule::new(
            &host,
            ModuleSpec {
                stage: "trap",
                module: compiled,
                config: r#"{"trap_on":"poison"}"#.into(),
                limits: LIMITS,
            },
        )
        .unwrap_or_else(|e| panic!("{lang}: {e}"));
        let mut instance = module.instance().unwrap();
        for _ in 0..2 {
            let out = instance.process("t", 0, &records);
            assert_eq!(out.len(), 3, "{lang}");
            for (i, o) in out.iter().enumerate() {
                if i == 1 {
                    let failure = o.as_ref().expect_err(lang);
                    assert_eq!(failure.kind, FailureKind::Trap, "{lang}: {failure:?}");
                } else {
                    let outputs = o.as_ref().unwrap_or_else(|e| panic!("{lang}: {e:?}"));
                    assert_eq!(outputs.len(), 1, "{lang}");
                    let want = &records[i];
                    // A pass-through: the input itself (timestamps kept by the caller).
                    let out = outputs.iter(want).next().unwrap();
                    assert_eq!(
                        (&out.key, &out.value, &out.headers),
                        (&want.key, &want.value, &want.headers),
                        "{lang}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_module_of_another_contract_version_is_refused_in_any_language() {
    let host = host();
    for &(lang, name) in WRONG_VERSION {
        let compiled = host.compile_file(&module_path(name)).unwrap();
        let err = EnrichModule::new(
            &host,
            ModuleSpec {
                stage: "old",
                module: compiled,
                config: String::new(),
                limits: LIMITS,
            },
        )
        .expect_err(&format!("{lang}: a 0.2.0 module was accepted"));
        let text = err.to_string();
        assert!(
            matches!(err, WasmError::ContractVersion { .. }),
            "{lang}: {text}"
        );
        assert!(
            text.contains("weir:stage@0.2.0")
                && text.contains("weir:stage@0.1.0")
                && text.contains("rebuild"),
            "{lang}: {text}"
        );
    }
}

#[test]
fn a_module_of_another_batch_format_is_refused() {
    let host = host();
    let compiled = host.compile_file(&module_path("old_format_c")).unwrap();
    let err = EnrichModule::new(
        &host,
        ModuleSpec {
            stage: "old",
            module: compiled,
            config: String::new(),
            limits: LIMITS,
        },
    )
    .expect_err("a module of batch format 2 was accepted");
    let text = err.to_string();
    assert!(
        matches!(
            err,
            WasmError::BatchFormat {
                found: 2,
                expected: weir_wire::FORMAT_VERSION,
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("old_format_c.wasm")
            && text.contains("batch format 2")
            && text.contains(&format!("format {}", weir_wire::FORMAT_VERSION))
            && text.contains("rebuild"),
        "{text}"
    );
}

/// What count-sum emits for these amounts (serde_json writes an `f64` the way `{:?}` does for
/// these values).
fn count_sum_reference(amounts: &[f64]) -> String {
    let sum = amounts.iter().fold(0.0, |s, n| s + n);
    format!(r#"{{"count":{},"sum":{sum:?}}}"#, amounts.len())
}

#[test]
fn a_c_aggregate_folds_like_the_rust_one() {
    let host = host();
    let amount = |offset: i64, n: &str| Record {
        offset,
        timestamp: Some(1_000 + offset),
        value: Some(
            format!(r#"{{"amount":{n},"user":"u{offset}"}}"#)
                .into_bytes()
                .into(),
        ),
        ..Record::default()
    };
    for name in ["count_sum", "count_sum_c"] {
        let compiled = host.compile_file(&module_path(name)).unwrap();
        let module = AggregateModule::new(
            &host,
            ModuleSpec {
                stage: "count-sum",
                module: compiled,
                config: r#"{"field":"amount"}"#.into(),
                limits: LIMITS,
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(module.state_version(), 1, "{name}");
        let mut agg = module.instance().unwrap();
        agg.set_source("payments", 0);
        let a = [amount(0, "1.5"), amount(1, "2"), amount(2, "40.25")];
        let b = [
            amount(3, "7"),
            amount(4, "0.5"),
            amount(5, "1e2"),
            amount(6, "-0.1"),
        ];
        let empty = agg.create().unwrap();
        let first = agg
            .add(&[(empty.clone(), &a[..2]), (empty.clone(), &b[..])])
            .unwrap();
        let (acc_a, acc_b) = (first[0].clone().unwrap(), first[1].clone().unwrap());
        let acc_a = agg.add(&[(acc_a, &a[2..])]).unwrap().remove(0).unwrap();
        let emit = |agg: &mut weir_wasm::AggregateInstance, key: &[u8], acc: &[u8]| {
            let out = agg.emit(key, 0, 60_000, acc).unwrap().unwrap();
            assert_eq!(out.len(), 1, "{name}");
            assert_eq!(out[0].key.as_deref(), Some(key), "{name}");
            String::from_utf8(out[0].value.as_deref().unwrap().to_vec()).unwrap()
        };
        assert_eq!(
            emit(&mut agg, b"a", &acc_a),
            count_sum_reference(&[1.5, 2.0, 40.25]),
            "{name}"
        );
        assert_eq!(
            emit(&mut agg, b"b", &acc_b),
            count_sum_reference(&[7.0, 0.5, 100.0, -0.1]),
            "{name}"
        );
        assert_eq!(
            emit(&mut agg, b"c", &empty),
            count_sum_reference(&[]),
            "{name}"
        );
        let merged = agg.merge(&acc_a, &acc_b).unwrap().unwrap();
        assert_eq!(
            emit(&mut agg, b"a", &merged),
            count_sum_reference(&[1.5, 2.0, 40.25, 7.0, 0.5, 100.0, -0.1]),
            "{name}"
        );

        // A failing group yields its error; the others their accumulators.
        let bad_type = [Record {
            value: Some(br#"{"amount":"lots"}"#.to_vec().into()),
            ..Record::default()
        }];
        let bad_json = [Record {
            value: Some(b"nope".to_vec().into()),
            ..Record::default()
        }];
        let missing = [Record {
            value: Some(br#"{"n":1}"#.to_vec().into()),
            ..Record::default()
        }];
        let out = agg
            .add(&[
                (empty.clone(), &a[..1]),
                (empty.clone(), &bad_type[..]),
                (empty.clone(), &bad_json[..]),
                (empty.clone(), &missing[..]),
                (empty.clone(), &[]),
            ])
            .unwrap();
        let codes: Vec<&str> = out
            .iter()
            .map(|o| o.as_ref().map_or_else(|f| f.code.as_str(), |_| "ok"))
            .collect();
        assert_eq!(
            codes,
            ["ok", "not-a-number", "bad-json", "missing-field", "ok"],
            "{name}"
        );

        // Refused configurations.
        for bad in [r#"{"field":""}"#, r#"{"other":1}"#] {
            let compiled = host.compile_file(&module_path(name)).unwrap();
            let err = AggregateModule::new(
                &host,
                ModuleSpec {
                    stage: "count-sum",
                    module: compiled,
                    config: bad.into(),
                    limits: LIMITS,
                },
            )
            .expect_err(&format!("{name} accepted {bad}"));
            assert!(
                err.to_string().contains("bad-config"),
                "{name} {bad}: {err}"
            );
        }
    }
}

/// A pipeline of stages in three languages against the broker: Go traps on a poisoned record,
/// C enriches, Zig passes through; bad records are dead-lettered with their stage.
#[test]
fn a_pipeline_of_non_rust_stages_runs_against_the_broker() {
    let _broker = crate::harness::exclusive();
    let (input, output, dlq) = (unique("lang-in"), unique("lang-out"), unique("lang-dlq"));
    for t in [&input, &output, &dlq] {
        create_topic(t, 1);
    }
    let group = unique("lang-group");
    let (_dir, pipeline) = write_pipeline(&format!(
        r#"name = "languages"
{source}
[[stage]]
name = "go-trap"
module = "{go_trap}"

[[stage]]
name = "c-enrich"
module = "{c_enrich}"

[[stage]]
name = "zig-trap"
module = "{zig_trap}"
config = {{ trap_on = "never-there" }}
output = "{output}"

[dead_letter]
topic = "{dlq}"

[telemetry]
listen = "127.0.0.1:0"
"#,
        source = source_table(&[&input], &group),
        go_trap = module_path("trap_go").display(),
        c_enrich = module_path("json_enrich_c").display(),
        zig_trap = module_path("trap_zig").display(),
    ));
    let records: Vec<Rec> = (0..30)
        .map(|i| {
            let value = match i {
                7 => r#"{"url":"https://a.example/poison"}"#.to_string(),
                13 => "not json".to_string(),
                _ => {
                    format!(r#"{{"url":"https://Shop.Example/p/{i}?ref=r{i}","ts":1700000000000}}"#)
                }
            };
            Rec::new(0, &format!("k{i}"), value).header("origin", &format!("o{i}"))
        })
        .collect();
    produce(&input, &records);
    let weir = Weir::run(&pipeline);
    // A debug build compiles the Go module slowly on a cold cache.
    let out = consume(&output, 28, Duration::from_secs(240));
    let dead = consume(&dlq, 2, Duration::from_secs(30));
    let log = weir.terminate();
    let tail = || log[log.len().saturating_sub(15)..].join("\n");
    assert_eq!(out.len(), 28, "weir's log ends:\n{}", tail());

    let keys: Vec<String> = out
        .iter()
        .map(|r| String::from_utf8_lossy(r.key.as_deref().unwrap()).into_owned())
        .collect();
    let want: Vec<String> = (0..30)
        .filter(|i| *i != 7 && *i != 13)
        .map(|i| format!("k{i}"))
        .collect();
    assert_eq!(keys, want);
    for r in &out {
        let v: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        let n = String::from_utf8_lossy(r.key.as_deref().unwrap())[1..].to_string();
        assert_eq!(v["domain"], "shop.example");
        assert_eq!(v["section"], "p");
        assert_eq!(v["ref"], format!("r{n}"));
        assert_eq!(v["hour"], 22);
        assert_eq!(r.header_str("origin"), Some(format!("o{n}")));
    }
    let mut stages: Vec<(String, String)> = dead
        .iter()
        .map(|d| {
            (
                d.header_str(weir_core::headers::STAGE).unwrap_or_default(),
                d.header_str(weir_core::headers::ERROR_KIND)
                    .unwrap_or_default(),
            )
        })
        .collect();
    stages.sort();
    assert_eq!(
        stages,
        [
            ("c-enrich".to_string(), "stage-error".to_string()),
            ("go-trap".to_string(), "trap".to_string())
        ]
    );
}
