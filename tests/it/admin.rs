//! The admin commands' token, without a broker: it comes from `WEIR_ADMIN_TOKEN` or
//! `--token-file`, never from an argument, and every command sends it, `weir canary status`
//! included. The other side is the admin listener `weir run` serves.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use weir_telemetry::{AdminApi, AdminServer, AdminToken, Control, Health, Metrics};

use crate::harness::{weir_cli, weir_cli_env};

const TOKEN: &str = "t0ken-from-elsewhere";

struct Up;

impl Health for Up {
    fn live(&self) -> Result<(), weir_telemetry::Unhealthy> {
        Ok(())
    }
    fn ready(&self) -> Result<(), weir_telemetry::Unhealthy> {
        Ok(())
    }
}

#[derive(Default)]
struct Calls(AtomicUsize);

impl Control for Calls {
    fn reload(&self) -> Result<(), weir_telemetry::Refusal> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn canary_status(&self) -> String {
        r#"[{"stage":"tag"}]"#.into()
    }
}

fn listener() -> (AdminServer, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    let server = AdminServer::start(
        "127.0.0.1:0".parse().unwrap(),
        Metrics::new("p"),
        Arc::new(Up),
        Some(AdminApi {
            token: Some(AdminToken::new(TOKEN.into()).unwrap()),
            control: Arc::clone(&calls) as Arc<dyn Control>,
        }),
    )
    .unwrap();
    (server, calls)
}

#[test]
fn admin_commands_send_the_token_from_the_environment_or_a_file() {
    let (server, calls) = listener();
    let admin = server.addr().to_string();
    let status = ["canary", "status", "--admin", admin.as_str()];

    let (ok, out, err) = weir_cli_env(&status, &[("WEIR_ADMIN_TOKEN", TOKEN)]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), r#"[{"stage":"tag"}]"#);
    let (ok, out, err) = weir_cli_env(&status, &[("WEIR_ADMIN_TOKEN", "wrong")]);
    assert!(!ok && err.contains("401") && out.is_empty(), "{err}");

    // A file's token, on a line of its own, wins over the environment's.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let file = file.to_str().unwrap();
    let (ok, out, err) = weir_cli_env(
        &[&status[..], &["--token-file", file]].concat(),
        &[("WEIR_ADMIN_TOKEN", "wrong")],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), r#"[{"stage":"tag"}]"#);
    let (ok, _, err) = weir_cli(&["reload", "--admin", &admin, "--token-file", file]);
    assert!(ok, "{err}");
    assert_eq!(calls.0.load(Ordering::SeqCst), 1);
}

#[test]
fn a_token_is_never_taken_from_the_arguments() {
    let (server, calls) = listener();
    let admin = server.addr().to_string();
    for args in [
        &["reload", "--admin", &admin, "--token", TOKEN][..],
        &["canary", "status", "--admin", &admin, "--token", TOKEN],
        &[
            "canary", "promote", "tag", "--admin", &admin, "--token", TOKEN,
        ],
        &["run", "pipeline.toml", "--token", TOKEN],
    ] {
        let (ok, _, err) = weir_cli_env(args, &[("WEIR_ADMIN_TOKEN", TOKEN)]);
        assert!(!ok, "{args:?}");
        assert!(
            err.contains("--token is not accepted")
                && err.contains("WEIR_ADMIN_TOKEN")
                && err.contains("--token-file"),
            "{args:?}: {err}"
        );
        assert!(!err.contains(TOKEN), "the token is not echoed: {err}");
    }
    assert_eq!(calls.0.load(Ordering::SeqCst), 0);
}

#[test]
fn without_a_usable_token_nothing_is_sent() {
    let (server, _calls) = listener();
    let admin = server.addr().to_string();
    let (ok, _, err) = weir_cli(&["canary", "status", "--admin", &admin]);
    assert!(!ok);
    assert!(
        err.contains("needs its token") && err.contains("WEIR_ADMIN_TOKEN"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    for (content, why) in [
        ("", "it is empty"),
        ("\n", "it is empty"),
        ("two words\n", "printable ASCII without spaces"),
        ("one\ntwo\n", "printable ASCII without spaces"),
    ] {
        let file = dir.path().join("token");
        std::fs::write(&file, content).unwrap();
        let (ok, _, err) = weir_cli(&[
            "reload",
            "--admin",
            &admin,
            "--token-file",
            file.to_str().unwrap(),
        ]);
        assert!(!ok);
        assert!(
            err.contains("token file") && err.contains(why),
            "{content:?}: {err}"
        );
    }
    let (ok, _, err) = weir_cli(&["reload", "--token-file", "/nonexistent/token"]);
    assert!(!ok && err.contains("cannot read the token file"), "{err}");
}
