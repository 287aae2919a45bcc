//! The `s3ferry` command line: parse arguments, load config, set up logs, run the command.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use s3ferry::config::MigrationConfig;
use s3ferry::config::{CONFIG_ENV, Config, ProviderKind, WILDCARD_BUCKET};
use s3ferry::migration::bulk::{self, LeftBehind, LeftBehindReason, MigrateOptions, MigrateReport, Progress};
use s3ferry::migration::multipart_copy::PartSizes;
use s3ferry::route::{FallbackRoute, Route, RouteTable};
use s3ferry::server::{self, RunningGateway};

const EXAMPLES: &str = "\
Examples:
  s3ferry serve --config config.example.toml
      Run the gateway; point any S3 client at http://127.0.0.1:8333.
  S3FERRY_CONFIG=/etc/s3ferry/config.toml s3ferry serve
      The same, with the config path from the environment.
  s3ferry config check --config config.toml
      Validate a config and print the resolved routes (secrets masked).
  s3ferry health --url http://127.0.0.1:9333/readyz
      Ask a running gateway's admin listener; exit 0 when it answers 2xx.
  s3ferry migrate --config config.toml --bucket media
      Copy what is still only in the old provider of a bucket under lazy migration.
  s3ferry check --config config.toml --bucket media --json
      Compare old and new provider; exit 1 on differences.
  aws --endpoint-url http://127.0.0.1:8333 s3 ls s3://demo
      Talk to the gateway with the aws cli (use a key pair from [[credentials]]).

Signals (serve):
  SIGTERM, SIGINT  stop accepting, finish in-flight requests (server.shutdown_grace), exit 0
  SIGHUP           reload the config file; a config that fails to load is logged and ignored

Environment:
  S3FERRY_CONFIG        config file when --config is not given
  S3FERRY_LISTEN        overrides server.listen (e.g. 0.0.0.0:8333)
  S3FERRY_ADMIN_LISTEN  overrides server.admin_listen (e.g. 0.0.0.0:9333)
  S3FERRY_LOG_FORMAT    json or text (same as --log-format)
  RUST_LOG              log level and filters (default: info)";

#[derive(Parser)]
#[command(
    name = "s3ferry",
    version,
    about = "An S3-compatible gateway: verifies S3 clients, routes each bucket to a provider, re-signs and streams",
    after_help = EXAMPLES
)]
struct Cli {
    /// Log format: json (default when stdout is not a terminal) or text.
    #[arg(long, global = true, value_enum, env = "S3FERRY_LOG_FORMAT")]
    log_format: Option<LogFormat>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway until SIGTERM or Ctrl-C (in-flight requests finish first); SIGHUP reloads the config.
    Serve {
        /// The TOML config file.
        #[arg(long, short, env = CONFIG_ENV)]
        config: PathBuf,
    },
    /// Work with config files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Check a running gateway through its admin listener (for container HEALTHCHECKs). Exits 0 on a 2xx answer.
    Health {
        /// The admin URL to GET: /healthz (alive) or /readyz (providers reachable).
        #[arg(long, default_value = "http://127.0.0.1:9333/healthz")]
        url: String,
        /// How long to wait for the answer, in seconds.
        #[arg(long, default_value_t = 5)]
        timeout_secs: u64,
    },
    /// Copy every object that is still only in the old provider of a bucket under lazy
    /// migration (a route with `fallback`) into its new provider. Objects already in the new
    /// provider are skipped (never overwritten), so an interrupted run resumes by running again.
    #[command(after_help = MIGRATE_EXAMPLES)]
    Migrate {
        /// The TOML config file.
        #[arg(long, short, env = CONFIG_ENV)]
        config: PathBuf,
        /// The client-facing bucket name (its route must have `fallback`).
        #[arg(long)]
        bucket: String,
        /// Only keys starting with this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Copies running at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Count what would be copied; copy nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only report how much still lives only in the old provider (same as --dry-run).
        #[arg(long)]
        status: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compare the old and new provider of a bucket under lazy migration, like `rclone check`:
    /// objects missing in the new provider, objects whose size or content differ, and old
    /// objects that can never reach the new provider (left behind). Exits 1 when there are any.
    #[command(after_help = CHECK_EXAMPLES)]
    Check {
        /// The TOML config file.
        #[arg(long, short, env = CONFIG_ENV)]
        config: PathBuf,
        /// The client-facing bucket name (its route must have `fallback`).
        #[arg(long)]
        bucket: String,
        /// Only keys starting with this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Download objects whose ETags cannot be compared (multipart, other providers'
        /// formats) and compare their MD5s.
        #[arg(long)]
        download: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

const MIGRATE_EXAMPLES: &str = "Examples:
  s3ferry migrate --config config.toml --bucket media --status
  s3ferry migrate --config config.toml --bucket media --dry-run
  s3ferry migrate --config config.toml --bucket media --concurrency 16

Ctrl-C stops after the copies in flight; run the same command again to resume.
Exit status: 0 done, 1 some copies failed or some old objects can never reach the new
provider (both listed; --status only lists them), 130 interrupted.";

const CHECK_EXAMPLES: &str = "Examples:
  s3ferry check --config config.toml --bucket media
  s3ferry check --config config.toml --bucket media --download --json > report.json

Exit status: 0 when every object of the old provider is in the new one with the same
content, 1 otherwise (or on an error).";

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a config file and print the resolved routes with secrets masked. Exits 1 on any error.
    Check {
        /// The TOML config file.
        #[arg(long, short, env = CONFIG_ENV)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Config {
            command: ConfigCommand::Check { config },
        } => check(&config),
        Command::Health { url, timeout_secs } => health(&url, Duration::from_secs(timeout_secs)),
        Command::Migrate {
            config,
            bucket,
            prefix,
            concurrency,
            dry_run,
            status,
            json,
        } => run_bulk(
            &config,
            move |route, fallback, migration| {
                let options = MigrateOptions {
                    prefix,
                    concurrency,
                    dry_run: dry_run || status,
                    parts: PartSizes::from(migration),
                };
                Box::pin(migrate_command(route, fallback, options, json))
            },
            &bucket,
        ),
        Command::Check {
            config,
            bucket,
            prefix,
            download,
            json,
        } => run_bulk(
            &config,
            |route, fallback, _| Box::pin(check_command(route, fallback, prefix, download, json)),
            &bucket,
        ),
    }
}

fn init_logging(format: Option<LogFormat>) {
    // s3s logs whole requests (headers with signatures) at debug level and client mistakes at
    // error level; the gateway logs every request itself, so s3s stays quiet.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        .add_directive("s3s=off".parse().unwrap_or_else(|_| unreachable!("static directive")))
        .add_directive(
            "s3s_fs=off"
                .parse()
                .unwrap_or_else(|_| unreachable!("static directive")),
        );
    let json = match format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
}

fn check(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    println!("{}: OK", path.display());
    println!(
        "listen: {}{}",
        config.server.listen,
        if config.server.tls.is_some() { " (TLS)" } else { "" }
    );
    println!("admin (/healthz, /readyz, /metrics): {}", config.server.admin_listen);
    let limits = &config.server.limits;
    println!(
        "limits: {} connections, {} header bytes, {} headers; shutdown grace {} ms",
        limits.max_connections,
        limits.max_header_bytes,
        limits.max_headers,
        config.server.shutdown_grace.as_millis()
    );
    if let Some(domain) = &config.server.domain {
        println!("virtual-hosted style: <bucket>.{domain}");
    }
    println!("client region: {}", config.server.region);
    println!("client credentials:");
    for c in &config.credentials {
        let grants: Vec<String> = c.grants.iter().map(s3ferry::access::describe).collect();
        let grants = if grants.is_empty() {
            "nothing".to_string()
        } else {
            grants.join("; ")
        };
        println!("  {} (secret {}): {grants}", c.access_key_id, c.secret_access_key);
    }
    println!("providers:");
    for (name, p) in &config.providers {
        match &p.kind {
            ProviderKind::Local { root } => {
                println!("  {name}: local directory {}", root.display())
            }
            ProviderKind::Remote(r) => println!(
                "  {name}: {} region {} addressing {} dialect {} key {} (secret {})",
                r.endpoint,
                p.region,
                p.addressing.as_str(),
                p.dialect,
                r.access_key_id,
                r.secret_access_key
            ),
        }
    }
    println!("routes:");
    for b in &config.buckets {
        let client = if b.name == WILDCARD_BUCKET {
            "* (any other bucket)"
        } else {
            b.name.as_str()
        };
        let upstream = b.upstream_bucket.as_deref().unwrap_or(if b.name == WILDCARD_BUCKET {
            "<same name>"
        } else {
            &b.name
        });
        let fallback = b.fallback.as_ref().map_or(String::new(), |f| {
            format!(
                " (falls back to {}:{}{}{})",
                f.provider,
                f.bucket.as_deref().unwrap_or(if b.name == WILDCARD_BUCKET {
                    "<same name>"
                } else {
                    &b.name
                }),
                if f.copy_on_read { ", copy on read" } else { "" },
                if f.delete_from_fallback {
                    ", deletes there too"
                } else {
                    ", deletes leave tombstones"
                }
            )
        });
        let anonymous = match b.anonymous {
            Some(s3ferry::access::AnonymousAccess::Read { list: false }) => ", anonymous reads",
            Some(s3ferry::access::AnonymousAccess::Read { list: true }) => ", anonymous reads and listings",
            Some(s3ferry::access::AnonymousAccess::Provider) => ", anonymous requests unsigned to the provider",
            None => "",
        };
        println!("  {client} -> {}:{upstream}{fallback}{anonymous}", b.provider);
    }
    for warning in s3ferry::access::broad_access_warnings(&config) {
        eprintln!("warning: {warning}");
    }
    ExitCode::SUCCESS
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}

fn serve(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        // Registered before start-up: an unhandled SIGHUP would kill the process.
        let mut signals = match Signals::register() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot listen for signals: {e}");
                return ExitCode::FAILURE;
            }
        };
        let running = match server::start(&config).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        run_until_stopped(running, &mut signals, path).await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Reloads on SIGHUP; on SIGTERM or SIGINT stops accepting and waits for the drain.
async fn run_until_stopped(running: RunningGateway, signals: &mut Signals, path: &std::path::Path) {
    while let Signal::Reload = signals.next().await {
        match running.reload_from(path).await {
            Ok(()) => tracing::info!(config = %path.display(), "config reloaded"),
            Err(e) => tracing::error!(
                config = %path.display(),
                error = %e,
                "config reload refused; the previous config keeps serving"
            ),
        }
    }
    tracing::info!(
        grace_ms = u64::try_from(running.shutdown_grace().as_millis()).unwrap_or(u64::MAX),
        "stop signal: no new connections; in-flight requests may finish"
    );
    let _ = running.stopper().send(true);
    running.wait().await;
}

fn health(url: &str, timeout: Duration) -> ExitCode {
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(s3ferry::admin::check_health(url, timeout)) {
        Ok((status, body)) => {
            print!("{body}");
            if status.is_success() {
                ExitCode::SUCCESS
            } else {
                eprintln!("{url} answered {status}");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

enum Signal {
    Stop,
    Reload,
}

/// SIGTERM / SIGINT (stop) and SIGHUP (reload).
struct Signals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
                hangup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.terminate.recv() => Signal::Stop,
                _ = self.interrupt.recv() => Signal::Stop,
                _ = self.hangup.recv() => Signal::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }

    /// Waits for SIGTERM or SIGINT; SIGHUP is ignored (for commands that have nothing to reload).
    async fn stopped(&mut self) {
        while let Signal::Reload = self.next().await {}
    }
}

type BulkFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ExitCode>>>;

/// Loads the config, starts the providers and runs a bulk command on `bucket`'s route.
fn run_bulk(
    path: &std::path::Path,
    command: impl FnOnce(Route, FallbackRoute, &MigrationConfig) -> BulkFuture,
    bucket: &str,
) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runtime = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let (upstreams, _local_providers) = match server::start_providers(&config).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let resolved = RouteTable::new(&config.buckets, &upstreams)
            .map_err(|e| e.to_string())
            .and_then(|table| table.resolve(bucket).map_err(|e| e.to_string()));
        let route = match resolved {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: bucket '{bucket}': {e}");
                return ExitCode::FAILURE;
            }
        };
        let Some(fallback) = route.fallback.clone() else {
            eprintln!(
                "error: bucket '{bucket}' is not under lazy migration: give its [[buckets]] route `fallback = \"<old provider>\"` (see config.example.toml)"
            );
            return ExitCode::FAILURE;
        };
        command(route, fallback, &config.migration).await
    })
}

/// A progress bar on stderr (hidden when stderr is not a terminal): bytes, rate, ETA, objects.
struct ProgressBar {
    bar: indicatif::ProgressBar,
    objects: AtomicU64,
    planned_objects: AtomicU64,
}

impl Progress for ProgressBar {
    fn planned(&self, objects: u64, bytes: u64) {
        self.planned_objects.store(objects, Ordering::Relaxed);
        self.bar.set_length(bytes);
        self.bar.set_message(format!("0/{objects} objects"));
    }

    fn done(&self, _key: &str, bytes: u64) {
        let n = self.objects.fetch_add(1, Ordering::Relaxed) + 1;
        self.bar.inc(bytes);
        let planned = self.planned_objects.load(Ordering::Relaxed);
        self.bar.set_message(format!("{n}/{planned} objects"));
    }
}

async fn migrate_command(route: Route, fallback: FallbackRoute, options: MigrateOptions, json: bool) -> ExitCode {
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let progress = ProgressBar {
        bar,
        objects: AtomicU64::new(0),
        planned_objects: AtomicU64::new(0),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stop_on_signal = stop.clone();
    tokio::spawn(async move {
        match Signals::register() {
            Ok(mut signals) => signals.stopped().await,
            Err(e) => return eprintln!("warning: cannot listen for Ctrl-C ({e}); stop with SIGKILL"),
        }
        eprintln!("\nstopping: finishing the copies in flight (run the same command again to resume)");
        stop_on_signal.store(true, Ordering::Relaxed);
    });
    eprintln!(
        "{} '{}' ({}:{}) -> ({}:{})",
        if options.dry_run {
            "planning the migration of"
        } else {
            "migrating"
        },
        route.client_bucket,
        fallback.provider.settings.name,
        fallback.bucket,
        route.provider.settings.name,
        route.upstream_bucket
    );
    let result = bulk::migrate(&route, &fallback, &options, &progress, &stop).await;
    progress.bar.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print_migrate_report(&report);
    }
    // Objects left behind fail a real run (the migration cannot finish); `--status` only reports.
    if !report.failed.is_empty() || (!report.dry_run && !report.left_behind.is_empty()) {
        ExitCode::FAILURE
    } else if report.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    }
}

fn print_migrate_report(r: &MigrateReport) {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    if r.dry_run {
        println!(
            "still only in the old provider: {} objects ({:.1} MiB)",
            r.planned_objects,
            mib(r.planned_bytes)
        );
        println!("already in the new provider:    {} objects", r.already_in_new);
        println!(
            "newer in the new provider:      {} objects (written through s3ferry; never overwritten)",
            r.newer_in_new
        );
        println!(
            "deleted through s3ferry:        {} objects (tombstoned; not copied)",
            r.deleted_through_s3ferry
        );
        print_left_behind(&r.left_behind);
        if r.planned_objects == 0 && r.left_behind.is_empty() {
            println!("nothing left to copy: the old bucket can be switched off once `s3ferry check` agrees");
        }
        return;
    }
    println!(
        "copied:                  {} objects ({:.1} MiB)",
        r.copied_objects,
        mib(r.copied_bytes)
    );
    println!("already in new:          {}", r.already_in_new);
    println!("newer in new (kept):     {}", r.newer_in_new);
    println!("deleted through s3ferry: {}", r.deleted_through_s3ferry);
    println!("failed:                  {}", r.failed.len());
    for (key, error) in r.failed.iter().take(20) {
        println!("  {key}: {error}");
    }
    print_left_behind(&r.left_behind);
    if r.interrupted {
        println!("interrupted: run the same command again to copy the rest");
    }
}

/// Old objects the migration cannot move: switching the old provider off loses them.
fn print_left_behind(left: &[LeftBehind]) {
    if left.is_empty() {
        return;
    }
    println!(
        "LEFT BEHIND:             {} objects of the old provider cannot reach the new one and are lost when it is switched off",
        left.len()
    );
    for item in left.iter().take(20) {
        let why = match item.reason {
            LeftBehindReason::ReservedPrefix => "under s3ferry's reserved .s3ferry/ prefix",
            LeftBehindReason::DotSegments => {
                "'.'/'..' segments a provider of the route would resolve (dialect_overrides.literal_dot_segments)"
            }
            LeftBehindReason::UnstorableInNew => "a key the new (local) provider cannot store",
        };
        println!("  {}: {why}", item.key);
    }
}

async fn check_command(route: Route, fallback: FallbackRoute, prefix: String, download: bool, json: bool) -> ExitCode {
    let report = match bulk::check(&route, &fallback, &prefix, download).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        println!("matching:                {}", report.matching);
        println!("missing in new:          {}", report.missing_in_new.len());
        for key in report.missing_in_new.iter().take(20) {
            println!("  {key}");
        }
        println!("differ:                  {}", report.differ.len());
        for key in report.differ.iter().take(20) {
            println!("  {key}");
        }
        println!(
            "only in new:             {} (written through s3ferry)",
            report.only_in_new
        );
        println!("deleted through s3ferry: {}", report.deleted_through_s3ferry);
        print_left_behind(&report.left_behind);
        if report.unverified > 0 {
            println!(
                "unverified:              {} (same size, ETags not comparable: run with --download)",
                report.unverified
            );
        }
        let verdict = if report.differences() == 0 {
            "OK: every object of the old provider is in the new one"
        } else {
            "DIFFERENCES FOUND"
        };
        println!("{verdict}");
    }
    if report.differences() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
