//! A lane: one assigned partition, processed in order on its own thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use weir_core::{Failure, FailureKind, Header, InputAck, PartitionTracker, Record, headers};
use weir_kafka::{KafkaSink, TopicPartition};

use crate::chain::{Chain, Emit, Partitioning, StageInfo};

/// Counters shared by every lane, for progress logs and the final summary.
#[derive(Debug, Default)]
pub struct Stats {
    pub records_in: AtomicU64,
    pub records_out: AtomicU64,
    pub dead_letters: AtomicU64,
}

/// What lanes share with the engine.
pub(crate) struct Shared {
    pub pipeline: Arc<str>,
    pub dead_letter: Arc<str>,
    pub batch_size: usize,
    pub sink: Arc<KafkaSink>,
    pub stats: Arc<Stats>,
    /// The first error that makes the pipeline stop.
    pub fatal: Mutex<Option<String>>,
}

impl Shared {
    pub fn set_fatal(&self, message: String) {
        tracing::error!(error = %message, "Pipeline failing.");
        self.fatal.lock().get_or_insert(message);
    }
}

/// The engine's handle on a running lane.
pub(crate) struct Lane {
    pub tx: Sender<Record>,
    pub stop: Arc<AtomicBool>,
    pub tracker: Arc<PartitionTracker>,
    pub thread: JoinHandle<()>,
    /// Records the consumer delivered while the lane's queue was full, in order.
    pub stash: std::collections::VecDeque<Record>,
    /// Whether the partition is paused (until the stash is empty and resuming succeeded).
    pub paused: bool,
    /// The last offset committed for this lane.
    pub committed: Option<i64>,
}

impl Lane {
    pub fn start(tp: TopicPartition, chain: Chain, shared: Arc<Shared>, capacity: usize) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let stop = Arc::new(AtomicBool::new(false));
        let tracker = Arc::new(PartitionTracker::new());
        let worker = Worker {
            tp: tp.clone(),
            chain,
            shared,
            rx,
            stop: Arc::clone(&stop),
            tracker: Arc::clone(&tracker),
        };
        let thread = std::thread::Builder::new()
            .name(format!("weir-lane-{}-{}", tp.topic, tp.partition))
            .spawn(move || worker.run())
            .expect("cannot spawn a lane thread");
        Self {
            tx,
            stop,
            tracker,
            thread,
            stash: Default::default(),
            paused: false,
            committed: None,
        }
    }
}

struct Worker {
    tp: TopicPartition,
    chain: Chain,
    shared: Arc<Shared>,
    rx: Receiver<Record>,
    stop: Arc<AtomicBool>,
    tracker: Arc<PartitionTracker>,
}

impl Worker {
    fn run(mut self) {
        let mut batch = Vec::with_capacity(self.shared.batch_size);
        while let Ok(first) = self.rx.recv() {
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            batch.clear();
            batch.push(first);
            while batch.len() < self.shared.batch_size {
                match self.rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.shared
                .stats
                .records_in
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            let emits = self.chain.run(&self.tp.topic, self.tp.partition, &batch);
            for (input, emits) in batch.iter().zip(emits) {
                if let Err(message) = self.deliver(input, emits) {
                    self.shared.set_fatal(message);
                    return;
                }
            }
        }
        tracing::debug!(partition = %self.tp, "Lane stopped.");
    }

    /// Hands every emit of `input` to the producer under one acknowledgement. An error means the
    /// record can be neither delivered nor dead-lettered: the lane must stop, and the record's
    /// acknowledgement is never settled so its offset is never committed.
    fn deliver(&self, input: &Record, emits: Vec<Emit>) -> Result<(), String> {
        let ack = self.tracker.track(input.offset);
        let infos = self.chain.infos();
        for emit in emits {
            match emit {
                Emit::Output { stage, record } => {
                    let info = &infos[stage];
                    let topic = info
                        .output
                        .as_deref()
                        .expect("published stages have an output");
                    let partition = match info.partitioning {
                        Partitioning::Source => Some(self.tp.partition),
                        Partitioning::Key => None,
                    };
                    match self.shared.sink.send(topic, partition, &record, &ack) {
                        Ok(()) => {
                            self.shared
                                .stats
                                .records_out
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => {
                            // The broker will not take this output (too large, say): the input
                            // is dead-lettered instead.
                            let failure = Failure::new(
                                FailureKind::InvalidOutput,
                                format!("the producer refused an output: {error}"),
                            );
                            self.dead_letter(info, input.clone(), &failure, &ack)?;
                        }
                    }
                }
                Emit::DeadLetter {
                    stage,
                    record,
                    failure,
                } => self.dead_letter(&infos[stage], record, &failure, &ack)?,
            }
        }
        ack.settle();
        Ok(())
    }

    fn dead_letter(
        &self,
        stage: &StageInfo,
        record: Record,
        failure: &Failure,
        ack: &Arc<InputAck>,
    ) -> Result<(), String> {
        tracing::warn!(
            stage = &*stage.name,
            partition = self.tp.partition,
            offset = record.offset,
            kind = failure.kind.as_str(),
            error = %failure.message,
            "Record dead-lettered."
        );
        let letter = dead_letter_record(&self.shared.pipeline, stage, &self.tp, record, failure);
        self.shared
            .sink
            .send(&self.shared.dead_letter, None, &letter, ack)
            .map_err(|e| format!("cannot dead-letter {}@{}: {e}", self.tp, letter.offset))?;
        self.shared
            .stats
            .dead_letters
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// The record as it entered the failing stage, plus provenance headers (see
/// [`weir_core::headers`]).
pub(crate) fn dead_letter_record(
    pipeline: &str,
    stage: &StageInfo,
    source: &TopicPartition,
    mut record: Record,
    failure: &Failure,
) -> Record {
    let (partition, offset) = (source.partition.to_string(), record.offset.to_string());
    let provenance = [
        (headers::PIPELINE, pipeline),
        (headers::STAGE, &stage.name),
        (headers::MODULE_SHA256, &stage.module_sha256),
        (headers::ERROR_KIND, failure.kind.as_str()),
        (headers::ERROR_CODE, &failure.code),
        (headers::ERROR_MESSAGE, &failure.message),
        (headers::SOURCE_TOPIC, &source.topic),
        (headers::SOURCE_PARTITION, &partition),
        (headers::SOURCE_OFFSET, &offset),
    ];
    record.headers.extend(
        provenance
            .iter()
            // The code is a stage error's own; other kinds have none.
            .filter(|(name, value)| *name != headers::ERROR_CODE || !value.is_empty())
            .map(|(name, value)| Header::new(name, Some(value.as_bytes()))),
    );
    record
}
