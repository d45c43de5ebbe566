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
use weir_telemetry::ReloadResult;
use weir_wasm::WasmHost;

use std::collections::BTreeMap;

use weir_kafka::ControlChannel;

use crate::canary::{Action, Analyser, CanaryStatus, Verdict};
use crate::engine::EngineError;
use crate::lane::Shared;
use crate::loader::{CanaryModule, LoadedPipeline};

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

/// A rollout decision as the control topic carries it (key: the stage name).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Decision {
    /// The SHA-256 of the canary module it is about.
    canary: String,
    /// `rollback` or `promote`.
    verdict: String,
    reason: String,
}

/// How long start-up reads the control topic for decisions already taken.
const CONTROL_CATCH_UP: Duration = Duration::from_millis(1500);

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
            .map_err(|e| EngineError::Watch(e.to_string()))?;
            Some(w)
        } else {
            None
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut state = State {
            running: pipeline,
            options,
            shared,
            watcher,
            watched_dirs: BTreeSet::new(),
            files: BTreeSet::new(),
            analysers: Vec::new(),
            finished: Vec::new(),
            last_analysis: Instant::now(),
            control,
            decisions: BTreeMap::new(),
            restarted: BTreeSet::new(),
        };
        state.watch()?;
        // Apply the decisions other instances (or this pipeline before a restart) took before
        // any lane starts.
        state.catch_up();
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("weir-reload".into())
            .spawn(move || {
                let shared = Arc::clone(&state.shared);
                shared.guarded("the reload thread", || state.run(events, &stopping));
            })
            .map_err(|e| EngineError::Watch(format!("cannot start the reload thread: {e}")))?;
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
    /// The analyser of each running canary, with the canary it watches.
    analysers: Vec<(Arc<CanaryModule>, Analyser)>,
    /// Canaries that ended (rolled back or promoted), as last shown.
    finished: Vec<CanaryStatus>,
    last_analysis: Instant,
    /// Where rollout decisions are shared with the other instances, if configured.
    control: Option<ControlChannel>,
    /// The latest decision per stage read from the control topic.
    decisions: BTreeMap<String, Decision>,
    /// Canary starts read from the control topic and carried out here, (stage, version).
    restarted: BTreeSet<(String, String)>,
}

/// How often the reload thread looks at its requests (reloads, canary actions, the control
/// topic) when no file event wakes it first.
const TICK: Duration = Duration::from_millis(100);

/// How often canaries are judged.
const ANALYSIS_EVERY: Duration = Duration::from_secs(1);

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
            drop(std::mem::take(&mut *self.shared.retired.lock()));
            self.read_control();
            let requests = std::mem::take(&mut *self.shared.canary_requests.lock());
            for (stage, action) in requests {
                self.canary_action(&stage, action, "an operator", true);
            }
            if self.last_analysis.elapsed() >= ANALYSIS_EVERY {
                self.last_analysis = Instant::now();
                self.analyse();
            }
            let asked = self.options.requested.swap(false, Ordering::AcqRel);
            let settled = pending.is_some_and(|at| at.elapsed() >= DEBOUNCE);
            if asked || settled {
                pending = None;
                self.reload(if asked { "signal" } else { "file change" });
            }
        }
    }

    /// Reads the control topic until it has been quiet for a moment, then applies what it says.
    fn catch_up(&mut self) {
        if self.control.is_none() {
            return;
        }
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < CONTROL_CATCH_UP {
            if self.read_control() {
                quiet_since = Instant::now();
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.analyse();
    }

    /// Takes in the control records that arrived; whether there were any.
    fn read_control(&mut self) -> bool {
        let Some(control) = &self.control else {
            return false;
        };
        let mut any = false;
        while let Some((stage, value)) = control.poll() {
            any = true;
            match serde_json::from_slice::<Decision>(&value) {
                Ok(d) => {
                    self.decisions.insert(stage, d);
                }
                Err(error) => tracing::warn!(%error, stage, "Unreadable control record; ignored."),
            }
        }
        any
    }

    /// Judges every running canary, acts on the verdicts and refreshes the status board.
    fn analyse(&mut self) {
        // First what the fleet decided: a canary rolled back or promoted elsewhere (or before a
        // restart) ends here too, and one restarted elsewhere starts here too.
        let current = self.shared.current();
        let restarts: Vec<String> = self
            .decisions
            .iter()
            .filter(|(stage, d)| {
                d.verdict == "start"
                    && current
                        .infos()
                        .iter()
                        .zip(current.canaries())
                        .any(|(info, c)| &*info.name == stage.as_str() && c.is_none())
                    && self.restarted.insert(((*stage).clone(), d.canary.clone()))
            })
            .map(|(stage, _)| stage.clone())
            .collect();
        for stage in restarts {
            self.canary_action(&stage, Action::Start, "the control topic", false);
        }
        let current = self.shared.current();
        for c in current.canaries().iter().flatten() {
            let stage = c.info.name.to_string();
            if let Some(d) = self.decisions.get(&stage)
                && d.canary == *c.info.module_sha256
                && d.verdict != "start"
            {
                let action = if d.verdict == "promote" {
                    Action::Promote
                } else {
                    Action::Rollback
                };
                let reason = format!("from the control topic: {}", d.reason);
                self.end_canary(&stage, action, &reason, false);
            }
        }
        let current = self.shared.current();
        // Keep the analysers of canaries still running; start one for each new canary.
        let running: Vec<Arc<CanaryModule>> =
            current.canaries().iter().flatten().cloned().collect();
        self.analysers
            .retain(|(c, _)| running.iter().any(|r| Arc::ptr_eq(r, c)));
        for c in running {
            if !self.analysers.iter().any(|(a, _)| Arc::ptr_eq(a, &c)) {
                let analyser = Analyser::new(Arc::clone(&c.stats), c.plan.clone());
                self.analysers.push((c, analyser));
            }
        }
        let mut board = Vec::new();
        let mut verdicts = Vec::new();
        for (c, analyser) in &mut self.analysers {
            let (verdict, stable, canary) = analyser.verdict();
            let stage = c.info.name.to_string();
            let index = current
                .infos()
                .iter()
                .position(|i| *i.name == *stage)
                .expect("a running canary's stage");
            board.push(CanaryStatus {
                stage: stage.clone(),
                stable_version: current.infos()[index].module_sha256.to_string(),
                canary_version: c.info.module_sha256.to_string(),
                partitions: c.plan.describe(),
                state: "running",
                reason: None,
                stable,
                canary,
                rescued: c.rescued.load(Ordering::Relaxed),
                running_seconds: analyser.age().as_secs(),
            });
            verdicts.push((stage, verdict));
        }
        self.show(board);
        for (stage, verdict) in verdicts {
            match verdict {
                Verdict::Continue => {}
                Verdict::Rollback(reason) => {
                    let reason = format!("automatic: {reason}");
                    self.end_canary(&stage, Action::Rollback, &reason, true);
                }
                Verdict::Promote => {
                    let reason = "automatic: clean for its promote_after period";
                    self.end_canary(&stage, Action::Promote, reason, true);
                }
            }
        }
    }

    /// Records `decision` about stage `stage` as the latest, and writes it to the control topic
    /// when `publish` (a decision taken here rather than read from there).
    fn share(&mut self, stage: &str, decision: Decision, publish: bool) {
        if publish && let Some(control) = &self.control {
            let value = serde_json::to_vec(&decision).expect("a decision serialises");
            if let Err(error) = control.publish(stage, &value, Duration::from_secs(10)) {
                tracing::error!(
                    %error,
                    stage,
                    "Cannot share the canary decision; other instances judge on their own."
                );
                return;
            }
        }
        self.decisions.insert(stage.to_owned(), decision);
    }

    /// Carries out `action` on stage `stage`'s canary for `who`; `share` writes the decision to
    /// the control topic.
    fn canary_action(&mut self, stage: &str, action: Action, who: &str, share: bool) {
        match action {
            Action::Rollback | Action::Promote => {
                self.end_canary(stage, action, &format!("by {who}"), share);
            }
            Action::Start => {
                let Some(index) = self.running.stages.iter().position(|s| s.name == stage) else {
                    return;
                };
                if self.running.stages[index].canary.is_none() {
                    tracing::warn!(
                        stage,
                        "Canary start refused: the pipeline file declares no canary for this stage."
                    );
                    return;
                }
                let current = self.shared.current();
                let forgotten = current.forgetting(index);
                match LoadedPipeline::reload(&self.options.host, &self.running, &forgotten) {
                    Ok((next, _)) => {
                        self.finished.retain(|f| f.stage != stage);
                        let canary = next.canaries()[index].clone();
                        let next = Arc::new(next);
                        self.shared
                            .metrics
                            .set_guests(next.guest_sources(&self.shared.pipeline));
                        self.shared.publish(next);
                        tracing::info!(stage, who, "Canary started.");
                        if let Some(c) = canary {
                            let decision = Decision {
                                canary: c.info.module_sha256.to_string(),
                                verdict: "start".into(),
                                reason: format!("by {who}"),
                            };
                            self.share(stage, decision, share);
                        }
                    }
                    Err(errors) => tracing::warn!(
                        stage,
                        errors = %errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
                        "Canary start failed."
                    ),
                }
            }
        }
    }

    /// Rolls back or promotes stage `stage`'s running canary; `share` writes the decision to the
    /// control topic for the other instances.
    fn end_canary(&mut self, stage: &str, action: Action, reason: &str, share: bool) {
        let current = self.shared.current();
        let Some(index) = current.infos().iter().position(|i| &*i.name == stage) else {
            return;
        };
        let Some(canary) = current.canaries()[index].clone() else {
            tracing::warn!(
                stage,
                action = action.as_str(),
                "No canary is running for this stage."
            );
            return;
        };
        let next = match action {
            Action::Promote => current.promoted(index),
            _ => current.without_canary(index),
        };
        let next = Arc::new(next);
        self.shared
            .metrics
            .set_guests(next.guest_sources(&self.shared.pipeline));
        self.shared.publish(next);
        let verdict = if action == Action::Promote {
            "promote"
        } else {
            "rollback"
        };
        self.shared.metrics.canary_verdict(stage, verdict);
        let decision = Decision {
            canary: canary.info.module_sha256.to_string(),
            verdict: verdict.into(),
            reason: reason.to_owned(),
        };
        self.share(stage, decision, share);
        let shown = self
            .shared
            .canary_board
            .lock()
            .iter()
            .find(|s| s.stage == stage && s.state == "running")
            .cloned();
        let mut status = shown.unwrap_or_else(|| CanaryStatus {
            stage: stage.to_owned(),
            stable_version: current.infos()[index].module_sha256.to_string(),
            canary_version: canary.info.module_sha256.to_string(),
            partitions: canary.plan.describe(),
            state: "running",
            reason: None,
            stable: Default::default(),
            canary: Default::default(),
            rescued: canary.rescued.load(Ordering::Relaxed),
            running_seconds: 0,
        });
        status.state = if action == Action::Promote {
            "promoted"
        } else {
            "rolled-back"
        };
        status.reason = Some(reason.to_owned());
        self.finished.retain(|f| f.stage != stage);
        self.finished.push(status);
        if action == Action::Promote {
            tracing::info!(stage, version = %canary.info.module_sha256, reason, "Canary promoted.");
        } else {
            tracing::warn!(stage, version = %canary.info.module_sha256, reason, "Canary rolled back.");
        }
        let still_running = self.shared.canary_board.lock().clone();
        self.show(still_running);
    }

    /// Puts `running` (minus any that just ended) and the ended canaries on the status board.
    fn show(&self, mut running: Vec<CanaryStatus>) {
        running
            .retain(|s| s.state == "running" && !self.finished.iter().any(|f| f.stage == s.stage));
        running.extend(self.finished.iter().cloned());
        *self.shared.canary_board.lock() = running;
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
            let dir = dir
                .canonicalize()
                .map_err(|e| EngineError::Watch(format!("{}: {e}", dir.display())))?;
            files.insert((dir, name.to_owned()));
        }
        if let Some(watcher) = &mut self.watcher {
            for (dir, _) in &files {
                if self.watched_dirs.insert(dir.clone()) {
                    watcher
                        .watch(dir, RecursiveMode::NonRecursive)
                        .map_err(|e| EngineError::Watch(format!("{}: {e}", dir.display())))?;
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
    fn try_reload(&mut self) -> Result<Option<Vec<String>>, String> {
        let path = self.running.path.clone();
        let next = weir_config::load(&path)
            .and_then(|p| p.check_modules().map(|()| p))
            .map_err(|errors| errors.to_string().trim_end().replace('\n', "; "))?;
        if let Some(why) = restart_needed(&self.running, &next) {
            return Err(format!("{why}: that needs a restart"));
        }
        let running = self.shared.current();
        let (candidate, changed) = LoadedPipeline::reload(&self.options.host, &next, &running)
            .map_err(|errors| {
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            })?;
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
            return Err(format!(
                "the new version fails the pipeline's tests: {}",
                failures.join("; ")
            ));
        }
        let candidate = Arc::new(candidate);
        self.shared
            .metrics
            .set_guests(candidate.guest_sources(&self.shared.pipeline));
        self.shared.publish(candidate);
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
        if a.kind != b.kind || a.output != b.output || a.partitioning != b.partitioning {
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
        ] {
            let reason = restart_needed(&running, &parse(&change)).expect(why);
            assert!(reason.contains(why), "{reason}");
        }
    }
}
