//! An idle Weir waits without spinning: watching or not, its CPU time over a few idle seconds
//! stays under 1 % of a core. CPU time is read from `/proc`, so this checks what the process
//! does, not how fast the machine is.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::harness::{
    Weir, create_topic, module, one_stage_pipeline, source_table, unique, write_pipeline,
};

/// CPU time of each live thread of process `pid` so far, by thread id, with the thread's name
/// (the first field of each thread's `schedstat`, in nanoseconds: finer than the clock ticks of
/// `/proc/PID/stat`).
fn thread_times(pid: u32) -> BTreeMap<String, (String, Duration)> {
    let mut times = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        // A thread that ended since the listing has no files any more.
        let (Ok(stat), Ok(name)) = (
            std::fs::read_to_string(dir.join("schedstat")),
            std::fs::read_to_string(dir.join("comm")),
        ) else {
            continue;
        };
        let ns: u64 = stat.split_whitespace().next().unwrap().parse().unwrap();
        let tid = dir.file_name().unwrap().to_string_lossy().into_owned();
        times.insert(tid, (name.trim().to_owned(), Duration::from_nanos(ns)));
    }
    times
}

/// The share of one core `weir` uses over `window`, once it has settled, and the threads that
/// used it.
fn idle_share(weir: &Weir, window: Duration) -> (f64, String) {
    weir.wait_assigned();
    std::thread::sleep(Duration::from_secs(3));
    let (before, t0) = (thread_times(weir.pid()), Instant::now());
    std::thread::sleep(window);
    let (after, elapsed) = (thread_times(weir.pid()), t0.elapsed());
    let mut used = Duration::ZERO;
    let mut threads = Vec::new();
    for (tid, (name, t)) in &after {
        let spent = t.saturating_sub(before.get(tid).map_or(Duration::ZERO, |(_, b)| *b));
        used += spent;
        threads.push(format!("{name} {:.1} ms", spent.as_secs_f64() * 1e3));
    }
    (
        used.as_secs_f64() / elapsed.as_secs_f64(),
        threads.join(", "),
    )
}

#[test]
fn an_idle_weir_uses_under_one_percent_of_a_core() {
    let (input, output, dlq) = (unique("idle"), unique("idle-out"), unique("dlq"));
    create_topic(&input, 4);
    create_topic(&output, 4);
    create_topic(&dlq, 1);
    // The client's own defaults: the other tests' short fetch waits and frequent statistics
    // make librdkafka wake more often than it would in production.
    let source = source_table(&[&input], &unique("group")).replace(
        r#", "fetch.wait.max.ms" = "50", "statistics.interval.ms" = "1000""#,
        "",
    );
    assert!(!source.contains("fetch.wait.max.ms"), "{source}");
    let toml = one_stage_pipeline(
        "idle",
        &source,
        "enrich",
        &module("json_enrich"),
        r#"config = { field = "url" }"#,
        &output,
        &dlq,
    );
    let (_dir, pipeline) = write_pipeline(&toml);
    let window = Duration::from_secs(8);
    for args in [&["--no-watch"][..], &[][..]] {
        let weir = Weir::run_with(&pipeline, args);
        let (share, threads) = idle_share(&weir, window);
        weir.terminate();
        assert!(
            share < 0.01,
            "weir run {args:?} used {:.2} % of a core while idle: {threads}",
            share * 100.0
        );
    }
}
