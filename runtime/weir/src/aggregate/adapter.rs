//! The wasm aggregate instance behind the [`Aggregator`] seam.
//!
//! Owns the translation between `weir_wasm::AggregateInstance`'s calls (whose `merge` and `emit`
//! tell a failed call from the stage's own error) and the seam's; may not add logic of its own:
//! what the fold does with an answer is `weir_core::aggregate`'s.

use weir_core::aggregate::GroupOutcome;
use weir_core::window::Window;
use weir_core::{Aggregator, CallTrace, Failure, Record};
use weir_wasm::AggregateInstance;

/// An aggregate module's instance on one lane, as the fold sees it.
#[derive(Debug)]
pub(crate) struct WasmAggregator(AggregateInstance);

impl WasmAggregator {
    pub fn new(instance: AggregateInstance) -> Self {
        Self(instance)
    }

    /// The instance, for what the seam does not carry.
    pub fn instance(&mut self) -> &mut AggregateInstance {
        &mut self.0
    }
}

impl Aggregator for WasmAggregator {
    fn set_context(&mut self, context: &CallTrace) {
        self.0.set_context(context);
    }

    fn create(&mut self) -> Result<Vec<u8>, Failure> {
        self.0.create()
    }

    fn add(&mut self, groups: &[(Vec<u8>, &[Record])]) -> Result<Vec<GroupOutcome>, Failure> {
        self.0.add(groups)
    }

    /// A failed call and the stage's error are alike to the fold: the groups that needed the
    /// merge fail.
    fn merge(&mut self, a: &[u8], b: &[u8]) -> Result<Vec<u8>, Failure> {
        self.0.merge(a, b).and_then(|merged| merged)
    }

    fn emit(&mut self, key: &[u8], window: Window, acc: &[u8]) -> Result<Vec<Record>, Failure> {
        self.0
            .emit(key, window.start_ms, window.end_ms, acc)
            .and_then(|outputs| outputs)
    }
}
