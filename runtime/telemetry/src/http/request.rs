//! Reading one request within the listener's limits and deadline.

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::AdminLimits;
use crate::error::RequestError;

/// What the admin listener needs of a request. Its body, if any, has been read and discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// As sent, such as `GET`.
    pub(crate) method: String,
    /// The request target without its query, such as `/metrics`.
    pub(crate) path: String,
    /// The target's query, without its `?` (empty without one), still percent-encoded.
    pub(crate) query: String,
    /// The `Authorization` header's value.
    pub(crate) authorization: Option<String>,
}

/// The parsed request line and header fields.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    request: Request,
    content_length: Option<u64>,
    transfer_encoding: bool,
}

/// Reads a request from `stream`: its header, then its body (discarded), all before `deadline`.
pub(crate) fn read(
    stream: &mut TcpStream,
    limits: &AdminLimits,
    deadline: Instant,
) -> Result<Request, RequestError> {
    let timeout = limits.read_timeout;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let end = loop {
        let n = read_before(stream, &mut chunk, deadline, timeout)?;
        if n == 0 {
            return Err(RequestError::Closed);
        }
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        match header_end(&buf[from..]) {
            Some(end) if from + end <= limits.max_header_bytes => break from + end,
            Some(_) => return Err(RequestError::HeaderTooLarge(limits.max_header_bytes)),
            None if buf.len() > limits.max_header_bytes => {
                return Err(RequestError::HeaderTooLarge(limits.max_header_bytes));
            }
            None => {}
        }
    };
    let head = parse_head(&buf[..end])?;
    if head.transfer_encoding {
        return Err(RequestError::LengthRequired);
    }
    let length = head.content_length.unwrap_or(0);
    if length > limits.max_body_bytes as u64 {
        return Err(RequestError::BodyTooLarge(limits.max_body_bytes));
    }
    // Bytes past the body would be a pipelined request, which is not served.
    let mut left = length.saturating_sub((buf.len() - end) as u64);
    while left > 0 {
        let want = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        match read_before(stream, &mut chunk[..want], deadline, timeout)? {
            0 => return Err(RequestError::Closed),
            n => left -= n as u64,
        }
    }
    Ok(head.request)
}

/// One `read` that returns by `deadline`; a timeout is reported as `timeout`, the whole time
/// the client had.
pub(crate) fn read_before(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
    timeout: Duration,
) -> Result<usize, RequestError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RequestError::Timeout(timeout));
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(RequestError::Timeout(timeout));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The length of the header in `buf` up to and including its empty line (CRLF or bare LF line
/// ends), if it is all there.
fn header_end(buf: &[u8]) -> Option<usize> {
    buf.iter().enumerate().find_map(|(i, &b)| {
        if b != b'\n' {
            return None;
        }
        match &buf[i + 1..] {
            [b'\n', ..] => Some(i + 2),
            [b'\r', b'\n', ..] => Some(i + 3),
            _ => None,
        }
    })
}

/// Parses a request line and header fields (RFC 9112), strictly where leniency would be
/// ambiguous: folded lines, spaces before a colon and conflicting lengths are refused.
fn parse_head(head: &[u8]) -> Result<Head, RequestError> {
    use RequestError::Malformed;
    let text = std::str::from_utf8(head).map_err(|_| Malformed("the header is not UTF-8"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Malformed("the request line is not METHOD TARGET VERSION"));
    };
    if method.is_empty() || !method.bytes().all(is_token_char) {
        return Err(Malformed("invalid method"));
    }
    if !target.starts_with('/') {
        return Err(Malformed("the target must be a path"));
    }
    match version.strip_prefix("HTTP/") {
        Some("1.0" | "1.1") => {}
        Some(_) => return Err(RequestError::Version),
        None => return Err(Malformed("invalid HTTP version")),
    }
    let target = target.split('#').next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut head = Head {
        request: Request {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            authorization: None,
        },
        content_length: None,
        transfer_encoding: false,
    };
    for line in lines.take_while(|l| !l.is_empty()) {
        if line.starts_with([' ', '\t']) {
            return Err(Malformed("folded header lines are not accepted"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(Malformed("a header line without a colon"));
        };
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(Malformed("invalid header name"));
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("content-length") {
            let length = value
                .parse::<u64>()
                .ok()
                .filter(|_| value.bytes().all(|b| b.is_ascii_digit()))
                .ok_or(Malformed("invalid Content-Length"))?;
            if head.content_length.is_some_and(|l| l != length) {
                return Err(Malformed("conflicting Content-Length headers"));
            }
            head.content_length = Some(length);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.transfer_encoding = true;
        } else if name.eq_ignore_ascii_case("authorization") {
            if head.request.authorization.is_some() {
                return Err(Malformed("more than one Authorization header"));
            }
            head.request.authorization = Some(value.to_owned());
        }
    }
    Ok(head)
}

/// `tchar` of RFC 9110: the characters of methods and header names.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Head, RequestError> {
        let end = header_end(text.as_bytes()).expect("a complete header");
        assert_eq!(end, text.len(), "the header ends where the text does");
        parse_head(text.as_bytes())
    }

    #[test]
    fn finds_the_end_of_the_header_with_either_line_end() {
        assert_eq!(header_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody"), Some(24));
        assert_eq!(header_end(b"GET / HTTP/1.0\n\nbody"), Some(16));
        assert_eq!(header_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
        assert_eq!(header_end(b"GET / HTTP/1.1\r\nA: b\r\n\r"), None);
    }

    #[test]
    fn reads_method_path_authorization_and_length() {
        let head = parse(
            "POST /admin/reload?x=1 HTTP/1.1\r\nHost: h\r\nauthorization:  Bearer t \r\n\
             Content-Length: 12\r\nContent-Length: 12\r\n\r\n",
        )
        .unwrap();
        assert_eq!(head.request.method, "POST");
        assert_eq!(head.request.path, "/admin/reload");
        assert_eq!(head.request.authorization.as_deref(), Some("Bearer t"));
        assert_eq!(head.content_length, Some(12));
        assert!(!head.transfer_encoding);
        let head = parse("GET /metrics HTTP/1.0\n\n").unwrap();
        assert_eq!(head.request.path, "/metrics");
        assert_eq!(head.content_length, None);
        assert!(
            parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap()
                .transfer_encoding
        );
    }

    #[test]
    fn refuses_what_could_be_read_two_ways() {
        for (text, why) in [
            ("GET /\r\n\r\n", "request line"),
            ("GET  / HTTP/1.1\r\n\r\n", "request line"),
            ("G(T / HTTP/1.1\r\n\r\n", "method"),
            ("GET http://x/ HTTP/1.1\r\n\r\n", "target"),
            ("GET / HTTQ/1.1\r\n\r\n", "version"),
            ("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", "folded"),
            ("GET / HTTP/1.1\r\nA : b\r\n\r\n", "header name"),
            ("GET / HTTP/1.1\r\nnocolon\r\n\r\n", "colon"),
            (
                "GET / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
                "Content-Length",
            ),
            (
                "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "conflicting",
            ),
            (
                "GET / HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n",
                "Authorization",
            ),
        ] {
            match parse(text) {
                Err(e @ RequestError::Malformed(_)) => {
                    assert_eq!(e.status(), Some(400));
                    assert!(e.to_string().contains(why), "{text:?}: {e}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let e = parse("GET / HTTP/2.0\r\n\r\n").unwrap_err();
        assert_eq!(e.status(), Some(505), "{e}");
    }
}
