//! Checks across sections: stage names, and topics that would loop back into the pipeline.
//!
//! Reading fills [`Crossrefs`] with every value these checks look at, as far as it could be read,
//! so that the checks run, and report, even when other parts of the file are wrong.

use crate::reader::Value;
use crate::report::{Place, Report, Span};

/// A value as read, with where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Written<T> {
    pub value: T,
    pub span: Span,
    pub place: Place,
}

impl<T> Written<T> {
    pub(crate) fn new(at: &Value<'_, '_>, value: T) -> Self {
        Self {
            value,
            span: at.span(),
            place: at.place().clone(),
        }
    }

    fn error(&self, report: &mut Report<'_>, message: impl std::fmt::Display) {
        report.error(&self.span, &self.place, message);
    }
}

/// What one stage contributes to the checks.
#[derive(Debug, Clone)]
pub(crate) struct StageRefs {
    /// How messages name the stage, such as `stage "geo"`.
    pub place: Place,
    /// The stage's table.
    pub span: Span,
    pub name: Option<Written<String>>,
    pub output: Option<Written<String>>,
    /// The `sink` it names.
    pub sink: Option<Written<String>>,
    /// Whether an `output` or `sink` key is present, valid or not.
    pub has_output: bool,
    /// Whether it is an aggregate stage.
    pub aggregate: bool,
}

/// What one `[sinks.<name>]` table contributes to the checks.
#[derive(Debug, Clone)]
pub(crate) struct SinkRefs {
    pub name: String,
    /// The topic of a `kind = "kafka"` sink.
    pub topic: Option<Written<String>>,
    /// Whether it is a `kind = "parquet"` sink.
    pub parquet: bool,
    /// The `kind` of a store (any sink but Kafka).
    pub store: Option<&'static str>,
    /// Whether it is a parquet sink with `schema = "dead-letters"`.
    pub dead_letters: bool,
}

/// The values the cross-section checks look at.
#[derive(Debug, Default)]
pub(crate) struct Crossrefs {
    pub source_topics: Vec<Written<String>>,
    pub stages: Vec<StageRefs>,
    pub dead_letter: Option<Written<String>>,
    /// The `sink` of `[dead_letter]`.
    pub dead_letter_sink: Option<Written<String>>,
    /// The `redact` of `[dead_letter]`, which needs `[privacy]`.
    pub dead_letter_redact: Option<Written<bool>>,
    pub sinks: Vec<SinkRefs>,
    /// The `stage` of every test expectation.
    pub expected_stages: Vec<Written<String>>,
}

impl Crossrefs {
    /// Runs every check, reporting each problem at the value that causes it.
    pub(crate) fn check(&self, report: &mut Report<'_>) {
        self.unique_stage_names(report);
        self.last_stage_has_output(report);
        self.sinks_exist(report);
        self.no_feedback(report);
        self.expectations_name_stages(report);
    }

    fn stage_names(&self) -> impl Iterator<Item = &Written<String>> {
        self.stages.iter().filter_map(|stage| stage.name.as_ref())
    }

    fn unique_stage_names(&self, report: &mut Report<'_>) {
        let names: Vec<&Written<String>> = self.stage_names().collect();
        for (i, name) in names.iter().enumerate() {
            if let Some(first) = names[..i].iter().find(|first| first.value == name.value) {
                let line = report.location(first.span.start).line;
                let message = format!(
                    "duplicate stage name {:?}, already used by the stage at line {line}",
                    name.value
                );
                report.error(&name.span, &name.place.owner_place(), message);
            }
        }
    }

    fn last_stage_has_output(&self, report: &mut Report<'_>) {
        if let Some(last) = self.stages.last()
            && !last.has_output
        {
            report.error(
                &last.span,
                &last.place,
                "the last stage needs an `output` topic or a `sink`, or its results would go \
                 nowhere",
            );
        }
    }

    fn sinks_exist(&self, report: &mut Report<'_>) {
        let names = || {
            let names: Vec<&str> = self.sinks.iter().map(|sink| sink.name.as_str()).collect();
            if names.is_empty() {
                "there is no [sinks.<name>] table".to_owned()
            } else {
                format!("sinks: {}", names.join(", "))
            }
        };
        for stage in self.stages.iter().filter(|stage| stage.aggregate) {
            let hot = stage.sink.as_ref().and_then(|named| {
                let sink = self.sinks.iter().find(|sink| sink.name == named.value)?;
                matches!(sink.store, Some("postgres" | "redis")).then_some((named, sink))
            });
            if let Some((named, sink)) = hot {
                named.error(
                    report,
                    format_args!(
                        "{:?} is a {} sink: an aggregate stage's window results go to a topic or \
                         a parquet sink (a hot store cannot tell a replayed window result from a \
                         new one yet)",
                        named.value,
                        sink.store.unwrap_or_default()
                    ),
                );
            }
        }
        let stages = self.stages.iter().filter_map(|stage| stage.sink.as_ref());
        let stages = stages.map(|named| (named, false));
        for (named, letters) in stages.chain(self.dead_letter_sink.iter().map(|n| (n, true))) {
            match self.sinks.iter().find(|sink| sink.name == named.value) {
                None => named.error(
                    report,
                    format_args!("no sink is named {:?} ({})", named.value, names()),
                ),
                Some(sink) if sink.parquet && letters && !sink.dead_letters => {
                    named.error(
                        report,
                        format_args!(
                            "{:?} is a parquet sink for stage results: dead letters go to a \
                             parquet sink with `schema = \"dead-letters\"`",
                            named.value
                        ),
                    );
                }
                Some(sink) if letters && matches!(sink.store, Some("postgres" | "redis")) => {
                    named.error(
                        report,
                        format_args!(
                            "{:?} is a {} sink: dead letters go to a topic or to a parquet \
                             sink with `schema = \"dead-letters\"`",
                            named.value,
                            sink.store.unwrap_or_default()
                        ),
                    );
                }
                Some(sink) if sink.dead_letters && !letters => {
                    named.error(
                        report,
                        format_args!(
                            "{:?} holds dead letters (`schema = \"dead-letters\"`): stage \
                             results need a sink of their own",
                            named.value
                        ),
                    );
                }
                Some(_) => {}
            }
        }
    }

    /// The topic a stage publishes to: its `output`, or its kafka sink's topic.
    fn stage_topic<'s>(&'s self, stage: &'s StageRefs) -> Option<&'s Written<String>> {
        stage.output.as_ref().or_else(|| {
            let name = &stage.sink.as_ref()?.value;
            let sink = self.sinks.iter().find(|sink| &sink.name == name)?;
            sink.topic.as_ref()
        })
    }

    fn source_topic(&self, topic: &str) -> bool {
        self.source_topics
            .iter()
            .any(|source| source.value == topic)
    }

    fn no_feedback(&self, report: &mut Report<'_>) {
        for stage in &self.stages {
            if let Some(output) = self.stage_topic(stage)
                && self.source_topic(&output.value)
            {
                output.error(
                    report,
                    format_args!(
                        "{:?} is also a source topic: the stage's results would feed back \
                         into the pipeline",
                        output.value
                    ),
                );
            }
        }
        let kafka_sink = self.dead_letter_sink.as_ref().and_then(|name| {
            let sink = self.sinks.iter().find(|sink| sink.name == name.value)?;
            sink.topic.as_ref()
        });
        let Some(dead_letter) = self.dead_letter.as_ref().or(kafka_sink) else {
            return;
        };
        if self.source_topic(&dead_letter.value) {
            dead_letter.error(
                report,
                format_args!(
                    "{:?} is also a source topic: dead letters would feed back into the pipeline",
                    dead_letter.value
                ),
            );
        }
        let same_output = self.stages.iter().find(|stage| {
            let output = self.stage_topic(stage).map(|output| &output.value);
            output == Some(&dead_letter.value)
        });
        if let Some(stage) = same_output {
            dead_letter.error(
                report,
                format_args!(
                    "{:?} is also the output of {}: dead letters need a topic of their own",
                    dead_letter.value, stage.place
                ),
            );
        }
    }

    fn expectations_name_stages(&self, report: &mut Report<'_>) {
        // Without every stage's name, a test could be blamed for a mistake in a stage.
        if self.stages.is_empty() || self.stages.iter().any(|stage| stage.name.is_none()) {
            return;
        }
        let names: Vec<&str> = self.stage_names().map(|name| name.value.as_str()).collect();
        for expected in &self.expected_stages {
            if !names.contains(&expected.value.as_str()) {
                expected.error(
                    report,
                    format_args!(
                        "no stage is named {:?} (stages: {})",
                        expected.value,
                        names.join(", ")
                    ),
                );
            }
        }
    }
}
