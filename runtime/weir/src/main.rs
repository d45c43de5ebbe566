//! The `weir` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use weir::engine::{Exit, ReloadOptions, RunOptions};
use weir::loader::LoadedPipeline;
use weir_config::Pipeline;
use weir_telemetry::LogFormat;
use weir_wasm::WasmHost;

mod admin_client;
mod scaffold;
mod tap_client;

use admin_client::TokenArgs;

/// Weir: a WebAssembly-extensible stream processor for Kafka.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about, long_about = None)]
struct Cli {
    /// Log format: `auto` is JSON when stderr is not a terminal.
    #[arg(long, global = true, value_enum, default_value_t = LogArg::Auto)]
    log_format: LogArg,
    /// Directory of compiled modules kept across restarts [default: $WEIR_CACHE_DIR, else
    /// $XDG_CACHE_HOME/weir, else ~/.cache/weir].
    #[arg(long, global = true, env = "WEIR_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Do not cache compiled modules on disk.
    #[arg(long, global = true)]
    no_cache: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogArg {
    Auto,
    Json,
    Human,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline until SIGINT or SIGTERM.
    Run {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Kafka bootstrap servers, overriding the file's `source.brokers`.
        #[arg(long, env = "WEIR_BROKERS")]
        brokers: Option<String>,
        /// This member's static membership id in the consumer group (Kafka's
        /// group.instance.id), overriding the file's `source.instance_id`; each member of a
        /// fleet needs its own, such as its pod's name.
        #[arg(long, env = "WEIR_INSTANCE_ID")]
        instance_id: Option<String>,
        /// Do not watch the pipeline file and its modules for changes; reload on SIGHUP only.
        #[arg(long)]
        no_watch: bool,
        /// The token the admin API's calls must carry; without one it refuses them all.
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Check pipeline files: every configuration error at once, then every module.
    Validate {
        /// Pipeline files.
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
        /// Check the configuration only, not the modules it names.
        #[arg(long)]
        config_only: bool,
    },
    /// Create a stage project: its sources, a build script and a pipeline whose tests pass.
    New {
        /// The stage's language.
        #[arg(long, value_enum)]
        lang: scaffold::Lang,
        /// The project directory to create; its last part names the stage.
        name: PathBuf,
        /// Weir's `sdk` directory [default: the one this binary was built from].
        #[arg(long, env = "WEIR_SDK")]
        sdk: Option<PathBuf>,
    },
    /// Run a pipeline's `[[test]]` cases through its stages, without Kafka.
    Test {
        /// Pipeline files.
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
    },
    /// Ask a running pipeline to reload its file and modules (as SIGHUP does), through its
    /// admin API.
    Reload {
        /// The pipeline's admin listener (`telemetry.listen`).
        #[arg(long, default_value = "127.0.0.1:9464")]
        admin: String,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// Watch and steer canary rollouts of a running pipeline, through its admin API.
    Canary {
        #[command(subcommand)]
        command: CanaryCommand,
    },
    /// Stream the records entering, leaving and dead-lettered at a running pipeline's stages,
    /// as JSON lines, through its admin API (which needs the token: tap shows data, redacted
    /// as the pipeline's `[privacy]` says).
    Tap(tap_client::TapArgs),
}

#[derive(Debug, Subcommand)]
enum CanaryCommand {
    /// Every canary: versions, partitions, state, and both cohorts side by side.
    Status {
        /// The pipeline's admin listener (`telemetry.listen`).
        #[arg(long, default_value = "127.0.0.1:9464")]
        admin: String,
        #[command(flatten)]
        token: TokenArgs,
    },
    /// (Re)start the canary the pipeline file declares for STAGE.
    Start(CanaryTarget),
    /// Make STAGE's canary the stable version on every partition.
    Promote(CanaryTarget),
    /// Stop STAGE's canary: every partition runs the stable version.
    Rollback(CanaryTarget),
}

#[derive(Debug, clap::Args)]
struct CanaryTarget {
    /// The stage whose canary to act on.
    stage: String,
    /// The pipeline's admin listener (`telemetry.listen`).
    #[arg(long, default_value = "127.0.0.1:9464")]
    admin: String,
    #[command(flatten)]
    token: TokenArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli.log_format {
        LogArg::Auto => LogFormat::Auto,
        LogArg::Json => LogFormat::Json,
        LogArg::Human => LogFormat::Human,
    };
    let _telemetry = match weir_telemetry::init(format) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cache = if cli.no_cache {
        None
    } else {
        cli.cache_dir.or_else(WasmHost::default_cache_dir)
    };
    let result = match cli.command {
        Command::Run {
            pipeline,
            brokers,
            instance_id,
            no_watch,
            token,
        } => {
            let overrides = Overrides {
                brokers,
                instance_id,
            };
            run(&pipeline, overrides, !no_watch, &token, cache)
        }
        Command::Validate {
            pipelines,
            config_only,
        } => validate(&pipelines, config_only, cache),
        Command::Test { pipelines } => test(&pipelines, cache),
        Command::New { lang, name, sdk } => scaffold::run(lang, &name, sdk)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::Reload { admin, token } => token
            .required()
            .and_then(|t| admin_client::call(&admin, "POST", "/admin/reload", &t))
            .map_err(Into::into),
        Command::Canary { command } => match command {
            CanaryCommand::Status { admin, token } => token
                .required()
                .and_then(|t| admin_client::call(&admin, "GET", "/admin/canary", &t))
                .map_err(Into::into),
            CanaryCommand::Start(t) => canary_call(&t, "start"),
            CanaryCommand::Promote(t) => canary_call(&t, "promote"),
            CanaryCommand::Rollback(t) => canary_call(&t, "rollback"),
        },
        Command::Tap(args) => tap_client::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads and validates a pipeline file, printing every configuration error.
fn load_config(path: &Path) -> Option<Pipeline> {
    match weir_config::load(path).and_then(|p| p.check_modules().map(|()| p)) {
        Ok(p) => Some(p),
        Err(errors) => {
            eprintln!("{errors}");
            None
        }
    }
}

fn load_modules(host: &WasmHost, pipeline: &Pipeline) -> Option<LoadedPipeline> {
    match LoadedPipeline::load(host, pipeline) {
        Ok(l) => Some(l),
        Err(errors) => {
            for e in errors {
                eprintln!("{}: {e}", pipeline.path.display());
            }
            None
        }
    }
}

/// What `weir run`'s flags (or their environment variables) put in place of the file's values.
struct Overrides {
    brokers: Option<String>,
    instance_id: Option<String>,
}

fn run(
    path: &Path,
    overrides: Overrides,
    watch: bool,
    token: &TokenArgs,
    cache: Option<PathBuf>,
) -> Result<ExitCode> {
    let admin_token = token.token()?;
    let Some(pipeline) = load_config(path) else {
        return Ok(exit(Exit::Config));
    };
    let instance_id = match overrides
        .instance_id
        .as_deref()
        .map(weir_config::instance_id)
    {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(error)) => {
            eprintln!("error: --instance-id (or WEIR_INSTANCE_ID): {error}");
            return Ok(exit(Exit::Config));
        }
    };
    let host = WasmHost::new(cache)?;
    let Some(loaded) = load_modules(&host, &pipeline) else {
        return Ok(exit(Exit::Module));
    };
    let brokers = overrides
        .brokers
        .unwrap_or_else(|| pipeline.source.brokers.clone());
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&shutdown))
            .context("cannot install signal handlers")?;
    }
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
        .context("cannot install the SIGHUP handler")?;
    let options = ReloadOptions {
        host,
        watch,
        requested: reload,
    };
    let options = RunOptions {
        reload: Some(options),
        admin_token,
        instance_id,
    };
    match weir::engine::run(&pipeline, loaded, &brokers, shutdown, options) {
        Ok(_) => Ok(exit(Exit::Stopped)),
        Err(error) => {
            eprintln!("error: {error}");
            Ok(exit(error.exit()))
        }
    }
}

fn exit(code: Exit) -> ExitCode {
    ExitCode::from(code as u8)
}

fn validate(paths: &[PathBuf], config_only: bool, cache: Option<PathBuf>) -> Result<ExitCode> {
    let host = if config_only {
        None
    } else {
        Some(WasmHost::new(cache)?)
    };
    let mut ok = true;
    for path in paths {
        let Some(pipeline) = load_config(path) else {
            ok = false;
            continue;
        };
        if let Some(host) = &host
            && load_modules(host, &pipeline).is_none()
        {
            ok = false;
            continue;
        }
        println!("{}: ok", path.display());
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn canary_call(target: &CanaryTarget, action: &str) -> Result<ExitCode> {
    let token = target.token.required()?;
    let path = format!("/admin/canary/{}/{action}", target.stage);
    Ok(admin_client::call(&target.admin, "POST", &path, &token)?)
}

fn test(paths: &[PathBuf], cache: Option<PathBuf>) -> Result<ExitCode> {
    let host = WasmHost::new(cache)?;
    let (mut passed, mut failed) = (0usize, 0usize);
    for path in paths {
        let Some(pipeline) = load_config(path) else {
            failed += 1;
            continue;
        };
        let Some(loaded) = load_modules(&host, &pipeline) else {
            failed += 1;
            continue;
        };
        if pipeline.tests.is_empty() {
            println!("{}: no [[test]] cases", path.display());
        }
        // The cases run against the stable versions, then again with every canary in place.
        let canary_reports =
            weir::testing::run_canary_cases(&pipeline, &loaded).unwrap_or_default();
        for report in weir::testing::run_cases(&pipeline, &loaded)
            .into_iter()
            .chain(canary_reports)
        {
            if report.failures.is_empty() {
                passed += 1;
                println!("ok    {} :: {}", path.display(), report.name);
            } else {
                failed += 1;
                println!("FAIL  {} :: {}", path.display(), report.name);
                for f in &report.failures {
                    println!("      {f}");
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
