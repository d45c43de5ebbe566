//! Misbehaving Weir stage: endless-loop.
//!
//! Passes records through unchanged, but never returns from a record whose value contains the
//! bytes `loop`: it spins in a loop the optimiser cannot remove. The host's per-batch time limit
//! (epoch interruption) must stop it, report a timeout, dead-letter that record and carry on with
//! a fresh instance. No config.

use std::hint::black_box;

use weir_sdk::{Error, Record};

/// The stage: the record unchanged, or no return at all.
pub fn pass_or_spin(record: Record) -> Result<Record, Error> {
    if record
        .value()
        .is_some_and(|v| v.windows(4).any(|w| w == b"loop"))
    {
        spin();
    }
    Ok(record)
}

/// Counts forever; `black_box` keeps the loop (and its epoch checks) in the code.
fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = black_box(n.wrapping_add(1));
    }
}

weir_sdk::enricher!(pass_or_spin);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing;

    #[test]
    fn passes_other_records() {
        let records = vec![Record::new("lo op"), Record::default()];
        assert_eq!(
            testing::run_fn(pass_or_spin, records.clone()),
            records.into_iter().map(|r| Ok(vec![r])).collect::<Vec<_>>()
        );
    }
}
