use super::*;
use weir_core::{FailureKind, Outputs, StageOutcome};

/// Doubles records, fails those whose value is "bad".
struct Double;
impl Stage for Double {
    fn process(&mut self, _: &str, _: i32, records: &[Record]) -> Vec<StageOutcome> {
        records
            .iter()
            .map(|r| {
                if r.value.as_deref() == Some(b"bad") {
                    return Err(Failure::new(FailureKind::Trap, "boom"));
                }
                let mut a = r.clone();
                a.timestamp = None;
                let mut b = r.clone();
                b.timestamp = Some(7);
                Ok(vec![a, b].into())
            })
            .collect()
    }
}

/// Drops records whose value is "drop".
struct DropSome;
impl Stage for DropSome {
    fn process(&mut self, _: &str, _: i32, records: &[Record]) -> Vec<StageOutcome> {
        records
            .iter()
            .map(|r| {
                Ok(if r.value.as_deref() == Some(b"drop") {
                    Outputs::none()
                } else {
                    Outputs::Input
                })
            })
            .collect()
    }
}

fn info(name: &str, output: Option<&str>) -> StageInfo {
    StageInfo {
        name: name.into(),
        module_sha256: "00".into(),
        output: output.map(Into::into),
        store: None,
        partitioning: Partitioning::Source,
        gates: None,
    }
}

fn rec(offset: i64, value: &str) -> Record {
    Record {
        offset,
        timestamp: Some(1000 + offset),
        value: Some(weir_core::Bytes::copy_from_slice(value.as_bytes())),
        ..Record::default()
    }
}

#[test]
fn emits_follow_their_origin_through_the_chain() {
    let infos: Arc<[StageInfo]> =
        vec![info("double", Some("mid")), info("drop", Some("out"))].into();
    let mut chain = Chain::new(infos, vec![Box::new(Double), Box::new(DropSome)], false);
    let batch = [rec(10, "a"), rec(11, "bad"), rec(12, "drop")];
    let emits = chain.run("t", 0, &batch).emits;
    assert_eq!(emits.len(), 3);

    // "a": two intermediate outputs, two final outputs, offsets and timestamps filled in.
    let stages: Vec<_> = emits[0]
        .iter()
        .map(|e| match e {
            Emit::Output { stage, record, .. } => (*stage, record.offset, record.timestamp),
            Emit::DeadLetter { .. } => panic!("unexpected dead letter"),
        })
        .collect();
    assert_eq!(
        stages,
        [
            (StageRef::Enrich(0), 10, Some(1010)),
            (StageRef::Enrich(0), 10, Some(7)),
            (StageRef::Enrich(1), 10, Some(1010)),
            (StageRef::Enrich(1), 10, Some(7))
        ]
    );

    // "bad": dead-lettered by the first stage with the record as it entered.
    match &emits[1][..] {
        [
            Emit::DeadLetter {
                stage: StageRef::Enrich(0),
                record,
                failure,
                ..
            },
        ] => {
            assert_eq!(record, &batch[1]);
            assert_eq!(failure.kind, FailureKind::Trap);
        }
        other => panic!("unexpected {other:?}"),
    }

    // "drop": published by stage 0, filtered out by stage 1.
    assert!(emits[2].iter().all(|e| matches!(
        e,
        Emit::Output {
            stage: StageRef::Enrich(0),
            ..
        }
    )));
    assert_eq!(emits[2].len(), 2);
}

#[test]
fn counts_and_taps_account_for_every_record_that_entered_a_stage() {
    let infos: Arc<[StageInfo]> =
        vec![info("double", Some("mid")), info("drop", Some("out"))].into();
    let mut chain = Chain::new(infos, vec![Box::new(Double), Box::new(DropSome)], false);
    let batch = [rec(10, "a"), rec(11, "bad"), rec(12, "drop")];
    let run = chain.run("t", 0, &batch);
    assert!(run.taps.is_empty(), "no taps unless asked for");
    // Stage 0: 3 in, "bad" failed, 2 passed (4 outputs). Stage 1: 4 in, 2 "drop" filtered.
    let c = |entered, passed, filtered| StageCount {
        entered,
        passed,
        filtered,
    };
    assert_eq!(run.counts, [c(3, 2, 0), c(4, 2, 2)]);

    chain.set_tap(true);
    let run = chain.run("t", 0, &batch);
    let seen = |stage: usize, kind: &str| {
        run.taps
            .iter()
            .filter(|t| t.stage == stage)
            .filter(|t| match (&t.event, kind) {
                (TapEvent::In, "in") | (TapEvent::Out, "out") => true,
                (TapEvent::Dead(f), "dead") => f.message == "boom",
                _ => false,
            })
            .count()
    };
    assert_eq!((seen(0, "in"), seen(0, "out"), seen(0, "dead")), (3, 4, 1));
    assert_eq!((seen(1, "in"), seen(1, "out"), seen(1, "dead")), (4, 2, 0));
    let dead = run
        .taps
        .iter()
        .find(|t| matches!(t.event, TapEvent::Dead(_)));
    assert_eq!(dead.map(|t| (t.origin, t.record.offset)), Some((1, 11)));
}

#[test]
fn intermediate_results_are_published_only_with_an_output_or_in_test_mode() {
    let infos: Arc<[StageInfo]> = vec![info("double", None), info("drop", Some("out"))].into();
    let mut chain = Chain::new(
        Arc::clone(&infos),
        vec![Box::new(Double), Box::new(DropSome)],
        false,
    );
    let emits = chain.run("t", 0, &[rec(0, "a")]).emits;
    assert!(emits[0].iter().all(|e| matches!(
        e,
        Emit::Output {
            stage: StageRef::Enrich(1),
            ..
        }
    )));

    let mut chain = Chain::new(infos, vec![Box::new(Double), Box::new(DropSome)], true);
    let emits = chain.run("t", 0, &[rec(0, "a")]).emits;
    assert_eq!(
        emits[0]
            .iter()
            .filter(|e| matches!(
                e,
                Emit::Output {
                    stage: StageRef::Enrich(0),
                    ..
                }
            ))
            .count(),
        2
    );
}
