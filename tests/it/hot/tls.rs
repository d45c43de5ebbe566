//! The PostgreSQL hot store over TLS, end to end: a private server (`crate::pg`) with `ssl = on`,
//! a certificate for `127.0.0.1` signed by a CA the test makes with the `openssl` command line,
//! and a `pg_hba.conf` that refuses every TCP connection without TLS. With `tls = "require"` and
//! that CA as `ca`, every record's row is written, and the server sees only encrypted
//! connections from weir; a CA that did not sign the server's certificate, a certificate for
//! another name, or a server without TLS are refused at start (exit 4), with nothing moved.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{click, database, pipeline, rows, wait_committed};
use crate::harness::{Rec, Weir, committed, create_topic, produce, unique, write_pipeline};
use crate::pg::Postgres;

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `openssl args` in `dir`; panics with its output if it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Test certificates, in a folder the server's user (`nobody`, as root) can read.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        use std::os::unix::fs::PermissionsExt;
        let tmp = if is_root() {
            "/tmp".into()
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("weir-test-tls-")
            .tempdir_in(tmp)
            .unwrap();
        let mode = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(dir.path(), mode).unwrap();
        Pki { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// A self-signed CA `<name>.pem` (its key `<name>.key`); its certificate's path.
    fn ca(&self, name: &str) -> PathBuf {
        let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
        let subject = format!("/CN=Weir test {name}");
        openssl(
            self.dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &subject,
                "-keyout",
                &key,
                "-out",
                &pem,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        self.path(&pem)
    }

    /// A server certificate `<name>.pem` for `alt_names` (a subjectAltName value), signed by the
    /// CA `ca` (see [`Pki::ca`]), and its key `<name>.key`, which only the server's user may
    /// read (PostgreSQL refuses any other); their paths.
    fn server(&self, name: &str, ca: &str, alt_names: &str) -> (PathBuf, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let (pem, key, csr) = (
            format!("{name}.pem"),
            format!("{name}.key"),
            format!("{name}.csr"),
        );
        let extensions = format!("{name}.ext");
        std::fs::write(
            self.path(&extensions),
            format!(
                "subjectAltName = {alt_names}\nbasicConstraints = CA:FALSE\n\
                 keyUsage = digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n"
            ),
        )
        .unwrap();
        let dir = self.dir.path();
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        );
        let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-set_serial",
                "2",
                "-days",
                "2",
                "-extfile",
                &extensions,
                "-out",
                &pem,
            ],
        );
        let key = self.path(&key);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        if is_root() {
            let chown = Command::new("chown")
                .arg("nobody:nogroup")
                .arg(&key)
                .status();
            assert!(chown.unwrap().success(), "cannot chown {}", key.display());
        }
        let cert = self.path(&pem);
        std::fs::set_permissions(&cert, std::fs::Permissions::from_mode(0o644)).unwrap();
        (cert, key)
    }
}

/// A private server with TLS on (the certificate `cert`, its key `key`) whose `pg_hba.conf`
/// (written into `pki`) lets a TCP connection in only over TLS.
fn tls_server(pki: &Pki, cert: &Path, key: &Path) -> Postgres {
    let server = Postgres::spawn();
    let hba = pki.path("pg_hba.conf");
    std::fs::write(
        &hba,
        "local all all trust\n\
         hostssl all all 127.0.0.1/32 trust\n\
         host all all 127.0.0.1/32 reject\n",
    )
    .unwrap();
    let settings = [
        ("ssl", "on".into()),
        ("ssl_cert_file", cert.display().to_string()),
        ("ssl_key_file", key.display().to_string()),
        ("hba_file", hba.display().to_string()),
    ];
    for (name, value) in settings {
        server.psql("postgres", &format!("ALTER SYSTEM SET {name} = '{value}'"));
    }
    // `hba_file` is read at start only; psql (`sslmode=prefer`) then connects over TLS.
    server.restart();
    assert_eq!(server.psql("postgres", "SHOW ssl"), "on");
    let ours = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    assert_eq!(server.psql("postgres", ours), "t");
    server
}

/// The pipeline of `super::pipeline` with `tls = "require"` and `ca`.
fn tls_pipeline(input: &str, group: &str, ca: &Path) -> String {
    let extra = format!("tls = \"require\"\nca = \"{}\"", ca.display());
    pipeline(input, &unique("dlq"), group, &extra)
}

/// Runs `file` against `url`; asserts weir exits at start with 4 and moves no offset of
/// `input`; its log.
fn refused_at_start(file: &Path, url: &str, group: &str, input: &str) -> Vec<String> {
    let weir = Weir::run_with_env(file, &[], &[("WEIR_PG_URL", url)]);
    let (status, log) = weir.wait_exit(Duration::from_secs(60));
    assert_eq!(status.code(), Some(4), "{log:#?}");
    assert_eq!(committed(group, input, 0), None, "an offset moved");
    log
}

/// Asserts weir's log says it could not connect because the TLS handshake failed, and `why`.
fn handshake_failed(log: &[String], why: &str) {
    assert!(
        log.iter()
            .any(|l| l.contains("cannot connect to 127.0.0.1:")
                && l.contains("error performing TLS handshake")
                && l.contains(why)),
        "{why} not in {log:#?}"
    );
}

/// Waits until the server's log holds `needle`.
fn server_logged(server: &Postgres, needle: &str) {
    let found = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        server.log().contains(needle)
    });
    assert!(
        found,
        "{needle:?} not in the server's log:\n{}",
        server.log()
    );
}

#[test]
fn a_postgres_sink_over_tls_verifies_the_server_and_writes_every_row() {
    const N: usize = 50;
    let pki = Pki::new();
    let ca = pki.ca("ca");
    let (cert, key) = pki.server("server", "ca", "IP:127.0.0.1, DNS:localhost");
    let server = tls_server(&pki, &cert, &key);
    let db = "tls";
    let url = database(&server, db);
    let (input, group) = (unique("in"), unique("group"));
    create_topic(&input, 2);

    // The server refuses a connection without TLS: so weir's, below, must have used it.
    let plain = pipeline(&input, &unique("dlq"), &group, "");
    let (_plain_dir, plain) = write_pipeline(&plain);
    let log = refused_at_start(&plain, &url, &group, &input);
    // Both weir's log and the server's say why.
    assert!(log.iter().any(|l| l.contains("no encryption")), "{log:#?}");
    server_logged(&server, "no encryption");

    let records: Vec<Rec> = (0..N).map(click).collect();
    produce(&input, &records);
    let (_dir, file) = write_pipeline(&tls_pipeline(&input, &group, &ca));
    let weir = Weir::run_with_env(&file, &[], &[("WEIR_PG_URL", &url)]);
    wait_committed(&group, &input, &records);
    // weir's connections (its pool's, its watcher's) are open while it runs: all over TLS.
    let connections = server.psql(
        "postgres",
        "SELECT count(*) FILTER (WHERE ssl), count(*) FROM pg_stat_ssl \
         JOIN pg_stat_activity USING (pid) WHERE application_name = 'weir'",
    );
    let log = weir.terminate();

    let (encrypted, all) = connections.split_once('|').unwrap();
    assert!(all.parse::<u32>().unwrap() >= 1, "no connection of weir's");
    assert_eq!(encrypted, all, "a connection of weir's without TLS");
    let rows = rows(&server, db);
    assert_eq!(rows.len(), N, "every record once: {log:#?}");
    for (i, (id, partition, ..)) in rows.iter().enumerate() {
        assert_eq!(*id, i as u64);
        assert_eq!(*partition, i as u64 % 2);
    }
}

#[test]
fn a_postgres_server_whose_certificate_the_ca_did_not_sign_is_refused_at_start() {
    let pki = Pki::new();
    pki.ca("ca");
    let (cert, key) = pki.server("server", "ca", "IP:127.0.0.1, DNS:localhost");
    let server = tls_server(&pki, &cert, &key);
    let url = database(&server, "tls");
    let (input, group) = (unique("in"), unique("group"));
    create_topic(&input, 1);
    produce(&input, &[click(0)]);

    // A CA of its own, which did not sign the server's certificate.
    let other = pki.ca("other-ca");
    let (_dir, file) = write_pipeline(&tls_pipeline(&input, &group, &other));
    let log = refused_at_start(&file, &url, &group, &input);
    handshake_failed(&log, "certificate verify failed");
    // The server hears why from weir's TLS alert.
    server_logged(&server, "alert unknown ca");

    // The right CA, but a certificate for another name: the host name is verified too.
    let (elsewhere, elsewhere_key) = pki.server("elsewhere", "ca", "DNS:elsewhere.invalid");
    for (name, file) in [
        ("ssl_cert_file", &elsewhere),
        ("ssl_key_file", &elsewhere_key),
    ] {
        let set = format!("ALTER SYSTEM SET {name} = '{}'", file.display());
        server.psql("postgres", &set);
    }
    server.psql("postgres", "SELECT pg_reload_conf()");
    // The reload is asynchronous: a new session sees the new settings once it is done.
    let shown = elsewhere.display().to_string();
    crate::harness::wait_for_value(Duration::from_secs(30), || {
        (server.psql("postgres", "SHOW ssl_cert_file") == shown).then_some(())
    });
    let (_dir, file) = write_pipeline(&tls_pipeline(&input, &group, &pki.path("ca.pem")));
    let log = refused_at_start(&file, &url, &group, &input);
    handshake_failed(&log, "certificate verify failed");
    server_logged(&server, "alert bad certificate");

    // A server without TLS (and that would let a plain connection in): no falling back.
    let plain = Postgres::spawn();
    assert_eq!(plain.psql("postgres", "SHOW ssl"), "off");
    let url = database(&plain, "tls");
    let log = refused_at_start(&file, &url, &group, &input);
    handshake_failed(&log, "server does not support TLS");
}
