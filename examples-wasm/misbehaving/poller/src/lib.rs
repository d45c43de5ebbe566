//! Misbehaving Weir stage: poller.
//!
//! Passes records through unchanged, but on a record whose value contains the bytes `poll` it
//! calls `wasi:io/poll`'s `poll` forever, on two clock pollables: one 5 seconds away
//! (`subscribe-duration`) and one at an instant 10 seconds away (`subscribe-instant`). The
//! guest waits inside the host, where epoch interruption cannot stop it: the host must end the
//! wait at the call's deadline, report a timeout, dead-letter that record and carry on with a
//! fresh instance. No config.

use weir_sdk::{Error, Record};

/// The stage: the record unchanged, or no return at all.
pub fn pass_or_poll(record: Record) -> Result<Record, Error> {
    if record
        .value()
        .is_some_and(|v| v.windows(4).any(|w| w == b"poll"))
    {
        poll_forever();
    }
    Ok(record)
}

#[cfg(target_arch = "wasm32")]
fn poll_forever() -> ! {
    use wasip2::clocks::monotonic_clock;
    // How far away the two pollables are, in nanoseconds.
    const DURATION_NS: u64 = 5_000_000_000;
    const INSTANT_NS: u64 = 10_000_000_000;
    let soon = monotonic_clock::subscribe_duration(DURATION_NS);
    let later = monotonic_clock::subscribe_instant(monotonic_clock::now() + INSTANT_NS);
    loop {
        // Once `soon` is ready every poll returns at once; the loop goes on regardless.
        std::hint::black_box(wasip2::io::poll::poll(&[&soon, &later]));
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn poll_forever() -> ! {
    panic!("WASI polls exist only in a wasm host; natively a record that asks to poll fails");
}

weir_sdk::enricher!(pass_or_poll);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing;

    #[test]
    fn passes_other_records() {
        let records = vec![Record::new("po ll"), Record::default()];
        assert_eq!(
            testing::run_fn(pass_or_poll, records.clone()),
            records.into_iter().map(|r| Ok(vec![r])).collect::<Vec<_>>()
        );
    }
}
