//! `[privacy]` end to end, the marker test: records carry marker values in redacted fields and
//! headers, some of them fail in ways whose messages quote those values (a schema gate, a
//! stage error, a guest log line), and the markers must appear in none of weir's log output,
//! the spans the collector receives, `weir tap`'s lines or the dead letters. The keyed hash
//! of equal values is equal, so redacted records still correlate.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{
    Rec, Weir, consume, create_topic, module, produce, source_table, unique, write_pipeline,
};
use crate::otlp::OtlpReceiver;

const TOKEN: &str = "privacy-test-token-81c2";
const MARKER: &str = "MARKER";

#[test]
fn marked_values_leave_no_trace_in_logs_spans_tap_or_dead_letters() {
    let collector = OtlpReceiver::start();
    let (input, mid, output, dlq) = (unique("in"), unique("mid"), unique("out"), unique("dlq"));
    for topic in [&input, &mid, &output, &dlq] {
        create_topic(topic, 1);
    }
    let (_dir, pipeline) = write_pipeline(&format!(
        r#"name = "private"
{source}
[[stage]]
name = "enrich"
module = "{enrich}"
config = {{ field = "url" }}
input_schema = {{ type = "object", properties = {{ user = {{ type = "string", pattern = "^u[0-9]+$" }} }} }}
output = "{mid}"

[[stage]]
name = "stamp"
module = "{tag}"
config = {{ header = "stamped", value = "yes" }}
output = "{output}"

[privacy]
fields = ["/user", "/url"]
headers = ["X-User"]
method = "hash"
key = {{ env = "WEIR_PRIVACY_KEY" }}

[dead_letter]
topic = "{dlq}"
redact = true

[telemetry]
listen = "127.0.0.1:0"
otlp = "{otlp}"
sample = {{ ratio = 1.0, keep_errors = true, slow = "1h" }}
"#,
        source = source_table(&[&input], &unique("group")),
        enrich = module("json_enrich").display(),
        tag = module("tag").display(),
        otlp = collector.endpoint(),
    ));
    let weir = Weir::run_with_env(
        &pipeline,
        &[],
        &[
            ("WEIR_ADMIN_TOKEN", TOKEN),
            ("WEIR_PRIVACY_KEY", "a-test-key-of-some-length"),
        ],
    );
    weir.wait_assigned();
    let mut tap = Command::new(Weir::weir_bin());
    tap.args(["tap", "--admin", &weir.admin_addr().to_string()])
        .args(["--limit", "16", "--timeout", "60"])
        .env("WEIR_ADMIN_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::harness::die_with_parent(&mut tap);
    let mut tap = tap.spawn().unwrap();
    weir.wait_for_log("Tap client attached.", Duration::from_secs(10));

    let click = |user: &str, url: &str| format!(r#"{{"user":"{user}","url":"{url}"}}"#);
    produce(
        &input,
        &[
            // The schema gate's message quotes the user.
            Rec::new(0, "k0", click("MARKER-user-0", "https://a.example/cart/0"))
                .header("x-user", "MARKER-hdr-0"),
            // The stage's error, and its log line, quote the URL.
            Rec::new(0, "k1", click("u11", "MARKER-url-1")).header("x-user", "MARKER-hdr-1"),
            Rec::new(0, "k2", click("u77", "https://a.example/search/2")),
            Rec::new(0, "k3", click("u77", "https://a.example/search/3")),
            Rec::new(0, "k4", click("u88", "https://a.example/search/4"))
                .header("x-user", "MARKER-hdr-4"),
        ],
    );
    let lines: Vec<String> = std::io::BufReader::new(tap.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    assert!(tap.wait().unwrap().success());
    let letters = consume(&dlq, 2, Duration::from_secs(30));
    consume(&output, 3, Duration::from_secs(30));
    let spans = collector.wait_for(Duration::from_secs(30), |spans| {
        spans.iter().filter(|s| s.status_error).count() >= 2
    });
    let log = weir.terminate();

    // The failures happened, and said why.
    let letter = |key: &str| {
        letters
            .iter()
            .find(|l| l.key.as_deref() == Some(key.as_bytes()))
            .unwrap_or_else(|| panic!("no dead letter for {key}"))
    };
    assert_eq!(
        letter("k0").header_str("weir.error.kind").as_deref(),
        Some("schema-invalid")
    );
    let k1 = letter("k1");
    assert_eq!(k1.header_str("weir.error.code").as_deref(), Some("bad-url"));
    let message = k1.header_str("weir.error.message").unwrap();
    assert!(message.contains("cannot parse \"hmac-sha256:"), "{message}");
    assert!(
        log.iter()
            .any(|l| l.contains("Bad URL.") && l.contains("hmac-sha256:")),
        "the guest's log line is there, redacted"
    );

    // No marker anywhere a person reads.
    for line in &log {
        assert!(!line.contains(MARKER), "log: {line}");
    }
    for span in &spans {
        let text = format!("{} {:?}", span.summary(), span.attributes);
        assert!(!text.contains(MARKER), "span: {text}");
    }
    assert_eq!(lines.len(), 16, "{lines:#?}");
    for line in &lines {
        assert!(!line.contains(MARKER), "tap: {line}");
    }
    for l in &letters {
        let headers: Vec<String> = l
            .headers
            .iter()
            .map(|(name, value)| {
                format!(
                    "{name}={}",
                    String::from_utf8_lossy(value.as_deref().unwrap_or_default())
                )
            })
            .collect();
        let text = format!("{headers:?} {}", l.value_str());
        assert!(!text.contains(MARKER), "dead letter: {text}");
    }

    // Equal values hash equal, different ones not.
    let users: Vec<(String, String)> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["stage"] == "enrich" && l["event"] == "in")
        .map(|l| {
            (
                l["key"].as_str().unwrap().to_owned(),
                l["value"]["user"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let user = |key: &str| &users.iter().find(|(k, _)| k == key).unwrap().1;
    assert!(user("k2").starts_with("hmac-sha256:"), "{users:?}");
    assert_eq!(user("k2"), user("k3"));
    assert_ne!(user("k2"), user("k4"));
    let dead_user: serde_json::Value = serde_json::from_str(&letter("k0").value_str()).unwrap();
    assert!(
        dead_user["user"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );
}
