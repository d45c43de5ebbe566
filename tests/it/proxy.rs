//! A TCP relay on a free loopback port in front of a server, for tests that take the server
//! away for a while without stopping it (its state, such as an S3 server's buckets, survives):
//! [`Relay::cut`] closes every connection and refuses new ones until [`Relay::restore`];
//! [`Relay::hold_after`] keeps the connections open but relays nothing more after a number of
//! bytes (a request in flight hangs).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::harness::free_port;

pub struct Relay {
    pub port: u16,
    state: Arc<State>,
}

struct State {
    cut: AtomicBool,
    held: AtomicBool,
    /// Upstream bytes after which the relay holds by itself (`u64::MAX`: never).
    hold_at: AtomicU64,
    /// Bytes relayed towards the server.
    upstream: AtomicU64,
    open: Mutex<Vec<TcpStream>>,
}

impl Relay {
    /// Relays 127.0.0.1:<port> to `target` (`host:port`).
    pub fn start(target: &str) -> Self {
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("the relay listens");
        let state = Arc::new(State {
            cut: AtomicBool::new(false),
            held: AtomicBool::new(false),
            hold_at: AtomicU64::new(u64::MAX),
            upstream: AtomicU64::new(0),
            open: Mutex::new(Vec::new()),
        });
        let target = target.to_owned();
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if shared.cut.load(Ordering::Acquire) {
                    // Closed at once: the client's request fails.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                {
                    let mut open = shared.open.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                pipe(&client, &server, Arc::clone(&shared), true);
                pipe(&server, &client, Arc::clone(&shared), false);
            }
        });
        Self { port, state }
    }

    /// Closes every open connection and refuses new ones.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::Release);
        for stream in self.state.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Stops relaying, in both directions and keeping every connection open, as soon as relaying
    /// a chunk would take the bytes sent towards the server past `bytes`: at most `bytes` go
    /// through, whatever the timing.
    pub fn hold_after(&self, bytes: u64) {
        self.state.hold_at.store(bytes, Ordering::Release);
    }

    /// Relays again, new connections and held ones.
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::Release);
        self.state.hold_at.store(u64::MAX, Ordering::Release);
        self.state.held.store(false, Ordering::Release);
    }

    /// Bytes relayed towards the server so far.
    pub fn upstream_bytes(&self) -> u64 {
        self.state.upstream.load(Ordering::Acquire)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Copies `from` to `to` on a thread of its own, counting the bytes if `upstream`.
fn pipe(from: &TcpStream, to: &TcpStream, state: Arc<State>, upstream: bool) {
    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if upstream
                && state.upstream.load(Ordering::Acquire) + n as u64
                    > state.hold_at.load(Ordering::Acquire)
            {
                state.held.store(true, Ordering::Release);
            }
            while state.held.load(Ordering::Acquire) && !state.cut.load(Ordering::Acquire) {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            if state.cut.load(Ordering::Acquire) {
                break;
            }
            if upstream {
                state.upstream.fetch_add(n as u64, Ordering::AcqRel);
            }
            if to.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
