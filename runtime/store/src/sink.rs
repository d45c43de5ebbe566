//! [`ParquetSink`]: a [`weir_core::Sink`] that writes records as rows of Parquet files.
//!
//! Rows are held per source partition in a *segment*: the rows of consecutive input records,
//! from its first source offset on, grouped by the folder `partition_by` gives them. A segment
//! is sealed once it holds `roll_records` input records (counted at input boundaries, so an
//! input's rows never straddle two segments), once its rows take `roll_bytes` in memory, or once
//! it has been open `roll_age`; a sealed segment is completed by writing one file per folder
//! (see [`crate::files`]), then recording the source partition's progress, then acknowledging
//! every output it holds. Outputs of inputs at or below the recorded progress are in the lake
//! already (a replay after a crash): they are acknowledged without being written again.
//!
//! A store that fails to complete a segment keeps it and retries; while any segment waits,
//! every write answers [`SinkError::Unavailable`], which the engine retries with backoff: the
//! lanes wait, memory stays bounded by the open and sealed segments, and nothing is lost.
//!
//! Owns: segments, rolling and the order of completion. Touches Arrow through [`crate::encode`]
//! and the disk through [`crate::files`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parking_lot::Mutex;
use parquet::basic::{Compression as Codec, ZstdLevel};
use parquet::file::properties::WriterProperties;
use weir_config::{Compression, ParquetSink as Settings, PartitionKey};
use weir_core::trace::{self, TRACEPARENT};
use weir_core::{DeliveryFailure, Output, Record, Refused, Sink, SinkError};

use crate::StoreError;
use crate::encode::{self, Provenance};
use crate::observe::{FileCommit, StoreObserver};
use crate::segment::{RowTrace, Segment};
use crate::target::Target;
use crate::{files, letters};

/// See the module's description.
pub struct ParquetSink {
    inner: Arc<Inner>,
    ticker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for ParquetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSink")
            .field("name", &self.inner.name)
            .field("path", &self.inner.target.describe())
            .finish_non_exhaustive()
    }
}

struct Inner {
    name: String,
    target: Target,
    values: SchemaRef,
    schema: SchemaRef,
    /// Whether the sink holds dead letters (`schema = "dead-letters"`).
    dead_letters: bool,
    partition_by: Vec<PartitionKey>,
    roll_records: u64,
    roll_bytes: Option<u64>,
    roll_age: Duration,
    properties: WriterProperties,
    state: Mutex<State>,
    /// The last store failure, until a store call succeeds again. Outside `state`, so that
    /// readiness never waits for a write in progress.
    failing: Mutex<Option<String>>,
    /// Outputs accepted and not yet acknowledged (also readable during a write).
    in_flight: AtomicUsize,
    stop: AtomicBool,
    observer: Option<Arc<dyn StoreObserver>>,
}

#[derive(Default)]
struct State {
    sources: HashMap<(String, i32), Source>,
}

/// What the sink holds for one source partition.
struct Source {
    /// The last source offset whose rows are all in complete files.
    durable: Option<i64>,
    open: Option<Segment>,
    sealed: VecDeque<Segment>,
}

impl ParquetSink {
    /// A sink named `name` writing under `settings.path`, with a thread that completes segments
    /// that reach `roll_age` while no write comes.
    pub fn new(name: &str, settings: &Settings) -> Result<Self, StoreError> {
        Self::observed(name, settings, None)
    }

    /// [`ParquetSink::new`], reporting its files and failures to `observer`.
    pub fn observed(
        name: &str,
        settings: &Settings,
        observer: Option<Arc<dyn StoreObserver>>,
    ) -> Result<Self, StoreError> {
        let values = match settings.dead_letters {
            true => letters::schema(),
            false => encode::value_schema(&settings.schema),
        };
        let codec = match settings.compression {
            Compression::Zstd => Codec::ZSTD(ZstdLevel::default()),
            Compression::Snappy => Codec::SNAPPY,
            Compression::None => Codec::UNCOMPRESSED,
        };
        let properties = WriterProperties::builder()
            .set_compression(codec)
            .set_max_row_group_row_count(Some(settings.row_group_rows))
            .build();
        let inner = Arc::new(Inner {
            name: name.to_owned(),
            target: Target::new(settings)?,
            schema: encode::file_schema(&values),
            values,
            dead_letters: settings.dead_letters,
            partition_by: settings.partition_by.clone(),
            roll_records: settings.roll_records,
            roll_bytes: settings.roll_bytes,
            roll_age: settings.roll_age,
            properties,
            state: Mutex::default(),
            failing: Mutex::default(),
            in_flight: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            observer,
        });
        let weak = Arc::downgrade(&inner);
        let tick = (settings.roll_age / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let ticker = std::thread::Builder::new()
            .name(format!("weir-store-{name}"))
            .spawn(move || age_rolls(&weak, tick))
            .map_err(StoreError::io("cannot start the roll thread of sink", name))?;
        Ok(Self {
            inner,
            ticker: Mutex::new(Some(ticker)),
        })
    }
}

/// Completes segments that grew old, until the sink is dropped.
fn age_rolls(inner: &Weak<Inner>, tick: Duration) {
    loop {
        std::thread::park_timeout(tick);
        let Some(inner) = inner.upgrade() else { return };
        if inner.stop.load(Ordering::Acquire) {
            return;
        }
        let mut state = inner.state.lock();
        // A failure is logged by `complete_due`, and retried at the next tick.
        let _ = inner.complete_due(&mut state, None);
    }
}

impl Drop for ParquetSink {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Release);
        if let Some(ticker) = self.ticker.lock().take() {
            ticker.thread().unpark();
            let _ = ticker.join();
        }
    }
}

impl Inner {
    /// Seals what is due (every open segment when `force` names no partition and is set...)
    /// and completes every sealed segment, oldest first. `force` seals the open segments of
    /// one source partition (`Some(Some(..))`) or of all (`Some(None)`) whatever their size.
    fn complete_due(
        &self,
        state: &mut State,
        force: Option<Option<(&str, i32)>>,
    ) -> Result<(), StoreError> {
        for ((topic, partition), source) in state.sources.iter_mut() {
            let forced = match force {
                Some(None) => true,
                Some(Some((t, p))) => t == topic && p == *partition,
                None => false,
            };
            if let Some(open) = &source.open {
                let full = self.roll_bytes.is_some_and(|max| open.bytes >= max);
                if forced || full || open.opened.elapsed() >= self.roll_age {
                    source.sealed.extend(source.open.take());
                }
            }
        }
        let (mut completed, mut stored) = (0, false);
        let mut result = Ok(());
        for ((topic, partition), source) in state.sources.iter_mut() {
            while let Some(segment) = source.sealed.front() {
                if let Err(error) = self.complete(topic, *partition, segment) {
                    result = Err(error);
                    break;
                }
                let segment = source.sealed.pop_front().expect("front was some");
                stored = true;
                source.durable = Some(segment.last);
                completed += segment.acks.len();
                for ack in segment.acks {
                    ack.ack();
                }
            }
        }
        self.in_flight.fetch_sub(completed, Ordering::Relaxed);
        if let Some(observer) = &self.observer {
            let oldest = state
                .sources
                .values()
                .flat_map(|s| s.sealed.iter().chain(&s.open));
            let oldest = oldest.map(|segment| segment.opened.elapsed()).max();
            observer.held(&self.name, oldest.unwrap_or_default());
        }
        match &result {
            Err(error) => self.failed(error),
            Ok(()) if stored => self.succeeded(),
            Ok(()) => {}
        }
        result
    }

    /// A store call failed: counted, kept for readiness, logged when it is news.
    fn failed(&self, error: &StoreError) {
        if let Some(observer) = &self.observer {
            observer.failed(&self.name, error.reason());
        }
        let failing = Some(error.to_string());
        let mut last = self.failing.lock();
        if failing != *last {
            tracing::warn!(
                sink = self.name,
                error = failing,
                "Store write failed; retrying."
            );
            *last = failing;
        }
    }

    /// A store call succeeded: whatever failed before works again. Only a call that reached
    /// the store clears a failure, so readiness does not flicker between retries.
    fn succeeded(&self) {
        if self.failing.lock().take().is_some() {
            tracing::info!(sink = self.name, "Store writes succeed again.");
        }
    }

    /// Writes a sealed segment's files, then records its partition's progress.
    fn complete(&self, topic: &str, partition: i32, segment: &Segment) -> Result<(), StoreError> {
        let name = files::file_name(topic, partition, segment.first);
        for folder in &segment.folders {
            let (started, clock) = (SystemTime::now(), Instant::now());
            let bytes = self.target.write_file(
                &folder.name,
                &name,
                &self.schema,
                &self.properties,
                &folder.batches,
            )?;
            let file = files::relative(&folder.name, &name);
            tracing::debug!(sink = self.name, file, bytes, "File complete.");
            if let Some(observer) = &self.observer {
                observer.file_written(&FileCommit {
                    sink: &self.name,
                    file: &file,
                    topic,
                    partition,
                    first_offset: segment.first,
                    last_offset: segment.last,
                    rows: folder.rows(),
                    bytes,
                    started,
                    elapsed: clock.elapsed(),
                    links: &folder.links,
                    unlinked: folder.unlinked,
                });
            }
        }
        self.target.write_progress(topic, partition, segment.last)
    }

    /// Loads the progress of the source partitions `outputs` come from that it does not know.
    fn know_sources(&self, state: &mut State, outputs: &[Output<'_>]) -> Result<(), StoreError> {
        let mut read = false;
        for out in outputs {
            let key = (out.source_topic, out.source_partition);
            if state.sources.keys().any(|(t, p)| (t.as_str(), *p) == key) {
                continue;
            }
            let durable = self
                .target
                .read_progress(key.0, key.1)
                .inspect_err(|error| {
                    self.failed(error);
                })?;
            read = true;
            let source = Source {
                durable,
                open: None,
                sealed: VecDeque::new(),
            };
            state.sources.insert((key.0.to_owned(), key.1), source);
        }
        if read {
            self.succeeded();
        }
        Ok(())
    }

    /// Appends the rows of `outputs[accepted[j]]` (row `j` of `rows`, trace `traces[j]`),
    /// sealing segments at `roll_records` input records.
    fn append(
        &self,
        state: &mut State,
        outputs: &[Output<'_>],
        accepted: &[usize],
        (rows, traces): (&RecordBatch, &[RowTrace]),
    ) -> Result<(), StoreError> {
        let mut start = 0;
        while start < accepted.len() {
            let first = &outputs[accepted[start]];
            let key = (first.source_topic.to_owned(), first.source_partition);
            let source = state.sources.get_mut(&key).expect("sources are known");
            // The run of rows that go to the current segment.
            let mut end = start;
            while end < accepted.len() {
                let out = &outputs[accepted[end]];
                if (out.source_topic, out.source_partition) != (key.0.as_str(), key.1) {
                    break;
                }
                let offset = out.ack.offset();
                match &mut source.open {
                    None => source.open = Some(Segment::new(offset)),
                    Some(open) if offset != open.last => {
                        if open.records >= self.roll_records {
                            break;
                        }
                        open.records += 1;
                        open.last = offset;
                    }
                    Some(_) => {}
                }
                end += 1;
            }
            let open = source.open.as_mut().expect("a row opened the segment");
            if end > start {
                let part = rows.slice(start, end - start);
                open.append(&part, &traces[start..end], &self.partition_by)?;
                for &i in &accepted[start..end] {
                    outputs[i].ack.add_pending(1);
                    open.acks.push(Arc::clone(outputs[i].ack));
                }
                self.in_flight.fetch_add(end - start, Ordering::Relaxed);
            }
            let source = state.sources.get_mut(&key).expect("sources are known");
            if source
                .open
                .as_ref()
                .is_some_and(|open| open.records >= self.roll_records)
            {
                source.sealed.extend(source.open.take());
            }
            start = end;
        }
        Ok(())
    }
}

impl Sink for ParquetSink {
    fn write(&self, outputs: &[Output<'_>]) -> Result<Vec<(usize, Refused)>, SinkError> {
        let inner = &*self.inner;
        let mut state = inner.state.lock();
        // Nothing new is taken while a completed segment cannot be written: backpressure.
        // (`complete_due` records its own failures.)
        inner
            .complete_due(&mut state, None)
            .map_err(|error| SinkError::Unavailable(error.to_string()))?;
        // (`know_sources` records its own failures.)
        if let Err(error) = inner.know_sources(&mut state, outputs) {
            return Err(SinkError::Unavailable(error.to_string()));
        }

        let todo: Vec<usize> = (0..outputs.len())
            .filter(|&i| {
                let out = &outputs[i];
                let source = &state.sources[&(out.source_topic.to_owned(), out.source_partition)];
                source
                    .durable
                    .is_none_or(|durable| out.ack.offset() > durable)
            })
            .collect();
        let (batch, refused) = if inner.dead_letters {
            let records: Vec<&Record> = todo.iter().map(|&i| outputs[i].record).collect();
            let rows = letters::rows(&inner.values, &records)
                .map_err(|error| SinkError::Fatal(error.to_string()))?;
            (Some(rows), Vec::new())
        } else {
            let values: Vec<Option<&[u8]>> = todo
                .iter()
                .map(|&i| outputs[i].record.value.as_deref())
                .collect();
            encode::decode(&inner.values, &values)
        };
        let refused: Vec<(usize, Refused)> =
            refused.into_iter().map(|(j, why)| (todo[j], why)).collect();
        let accepted: Vec<usize> = todo
            .iter()
            .copied()
            .filter(|i| !refused.iter().any(|(r, _)| r == i))
            .collect();
        if let Some(batch) = batch.filter(|b| b.num_rows() > 0) {
            let traces: Vec<RowTrace> = accepted
                .iter()
                .map(|&i| trace::parse_traceparent(outputs[i].record.header(TRACEPARENT)?))
                .collect();
            let trace_ids: Vec<Option<String>> = traces
                .iter()
                .map(|t| t.map(|(trace_id, _, _)| trace::hex(&trace_id)))
                .collect();
            let provenance: Vec<Provenance<'_>> = accepted
                .iter()
                .zip(&trace_ids)
                .map(|(&i, trace_id)| Provenance {
                    topic: outputs[i].source_topic,
                    partition: outputs[i].source_partition,
                    offset: outputs[i].ack.offset(),
                    timestamp: outputs[i].record.timestamp,
                    trace_id: trace_id.as_deref(),
                })
                .collect();
            let rows = encode::with_provenance(&inner.schema, &batch, &provenance)
                .map_err(|error| SinkError::Fatal(error.to_string()))?;
            inner
                .append(&mut state, outputs, &accepted, (&rows, &traces))
                .map_err(|error| SinkError::Fatal(error.to_string()))?;
        }
        // Outputs are accepted now; a failure to complete is retried at the next write.
        // A failure is logged and kept for the readiness probe; completion is retried.
        let _ = inner.complete_due(&mut state, None);
        Ok(refused)
    }

    fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        self.complete_within(None, timeout)
    }

    fn release(&self, topic: &str, partition: i32, timeout: Duration) -> Result<(), SinkError> {
        let result = self.complete_within(Some((topic, partition)), timeout);
        // The partition may move to another instance: what it writes next starts from the
        // progress recorded in the store, read again if the partition comes back.
        let mut state = self.inner.state.lock();
        let key = (topic.to_owned(), partition);
        if let Some(source) = state.sources.remove(&key) {
            let dropped = source.sealed.iter().chain(&source.open);
            let dropped = dropped.map(|s| s.acks.len()).sum::<usize>();
            self.inner.in_flight.fetch_sub(dropped, Ordering::Relaxed);
        }
        result
    }

    fn failure(&self) -> Option<DeliveryFailure> {
        None
    }

    fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Relaxed)
    }

    fn unavailable(&self) -> Option<String> {
        self.inner.failing.lock().clone()
    }
}

impl ParquetSink {
    /// Seals the open segments of `only` (or of every source partition) and completes every
    /// sealed segment, retrying for up to `timeout` while the store fails.
    fn complete_within(
        &self,
        only: Option<(&str, i32)>,
        timeout: Duration,
    ) -> Result<(), SinkError> {
        let deadline = Instant::now() + timeout;
        let mut wait = Duration::from_millis(10);
        loop {
            let result = {
                let mut state = self.inner.state.lock();
                self.inner.complete_due(&mut state, Some(only))
            };
            match result {
                Ok(()) => return Ok(()),
                Err(error) if Instant::now() + wait >= deadline => {
                    return Err(SinkError::Unavailable(error.to_string()));
                }
                // Logged by `complete_due`.
                Err(_) => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}
