//! A member cut off from the network: it runs in a network namespace of its own, joined to the
//! test's broker by a veth pair that the test takes down mid-stream and brings back.
//!
//! Needs root (or CAP_NET_ADMIN) and `ip`. Where the sandbox does not allow network namespaces,
//! the test fails saying so, unless `WEIR_TEST_SKIP_NETNS=1` asks it to skip (it then says that
//! it skipped): it never passes without having run.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::owned;
use super::scale::{Arrivals, PARTITIONS, Stream};
use crate::harness::{
    Process, Weir, client_at, committed_via, create_topic_via, die_with_parent, exclusive,
    follow_via, module, one_stage_pipeline, source_table, tansu_binary, unique, wait_for_value,
    write_pipeline,
};

/// A network namespace joined to the host by a veth pair on a /30 of its own; removed on drop.
struct Netns {
    name: String,
    host_link: String,
    host_ip: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    fn create() -> Result<Self, String> {
        let id = std::process::id();
        let name = format!("weir-cut-{id}");
        let (host_link, ns_link) = (format!("wc{id}h"), format!("wc{id}n"));
        // 10.213.X.Y/30, a block per test process, X and Y from the pid.
        let block = (id % 16_000) * 4;
        let net = |host: u32| format!("10.213.{}.{}", block / 256, block % 256 + host);
        let this = Self {
            name: name.clone(),
            host_link: host_link.clone(),
            host_ip: net(1),
        };
        ip(&["netns", "add", &name])?;
        let ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", name.as_str(), "ip"];
            all.extend_from_slice(args);
            ip(&all)
        };
        ip(&[
            "link", "add", &host_link, "type", "veth", "peer", "name", &ns_link,
        ])?;
        ip(&["link", "set", &ns_link, "netns", &name])?;
        ip(&["addr", "add", &format!("{}/30", net(1)), "dev", &host_link])?;
        ip(&["link", "set", &host_link, "up"])?;
        ns(&["addr", "add", &format!("{}/30", net(2)), "dev", &ns_link])?;
        ns(&["link", "set", &ns_link, "up"])?;
        ns(&["link", "set", "lo", "up"])?;
        Ok(this)
    }

    /// Takes the link down (`up == false`) or brings it back.
    fn link(&self, up: bool) {
        ip(&[
            "link",
            "set",
            &self.host_link,
            if up { "up" } else { "down" },
        ])
        .unwrap();
    }

    /// A command that runs `program` inside the namespace.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it the host's end.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_link]);
    }
}

/// A Tansu broker of its own, listening on `host`, so that the namespace can reach it.
fn broker_on(host: &str) -> (Process, String) {
    let port = std::net::TcpListener::bind((host, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("tcp://{host}:{port}");
    let mut cmd = Command::new(tansu_binary());
    cmd.args(["broker", "--listener-url", &url])
        .args(["--advertised-listener-url", &url])
        .args(["--storage-engine", "memory://tansu/"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    die_with_parent(&mut cmd);
    let child = Process(cmd.spawn().expect("cannot start tansu"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect((host, port)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not listen on {url}");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, format!("{host}:{port}"))
}

#[test]
fn a_member_cut_off_from_the_network_loses_its_partitions_and_rejoins_with_nothing_lost() {
    cut_off(false);
}

/// The same in exactly-once mode: the partitions' new owner fences the cut-off member's
/// transactional producers, so its late transactions cannot commit.
#[test]
fn a_member_cut_off_in_exactly_once_mode_is_fenced_and_rejoins_with_nothing_lost() {
    cut_off(true);
}

fn cut_off(exactly_once: bool) {
    let _serial = exclusive();
    let netns = match Netns::create() {
        Ok(netns) => netns,
        Err(why) if std::env::var_os("WEIR_TEST_SKIP_NETNS").is_some_and(|v| v == "1") => {
            eprintln!("SKIPPED (WEIR_TEST_SKIP_NETNS=1): no network namespace here: {why}");
            return;
        }
        Err(why) => panic!(
            "this test needs network namespaces (root and `ip`): {why}; set \
             WEIR_TEST_SKIP_NETNS=1 to skip it where the sandbox does not allow them"
        ),
    };
    let (_broker, bootstrap) = broker_on(&netns.host_ip);
    let client = || client_at(&bootstrap, &[]);
    let (input, output, dlq) = (unique("cut-in"), unique("cut-out"), unique("cut-dlq"));
    let group = unique("cut");
    create_topic_via(client(), &input, PARTITIONS, &[]);
    create_topic_via(client(), &output, PARTITIONS, &[]);
    create_topic_via(client(), &dlq, 1, &[]);
    let mut pipeline = one_stage_pipeline(
        "cut",
        &source_table(&[&input], &group),
        "identity",
        &module("identity"),
        "",
        &output,
        &dlq,
    );
    if exactly_once {
        pipeline.push_str("\n[sink]\ndelivery = \"exactly-once\"\n");
    }
    let (_dir, path) = write_pipeline(&pipeline);
    let env = [("WEIR_BROKERS", bootstrap.as_str())];

    let arrivals: Arrivals = Arc::default();
    let reading = Arc::new(AtomicBool::new(false));
    let reader = {
        let (arrivals, stop) = (Arc::clone(&arrivals), Arc::clone(&reading));
        let (config, output) = (client(), output.clone());
        std::thread::spawn(move || {
            follow_via(config, &output, &stop, |r| {
                arrivals
                    .lock()
                    .unwrap()
                    .push((r.partition, r.value_str(), Instant::now()));
            })
        })
    };
    let stream = Stream::start_at(&bootstrap, &input);

    let outside = Weir::run_with_env(&path, &[], &env);
    let inside = Weir::spawn(netns.command(Weir::weir_bin()), &path, &[], &env);
    let all: BTreeSet<String> = (0..PARTITIONS).map(|p| format!("{input}/{p}")).collect();
    let inside_owned = wait_for_value(Duration::from_secs(90), || {
        let (o, i) = (owned(&outside), owned(&inside));
        let union: BTreeSet<String> = o.union(&i).cloned().collect();
        (!o.is_empty() && !i.is_empty() && o.is_disjoint(&i) && union == all).then_some(i)
    });
    std::thread::sleep(Duration::from_secs(2));

    // Cut: the inside member's partitions go to the outside one once its session times out.
    netns.link(false);
    let cut = Instant::now();
    wait_for_value(Duration::from_secs(90), || {
        (owned(&outside) == all).then_some(())
    });
    let moved_after = cut.elapsed();
    // Its partitions make progress again, from the outside member.
    let progressed = |since: Instant| {
        let arrivals = arrivals.lock().unwrap();
        inside_owned.iter().all(|p| {
            let p: i32 = p.rsplit('/').next().unwrap().parse().unwrap();
            arrivals.iter().any(|(q, _, at)| *q == p && *at > since)
        })
    };
    let taken_over = Instant::now();
    wait_for_value(Duration::from_secs(60), || {
        progressed(taken_over).then_some(())
    });

    // Back: the inside member rejoins and gets partitions again.
    let inside_assignments = inside.count_logged("Partitions assigned");
    netns.link(true);
    wait_for_value(Duration::from_secs(120), || {
        let (o, i) = (owned(&outside), owned(&inside));
        let union: BTreeSet<String> = o.union(&i).cloned().collect();
        (inside.count_logged("Partitions assigned") > inside_assignments
            && !i.is_empty()
            && o.is_disjoint(&i)
            && union == all)
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));

    let sent = stream.finish();
    let expected: BTreeSet<String> = (0..sent).map(|i| format!("r{i}")).collect();
    wait_for_value(Duration::from_secs(120), || {
        let got: BTreeSet<String> = arrivals
            .lock()
            .unwrap()
            .iter()
            .map(|(_, v, _)| v.clone())
            .collect();
        expected.is_subset(&got).then_some(())
    });
    if exactly_once {
        // Its transactions, open when the link went down, never commit once the partitions'
        // new owner has fenced its transactional ids: the broker refuses them
        // (PRODUCER_FENCED), or their commit fails while the partition is being revoked.
        let late = ["newer producer", "Lane failed while it was being stopped"];
        assert!(
            late.iter().any(|line| inside.logged(line)),
            "the cut-off member's transactions were neither fenced nor failed; its log:\n{}",
            inside.log_text()
        );
    }
    inside.terminate();
    outside.terminate();
    std::thread::sleep(Duration::from_secs(1));
    reading.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let outputs = arrivals.lock().unwrap().len();
    for p in 0..PARTITIONS {
        let produced = (0..sent)
            .filter(|i| i % PARTITIONS as usize == p as usize)
            .count();
        assert_eq!(
            committed_via(client(), &group, &input, p),
            Some(produced as i64),
            "partition {p}"
        );
    }
    eprintln!(
        "cut-off member: {} partitions moved {} ms after the cut; {sent} records, {outputs} \
         outputs, {} duplicates",
        inside_owned.len(),
        moved_after.as_millis(),
        outputs - sent
    );
}
