//! Delivery: a batch's outputs and dead letters, and closed windows' results, written to the
//! sink through the [`weir_core::Sink`] seam.
//!
//! Every write goes through [`weir_core::sink::write_all`], so a sink that is unavailable is
//! retried (backpressure) rather than losing records. What the sink refuses outright goes one
//! step down, in a further round: an output becomes a dead letter of its input (kind
//! `invalid-output`), a dead letter becomes a truncated one (provenance only), and a truncated
//! letter that is refused too stops the lane, since its record can be neither delivered nor
//! dead-lettered. Acknowledgements are settled only after every round, so an input's offset is
//! committable only once all it caused is durable.
//!
//! Owns: the [`Outlet`] and the dead-letter log line and counters. Touches neither the chain
//! nor the offsets' bookkeeping (that is [`weir_core::PartitionTracker`]'s).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use weir_core::trace::{self, SpanId};
use weir_core::{Failure, FailureKind, InputAck, Output, Record, Refused, Sink, SinkError};
use weir_kafka::TopicPartition;

use super::Stages;
use super::letters::{dead_letter_record, truncated_letter};
use super::spans::RecordTrace;
use crate::chain::{Emit, Emits, Partitioning, StageInfo, StageRef};
use crate::error::LaneError;
use crate::shared::Stats;

/// Where a lane's records go: the sink, the dead-letter destination, and the counters.
pub(super) struct Outlet {
    pub sink: Arc<dyn Sink>,
    /// The pipeline's stores, which stage results may go to instead of `sink`.
    pub stores: crate::shared::Stores,
    pub tp: TopicPartition,
    pub pipeline: Arc<str>,
    /// The dead-letter topic, or the store dead letters go to.
    pub dead_letter: Arc<str>,
    /// The store dead letters go to, by index into `stores`; `None` for the Kafka sink.
    pub dead_letter_store: Option<usize>,
    pub stats: Arc<Stats>,
    /// With `[dead_letter] redact = true`, what dead letters are redacted by.
    pub redact_letters: Option<Arc<weir_core::Redactor>>,
    /// The lane's stop flag: a sink that stays unavailable is retried until it is set.
    pub stop: Arc<AtomicBool>,
    pub backoff: weir_core::Backoff,
}

/// One record to write, and what it is.
struct Item {
    record: Record,
    destination: Arc<str>,
    partition: Option<i32>,
    /// The store it goes to, by index into the outlet's stores; `None` for the Kafka sink.
    store: Option<usize>,
    /// Index of the acknowledgement it settles (and of the input it came from, in a batch).
    input: usize,
    kind: Kind,
}

enum Kind {
    /// A stage's output for an input of the batch.
    Output { stage: StageRef, span: SpanId },
    /// A closed window's result.
    WindowResult,
    /// A dead letter.
    Letter,
    /// A dead letter refused in full, sent with its provenance only.
    Truncated { first: Refused },
}

/// A closed window's record: one of its results, or (when its `emit` failed) its dead letter.
pub(super) enum WindowRecord {
    Output(Record),
    Letter(Record),
}

/// What the outlet needs to know of the inputs it writes for.
struct Inputs<'a> {
    records: &'a [Record],
    traces: &'a [RecordTrace],
    acks: &'a [Arc<InputAck>],
}

impl Outlet {
    /// Writes what a batch's inputs became: `emits[i]` and `traces[i]` belong to `inputs[i]`,
    /// whose acknowledgement is `acks[i]`. Settles every acknowledgement once all is written.
    /// An error means a record could be neither delivered nor dead-lettered: the lane must
    /// stop, and the acknowledgements stay unsettled so no offset from there on is committed.
    pub fn deliver(
        &self,
        inputs: &[Record],
        emits: Vec<Emits>,
        traces: &[RecordTrace],
        acks: &[Arc<InputAck>],
        stages: &Stages<'_>,
    ) -> Result<(), LaneError> {
        let mut items = Vec::with_capacity(emits.len());
        for (input, emits) in emits.into_iter().enumerate() {
            let trace = &traces[input];
            for emit in emits {
                match emit {
                    Emit::Output {
                        stage,
                        mut record,
                        span,
                    } => {
                        trace.stamp(&mut record, &span);
                        let info = stages.info(stage);
                        items.push(Item {
                            record,
                            destination: self.output_of(info),
                            partition: self.partition_for(info),
                            store: self.store_of(info),
                            input,
                            kind: Kind::Output { stage, span },
                        });
                    }
                    Emit::DeadLetter {
                        stage,
                        mut record,
                        failure,
                        span,
                    } => {
                        trace.stamp(&mut record, &span);
                        let letter =
                            self.letter_record(stage, record, &failure, trace, &span, stages);
                        items.push(self.letter_item(input, letter));
                    }
                }
            }
        }
        let inputs = Inputs {
            records: inputs,
            traces,
            acks,
        };
        self.write(items, &inputs, stages)?;
        for ack in acks {
            ack.settle();
        }
        Ok(())
    }

    /// Writes the results of closed windows, each a record of `info`'s output or (when its
    /// `emit` failed) a dead letter, under the window's acknowledgement `ack`. Every record was
    /// stamped with its window's trace already.
    pub fn publish_windows(
        &self,
        results: Vec<WindowRecord>,
        ack: &Arc<InputAck>,
        stages: &Stages<'_>,
    ) -> Result<(), LaneError> {
        let info = stages.info(StageRef::Aggregate);
        let items = results
            .into_iter()
            .map(|result| match result {
                WindowRecord::Output(record) => Item {
                    record,
                    destination: self.output_of(info),
                    partition: self.partition_for(info),
                    store: self.store_of(info),
                    input: 0,
                    kind: Kind::WindowResult,
                },
                WindowRecord::Letter(letter) => self.letter_item(0, letter),
            })
            .collect();
        let inputs = Inputs {
            records: &[],
            traces: &[],
            acks: std::slice::from_ref(ack),
        };
        self.write(items, &inputs, stages)
    }

    /// A failed record's dead letter, logged and counted against its stage.
    pub fn letter_record(
        &self,
        stage: StageRef,
        record: Record,
        failure: &Failure,
        trace: &RecordTrace,
        span: &SpanId,
        stages: &Stages<'_>,
    ) -> Record {
        let info = stages.info(stage);
        tracing::warn!(
            stage = &*info.name,
            partition = self.tp.partition,
            offset = record.offset,
            trace_id = %trace::hex(&trace.trace_id),
            span_id = %trace::hex(span),
            kind = failure.kind.as_str(),
            error = %failure.message,
            "Record dead-lettered."
        );
        if let Some(m) = stages.metrics(stage) {
            let wasm = matches!(
                failure.kind,
                FailureKind::Trap | FailureKind::Timeout | FailureKind::Memory | FailureKind::Limit
            );
            m.failed(failure.kind.as_str(), wasm);
        }
        let mut letter = dead_letter_record(&self.pipeline, info, &self.tp, record, failure);
        if let Some(privacy) = &self.redact_letters {
            privacy.redact_record(&mut letter);
        }
        letter
    }

    /// A dead letter of input `input`, on its way to the dead-letter destination.
    fn letter_item(&self, input: usize, letter: Record) -> Item {
        Item {
            record: letter,
            destination: Arc::clone(&self.dead_letter),
            partition: None,
            store: self.dead_letter_store,
            input,
            kind: Kind::Letter,
        }
    }

    /// Writes `items` in rounds: each round's refusals become the next round's items.
    fn write(
        &self,
        mut items: Vec<Item>,
        inputs: &Inputs<'_>,
        stages: &Stages<'_>,
    ) -> Result<(), LaneError> {
        while !items.is_empty() {
            let mut refused: Vec<(usize, Refused)> = Vec::new();
            for store in std::iter::once(None).chain((0..self.stores.len()).map(Some)) {
                let chosen: Vec<usize> = (0..items.len())
                    .filter(|&i| items[i].store == store)
                    .collect();
                if chosen.is_empty() {
                    continue;
                }
                let outputs: Vec<Output<'_>> = chosen
                    .iter()
                    .map(|&i| {
                        let item = &items[i];
                        Output {
                            destination: &item.destination,
                            partition: item.partition,
                            record: &item.record,
                            source_topic: &self.tp.topic,
                            source_partition: self.tp.partition,
                            ack: &inputs.acks[item.input],
                        }
                    })
                    .collect();
                let sink = match store {
                    None => &*self.sink,
                    Some(s) => &*self.stores[s].1,
                };
                let stopping = || self.stop.load(Ordering::Acquire);
                let got = weir_core::sink::write_all(sink, &outputs, self.backoff, &stopping)
                    .map_err(|source| self.sink_error(source))?;
                refused.extend(got.into_iter().map(|(j, why)| (chosen[j], why)));
            }
            refused.sort_by_key(|(i, _)| *i);
            let mut refused = refused.into_iter().peekable();
            let mut next = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                match refused.next_if(|(at, _)| *at == i) {
                    Some((_, why)) => next.push(self.refused(item, why, inputs, stages)?),
                    None => self.count(&item.kind),
                }
            }
            items = next;
        }
        Ok(())
    }

    fn count(&self, kind: &Kind) {
        let counter = match kind {
            Kind::Output { .. } | Kind::WindowResult => &self.stats.records_out,
            Kind::Letter | Kind::Truncated { .. } => &self.stats.dead_letters,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// What a refused item becomes, one step down.
    fn refused(
        &self,
        item: Item,
        why: Refused,
        inputs: &Inputs<'_>,
        stages: &Stages<'_>,
    ) -> Result<Item, LaneError> {
        match item.kind {
            Kind::Output { stage, span } => {
                // The sink will not take this output (too large for the producer, not of the
                // store's schema): the input is dead-lettered instead.
                let failure = match item.store {
                    Some(_) => Failure {
                        code: why.code.clone().unwrap_or_default(),
                        ..Failure::new(FailureKind::SinkRejected, why.reason.clone())
                    },
                    None => Failure::new(
                        FailureKind::InvalidOutput,
                        format!("the producer refused an output: {why}"),
                    ),
                };
                let trace = &inputs.traces[item.input];
                let mut letter = inputs.records[item.input].clone();
                trace.stamp(&mut letter, &span);
                let mut letter = self.letter_record(stage, letter, &failure, trace, &span, stages);
                if let Some(field) = &why.field {
                    letter
                        .headers
                        .push(weir_core::headers::ERROR_FIELD, Some(field.as_bytes()));
                }
                Ok(self.letter_item(item.input, letter))
            }
            Kind::WindowResult => Err(LaneError::WindowResult {
                partition: self.tp.clone(),
                refused: why,
            }),
            Kind::Letter => {
                // Too large for the sink (the usual reason it refuses at once): the letter goes
                // without its key and value, saying how large they were, so its provenance is
                // kept and the partition moves on instead of stopping on the same record at
                // every start.
                tracing::warn!(
                    partition = self.tp.partition,
                    offset = item.record.offset,
                    error = %why,
                    "Dead letter refused by the producer; sent without its key and value."
                );
                Ok(Item {
                    record: truncated_letter(item.record),
                    kind: Kind::Truncated { first: why },
                    ..item
                })
            }
            Kind::Truncated { first } => Err(LaneError::DeadLetter {
                partition: self.tp.clone(),
                offset: item.record.offset,
                first: Box::new(first),
                refused: Box::new(why),
            }),
        }
    }

    fn sink_error(&self, source: SinkError) -> LaneError {
        LaneError::Sink {
            partition: self.tp.clone(),
            source,
        }
    }

    /// Completes what the stores hold of this lane's partition, so its offsets can be committed
    /// as the lane stops.
    pub fn release(&self, timeout: std::time::Duration) {
        for (name, store) in self.stores.iter() {
            if let Err(error) = store.release(&self.tp.topic, self.tp.partition, timeout) {
                tracing::warn!(
                    sink = &**name,
                    partition = %self.tp,
                    %error,
                    "Store not complete as the lane stops; the next owner re-reads from the last \
                     commit."
                );
            }
        }
    }

    /// The index of the store a stage's results go to, if they go to one.
    fn store_of(&self, info: &StageInfo) -> Option<usize> {
        let name = info.store.as_deref()?;
        self.stores.iter().position(|(n, _)| &**n == name)
    }

    /// The destination a published stage's results are written under: its output topic, or
    /// the name of its store.
    fn output_of(&self, info: &StageInfo) -> Arc<str> {
        let destination = info.output.as_ref().or(info.store.as_ref());
        Arc::clone(destination.expect("stages whose results are delivered have an output"))
    }

    /// The partition of the stage's output topic a result goes to.
    fn partition_for(&self, info: &StageInfo) -> Option<i32> {
        match info.partitioning {
            Partitioning::Source => Some(self.tp.partition),
            Partitioning::Key => None,
        }
    }
}
