//! A fleet: several `weir run` processes in one consumer group.

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
