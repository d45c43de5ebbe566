//! Several members over a 12-partition topic while records stream in: scale 1 → 3 → 1 and a
//! `kill -9` of a member, with every input accounted for and the pause of every partition that
//! changed owner measured, eager against cooperative.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use super::owned;
use crate::harness::{
    Weir, broker, broker_hides_aborted_transactions, client_at, committed, create_topic, exclusive,
    follow, module, one_stage_pipeline, source_table, unique, wait_for_value, write_pipeline,
};

pub(super) const PARTITIONS: i32 = 12;
/// One record per partition every this often: 600 records/s in all.
const TICK: Duration = Duration::from_millis(20);

/// Produces one record to every partition each [`TICK`] until stopped; values `r0`, `r1`, ...,
/// record `i` to partition `i % PARTITIONS`.
pub(super) struct Stream {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Stream {
    /// Stops producing also when a test fails half way.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Stream {
    pub(super) fn start(topic: &str) -> Self {
        Self::start_at(&broker().bootstrap, topic)
    }

    /// [`Stream::start`] on the broker at `bootstrap`.
    pub(super) fn start_at(bootstrap: &str, topic: &str) -> Self {
        let (stop, sent) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (topic, stop_t, sent_t) = (topic.to_owned(), Arc::clone(&stop), Arc::clone(&sent));
        let bootstrap = bootstrap.to_owned();
        let thread = std::thread::spawn(move || {
            let producer: ThreadedProducer<DefaultProducerContext> = client_at(
                &bootstrap,
                &[("enable.idempotence", "true"), ("linger.ms", "2")],
            )
            .create()
            .unwrap();
            let started = Instant::now();
            let mut i = 0usize;
            for tick in 1.. {
                if stop_t.load(Ordering::Relaxed) {
                    break;
                }
                for _ in 0..PARTITIONS {
                    let value = format!("r{i}");
                    let key = format!("k{i}");
                    let record = BaseRecord::to(&topic)
                        .partition((i % PARTITIONS as usize) as i32)
                        .key(&key)
                        .payload(&value);
                    producer.send(record).map_err(|(e, _)| e).unwrap();
                    i += 1;
                }
                sent_t.store(i, Ordering::Relaxed);
                if let Some(wait) = (TICK * tick).checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            producer.flush(Duration::from_secs(30)).unwrap();
        });
        Self {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    /// Stops producing; returns how many records were produced, all acknowledged.
    pub(super) fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.sent.load(Ordering::Relaxed)
    }
}

/// Every output record as it arrives: (partition, value, when).
pub(super) type Arrivals = Arc<Mutex<Vec<(i32, String, Instant)>>>;

/// A scale step: when it began, and the partitions whose owner it changed.
struct Step {
    name: &'static str,
    began: Instant,
    settled: Instant,
    moved: BTreeSet<i32>,
}

/// Who owns which partition now, among `members` (by index), once the group has settled: every
/// partition owned by exactly one live member, every live member owning some.
fn settle(members: &[Option<&Weir>], input: &str) -> BTreeMap<i32, usize> {
    wait_for_value(Duration::from_secs(120), || {
        let mut owners = BTreeMap::new();
        for (i, member) in members.iter().enumerate() {
            let Some(member) = member else { continue };
            let owns = owned(member);
            if owns.is_empty() {
                return None;
            }
            for p in owns {
                let p: i32 = p.strip_prefix(&format!("{input}/"))?.parse().ok()?;
                if owners.insert(p, i).is_some() {
                    return None;
                }
            }
        }
        (owners.len() == PARTITIONS as usize).then_some(owners)
    })
}

fn changed(before: &BTreeMap<i32, usize>, after: &BTreeMap<i32, usize>) -> BTreeSet<i32> {
    after
        .iter()
        .filter(|(p, owner)| before.get(p) != Some(owner))
        .map(|(p, _)| *p)
        .collect()
}

/// The longest time without an output of `partition` from `from` to `to`.
fn longest_gap(
    arrivals: &[(i32, String, Instant)],
    partition: i32,
    from: Instant,
    to: Instant,
) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for (_, _, at) in arrivals
        .iter()
        .filter(|(p, _, at)| *p == partition && *at > from && *at <= to)
    {
        longest = longest.max(*at - last);
        last = *at;
    }
    longest.max(to.saturating_duration_since(last))
}

fn millis(d: Duration) -> u128 {
    d.as_millis()
}

/// Runs the whole scenario with `strategy` as the group's assignment strategy; returns a line
/// per step with the pauses of the partitions it moved and of those it did not: for each
/// partition, the longest time without an output from the step's start until 2 s after the
/// group settled (a figure, not an assertion: timings are for benchmarks).
///
/// With `exactly_once`, the members deliver in transactions and the reader reads committed
/// records only: on a broker that hides aborted transactions there are no duplicates.
fn scenario(strategy: &str, exactly_once: bool) -> Vec<String> {
    let _serial = exclusive();
    let input = unique("fleet-scale-in");
    let output = unique("fleet-scale-out");
    let dlq = unique("fleet-scale-dlq");
    let group = unique("fleet-scale");
    create_topic(&input, PARTITIONS);
    create_topic(&output, PARTITIONS);
    create_topic(&dlq, 1);
    let source = source_table(&[&input], &group).replace(
        "kafka = {",
        &format!("kafka = {{ \"partition.assignment.strategy\" = \"{strategy}\","),
    );
    let mut pipeline = one_stage_pipeline(
        "fleet",
        &source,
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

    let arrivals: Arrivals = Arc::default();
    let reading = Arc::new(AtomicBool::new(false));
    let reader = {
        let (arrivals, stop, output) =
            (Arc::clone(&arrivals), Arc::clone(&reading), output.clone());
        std::thread::spawn(move || {
            follow(&output, &stop, |r| {
                arrivals
                    .lock()
                    .unwrap()
                    .push((r.partition, r.value_str(), Instant::now()));
            })
        })
    };
    let stream = Stream::start(&input);
    let mut steps = Vec::new();

    let m0 = Weir::run(&path);
    let mut owners = settle(&[Some(&m0)], &input);
    std::thread::sleep(Duration::from_secs(2));

    // 1 → 3.
    let began = Instant::now();
    let (m1, m2) = (Weir::run(&path), Weir::run(&path));
    let next = settle(&[Some(&m0), Some(&m1), Some(&m2)], &input);
    steps.push(Step {
        name: "1 -> 3",
        began,
        settled: Instant::now(),
        moved: changed(&owners, &next),
    });
    owners = next;
    std::thread::sleep(Duration::from_secs(2));

    // kill -9 of a member: its partitions move once its session times out.
    let began = Instant::now();
    m2.kill9();
    let next = settle(&[Some(&m0), Some(&m1), None], &input);
    steps.push(Step {
        name: "kill -9",
        began,
        settled: Instant::now(),
        moved: changed(&owners, &next),
    });
    owners = next;
    std::thread::sleep(Duration::from_secs(2));

    // 2 → 1 (with the killed member, 3 → 1).
    let began = Instant::now();
    m1.terminate();
    let next = settle(&[Some(&m0), None, None], &input);
    steps.push(Step {
        name: "2 -> 1",
        began,
        settled: Instant::now(),
        moved: changed(&owners, &next),
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
    m0.terminate();
    std::thread::sleep(Duration::from_secs(1)); // duplicates, if any, arrive
    reading.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let arrivals = arrivals.lock().unwrap();

    // Every input once at least, in its own partition, first copies in input order.
    let mut first_seen: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (p, v, _) in arrivals.iter() {
        let i: usize = v.strip_prefix('r').unwrap().parse().unwrap();
        assert_eq!(*p, (i % PARTITIONS as usize) as i32, "{v} in partition {p}");
        if seen.insert(i) {
            first_seen.entry(*p).or_default().push(i);
        }
    }
    assert_eq!(seen.len(), sent, "records lost");
    for (p, order) in &first_seen {
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "partition {p} out of order"
        );
    }
    // Everything is committed by the last member's clean stop.
    for p in 0..PARTITIONS {
        let produced = (0..sent)
            .filter(|i| i % PARTITIONS as usize == p as usize)
            .count();
        assert_eq!(
            committed(&group, &input, p),
            Some(produced as i64),
            "partition {p}"
        );
    }

    let duplicates = arrivals.len() - sent;
    if exactly_once && broker_hides_aborted_transactions() {
        assert_eq!(duplicates, 0, "duplicates in exactly-once mode");
    }
    let mode = if exactly_once {
        "exactly-once"
    } else {
        "at-least-once"
    };
    let mut lines = vec![format!(
        "{strategy}, {mode}: {sent} records, {} outputs, {duplicates} duplicates",
        arrivals.len()
    )];
    for step in &steps {
        assert!(
            !step.moved.is_empty(),
            "step {} moved no partition",
            step.name
        );
        let to = step.settled + Duration::from_secs(2);
        let gaps = |moved: bool| {
            let mut gaps: Vec<u128> = (0..PARTITIONS)
                .filter(|p| step.moved.contains(p) == moved)
                .map(|p| millis(longest_gap(&arrivals, p, step.began, to)))
                .collect();
            gaps.sort_unstable();
            gaps
        };
        let (moved, stayed) = (gaps(true), gaps(false));
        let stat = |g: &[u128]| match g {
            [] => "-".to_owned(),
            g => format!("p50 {} ms, max {} ms", g[(g.len() - 1) / 2], g[g.len() - 1]),
        };
        // The same measure over the quiet seconds before the step, for scale.
        let mut steady: Vec<u128> = (0..PARTITIONS)
            .map(|p| {
                millis(longest_gap(
                    &arrivals,
                    p,
                    step.began - Duration::from_secs(2),
                    step.began,
                ))
            })
            .collect();
        steady.sort_unstable();
        lines.push(format!(
            "  {}: {} moved ({}), {} stayed ({}), settled after {} ms; before it: {}",
            step.name,
            moved.len(),
            stat(&moved),
            stayed.len(),
            stat(&stayed),
            millis(step.settled - step.began),
            stat(&steady),
        ));
    }
    lines
}

/// Eager (`range`) rebalancing: every member revokes everything at every step.
#[test]
fn a_fleet_scaling_1_3_1_with_a_kill_loses_nothing_eager() {
    let report = scenario("range", false);
    eprintln!("{}", report.join("\n"));
}

/// Cooperative (`cooperative-sticky`) rebalancing: only what moves is revoked.
#[test]
fn a_fleet_scaling_1_3_1_with_a_kill_loses_nothing_cooperative() {
    let report = scenario("cooperative-sticky", false);
    eprintln!("{}", report.join("\n"));
}

/// Exactly-once delivery through the same steps: nothing lost, and no duplicate where the broker
/// hides aborted transactions (Kafka, Redpanda: `WEIR_TEST_BROKERS`). The test broker does not,
/// so there the duplicates a `kill -9` leaves in aborted transactions are only counted.
#[test]
fn a_fleet_scaling_1_3_1_with_a_kill_loses_nothing_exactly_once() {
    let report = scenario("cooperative-sticky", true);
    eprintln!("{}", report.join("\n"));
}
