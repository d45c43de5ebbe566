//! Schema gates: a stage's `input_schema` and `output_schema`, checked around its call. A record
//! that fails the input gate never reaches the stage; an input any of whose outputs fails the
//! output gate is failed instead of its outputs going on. Either way it is dead-lettered with
//! error kind `schema-invalid`: the keyword of the first violation in `weir.error.code`, the
//! first violations (instance path and message, bounded) in `weir.error.message`. The rest of
//! the batch flows on.
//!
//! Owns: compiling the schemas and checking records. The chain decides where checks happen.

use std::sync::Arc;

use weir_config::SchemaGate;
use weir_core::{Failure, FailureKind, Record, StageOutcome};

/// How many violations one dead letter describes, and how long its message may get.
const MAX_VIOLATIONS: usize = 3;
const MAX_MESSAGE: usize = 512;

/// One compiled schema.
pub struct Gate {
    /// `input` or `output`, for messages and metrics.
    pub side: &'static str,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").field("side", &self.side).finish()
    }
}

/// A stage's gates.
#[derive(Debug, Default)]
pub struct Gates {
    pub input: Option<Gate>,
    pub output: Option<Gate>,
}

impl Gates {
    /// The gates of a stage, or `None` when it has none. The schemas were checked when the
    /// pipeline was read; one that does not compile here is skipped with an error log.
    pub fn new(
        input: Option<&SchemaGate>,
        output: Option<&SchemaGate>,
        stage: &str,
    ) -> Option<Arc<Self>> {
        let compile = |gate: Option<&SchemaGate>, side: &'static str| {
            let gate = gate?;
            match jsonschema::draft202012::new(&gate.schema) {
                Ok(validator) => Some(Gate { side, validator }),
                Err(error) => {
                    tracing::error!(stage, side, %error, "Schema does not compile; gate off.");
                    None
                }
            }
        };
        let gates = Self {
            input: compile(input, "input"),
            output: compile(output, "output"),
        };
        (gates.input.is_some() || gates.output.is_some()).then(|| Arc::new(gates))
    }
}

impl Gate {
    /// Why `record` does not pass, if it does not: its value must be JSON matching the schema.
    pub fn check(&self, record: &Record) -> Option<Failure> {
        let value = record
            .value
            .as_deref()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(bytes).ok());
        let Some(value) = value else {
            return Some(Failure {
                code: "json".into(),
                ..Failure::new(
                    FailureKind::SchemaInvalid,
                    format!("{} schema: the value is not JSON", self.side),
                )
            });
        };
        let mut errors = self.validator.iter_errors(&value).peekable();
        let keyword = errors.peek()?.kind().keyword().to_owned();
        let mut message = format!("{} schema:", self.side);
        for (i, error) in errors.take(MAX_VIOLATIONS).enumerate() {
            let path = error.instance_path().to_string();
            let path = if path.is_empty() { "/" } else { path.as_str() };
            let sep = if i == 0 { " " } else { "; " };
            message.push_str(&format!(
                "{sep}at {path}: {error} ({})",
                error.kind().keyword()
            ));
        }
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        Some(Failure {
            code: keyword,
            ..Failure::new(FailureKind::SchemaInvalid, message)
        })
    }
}

/// What a stage's gates found in one call: records each gate passed, and the keyword of the
/// first violation of each record it refused (for the data-quality metrics).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Checked {
    pub input_valid: u64,
    pub input_invalid: Vec<String>,
    pub output_valid: u64,
    pub output_invalid: Vec<String>,
}

/// Runs `process` over the records of `inputs` that pass `gates.input`, and fails every input
/// that does not pass, or any of whose outputs does not pass `gates.output`. Returns one outcome
/// per input, as a stage does, and what the gates found. The output gate checks an input's
/// outputs in order up to the first it refuses.
pub fn gated(
    gates: &Gates,
    inputs: &[Record],
    process: impl FnOnce(&[Record]) -> Vec<StageOutcome>,
) -> (Vec<StageOutcome>, Checked) {
    let mut checked = Checked::default();
    let refused: Vec<Option<Failure>> = match &gates.input {
        Some(gate) => inputs.iter().map(|r| gate.check(r)).collect(),
        None => vec![None; inputs.len()],
    };
    if gates.input.is_some() {
        for failure in &refused {
            match failure {
                Some(f) => checked.input_invalid.push(f.code.clone()),
                None => checked.input_valid += 1,
            }
        }
    }
    let mut outcomes: Vec<StageOutcome> = if refused.iter().all(Option::is_none) {
        process(inputs)
    } else {
        let passed: Vec<Record> = inputs
            .iter()
            .zip(&refused)
            .filter(|(_, failure)| failure.is_none())
            .map(|(record, _)| record.clone())
            .collect();
        let mut results = process(&passed).into_iter();
        refused
            .into_iter()
            .map(|failure| match failure {
                Some(failure) => Err(failure),
                None => results.next().unwrap_or_else(|| {
                    Err(Failure::new(
                        FailureKind::InvalidOutput,
                        "the stage answered fewer outcomes than records",
                    ))
                }),
            })
            .collect()
    };
    if let Some(gate) = &gates.output {
        for (outcome, input) in outcomes.iter_mut().zip(inputs) {
            let Ok(outputs) = outcome else { continue };
            let mut refusal = None;
            for out in outputs.iter(input) {
                match gate.check(out) {
                    None => checked.output_valid += 1,
                    Some(failure) => {
                        refusal = Some(failure);
                        break;
                    }
                }
            }
            if let Some(failure) = refusal {
                checked.output_invalid.push(failure.code.clone());
                *outcome = Err(failure);
            }
        }
    }
    (outcomes, checked)
}

#[cfg(test)]
mod tests;
