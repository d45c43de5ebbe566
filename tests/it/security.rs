//! TLS and SASL against real brokers. The test broker has no TLS of its own, so a TLS terminator
//! (stunnel, Debian's `stunnel4`) stands in front of a broker of its own that advertises the
//! terminator's address: every connection, the group coordinator's included, goes through TLS.
//! Certificates are made by each test with `openssl`.
//!
//! SASL: Tansu authenticates with SCRAM but cannot store credentials in the build the tests use,
//! so it refuses every user. The test shows Weir's side: the SCRAM exchange reaches the broker with
//! the configured mechanism, the refusal is reported, and the password is never printed.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::ClientConfig;

use crate::harness::{
    Process, Rec, Weir, client_at, consume_via, free_port, produce_via, spawn_tansu, tansu_binary,
    unique, wait_listening, write_pipeline,
};

/// Test certificates in a temporary folder.
struct Certs {
    dir: tempfile::TempDir,
}

const KEY_PASSWORD: &str = "client-key-secret-8d2f";

impl Certs {
    /// A CA; a broker certificate for `localhost` and 127.0.0.1; one for another host; a client
    /// certificate whose key is encrypted with [`KEY_PASSWORD`].
    fn make() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("openssl is needed to make test certificates");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        run(&[
            &["req", "-x509", "-nodes"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=Weir test CA",
            ],
        ]
        .concat());
        let signed = |name: &str, subject: &str, ext: &str, key_args: &[&str]| {
            std::fs::write(dir.path().join(format!("{name}.ext")), ext).unwrap();
            run(&[
                &["req", "-nodes"][..],
                &ec,
                &[
                    "-keyout",
                    &format!("{name}.plain.key"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    subject,
                ],
            ]
            .concat());
            run(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{name}.pem"),
                "-extfile",
                &format!("{name}.ext"),
            ]);
            run(&[
                &["pkcs8", "-topk8", "-in", &format!("{name}.plain.key")][..],
                key_args,
                &["-out", &format!("{name}.key")],
            ]
            .concat());
        };
        let server = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
        signed("broker", "/CN=localhost", server, &["-nocrypt"]);
        let other = "subjectAltName=DNS:wrong.example.invalid\nextendedKeyUsage=serverAuth\n";
        signed(
            "other-host",
            "/CN=wrong.example.invalid",
            other,
            &["-nocrypt"],
        );
        let password = format!("pass:{KEY_PASSWORD}");
        signed(
            "client",
            "/CN=weir",
            "extendedKeyUsage=clientAuth\n",
            &["-v2", "aes-256-cbc", "-passout", &password],
        );
        std::fs::write(dir.path().join("key-password"), format!("{KEY_PASSWORD}\n")).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A test client's TLS configuration for the brokers at `bootstrap`, with the client
    /// certificate.
    fn client(&self, bootstrap: &str) -> ClientConfig {
        let p = |n: &str| self.path(n).display().to_string();
        client_at(
            bootstrap,
            &[
                ("security.protocol", "ssl"),
                ("ssl.ca.location", &p("ca.pem")),
                ("ssl.certificate.location", &p("client.pem")),
                ("ssl.key.location", &p("client.key")),
                ("ssl.key.password", KEY_PASSWORD),
            ],
        )
    }
}

/// A TLS terminator requiring a client certificate: TLS on `port`, plaintext to the broker on
/// `broker`. Stops when dropped.
fn stunnel(certs: &Certs, server_cert: &str, port: u16, broker: u16) -> Process {
    let conf = certs.path(&format!("stunnel-{port}.conf"));
    std::fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\ndebug = 4\noutput = {log}\n\n[kafka]\n\
                 accept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{broker}\n\
                 cert = {cert}\nkey = {key}\nCAfile = {ca}\nverify = 2\n",
            log = certs.path(&format!("stunnel-{port}.log")).display(),
            cert = certs.path(&format!("{server_cert}.pem")).display(),
            key = certs.path(&format!("{server_cert}.key")).display(),
            ca = certs.path("ca.pem").display(),
        ),
    )
    .unwrap();
    let binary = ["stunnel4", "stunnel"]
        .into_iter()
        .find(|b| which(b))
        .expect("stunnel is needed for the TLS tests (Debian: apt-get install stunnel4)");
    let child = Command::new(binary)
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Process)
        .unwrap();
    wait_listening(port, "stunnel");
    child
}

fn which(binary: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {binary}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Creates `topic` through the broker's plaintext port (its tool talks to it directly).
fn create_topic_at(broker: u16, topic: &str, partitions: u32) {
    let out = Command::new(tansu_binary())
        .args([
            "topic",
            "create",
            topic,
            "--partitions",
            &partitions.to_string(),
        ])
        .args(["--broker", &format!("tcp://127.0.0.1:{broker}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An identity pipeline from `input` to `output` with `security` as its `[security]` table.
fn pipeline(input: &str, output: &str, dlq: &str, security: &str) -> (tempfile::TempDir, PathBuf) {
    write_pipeline(&format!(
        r#"name = "secure"
[source]
brokers = "127.0.0.1:1"
topics = ["{input}"]
group = "{group}"
batch_size = 64
commit_interval = "200ms"
kafka = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500", "fetch.wait.max.ms" = "50" }}

[[stage]]
name = "identity"
module = "{module}"
output = "{output}"

[dead_letter]
topic = "{dlq}"

[telemetry]
listen = "127.0.0.1:0"

{security}
"#,
        group = unique("group"),
        module = crate::harness::module("identity").display(),
    ))
}

fn tls_table(certs: &Certs, extra: &str) -> String {
    let p = |n: &str| certs.path(n).display().to_string();
    format!(
        "[security]\nprotocol = \"ssl\"\nca = \"{}\"\ncertificate = \"{}\"\nkey = \"{}\"\n\
         key_password = {{ file = \"{}\" }}\n{extra}",
        p("ca.pem"),
        p("client.pem"),
        p("client.key"),
        p("key-password"),
    )
}

/// A broker of its own behind a TLS terminator that presents `server_cert`, with input, output
/// and dead-letter topics of two partitions.
struct TlsBroker {
    certs: Certs,
    bootstrap: String,
    input: String,
    output: String,
    dlq: String,
    _tansu: Process,
    _stunnel: Process,
}

impl TlsBroker {
    fn start(server_cert: &str) -> Self {
        let certs = Certs::make();
        let (broker, tls) = (free_port(), free_port());
        let tansu = spawn_tansu(broker, tls, &[], server_cert);
        let stunnel = stunnel(&certs, server_cert, tls, broker);
        let (input, output, dlq) = (unique("tls-in"), unique("tls-out"), unique("tls-dlq"));
        for topic in [&input, &output, &dlq] {
            create_topic_at(broker, topic, 2);
        }
        Self {
            certs,
            bootstrap: format!("127.0.0.1:{tls}"),
            input,
            output,
            dlq,
            _tansu: tansu,
            _stunnel: stunnel,
        }
    }

    /// The identity pipeline between its topics, with `extra` lines in `[security]`.
    fn pipeline(&self, extra: &str) -> (tempfile::TempDir, PathBuf) {
        let security = tls_table(&self.certs, extra);
        pipeline(&self.input, &self.output, &self.dlq, &security)
    }

    /// `weir run` against it.
    fn weir(&self, file: &std::path::Path) -> Weir {
        Weir::run_with(file, &["--brokers", &self.bootstrap])
    }
}

fn records(n: usize) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec::new(i as i32 % 2, &format!("k{i}"), format!("{{\"n\":{i}}}")))
        .collect()
}

#[test]
fn tls_with_a_client_certificate_carries_records_end_to_end() {
    let b = TlsBroker::start("broker");
    let sent = records(40);
    produce_via(b.certs.client(&b.bootstrap), &b.input, &sent);

    let (_dir, file) = b.pipeline("");
    let weir = b.weir(&file);
    let out = consume_via(
        b.certs.client(&b.bootstrap),
        &b.output,
        sent.len(),
        Duration::from_secs(60),
    );
    let log = weir.terminate();
    assert_eq!(out.len(), sent.len(), "every record through TLS");
    let mut values: Vec<_> = out.iter().map(Rec::value_str).collect();
    values.sort();
    let mut expected: Vec<_> = sent.iter().map(Rec::value_str).collect();
    expected.sort();
    assert_eq!(values, expected);
    assert!(
        !log.iter().any(|l| l.contains(KEY_PASSWORD)),
        "the key's password was printed"
    );
}

#[test]
fn a_broker_certificate_for_another_host_is_refused_unless_told_otherwise() {
    let b = TlsBroker::start("other-host");
    let (_dir, file) = b.pipeline("");
    let (status, log) = b.weir(&file).wait_exit(Duration::from_secs(90));
    // (`status` says which signal, should weir ever die of one here: once, under a loaded
    // machine, it ended by a signal right after printing its error; not reproduced since.)
    assert_eq!(
        status.code(),
        Some(4),
        "the cluster refused at start ({status}): {log:#?}"
    );
    assert!(
        log.iter().any(|l| l.contains("certificate verify failed")),
        "the refusal says why: {log:#?}"
    );

    // With hostname verification off, the same certificate (from the trusted CA) is accepted.
    let mut client = b.certs.client(&b.bootstrap);
    client.set("ssl.endpoint.identification.algorithm", "none");
    produce_via(client.clone(), &b.input, &records(10));
    let (_dir, file) = b.pipeline("verify_hostname = false\n");
    let weir = b.weir(&file);
    let out = consume_via(client, &b.output, 10, Duration::from_secs(60));
    weir.terminate();
    assert_eq!(out.len(), 10);
}

#[test]
fn sasl_scram_reaches_the_broker_and_the_password_is_never_printed() {
    let port = free_port();
    let _tansu = spawn_tansu(port, port, &["--authentication"], "sasl");
    let password = "scram-password-5b1e";
    let security = r#"[security]
protocol = "sasl_plaintext"

[security.sasl]
mechanism = "SCRAM-SHA-512"
username = "weir"
password = { env = "WEIR_TEST_KAFKA_PASSWORD" }
"#;
    let (_dir, file) = pipeline("in", "out", "dlq", security);
    let bootstrap = format!("127.0.0.1:{port}");

    // The variable unset: refused at once, naming the variable.
    let weir = Weir::run_with(&file, &["--brokers", &bootstrap]);
    let (status, log) = weir.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(2), "a configuration error: {log:#?}");
    assert!(
        log.iter().any(|l| l.contains(
            "security.sasl.password: environment variable WEIR_TEST_KAFKA_PASSWORD is not set"
        )),
        "{log:#?}"
    );

    // Set: the SCRAM exchange reaches the broker, which refuses the user; Weir says so and stops.
    let weir = Weir::run_with_env(
        &file,
        &["--brokers", &bootstrap],
        &[("WEIR_TEST_KAFKA_PASSWORD", password)],
    );
    let (status, log) = weir.wait_exit(Duration::from_secs(90));
    assert_eq!(
        status.code(),
        Some(4),
        "the cluster refused at start: {log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("SASL") && l.contains("authentication failed")),
        "the refusal is reported: {log:#?}"
    );
    assert!(
        !log.iter().any(|l| l.contains(password)),
        "the password was printed"
    );
}
