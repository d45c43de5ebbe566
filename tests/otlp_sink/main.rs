//! `weir-otlp-sink`: a minimal OTLP/gRPC trace collector for benchmarks. It serves the OTLP
//! `TraceService` on a loopback address, accepts every export request, and counts the spans (and
//! how many of them have an error status, and per span name). The counts are rewritten to
//! `--count-file` after every request (`spans=N error_spans=N requests=N by_name: a=N, b=N`) and
//! printed on SIGTERM or SIGINT.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use clap::Parser;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

#[derive(Debug, Parser)]
#[command(about = "Accept OTLP/gRPC spans on a loopback address and count them")]
struct Args {
    /// The loopback address to serve on, such as 127.0.0.1:4317 (port 0 picks a free port,
    /// printed at start).
    listen: SocketAddr,
    /// Rewritten after every export request with the counts so far.
    #[arg(long)]
    count_file: Option<PathBuf>,
}

#[derive(Default)]
struct Counts {
    spans: AtomicU64,
    error_spans: AtomicU64,
    requests: AtomicU64,
    by_name: Mutex<BTreeMap<String, u64>>,
}

impl Counts {
    fn line(&self) -> String {
        let by_name = self.by_name.lock().unwrap();
        let names: Vec<String> = by_name.iter().map(|(n, c)| format!("{n}={c}")).collect();
        format!(
            "spans={} error_spans={} requests={} by_name: {}",
            self.spans.load(Ordering::SeqCst),
            self.error_spans.load(Ordering::SeqCst),
            self.requests.load(Ordering::SeqCst),
            names.join(", ")
        )
    }
}

struct Sink {
    counts: Arc<Counts>,
    count_file: Option<PathBuf>,
}

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let (mut spans, mut errors) = (0u64, 0u64);
        let mut by_name = self.counts.by_name.lock().unwrap();
        for rs in &request.get_ref().resource_spans {
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    spans += 1;
                    *by_name.entry(span.name.clone()).or_default() += 1;
                    if span
                        .status
                        .as_ref()
                        .is_some_and(|s| s.code == StatusCode::Error as i32)
                    {
                        errors += 1;
                    }
                }
            }
        }
        drop(by_name);
        self.counts.spans.fetch_add(spans, Ordering::SeqCst);
        self.counts.error_spans.fetch_add(errors, Ordering::SeqCst);
        self.counts.requests.fetch_add(1, Ordering::SeqCst);
        if let Some(path) = &self.count_file {
            write_counts(path, &self.counts.line())
                .map_err(|e| tonic::Status::internal(format!("{e:#}")))?;
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Replaces `path` in one rename, so a reader never sees a half-written line.
fn write_counts(path: &Path, line: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{line}\n"))
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename to {}", path.display()))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if !args.listen.ip().is_loopback() {
        bail!("{} is not a loopback address", args.listen);
    }
    let counts = Arc::new(Counts::default());
    if let Some(path) = &args.count_file {
        write_counts(path, &counts.line())?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot build the tokio runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        println!("listening on http://{}", listener.local_addr()?);
        let service = TraceServiceServer::new(Sink {
            counts: Arc::clone(&counts),
            count_file: args.count_file.clone(),
        });
        let server = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot catch SIGTERM")?;
        tokio::select! {
            result = server => result.context("the OTLP server failed")?,
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        anyhow::Ok(())
    })?;
    println!("{}", counts.line());
    Ok(())
}
