//! `s3ferry migrate --status` (a survey of every migrated bucket, or one) and the status record
//! a `migrate` run keeps up to date while it copies (see `migration::status`).

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use s3ferry::migration::bulk::{self, LeftBehindReason, MigrateOptions, MigrateReport, Progress, ShardLabel};
use s3ferry::migration::copy_task::PartSizes;
use s3ferry::migration::status::{
    self, Amount, BucketStatus, CopyFailure, Measured, OnReadCopies, RUN_WRITE_INTERVAL_MS, RecordKind, StatusRecord,
    bucket_status, format_bytes, format_seconds, format_time_ms, now_ms,
};
use s3ferry::migration::status_store::{read_record, read_records, write_record};
use s3ferry::route::{Route, RouteTable};
use s3ferry::s3::bucket_name::WILDCARD_BUCKET;
use s3ferry::server;

use super::{Outcome, load, runtime};

/// `migrate --status`: walks both listings of `bucket` (or of every bucket under lazy
/// migration), stores what it found as a survey record, and prints each bucket's status with
/// what the runs' records say.
pub(super) fn status_command(path: &Path, bucket: Option<&str>, prefix: &str, json: bool) -> Outcome {
    let config = load(path)?;
    let runtime = runtime()?;
    runtime.block_on(async move {
        let (upstreams, _local_providers) = server::start_providers(&config).await.map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        })?;
        let table = RouteTable::new(&config.buckets, &upstreams).map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        })?;
        let buckets: Vec<String> = match bucket {
            Some(b) => vec![b.to_string()],
            None => config
                .buckets
                .iter()
                .filter(|b| b.fallback.is_some() && b.name != WILDCARD_BUCKET)
                .map(|b| b.name.clone())
                .collect(),
        };
        if buckets.is_empty() {
            eprintln!(
                "error: no bucket is under lazy migration: give a [[buckets]] route `fallback = \"<old provider>\"` (see config.example.toml)"
            );
            return Err(ExitCode::FAILURE);
        }
        let parts = PartSizes::from(&config.migration);
        let mut statuses = Vec::with_capacity(buckets.len());
        let mut failed = false;
        for name in &buckets {
            match survey_bucket(&table, name, prefix, parts).await {
                Ok(status) => statuses.push(status),
                Err(e) => {
                    eprintln!("error: bucket '{name}': {e}");
                    failed = true;
                }
            }
        }
        if json {
            let report = serde_json::json!({ "buckets": statuses });
            println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
        } else {
            for status in &statuses {
                print_bucket_status(status);
            }
        }
        Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
    })
}

/// One bucket's survey, stored, and its status with the stored runs' records.
async fn survey_bucket(
    table: &RouteTable,
    bucket: &str,
    prefix: &str,
    parts: PartSizes,
) -> Result<BucketStatus, String> {
    let route = table.resolve(bucket).map_err(|e| e.to_string())?;
    let Some(fallback) = route.fallback.clone() else {
        return Err(
            "not under lazy migration: give its [[buckets]] route `fallback = \"<old provider>\"` (see config.example.toml)"
                .into(),
        );
    };
    eprintln!(
        "surveying '{bucket}' ({}:{}) -> ({}:{})",
        fallback.provider.settings.name, fallback.bucket, route.provider.settings.name, route.upstream_bucket
    );
    let options = MigrateOptions {
        limits: bulk::CopyLimits::default(),
        prefix: prefix.to_string(),
        shard: None,
        concurrency: 1,
        list_parallelism: 4,
        dry_run: true,
        parts,
    };
    let report = bulk::migrate(&route, &fallback, &options, &NoProgress, &AtomicBool::new(false))
        .await
        .map_err(|e| e.to_string())?;
    let survey = StatusRecord::survey(bucket, prefix, &report, now_ms());
    if let Err(e) = write_record(&route, &survey).await {
        eprintln!("warning: bucket '{bucket}': the survey could not be stored for the gateway's /migration page: {e}");
    }
    let mut records = read_records(&route).await.unwrap_or_else(|e| {
        eprintln!("warning: bucket '{bucket}': cannot read the runs' status records: {e}");
        Vec::new()
    });
    // The survey just made, whether or not it could be stored (or listed yet).
    let name = survey.name();
    records.retain(|r| r.name() != name);
    records.push(survey);
    Ok(bucket_status(bucket, &records, &OnReadCopies::default(), now_ms()))
}

/// ` under 'P'` for a measurement of the keys under a prefix, else nothing.
fn under_prefix(prefix: &str) -> String {
    if prefix.is_empty() {
        String::new()
    } else {
        format!(" under '{prefix}'")
    }
}

struct NoProgress;

impl Progress for NoProgress {
    fn planned(&self, _objects: u64, _bytes: u64) {}
    fn done(&self, _key: &str, _bytes: u64) {}
}

fn print_bucket_status(s: &BucketStatus) {
    println!("bucket {}", s.bucket);
    match &s.only_in_old {
        Some(o) => println!(
            "  only in the old provider: {} objects ({}){}, {} {}",
            o.objects,
            format_bytes(o.bytes),
            under_prefix(&o.prefix),
            match o.measured_by {
                Measured::Survey => "surveyed",
                Measured::Runs => "estimated from the runs at",
            },
            format_time_ms(o.as_of_ms)
        ),
        None => println!("  only in the old provider: not measured"),
    }
    println!(
        "  copied:                   {} objects ({}) by migrate runs",
        s.copied.objects,
        format_bytes(s.copied.bytes)
    );
    let known = |n: Option<u64>| n.map_or_else(|| "not measured".to_string(), |n| n.to_string());
    println!("  already in new:           {}", known(s.already_in_new));
    println!(
        "  deleted through s3ferry:  {} (tombstoned; not copied)",
        known(s.tombstoned)
    );
    println!(
        "  failed copies:            {} (in the last run of each shard)",
        s.failed_objects
    );
    for f in &s.failed {
        println!("    {}: {}", f.key, f.reason);
    }
    match s.copy_rate {
        Some(r) => println!(
            "  copy rate:                {:.1} objects/s, {}/s ({} runs copying)",
            r.objects_per_second,
            format_bytes(r.bytes_per_second as u64),
            s.runs.active
        ),
        None => println!("  copy rate:                no run is copying"),
    }
    if let Some(eta) = s.eta_seconds {
        println!("  time left:                about {}", format_seconds(eta));
    }
    println!(
        "  runs:                     {} copying, {} stalled, {} finished, {} interrupted",
        s.runs.active, s.runs.stalled, s.runs.finished, s.runs.interrupted
    );
    if s.left_behind.unwrap_or(0) > 0 {
        println!(
            "  LEFT BEHIND:              {} objects of the old provider cannot reach the new one and are lost when it is switched off",
            known(s.left_behind)
        );
        for item in &s.left_behind_keys {
            let why = match item.reason {
                LeftBehindReason::ReservedPrefix => "under s3ferry's reserved .s3ferry/ prefix",
                LeftBehindReason::DotSegments => "'.'/'..' segments a provider of the route would resolve",
                LeftBehindReason::UnstorableInNew => "a key the new (local) provider cannot store",
            };
            println!("    {}: {why}", item.key);
        }
    }
    let nothing_left = s.only_in_old.as_ref().is_some_and(|o| o.objects == 0);
    if nothing_left && s.left_behind == Some(0) && s.failed_objects == 0 {
        println!("  nothing left only in the old provider: run `s3ferry check` before switching it off");
    }
    println!();
}

/// The status record of one `migrate` run, kept in memory as the run goes and written to the
/// new provider every [`RUN_WRITE_INTERVAL_MS`] and at the end. Writing is best-effort: a
/// record that cannot be stored is a warning, never a failed migration.
pub(super) struct RunRecorder {
    route: Route,
    record: Arc<Mutex<StatusRecord>>,
    writer: tokio::task::JoinHandle<()>,
}

impl RunRecorder {
    /// Reads the record of the run this one resumes (its copies carry over), writes the new
    /// one, and starts writing it every few seconds.
    pub(super) async fn start(route: &Route, prefix: &str, shard: Option<&ShardLabel>) -> Self {
        let now = now_ms();
        let mut record = StatusRecord {
            kind: RecordKind::Run,
            bucket: route.client_bucket.clone(),
            prefix: prefix.to_string(),
            shard: shard.map(|s| format!("{}/{}", s.index, s.count)),
            started_ms: now,
            updated_ms: now,
            ..StatusRecord::default()
        };
        match read_record(route, &record.name()).await {
            Ok(Some(earlier)) => {
                record.copied_earlier = Amount {
                    objects: earlier.copied_earlier.objects + earlier.copied.objects,
                    bytes: earlier.copied_earlier.bytes + earlier.copied.bytes,
                };
            }
            Ok(None) => {}
            Err(e) => warn_unstored(&route.client_bucket, &e.to_string()),
        }
        let record = Arc::new(Mutex::new(record));
        write_now(route, &record).await;
        let writer = {
            let (route, record) = (route.clone(), record.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(RUN_WRITE_INTERVAL_MS)).await;
                    write_now(&route, &record).await;
                }
            })
        };
        Self {
            route: route.clone(),
            record,
            writer,
        }
    }

    /// The progress to hand `migrate`: `shown` (the bar) and this record.
    pub(super) fn progress<'a>(&'a self, shown: &'a dyn Progress) -> RecordedProgress<'a> {
        RecordedProgress {
            shown,
            record: &self.record,
        }
    }

    /// Stops the periodic writes and stores the run's end: its report's exact counts, or
    /// interrupted when it failed before it could report.
    pub(super) async fn finish(self, report: Option<&MigrateReport>) {
        self.writer.abort();
        {
            let mut record = self.record.lock().unwrap_or_else(PoisonError::into_inner);
            match report {
                Some(report) => record.finish(report, now_ms()),
                None => record.state = status::RunState::Interrupted,
            }
        }
        write_now(&self.route, &self.record).await;
    }
}

async fn write_now(route: &Route, record: &Mutex<StatusRecord>) {
    let snapshot = {
        let mut record = record.lock().unwrap_or_else(PoisonError::into_inner);
        record.updated_ms = now_ms();
        record.clone()
    };
    if let Err(e) = write_record(route, &snapshot).await {
        warn_unstored(&route.client_bucket, &e.to_string());
    }
}

fn warn_unstored(bucket: &str, error: &str) {
    tracing::warn!(%bucket, %error, "cannot store the migration status record (the migration goes on; /migration and `migrate --status` will not show this run's progress)");
}

/// [`Progress`] that shows on the bar and counts into the run's status record.
pub(super) struct RecordedProgress<'a> {
    shown: &'a dyn Progress,
    record: &'a Mutex<StatusRecord>,
}

impl RecordedProgress<'_> {
    fn update(&self, change: impl FnOnce(&mut StatusRecord)) {
        change(&mut self.record.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

impl Progress for RecordedProgress<'_> {
    fn planned(&self, objects: u64, bytes: u64) {
        self.shown.planned(objects, bytes);
        // Called again as the walk finds more to copy (the totals grow): the copying began
        // at the first call, and the rate counts from there.
        self.update(|r| {
            r.planned = Amount { objects, bytes };
            r.copy_started_ms.get_or_insert_with(now_ms);
        });
    }

    fn done(&self, key: &str, bytes: u64) {
        self.shown.done(key, bytes);
        self.update(|r| {
            r.copied.objects += 1;
            r.copied.bytes += bytes;
        });
    }

    fn failed(&self, key: &str, reason: &str) {
        self.shown.failed(key, reason);
        self.update(|r| {
            r.add_failure(CopyFailure {
                key: key.to_string(),
                reason: reason.to_string(),
                at_ms: now_ms(),
            });
        });
    }
}
