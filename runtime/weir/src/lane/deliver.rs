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
use crate::chain::{Emit, Partitioning, StageInfo, StageRef};
use crate::error::LaneError;
use crate::shared::Stats;

/// Where a lane's records go: the sink, the dead-letter destination, and the counters.
pub(super) struct Outlet {
    pub sink: Arc<dyn Sink>,
    pub tp: TopicPartition,
    pub pipeline: Arc<str>,
    pub dead_letter: Arc<str>,
    pub stats: Arc<Stats>,
    /// The lane's stop flag: a sink that stays unavailable is retried until it is set.
    pub stop: Arc<AtomicBool>,
    pub backoff: weir_core::Backoff,
}

/// One record to write, and what it is.
struct Item {
    record: Record,
    destination: Arc<str>,
    partition: Option<i32>,
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
        emits: Vec<Vec<Emit>>,
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
                            destination: output_of(info),
                            partition: self.partition_for(info),
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
                    destination: output_of(info),
                    partition: self.partition_for(info),
                    input: 0,
                    kind: Kind::WindowResult,
                },
                WindowRecord::Letter(letter) => Item {
                    record: letter,
                    destination: Arc::clone(&self.dead_letter),
                    partition: None,
                    input: 0,
                    kind: Kind::Letter,
                },
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
        dead_letter_record(&self.pipeline, info, &self.tp, record, failure)
    }

    /// A dead letter of input `input`, on its way to the dead-letter destination.
    fn letter_item(&self, input: usize, letter: Record) -> Item {
        Item {
            record: letter,
            destination: Arc::clone(&self.dead_letter),
            partition: None,
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
            let outputs: Vec<Output<'_>> = items
                .iter()
                .map(|item| Output {
                    destination: &item.destination,
                    partition: item.partition,
                    record: &item.record,
                    source_topic: &self.tp.topic,
                    source_partition: self.tp.partition,
                    ack: &inputs.acks[item.input],
                })
                .collect();
            let stopping = || self.stop.load(Ordering::Acquire);
            let refused =
                weir_core::sink::write_all(&*self.sink, &outputs, self.backoff, &stopping)
                    .map_err(|source| self.sink_error(source))?;
            drop(outputs);
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
                // The sink will not take this output (too large, say): the input is
                // dead-lettered instead.
                let failure = Failure::new(
                    FailureKind::InvalidOutput,
                    format!("the producer refused an output: {why}"),
                );
                let trace = &inputs.traces[item.input];
                let mut letter = inputs.records[item.input].clone();
                trace.stamp(&mut letter, &span);
                let letter = self.letter_record(stage, letter, &failure, trace, &span, stages);
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

    /// The partition of the stage's output topic a result goes to.
    fn partition_for(&self, info: &StageInfo) -> Option<i32> {
        match info.partitioning {
            Partitioning::Source => Some(self.tp.partition),
            Partitioning::Key => None,
        }
    }
}

/// The topic a published stage writes to.
fn output_of(info: &StageInfo) -> Arc<str> {
    Arc::clone(
        info.output
            .as_ref()
            .expect("stages whose results are delivered have an output"),
    )
}
