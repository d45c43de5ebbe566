//! The typed pipeline configuration. These structs are the reference for the pipeline file: each
//! field is a key of the TOML file, and its documentation states the default when it has one.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// A pipeline file: Kafka topics in, a chain of WebAssembly stages, Kafka topics out.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// `name`, required: the pipeline's name, made of ASCII letters, digits, `.`, `_` and `-`.
    /// It appears in record headers and metric labels.
    pub name: String,
    /// `[source]`, required: where records come from.
    pub source: Source,
    /// `[[stage]]`, at least one: the stages each record goes through, in file order.
    pub stages: Vec<Stage>,
    /// `[dead_letter]`, required: where records that fail a stage go.
    pub dead_letter: DeadLetter,
    /// `[sink]`, optional: how results are published to Kafka.
    pub sink: Sink,
    /// `[sinks.<name>]`, optional: named sinks a stage or the dead letters can write to instead
    /// of a topic, in file order. Default none.
    pub sinks: Vec<crate::NamedSink>,
    /// `[telemetry]`, optional: metrics, health and tracing endpoints.
    pub telemetry: Telemetry,
    /// `[security]`, optional: TLS and SASL for every Kafka client of the pipeline. Default:
    /// plaintext, no authentication.
    pub security: crate::Security,
    /// `[control]`, optional: where the instances of this pipeline share rollout decisions.
    pub control: Option<Control>,
    /// `[privacy]`, optional: the fields and headers of records that hold personal data, and
    /// how they are redacted. Default: none, nothing is redacted.
    pub privacy: Option<crate::Privacy>,
    /// `[[test]]`, optional: test cases run by `weir test`, without Kafka.
    pub tests: Vec<TestCase>,
    /// The pipeline file this was read from, as given to [`crate::load`] or [`crate::parse`].
    pub path: PathBuf,
}

impl Pipeline {
    /// Every topic the pipeline writes to: stage outputs in stage order, then the dead-letter
    /// topic, each once (topics of `kind = "kafka"` sinks included).
    pub fn all_output_topics(&self) -> Vec<&str> {
        let outputs = self
            .stages
            .iter()
            .filter_map(|stage| self.stage_target(stage));
        let mut topics: Vec<&str> = Vec::new();
        for target in outputs.chain([self.dead_letter_target()]) {
            if let Target::Topic(topic) = target
                && !topics.contains(&topic)
            {
                topics.push(topic);
            }
        }
        topics
    }

    /// The sink named `name` under `[sinks]`.
    pub fn named_sink(&self, name: &str) -> Option<&crate::NamedSink> {
        self.sinks.iter().find(|sink| sink.name == name)
    }

    /// Where `stage`'s results are published, if anywhere: its `output` topic, or its `sink`
    /// (a `kind = "kafka"` sink's topic is given as a topic).
    pub fn stage_target<'a>(&'a self, stage: &'a Stage) -> Option<Target<'a>> {
        if let Some(topic) = &stage.output {
            return Some(Target::Topic(topic));
        }
        stage.sink.as_deref().map(|name| self.target_of(name))
    }

    /// Where dead letters go: `[dead_letter]`'s topic or sink.
    pub fn dead_letter_target(&self) -> Target<'_> {
        match &self.dead_letter {
            DeadLetter::Topic(topic) => Target::Topic(topic),
            DeadLetter::Sink(name) => self.target_of(name),
        }
    }

    fn target_of(&self, name: &str) -> Target<'_> {
        let sink = self
            .named_sink(name)
            .expect("validation checks that every sink named exists");
        match &sink.kind {
            crate::SinkKind::Kafka { topic } => Target::Topic(topic),
            _ => Target::Store(sink),
        }
    }
}

/// Where records go: a Kafka topic, or a named sink that is not Kafka.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target<'a> {
    Topic(&'a str),
    Store(&'a crate::NamedSink),
}

/// `[source]`: the Kafka topics a pipeline consumes, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// `brokers`, required: comma-separated `host:port` list of bootstrap brokers, such as
    /// `"kafka-1:9092,kafka-2:9092"`. Every broker needs a port.
    pub brokers: String,
    /// `topics`, required: the topics to consume, at least one.
    pub topics: Vec<String>,
    /// `group`, required: the Kafka consumer group id. Offsets are committed under it.
    pub group: String,
    /// `start`: where a consumer group without committed offsets starts reading:
    /// `"earliest"` (default) or `"latest"`.
    pub start: StartFrom,
    /// `batch_size`: the most records handed to one stage call, from 1 to 65536.
    /// Default 256.
    pub batch_size: usize,
    /// `queue_capacity`: records fetched ahead per partition. librdkafka stops fetching a
    /// partition whose queue holds this many (its `queued.min.messages`) until the partition's
    /// lane has taken them. At least `batch_size`. Default 2048.
    pub queue_capacity: usize,
    /// `commit_interval`: how often processed offsets are committed, such as `"1s"` or
    /// `"500ms"`. Must be more than zero. Default 1s.
    pub commit_interval: Duration,
    /// `drain_timeout`: how long a partition revoke or a shutdown waits for in-flight records
    /// to finish before giving up on them (they are then processed again after the restart or
    /// by the partition's new owner). Default 10s.
    pub drain_timeout: Duration,
    /// `lane_workers`: how many threads run the lanes, from 1 to 1024. Each worker serves
    /// many partitions in turn, a batch at a time, so an instance that owns hundreds of
    /// partitions runs this many threads, not hundreds. Default: the number of cores the
    /// process may use (`None` here).
    pub lane_workers: Option<usize>,
    /// `kafka`: raw librdkafka consumer properties, such as `{ "fetch.min.bytes" = "1" }`.
    /// Numbers and booleans are accepted and passed as strings. Default none. Refused, because
    /// Weir sets them or its guarantees rest on them: `bootstrap.servers` and `group.id` (use
    /// `brokers` and `group`), `enable.auto.commit`, `enable.auto.offset.store`,
    /// `enable.partition.eof`, a `group.protocol` other than `classic`, and
    /// `group.instance.id` (use `instance_id`). `"partition.assignment.strategy" =
    /// "cooperative-sticky"` rebalances incrementally: only the partitions that change owner
    /// pause.
    pub kafka: BTreeMap<String, String>,
    /// `instance_id`: this member's static membership id in the group (Kafka's
    /// `group.instance.id`): ASCII letters, digits, `.`, `_` and `-`, at most 249 characters.
    /// A static member that stops and comes back within the group's session timeout
    /// (`session.timeout.ms`) gets its partitions back without a rebalance of the group, and one
    /// that stops does not leave the group: its partitions move only when the session times out.
    /// Every member of a group needs its own, so it is usually given per process with
    /// `weir run --instance-id` or `WEIR_INSTANCE_ID` (a StatefulSet pod's name), which override
    /// this field. Default none: dynamic membership, a rebalance on every join and leave.
    pub instance_id: Option<String>,
}

impl Source {
    /// Default of [`Source::batch_size`].
    pub const DEFAULT_BATCH_SIZE: usize = 256;
    /// Largest accepted [`Source::batch_size`].
    pub const MAX_BATCH_SIZE: usize = 65536;
    /// Default of [`Source::queue_capacity`].
    pub const DEFAULT_QUEUE_CAPACITY: usize = 2048;
    /// Default of [`Source::commit_interval`].
    pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(1);
    /// Default of [`Source::drain_timeout`].
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
    /// Largest accepted [`Source::lane_workers`].
    pub const MAX_LANE_WORKERS: usize = 1024;
}

/// Where a consumer group without committed offsets starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// `"earliest"`: from the oldest record still in the topic.
    #[default]
    Earliest,
    /// `"latest"`: only records produced from now on.
    Latest,
}

/// `[[stage]]`: one WebAssembly module records go through.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// `name`, required: unique among the pipeline's stages, made of ASCII letters, digits,
    /// `.`, `_` and `-`. It appears in record headers and metric labels.
    pub name: String,
    /// `kind`: what the stage does with records. Default `"enrich"`.
    pub kind: StageKind,
    /// `module`, required: the stage's WebAssembly component. A relative path is relative to
    /// the directory of the pipeline file; this field holds the resolved path.
    pub module: PathBuf,
    /// `config`: any table, handed to the module's `init` as JSON. Default `{}`.
    pub config: serde_json::Value,
    /// `limits`: the resources one instance of the module may use.
    pub limits: Limits,
    /// `output`: a topic to publish the stage's results to, in addition to passing them to the
    /// next stage. The last stage needs `output` or `sink`, whose results would otherwise go
    /// nowhere.
    pub output: Option<String>,
    /// `sink`: the name of a `[sinks.<name>]` table to publish the stage's results to, instead
    /// of an `output` topic (a stage has at most one of the two). Default: none.
    pub sink: Option<String>,
    /// `partitioning`: which partition of `output` a result goes to. Default `"source"`.
    pub partitioning: Partitioning,
    /// `input_schema`: a JSON Schema (draft 2020-12) every record entering the stage must
    /// match, as a file next to the pipeline (`"schemas/click.json"`) or an inline table. A
    /// record that does not (or whose value is not JSON) is dead-lettered with error kind
    /// `schema-invalid`, the first violations' keyword in `weir.error.code` and their instance
    /// paths in `weir.error.message`, without reaching the stage. Enrich stages only. Default:
    /// none.
    pub input_schema: Option<SchemaGate>,
    /// `output_schema`: the same for every record the stage produces: an input any of whose
    /// outputs does not match is dead-lettered (as it entered the stage) instead of its outputs
    /// going on. Enrich stages only. Default: none.
    pub output_schema: Option<SchemaGate>,
    /// `[stage.canary]`: a new version of the module, run on some partitions only, compared
    /// with this one and rolled back automatically on regression. Enrich stages only.
    /// Default: none.
    pub canary: Option<Canary>,
    /// The windowing of an aggregate stage (`kind = "aggregate"`): `None` for enrich stages.
    pub aggregate: Option<Aggregate>,
    /// Line of the stage in the pipeline file, for messages.
    pub line: usize,
    /// Where `module` is written in the pipeline file, for messages.
    pub module_location: Location,
}

/// A stage's `input_schema` or `output_schema`, checked to be a valid JSON Schema when read.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaGate {
    /// The schema.
    pub schema: serde_json::Value,
    /// The file it was read from, if it was not inline.
    pub file: Option<PathBuf>,
}

/// `[stage.canary]`: the next version of a stage's module, on some partitions only.
#[derive(Debug, Clone, PartialEq)]
pub struct Canary {
    /// `module`, required: the canary's WebAssembly component, relative to the pipeline file
    /// like the stage's; this field holds the resolved path.
    pub module: PathBuf,
    /// `config`: handed to the canary's `init`. Default: the stage's `config`.
    pub config: Option<serde_json::Value>,
    /// `partitions` or `share` (exactly one): which source partitions run the canary.
    pub cohort: CanaryCohort,
    /// `rollback`: when the canary is rolled back automatically.
    pub rollback: Rollback,
    /// `promote_after`: promote the canary to every partition after it has run this long
    /// without a rollback, such as `"30m"`. Default: never automatically.
    pub promote_after: Option<Duration>,
    /// `rescue`: re-run a record that fails on the canary on the stable version before
    /// dead-lettering it, so a bad canary costs latency, not data. Default true.
    pub rescue: bool,
}

/// Which partitions run a canary.
#[derive(Debug, Clone, PartialEq)]
pub enum CanaryCohort {
    /// `partitions = [0, 3]`: these partition numbers.
    Partitions(Vec<i32>),
    /// `share = 0.25`: about this share of partitions, chosen by a hash of the partition number
    /// (the same choice on every instance).
    Share(f64),
}

/// `rollback` of `[stage.canary]`: thresholds over a sliding window of the canary's records.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rollback {
    /// `max_error_rate`: the largest share of the canary's records that may fail (stage
    /// errors, traps, timeouts, memory) before it is rolled back, from 0 to 1. Default 0.01.
    pub max_error_rate: f64,
    /// `max_p99`: the largest 99th percentile of the canary's stage calls, such as `"20ms"`.
    /// Default: not checked.
    pub max_p99: Option<Duration>,
    /// `min_records`: records the canary must have handled in the window before any verdict.
    /// Default 1000.
    pub min_records: u64,
    /// `window`: how far back the comparison looks, such as `"1m"`. Default 1m.
    pub window: Duration,
}

impl Default for Rollback {
    fn default() -> Self {
        Self {
            max_error_rate: 0.01,
            max_p99: None,
            min_records: 1000,
            window: Duration::from_secs(60),
        }
    }
}

/// What a stage does with records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StageKind {
    /// `"enrich"`: each input record becomes zero, one or more output records, or an error.
    #[default]
    Enrich,
    /// `"aggregate"`: records are folded, per key, into event-time windows whose accumulators
    /// the runtime keeps and checkpoints; each closed window becomes output records. Only the
    /// last stage of a pipeline may be an aggregate.
    Aggregate,
}

/// The keys of an aggregate stage's `[[stage]]` table (beside `name`, `module`, `config`,
/// `limits`, `output` and `partitioning`, which mean what they mean for any stage).
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// `key`: a JSON pointer (RFC 6901, such as `"/user/id"`) into the record's value that gives
    /// its grouping key; a string is taken as its text, any other JSON value as its JSON text.
    /// Default: the record's Kafka key. A record without a key is dead-lettered.
    pub key: Option<String>,
    /// `time`: a JSON pointer into the value that gives the record's event time, as a number of
    /// milliseconds since the Unix epoch (or a string of such digits). Default: the record's
    /// Kafka timestamp. A record without an event time is dead-lettered.
    pub time: Option<String>,
    /// `window`, required: `{ tumbling = "10s" }`, `{ hopping = { size = "1m", every = "10s" } }`
    /// or `{ session = { gap = "30s" } }`. Sizes are whole milliseconds or more.
    pub window: WindowKind,
    /// `lateness`: how far behind the newest event time of its partition a record may be and
    /// still count. A window closes, and is emitted, once the partition's newest event time
    /// passes its end plus this. Default 0s.
    pub lateness: Duration,
    /// `late`: what becomes of a record that arrives after every window it belongs to closed:
    /// `"dead-letter"` (default) or `"drop"`. Both are counted.
    pub late: LatePolicy,
    /// `idle_timeout`: once a partition has received nothing for this long, its event time is
    /// taken to advance with the wall clock, so its windows still close. Default 1m.
    pub idle_timeout: Duration,
    /// `max_windows`: the most open (key, window) accumulators one source partition may hold.
    /// Default 100000.
    pub max_windows: usize,
    /// `on_full`: what happens when a batch would exceed `max_windows`: `"fail"` (default: the
    /// batch's records are dead-lettered with error kind `state-full` and the state is left as
    /// it was) or `"evict-oldest"` (the windows that end first are emitted early).
    pub on_full: OnFull,
    /// `changelog`: the compacted topic the accumulators are checkpointed to, with at least as
    /// many partitions as each source topic (the state of source partition N goes to changelog
    /// partition N). Created with `cleanup.policy=compact` when missing.
    /// Default `"<pipeline>.<stage>.changelog"`.
    pub changelog: String,
}

impl Aggregate {
    /// Default of [`Aggregate::idle_timeout`].
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default of [`Aggregate::max_windows`].
    pub const DEFAULT_MAX_WINDOWS: usize = 100_000;
}

/// `window` of an aggregate stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// `{ tumbling = "10s" }`: back-to-back windows of this size.
    Tumbling(Duration),
    /// `{ hopping = { size = "1m", every = "10s" } }`: windows of `size` starting every
    /// `every` (a record belongs to `size / every` of them). `every` at most `size`.
    Hopping { size: Duration, every: Duration },
    /// `{ session = { gap = "30s" } }`: per key, records closer than `gap` share a window.
    Session { gap: Duration },
}

/// `late` of an aggregate stage: `"dead-letter"` or `"drop"`. The pipeline file names the
/// fold's own policy, so no second copy of it lives here.
pub use weir_core::aggregate::LatePolicy;

/// `on_full` of an aggregate stage: `"fail"` or `"evict-oldest"`. The pipeline file names the
/// window state's own policy, so no second copy of it lives here.
pub use weir_core::window::OnFull;

/// `limits` of a stage: what one instance of its module may use (weir-core's own type; its
/// fields are the table's keys).
pub use weir_core::Limits;

/// Which partition of a stage's `output` topic a result goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Partitioning {
    /// `"source"`: the partition with the same number as the source record's.
    #[default]
    Source,
    /// `"key"`: the producer's partitioner picks the partition from the record key.
    Key,
}

/// `[dead_letter]`: where records that fail a stage go, with headers saying why. Exactly one
/// of `topic` and `sink` is required. Its `redact` key (optional, default false: dead letters
/// are redacted too, which needs `[privacy]`) is read into [`crate::Privacy::redact_dead_letters`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetter {
    /// `topic`: the dead-letter topic. It may not be a source topic or a stage output.
    Topic(String),
    /// `sink`: the name of a `[sinks.<name>]` table: a `kind = "kafka"` sink, whose topic takes
    /// the dead letters, or a `kind = "parquet"` sink with `schema = "dead-letters"`, whose
    /// rows are the letters (see [`crate::DEAD_LETTER_COLUMNS`]).
    Sink(String),
}

/// `[sink]`: how results and dead letters are published.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sink {
    /// `kafka`: raw librdkafka producer properties, such as `{ "linger.ms" = "5" }`.
    /// Numbers and booleans are accepted and passed as strings. Default none. Refused, because
    /// Weir sets them or its guarantees rest on them: `bootstrap.servers` (use
    /// `source.brokers`), `enable.idempotence`, `acks` other than `all`, `transactional.id`.
    pub kafka: BTreeMap<String, String>,
    /// `delivery`: `"at-least-once"` (default) or `"exactly-once"`.
    pub delivery: Delivery,
}

/// `delivery` of `[sink]`: what a crash or a rebalance can do to the outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// `"at-least-once"`: offsets are committed once every output of the records before them
    /// is acknowledged. After a crash, the records since the last commit are processed again,
    /// so an output can be published twice; none is lost.
    #[default]
    AtLeastOnce,
    /// `"exactly-once"`: each partition's lane writes its outputs, dead letters, aggregate
    /// checkpoints and consumed offsets in one Kafka transaction per `commit_interval`
    /// (transactional id `<group>.<topic>.<partition>`). Consumers that read the outputs with
    /// `isolation.level=read_committed` see each result once, whatever crashes or rebalances
    /// happen. The brokers must support transactions.
    ExactlyOnce,
}

/// `[control]`: a compacted topic on the source cluster where every instance of the pipeline
/// records and reads canary verdicts (rollbacks, promotions), so all instances apply the same
/// rollout, a partition that moves keeps its cohort, and a restart remembers. Create it with
/// `cleanup.policy=compact`. Without it, each instance judges its canaries alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    /// `topic`, required: the control topic's name.
    pub topic: String,
}

/// `[telemetry]`: how the pipeline can be observed.
#[derive(Debug, Clone, PartialEq)]
pub struct Telemetry {
    /// `listen`: the address serving `/metrics` (OpenMetrics text), `/healthz`, `/readyz` and
    /// the admin API. Port 0 picks a free port, logged at start. Default `"127.0.0.1:9464"`.
    pub listen: SocketAddr,
    /// `otlp`: an OpenTelemetry collector to send traces to over OTLP/gRPC, such as
    /// `"http://127.0.0.1:4317"`. Default: no spans are exported (output records still carry a
    /// `traceparent`).
    pub otlp: Option<String>,
    /// `sample`: which records' spans are exported.
    pub sample: Sample,
    /// `export_queue`: spans waiting for export, at most. When the collector is slower than the
    /// pipeline, new spans are dropped and counted (`weir_spans_dropped_total`) rather than
    /// slowing a lane or growing memory. From 16 to 1048576. Default 8192.
    pub export_queue: usize,
    /// `export_timeout`: how long one export call to the collector may take before it is
    /// abandoned and its spans counted as dropped, such as `"5s"`. Default 5s.
    pub export_timeout: Duration,
}

impl Telemetry {
    /// Default of [`Telemetry::export_queue`].
    pub const DEFAULT_EXPORT_QUEUE: usize = 8192;
    /// Default of [`Telemetry::export_timeout`].
    pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
}

impl Default for Telemetry {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 9464)),
            otlp: None,
            sample: Sample::default(),
            export_queue: Self::DEFAULT_EXPORT_QUEUE,
            export_timeout: Self::DEFAULT_EXPORT_TIMEOUT,
        }
    }
}

/// `sample` of `[telemetry]`: which records' spans are exported. The decision is taken when a
/// record has gone through every stage (tail sampling): a record is kept when it failed (with
/// `keep_errors`), when it was slow, when its incoming trace was sampled (with
/// `keep_sampled_parents`), or else with probability `ratio`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// `ratio`: the share of healthy records traced, from 0 to 1. Default 0.01.
    pub ratio: f64,
    /// `keep_errors`: also trace every record that fails in a stage. Default true.
    pub keep_errors: bool,
    /// `slow`: also trace every record whose trip through the stages (the stage calls of its
    /// batch) takes at least this long. Default 100ms.
    pub slow: Duration,
    /// `keep_sampled_parents`: also trace every record whose incoming `traceparent` has the
    /// sampled flag set, so traces sampled upstream stay whole. Default false.
    pub keep_sampled_parents: bool,
}

impl Default for Sample {
    fn default() -> Self {
        Self {
            ratio: 0.01,
            keep_errors: true,
            slow: Duration::from_millis(100),
            keep_sampled_parents: false,
        }
    }
}

/// `[[test]]`: records fed to the stages by `weir test`, and what should come out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// `name`, required: shown in the test report.
    pub name: String,
    /// `input`, required: the records fed to the first stage, at least one.
    pub input: Vec<TestRecord>,
    /// `expect`, required: what the stages should emit, at least one expectation.
    pub expect: Vec<Expectation>,
}

/// One record of a test's `input`, such as `{ key = "k1", value = '{"ip":"81.2.69.160"}' }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord {
    /// `key`: the record key. Default: no key.
    pub key: Option<String>,
    /// `value`, required: the record value.
    pub value: String,
    /// `headers`: a table of string headers. Default none.
    pub headers: Vec<(String, String)>,
    /// `timestamp`: the record timestamp in milliseconds since the Unix epoch.
    /// Default: none.
    pub timestamp: Option<i64>,
}

/// One entry of a test's `expect`: checks on what a stage emitted for the test input. At least
/// one check besides `stage` is required; every check given must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// `stage`, required: the stage whose output is checked.
    pub stage: String,
    /// `value`: some emitted record has exactly this value.
    pub value: Option<String>,
    /// `value_contains`: some emitted record's value contains this string.
    pub value_contains: Option<String>,
    /// `key`: some emitted record has this key.
    pub key: Option<String>,
    /// `count`: the stage emitted exactly this many records for the test input.
    pub count: Option<usize>,
    /// `error`: some input record failed in the stage with this error kind, such as
    /// `"stage-error"` or `"trap"`.
    pub error: Option<String>,
}

/// A position in the pipeline file. Both numbers start at 1; column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}
