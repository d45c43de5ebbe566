//! Misbehaving Weir stage: memory-hog.
//!
//! Passes records through unchanged, but on a record whose value contains the bytes `hog` it
//! allocates and writes 1 MiB after 1 MiB, keeping all of it, until the allocation fails. The
//! host's memory limit must stop it (the failed allocation aborts, which traps), report it,
//! dead-letter that record and carry on with a fresh instance. No config.

use std::hint::black_box;

use weir_sdk::{Error, Record};

/// The stage: the record unchanged, or all the memory there is.
pub fn pass_or_hog(record: Record) -> Result<Record, Error> {
    if record
        .value()
        .is_some_and(|v| v.windows(3).any(|w| w == b"hog"))
    {
        hog();
    }
    Ok(record)
}

/// Grows without bound; every byte is written so the memory is really used.
fn hog() -> ! {
    const CHUNK: usize = 1 << 20;
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = Vec::with_capacity(CHUNK);
        chunk.resize(CHUNK, 0xA5u8);
        held.push(black_box(chunk));
        black_box(&mut held);
    }
}

weir_sdk::enricher!(pass_or_hog);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing;

    #[test]
    fn passes_other_records() {
        let records = vec![Record::new("h-o-g"), Record::default()];
        assert_eq!(
            testing::run_fn(pass_or_hog, records.clone()),
            records.into_iter().map(|r| Ok(vec![r])).collect::<Vec<_>>()
        );
    }
}
