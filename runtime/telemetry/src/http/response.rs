//! An answer, and writing it within a deadline.

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::time::Instant;

/// A complete answer: every connection closes after one (`Connection: close`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) status: u16,
    content_type: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: String,
}

impl Response {
    /// A `text/plain` answer.
    pub(crate) fn text(status: u16, body: impl Into<String>) -> Self {
        Self::with_type(status, "text/plain; charset=utf-8", body.into())
    }

    /// A `200` answer of `content_type`.
    pub(crate) fn ok(content_type: &'static str, body: String) -> Self {
        Self::with_type(200, content_type, body)
    }

    fn with_type(status: u16, content_type: &'static str, body: String) -> Self {
        Self {
            status,
            content_type,
            headers: Vec::new(),
            body,
        }
    }

    /// Adds a header field.
    pub(crate) fn with_header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The answer on the wire; `head_only` (for `HEAD`) leaves the body out, not its length.
    pub(crate) fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        if !head_only {
            out.push_str(&self.body);
        }
        out.into_bytes()
    }

    /// Writes the answer, giving up at `deadline`.
    pub(crate) fn write(
        &self,
        stream: &mut TcpStream,
        head_only: bool,
        deadline: Instant,
    ) -> std::io::Result<()> {
        let bytes = self.to_bytes(head_only);
        let mut sent = 0;
        while sent < bytes.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ErrorKind::TimedOut.into());
            }
            stream.set_write_timeout(Some(left))?;
            match stream.write(&bytes[sent..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The reason phrase of each status the listener answers with.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_answer_keeps_the_length_and_drops_the_body() {
        let r = Response::text(405, "use GET\n").with_header("Allow", "GET, HEAD");
        let full = String::from_utf8(r.to_bytes(false)).unwrap();
        assert_eq!(
            full,
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 8\r\nConnection: close\r\nAllow: GET, HEAD\r\n\r\nuse GET\n"
        );
        let head = String::from_utf8(r.to_bytes(true)).unwrap();
        assert_eq!(head, full.strip_suffix("use GET\n").unwrap());
    }
}
