//! One `add` call for a batch's groups and, when it fails as a whole, the re-run of each group
//! alone behind a per-batch breaker.
//!
//! Owns the answer per group; may not touch the window state or the records' fates (the caller
//! maps answers back to groups and records).

use crate::{Failure, FailureKind, Record};

use super::{Aggregator, GroupOutcome};

/// Groups in a row whose `add`, tried alone after the batch's call failed as a whole, also fails
/// as a whole, after which the batch's remaining groups fail without being run (the breaker
/// trips). It bounds the time a batch can spend when every call traps or times out; the next
/// batch starts with a closed breaker.
pub const BREAKER_FAILURES: usize = 3;

/// Folds `groups` in one call and answers exactly one outcome per group, in order. When that
/// call fails as a whole, each group is tried alone, so that only the groups that fail again
/// lose their records; after [`BREAKER_FAILURES`] of those in a row, the remaining groups fail
/// with the kind of the last failure and a message saying the breaker tripped.
pub(super) fn add_groups<G: Aggregator>(
    aggregator: &mut G,
    groups: &[(Vec<u8>, &[Record])],
) -> Vec<GroupOutcome> {
    if groups.is_empty() {
        return Vec::new();
    }
    let mut answers = match aggregator.add(groups) {
        Ok(answers) => answers,
        // The call failed as a whole (a trap, a timeout).
        Err(failure) if groups.len() == 1 => vec![Err(failure)],
        Err(_) => return each_alone(aggregator, groups),
    };
    // Extra answers are ignored; missing ones fail their groups.
    answers.truncate(groups.len());
    while answers.len() < groups.len() {
        answers.push(Err(Failure::new(
            FailureKind::InvalidOutput,
            "add() answered too few groups",
        )));
    }
    answers
}

/// The re-run: one call per group, until the breaker trips.
fn each_alone<G: Aggregator>(
    aggregator: &mut G,
    groups: &[(Vec<u8>, &[Record])],
) -> Vec<GroupOutcome> {
    let mut answers = Vec::with_capacity(groups.len());
    // Calls in a row that failed as a whole, and the last of their failures.
    let mut in_a_row = 0;
    let mut last: Option<Failure> = None;
    for group in groups {
        if in_a_row >= BREAKER_FAILURES
            && let Some(last) = &last
        {
            answers.push(Err(tripped(last)));
            continue;
        }
        let failure = match aggregator.add(std::slice::from_ref(group)) {
            // An answer for the group, even the stage's error for it: the call worked.
            Ok(mut one) if one.len() == 1 => {
                in_a_row = 0;
                answers.push(one.pop().expect("one result"));
                continue;
            }
            Ok(_) => Failure::new(
                FailureKind::InvalidOutput,
                "add() answered a wrong number of results",
            ),
            Err(failure) => failure,
        };
        // The call failed as a whole.
        in_a_row += 1;
        last = Some(failure.clone());
        answers.push(Err(failure));
    }
    answers
}

/// The failure of a group the breaker kept from running, after `last`.
fn tripped(last: &Failure) -> Failure {
    Failure {
        kind: last.kind,
        code: last.code.clone(),
        message: format!(
            "not run: the breaker tripped after {BREAKER_FAILURES} groups in a row failed as a \
             whole when tried alone in this batch (the last: {})",
            last.message
        ),
    }
}
