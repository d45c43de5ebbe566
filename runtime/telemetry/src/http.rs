//! A small HTTP/1.1 server for the admin listener, on `std::net`.
//!
//! Each connection gets its own thread, up to [`AdminLimits::max_connections`]; beyond that a
//! connection is answered `503` at once and closed. A client therefore never waits behind
//! another, however slowly that one sends. Every connection serves one request and closes
//! (`Connection: close`), so an idle client holds no thread. The whole request (header and body)
//! must arrive within [`AdminLimits::read_timeout`] of the connection being accepted, a deadline
//! rather than a per-read timeout: a client that sends a byte a second is cut off all the same.
//! The header is capped at [`AdminLimits::max_header_bytes`] (`431`), the body at
//! [`AdminLimits::max_body_bytes`] (`413`), and the answer must be taken within
//! [`AdminLimits::write_timeout`].

mod request;
mod response;
mod stream;

pub(crate) use request::Request;
pub(crate) use response::Response;
pub use stream::{LineStream, Next};

use std::io::{ErrorKind, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::TelemetryError;

/// The admin listener's limits. [`Default`] gives the ones `weir run` uses (the constants of
/// this type); there is no configuration for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminLimits {
    /// Time a client has, from its connection, to send its whole request.
    pub read_timeout: Duration,
    /// Time a client has to take the whole answer.
    pub write_timeout: Duration,
    /// Largest request line and header fields, in bytes (`431` beyond).
    pub max_header_bytes: usize,
    /// Largest request body, in bytes (`413` beyond). The admin API's calls carry none.
    pub max_body_bytes: usize,
    /// Connections served at once; one more is answered `503` and closed.
    pub max_connections: usize,
}

impl AdminLimits {
    /// 10 s to send a request: a request to the admin listener is a few hundred bytes.
    pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// 10 s to take an answer (`/metrics` is the largest).
    pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
    /// 8 KiB of request line and header fields, as common HTTP servers allow.
    pub const MAX_HEADER_BYTES: usize = 8 * 1024;
    /// 16 KiB of body.
    pub const MAX_BODY_BYTES: usize = 16 * 1024;
    /// 64 connections at once: scrapers, probes and operators, with room to spare.
    pub const MAX_CONNECTIONS: usize = 64;
}

impl Default for AdminLimits {
    fn default() -> Self {
        Self {
            read_timeout: Self::READ_TIMEOUT,
            write_timeout: Self::WRITE_TIMEOUT,
            max_header_bytes: Self::MAX_HEADER_BYTES,
            max_body_bytes: Self::MAX_BODY_BYTES,
            max_connections: Self::MAX_CONNECTIONS,
        }
    }
}

/// How long a connection whose request was refused is read and discarded after its answer,
/// so that the client sees the answer rather than a reset, and how much of it at most.
const LINGER: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 256 * 1024;

/// An answer: complete, or lines streamed until the client goes away.
pub(crate) enum Answer {
    Full(Response),
    /// A `200` of this content type, whose body is the stream's lines.
    Stream(&'static str, Box<dyn LineStream>),
}

impl From<Response> for Answer {
    fn from(response: Response) -> Self {
        Self::Full(response)
    }
}

/// Answers requests.
pub(crate) trait Handler: Send + Sync + 'static {
    fn handle(&self, request: &Request) -> Answer;
}

/// The listener and its accepting thread; stops accepting when dropped (connections being
/// served finish on their own, within their deadlines).
pub(crate) struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free one) and serves it with `handler`.
    pub(crate) fn start(
        addr: SocketAddr,
        limits: AdminLimits,
        handler: Arc<dyn Handler>,
    ) -> Result<Self, TelemetryError> {
        let listen_error = |e: std::io::Error| TelemetryError::Listen {
            addr,
            message: e.to_string(),
        };
        let listener = TcpListener::bind(addr).map_err(listen_error)?;
        let bound = listener.local_addr().map_err(listen_error)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("weir-admin".into())
            .spawn(move || accept(&listener, limits, &handler, &stopping))
            .map_err(|e| TelemetryError::Listen {
                addr,
                message: format!("cannot start its thread: {e}"),
            })?;
        Ok(Self {
            addr: bound,
            stop,
            thread: Some(thread),
        })
    }

    /// The address actually bound.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // A connection wakes the accepting thread, which then sees the flag. Without one it
        // would never return, so it is left to the end of the process.
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let woken =
            TcpStream::connect_timeout(&SocketAddr::new(ip, self.addr.port()), LINGER).is_ok();
        if let Some(thread) = self.thread.take()
            && woken
        {
            let _ = thread.join();
        }
    }
}

/// Frees a connection's place when its thread ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept(
    listener: &TcpListener,
    limits: AdminLimits,
    handler: &Arc<dyn Handler>,
    stop: &AtomicBool,
) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match stream {
            Ok(s) => s,
            // The client gave up before it was accepted.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionAborted | ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(error) => {
                // Out of file descriptors, most likely: give the process a moment.
                tracing::warn!(%error, "Admin listener cannot accept a connection.");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        // Only this thread adds connections, so the count cannot pass the limit between the
        // check and the increment.
        if active.load(Ordering::SeqCst) >= limits.max_connections {
            tracing::debug!(
                peer = ?stream.peer_addr().ok(),
                limit = limits.max_connections,
                "Admin connection refused: too many connections."
            );
            refuse(stream);
            continue;
        }
        active.fetch_add(1, Ordering::SeqCst);
        let slot = Slot(Arc::clone(&active));
        let handler = Arc::clone(handler);
        let spawned = std::thread::Builder::new()
            .name("weir-admin-conn".into())
            .spawn(move || {
                let _slot = slot;
                serve(stream, &limits, &*handler);
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "Admin connection dropped: cannot start its thread.");
        }
    }
}

/// Answers `503` without blocking the accepting thread: the socket is new, so the short answer
/// fits its send buffer.
fn refuse(mut stream: TcpStream) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    // Whatever request has already arrived is read, so that closing does not reset the
    // connection before the client reads the answer.
    let _ = stream.read(&mut [0u8; 4096]);
    let answer = Response::text(503, "too many connections to the admin listener\n")
        .with_header("Retry-After", "1")
        .to_bytes(false);
    let _ = std::io::Write::write(&mut stream, &answer);
    let _ = stream.shutdown(Shutdown::Write);
}

/// Reads one request, answers it and closes.
fn serve(mut stream: TcpStream, limits: &AdminLimits, handler: &dyn Handler) {
    let read_deadline = Instant::now() + limits.read_timeout;
    let (response, head_only, refused) = match request::read(&mut stream, limits, read_deadline) {
        Ok(request) => match handler.handle(&request) {
            Answer::Full(response) => (response, request.method == "HEAD", false),
            Answer::Stream(content_type, lines) => {
                let sent = stream::send(&mut stream, content_type, lines, limits.write_timeout);
                if let Err(error) = sent {
                    tracing::debug!(peer = ?stream.peer_addr().ok(), %error, "Admin stream ended.");
                }
                return;
            }
        },
        Err(error) => {
            tracing::debug!(peer = ?stream.peer_addr().ok(), %error, "Admin request refused.");
            match error.status() {
                Some(status) => (Response::text(status, format!("{error}\n")), false, true),
                None => return,
            }
        }
    };
    let write_deadline = Instant::now() + limits.write_timeout;
    if let Err(error) = response.write(&mut stream, head_only, write_deadline) {
        tracing::debug!(peer = ?stream.peer_addr().ok(), %error, "Admin response not sent.");
        return;
    }
    if refused {
        linger(&mut stream);
    }
}

/// Closes our side, then reads and discards what the client still sends for a moment: closing
/// a socket with unread data resets the connection, which can destroy the answer in flight.
fn linger(stream: &mut TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER;
    let mut buf = [0u8; 4096];
    let mut discarded = 0;
    while discarded < LINGER_BYTES {
        match request::read_before(stream, &mut buf, deadline, LINGER) {
            Ok(0) | Err(_) => break,
            Ok(n) => discarded += n,
        }
    }
}
