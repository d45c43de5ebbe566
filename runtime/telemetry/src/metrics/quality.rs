//! Data-quality metrics: what a stage's schema gates let through and refuse (by the JSON Schema
//! keyword of the first violation, never a value), the records a stage filtered out, and the
//! conservation check: a stage's records that are neither accounted for by an outcome nor in
//! flight.
//!
//! It owns these families and their label sets; [`Metrics`] holds them as one field and
//! [`super::StageMetrics`] resolves the per-lane handles.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::stage::{RecordLabels, StageLabels};
use super::{Counters, Gauges, Metrics, counter, gauge};

/// A stage's labels, which gate (`input` or `output`) and what it found (`valid`, `invalid`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct GateLabels {
    #[prometheus(flatten)]
    stage: StageLabels,
    gate: &'static str,
    result: &'static str,
}

/// A stage's labels, which gate, and the keyword of a record's first violation.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ViolationLabels {
    #[prometheus(flatten)]
    stage: StageLabels,
    gate: &'static str,
    keyword: Arc<str>,
}

/// A stage on one lane, without its module version: the conservation gauge outlives a swap.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct LaneStageLabels {
    pipeline: Arc<str>,
    stage: Arc<str>,
    topic: Arc<str>,
    partition: i32,
}

/// Keywords are JSON Schema's own, a bounded set; one a schema's vocabulary adds beyond this
/// length is counted as `other` so that no label grows without bound.
const MAX_KEYWORD: usize = 32;

/// The data-quality families.
#[derive(Debug)]
pub(super) struct QualityFamilies {
    gate: Counters<GateLabels>,
    violations: Counters<ViolationLabels>,
    filtered: Counters<RecordLabels>,
    unexplained: Gauges<LaneStageLabels>,
}

impl QualityFamilies {
    pub(super) fn register(r: &mut Registry) -> Self {
        Self {
            gate: counter(
                r,
                "weir_gate_records",
                "Records a stage's schema gate checked, by gate (input, output) and result \
                 (valid, invalid)",
            ),
            violations: counter(
                r,
                "weir_gate_violations",
                "Records a schema gate refused, by the JSON Schema keyword of the first \
                 violation (json: the value is not JSON)",
            ),
            filtered: counter(
                r,
                "weir_records_filtered",
                "Records a stage answered with no output",
            ),
            unexplained: gauge(
                r,
                "weir_records_unexplained",
                "Records that entered a stage on a lane and are neither an output's input, \
                 filtered nor dead-lettered once their batch is delivered (0 unless one is lost)",
            ),
        }
    }
}

/// The per-lane handles of one stage's quality metrics.
#[derive(Debug, Clone)]
pub struct QualityHandles {
    pub filtered: Counter,
    pub unexplained: Gauge,
}

impl Metrics {
    pub(super) fn quality_handles(&self, labels: &RecordLabels) -> QualityHandles {
        let q = &self.quality;
        QualityHandles {
            filtered: q.filtered.get_or_create_owned(labels),
            unexplained: q.unexplained.get_or_create_owned(&LaneStageLabels {
                pipeline: Arc::clone(&labels.stage.pipeline),
                stage: Arc::clone(&labels.stage.stage),
                topic: Arc::clone(&labels.topic),
                partition: labels.partition,
            }),
        }
    }

    /// Stage `stage`'s `gate` found `valid` records valid, and refused one record for each of
    /// `invalid`'s keywords.
    pub fn gate_checked(
        &self,
        stage: &StageLabels,
        gate: &'static str,
        valid: u64,
        invalid: &[&str],
    ) {
        let q = &self.quality;
        let labels = |result| GateLabels {
            stage: stage.clone(),
            gate,
            result,
        };
        if valid > 0 {
            q.gate.get_or_create(&labels("valid")).inc_by(valid);
        }
        if invalid.is_empty() {
            return;
        }
        q.gate
            .get_or_create(&labels("invalid"))
            .inc_by(invalid.len() as u64);
        for keyword in invalid {
            let keyword: Arc<str> = if keyword.len() <= MAX_KEYWORD {
                (*keyword).into()
            } else {
                "other".into()
            };
            q.violations
                .get_or_create(&ViolationLabels {
                    stage: stage.clone(),
                    gate,
                    keyword,
                })
                .inc();
        }
    }
}
