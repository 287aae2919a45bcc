//! The `s3ferry` command line: parse arguments, load config, set up logs, run the command.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use s3ferry::config::{CONFIG_ENV, Config, ProviderKind, WILDCARD_BUCKET};
use s3ferry::server::{self, SHUTDOWN_GRACE};

const EXAMPLES: &str = "\
Examples:
  s3ferry serve --config config.example.toml
      Run the gateway; point any S3 client at http://127.0.0.1:8333.
  S3FERRY_CONFIG=/etc/s3ferry/config.toml s3ferry serve
      The same, with the config path from the environment.
  s3ferry config check --config config.toml
      Validate a config and print the resolved routes (secrets masked).
  aws --endpoint-url http://127.0.0.1:8333 s3 ls s3://demo
      Talk to the gateway with the aws cli (use a key pair from [[credentials]]).

Environment:
  S3FERRY_CONFIG   config file when --config is not given
  S3FERRY_LISTEN   overrides server.listen (e.g. 0.0.0.0:8333)
  RUST_LOG         log level and filters (default: info)";

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
    /// Run the gateway until SIGTERM or Ctrl-C (in-flight requests finish first).
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
        let running = match server::start(&config).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        let stopper = running.stopper();
        tokio::spawn(async move {
            wait_for_stop_signal().await;
            tracing::info!(
                grace_secs = SHUTDOWN_GRACE.as_secs(),
                "stop signal: draining in-flight requests"
            );
            let _ = stopper.send(true);
        });
        running.wait().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

async fn wait_for_stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
