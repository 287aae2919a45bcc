//! The `s3ferry` command line: parse arguments, load config, set up logs, run the command.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use s3ferry::config::{CONFIG_ENV, Config, ProviderKind, WILDCARD_BUCKET};
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
}

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
        println!("  {} (secret {})", c.access_key_id, c.secret_access_key);
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
        println!("  {client} -> {}:{upstream}", b.provider);
    }
    ExitCode::SUCCESS
}

fn serve(path: &std::path::Path) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
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
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
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
}
