//! A fleet: several `weir run` processes in one consumer group.

mod cut;
mod scale;

use std::collections::BTreeSet;
use std::time::Duration;

use crate::harness::{
    Rec, Weir, consume, create_topic, module, one_stage_pipeline, produce, source_table, unique,
    wait_for_value, weir_cli_code, write_pipeline,
};

/// The partitions named by the last "Partitions assigned." line of `weir`'s log, if any.
fn last_assignment(weir: &Weir) -> Option<BTreeSet<String>> {
    let log = weir.log.lock().unwrap();
    let line = log
        .iter()
        .rev()
        .find(|l| l.contains("Partitions assigned"))?;
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    Some(
        v["partitions"]
            .as_str()?
            .split(',')
            .map(str::to_owned)
            .collect(),
    )
}

/// The partitions `weir` owns now, from its log: every "Partitions assigned." line adds its
/// partitions, every "Partitions revoked" line takes its partitions away. With the cooperative
/// protocol each line names only what changed.
pub(super) fn owned(weir: &Weir) -> BTreeSet<String> {
    let mut owned = BTreeSet::new();
    for (assigned, parts) in partition_events(weir) {
        if assigned {
            owned.extend(parts);
        } else {
            owned.retain(|p| !parts.contains(p));
        }
    }
    owned
}

/// Every assignment (`true`) and revocation (`false`) in `weir`'s log, with its partitions.
pub(super) fn partition_events(weir: &Weir) -> Vec<(bool, BTreeSet<String>)> {
    let log = weir.log.lock().unwrap();
    log.iter()
        .filter_map(|line| {
            let assigned = line.contains("Partitions assigned");
            if !assigned && !line.contains("Partitions revoked") {
                return None;
            }
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let parts = v["partitions"].as_str().unwrap_or_default();
            Some((
                assigned,
                parts
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ))
        })
        .collect()
}

fn records(count: usize, from: usize) -> Vec<Rec> {
    (from..from + count)
        .map(|i| Rec::new((i % 4) as i32, &format!("k{i}"), format!("r{i}")))
        .collect()
}

/// A static member (`--instance-id`, or `WEIR_INSTANCE_ID`) that stops and comes back within the
/// session timeout finds its partitions waiting for it: the other member sees no rebalance.
#[test]
fn a_static_member_restarting_within_the_session_timeout_gets_its_partitions_back_without_a_rebalance()
 {
    let input = unique("fleet-static-in");
    let output = unique("fleet-static-out");
    let dlq = unique("fleet-static-dlq");
    let group = unique("fleet-static");
    create_topic(&input, 4);
    create_topic(&output, 4);
    create_topic(&dlq, 1);
    // A session long enough for a restarted debug build to rejoin on a busy machine (on Tansu a
    // static member's rejoin took 6 to 8 s).
    let source = source_table(&[&input], &group).replace(
        "\"session.timeout.ms\" = \"6000\"",
        "\"session.timeout.ms\" = \"30000\"",
    );
    assert!(source.contains("30000"), "{source}");
    let pipeline = one_stage_pipeline(
        "fleet",
        &source,
        "identity",
        &module("identity"),
        "",
        &output,
        &dlq,
    );
    let (_dir, path) = write_pipeline(&pipeline);

    let a = Weir::run_with(&path, &["--instance-id", "member-a"]);
    let b = Weir::run_with_env(&path, &[], &[("WEIR_INSTANCE_ID", "member-b")]);
    let all: BTreeSet<String> = (0..4).map(|p| format!("{input}/{p}")).collect();
    let a_owns = wait_for_value(Duration::from_secs(90), || {
        let (a_owns, b_owns) = (last_assignment(&a)?, last_assignment(&b)?);
        let union: BTreeSet<String> = a_owns.union(&b_owns).cloned().collect();
        (a_owns.is_disjoint(&b_owns) && union == all).then_some(a_owns)
    });
    assert!(
        a.logged("\"instance_id\":\"member-a\""),
        "member-a's id is not logged"
    );
    produce(&input, &records(200, 0));
    assert_eq!(consume(&output, 200, Duration::from_secs(60)).len(), 200);
    let (b_assigned, b_revoked) = (
        b.count_logged("Partitions assigned"),
        b.count_logged("Partitions revoked"),
    );

    // Stopped with SIGTERM (it drains and commits) and back within the session timeout.
    a.terminate();
    let a = Weir::run_with(&path, &["--instance-id", "member-a"]);
    a.wait_assigned();
    assert_eq!(
        last_assignment(&a),
        Some(a_owns),
        "member-a came back to other partitions"
    );
    produce(&input, &records(200, 200));
    let out = consume(&output, 400, Duration::from_secs(60));
    let values: BTreeSet<String> = out.iter().map(Rec::value_str).collect();
    assert_eq!(
        values.len(),
        400,
        "every record once, both before and after the restart"
    );
    assert_eq!(
        (
            b.count_logged("Partitions assigned"),
            b.count_logged("Partitions revoked")
        ),
        (b_assigned, b_revoked),
        "member-b took part in a rebalance when member-a restarted"
    );
    a.terminate();
    b.terminate();
}

/// With `cooperative-sticky`, a member joining takes partitions from the one already there, and
/// that one never stops the partitions it keeps: it revokes only what moves.
#[test]
fn cooperative_rebalancing_revokes_only_the_partitions_that_move() {
    let input = unique("fleet-coop-in");
    let output = unique("fleet-coop-out");
    let dlq = unique("fleet-coop-dlq");
    let group = unique("fleet-coop");
    create_topic(&input, 4);
    create_topic(&output, 4);
    create_topic(&dlq, 1);
    let source = source_table(&[&input], &group).replace(
        "kafka = {",
        "kafka = { \"partition.assignment.strategy\" = \"cooperative-sticky\",",
    );
    assert!(source.contains("cooperative-sticky"), "{source}");
    let (_dir, path) = write_pipeline(&one_stage_pipeline(
        "fleet",
        &source,
        "identity",
        &module("identity"),
        "",
        &output,
        &dlq,
    ));
    let all: BTreeSet<String> = (0..4).map(|p| format!("{input}/{p}")).collect();

    let a = Weir::run(&path);
    wait_for_value(Duration::from_secs(60), || (owned(&a) == all).then_some(()));
    produce(&input, &records(200, 0));
    assert_eq!(consume(&output, 200, Duration::from_secs(60)).len(), 200);
    let before = partition_events(&a).len();

    let b = Weir::run(&path);
    let (a_keeps, b_takes) = wait_for_value(Duration::from_secs(90), || {
        let (a_owns, b_owns) = (owned(&a), owned(&b));
        let union: BTreeSet<String> = a_owns.union(&b_owns).cloned().collect();
        (!b_owns.is_empty() && a_owns.is_disjoint(&b_owns) && union == all)
            .then_some((a_owns, b_owns))
    });
    let revoked: BTreeSet<String> = partition_events(&a)[before..]
        .iter()
        .filter(|(assigned, _)| !assigned)
        .flat_map(|(_, parts)| parts.iter().cloned())
        .collect();
    assert_eq!(
        revoked, b_takes,
        "member a revoked other partitions than the ones member b took (it keeps {a_keeps:?})"
    );

    produce(&input, &records(200, 200));
    let out = consume(&output, 400, Duration::from_secs(60));
    let values: BTreeSet<String> = out.iter().map(Rec::value_str).collect();
    assert_eq!(
        values.len(),
        400,
        "every record once, before and after the rebalance"
    );
    b.terminate();
    a.terminate();
}

/// An instance id that Kafka would not take as a name is refused before anything starts.
#[test]
fn an_invalid_instance_id_is_a_configuration_error() {
    let (_dir, path) = write_pipeline(&one_stage_pipeline(
        "fleet",
        &source_table(&["fleet-never"], "fleet-never"),
        "identity",
        &module("identity"),
        "",
        "fleet-never-out",
        "fleet-never-dlq",
    ));
    let path = path.to_str().unwrap();
    let (code, _, stderr) = weir_cli_code(&["run", path], &[("WEIR_INSTANCE_ID", "pod 0")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("invalid instance id \"pod 0\""), "{stderr}");
}
