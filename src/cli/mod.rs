//! The `s3ferry` command line: the commands and their flags (clap), logging set-up, and the
//! dispatch to each command's file: [`serve`] (the gateway, its signals, `health`),
//! [`config_report`] (`config check`) and [`bulk`] (`migrate` and `check`).

mod bulk;
mod byte_size;
mod config_report;
mod probe;
mod serve;
mod status;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use byte_size::ByteSize;
use clap::{Parser, Subcommand, ValueEnum};
use s3ferry::config::{CONFIG_ENV, Config};
use s3ferry::migration::bulk::CopyLimits;
use s3ferry::migration::copy_task::PartSizes;
use s3ferry::migration::shard::ShardSpec;
use s3ferry::upstream::pace::TokenBucket;
use std::sync::Arc;

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
  s3ferry migrate --config config.toml --bucket media --shard 2/8
      Copy the third of eight key ranges (run all eight, e.g. as a Kubernetes Indexed Job).
  s3ferry probe --config config.toml --provider NAME --bucket B --write
      Ask a provider what it accepts; print the dialect_overrides that fit.
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
pub struct Cli {
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
        #[command(flatten)]
        scope: BulkScope,
        #[command(flatten)]
        sharding: Sharding,
        /// Copies running at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Listings walked at once: the key range is cut at the old bucket's prefixes one level
        /// below --prefix (e.g. `photos/`, `videos/`), each part listed by its own walk, so
        /// the copies of a large bucket never wait for one listing. A bucket without such
        /// prefixes is walked once.
        #[arg(long, value_name = "N", default_value_t = 4)]
        list_parallelism: usize,
        /// The most bytes of objects being copied at once (e.g. 512MiB, 2GB): with large
        /// objects, fewer than --concurrency copies run; one larger than this runs alone. A
        /// copy in parts sends as many parts at once as this holds (at most 8).
        #[arg(long, value_name = "SIZE", default_value = "512MiB")]
        max_bytes_in_flight: ByteSize,
        /// Copy at most this many bytes per second, averaged over the run (e.g. 50MB), so
        /// the migration leaves the providers' bandwidth to the apps. Each object takes its
        /// size when it starts: one large object goes at full speed, the next waits for it.
        #[arg(long, value_name = "SIZE")]
        bandwidth: Option<ByteSize>,
        /// Send at most this many requests per second to the providers together (lists,
        /// HEADs, GETs, PUTs; retries not counted), to bound a provider's request bill.
        #[arg(long, value_name = "N")]
        max_requests_per_second: Option<u64>,
        /// Count what would be copied; copy nothing.
        #[arg(long)]
        dry_run: bool,
        /// Report each bucket's migration instead of copying: walk both providers' listings
        /// (like --dry-run), store the survey where the gateway's /migration page reads it, and
        /// print what is only in the old provider, copied, tombstoned, failed (with reasons),
        /// left behind, and the running copies' rate and time left. Without --bucket, every
        /// bucket under lazy migration.
        #[arg(long, conflicts_with_all = ["dry_run", "shard"])]
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
        #[arg(long, short, env = CONFIG_ENV, required_unless_present = "merge")]
        config: Option<PathBuf>,
        /// The client-facing bucket name (its route must have `fallback`).
        #[arg(long, required_unless_present = "merge")]
        bucket: Option<String>,
        /// Only keys starting with this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        #[command(flatten)]
        sharding: Sharding,
        /// Merge the JSON reports of every shard of one split (`check --shard I/N --json`, one
        /// file each) into one report of the whole bucket, checking that each shard is there
        /// exactly once; nothing is listed. Exits 1 on differences, like a check.
        #[arg(long, num_args = 1.., value_name = "REPORT.json", conflicts_with_all = ["bucket", "download"])]
        merge: Vec<PathBuf>,
        /// Download objects whose ETags cannot be compared (multipart, other providers'
        /// formats) and compare their MD5s.
        #[arg(long)]
        download: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask a configured provider what it accepts (addressing, signatures, ETag case, checksums,
    /// conditional writes, ACLs, storage classes, listings, ...) with its own key, and print the
    /// `[providers.NAME]` settings and `dialect_overrides` that fit, beside the configured ones.
    #[command(after_help = PROBE_EXAMPLES)]
    Probe {
        /// The TOML config file.
        #[arg(long, short, env = CONFIG_ENV)]
        config: PathBuf,
        /// The provider's name in the config (`[providers.NAME]`).
        #[arg(long)]
        provider: String,
        /// A bucket of the provider (its own name there) to probe in: the read-only checks
        /// HEAD and list it; with --write, objects go under a `.s3ferry-probe-<id>/` prefix.
        #[arg(long)]
        bucket: Option<String>,
        /// Also run the checks that write (in the scratch prefix, or a scratch bucket created
        /// and removed when no --bucket is given). Everything written is deleted afterwards; the
        /// ACL checks leave a few of those objects public while the run lasts.
        #[arg(long)]
        write: bool,
        /// Print the findings, the settings that fit and the differences as JSON.
        #[arg(long)]
        json: bool,
        /// How long one request may take, in seconds.
        #[arg(long, default_value_t = 20)]
        timeout_secs: u64,
    },
}

const PROBE_EXAMPLES: &str = "Examples:
  s3ferry probe --config config.toml --provider wasabi --bucket my-bucket
      Read-only: addressing, signatures, error codes, ListObjectsV2.
  s3ferry probe --config config.toml --provider wasabi --bucket my-bucket --write
      Everything: also checksums, conditional writes, ACLs, storage classes, listings,
      UploadPartCopy, in a scratch prefix that is deleted afterwards.

Exit status: 0 when the provider was probed (whatever it accepts), 1 on an error.";

/// What `migrate` and `check` work on: a bucket under lazy migration, or the keys of it under
/// a prefix.
#[derive(clap::Args)]
struct BulkScope {
    /// The TOML config file.
    #[arg(long, short, env = CONFIG_ENV)]
    config: PathBuf,
    /// The client-facing bucket name (its route must have `fallback`); optional with --status.
    #[arg(long, required_unless_present = "status")]
    bucket: Option<String>,
    /// Only keys starting with this prefix.
    #[arg(long, default_value = "")]
    prefix: String,
}

/// `--shard I/N`: which contiguous range of the key space this process works on.
#[derive(clap::Args)]
struct Sharding {
    /// Work on shard INDEX of COUNT (0 <= INDEX < COUNT): run COUNT processes, one per index,
    /// to split a bucket between them. Shard 0 lists the old bucket's names once and stores
    /// the split (COUNT contiguous key ranges of equal object counts) in the new bucket under
    /// .s3ferry/shard-plans/; the others wait for it, then each lists only its own range.
    /// Without --shard, a Kubernetes Indexed Job's JOB_COMPLETION_INDEX and
    /// JOB_COMPLETION_COUNT name the shard.
    #[arg(long, value_name = "INDEX/COUNT")]
    shard: Option<ShardSpec>,
    /// How long shards other than 0 wait for shard 0 to store the split, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    shard_plan_wait_secs: u64,
}

impl Sharding {
    /// The shard from `--shard`, else from an Indexed Job's environment; `None` for all keys.
    fn spec(&self) -> Result<Option<ShardSpec>, ExitCode> {
        if let Some(spec) = self.shard {
            return Ok(Some(spec));
        }
        ShardSpec::from_job_env(|name| std::env::var(name).ok()).map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        })
    }
}

const MIGRATE_EXAMPLES: &str = "Examples:
  s3ferry migrate --config config.toml --status
  s3ferry migrate --config config.toml --bucket media --status --json
  s3ferry migrate --config config.toml --bucket media --dry-run
  s3ferry migrate --config config.toml --bucket media --concurrency 16
  s3ferry migrate --config config.toml --bucket media --bandwidth 50MB --max-requests-per-second 200
  s3ferry migrate --config config.toml --bucket media --shard 0/4   # and 1/4, 2/4, 3/4 at once

Ctrl-C stops after the copies in flight; run the same command again to resume.
Each run (each shard) keeps a status record in the new bucket under
.s3ferry/migration-status/, rewritten every 5 s: --status and a gateway's admin page
/migration (and its s3ferry_migration_* gauges) show copies, failures, rate and time left.
Exit status: 0 done, 1 some copies failed or some old objects can never reach the new
provider (both listed; --status only lists them, and exits 1 only when it cannot survey),
130 interrupted.";

const CHECK_EXAMPLES: &str = "Examples:
  s3ferry check --config config.toml --bucket media
  s3ferry check --config config.toml --bucket media --download --json > report.json
  s3ferry check --config config.toml --bucket media --shard 1/4 --json > shard-1.json
  s3ferry check --merge shard-0.json shard-1.json shard-2.json shard-3.json

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

/// Sets up logs and runs the command; a command that fails says why on stderr.
pub fn run(cli: Cli) -> ExitCode {
    // `migrate` and `check` print their report on stdout (JSON with --json, read by scripts
    // and `check --merge`), so their log lines go to stderr.
    let logs_to_stderr = matches!(
        cli.command,
        Command::Migrate { .. } | Command::Check { .. } | Command::Probe { .. }
    );
    init_logging(cli.log_format, logs_to_stderr);
    let outcome = match cli.command {
        Command::Serve { config } => serve::serve(&config),
        Command::Config {
            command: ConfigCommand::Check { config },
        } => config_report::check_config(&config),
        Command::Health { url, timeout_secs } => serve::health(&url, Duration::from_secs(timeout_secs)),
        Command::Migrate {
            scope: BulkScope { config, bucket, prefix },
            status: true,
            json,
            ..
        } => status::status_command(&config, bucket.as_deref(), &prefix, json),
        Command::Migrate {
            scope: BulkScope { config, bucket, prefix },
            sharding,
            concurrency,
            list_parallelism,
            max_bytes_in_flight,
            bandwidth,
            max_requests_per_second,
            dry_run,
            json,
            ..
        } => sharding.spec().and_then(|shard| {
            // clap requires --bucket unless --status, which was handled above.
            let Some(bucket) = bucket else {
                eprintln!("error: --bucket is required (or --status for every migrated bucket)");
                return Err(ExitCode::FAILURE);
            };
            bulk::run_bulk(
                &config,
                move |route, fallback, migration| {
                    let run = bulk::MigrateRun {
                        prefix,
                        shard,
                        shard_plan_wait: Duration::from_secs(sharding.shard_plan_wait_secs),
                        concurrency,
                        list_parallelism,
                        limits: CopyLimits {
                            max_bytes_in_flight: max_bytes_in_flight.0,
                            bandwidth: bandwidth.map(|b| Arc::new(TokenBucket::per_second(b.0))),
                        },
                        max_requests_per_second,
                        dry_run,
                        parts: PartSizes::from(migration),
                        json,
                    };
                    Box::pin(bulk::migrate_command(route, fallback, run))
                },
                &bucket,
            )
        }),
        Command::Check { merge, json, .. } if !merge.is_empty() => bulk::merge_command(&merge, json),
        Command::Check {
            config,
            bucket,
            prefix,
            sharding,
            download,
            json,
            ..
        } => sharding.spec().and_then(|shard| {
            // clap requires both unless --merge, which was handled above.
            let (Some(config), Some(bucket)) = (config, bucket) else {
                eprintln!("error: --config and --bucket are required (or --merge REPORT.json...)");
                return Err(ExitCode::FAILURE);
            };
            let wait = Duration::from_secs(sharding.shard_plan_wait_secs);
            bulk::run_bulk(
                &config,
                move |route, fallback, _| {
                    Box::pin(bulk::check_command(
                        route, fallback, prefix, shard, wait, download, json,
                    ))
                },
                &bucket,
            )
        }),
        Command::Probe {
            config,
            provider,
            bucket,
            write,
            json,
            timeout_secs,
        } => probe::probe_command(probe::ProbeArgs {
            config: &config,
            provider: &provider,
            bucket,
            write,
            json,
            timeout: Duration::from_secs(timeout_secs.max(1)),
        }),
    };
    // A command that could not get going has already said why; its code is the answer.
    outcome.unwrap_or_else(|failed| failed)
}

fn init_logging(format: Option<LogFormat>, to_stderr: bool) {
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(log_writer(to_stderr));
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// The writer of log lines: stdout, or stderr for commands whose stdout is their report.
fn log_writer(to_stderr: bool) -> tracing_subscriber::fmt::writer::BoxMakeWriter {
    if to_stderr {
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr)
    } else {
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout)
    }
}

/// What a command returns: its exit code, or `Err` with the code of a failure it has already
/// reported on stderr (so that commands can stop early with `?`).
type Outcome = Result<ExitCode, ExitCode>;

/// The config at `path`, or the failure exit code after printing why.
fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::FAILURE
    })
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
