//! Event-time windows for aggregate stages: which windows a record falls in, the per-partition
//! watermark, when a window closes, and the host-owned accumulators in between.
//!
//! Pure logic: no clock, no wasm, no Kafka. The engine drives one [`WindowState`] per partition
//! lane, batch by batch.
//!
//! # Units
//! Every time and duration is an `i64` count of milliseconds (times since the Unix epoch). One
//! integer type keeps the arithmetic, the snapshots and the Kafka record timestamps alike.
//!
//! # Watermark, lateness and closing
//! - `max_event` is the largest event time the partition has seen (or reached by the idle rule).
//! - The **watermark** already includes the allowed lateness:
//!   `watermark = max_event - lateness_ms` (`None` before the first record).
//! - A window `[start, end)` is **closed** once `end <= watermark`, i.e. once
//!   `end + lateness <= max_event`. A closed window never receives a record again and is never
//!   merged; [`WindowState::closed`] hands it out and forgets it.
//! - Records of a batch are taken in order: each one is assigned against the watermark left by the
//!   records before it, then raises `max_event`. (A record cannot close its own windows: they all
//!   end after its time.) A record is **late** when every window it belongs to is closed; late
//!   records are reported by index and counted, never stored. A hopping record whose older windows
//!   are closed but newer ones open goes to the open ones only.
//! - Because closed windows are frozen, the output does not depend on how records are cut into
//!   batches or on how often `closed()` is called.
//!
//! # Idle partitions
//! With `idle_timeout_ms = Some(d)`, [`WindowState::on_idle`]`(now)` assumes event time keeps pace
//! with the wall clock once the partition has been quiet for `d`: if the last non-empty batch was
//! applied at wall time `w`, when `max_event` was `m`, then for `now - w >= d`,
//! `max_event = max(max_event, m + (now - w - d))`. So a quiet partition closes its windows `d`
//! (plus the lateness) after their event-time end would have passed, however old the data's
//! timestamps are (replays of old data are not wiped out by the wall clock), and a partition that
//! resumes with timestamps following the wall clock is not made late by its pause. Restoring a
//! snapshot restarts the quiet period at the restore time, so downtime does not count as idleness.
//!
//! # Sessions
//! A record at `t` opens `[t, t + gap)`. It merges with every open session of its key that
//! overlaps or touches that window (`start <= t + gap && end >= t`); the result spans all of them.
//! Open sessions of a key therefore never overlap or touch. With lateness, a record may still open
//! a session that overlaps one already closed (and possibly emitted); they stay separate.
//!
//! # Driving it per batch
//! ```
//! use weir_core::window::{WindowConfig, WindowSpec, WindowState};
//!
//! let mut state = WindowState::<Vec<u8>>::new(WindowConfig::new(WindowSpec::Tumbling { size_ms: 10 }))?;
//! let batch = [(b"a", 1), (b"b", 3), (b"a", 12)];
//! // 1. Group the batch by (key, window); nothing changes yet.
//! let plan = state.plan_batch(&batch, 0)?;
//! // 2. For each group: start from `create()` (no accs), the one stored acc, or the `merge` of
//! //    several (sessions), then `add` the group's records. In the engine this is one wasm call.
//! let results: Vec<Vec<u8>> = plan
//!     .groups
//!     .iter()
//!     .map(|g| {
//!         let before = g.accs.first().map_or(0, |a| a[0]);
//!         vec![before + g.records.len() as u8]
//!     })
//!     .collect();
//! // 3. Store the new accumulators (and get back any windows evicted early).
//! let evicted = state.apply(plan.into_commit(), results)?;
//! assert!(evicted.is_empty());
//! // 4. Emit what the watermark closed.
//! let closed = state.closed();
//! // The record at 12 moved the watermark to 12: [0, 10) of a, then of b (by end, then key).
//! assert_eq!(closed.len(), 2);
//! assert_eq!((&*closed[0].key, closed[0].window.end_ms, &closed[0].acc[..]), (&b"a"[..], 10, &[1][..]));
//! # Ok::<(), weir_core::window::WindowError>(())
//! ```
//! A plan borrows the state, so nothing can change it between steps 1 and 3; if the wasm call
//! fails, dropping the plan leaves the state as it was. [`WindowState::fold_batch`] does steps 1–3
//! with a native closure.
//!
//! # Bounds
//! `max_entries` bounds the open `(key, window)` entries of the partition after a batch (windows
//! closed but not yet handed out by `closed()` do not count). [`OnFull::Fail`] makes `plan_batch`
//! refuse a batch that would exceed it ([`WindowError::TooManyEntries`], state untouched);
//! [`OnFull::EvictOldest`] lets `apply` hand out the open windows that end first (then by key) as
//! early results until the bound holds. A later record for an evicted window starts a fresh
//! accumulator.
//!
//! # Snapshot encoding (version 1)
//! Little-endian, `uvar` = unsigned LEB128, `svar` = zigzag then LEB128:
//! ```text
//! "WWIN" u8:version=1
//! u8:spec  0 = tumbling uvar:size | 1 = hopping uvar:size uvar:every | 2 = session uvar:gap
//! u8:has_max_event [svar:max_event]
//! uvar:key_count, keys in ascending byte order, each:
//!   uvar:key_len key_bytes uvar:window_count, windows ascending by (start, end), each:
//!     svar:start uvar:(end - start) uvar:acc_len acc_bytes
//! ```
//! Counters and the idle clock are not part of a snapshot: they describe this process, not the
//! data. Restoring checks the spec matches the configuration, that keys and windows are sorted and
//! unique, that window extents fit the spec, and that no bytes are left over.

//!
//! # Files
//! - `spec`: window kinds, the configuration and its errors; which windows a time falls in.
//! - `state`: [`WindowState`]: planning and applying batches, the watermark, closing, eviction,
//!   the idle rule.
//! - `snapshot`: the snapshot encoding above, written and read.
//!
//! This module may not touch the aggregator (the module's `create`/`add`/`merge`/`emit`; that is
//! [`crate::aggregate`]), and knows nothing of changelogs, Kafka or wasm: accumulators are opaque.

mod snapshot;
mod spec;
mod state;

pub use spec::{
    MAX_WINDOWS_PER_RECORD, OnFull, SnapshotError, Window, WindowConfig, WindowError, WindowSpec,
};
pub use state::{BatchPlan, Closed, Commit, Folded, Group, WindowCounters, WindowState};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
