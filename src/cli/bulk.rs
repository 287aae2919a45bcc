//! `s3ferry migrate` and `s3ferry check` on a bucket under lazy migration: the route they
//! work on, the progress bar, and the reports they print.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use s3ferry::config::MigrationConfig;
use s3ferry::migration::bulk::{
    self, CheckReport, CopyLimits, LeftBehind, LeftBehindReason, MigrateOptions, MigrateReport, Progress, ShardLabel,
};
use s3ferry::migration::copy_task::PartSizes;
use s3ferry::migration::shard::{self, ShardSpec};
use s3ferry::route::{FallbackRoute, Route, RouteTable};
use s3ferry::server;
use s3ferry::upstream::pace::TokenBucket;

use super::serve::Signals;
use super::{Outcome, load, runtime};

pub(super) type BulkFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ExitCode>>>;

/// Loads the config, starts the providers and runs a bulk command on `bucket`'s route.
pub(super) fn run_bulk(
    path: &Path,
    command: impl FnOnce(Route, FallbackRoute, &MigrationConfig) -> BulkFuture,
    bucket: &str,
) -> Outcome {
    let config = load(path)?;
    let runtime = runtime()?;
    Ok(runtime.block_on(async move {
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
    }))
}

/// A progress bar on stderr (hidden when stderr is not a terminal): bytes copied of those
/// planned, MB/s, ETA, and in its message objects done and left, objects/s and errors.
struct ProgressBar {
    bar: indicatif::ProgressBar,
    objects: AtomicU64,
    errors: AtomicU64,
    planned_objects: AtomicU64,
    /// When copying began (after the planning pass), for objects/s.
    copying_since: std::sync::OnceLock<std::time::Instant>,
}

impl ProgressBar {
    fn show_counts(&self) {
        let done = self.objects.load(Ordering::Relaxed);
        let planned = self.planned_objects.load(Ordering::Relaxed);
        let errors = self.errors.load(Ordering::Relaxed);
        let elapsed = self.copying_since.get().map_or(0.0, |t| t.elapsed().as_secs_f64());
        let per_second = done as f64 / elapsed.max(0.001);
        self.bar.set_message(format!(
            "{done}/{planned} objects ({} left), {per_second:.0} objects/s, {errors} errors",
            planned.saturating_sub(done + errors)
        ));
    }
}

impl Progress for ProgressBar {
    fn planned(&self, objects: u64, bytes: u64) {
        self.planned_objects.store(objects, Ordering::Relaxed);
        let _ = self.copying_since.set(std::time::Instant::now());
        self.bar.set_length(bytes);
        self.show_counts();
    }

    fn done(&self, _key: &str, bytes: u64) {
        self.objects.fetch_add(1, Ordering::Relaxed);
        self.bar.inc(bytes);
        self.show_counts();
    }

    fn failed(&self, _key: &str, _reason: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.show_counts();
    }
}

/// What `s3ferry migrate` was asked to do.
pub(super) struct MigrateRun {
    pub prefix: String,
    pub shard: Option<ShardSpec>,
    pub shard_plan_wait: Duration,
    pub concurrency: usize,
    pub list_parallelism: usize,
    pub limits: CopyLimits,
    pub max_requests_per_second: Option<u64>,
    pub dry_run: bool,
    pub parts: PartSizes,
    pub json: bool,
}

/// The shard's label (its range in the split), made or read as [`shard::shard_range`] says;
/// `Err` after saying why on stderr.
async fn resolve_shard(
    route: &Route,
    fallback: &FallbackRoute,
    prefix: &str,
    shard: Option<ShardSpec>,
    wait: Duration,
) -> Result<Option<ShardLabel>, ExitCode> {
    let Some(spec) = shard else { return Ok(None) };
    match shard::shard_range(route, fallback, prefix, spec, wait).await {
        Ok((range, plan)) => {
            let describe = |bound: &Option<String>, open: &str| bound.clone().unwrap_or_else(|| open.to_string());
            eprintln!(
                "shard {spec}: keys after {} through {}",
                describe(&range.after, "the start"),
                describe(&range.through, "the end")
            );
            Ok(ShardLabel::of(spec, plan.as_ref()))
        }
        Err(e) => {
            eprintln!("error: shard {spec}: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

pub(super) async fn migrate_command(route: Route, fallback: FallbackRoute, run: MigrateRun) -> ExitCode {
    let shard = match resolve_shard(&route, &fallback, &run.prefix, run.shard, run.shard_plan_wait).await {
        Ok(shard) => shard,
        Err(code) => return code,
    };
    let json = run.json;
    if let Some(rate) = run.max_requests_per_second {
        // One budget for both providers: what the run sends in all.
        let pace = Arc::new(TokenBucket::per_second(rate));
        for provider in [&route.provider, &fallback.provider] {
            provider.pace_requests(pace.clone());
        }
    }
    let options = MigrateOptions {
        prefix: run.prefix,
        shard,
        limits: run.limits,
        concurrency: run.concurrency,
        list_parallelism: run.list_parallelism,
        dry_run: run.dry_run,
        parts: run.parts,
    };
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] [{bar:30}] {bytes}/{total_bytes} {decimal_bytes_per_sec} ETA {eta} {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let progress = ProgressBar {
        bar,
        objects: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        planned_objects: AtomicU64::new(0),
        copying_since: std::sync::OnceLock::new(),
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
    let result = if options.dry_run {
        bulk::migrate(&route, &fallback, &options, &progress, &stop).await
    } else {
        // A real run keeps its status record in the new provider (`migrate --status`, /migration).
        let recorder = super::status::RunRecorder::start(&route, &options.prefix, options.shard.as_ref()).await;
        let result = bulk::migrate(&route, &fallback, &options, &recorder.progress(&progress), &stop).await;
        recorder.finish(result.as_ref().ok()).await;
        result
    };
    progress.bar.finish_and_clear();
    let Some(report) = print_report(result, json, print_migrate_report) else {
        return ExitCode::FAILURE;
    };
    // Objects left behind fail a real run (the migration cannot finish); `--status` only reports.
    if report.failed_objects > 0 || (!report.dry_run && !report.left_behind.is_empty()) {
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
    println!("failed:                  {}", r.failed_objects);
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

pub(super) async fn check_command(
    route: Route,
    fallback: FallbackRoute,
    prefix: String,
    shard: Option<ShardSpec>,
    shard_plan_wait: Duration,
    download: bool,
    json: bool,
) -> ExitCode {
    let shard = match resolve_shard(&route, &fallback, &prefix, shard, shard_plan_wait).await {
        Ok(shard) => shard,
        Err(code) => return code,
    };
    let result = bulk::check_shard(&route, &fallback, &prefix, shard, download).await;
    check_verdict(print_report(result, json, print_check_report))
}

/// `check --merge`: the reports of every shard of one split as one report.
pub(super) fn merge_command(paths: &[std::path::PathBuf], json: bool) -> Outcome {
    let mut reports = Vec::with_capacity(paths.len());
    for path in paths {
        let read = std::fs::read(path).map_err(|e| e.to_string()).and_then(|bytes| {
            serde_json::from_slice::<CheckReport>(&bytes).map_err(|e| format!("not a `check --json` report: {e}"))
        });
        match read {
            Ok(report) => reports.push(report),
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return Err(ExitCode::FAILURE);
            }
        }
    }
    Ok(check_verdict(print_report(
        bulk::merge_check_reports(reports),
        json,
        print_check_report,
    )))
}

/// 0 when a check found no differences, 1 when it did or could not run.
fn check_verdict(report: Option<CheckReport>) -> ExitCode {
    match report {
        Some(report) if report.differences() == 0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn print_check_report(report: &CheckReport) {
    if let Some(shard) = &report.shard {
        println!(
            "shard:                   {}/{} (split {})",
            shard.index, shard.count, shard.plan
        );
    }
    println!("matching:                {}", report.matching);
    println!("missing in new:          {}", report.missing_in_new_count());
    for key in report.missing_in_new.iter().take(20) {
        println!("  {key}");
    }
    println!("differ:                  {}", report.differ_count());
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

/// A bulk command's report on stdout, as JSON (`--json`) or for people; `None` when the
/// command failed, after saying why on stderr.
fn print_report<R: serde::Serialize>(
    result: Result<R, impl std::fmt::Display>,
    json: bool,
    print_for_people: impl FnOnce(&R),
) -> Option<R> {
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return None;
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print_for_people(&report);
    }
    Some(report)
}
