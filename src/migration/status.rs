//! Cut-over readiness: how far the migration of each bucket has come, without walking its
//! listings again.
//!
//! Every `s3ferry migrate` run (each shard) keeps a small [`StatusRecord`] in the new
//! provider's bucket under `.s3ferry/migration-status/` (beside the tombstones and shard plans,
//! so replicas and shards share it through the provider alone): written when it starts, every
//! few seconds while it copies, and when it ends. `migrate --status` walks both listings once
//! and stores what it found as a survey record. The gateway's `/migration` page and its gauges
//! only read these records (a LIST of the prefix and a few small GETs per bucket) and add the
//! process's own copies on read: no request ever walks a bucket's listing.
//!
//! This file is the pure part: the records, and how the records of one bucket (with a
//! process's copies on read) become one [`BucketStatus`] with a copy rate and an estimate of
//! the time left. `status_store` reads and writes the records.

use serde::{Deserialize, Serialize};

use super::bulk::{LeftBehind, MigrateReport};

/// Where the records live in the new provider's bucket (under the reserved prefix: never
/// listed, served or copied).
pub const STATUS_PREFIX: &str = ".s3ferry/migration-status/";
/// The most failures a record or a bucket's status keeps (the newest): the page must stay
/// small, and the full list is in `migrate`'s own report.
pub const MAX_FAILURES: usize = 20;
/// The longest reason kept with a failure: a provider's answer can be long, and a record (and
/// the page) must stay small.
pub const MAX_REASON_BYTES: usize = 512;
/// The most left-behind keys a survey record keeps (the count is exact).
pub const MAX_LEFT_BEHIND_KEYS: usize = 20;
/// A run not updated for this long is taken as stopped (killed, or its node gone): it no longer
/// counts towards the copy rate. Runs write every [`RUN_WRITE_INTERVAL_MS`].
pub const STALLED_AFTER_MS: u64 = 60_000;
/// How often a running `migrate` rewrites its record.
pub const RUN_WRITE_INTERVAL_MS: u64 = 5_000;

/// What wrote a record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// `s3ferry migrate` (one shard of it).
    #[default]
    Run,
    /// `s3ferry migrate --status`: both listings walked, nothing copied.
    Survey,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Listing what is left to copy, or copying.
    #[default]
    Running,
    /// Ended after walking every key (some copies may have failed: see `failed_objects`).
    Finished,
    /// Stopped early (Ctrl-C, SIGTERM); running it again resumes.
    Interrupted,
}

/// One object that could not be copied, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CopyFailure {
    pub key: String,
    pub reason: String,
    /// When it failed, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// Objects and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    pub objects: u64,
    pub bytes: u64,
}

/// The record one run or survey keeps in the new provider (JSON). Every field has a default, so
/// a record written by an older or newer s3ferry still reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusRecord {
    pub kind: RecordKind,
    /// The client's bucket name.
    pub bucket: String,
    pub prefix: String,
    /// `INDEX/COUNT` of a sharded run; absent for the whole bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    pub state: RunState,
    /// Milliseconds since the Unix epoch.
    pub started_ms: u64,
    pub updated_ms: u64,
    /// When copying began, after the planning pass (runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_started_ms: Option<u64>,
    /// A run: what was only in the old provider when it started. A survey: what is now.
    pub planned: Amount,
    /// Copied by this run.
    pub copied: Amount,
    /// Copied by the earlier runs of the same shard that this one resumed (carried over, so a
    /// resumed migration does not seem to start from nothing).
    pub copied_earlier: Amount,
    pub already_in_new: u64,
    pub newer_in_new: u64,
    pub tombstoned: u64,
    pub left_behind: u64,
    pub left_behind_keys: Vec<LeftBehind>,
    pub failed_objects: u64,
    /// The newest failures, at most [`MAX_FAILURES`], oldest first.
    pub failures: Vec<CopyFailure>,
}

impl StatusRecord {
    /// A survey record from `migrate --status`'s walk (a dry run's report).
    pub fn survey(bucket: &str, prefix: &str, report: &MigrateReport, now_ms: u64) -> Self {
        Self {
            kind: RecordKind::Survey,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            shard: report.shard.as_ref().map(|s| format!("{}/{}", s.index, s.count)),
            state: RunState::Finished,
            started_ms: now_ms,
            updated_ms: now_ms,
            planned: Amount {
                objects: report.planned_objects,
                bytes: report.planned_bytes,
            },
            already_in_new: report.already_in_new,
            newer_in_new: report.newer_in_new,
            tombstoned: report.deleted_through_s3ferry,
            left_behind: report.left_behind.len() as u64,
            left_behind_keys: report.left_behind.iter().take(MAX_LEFT_BEHIND_KEYS).cloned().collect(),
            ..Self::default()
        }
    }

    /// Takes in a finished (or interrupted) run's report: its counts are exact, where the
    /// running record only had the progress so far.
    pub fn finish(&mut self, report: &MigrateReport, now_ms: u64) {
        self.state = if report.interrupted {
            RunState::Interrupted
        } else {
            RunState::Finished
        };
        self.updated_ms = now_ms;
        self.planned = Amount {
            objects: report.planned_objects,
            bytes: report.planned_bytes,
        };
        self.copied = Amount {
            objects: report.copied_objects,
            bytes: report.copied_bytes,
        };
        self.already_in_new = report.already_in_new;
        self.newer_in_new = report.newer_in_new;
        self.tombstoned = report.deleted_through_s3ferry;
        self.left_behind = report.left_behind.len() as u64;
        self.left_behind_keys = report.left_behind.iter().take(MAX_LEFT_BEHIND_KEYS).cloned().collect();
        self.failed_objects = report.failed.len() as u64;
        // The report's failures are in completion order; keep the last ones, with the times
        // the running record already saw where it saw them.
        let seen = std::mem::take(&mut self.failures);
        let start = report.failed.len().saturating_sub(MAX_FAILURES);
        self.failures = report.failed[start..]
            .iter()
            .map(|(key, reason)| {
                shortened(CopyFailure {
                    key: key.clone(),
                    reason: reason.clone(),
                    at_ms: seen.iter().find(|f| &f.key == key).map_or(now_ms, |f| f.at_ms),
                })
            })
            .collect();
    }

    /// Records a failed copy while the run goes on.
    pub fn add_failure(&mut self, failure: CopyFailure) {
        self.failed_objects += 1;
        push_capped(&mut self.failures, failure);
    }

    /// The name of this record in the new provider's bucket: one per kind, prefix and shard,
    /// so each run overwrites the record of the run it resumes and records never pile up.
    pub fn name(&self) -> String {
        use sha2::Digest as _;
        let kind = match self.kind {
            RecordKind::Run => "run",
            RecordKind::Survey => "survey",
        };
        let prefix = hex::encode(&sha2::Sha256::digest(self.prefix.as_bytes())[..8]);
        let shard = self
            .shard
            .as_deref()
            .map_or("all".to_string(), |s| s.replace('/', "-of-"));
        format!("{STATUS_PREFIX}{kind}-{prefix}-{shard}.json")
    }

    /// Whether a run is still copying: not ended, and written recently.
    pub fn is_active(&self, now_ms: u64) -> bool {
        self.kind == RecordKind::Run
            && self.state == RunState::Running
            && now_ms.saturating_sub(self.updated_ms) <= STALLED_AFTER_MS
    }

    /// Objects and bytes per second this run copied, from its start of copying to its last
    /// update; `None` before it copied for a measurable time.
    pub fn rate(&self) -> Option<CopyRate> {
        let since = self.copy_started_ms?;
        let elapsed_ms = self.updated_ms.checked_sub(since).filter(|&ms| ms > 0)?;
        let seconds = elapsed_ms as f64 / 1000.0;
        Some(CopyRate {
            objects_per_second: self.copied.objects as f64 / seconds,
            bytes_per_second: self.copied.bytes as f64 / seconds,
        })
    }
}

/// Keeps the newest [`MAX_FAILURES`] of a list in time order.
fn push_capped(failures: &mut Vec<CopyFailure>, failure: CopyFailure) {
    failures.push(shortened(failure));
    if failures.len() > MAX_FAILURES {
        let extra = failures.len() - MAX_FAILURES;
        failures.drain(..extra);
    }
}

/// `failure` with its reason cut to [`MAX_REASON_BYTES`] (at a character boundary).
fn shortened(mut failure: CopyFailure) -> CopyFailure {
    if failure.reason.len() > MAX_REASON_BYTES {
        let mut end = MAX_REASON_BYTES;
        while !failure.reason.is_char_boundary(end) {
            end -= 1;
        }
        failure.reason.truncate(end);
        failure.reason.push('…');
    }
    failure
}

/// How fast copies go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CopyRate {
    pub objects_per_second: f64,
    pub bytes_per_second: f64,
}

/// What one gateway process copied on read in a bucket since it started (each replica counts
/// its own; the records are what replicas share).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OnReadCopies {
    pub copied: Amount,
    pub failed_objects: u64,
    /// The newest failures, at most [`MAX_FAILURES`], oldest first.
    pub failures: Vec<CopyFailure>,
}

impl OnReadCopies {
    pub fn copied(&mut self, bytes: u64) {
        self.copied.objects += 1;
        self.copied.bytes += bytes;
    }

    pub fn failed(&mut self, failure: CopyFailure) {
        self.failed_objects += 1;
        push_capped(&mut self.failures, failure);
    }
}

/// Which measurement `only_in_old` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measured {
    /// A survey (`migrate --status`): exact when it was made.
    Survey,
    /// The runs written since the newest survey (or with no survey): what they planned less
    /// what they copied, an estimate.
    Runs,
}

/// What is only in the old provider, and when that was measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnlyInOld {
    /// The keys measured: those under this prefix (`--prefix` of the survey or run).
    pub prefix: String,
    pub objects: u64,
    pub bytes: u64,
    pub measured_by: Measured,
    /// Milliseconds since the Unix epoch.
    pub as_of_ms: u64,
}

/// How many runs are in which state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    pub active: u64,
    /// Not ended, and not written for [`STALLED_AFTER_MS`]: killed, or its node lost.
    pub stalled: u64,
    pub finished: u64,
    pub interrupted: u64,
}

/// The migration of one bucket, as `migrate --status`, `/migration` and the gauges show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BucketStatus {
    pub bucket: String,
    /// `None` until a survey or a run has measured it.
    pub only_in_old: Option<OnlyInOld>,
    /// By every run (their records) and by this process's copies on read.
    pub copied: Amount,
    /// Of `copied`, this process's copies on read.
    pub copied_on_read: Amount,
    /// Deleted through s3ferry while only the old provider held them (never copied).
    pub tombstoned: Option<u64>,
    pub already_in_new: Option<u64>,
    /// Old objects that can never reach the new provider: lost at cut-over.
    pub left_behind: Option<u64>,
    pub left_behind_keys: Vec<LeftBehind>,
    pub failed_objects: u64,
    /// The newest failures (runs' and this process's copies on read), newest first.
    pub failed: Vec<CopyFailure>,
    /// Of the active runs together; `None` when no run is copying.
    pub copy_rate: Option<CopyRate>,
    /// The active runs' bytes left over their rate; `None` when no run is copying.
    pub eta_seconds: Option<u64>,
    pub runs: RunCounts,
    /// Why the records could not be read (the rest is then this process's own counts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl BucketStatus {
    /// A bucket whose records could not be read: only what this process knows.
    pub fn unreadable(bucket: &str, on_read: &OnReadCopies, error: String) -> Self {
        let mut status = bucket_status(bucket, &[], on_read, 0);
        status.error = Some(error);
        status
    }
}

/// Everything known about `bucket`'s migration, from its stored records (of any bucket: the
/// others are ignored) and this process's copies on read, at `now_ms`.
pub fn bucket_status(bucket: &str, records: &[StatusRecord], on_read: &OnReadCopies, now_ms: u64) -> BucketStatus {
    let records: Vec<&StatusRecord> = records.iter().filter(|r| r.bucket == bucket).collect();
    let survey = records
        .iter()
        .filter(|r| r.kind == RecordKind::Survey)
        .max_by_key(|r| r.updated_ms);
    let runs: Vec<&StatusRecord> = records.iter().copied().filter(|r| r.kind == RecordKind::Run).collect();

    let mut copied = on_read.copied;
    let mut failed_objects = on_read.failed_objects;
    let mut failed: Vec<CopyFailure> = on_read.failures.clone();
    let mut counts = RunCounts::default();
    let mut rate: Option<CopyRate> = None;
    let mut active_left = Amount::default();
    for run in &runs {
        copied.objects += run.copied.objects + run.copied_earlier.objects;
        copied.bytes += run.copied.bytes + run.copied_earlier.bytes;
        failed_objects += run.failed_objects;
        failed.extend(run.failures.iter().cloned());
        match run.state {
            RunState::Finished => counts.finished += 1,
            RunState::Interrupted => counts.interrupted += 1,
            RunState::Running if run.is_active(now_ms) => {
                counts.active += 1;
                if let Some(r) = run.rate() {
                    let sum = rate.get_or_insert_with(CopyRate::default);
                    sum.objects_per_second += r.objects_per_second;
                    sum.bytes_per_second += r.bytes_per_second;
                }
                active_left.objects += run.planned.objects.saturating_sub(run.copied.objects);
                active_left.bytes += run.planned.bytes.saturating_sub(run.copied.bytes);
            }
            RunState::Running => counts.stalled += 1,
        }
    }
    failed.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then_with(|| a.key.cmp(&b.key)));
    failed.truncate(MAX_FAILURES);

    // The newest measurement: the survey, or the runs written after it.
    let surveyed_ms = survey.map_or(0, |s| s.updated_ms);
    let later_runs: Vec<&&StatusRecord> = runs.iter().filter(|r| r.updated_ms > surveyed_ms).collect();
    let only_in_old = match (survey, later_runs.is_empty()) {
        (Some(s), true) => Some(OnlyInOld {
            prefix: s.prefix.clone(),
            objects: s.planned.objects,
            bytes: s.planned.bytes,
            measured_by: Measured::Survey,
            as_of_ms: s.updated_ms,
        }),
        (_, false) => Some(OnlyInOld {
            prefix: later_runs
                .iter()
                .max_by_key(|r| r.updated_ms)
                .map(|r| r.prefix.clone())
                .unwrap_or_default(),
            objects: later_runs
                .iter()
                .map(|r| r.planned.objects.saturating_sub(r.copied.objects))
                .sum(),
            bytes: later_runs
                .iter()
                .map(|r| r.planned.bytes.saturating_sub(r.copied.bytes))
                .sum(),
            measured_by: Measured::Runs,
            as_of_ms: later_runs.iter().map(|r| r.updated_ms).max().unwrap_or(0),
        }),
        (None, true) => None,
    };
    // Counts a walk makes: the survey's, or the ended runs' when there is no survey.
    let walked: Vec<&StatusRecord> = match survey {
        Some(s) => vec![s],
        None => runs.iter().copied().filter(|r| r.state != RunState::Running).collect(),
    };
    let from_walk =
        |field: fn(&StatusRecord) -> u64| (!walked.is_empty()).then(|| walked.iter().map(|r| field(r)).sum());
    let mut left_behind_keys: Vec<LeftBehind> = walked.iter().flat_map(|r| r.left_behind_keys.clone()).collect();
    left_behind_keys.truncate(MAX_LEFT_BEHIND_KEYS);

    let eta_seconds = rate.and_then(|r| eta_seconds(active_left, r));
    BucketStatus {
        bucket: bucket.to_string(),
        only_in_old,
        copied,
        copied_on_read: on_read.copied,
        tombstoned: from_walk(|r| r.tombstoned),
        already_in_new: from_walk(|r| r.already_in_new),
        left_behind: from_walk(|r| r.left_behind),
        left_behind_keys,
        failed_objects,
        failed,
        copy_rate: rate,
        eta_seconds,
        runs: counts,
        error: None,
    }
}

/// The time the `left` amount takes at `rate`: by bytes, or by objects when nothing is measured
/// in bytes (empty objects); `None` when the rate is zero.
pub fn eta_seconds(left: Amount, rate: CopyRate) -> Option<u64> {
    let seconds = if rate.bytes_per_second > 0.0 {
        left.bytes as f64 / rate.bytes_per_second
    } else if rate.objects_per_second > 0.0 {
        left.objects as f64 / rate.objects_per_second
    } else {
        return None;
    };
    Some(seconds.ceil() as u64)
}

/// `ms` since the Unix epoch as an RFC 3339 time in UTC, for people.
pub fn format_time_ms(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .map(crate::s3::timestamp::s3_timestamp)
        .unwrap_or_else(|_| format!("{ms} ms after 1970"))
}

/// A number of seconds for people: `45 s`, `12 min`, `3 h 20 min`, `2 d 4 h`.
pub fn format_seconds(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 48 * 3600 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A number of bytes for people, in binary units (`1.5 MiB`).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Milliseconds since the Unix epoch now (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(objects: u64, bytes: u64) -> Amount {
        Amount { objects, bytes }
    }

    fn run(shard: &str, state: RunState, updated_ms: u64, planned: Amount, copied: Amount) -> StatusRecord {
        StatusRecord {
            bucket: "media".into(),
            shard: Some(shard.into()),
            state,
            started_ms: 1_000,
            copy_started_ms: Some(90_000),
            updated_ms,
            planned,
            copied,
            ..StatusRecord::default()
        }
    }

    fn survey(updated_ms: u64, only_in_old: Amount) -> StatusRecord {
        StatusRecord {
            kind: RecordKind::Survey,
            bucket: "media".into(),
            state: RunState::Finished,
            updated_ms,
            planned: only_in_old,
            tombstoned: 3,
            already_in_new: 7,
            left_behind: 1,
            ..StatusRecord::default()
        }
    }

    fn failure(key: &str, at_ms: u64) -> CopyFailure {
        CopyFailure {
            key: key.into(),
            reason: format!("{key} failed"),
            at_ms,
        }
    }

    #[test]
    fn rates_and_eta_come_from_the_active_runs_only() {
        // Each row: the runs, now, the rate in bytes/s and the ETA.
        let now = 100_000;
        let rows: Vec<(Vec<StatusRecord>, Option<f64>, Option<u64>)> = vec![
            // 10 s copying, 1,000 of 3,000 bytes: 100 B/s, 2,000 bytes left: 20 s.
            (
                vec![run(
                    "0/1",
                    RunState::Running,
                    100_000,
                    amount(30, 3_000),
                    amount(10, 1_000),
                )],
                Some(100.0),
                Some(20),
            ),
            // Two shards add their rates and what each has left: 150 B/s, 3,000 left.
            (
                vec![
                    run("0/2", RunState::Running, 100_000, amount(30, 3_000), amount(10, 1_000)),
                    run("1/2", RunState::Running, 100_000, amount(10, 1_500), amount(5, 500)),
                ],
                Some(150.0),
                Some(20),
            ),
            // A finished run and a stalled one (not written for over a minute) copy nothing now.
            (
                vec![
                    run("0/2", RunState::Finished, 100_000, amount(30, 3_000), amount(30, 3_000)),
                    run(
                        "1/2",
                        RunState::Running,
                        100_000 - STALLED_AFTER_MS - 1,
                        amount(9, 900),
                        amount(1, 100),
                    ),
                ],
                None,
                None,
            ),
            // Copying began at the last update: no time to measure over.
            (
                vec![run("0/1", RunState::Running, 90_000, amount(3, 300), amount(0, 0))],
                None,
                None,
            ),
            // Started copying 10 s ago and copied nothing yet: a rate of zero, no estimate.
            (
                vec![run("0/1", RunState::Running, 100_000, amount(3, 300), amount(0, 0))],
                Some(0.0),
                None,
            ),
            // Empty objects only: the estimate goes by objects (1 object/s, 4 left).
            (
                vec![run("0/1", RunState::Running, 100_000, amount(14, 0), amount(10, 0))],
                Some(0.0),
                Some(4),
            ),
        ];
        for (i, (runs, bytes_per_second, eta)) in rows.into_iter().enumerate() {
            let status = bucket_status("media", &runs, &OnReadCopies::default(), now);
            assert_eq!(
                status.copy_rate.map(|r| r.bytes_per_second),
                bytes_per_second,
                "row {i}"
            );
            assert_eq!(status.eta_seconds, eta, "row {i}");
        }
    }

    #[test]
    fn eta_rounds_up_and_prefers_bytes() {
        let rate = |objects_per_second, bytes_per_second| CopyRate {
            objects_per_second,
            bytes_per_second,
        };
        assert_eq!(eta_seconds(amount(5, 1_001), rate(1.0, 100.0)), Some(11));
        assert_eq!(eta_seconds(amount(5, 0), rate(2.0, 100.0)), Some(0));
        assert_eq!(eta_seconds(amount(5, 0), rate(2.0, 0.0)), Some(3));
        assert_eq!(eta_seconds(amount(5, 9), rate(0.0, 0.0)), None);
    }

    #[test]
    fn only_in_old_is_the_newest_measurement() {
        let on_read = OnReadCopies::default();
        // Only a survey: its numbers, exact.
        let status = bucket_status("media", &[survey(5_000, amount(4, 400))], &on_read, 6_000);
        let only = status.only_in_old.expect("measured");
        assert_eq!(
            (only.objects, only.bytes, only.measured_by, only.as_of_ms),
            (4, 400, Measured::Survey, 5_000)
        );
        assert_eq!(
            (status.tombstoned, status.already_in_new, status.left_behind),
            (Some(3), Some(7), Some(1))
        );
        // A run written after the survey: what it planned less what it copied.
        let later = run("0/1", RunState::Finished, 9_000, amount(4, 400), amount(3, 300));
        let status = bucket_status(
            "media",
            &[survey(5_000, amount(4, 400)), later.clone()],
            &on_read,
            9_500,
        );
        let only = status.only_in_old.expect("measured");
        assert_eq!(
            (only.objects, only.bytes, only.measured_by, only.as_of_ms),
            (1, 100, Measured::Runs, 9_000)
        );
        // A survey after the run wins again; a run before it does not count towards it.
        let status = bucket_status("media", &[survey(10_000, amount(2, 150)), later], &on_read, 10_500);
        let only = status.only_in_old.expect("measured");
        assert_eq!((only.objects, only.bytes, only.measured_by), (2, 150, Measured::Survey));
        // Nothing measured yet.
        assert_eq!(bucket_status("media", &[], &on_read, 0).only_in_old, None);
        // Another bucket's records are not this one's.
        let mut other = survey(5_000, amount(9, 9));
        other.bucket = "other".into();
        assert_eq!(bucket_status("media", &[other], &on_read, 6_000).only_in_old, None);
    }

    #[test]
    fn copies_and_failures_add_up_across_runs_and_copies_on_read() {
        let mut first = run("0/2", RunState::Finished, 8_000, amount(5, 500), amount(3, 300));
        first.copied_earlier = amount(2, 200);
        first.failed_objects = 1;
        first.failures = vec![failure("b", 7_000)];
        let mut second = run("1/2", RunState::Interrupted, 9_000, amount(4, 40), amount(1, 10));
        second.failed_objects = 25;
        second.failures = (0..MAX_FAILURES as u64)
            .map(|i| failure(&format!("k{i:02}"), 1_000 + i))
            .collect();
        let mut on_read = OnReadCopies::default();
        on_read.copied(5);
        on_read.failed(failure("<script>", 9_500));
        let status = bucket_status("media", &[first, second], &on_read, 10_000);
        assert_eq!(status.copied, amount(3 + 2 + 1 + 1, 300 + 200 + 10 + 5));
        assert_eq!(status.copied_on_read, amount(1, 5));
        assert_eq!(status.failed_objects, 1 + 25 + 1);
        // The newest MAX_FAILURES of all, newest first.
        assert_eq!(status.failed.len(), MAX_FAILURES);
        let keys: Vec<&str> = status.failed.iter().take(3).map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["<script>", "b", "k19"]);
        assert_eq!(
            status.runs,
            RunCounts {
                finished: 1,
                interrupted: 1,
                ..RunCounts::default()
            }
        );
    }

    #[test]
    fn a_finished_report_replaces_the_running_counts_and_keeps_failure_times() {
        let mut record = run("0/1", RunState::Running, 5_000, amount(3, 30), amount(1, 10));
        record.add_failure(failure("x", 4_000));
        let report = MigrateReport {
            planned_objects: 3,
            planned_bytes: 30,
            copied_objects: 2,
            copied_bytes: 20,
            failed: vec![("x".into(), "x failed".into()), ("y".into(), "y failed".into())],
            ..MigrateReport::default()
        };
        record.finish(&report, 6_000);
        assert_eq!(record.state, RunState::Finished);
        assert_eq!((record.copied, record.failed_objects), (amount(2, 20), 2));
        let times: Vec<(&str, u64)> = record.failures.iter().map(|f| (f.key.as_str(), f.at_ms)).collect();
        assert_eq!(times, [("x", 4_000), ("y", 6_000)]);
        let interrupted = MigrateReport {
            interrupted: true,
            ..MigrateReport::default()
        };
        record.finish(&interrupted, 7_000);
        assert_eq!(record.state, RunState::Interrupted);
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        let mut record = StatusRecord::default();
        record.add_failure(CopyFailure {
            key: "k".into(),
            reason: "é".repeat(MAX_REASON_BYTES),
            at_ms: 1,
        });
        let reason = &record.failures[0].reason;
        assert!(reason.len() <= MAX_REASON_BYTES + '…'.len_utf8(), "{}", reason.len());
        assert!(reason.ends_with('…'));
        let short = "answered 503".to_string();
        record.add_failure(CopyFailure {
            key: "j".into(),
            reason: short.clone(),
            at_ms: 2,
        });
        assert_eq!(record.failures[1].reason, short);
    }

    #[test]
    fn record_names_are_one_per_kind_prefix_and_shard_under_the_reserved_prefix() {
        let mut record = StatusRecord::default();
        let whole = record.name();
        assert!(
            whole.starts_with(STATUS_PREFIX) && whole.ends_with("-all.json"),
            "{whole}"
        );
        assert!(crate::target::is_reserved(&whole));
        record.shard = Some("2/8".into());
        assert!(record.name().ends_with("-2-of-8.json"), "{}", record.name());
        record.kind = RecordKind::Survey;
        assert!(record.name().starts_with(&format!("{STATUS_PREFIX}survey-")));
        let mut other_prefix = record.clone();
        other_prefix.prefix = "photos/".into();
        assert_ne!(other_prefix.name(), record.name());
    }

    #[test]
    fn times_sizes_and_durations_read_as_people_write_them() {
        assert_eq!(format_time_ms(1_764_527_400_000), "2025-11-30T18:30:00.000Z");
        assert_eq!(format_bytes(512), "512 bytes");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
        for (seconds, text) in [
            (45, "45 s"),
            (720, "12 min"),
            (12_000, "3 h 20 min"),
            (187_200, "2 d 4 h"),
        ] {
            assert_eq!(format_seconds(seconds), text);
        }
    }

    #[test]
    fn records_read_with_fields_missing_or_unknown() {
        let record: StatusRecord =
            serde_json::from_str(r#"{"bucket":"media","copied":{"objects":2,"bytes":9},"future":1}"#).expect("reads");
        assert_eq!(
            (record.kind, record.state, record.copied),
            (RecordKind::Run, RunState::Running, amount(2, 9))
        );
    }
}
