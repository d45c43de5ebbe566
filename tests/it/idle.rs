//! An idle Weir waits without spinning: watching or not, enrich or aggregate, its CPU time over a
//! few idle seconds stays under 1 % of a core. CPU time is read from `/proc`, so this checks what
//! the process does, not how fast the machine is.

use std::time::{Duration, Instant};

use crate::harness::{
    Weir, create_topic, module, one_stage_pipeline, source_table, unique, write_pipeline,
};

/// User plus system CPU time of process `pid` so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

/// The share of one core `weir` uses over `window`, once it has settled.
fn idle_share(weir: &Weir, window: Duration) -> f64 {
    weir.wait_assigned();
    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, t0) = (cpu_time(weir.pid()), Instant::now());
    std::thread::sleep(window);
    let (cpu1, elapsed) = (cpu_time(weir.pid()), t0.elapsed());
    (cpu1 - cpu0).as_secs_f64() / elapsed.as_secs_f64()
}

#[test]
fn an_idle_weir_uses_under_one_percent_of_a_core() {
    let (input, output, dlq) = (unique("idle"), unique("idle-out"), unique("dlq"));
    create_topic(&input, 4);
    create_topic(&output, 4);
    create_topic(&dlq, 1);
    let toml = one_stage_pipeline(
        "idle",
        &source_table(&[&input], &unique("group")),
        "enrich",
        &module("json_enrich"),
        r#"config = { field = "url" }"#,
        &output,
        &dlq,
    );
    let (_dir, pipeline) = write_pipeline(&toml);
    let window = Duration::from_secs(6);
    for args in [&["--no-watch"][..], &[][..]] {
        let weir = Weir::run_with(&pipeline, args);
        let share = idle_share(&weir, window);
        weir.terminate();
        assert!(
            share < 0.01,
            "weir run {args:?} used {:.2} % of a core while idle",
            share * 100.0
        );
    }
}
