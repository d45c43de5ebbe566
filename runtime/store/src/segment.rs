//! A [`Segment`]: the rows of consecutive input records of one source partition, grouped by
//! the folder `partition_by` gives them, waiting to become files; and the bounded set of
//! sampled traces each of those files holds, which the span of its commit links to.
//!
//! Owns: the rows in memory and the links. Writing them is [`crate::sink`]'s business.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use weir_config::PartitionKey;
use weir_core::InputAck;
use weir_core::trace::{SpanId, TraceId};

use crate::StoreError;
use crate::encode;

/// The most traces one file's commit span links to; the rest are counted.
pub const MAX_LINKS: usize = 32;

/// A row's trace: the trace id and span id of its record's `traceparent`, and whether that
/// trace is sampled (only sampled traces are exported, so only they are worth a link).
pub type RowTrace = Option<(TraceId, SpanId, bool)>;

/// See the module's description.
pub(crate) struct Segment {
    pub first: i64,
    pub last: i64,
    /// Input records (not rows) in the segment.
    pub records: u64,
    /// Memory the rows take.
    pub bytes: u64,
    pub opened: Instant,
    pub folders: Vec<Folder>,
    pub acks: Vec<Arc<InputAck>>,
}

/// The rows of a segment that go to one file.
pub(crate) struct Folder {
    /// The Hive folder (`dt=2026-12-05`), empty without `partition_by`.
    pub name: String,
    pub batches: Vec<RecordBatch>,
    /// Distinct sampled traces of its rows, at most [`MAX_LINKS`].
    pub links: Vec<(TraceId, SpanId)>,
    /// Rows of sampled traces beyond the links.
    pub unlinked: u64,
}

impl Folder {
    pub fn rows(&self) -> u64 {
        self.batches.iter().map(|b| b.num_rows() as u64).sum()
    }

    fn link(&mut self, trace: RowTrace) {
        let Some((trace_id, span_id, true)) = trace else {
            return;
        };
        if self.links.iter().any(|(t, _)| *t == trace_id) {
            return;
        }
        if self.links.len() < MAX_LINKS {
            self.links.push((trace_id, span_id));
        } else {
            self.unlinked += 1;
        }
    }
}

impl Segment {
    pub fn new(first: i64) -> Self {
        Self {
            first,
            last: first,
            records: 1,
            bytes: 0,
            opened: Instant::now(),
            folders: Vec::new(),
            acks: Vec::new(),
        }
    }

    /// Adds `rows` (whose row `j` has trace `traces[j]`) to the folders they belong to.
    pub fn append(
        &mut self,
        rows: &RecordBatch,
        traces: &[RowTrace],
        keys: &[PartitionKey],
    ) -> Result<(), StoreError> {
        self.bytes += rows.get_array_memory_size() as u64;
        for (name, rows, indices) in encode::split_by_folder(rows, keys)? {
            let folder = match self.folders.iter().position(|f| f.name == name) {
                Some(i) => &mut self.folders[i],
                None => {
                    self.folders.push(Folder {
                        name,
                        batches: Vec::new(),
                        links: Vec::new(),
                        unlinked: 0,
                    });
                    self.folders.last_mut().expect("just pushed")
                }
            };
            folder.batches.push(rows);
            match indices {
                Some(indices) => indices
                    .iter()
                    .for_each(|&j| folder.link(traces[j as usize])),
                None => traces.iter().for_each(|&trace| folder.link(trace)),
            }
        }
        Ok(())
    }
}
