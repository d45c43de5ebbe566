//! A streamed answer: lines sent as they come until the client goes away or the stream ends,
//! for `GET /admin/tap`. The answer has no length; the connection's close ends it.

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// What a line stream has next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A line, without its line end.
    Line(String),
    /// Nothing within the wait.
    Idle,
    /// The stream is over (the instance is stopping).
    End,
}

/// Lines for one admin client, produced elsewhere: the stream must never make its producer
/// wait on the client, which may read as slowly as it likes.
pub trait LineStream: Send {
    /// The next line, waiting at most `wait` for one.
    fn next(&mut self, wait: Duration) -> Next;
}

/// How long to wait for a line before checking on the client.
const POLL: Duration = Duration::from_millis(250);
/// An empty line is sent after this long without one, so that a client that went away is
/// noticed (the write fails) and its stream dropped.
const KEEPALIVE: Duration = Duration::from_secs(5);
/// Lines ready at once are sent together, in writes of about this many bytes.
const WRITE_BYTES: usize = 64 * 1024;

/// Sends the head of a `200` answer of `content_type`, then `lines`, each within `timeout`,
/// until the client goes away, a write takes longer than `timeout`, or the stream ends.
pub(crate) fn send(
    stream: &mut TcpStream,
    content_type: &str,
    mut lines: Box<dyn LineStream>,
    timeout: Duration,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nCache-Control: no-store\r\n\
         Connection: close\r\n\r\n"
    );
    stream.set_write_timeout(Some(timeout))?;
    write_all(stream, head.as_bytes())?;
    let mut quiet_since = Instant::now();
    let mut out = Vec::with_capacity(WRITE_BYTES);
    loop {
        match lines.next(POLL) {
            Next::Line(line) => {
                let ended = gather(lines.as_mut(), line, &mut out);
                write_all(stream, &out)?;
                out.clear();
                quiet_since = Instant::now();
                if ended {
                    return Ok(());
                }
            }
            Next::Idle if quiet_since.elapsed() >= KEEPALIVE => {
                write_all(stream, b"\n")?;
                quiet_since = Instant::now();
            }
            Next::Idle => {}
            Next::End => return Ok(()),
        }
    }
}

/// Appends `first` and the lines ready behind it to `out`, up to about [`WRITE_BYTES`], so
/// that they go out in one write; true when the stream ended behind them.
fn gather(lines: &mut dyn LineStream, first: String, out: &mut Vec<u8>) -> bool {
    let mut line = first;
    loop {
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
        if out.len() >= WRITE_BYTES {
            return false;
        }
        match lines.next(Duration::ZERO) {
            Next::Line(more) => line = more,
            Next::Idle => return false,
            Next::End => return true,
        }
    }
}

fn write_all(stream: &mut TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
