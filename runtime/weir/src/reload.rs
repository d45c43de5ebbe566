//! Hot reload: a new version of the pipeline file or of a module it names is validated off the
//! data path and, when it passes, swapped in by every lane at its next batch boundary.
//!
//! Triggers: a change to the pipeline file or a module file (watched through their directories,
//! so editors and deploy tools that replace files by renaming are seen; events are debounced), or
//! SIGHUP. A reload re-reads the file, refuses changes a running pipeline cannot apply (sources,
//! outputs, the stage list: those need a restart), rebuilds only the stages whose module content,
//! configuration or limits changed, checks the new modules (instantiation, world and contract
//! version, `init` with the new config) and runs the pipeline's `[[test]]` cases against the new
//! version. Only then is it published. A version that fails any of this is rejected with a logged
//! and counted reason, and the running version keeps serving.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use notify::event::ModifyKind;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use weir_config::Pipeline;
use weir_kafka::ControlChannel;
use weir_telemetry::ReloadResult;
use weir_wasm::WasmHost;

use crate::error::{EngineError, ReloadError, WatchError};
use crate::loader::LoadedPipeline;
use crate::rollout::Rollout;
use crate::rollout::control::Control;
use crate::shared::Shared;

/// How long file events must be quiet before a reload starts: a deploy that writes several
/// files reloads once.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// How a running pipeline picks up new versions of its file and modules.
#[derive(Debug, Clone)]
pub struct ReloadOptions {
    /// The engine that compiles new module versions (sharing its compiled-module cache).
    pub host: WasmHost,
    /// Watch the pipeline file and its modules; when false, only `requested` triggers a reload.
    pub watch: bool,
    /// Set (by SIGHUP) to ask for a reload; cleared when the reload starts.
    pub requested: Arc<AtomicBool>,
}

/// The reload thread; stops when dropped.
pub(crate) struct Reloader {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Reloader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Reloader {
    pub(crate) fn start(
        pipeline: Pipeline,
        options: ReloadOptions,
        shared: Arc<Shared>,
        cluster: &weir_kafka::Cluster,
    ) -> Result<Self, EngineError> {
        let control = match &pipeline.control {
            Some(c) => Some(ControlChannel::open(
                cluster,
                &c.topic,
                &pipeline.source.kafka,
                Duration::from_secs(15),
            )?),
            None => None,
        };
        let (tx, events) = crossbeam_channel::unbounded();
        let watcher = if options.watch {
            let w = notify::recommended_watcher(move |event| {
                let _ = tx.send(event);
            })
            .map_err(|e| EngineError::Watch {
                path: pipeline.path.clone(),
                source: WatchError::Notify(e),
            })?;
            Some(w)
        } else {
            None
        };
        let stop = Arc::new(AtomicBool::new(false));
        let rollout = Rollout::new(
            Arc::clone(&shared),
            options.host.clone(),
            Control::new(control),
        );
        let mut state = State {
            running: pipeline,
            options,
            shared,
            watcher,
            watched_dirs: BTreeSet::new(),
            files: BTreeSet::new(),
            rollout,
        };
        state.watch()?;
        // Apply the decisions other instances (or this pipeline before a restart) took before
        // any lane starts.
        state.rollout.catch_up(&state.running);
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("weir-reload".into())
            .spawn(move || {
                let shared = Arc::clone(&state.shared);
                shared
                    .fatal
                    .guarded("the reload thread", || state.run(events, &stopping));
            })
            .map_err(|source| EngineError::Thread {
                what: "reload",
                source,
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

struct State {
    running: Pipeline,
    options: ReloadOptions,
    shared: Arc<Shared>,
    watcher: Option<RecommendedWatcher>,
    watched_dirs: BTreeSet<PathBuf>,
    /// The files whose changes trigger a reload, as (canonical directory, file name).
    files: BTreeSet<(PathBuf, std::ffi::OsString)>,
    /// Every canary, from start to promotion or rollback.
    rollout: Rollout,
}

/// How often the reload thread looks at its requests (reloads, canary actions, the control
/// topic) when no file event wakes it first.
const TICK: Duration = Duration::from_millis(100);

impl State {
    fn run(mut self, mut events: Receiver<notify::Result<notify::Event>>, stop: &AtomicBool) {
        let mut pending: Option<Instant> = None;
        while !stop.load(Ordering::Relaxed) {
            match events.recv_timeout(TICK) {
                Ok(Ok(event)) => {
                    // Reading a file (as a reload does) is an event too: only writes, creations,
                    // renames and removals count.
                    let writes = matches!(
                        event.kind,
                        EventKind::Create(_)
                            | EventKind::Remove(_)
                            | EventKind::Any
                            | EventKind::Modify(
                                ModifyKind::Data(_)
                                    | ModifyKind::Name(_)
                                    | ModifyKind::Any
                                    | ModifyKind::Other
                            )
                    );
                    if writes && event.paths.iter().any(|p| self.is_watched(p)) {
                        pending = Some(Instant::now());
                    }
                }
                Ok(Err(error)) => tracing::warn!(%error, "File watcher error."),
                Err(RecvTimeoutError::Timeout) => {}
                // No watcher (`--no-watch`), or it is gone: from now on wait out each tick on a
                // channel that never delivers. `recv_timeout` on a disconnected channel returns at
                // once, and this loop would spin a core.
                Err(RecvTimeoutError::Disconnected) => events = crossbeam_channel::never(),
            }
            self.shared.versions.drop_retired();
            self.rollout.tick(&self.running);
            let asked = self.options.requested.swap(false, Ordering::AcqRel);
            let settled = pending.is_some_and(|at| at.elapsed() >= DEBOUNCE);
            if asked || settled {
                pending = None;
                self.reload(if asked { "signal" } else { "file change" });
            }
        }
    }

    fn is_watched(&self, path: &Path) -> bool {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return false;
        };
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
        self.files.contains(&(dir, name.to_owned()))
    }

    /// Watches the directories of the pipeline file and of every module it names.
    fn watch(&mut self) -> Result<(), EngineError> {
        let mut files = BTreeSet::new();
        let paths = std::iter::once(self.running.path.as_path())
            .chain(self.running.stages.iter().map(|s| s.module.as_path()));
        for path in paths {
            let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                continue;
            };
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            let dir = dir.canonicalize().map_err(|e| EngineError::Watch {
                path: dir.to_owned(),
                source: WatchError::Io(e),
            })?;
            files.insert((dir, name.to_owned()));
        }
        if let Some(watcher) = &mut self.watcher {
            for (dir, _) in &files {
                if self.watched_dirs.insert(dir.clone()) {
                    watcher
                        .watch(dir, RecursiveMode::NonRecursive)
                        .map_err(|e| EngineError::Watch {
                            path: dir.clone(),
                            source: WatchError::Notify(e),
                        })?;
                }
            }
        }
        self.files = files;
        Ok(())
    }

    fn reload(&mut self, cause: &str) {
        let started = Instant::now();
        match self.try_reload() {
            Ok(Some(stages)) => {
                self.shared.metrics.reloaded(ReloadResult::Applied);
                tracing::info!(
                    cause,
                    stages = %stages.join(","),
                    millis = started.elapsed().as_millis() as u64,
                    "Reload applied; lanes swap at their next batch."
                );
                if let Err(error) = self.watch() {
                    tracing::warn!(%error, "Cannot watch the new module files.");
                }
            }
            Ok(None) => {
                self.shared.metrics.reloaded(ReloadResult::Unchanged);
                tracing::info!(cause, "Reload: nothing the running pipeline uses changed.");
            }
            Err(reason) => {
                self.shared.metrics.reloaded(ReloadResult::Rejected);
                tracing::warn!(
                    cause,
                    %reason,
                    "Reload rejected; the running version keeps serving."
                );
            }
        }
    }

    /// Validates the new version and publishes it. `Ok(None)`: nothing to swap.
    fn try_reload(&mut self) -> Result<Option<Vec<String>>, ReloadError> {
        let path = self.running.path.clone();
        let next = weir_config::load(&path)
            .and_then(|p| p.check_modules().map(|()| p))
            .map_err(ReloadError::Config)?;
        if let Some(why) = restart_needed(&self.running, &next) {
            return Err(ReloadError::RestartNeeded(why));
        }
        let running = self.shared.versions.current();
        let (candidate, changed) = LoadedPipeline::reload(&self.options.host, &next, &running)
            .map_err(ReloadError::Modules)?;
        if changed.is_empty() {
            self.running = next;
            return Ok(None);
        }
        let canary_cases = crate::testing::run_canary_cases(&next, &candidate).unwrap_or_default();
        let failures: Vec<String> = crate::testing::run_cases(&next, &candidate)
            .into_iter()
            .chain(canary_cases)
            .filter(|r| !r.failures.is_empty())
            .map(|r| format!("test {:?}: {}", r.name, r.failures.join(", ")))
            .collect();
        if !failures.is_empty() {
            return Err(ReloadError::Tests(failures));
        }
        let candidate = Arc::new(candidate);
        self.shared
            .metrics
            .set_guests(candidate.guest_sources(&self.shared.settings.pipeline));
        self.shared.versions.publish(candidate);
        self.running = next;
        Ok(Some(changed))
    }
}

/// What in `next` a running pipeline cannot take without a restart, if anything.
pub(crate) fn restart_needed(running: &Pipeline, next: &Pipeline) -> Option<String> {
    if running.name != next.name {
        return Some("the pipeline's `name` changed".into());
    }
    if running.source != next.source {
        return Some("`[source]` changed".into());
    }
    if running.dead_letter != next.dead_letter {
        return Some("`[dead_letter]` changed".into());
    }
    if running.sink != next.sink {
        return Some("`[sink]` changed".into());
    }
    // A sink's settings are read when it opens, at start (its line number may move freely).
    let sinks = |p: &Pipeline| {
        p.sinks
            .iter()
            .map(|s| (s.name.clone(), s.kind.clone()))
            .collect::<Vec<_>>()
    };
    if sinks(running) != sinks(next) {
        return Some("a `[sinks.<name>]` table changed".into());
    }
    if running.telemetry != next.telemetry {
        return Some("`[telemetry]` changed".into());
    }
    if running.control != next.control {
        return Some("`[control]` changed".into());
    }
    let names = |p: &Pipeline| p.stages.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    if names(running) != names(next) {
        return Some(format!(
            "the stages changed from [{}] to [{}] (added, removed or reordered)",
            names(running).join(", "),
            names(next).join(", ")
        ));
    }
    for (a, b) in running.stages.iter().zip(&next.stages) {
        if a.kind != b.kind
            || a.output != b.output
            || a.sink != b.sink
            || a.partitioning != b.partitioning
        {
            return Some(format!(
                "stage {:?}: `kind`, `output` or `partitioning` changed",
                a.name
            ));
        }
        if a.aggregate != b.aggregate {
            return Some(format!(
                "stage {:?}: its windowing (`key`, `time`, `window`, `lateness`, `late`, \
                 `idle_timeout`, `max_windows`, `on_full` or `changelog`) changed",
                a.name
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Pipeline {
        weir_config::parse(toml, Path::new("p.toml")).unwrap()
    }

    const BASE: &str = r#"
name = "p"
[source]
brokers = "127.0.0.1:9092"
topics = ["in"]
group = "g"
[[stage]]
name = "a"
module = "a.wasm"
config = { x = 1 }
[[stage]]
name = "b"
module = "b.wasm"
output = "out"
[dead_letter]
topic = "dlq"
"#;

    #[test]
    fn module_config_and_limits_changes_apply_live() {
        let running = parse(BASE);
        for change in [
            BASE.replace("a.wasm", "a2.wasm"),
            BASE.replace("{ x = 1 }", "{ x = 2 }"),
            BASE.replace(
                "module = \"b.wasm\"",
                "module = \"b.wasm\"\nlimits = { memory = \"8MiB\" }",
            ),
            format!(
                "{BASE}\n[[test]]\nname = \"t\"\ninput = [{{ value = \"v\" }}]\nexpect = [{{ stage = \"b\", count = 1 }}]\n"
            ),
        ] {
            assert_eq!(restart_needed(&running, &parse(&change)), None, "{change}");
        }
    }

    #[test]
    fn structural_changes_need_a_restart() {
        let running = parse(BASE);
        for (change, why) in [
            (
                BASE.replace("topics = [\"in\"]", "topics = [\"in2\"]"),
                "[source]",
            ),
            (
                BASE.replace("topic = \"dlq\"", "topic = \"dlq2\""),
                "[dead_letter]",
            ),
            (
                BASE.replace("output = \"out\"", "output = \"out2\""),
                "stage \"b\"",
            ),
            (
                BASE.replace("name = \"a\"", "name = \"c\""),
                "the stages changed",
            ),
            (BASE.replace("name = \"p\"", "name = \"q\""), "`name`"),
            (
                format!("{BASE}\n[telemetry]\nlisten = \"127.0.0.1:1\"\n"),
                "[telemetry]",
            ),
            (
                format!("{BASE}\n[sinks.extra]\nkind = \"kafka\"\ntopic = \"extra\"\n"),
                "[sinks.<name>]",
            ),
        ] {
            let reason = restart_needed(&running, &parse(&change)).expect(why);
            assert!(reason.contains(why), "{reason}");
        }
    }
}
