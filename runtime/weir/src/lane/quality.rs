//! A lane's data-quality accounting and its tap: the conservation check of each enrich stage,
//! and the batch's records offered to attached `weir tap` clients.
//!
//! Owns: [`Accounts`] and [`offer_taps`]. Reads the chain's [`Run`] counts and taps and the
//! records' traces; writes the conservation gauges and the tap hub, nothing else.

use weir_kafka::TopicPartition;

use super::Stages;
use super::spans::RecordTrace;
use crate::chain::{Emit, Emits, StageCount, StageRef, TapEvent, TapStep};
use crate::tap::{EventKind, TapHub, Tapped};

/// Per enrich stage of a lane, since the lane started: the records that entered it, and those
/// accounted for by an outcome (outputs, filtered, dead-lettered).
#[derive(Debug, Default)]
pub(super) struct Accounts {
    entered: Vec<u64>,
    explained: Vec<u64>,
}

impl Accounts {
    /// Counts a batch's pass through the chain: `counts` per stage, and the dead letters among
    /// `emits` as they go to delivery.
    pub fn ran(&mut self, counts: &[StageCount], emits: &[Emits]) {
        let n = counts.len();
        self.entered.resize(n, 0);
        self.explained.resize(n, 0);
        for (i, c) in counts.iter().enumerate() {
            self.entered[i] += c.entered;
            self.explained[i] += c.passed + c.filtered;
        }
        for emit in emits.iter().flatten() {
            if let Emit::DeadLetter {
                stage: StageRef::Enrich(i),
                ..
            } = emit
                && let Some(explained) = self.explained.get_mut(*i)
            {
                *explained += 1;
            }
        }
    }

    /// Records that entered each stage and are unexplained, once their batch is delivered.
    pub fn publish(&self, stages: &Stages<'_>) {
        for (i, (entered, explained)) in self.entered.iter().zip(&self.explained).enumerate() {
            if let Some(m) = stages.metrics(StageRef::Enrich(i)) {
                let unexplained = i64::try_from(entered.abs_diff(*explained)).unwrap_or(i64::MAX);
                m.quality.unexplained.set(unexplained);
            }
        }
    }
}

/// Offers a batch's tapped records to the tap clients.
pub(super) fn offer_taps(
    hub: &TapHub,
    taps: &[TapStep],
    traces: &[RecordTrace],
    tp: &TopicPartition,
    stages: &Stages<'_>,
) {
    let tapped: Vec<Tapped<'_>> = taps
        .iter()
        .map(|step| {
            let stage = StageRef::Enrich(step.stage);
            let info = stages.info(stage);
            let (event, failure) = match &step.event {
                TapEvent::In => (EventKind::In, None),
                TapEvent::Out => (EventKind::Out, None),
                TapEvent::Dead(failure) => (EventKind::Dead, Some(failure)),
            };
            Tapped {
                event,
                stage: &info.name,
                module_version: &info.module_sha256,
                cohort: stages.cohort(stage),
                topic: &tp.topic,
                partition: tp.partition,
                trace_id: &traces[step.origin].trace_id,
                span_id: &step.span,
                record: &step.record,
                failure,
            }
        })
        .collect();
    hub.offer(&tapped);
}
