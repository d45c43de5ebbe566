//! The sink's connections: a small pool of synchronous connections, lent one per write.

use std::fmt;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::PoolState;

/// How long opening a connection (and its handshake) may take.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one read or write on a connection may take.
pub(super) const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The most connections the pool opens at once.
pub(super) const POOL_MAX: usize = 16;
/// How long a write waits for a connection when all are lent.
pub(super) const POOL_WAIT: Duration = Duration::from_secs(5);

/// Opens a connection to `client`'s server, with [`CONNECT_TIMEOUT`] for the connection and
/// its handshake and `io` for every read and write after.
pub(super) fn connect(
    client: &::redis::Client,
    io: Duration,
) -> ::redis::RedisResult<::redis::Connection> {
    let connection = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    connection.set_read_timeout(Some(io))?;
    connection.set_write_timeout(Some(io))?;
    Ok(connection)
}

/// Removes the secrets of a url (the url itself, its password) from messages that might echo
/// them.
#[derive(Clone)]
pub(super) struct Redactor(Vec<String>);

impl Redactor {
    pub(super) fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        Self(secrets.into_iter().filter(|s| !s.is_empty()).collect())
    }

    /// `message`, with every secret replaced by `***`.
    pub(super) fn clean(&self, message: impl fmt::Display) -> String {
        let mut text = message.to_string();
        for secret in &self.0 {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "***");
            }
        }
        text
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.0.len())
    }
}

/// Why no connection could be lent.
#[derive(Debug)]
pub(super) enum TakeError {
    /// A new connection failed: the server is down or refuses us. Already redacted.
    Connect(String),
    /// Every connection stayed lent for [`POOL_WAIT`].
    Exhausted,
}

#[derive(Default)]
struct State {
    idle: Vec<::redis::Connection>,
    /// Connections lent, or being opened.
    busy: usize,
    waiting: usize,
}

impl State {
    fn stand(&self) -> PoolState {
        PoolState {
            busy: self.busy,
            idle: self.idle.len(),
            waiting: self.waiting,
            max: POOL_MAX,
        }
    }
}

/// The pool of a sink.
pub(super) struct Pool {
    client: ::redis::Client,
    redactor: Redactor,
    /// `host:port`, for messages.
    server: String,
    state: Mutex<State>,
    returned: Condvar,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("server", &self.server)
            .field("state", &self.state.lock().stand())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// A pool holding `first`, the connection opened to check the server.
    pub(super) fn new(
        client: ::redis::Client,
        redactor: Redactor,
        server: String,
        first: ::redis::Connection,
    ) -> Self {
        Self {
            client,
            redactor,
            server,
            state: Mutex::new(State {
                idle: vec![first],
                ..State::default()
            }),
            returned: Condvar::new(),
        }
    }

    /// Lends a connection: an idle one, or a new one while fewer than [`POOL_MAX`] are open.
    /// Returns it with the time spent getting it and how the pool stands after.
    pub(super) fn take(&self) -> Result<(Lent<'_>, Duration, PoolState), TakeError> {
        let start = Instant::now();
        let mut state = self.state.lock();
        loop {
            if let Some(connection) = state.idle.pop() {
                state.busy += 1;
                let stand = state.stand();
                return Ok((self.lent(connection), start.elapsed(), stand));
            }
            if state.busy < POOL_MAX {
                state.busy += 1;
                break;
            }
            state.waiting += 1;
            let timed_out = self
                .returned
                .wait_until(&mut state, start + POOL_WAIT)
                .timed_out();
            state.waiting -= 1;
            if timed_out && state.idle.is_empty() && state.busy >= POOL_MAX {
                return Err(TakeError::Exhausted);
            }
        }
        drop(state);
        match connect(&self.client, IO_TIMEOUT) {
            Ok(connection) => {
                let stand = self.state.lock().stand();
                Ok((self.lent(connection), start.elapsed(), stand))
            }
            Err(error) => {
                self.release(None);
                Err(TakeError::Connect(format!(
                    "cannot connect to redis at {}: {}",
                    self.server,
                    self.redactor.clean(error)
                )))
            }
        }
    }

    /// Closes every idle connection.
    pub(super) fn clear(&self) {
        self.state.lock().idle.clear();
    }

    fn lent(&self, connection: ::redis::Connection) -> Lent<'_> {
        Lent {
            pool: self,
            connection: Some(connection),
            keep: true,
        }
    }

    /// A lent connection comes back: kept if `connection` is given, closed otherwise.
    fn release(&self, connection: Option<::redis::Connection>) {
        let mut state = self.state.lock();
        state.busy = state.busy.saturating_sub(1);
        if let Some(connection) = connection {
            state.idle.push(connection);
        }
        drop(state);
        self.returned.notify_one();
    }
}

/// A connection lent by a [`Pool`]: it goes back to the pool when dropped, unless discarded.
pub(super) struct Lent<'p> {
    pool: &'p Pool,
    /// `Some` until dropped.
    connection: Option<::redis::Connection>,
    keep: bool,
}

impl fmt::Debug for Lent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lent").field("keep", &self.keep).finish()
    }
}

impl Lent<'_> {
    pub(super) fn connection(&mut self) -> &mut ::redis::Connection {
        self.connection
            .as_mut()
            .expect("a lent connection is held until it is dropped")
    }

    /// Closes the connection instead of returning it: its state is unknown after an I/O error.
    pub(super) fn discard(mut self) {
        self.keep = false;
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let connection = self.connection.take().filter(|_| self.keep);
        self.pool.release(connection);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_removed_from_messages() {
        let r = Redactor::new([
            "redis://u:hunter2@host:1/0".to_owned(),
            "hunter2".to_owned(),
            String::new(),
        ]);
        assert_eq!(
            r.clean("bad redis://u:hunter2@host:1/0 or hunter2"),
            "bad *** or ***"
        );
        assert_eq!(r.clean("nothing here"), "nothing here");
        assert!(!format!("{r:?}").contains("hunter2"));
    }
}
