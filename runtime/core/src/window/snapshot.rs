//! The snapshot encoding of a [`WindowState`] (version 1, described in the module documentation
//! of [`crate::window`]): writing it whole or key by key, and reading it back with every check.
//!
//! Owns the bytes; may not change the state's logic (planning, closing) nor know where the
//! bytes are kept.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{SnapshotError, Window, WindowConfig, WindowError, WindowSpec, WindowState};

const MAGIC: &[u8; 4] = b"WWIN";
const SNAPSHOT_VERSION: u8 = 1;

impl<A: AsRef<[u8]>> WindowState<A> {
    /// The state as version-1 bytes (see the module documentation).
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = self.snapshot_header();
        put_uvar(&mut out, self.entries.len() as u64);
        for (key, windows) in &self.entries {
            put_uvar(&mut out, key.len() as u64);
            out.extend_from_slice(key);
            put_windows(&mut out, windows);
        }
        out
    }

    /// The part of a snapshot before its keys: magic, version, window spec and watermark. With
    /// [`snapshot_key`](Self::snapshot_key) it lets a changelog store the state key by key.
    pub fn snapshot_header(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        out.extend_from_slice(MAGIC);
        out.push(SNAPSHOT_VERSION);
        match self.config.spec {
            WindowSpec::Tumbling { size_ms } => {
                out.push(0);
                put_uvar(&mut out, size_ms as u64);
            }
            WindowSpec::Hopping { size_ms, every_ms } => {
                out.push(1);
                put_uvar(&mut out, size_ms as u64);
                put_uvar(&mut out, every_ms as u64);
            }
            WindowSpec::Session { gap_ms } => {
                out.push(2);
                put_uvar(&mut out, gap_ms as u64);
            }
        }
        match self.max_event {
            None => out.push(0),
            Some(m) => {
                out.push(1);
                put_svar(&mut out, m);
            }
        }
        out
    }

    /// The windows of `key` as a snapshot encodes them after the key, or `None` when the key
    /// holds no window (a changelog then deletes it).
    pub fn snapshot_key(&self, key: &[u8]) -> Option<Vec<u8>> {
        let windows = self.entries.get(key)?;
        let mut out = Vec::with_capacity(8 + windows.len() * 16);
        put_windows(&mut out, windows);
        Some(out)
    }
}

fn put_windows<A: AsRef<[u8]>>(out: &mut Vec<u8>, windows: &BTreeMap<Window, A>) {
    put_uvar(out, windows.len() as u64);
    for (w, acc) in windows {
        put_svar(out, w.start_ms);
        put_uvar(out, (i128::from(w.end_ms) - i128::from(w.start_ms)) as u64);
        let acc = acc.as_ref();
        put_uvar(out, acc.len() as u64);
        out.extend_from_slice(acc);
    }
}

impl<A: for<'a> From<&'a [u8]>> WindowState<A> {
    /// A state for `config` holding a snapshot's windows and watermark; counters start at zero and
    /// the idle clock at `now_ms`.
    pub fn restore(config: WindowConfig, bytes: &[u8], now_ms: i64) -> Result<Self, WindowError> {
        let mut state = WindowState::new(config)?;
        let mut r = Reader { bytes, pos: 0 };
        state.read_header(&mut r)?;
        let keys = r.uvar()?;
        let mut previous_key: Option<Arc<[u8]>> = None;
        for _ in 0..keys {
            let len = r.len()?;
            let key: Arc<[u8]> = Arc::from(r.take(len)?);
            if previous_key.as_ref().is_some_and(|p| *p >= key) {
                return Err(SnapshotError::Malformed("keys not strictly ascending").into());
            }
            state.read_windows(&key, &mut r)?;
            previous_key = Some(key);
        }
        if r.pos != bytes.len() {
            return Err(SnapshotError::TrailingBytes(bytes.len() - r.pos).into());
        }
        state.idle_anchor = state.max_event.map(|m| (now_ms, m));
        Ok(state)
    }

    /// Like [`restore`](Self::restore), from a [`snapshot_header`](Self::snapshot_header) and the
    /// [`snapshot_key`](Self::snapshot_key) of every key (in any order, each once).
    pub fn restore_parts<'k>(
        config: WindowConfig,
        header: &[u8],
        keys: impl IntoIterator<Item = (&'k [u8], &'k [u8])>,
        now_ms: i64,
    ) -> Result<Self, WindowError> {
        let mut state = WindowState::new(config)?;
        let mut r = Reader {
            bytes: header,
            pos: 0,
        };
        state.read_header(&mut r)?;
        if r.pos != header.len() {
            return Err(SnapshotError::TrailingBytes(header.len() - r.pos).into());
        }
        for (key, body) in keys {
            if state.entries.contains_key(key) {
                return Err(SnapshotError::Malformed("a key given twice").into());
            }
            let mut r = Reader {
                bytes: body,
                pos: 0,
            };
            state.read_windows(&Arc::from(key), &mut r)?;
            if r.pos != body.len() {
                return Err(SnapshotError::TrailingBytes(body.len() - r.pos).into());
            }
        }
        state.idle_anchor = state.max_event.map(|m| (now_ms, m));
        Ok(state)
    }

    fn read_header(&mut self, r: &mut Reader<'_>) -> Result<(), WindowError> {
        if r.take(4).map_err(|_| SnapshotError::BadMagic)? != MAGIC {
            return Err(SnapshotError::BadMagic.into());
        }
        let version = r.byte()?;
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::UnsupportedVersion(version).into());
        }
        let spec = match r.byte()? {
            0 => WindowSpec::Tumbling {
                size_ms: r.duration()?,
            },
            1 => WindowSpec::Hopping {
                size_ms: r.duration()?,
                every_ms: r.duration()?,
            },
            2 => WindowSpec::Session {
                gap_ms: r.duration()?,
            },
            _ => return Err(SnapshotError::Malformed("unknown window kind").into()),
        };
        if spec != self.config.spec {
            return Err(SnapshotError::SpecMismatch {
                snapshot: spec,
                config: self.config.spec,
            }
            .into());
        }
        self.max_event = match r.byte()? {
            0 => None,
            1 => Some(r.svar()?),
            _ => return Err(SnapshotError::Malformed("bad watermark flag").into()),
        };
        Ok(())
    }

    fn read_windows(&mut self, key: &Arc<[u8]>, r: &mut Reader<'_>) -> Result<(), WindowError> {
        let count = r.uvar()?;
        if count == 0 {
            return Err(SnapshotError::Malformed("key without windows").into());
        }
        let mut previous: Option<Window> = None;
        for _ in 0..count {
            let start = r.svar()?;
            let span = r.uvar()?;
            let end = i64::try_from(i128::from(start) + i128::from(span))
                .map_err(|_| SnapshotError::Malformed("window end out of range"))?;
            let w = Window::new(start, end);
            if span == 0 || !fits(&self.config.spec, &w) {
                return Err(SnapshotError::Malformed("window does not fit the spec").into());
            }
            if previous.is_some_and(|p| p >= w) {
                return Err(SnapshotError::Malformed("windows not strictly ascending").into());
            }
            previous = Some(w);
            let len = r.len()?;
            let acc = A::from(r.take(len)?);
            self.insert(key.clone(), w, acc);
        }
        Ok(())
    }
}

/// Whether a stored window has an extent the spec can produce (fixed windows: aligned and exactly
/// `size` long, unless clamped at the end of time; sessions: at least `gap` long).
fn fits(spec: &WindowSpec, w: &Window) -> bool {
    let span = i128::from(w.end_ms) - i128::from(w.start_ms);
    match *spec {
        WindowSpec::Session { gap_ms } => span >= i128::from(gap_ms) || w.end_ms == i64::MAX,
        _ => {
            let (size, every) = spec.fixed().unwrap();
            w.start_ms.rem_euclid(every) == 0
                && (span == i128::from(size) || (w.end_ms == i64::MAX && span < i128::from(size)))
        }
    }
}

fn put_uvar(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_svar(out: &mut Vec<u8>, v: i64) {
    put_uvar(out, ((v << 1) ^ (v >> 63)) as u64);
}

struct Reader<'b> {
    bytes: &'b [u8],
    pos: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], SnapshotError> {
        let end = self.pos.checked_add(n).ok_or(SnapshotError::Truncated)?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or(SnapshotError::Truncated)?;
        self.pos = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, SnapshotError> {
        Ok(self.take(1)?[0])
    }

    fn uvar(&mut self) -> Result<u64, SnapshotError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(SnapshotError::Malformed("varint overflows 64 bits"));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(SnapshotError::Malformed("varint overflows 64 bits"))
    }

    fn svar(&mut self) -> Result<i64, SnapshotError> {
        let u = self.uvar()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    fn duration(&mut self) -> Result<i64, SnapshotError> {
        i64::try_from(self.uvar()?).map_err(|_| SnapshotError::Malformed("duration out of range"))
    }

    /// A length that must fit in what is left.
    fn len(&mut self) -> Result<usize, SnapshotError> {
        let n = self.uvar()?;
        let left = (self.bytes.len() - self.pos) as u64;
        if n > left {
            return Err(SnapshotError::Truncated);
        }
        Ok(n as usize)
    }
}
