//! Routes, methods and the admin API's token.

use std::sync::atomic::Ordering;

use weir_telemetry::AdminLimits;

use crate::{TOKEN, body, get, request, start, status};

#[test]
fn serves_metrics_health_and_readiness() {
    let f = start(Some(TOKEN), AdminLimits::default());
    f.metrics.set_lanes(2, 0, 5);
    let m = get(f.addr(), "/metrics");
    assert_eq!(status(&m), 200, "{m}");
    assert!(
        m.contains("Content-Type: application/openmetrics-text"),
        "{m}"
    );
    assert!(m.contains("Connection: close\r\n"), "{m}");
    assert!(
        body(&m).contains(r#"weir_assigned_partitions{pipeline="p"} 2"#),
        "{m}"
    );
    assert!(body(&m).trim_end().ends_with("# EOF"), "{m}");
    assert_eq!(status(&get(f.addr(), "/healthz?verbose")), 200);
    let r = get(f.addr(), "/readyz");
    assert_eq!(status(&r), 503, "{r}");
    assert_eq!(body(&r), "no partition assigned\n");
    f.ready.0.store(true, Ordering::SeqCst);
    assert_eq!(status(&get(f.addr(), "/readyz")), 200);
    assert_eq!(status(&get(f.addr(), "/nope")), 404);

    // HEAD: the same length, no body.
    let head = request(f.addr(), b"HEAD /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(status(&head), 200, "{head}");
    assert!(head.contains("Content-Length: 3\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "{head}");
    let post = request(
        f.addr(),
        b"POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_eq!(status(&post), 405, "{post}");
    assert!(post.contains("Allow: GET, HEAD\r\n"), "{post}");
    // Bare line ends are read too.
    assert_eq!(
        status(&request(f.addr(), b"GET /healthz HTTP/1.0\n\n")),
        200
    );
    let bad = request(f.addr(), b"GET /healthz HTTP/2.0\r\n\r\n");
    assert_eq!(status(&bad), 505, "{bad}");
    let bad = request(f.addr(), b"GET /healthz\r\n\r\n");
    assert_eq!(status(&bad), 400, "{bad}");
}

/// Every `/admin/` route, with the answer an authorized caller gets.
const ADMIN_ROUTES: &[(&str, &str, u16)] = &[
    ("GET", "/admin/canary", 200),
    ("HEAD", "/admin/canary", 200),
    ("POST", "/admin/reload", 202),
    ("POST", "/admin/canary/tag/promote", 202),
    ("GET", "/admin/reload", 405),
    ("POST", "/admin/canary", 405),
    ("POST", "/admin/canary/tag", 404),
    ("GET", "/admin/nope", 404),
    ("GET", "/admin", 404),
];

fn call(addr: std::net::SocketAddr, method: &str, path: &str, auth: &str) -> String {
    request(
        addr,
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\n\r\n")
            .as_bytes(),
    )
}

#[test]
fn every_admin_route_needs_the_token() {
    let f = start(Some(TOKEN), AdminLimits::default());
    for &(method, path, _) in ADMIN_ROUTES {
        for auth in [
            "",
            "Authorization: Bearer wrong\r\n",
            "Authorization: Bearer s3cre\r\n",
            "Authorization: Bearer s3cret2\r\n",
            "Authorization: s3cret\r\n",
            "Authorization: Basic czNjcmV0\r\n",
        ] {
            let r = call(f.addr(), method, path, auth);
            assert_eq!(status(&r), 401, "{method} {path} {auth:?}: {r}");
            assert!(r.contains("WWW-Authenticate: Bearer\r\n"), "{r}");
            assert!(!r.contains("running"), "no canary status leaks: {r}");
        }
    }
    assert_eq!(f.calls.reloads.load(Ordering::SeqCst), 0);
    assert_eq!(f.calls.canary.load(Ordering::SeqCst), 0);

    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    for &(method, path, want) in ADMIN_ROUTES {
        let r = call(f.addr(), method, path, &auth);
        assert_eq!(status(&r), want, "{method} {path}: {r}");
    }
    let r = call(f.addr(), "GET", "/admin/canary", &auth);
    assert!(r.contains("Content-Type: application/json\r\n"), "{r}");
    assert_eq!(body(&r), r#"[{"stage":"tag","state":"running"}]"#);
    assert_eq!(f.calls.reloads.load(Ordering::SeqCst), 1);
    assert_eq!(f.calls.canary.load(Ordering::SeqCst), 1);
}

#[test]
fn without_a_token_the_admin_api_is_refused() {
    let f = start(None, AdminLimits::default());
    for &(method, path, _) in ADMIN_ROUTES {
        let r = call(f.addr(), method, path, "Authorization: Bearer x\r\n");
        assert_eq!(status(&r), 403, "{method} {path}: {r}");
        assert!(
            method == "HEAD" || body(&r).contains("WEIR_ADMIN_TOKEN"),
            "{r}"
        );
    }
    assert_eq!(f.calls.reloads.load(Ordering::SeqCst), 0);
    assert_eq!(status(&get(f.addr(), "/healthz")), 200);
}
