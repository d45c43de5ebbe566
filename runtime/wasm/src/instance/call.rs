//! One instance's store and the limits of each call into it: the limiter, the epoch deadline,
//! the fuel, and what a failed call means for its records.
//!
//! Owns the store's setup and the arming of a call; the store's content (WASI, host imports, log
//! budget, limiter) is `state.rs`'s, and which call to make is the caller's.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Engine, Store, Trap};
use weir_core::{Failure, FailureKind};

use crate::Limits;
use crate::caps::{self, MAX_ERROR_MESSAGE};
use crate::deadline::DeadlineExceeded;
use crate::host::{EPOCH_TICK, WasmHost};
use crate::metrics::GuestMetrics;
use crate::state::{MemoryLimitExceeded, StoreState};

/// A store on `engine` for one instance of `stage`: memories and tables capped together by the
/// limiter, calls by their deadline (and fuel, on the fuel-metering engine). The store is armed
/// for its instantiation (see [`arm`]).
pub(crate) fn new_store(
    host: &WasmHost,
    engine: &Engine,
    stage: &Arc<str>,
    limits: &Limits,
    metrics: &Arc<GuestMetrics>,
) -> Store<StoreState> {
    let memory = usize::try_from(limits.memory).unwrap_or(usize::MAX);
    let watch = host.watchdog().watch(Arc::clone(stage));
    let mut store = Store::new(
        engine,
        StoreState::new(Arc::clone(stage), memory, Arc::clone(metrics), watch),
    );
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_trap();
    arm(&mut store, limits);
    store
}

/// Starts a call on `store` within `limits`: the epoch deadline stops guest code at the time
/// limit, the store's deadline ends host waits, the watchdog looks on, and the fuel (if the
/// stage has any) is filled to its budget. Every call ends with [`StoreState::end_call`].
pub(crate) fn arm(store: &mut Store<StoreState>, limits: &Limits) {
    store.set_epoch_deadline(deadline_ticks(limits.timeout));
    if let Some(fuel) = limits.fuel {
        // Only stores of the fuel-metering engine are given `limits.fuel` (see `ModuleCore`),
        // and on those setting fuel cannot fail.
        store
            .set_fuel(fuel)
            .expect("a stage with fuel runs on the fuel-metering engine");
    }
    store.data_mut().begin_call(limits.timeout);
}

/// Epoch ticks of a call's time budget.
pub(crate) fn deadline_ticks(timeout: Duration) -> u64 {
    let tick = EPOCH_TICK.as_micros().max(1);
    // One tick more than the budget: the clock may tick right after the deadline is set.
    u64::try_from(timeout.as_micros().div_ceil(tick))
        .unwrap_or(u64::MAX / 2)
        .saturating_add(1)
}

/// What a failed call means for its records: a memory overrun, a timeout (in guest code, in a
/// WASI wait, or out of fuel), or a trap, whose message (it may quote the guest) is cut to its
/// cap.
pub(crate) fn classify(error: &wasmtime::Error, panic: Option<String>, limits: &Limits) -> Failure {
    if let Some(m) = error.downcast_ref::<MemoryLimitExceeded>() {
        return Failure::new(FailureKind::Memory, m.to_string());
    }
    let trap = error.downcast_ref::<Trap>();
    if matches!(trap, Some(Trap::OutOfFuel)) {
        return Failure::new(
            FailureKind::Timeout,
            format!(
                "the stage call ran out of fuel: it used up its `limits.fuel` of {} units",
                limits.fuel.unwrap_or_default()
            ),
        );
    }
    let waited = error.downcast_ref::<DeadlineExceeded>().is_some();
    if waited || matches!(trap, Some(Trap::Interrupt)) {
        let mut message = format!(
            "the stage call exceeded its time limit of {}",
            humantime_ms(limits.timeout)
        );
        if waited {
            message.push_str(" while waiting in a WASI sleep or poll");
        }
        return Failure::new(FailureKind::Timeout, message);
    }
    let trap = match trap {
        Some(t) => t.to_string(),
        None => format!("{error:#}"),
    };
    let mut message = match panic {
        Some(p) => format!("guest panicked: {p} ({trap})"),
        None => trap,
    };
    caps::truncate(&mut message, MAX_ERROR_MESSAGE);
    Failure::new(FailureKind::Trap, message)
}

fn humantime_ms(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
