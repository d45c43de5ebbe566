//! `weir test`: runs a pipeline's `[[test]]` cases through its stages, without Kafka.

use std::fmt::Write as _;

use std::sync::Arc;
use weir_config::{Expectation, Pipeline, TestCase};

use weir_core::{Bytes, Header, Record};

use crate::aggregate::{AggregateLane, Fate};
use crate::chain::Emit;
use crate::loader::LoadedPipeline;

/// The outcome of one `[[test]]` case.
#[derive(Debug)]
pub struct CaseReport {
    pub name: String,
    /// One line per unmet expectation; empty when the case passed.
    pub failures: Vec<String>,
}

/// What one stage did with a test's input.
#[derive(Debug, Default)]
struct StageResult {
    outputs: Vec<Record>,
    /// `(kind, code, message)` of each record that failed in the stage.
    errors: Vec<(String, String, String)>,
}

/// Runs every test case of `pipeline`.
pub fn run_cases(pipeline: &Pipeline, loaded: &LoadedPipeline) -> Vec<CaseReport> {
    pipeline
        .tests
        .iter()
        .map(|case| run_case(pipeline, loaded, || loaded.chain(true), case))
        .collect()
}

/// The same cases with every stage's canary in place of its stable version; `None` when no
/// stage has a canary.
pub fn run_canary_cases(pipeline: &Pipeline, loaded: &LoadedPipeline) -> Option<Vec<CaseReport>> {
    if loaded.canaries().iter().all(Option::is_none) {
        return None;
    }
    Some(
        pipeline
            .tests
            .iter()
            .map(|case| {
                let mut report = run_case(
                    pipeline,
                    loaded,
                    || loaded.canary_chain().expect("a canary was found above"),
                    case,
                );
                report.name = format!("{} (canaries in place)", report.name);
                report
            })
            .collect(),
    )
}

fn run_case(
    pipeline: &Pipeline,
    loaded: &LoadedPipeline,
    make_chain: impl Fn() -> Result<crate::chain::Chain, weir_wasm::WasmError>,
    case: &TestCase,
) -> CaseReport {
    let aggregate = loaded.aggregate();
    let mut chain = match make_chain() {
        Ok(c) => c.with_forward(aggregate.is_some()),
        Err(e) => {
            return CaseReport {
                name: case.name.clone(),
                failures: vec![format!("cannot instantiate the stages: {e}")],
            };
        }
    };
    let records: Vec<Record> = case
        .input
        .iter()
        .zip(0..)
        .map(|(r, offset)| Record {
            offset,
            timestamp: r.timestamp,
            key: r.key.as_ref().map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: Some(Bytes::copy_from_slice(r.value.as_bytes())),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| Header::new(k, Some(v.as_bytes())))
                .collect(),
        })
        .collect();
    let topic = pipeline
        .source
        .topics
        .first()
        .map_or("test", String::as_str);
    let mut per_stage: Vec<StageResult> = pipeline
        .stages
        .iter()
        .map(|_| StageResult::default())
        .collect();
    let run = chain.run(topic, 0, &records);
    if let Some(loaded) = aggregate {
        // The aggregate stage folds what the chain handed on, then every window is closed: a
        // test case is a finite input.
        let stage = &mut per_stage[pipeline.stages.len() - 1];
        let mut lane = match AggregateLane::detached(Arc::clone(loaded), topic) {
            Ok(lane) => lane,
            Err(e) => {
                return CaseReport {
                    name: case.name.clone(),
                    failures: vec![format!("cannot instantiate the aggregate stage: {e}")],
                };
            }
        };
        let inputs: Vec<_> = run
            .forwarded
            .into_iter()
            .map(|(_, r, _)| (r, ([0; 16], [0; 8])))
            .collect();
        for fate in lane.fold(&inputs) {
            if let Fate::Failed(f) = fate {
                stage
                    .errors
                    .push((f.kind.as_str().to_owned(), f.code, f.message));
            }
        }
        let mut results = lane.closed();
        results.extend(lane.close_all());
        for result in results {
            match result.outputs {
                Ok(outputs) => stage.outputs.extend(outputs),
                Err(f) => stage
                    .errors
                    .push((f.kind.as_str().to_owned(), f.code, f.message)),
            }
        }
    }
    let chain_len = chain.infos().len();
    for emit in run.emits.into_iter().flatten() {
        match emit {
            Emit::Output { stage, record, .. } => {
                per_stage[stage.position(chain_len)].outputs.push(record)
            }
            Emit::DeadLetter { stage, failure, .. } => {
                per_stage[stage.position(chain_len)].errors.push((
                    failure.kind.as_str().to_owned(),
                    failure.code,
                    failure.message,
                ))
            }
        }
    }
    let failures = case
        .expect
        .iter()
        .filter_map(|e| {
            let index = pipeline.stages.iter().position(|s| s.name == e.stage)?;
            check(e, &per_stage[index])
        })
        .collect();
    CaseReport {
        name: case.name.clone(),
        failures,
    }
}

/// Whether one stage's results meet `e`; the reason when they do not.
fn check(e: &Expectation, got: &StageResult) -> Option<String> {
    let mut problems = Vec::new();
    if let Some(n) = e.count
        && got.outputs.len() != n
    {
        problems.push(format!("expected {n} records, got {}", got.outputs.len()));
    }
    if let Some(kind) = &e.error
        && !got.errors.iter().any(|(k, c, _)| k == kind || c == kind)
    {
        problems.push(format!(
            "expected an error `{kind}`, got {}",
            describe_errors(&got.errors)
        ));
    }
    let wants_record = e.value.is_some() || e.value_contains.is_some() || e.key.is_some();
    if wants_record {
        let matches = |r: &Record| {
            let value = r.value.as_deref().map(String::from_utf8_lossy);
            let key = r.key.as_deref().map(String::from_utf8_lossy);
            e.value
                .as_deref()
                .is_none_or(|v| value.as_deref() == Some(v))
                && e.value_contains
                    .as_deref()
                    .is_none_or(|v| value.as_deref().is_some_and(|x| x.contains(v)))
                && e.key.as_deref().is_none_or(|k| key.as_deref() == Some(k))
        };
        if !got.outputs.iter().any(matches) {
            let mut want = Vec::new();
            if let Some(v) = &e.value {
                want.push(format!("value = {v:?}"));
            }
            if let Some(v) = &e.value_contains {
                want.push(format!("value containing {v:?}"));
            }
            if let Some(k) = &e.key {
                want.push(format!("key = {k:?}"));
            }
            let mut msg = format!("no record with {}; got", want.join(" and "));
            if got.outputs.is_empty() {
                msg.push_str(" no records");
            }
            for r in &got.outputs {
                let _ = write!(
                    msg,
                    "\n      key={:?} value={:?}",
                    r.key.as_deref().map(String::from_utf8_lossy),
                    r.value.as_deref().map(String::from_utf8_lossy)
                );
            }
            if !got.errors.is_empty() {
                let _ = write!(msg, "\n      and errors: {}", describe_errors(&got.errors));
            }
            problems.push(msg);
        }
    }
    (!problems.is_empty()).then(|| format!("stage {}: {}", e.stage, problems.join("; ")))
}

fn describe_errors(errors: &[(String, String, String)]) -> String {
    if errors.is_empty() {
        return "none".into();
    }
    errors
        .iter()
        .map(|(k, c, m)| {
            if c.is_empty() {
                format!("{k}: {m}")
            } else {
                format!("{k} ({c}): {m}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}
