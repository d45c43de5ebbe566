//! An S3-compatible server for the cold-store tests: moto's server mode (PyPI `moto[server]`,
//! installed by `make test-deps`), started once per test run on a free loopback port. Set
//! `WEIR_TEST_S3=http://host:port` to use your own S3-compatible endpoint instead (credentials
//! from the usual AWS variables, else moto's `test`/`test`).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::harness::{Process, die_with_parent, free_port, repo, wait_listening};

pub struct S3 {
    pub endpoint: String,
    _child: Option<Process>,
}

/// The Python of the project's venv (`$WEIR_PYTHON` overrides it), with pyarrow and boto3.
pub fn python() -> PathBuf {
    std::env::var_os("WEIR_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".weir/venv/bin/python"))
}

/// The shared S3 server, started on first use.
pub fn s3() -> &'static S3 {
    static S3: OnceLock<S3> = OnceLock::new();
    S3.get_or_init(|| match std::env::var("WEIR_TEST_S3") {
        Ok(endpoint) if !endpoint.is_empty() => S3 {
            endpoint,
            _child: None,
        },
        _ => {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let port = free_port();
                let server = python().with_file_name("moto_server");
                let mut cmd = Command::new(&server);
                cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                die_with_parent(&mut cmd);
                let child = cmd.spawn().unwrap_or_else(|e| {
                    panic!("cannot start {} (`make test-deps`): {e}", server.display())
                });
                wait_listening(port, "moto_server");
                tx.send(S3 {
                    endpoint: format!("http://127.0.0.1:{port}"),
                    _child: Some(Process(child)),
                })
                .unwrap();
                loop {
                    std::thread::park();
                }
            });
            rx.recv().expect("the S3 server thread failed")
        }
    })
}

/// The credentials the tests use: the caller's AWS variables, else moto's defaults.
pub fn credentials() -> Vec<(&'static str, String)> {
    ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"]
        .into_iter()
        .zip(["test", "test", "us-east-1"])
        .map(|(name, default)| (name, std::env::var(name).unwrap_or_else(|_| default.into())))
        .collect()
}

/// Runs `script` with the venv's Python, S3 settings in `S3_ENDPOINT` and the AWS variables, and
/// `args`; returns its standard output.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .args(["-c", script])
        .args(args)
        .env("S3_ENDPOINT", &s3().endpoint)
        .envs(credentials())
        .output()
        .expect("python runs (`make test-deps`)");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Creates `bucket`.
pub fn create_bucket(bucket: &str) {
    const CREATE: &str = r#"
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"])
s3.create_bucket(Bucket=sys.argv[1])
"#;
    run_python(CREATE, &[bucket]);
}
