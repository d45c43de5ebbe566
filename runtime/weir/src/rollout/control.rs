//! The control topic: where instances of a pipeline share their rollout decisions, so a canary
//! rolled back, promoted or restarted on one ends the same way on all (and after a restart).
//!
//! Owns: [`Decision`] (its JSON shape on the topic) and [`Control`] (the latest decision per
//! stage). Touches only the control channel; what a decision does is the rollout's.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use weir_kafka::ControlChannel;

use super::canary::Action;

/// How long start-up reads the control topic for decisions already taken.
const CATCH_UP: Duration = Duration::from_millis(1500);

/// A rollout decision as the control topic carries it (key: the stage name).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Decision {
    /// The SHA-256 of the canary module it is about.
    pub canary: String,
    /// `start`, `promote` or `rollback`.
    pub verdict: Action,
    pub reason: String,
}

/// The decisions taken so far, and the channel they are shared on (if the pipeline has one).
#[derive(Default)]
pub(crate) struct Control {
    channel: Option<ControlChannel>,
    /// The latest decision per stage.
    decisions: BTreeMap<String, Decision>,
    /// Canary starts read from the control topic and carried out here, (stage, version).
    restarted: BTreeSet<(String, String)>,
}

impl Control {
    pub fn new(channel: Option<ControlChannel>) -> Self {
        Self {
            channel,
            ..Self::default()
        }
    }

    /// Reads the control topic until it has been quiet for a moment.
    pub fn catch_up(&mut self) {
        if self.channel.is_none() {
            return;
        }
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < CATCH_UP {
            if self.read() {
                quiet_since = Instant::now();
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Takes in the control records that arrived; whether there were any.
    pub fn read(&mut self) -> bool {
        let Some(channel) = &self.channel else {
            return false;
        };
        let mut any = false;
        while let Some((stage, value)) = channel.poll() {
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

    /// The stages whose canary the fleet restarted and this instance has not: each is
    /// returned once per canary version.
    pub fn restarts(&mut self, stopped: impl Fn(&str) -> bool) -> Vec<String> {
        let mut restarts = Vec::new();
        for (stage, d) in &self.decisions {
            if d.verdict == Action::Start
                && stopped(stage)
                && self.restarted.insert((stage.clone(), d.canary.clone()))
            {
                restarts.push(stage.clone());
            }
        }
        restarts
    }

    /// The fleet's promotion or rollback of stage `stage`'s canary `version`, if it took one.
    pub fn ended(&self, stage: &str, version: &str) -> Option<&Decision> {
        self.decisions
            .get(stage)
            .filter(|d| d.canary == version && d.verdict != Action::Start)
    }

    /// Records `decision` about stage `stage` as the latest, and writes it to the control topic
    /// when `publish` (a decision taken here rather than read from there).
    pub fn share(&mut self, stage: &str, decision: Decision, publish: bool) {
        if publish && let Some(channel) = &self.channel {
            let value = serde_json::to_vec(&decision).expect("a decision serialises");
            if let Err(error) = channel.publish(stage, &value, Duration::from_secs(10)) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_keep_their_json_shape() {
        let d = Decision {
            canary: "abc".into(),
            verdict: Action::Rollback,
            reason: "automatic: p99".into(),
        };
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(
            json,
            r#"{"canary":"abc","verdict":"rollback","reason":"automatic: p99"}"#
        );
        let start: Decision =
            serde_json::from_str(r#"{"canary":"x","verdict":"start","reason":"by an operator"}"#)
                .unwrap();
        assert_eq!(start.verdict, Action::Start);
        assert!(
            serde_json::from_str::<Decision>(r#"{"canary":"x","verdict":"maybe","reason":""}"#)
                .is_err()
        );
    }

    #[test]
    fn a_fleet_restart_is_carried_out_once_per_version() {
        let mut control = Control::default();
        let start = |version: &str| Decision {
            canary: version.into(),
            verdict: Action::Start,
            reason: String::new(),
        };
        control.share("geo", start("v2"), false);
        assert_eq!(control.restarts(|_| true), ["geo"]);
        assert!(control.restarts(|_| true).is_empty(), "once only");
        control.share("geo", start("v3"), false);
        assert!(control.restarts(|_| false).is_empty(), "not while one runs");
        assert_eq!(control.restarts(|_| true), ["geo"]);
        assert!(control.ended("geo", "v3").is_none(), "a start ends nothing");
    }
}
