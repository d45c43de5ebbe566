//! Guest metrics: the counters and histograms a stage's module reports through the host
//! import, and the log lines and fields the host dropped from its calls, encoded at scrape time.
//!
//! It owns the [`GuestSource`] trait, the list of running modules' sources and the collector
//! that encodes them. The collector is registered, after every other family, in the parent
//! module; counting the values is the wasm host's business.

use std::sync::Arc;

use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;

use super::{Metrics, StageLabels};

/// Custom metrics reported by a stage's module through the host import.
pub trait GuestSource: Send + Sync + std::fmt::Debug + 'static {
    /// Counter values by name.
    fn counters(&self) -> Vec<(String, u64)>;
    /// Histograms by name: sum, count and per-bucket counts (not cumulative) for the upper
    /// bounds of [`GuestSource::bounds`].
    fn histograms(&self) -> Vec<(String, f64, u64, Vec<u64>)>;
    /// Upper bounds of the histogram buckets, the last one being `+Inf`.
    fn bounds(&self) -> &[f64];
    /// Log lines and log fields the host dropped from the module's calls for going over its
    /// caps.
    fn logs_dropped(&self) -> (u64, u64) {
        (0, 0)
    }
}

#[derive(Debug)]
pub(super) struct GuestEntry {
    stage: StageLabels,
    source: Arc<dyn GuestSource>,
}

/// Encodes every stage's guest metrics at scrape time as `weir_guest_<name>`, one family per
/// name, labelled with the stage.
#[derive(Debug)]
pub(super) struct GuestCollector {
    pub(super) guests: Arc<RwLock<Vec<GuestEntry>>>,
}

impl Collector for GuestCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::collections::BTreeMap;
        let guests = self.guests.read();
        type Hist<'a> = (&'a StageLabels, f64, u64, Vec<(f64, u64)>);
        let mut counters: BTreeMap<String, Vec<(&StageLabels, u64)>> = BTreeMap::new();
        let mut histograms: BTreeMap<String, Vec<Hist<'_>>> = BTreeMap::new();
        for g in guests.iter() {
            for (name, v) in g.source.counters() {
                counters.entry(name).or_default().push((&g.stage, v));
            }
            let bounds = g.source.bounds();
            for (name, sum, count, buckets) in g.source.histograms() {
                let buckets = bounds.iter().copied().zip(buckets).collect();
                histograms
                    .entry(name)
                    .or_default()
                    .push((&g.stage, sum, count, buckets));
            }
        }
        for (name, help, pick) in [
            (
                "weir_stage_log_lines_dropped",
                "Log lines of a stage's calls the host dropped for going over its caps",
                0,
            ),
            (
                "weir_stage_log_fields_dropped",
                "Log fields of a stage's calls the host dropped for going over its caps",
                1,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for g in guests.iter() {
                let (lines, fields) = g.source.logs_dropped();
                let c: Counter<u64> = Counter::default();
                c.inc_by(if pick == 0 { lines } else { fields });
                c.encode(family.encode_family(&g.stage)?)?;
            }
        }
        for (name, series) in &counters {
            let name = format!("weir_guest_{name}");
            let mut family = encoder.encode_descriptor(
                &name,
                "Counter reported by the stage's module",
                None,
                MetricType::Counter,
            )?;
            for (labels, v) in series {
                let c: Counter<u64> = Counter::default();
                c.inc_by(*v);
                c.encode(family.encode_family(*labels)?)?;
            }
        }
        for (name, series) in &histograms {
            let name = format!("weir_guest_{name}");
            let mut family = encoder.encode_descriptor(
                &name,
                "Histogram reported by the stage's module",
                None,
                MetricType::Histogram,
            )?;
            for (labels, sum, count, buckets) in series {
                family
                    .encode_family(*labels)?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        *sum, *count, buckets, None,
                    )?;
            }
        }
        Ok(())
    }
}

impl Metrics {
    /// Exports the custom metrics the stages' modules report, labelled with their stage,
    /// replacing those of modules no longer running.
    pub fn set_guests(&self, guests: Vec<(StageLabels, Arc<dyn GuestSource>)>) {
        *self.guests.write() = guests
            .into_iter()
            .map(|(stage, source)| GuestEntry { stage, source })
            .collect();
    }
}
