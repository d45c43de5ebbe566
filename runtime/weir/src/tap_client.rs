//! `weir tap`: the records entering, leaving and dead-lettered at a running pipeline's stages,
//! as JSON lines on stdout, streamed from its admin API (`GET /admin/tap`). Lines the client
//! read too slowly to get are dropped by the pipeline, never waited for; how many is reported
//! on stderr.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::admin_client::{self, AdminCallError, TokenArgs};

/// What to tap, and for how long.
#[derive(Debug, clap::Args)]
pub struct TapArgs {
    /// The pipeline's admin listener (`telemetry.listen`).
    #[arg(long, default_value = "127.0.0.1:9464")]
    admin: String,
    #[command(flatten)]
    token: TokenArgs,
    /// Only this stage (repeatable) [default: every enrich stage].
    #[arg(long = "stage", value_name = "NAME")]
    stages: Vec<String>,
    /// Only records of this source partition (repeatable).
    #[arg(long = "partition", value_name = "N")]
    partitions: Vec<i32>,
    /// Only records whose key is exactly KEY.
    #[arg(long)]
    key: Option<String>,
    /// Only the records of this trace: 32 hex digits, or a whole `traceparent` value.
    #[arg(long, value_name = "ID")]
    trace_id: Option<String>,
    /// One record's path: its trace at every stage, in, out and dead-lettered, with its
    /// outputs. Takes a trace id or a `traceparent` value; overrides --events.
    #[arg(long, value_name = "ID", conflicts_with = "trace_id")]
    follow_trace: Option<String>,
    /// The share of traces shown, in (0, 1]; a trace shown is shown at every stage.
    #[arg(long, value_name = "RATE")]
    sample: Option<f64>,
    /// Which events: in, out, dead [default: all three].
    #[arg(long, value_delimiter = ',', value_name = "EVENTS")]
    events: Vec<String>,
    /// Stop after this many lines.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
}

impl TapArgs {
    /// The query string of `/admin/tap` these arguments ask for.
    fn query(&self) -> Result<String, String> {
        use weir::tap::percent_encode as enc;
        let mut params: Vec<String> = Vec::new();
        params.extend(self.stages.iter().map(|s| format!("stage={}", enc(s))));
        params.extend(self.partitions.iter().map(|p| format!("partition={p}")));
        if let Some(key) = &self.key {
            params.push(format!("key={}", enc(key)));
        }
        if let Some(id) = self.follow_trace.as_ref().or(self.trace_id.as_ref()) {
            params.push(format!("trace_id={}", trace_id_of(id)?));
        }
        if let Some(rate) = self.sample {
            params.push(format!("sample={rate}"));
        }
        if !self.events.is_empty() && self.follow_trace.is_none() {
            params.push(format!("events={}", enc(&self.events.join(","))));
        }
        Ok(params.join("&"))
    }
}

/// The trace id in `text`: 32 hex digits, or the second part of a `traceparent` value.
fn trace_id_of(text: &str) -> Result<String, String> {
    let text = text.trim();
    let id = match text.split('-').collect::<Vec<_>>()[..] {
        [_, id, _, _] => id,
        _ => text,
    };
    weir::tap::parse_trace_id(id).map(|_| id.to_ascii_lowercase())
}

/// Runs `weir tap`.
pub fn run(args: &TapArgs) -> anyhow::Result<ExitCode> {
    let token = args.token.required()?;
    let query = args.query().map_err(|e| anyhow::anyhow!("{e}"))?;
    let path = if query.is_empty() {
        "/admin/tap".to_owned()
    } else {
        format!("/admin/tap?{query}")
    };
    // Reads wake at least every second, so --timeout ends on time on a quiet pipeline.
    let stream = admin_client::send(&args.admin, "GET", &path, &token, Duration::from_secs(1))?;
    match follow(args, stream) {
        // The reader of our output went away (`weir tap | head`): nothing more to do.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == ErrorKind::BrokenPipe) =>
        {
            Ok(ExitCode::SUCCESS)
        }
        other => other,
    }
}

/// Prints the lines of the answer on `stream` until it ends, or `--limit` or `--timeout` does.
fn follow(args: &TapArgs, stream: std::net::TcpStream) -> anyhow::Result<ExitCode> {
    let exchange = |source| AdminCallError::Exchange {
        admin: args.admin.clone(),
        source,
    };
    let deadline = args
        .timeout
        .map(|secs| Instant::now() + Duration::from_secs_f64(secs.max(0.0)));
    let mut reader = BufReader::new(stream);
    // Bytes of a line not yet whole: a read that times out keeps what it read.
    let mut line = Vec::new();
    let mut head = true;
    let mut status = String::new();
    let mut printed = 0u64;
    // Lines go out in blocks while more are at hand, and are flushed before a read that may
    // wait, so a quiet stream shows each line as it comes.
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) || args.limit == Some(printed) {
            out.flush()?;
            return Ok(ExitCode::SUCCESS);
        }
        if reader.buffer().is_empty() {
            out.flush()?;
        }
        match reader.read_until(b'\n', &mut line) {
            Ok(0) if head => {
                anyhow::bail!("{} closed the connection without an answer", args.admin)
            }
            Ok(0) => {
                out.flush()?;
                return Ok(ExitCode::SUCCESS);
            }
            Ok(_) if line.last() != Some(&b'\n') => continue,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                continue;
            }
            Err(e) => return Err(exchange(e).into()),
        }
        let whole = String::from_utf8_lossy(&line).into_owned();
        line.clear();
        let text = whole.trim_end_matches(['\r', '\n']);
        if head {
            if status.is_empty() {
                status = text.split_whitespace().nth(1).unwrap_or("?").to_owned();
            } else if text.is_empty() {
                head = false;
                if !status.starts_with('2') {
                    let mut body = String::new();
                    let _ = std::io::Read::read_to_string(&mut reader, &mut body);
                    eprintln!("error: {} answered {status}: {}", args.admin, body.trim());
                    return Ok(ExitCode::FAILURE);
                }
            }
            continue;
        }
        if text.is_empty() {
            continue; // a keep-alive
        }
        if let Some(dropped) = dropped_count(text) {
            eprintln!(
                "weir tap: {dropped} lines dropped so far: this client reads more slowly than \
                 records flow (narrow the filter, or --sample)"
            );
            continue;
        }
        writeln!(out, "{text}")?;
        printed += 1;
    }
}

/// The count of a `{"dropped": N}` line.
fn dropped_count(line: &str) -> Option<u64> {
    // A record's line starts with its event; only a short line can be a count.
    if line.len() > 40 || !line.contains("dropped") {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let object = value.as_object()?;
    (object.len() == 1).then(|| object.get("dropped")?.as_u64())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_or_a_bare_id_names_the_trace() {
        let id = "0af7651916cd43dd8448eb211c80319c";
        assert_eq!(trace_id_of(id).unwrap(), id);
        assert_eq!(
            trace_id_of(&format!("00-{}-b7ad6b7169203331-01", id.to_uppercase())).unwrap(),
            id
        );
        assert!(trace_id_of("00-xyz-b7ad6b7169203331-01").is_err());
    }

    #[test]
    fn only_a_lone_dropped_count_is_one() {
        assert_eq!(dropped_count(r#"{"dropped":12}"#), Some(12));
        assert_eq!(dropped_count(r#"{"dropped":12,"event":"in"}"#), None);
        assert_eq!(dropped_count("nope"), None);
    }
}
