//! Canary rollouts, start to end: a canary starts (declared in the pipeline file, asked by an
//! operator or restarted by the fleet), is judged every second against the stable version on
//! the other partitions, and is promoted or rolled back (by its verdict, by an operator, or
//! because another instance decided so on the control topic). The status board shows each.
//!
//! Owns: `Rollout`, the state machine above, run on the reload thread; [`canary`] (plans,
//! cohort figures, verdicts) and `control` (decisions shared between instances). Touches the
//! running version only by publishing a new one through `Versions`, and the board through
//! `shared::RolloutBoard`.

pub mod canary;
pub(crate) mod control;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use weir_config::Pipeline;
use weir_wasm::WasmHost;

pub use canary::{Action, CanaryState, CanaryStatus};
use canary::{Analyser, Verdict};
use control::{Control, Decision};

use crate::loader::{CanaryModule, LoadedPipeline};
use crate::shared::{Shared, Versions};

/// How often canaries are judged.
const ANALYSIS_EVERY: Duration = Duration::from_secs(1);

/// Every canary of a running pipeline.
pub(crate) struct Rollout {
    shared: Arc<Shared>,
    host: WasmHost,
    /// The analyser of each running canary, with the canary it watches.
    analysers: Vec<(Arc<CanaryModule>, Analyser)>,
    /// Canaries that ended (rolled back or promoted), as last shown.
    finished: Vec<CanaryStatus>,
    last_analysis: Instant,
    control: Control,
}

impl Rollout {
    pub fn new(shared: Arc<Shared>, host: WasmHost, control: Control) -> Self {
        Self {
            shared,
            host,
            analysers: Vec::new(),
            finished: Vec::new(),
            last_analysis: Instant::now(),
            control,
        }
    }

    fn versions(&self) -> &Versions {
        &self.shared.versions
    }

    /// At start, before any lane: applies the decisions other instances (or this pipeline
    /// before a restart) took.
    pub fn catch_up(&mut self, running: &Pipeline) {
        self.control.catch_up();
        self.analyse(running);
    }

    /// One turn of the reload thread: the control topic, the operators' requests, and (every
    /// second) the verdicts.
    pub fn tick(&mut self, running: &Pipeline) {
        self.control.read();
        for (stage, action) in self.shared.rollout.take_requests() {
            self.act(running, &stage, action, "an operator", true);
        }
        if self.last_analysis.elapsed() >= ANALYSIS_EVERY {
            self.last_analysis = Instant::now();
            self.analyse(running);
        }
    }

    /// Judges every running canary, acts on the verdicts and refreshes the status board.
    fn analyse(&mut self, running: &Pipeline) {
        // First what the fleet decided: a canary restarted elsewhere starts here too, and one
        // rolled back or promoted elsewhere (or before a restart) ends here too.
        let current = self.versions().current();
        let stopped = |stage: &str| {
            current
                .infos()
                .iter()
                .zip(current.canaries())
                .any(|(info, c)| &*info.name == stage && c.is_none())
        };
        for stage in self.control.restarts(stopped) {
            self.act(running, &stage, Action::Start, "the control topic", false);
        }
        let current = self.versions().current();
        for c in current.canaries().iter().flatten() {
            let stage = c.info.name.to_string();
            if let Some(d) = self.control.ended(&stage, &c.info.module_sha256) {
                let reason = format!("from the control topic: {}", d.reason);
                self.end(&stage, d.verdict, &reason, false);
            }
        }
        let current = self.versions().current();
        // Keep the analysers of canaries still running; start one for each new canary.
        let canaries: Vec<Arc<CanaryModule>> =
            current.canaries().iter().flatten().cloned().collect();
        self.analysers
            .retain(|(c, _)| canaries.iter().any(|r| Arc::ptr_eq(r, c)));
        for c in canaries {
            if !self.analysers.iter().any(|(a, _)| Arc::ptr_eq(a, &c)) {
                let analyser = Analyser::new(Arc::clone(&c.stats), c.plan.clone());
                self.analysers.push((c, analyser));
            }
        }
        let mut board = Vec::new();
        let mut verdicts = Vec::new();
        for (c, analyser) in &mut self.analysers {
            let (verdict, stable, canary) = analyser.verdict();
            let mut status = status(&current, c);
            status.stable = stable;
            status.canary = canary;
            status.running_seconds = analyser.age().as_secs();
            verdicts.push((status.stage.clone(), verdict));
            board.push(status);
        }
        self.show(board);
        for (stage, verdict) in verdicts {
            match verdict {
                Verdict::Continue => {}
                Verdict::Rollback(reason) => {
                    let reason = format!("automatic: {reason}");
                    self.end(&stage, Action::Rollback, &reason, true);
                }
                Verdict::Promote => {
                    let reason = "automatic: clean for its promote_after period";
                    self.end(&stage, Action::Promote, reason, true);
                }
            }
        }
    }

    /// Carries out `action` on stage `stage`'s canary for `who`; `share` writes the decision to
    /// the control topic.
    pub fn act(&mut self, running: &Pipeline, stage: &str, action: Action, who: &str, share: bool) {
        match action {
            Action::Rollback | Action::Promote => {
                self.end(stage, action, &format!("by {who}"), share);
            }
            Action::Start => self.start(running, stage, who, share),
        }
    }

    /// (Re)starts the canary the pipeline file declares for stage `stage`.
    fn start(&mut self, running: &Pipeline, stage: &str, who: &str, share: bool) {
        let Some(index) = running.stages.iter().position(|s| s.name == stage) else {
            return;
        };
        if running.stages[index].canary.is_none() {
            tracing::warn!(
                stage,
                "Canary start refused: the pipeline file declares no canary for this stage."
            );
            return;
        }
        let forgotten = self.versions().current().forgetting(index);
        match LoadedPipeline::reload(&self.host, running, &forgotten) {
            Ok((next, _)) => {
                self.finished.retain(|f| f.stage != stage);
                let canary = next.canaries()[index].clone();
                self.publish(next);
                tracing::info!(stage, who, "Canary started.");
                if let Some(c) = canary {
                    let decision = Decision {
                        canary: c.info.module_sha256.to_string(),
                        verdict: Action::Start,
                        reason: format!("by {who}"),
                    };
                    self.control.share(stage, decision, share);
                }
            }
            Err(errors) => tracing::warn!(
                stage,
                errors = %errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
                "Canary start failed."
            ),
        }
    }

    /// Rolls back or promotes (`action`) stage `stage`'s running canary; `share` writes the
    /// decision to the control topic for the other instances.
    fn end(&mut self, stage: &str, action: Action, reason: &str, share: bool) {
        let current = self.versions().current();
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
        self.publish(match action {
            Action::Promote => current.promoted(index),
            _ => current.without_canary(index),
        });
        self.shared.metrics.canary_verdict(stage, action.as_str());
        let decision = Decision {
            canary: canary.info.module_sha256.to_string(),
            verdict: action,
            reason: reason.to_owned(),
        };
        self.control.share(stage, decision, share);
        let board = self.shared.rollout.board();
        let shown = board
            .iter()
            .find(|s| s.stage == stage && s.state == CanaryState::Running)
            .cloned();
        let mut status = shown.unwrap_or_else(|| status(&current, &canary));
        status.state = CanaryState::after(action);
        status.reason = Some(reason.to_owned());
        self.finished.retain(|f| f.stage != stage);
        self.finished.push(status);
        let version = &canary.info.module_sha256;
        if action == Action::Promote {
            tracing::info!(stage, %version, reason, "Canary promoted.");
        } else {
            tracing::warn!(stage, %version, reason, "Canary rolled back.");
        }
        self.show(board);
    }

    fn publish(&self, next: LoadedPipeline) {
        let next = Arc::new(next);
        self.shared
            .metrics
            .set_guests(next.guest_sources(&self.shared.settings.pipeline));
        self.versions().publish(next);
    }

    /// Puts `running` (minus any that just ended) and the ended canaries on the status board.
    fn show(&self, mut running: Vec<CanaryStatus>) {
        running.retain(|s| {
            s.state == CanaryState::Running && !self.finished.iter().any(|f| f.stage == s.stage)
        });
        running.extend(self.finished.iter().cloned());
        self.shared.rollout.show(running);
    }
}

/// A running canary's status, before any figures.
fn status(current: &LoadedPipeline, c: &CanaryModule) -> CanaryStatus {
    let stable_version = current
        .infos()
        .iter()
        .find(|i| i.name == c.info.name)
        .map(|i| i.module_sha256.to_string())
        .unwrap_or_default();
    CanaryStatus {
        stage: c.info.name.to_string(),
        stable_version,
        canary_version: c.info.module_sha256.to_string(),
        partitions: c.plan.describe(),
        state: CanaryState::Running,
        reason: None,
        stable: Default::default(),
        canary: Default::default(),
        rescued: c.rescued.load(Ordering::Relaxed),
        running_seconds: 0,
    }
}
