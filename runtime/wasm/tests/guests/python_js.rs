//! Python and JavaScript guests against the host: `json_enrich_python` and `json_enrich_js` (built
//! by their `examples-wasm/*/build.sh`) give the Rust `json_enrich` stage's outcomes, value bytes
//! included, and a Python instance whose linear memory grows with the records it sees is recycled
//! at `recycle_memory` without losing one.
//!
//! The modules are compiled through the on-disk cache (`WasmHost::default_cache_dir`), so only
//! the first run pays for compiling the Python and JavaScript runtimes.

use std::sync::Arc;
use std::time::Duration;

use weir_core::{Header, Record, Stage, StageOutcome};
use weir_wasm::{EnrichModule, Limits, ModuleSpec, WasmHost};

use crate::module_path;

const LIMITS: Limits = Limits {
    memory: 256 << 20,
    timeout: Duration::from_secs(10),
    recycle_after: None,
    recycle_memory: None,
    fuel: None,
};

fn host() -> WasmHost {
    WasmHost::new(WasmHost::default_cache_dir()).unwrap()
}

fn load(host: &WasmHost, name: &str, config: &str, limits: Limits) -> Arc<EnrichModule> {
    let compiled = host
        .compile_file(&module_path(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    EnrichModule::new(
        host,
        ModuleSpec {
            stage: "enrich",
            module: compiled,
            config: config.into(),
            limits,
        },
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"))
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

/// Inputs that probe what differs between JSON libraries and URL parsers.
fn inputs() -> Vec<Option<Vec<u8>>> {
    let nested = |n: usize| {
        format!(
            r#"{{"url":"http://h/","d":{}{}}}"#,
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    let texts = [
        r#"{"user":"u17","url":"https://shop.example/products/42?ref=mail","ts":1700000000000,"ip":"81.2.69.160","ua":"Mozilla/5.0"}"#.to_owned(),
        r#"{"url":"http://A.Example:8080/?utm_source=news%20letter&utm_medium=email&x=1#top"}"#.to_owned(),
        r#"{"url":"https://user:pw@Shop.Example:8443/a/b?x=1&ref=mail&ref=again#frag","ts":-1}"#.to_owned(),
        r#"{"url":"http://[::1]:80","ts":0}"#.to_owned(),
        r#"{"url":"http://h:/p","ts":"soon"}"#.to_owned(),
        r#"{"url":"http://h:00080/p?utm_a=%e2%82%ac&utm_b=%E2%82&utm_c=+a+&utm_d=%4&utm_e=%ff%fe&&b"}"#.to_owned(),
        r#"{"url":"https://bücher.example/straße?ref=caf%C3%A9","user":"Zoë 🚀","ts":1700000000000}"#.to_owned(),
        r#"{"u\u0072l":"https:\/\/a.example\/x","note":"tab\there \"q\" \u00e9 \ud83d\ude80 \u001f \u007f"}"#.to_owned(),
        r#"{"domain":"old","url":"http://x.example/a","url":"https://y.example/b","hour":99}"#.to_owned(),
        r#"{"url":"http://h/","ts":1.7e12,"f":2.50,"big":18446744073709551616,"z":-0,"e":1E3,"neg":-12,"g":[1e-7,1e-5,0.1,1e16,1e15,123.456e-300,5e-324,1.7976931348623157e308]}"#.to_owned(),
        r#"{"url":"http://h/","ts":-9223372036854775809}"#.to_owned(),
        r#"{"url":"http://h/","ts":18446744073709551615}"#.to_owned(),
        r#"{"url":"http://h/","ts":9223372036854775807}"#.to_owned(),
        r#"{"url":"http://h/","ts":-3600001.9}"#.to_owned(),
        r#"{"url":"http://h/","ts":1e300}"#.to_owned(),
        r#"{"url":"http://h/","ts":true}"#.to_owned(),
        r#"{"url":"http://h/","z":{"b":1,"a":{"d":null,"c":[true,false]}},"\uffff":1,"😀":2,"é":3}"#.to_owned(),
        " \n{ \"url\" : \"http://h/x\" ,\t\"n\" : [ 1 , { } ] }\r\n".to_owned(),
        nested(126),
        nested(127),
        "not json".to_owned(),
        String::new(),
        "[1,2]".to_owned(),
        "null".to_owned(),
        "NaN".to_owned(),
        r#"{"url":"http://h/","n":Infinity}"#.to_owned(),
        r#"{"url":"http://h/",}"#.to_owned(),
        r#"{"url":"http://h/","n":01}"#.to_owned(),
        r#"{"url":"http://h/","n":1e400}"#.to_owned(),
        r#"{"url":"http://h/","s":"\ud800"}"#.to_owned(),
        r#"{"url":"http://h/","s":"\udc00\ud800"}"#.to_owned(),
        "{\"url\":\"http://h/\",\"s\":\"a\tb\"}".to_owned(),
        r#"{"url":"http://h/"} x"#.to_owned(),
        "\u{feff}{\"url\":\"http://h/\"}".to_owned(),
        r#"{"user":"u1"}"#.to_owned(),
        r#"{"url":null}"#.to_owned(),
        r#"{"url":42}"#.to_owned(),
        r#"{"toString":"x","constructor":1}"#.to_owned(),
        r#"{"url":"/products/42"}"#.to_owned(),
        r#"{"url":"https://"}"#.to_owned(),
        r#"{"url":"http://h:99999/"}"#.to_owned(),
        r#"{"url":"http://ho st/"}"#.to_owned(),
        r#"{"url":"http://[::1]x/"}"#.to_owned(),
        r#"{"url":"1http://h"}"#.to_owned(),
        r#"{"url":"http://h<x>/"}"#.to_owned(),
    ];
    let mut inputs: Vec<Option<Vec<u8>>> =
        texts.into_iter().map(|t| Some(t.into_bytes())).collect();
    inputs.push(None);
    inputs.push(Some(b"{\"url\":\"http://h/\",\"s\":\"\xff\"}".to_vec()));
    inputs.push(Some(
        b"{\"url\":\"http://h/\",\"s\":\"\xed\xa0\x80\"}".to_vec(),
    ));
    inputs
}

/// An outcome with what must agree: outputs byte for byte, errors by kind and code.
fn comparable(outcome: &StageOutcome, input: &Record) -> String {
    match outcome {
        Ok(outputs) => outputs
            .iter(input)
            .map(|r| {
                format!(
                    "{:?} {:?} {:?} {:?}",
                    r.timestamp,
                    r.key.as_deref().map(String::from_utf8_lossy),
                    r.value.as_deref().map(String::from_utf8_lossy),
                    r.headers
                        .iter()
                        .map(|h| (h.name.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect::<Vec<_>>()
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(failure) => format!("error {:?} {:?}", failure.kind, failure.code),
    }
}

/// [`comparable`] of each of `outcomes`, the outcomes of `inputs`.
fn comparables(outcomes: &[StageOutcome], inputs: &[Record]) -> Vec<String> {
    outcomes
        .iter()
        .zip(inputs)
        .map(|(o, r)| comparable(o, r))
        .collect()
}

fn outcomes(host: &WasmHost, name: &str, records: &[Record]) -> Vec<String> {
    let module = load(host, name, r#"{"field":"url"}"#, LIMITS);
    let mut stage = module.instance().unwrap();
    // One batch, then one record at a time: the batch encoding both ways.
    let batch = stage.process("clicks", 0, records);
    let single: Vec<_> = records
        .iter()
        .flat_map(|r| stage.process("clicks", 0, std::slice::from_ref(r)))
        .collect();
    let batch = comparables(&batch, records);
    assert_eq!(
        batch,
        comparables(&single, records),
        "{name}: batch and single-record calls disagree"
    );
    batch
}

#[test]
fn python_and_js_match_the_rust_stage_byte_for_byte() {
    let host = host();
    let records: Vec<Record> = (0..)
        .zip(inputs())
        .map(|(o, v)| record(o, v.as_deref()))
        .collect();
    let rust = outcomes(&host, "json_enrich", &records);
    assert!(
        rust.iter().any(|o| o.starts_with("error")) && rust.iter().any(|o| o.contains("domain"))
    );
    for name in ["json_enrich_python", "json_enrich_js"] {
        let other = outcomes(&host, name, &records);
        for (i, (want, got)) in rust.iter().zip(&other).enumerate() {
            assert_eq!(
                got,
                want,
                "{name} differs from Rust on input {i}: {:?}",
                records[i].value.as_deref().map(String::from_utf8_lossy)
            );
        }
    }
}

#[test]
fn python_and_js_refuse_configs_as_the_rust_stage_does() {
    let host = host();
    for name in ["json_enrich", "json_enrich_python", "json_enrich_js"] {
        let compiled = host.compile_file(&module_path(name)).unwrap();
        for (config, ok) in [
            ("", true),
            ("{}", true),
            (r#"{"field":"link"}"#, true),
            (r#"{"feild":"url"}"#, false),
            (r#"{"field":3}"#, false),
        ] {
            let loaded = EnrichModule::new(
                &host,
                ModuleSpec {
                    stage: "enrich",
                    module: compiled.clone(),
                    config: config.into(),
                    limits: LIMITS,
                },
            );
            match loaded {
                Ok(_) => assert!(ok, "{name} took {config:?}"),
                Err(e) => {
                    assert!(!ok, "{name} refused {config:?}: {e}");
                    assert!(e.to_string().contains("bad-config"), "{name}: {e}");
                }
            }
        }
    }
}

#[test]
fn a_python_instance_is_recycled_at_its_memory_threshold_without_losing_a_record() {
    let host = host();
    let click = |o: i64, pad: usize| {
        record(
            o,
            Some(
                format!(
                    r#"{{"user":"u{o}","url":"https://shop.example/p/{o}?ref=r{o}","ts":{},"pad":"{}"}}"#,
                    1_700_000_000_000 + o,
                    "x".repeat(pad)
                )
                .as_bytes(),
            ),
        )
    };
    let mut reference = load(&host, "json_enrich", "{}", LIMITS).instance().unwrap();
    let mut check = |stage: &mut weir_wasm::EnrichInstance, batch: &[Record]| {
        let want = comparables(&reference.process("clicks", 0, batch), batch);
        let got = comparables(&stage.process("clicks", 0, batch), batch);
        assert_eq!(got, want, "offsets from {}", batch[0].offset);
    };
    let with_threshold = |bytes| {
        load(
            &host,
            "json_enrich_python",
            "{}",
            Limits {
                recycle_memory: Some(bytes),
                ..LIMITS
            },
        )
        .instance()
        .unwrap()
    };

    // Below what any instance holds: recycled after every batch, and every record comes out.
    let mut every = with_threshold(1 << 20);
    for b in 0..5 {
        let batch: Vec<Record> = (b * 64..b * 64 + 64).map(|o| click(o, 10)).collect();
        check(&mut every, &batch);
        assert_eq!(every.recycled(), b as u64 + 1);
    }

    // 4MiB above what a fresh instance holds: ordinary batches leave it be; a batch with a
    // 6MiB record grows it past the threshold and it is replaced after that batch, whose
    // records all come out; the fresh instance carries on.
    let mut stage = with_threshold(fresh_size(&host) + (4 << 20));
    let mut offset = 0;
    let mut batch = |pad: usize| {
        let b: Vec<Record> = (offset..offset + 64).map(|o| click(o, pad)).collect();
        offset += 64;
        b
    };
    for _ in 0..20 {
        check(&mut stage, &batch(10));
    }
    assert_eq!(
        stage.recycled(),
        0,
        "ordinary batches grew the instance by 4MiB"
    );
    let mut big = batch(10);
    big[17] = click(big[17].offset, 6 << 20);
    check(&mut stage, &big);
    assert_eq!(stage.recycled(), 1);
    for _ in 0..5 {
        check(&mut stage, &batch(10));
    }
    assert_eq!(stage.recycled(), 1);
}

/// Linear memory of a fresh Python instance after one batch: the smallest threshold at which a
/// 64-record batch recycles it, found by bisection over thresholds.
fn fresh_size(host: &WasmHost) -> u64 {
    let batch: Vec<Record> = (0..64)
        .map(|o| record(o, Some(br#"{"url":"https://a.example/x"}"#)))
        .collect();
    let recycles_at = |threshold: u64| {
        let module = load(
            host,
            "json_enrich_python",
            "{}",
            Limits {
                recycle_memory: Some(threshold),
                ..LIMITS
            },
        );
        let mut stage = module.instance().unwrap();
        stage.process("clicks", 0, &batch);
        stage.recycled() == 1
    };
    let (mut low, mut high) = (1u64 << 20, 256u64 << 20);
    while high - low > 1 << 16 {
        let mid = (low + high) / 2;
        if recycles_at(mid) {
            low = mid
        } else {
            high = mid
        }
    }
    high
}
