//! The commands that write outputs, one pipeline per write.

use std::time::Duration;

use weir_config::RedisMode;
use weir_core::trace::{SpanId, TraceId, hex};
use weir_core::{Output, Refused};

use super::key::KeyTemplate;

/// How the sink writes each output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Shape {
    pub(super) mode: RedisMode,
    /// `PX` / `PEXPIRE`, in milliseconds (at least 1).
    pub(super) ttl_ms: Option<u64>,
    /// `XADD ... MAXLEN ~ n`.
    pub(super) max_len: Option<u64>,
}

impl Shape {
    pub(super) fn new(mode: RedisMode, ttl: Option<Duration>, max_len: Option<u64>) -> Self {
        let ttl_ms = ttl.map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        Self {
            mode,
            ttl_ms,
            max_len,
        }
    }

    /// `db.operation.name` of the mode's pipelines.
    pub(super) fn operation(&self) -> &'static str {
        match self.mode {
            RedisMode::Set => "SET",
            RedisMode::Hash => "HSET",
            RedisMode::Stream => "XADD",
        }
    }
}

/// One output the sink takes: where it goes and what it carries.
#[derive(Debug)]
pub(super) struct Prepared<'o, 'a> {
    /// Its index in the write's outputs.
    pub(super) index: usize,
    pub(super) output: &'o Output<'a>,
    key: Vec<u8>,
    /// The record's `traceparent`: (trace id, span id, sampled).
    trace: Option<(TraceId, SpanId, bool)>,
    /// Its index among the outputs of its input record (a flat-map's), as `weir_output`.
    pub(super) nth: i64,
}

impl<'o, 'a> Prepared<'o, 'a> {
    /// Output `index`, with its key, or why the sink refuses it.
    pub(super) fn new(
        key: &KeyTemplate,
        index: usize,
        output: &'o Output<'a>,
    ) -> Result<Self, Refused> {
        let record = output.record;
        if record.value.is_none() {
            return Err(Refused::new("the record has no value to write"));
        }
        Ok(Self {
            index,
            output,
            key: key.key(record)?,
            trace: crate::provenance::trace(record),
            nth: 0,
        })
    }

    fn value(&self) -> &[u8] {
        self.output.record.value.as_deref().unwrap_or_default()
    }

    fn trace_id(&self) -> String {
        self.trace.map(|(id, _, _)| hex(&id)).unwrap_or_default()
    }
}

/// The pipeline for some outputs, and which output each command belongs to.
#[derive(Debug)]
pub(super) struct Batch {
    pub(super) pipe: ::redis::Pipeline,
    /// For each command, the position of its output among the prepared ones.
    pub(super) owners: Vec<usize>,
}

impl Batch {
    /// One pipeline (not a transaction) writing every output of `prepared`, replies ignored.
    pub(super) fn new(shape: Shape, prepared: &[Prepared<'_, '_>]) -> Self {
        let mut pipe = ::redis::pipe();
        let mut owners = Vec::with_capacity(prepared.len());
        for (position, output) in prepared.iter().enumerate() {
            for cmd in commands(shape, output) {
                pipe.add_command(cmd).ignore();
                owners.push(position);
            }
        }
        Self { pipe, owners }
    }
}

/// The commands that write one output.
fn commands(shape: Shape, p: &Prepared<'_, '_>) -> Vec<::redis::Cmd> {
    let provenance = |cmd: &mut ::redis::Cmd| {
        cmd.arg("value")
            .arg(p.value())
            .arg("weir_trace_id")
            .arg(p.trace_id())
            .arg("weir_topic")
            .arg(p.output.source_topic)
            .arg("weir_partition")
            .arg(p.output.source_partition)
            .arg("weir_offset")
            .arg(p.output.ack.offset())
            .arg("weir_output")
            .arg(p.nth);
    };
    match shape.mode {
        RedisMode::Set => {
            let mut set = ::redis::cmd("SET");
            set.arg(&p.key).arg(p.value());
            if let Some(ttl) = shape.ttl_ms {
                set.arg("PX").arg(ttl);
            }
            vec![set]
        }
        RedisMode::Hash => {
            let mut hset = ::redis::cmd("HSET");
            hset.arg(&p.key);
            provenance(&mut hset);
            let mut cmds = vec![hset];
            if let Some(ttl) = shape.ttl_ms {
                let mut expire = ::redis::cmd("PEXPIRE");
                expire.arg(&p.key).arg(ttl);
                cmds.push(expire);
            }
            cmds
        }
        RedisMode::Stream => {
            let mut xadd = ::redis::cmd("XADD");
            xadd.arg(&p.key);
            if let Some(max_len) = shape.max_len {
                xadd.arg("MAXLEN").arg("~").arg(max_len);
            }
            xadd.arg("*");
            provenance(&mut xadd);
            vec![xadd]
        }
    }
}

/// The distinct sampled traces of `prepared`, at most [`MAX_LINKS`], for the pipeline's span.
pub(super) fn links(prepared: &[Prepared<'_, '_>]) -> Vec<(TraceId, SpanId)> {
    crate::provenance::links(prepared.iter().map(|p| p.trace))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use weir_core::trace::{TRACEPARENT, format_traceparent};
    use weir_core::{Bytes, Headers, PartitionTracker, Record};

    use super::*;
    use crate::MAX_LINKS;

    fn record(value: &str, traceparent: Option<String>) -> Record {
        let mut headers = Headers::new();
        if let Some(tp) = traceparent {
            headers.push(TRACEPARENT, Some(tp.as_bytes()));
        }
        Record {
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers,
            ..Record::default()
        }
    }

    fn output<'a>(record: &'a Record, ack: &'a Arc<weir_core::InputAck>) -> Output<'a> {
        Output {
            destination: "redis",
            partition: None,
            record,
            source_topic: "in",
            source_partition: 3,
            ack,
        }
    }

    #[test]
    fn links_are_distinct_sampled_and_bounded() {
        let tracker = PartitionTracker::new();
        let ack = tracker.track(7);
        let sampled = |n: u8| format_traceparent(&[n; 16], &[n; 8], true);
        let mut records = vec![
            record("a", Some(sampled(1))),
            record("b", Some(sampled(1))),
            record("c", Some(format_traceparent(&[2; 16], &[2; 8], false))),
            record("d", None),
        ];
        records.extend((10..60).map(|n| record("e", Some(sampled(n)))));
        let outputs: Vec<_> = records.iter().map(|r| output(r, &ack)).collect();
        let template = KeyTemplate::parse(None).unwrap();
        let prepared: Vec<_> = outputs
            .iter()
            .enumerate()
            .map(|(i, o)| Prepared::new(&template, i, o).unwrap())
            .collect();
        let links = links(&prepared);
        assert_eq!(links.len(), MAX_LINKS);
        assert_eq!(links[0], ([1; 16], [1; 8]));
        assert_eq!(links[1], ([10; 16], [10; 8]));
        assert_eq!(prepared[0].trace_id(), "01".repeat(16));
        assert_eq!(prepared[3].trace_id(), "");
    }

    #[test]
    fn each_mode_writes_its_commands() {
        let tracker = PartitionTracker::new();
        let ack = tracker.track(7);
        let r = record("v", None);
        let outputs = [output(&r, &ack), output(&r, &ack)];
        let template = KeyTemplate::parse(None).unwrap();
        let prepared: Vec<_> = outputs
            .iter()
            .enumerate()
            .map(|(i, o)| Prepared::new(&template, i, o).unwrap())
            .collect();
        let ttl = Some(Duration::from_micros(10));
        let count = |shape: Shape| Batch::new(shape, &prepared).owners;
        assert_eq!(count(Shape::new(RedisMode::Set, ttl, None)), [0, 1]);
        assert_eq!(count(Shape::new(RedisMode::Hash, ttl, None)), [0, 0, 1, 1]);
        assert_eq!(count(Shape::new(RedisMode::Hash, None, None)), [0, 1]);
        assert_eq!(count(Shape::new(RedisMode::Stream, None, Some(5))), [0, 1]);
        assert_eq!(Shape::new(RedisMode::Set, ttl, None).ttl_ms, Some(1));
        let packed = Batch::new(Shape::new(RedisMode::Hash, ttl, None), &prepared)
            .pipe
            .get_packed_pipeline();
        let text = String::from_utf8_lossy(&packed);
        for word in [
            "HSET",
            "weir_topic",
            "weir_partition",
            "weir_offset",
            "weir_output",
            "PEXPIRE",
        ] {
            assert!(text.contains(word), "{word} missing from {text}");
        }
    }
}
