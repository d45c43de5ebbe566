//! The admin API's requests, as the engine answers them: reloads (the request SIGHUP makes) and
//! canary actions, both carried out later by the reload thread, and tap clients, attached to
//! the tap hub.
//!
//! Owns: [`AdminControl`], the engine's side of [`weir_telemetry::Control`]. Touches only the
//! reload flag, the rollout board's requests and the tap hub; never a lane.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use weir_telemetry::{Control, LineStream, Refusal};

use crate::rollout::Action;
use crate::shared::Shared;

pub(crate) struct AdminControl {
    /// The reload thread's request flag; `None` when hot reload is off.
    pub requested: Option<Arc<AtomicBool>>,
    pub shared: Arc<Shared>,
}

impl Control for AdminControl {
    fn reload(&self) -> Result<(), Refusal> {
        match &self.requested {
            Some(flag) => {
                flag.store(true, Ordering::Release);
                Ok(())
            }
            None => Err(Refusal::Unavailable(
                "hot reload is off in this process".into(),
            )),
        }
    }

    fn canary_status(&self) -> String {
        serde_json::to_string_pretty(&self.shared.rollout.board()).unwrap_or_else(|_| "[]".into())
    }

    fn canary(&self, stage: &str, action: &str) -> Result<String, Refusal> {
        if self.requested.is_none() {
            return Err(Refusal::Unavailable(
                "hot reload is off in this process, and canaries with it".into(),
            ));
        }
        let Some(action) = Action::parse(action) else {
            return Err(Refusal::BadRequest(format!(
                "unknown canary action {action:?} (start, promote or rollback)"
            )));
        };
        let current = self.shared.versions.current();
        if !current.infos().iter().any(|i| &*i.name == stage) {
            return Err(Refusal::NotFound(format!("no stage named {stage:?}")));
        }
        self.shared.rollout.request(stage, action);
        Ok(format!(
            "{} of the canary of stage {stage:?} requested; see `weir canary status`",
            action.as_str()
        ))
    }

    fn tap(&self, query: &str) -> Result<Box<dyn LineStream>, Refusal> {
        let filter = crate::tap::TapFilter::parse(query).map_err(Refusal::BadRequest)?;
        let current = self.shared.versions.current();
        if let Some(unknown) = filter
            .stages
            .iter()
            .find(|s| !current.infos().iter().any(|i| &*i.name == s.as_str()))
        {
            return Err(Refusal::NotFound(format!(
                "no enrich stage named {unknown:?} (tap shows enrich stages)"
            )));
        }
        Ok(Box::new(self.shared.tap.attach(filter)?))
    }
}
