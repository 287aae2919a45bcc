//! `s3ferry migrate` and `s3ferry check`: finish and verify a lazy migration.
//!
//! Both walk the old bucket and the new bucket together in key order (two paginated listings,
//! constant memory), asking the tombstones near each old key ([`TombstoneLookup`]). `migrate` copies every object that is only in the old
//! provider and was not deleted through s3ferry, with [`copy_walked_object`]'s guarantees (never
//! over a newer object, never after a delete, verified); objects already in the new provider are skipped, so a migration that
//! was interrupted simply runs again. `check` compares both sides like `rclone check`.
//!
//! Some old objects can never reach the new provider through s3ferry: keys under the reserved
//! `.s3ferry/` prefix (s3ferry's own state, never served, copied or listed) and keys with `.`/`..`
//! segments that a provider of the route would resolve as a path, and keys the new provider cannot
//! store (a local provider's file names are short). Switching the old provider off
//! loses them, so both commands name them ([`LeftBehind`]), `check` counts them as differences
//! and `migrate` fails while any remain; they are never copied.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt as _;
use md5::Digest as _;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::copy::copy_walked_object;
use super::copy_task::{CopyOutcome, CopyTask, is_plain_md5_etag, same_etag};
use super::listing::Cursor;
use super::pages::{ListRequest, list_page};
use super::shard::{KeyRange, ShardPlan, ShardSpec, spread};
use super::tombstone::TombstoneLookup;
use crate::error::GatewayError;
use crate::rewrite::list_objects::{ListEntry, ListedObject};
use crate::route::{FallbackRoute, Route};
use crate::upstream::Upstream;
use crate::upstream::pace::TokenBucket;

/// One key as both providers see it.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub key: String,
    pub old: Option<ListedObject>,
    pub new: Option<ListedObject>,
    pub tombstoned: bool,
    /// Why an old object cannot reach the new provider, if it cannot.
    pub left_behind: Option<LeftBehindReason>,
}

/// Why an old object cannot reach the new provider through s3ferry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftBehindReason {
    /// Under `.s3ferry/`, which s3ferry keeps for its own state.
    ReservedPrefix,
    /// `.`/`..` segments that a provider of the route would resolve as a path (see
    /// `target::refuse_dot_segments` and `dialect_overrides.literal_dot_segments`).
    DotSegments,
    /// A key the new provider cannot store (a local provider keeps keys in file names).
    UnstorableInNew,
}

/// An old object the migration cannot move, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftBehind {
    pub key: String,
    pub reason: LeftBehindReason,
}

/// Why `key`, held by the old provider, cannot reach the new one: a pure rule over the key and
/// both providers' settings.
pub fn left_behind_reason(key: &str, route: &Route, fallback: &FallbackRoute) -> Option<LeftBehindReason> {
    if crate::target::is_reserved(key) {
        return Some(LeftBehindReason::ReservedPrefix);
    }
    let providers = [&fallback.provider.settings, &route.provider.settings];
    if crate::upstream::refuse_dot_segments(key, &providers).is_err() {
        return Some(LeftBehindReason::DotSegments);
    }
    if route
        .provider
        .settings
        .unstorable_key(&route.upstream_bucket, key)
        .is_some()
    {
        return Some(LeftBehindReason::UnstorableInNew);
    }
    None
}

/// Keys per listing request (S3's most).
const LISTING_PAGE: usize = 1000;

/// Walks the old bucket and the new bucket in key order, with each key's tombstone.
struct PairWalk<'a> {
    route: &'a Route,
    fallback: &'a FallbackRoute,
    old: Cursor<'a>,
    new: Cursor<'a>,
    tombstones: TombstoneLookup<'a>,
    /// Only keys in this range are walked: both listings start after its lower bound, and the
    /// walk ends at its upper one.
    range: KeyRange,
}

impl<'a> PairWalk<'a> {
    fn new(route: &'a Route, fallback: &'a FallbackRoute, prefix: &str, range: &KeyRange) -> Self {
        let list = |prefix: String| ListRequest {
            prefix,
            delimiter: None,
            start_after: range.after.clone(),
            continuation_token: None,
            max_keys: LISTING_PAGE,
        };
        Self {
            route,
            fallback,
            // Every old object, s3ferry's reserved keys included: those are reported.
            old: Cursor::new(&fallback.provider, &fallback.bucket, list(prefix.to_string())),
            // The new provider's reserved keys are s3ferry's own state, not objects.
            new: Cursor::skipping_reserved(&route.provider, &route.upstream_bucket, list(prefix.to_string())),
            tombstones: TombstoneLookup::new(&route.provider, &route.upstream_bucket),
            range: range.clone(),
        }
    }

    async fn next(&mut self) -> Result<Option<KeyPair>, GatewayError> {
        loop {
            let old = self.old.peek().await?.map(|e| e.name().to_string());
            let new = self.new.peek().await?.map(|e| e.name().to_string());
            let key = match (&old, &new) {
                (None, None) => return Ok(None),
                (Some(o), Some(n)) => o.min(n).clone(),
                (Some(o), None) => o.clone(),
                (None, Some(n)) => n.clone(),
            };
            // Both listings are sorted: the first key past the range ends the walk.
            if self.range.is_past(&key) {
                return Ok(None);
            }
            let take = |entry: Option<ListEntry>| match entry {
                Some(ListEntry::Object(o)) => Some(o),
                _ => None,
            };
            let old_obj = if old.as_deref() == Some(key.as_str()) {
                take(self.old.next().await?)
            } else {
                None
            };
            let new_obj = if new.as_deref() == Some(key.as_str()) {
                take(self.new.next().await?)
            } else {
                None
            };
            if old_obj.is_none() && crate::target::is_reserved(&key) {
                continue;
            }
            let left_behind = old_obj
                .as_ref()
                .and_then(|_| left_behind_reason(&key, self.route, self.fallback));
            // A tombstone matters only where it hides an old object the new provider lacks; a
            // key no client can name has none.
            let tombstoned = match (&old_obj, &new_obj, left_behind) {
                (Some(_), None, None) => self.tombstones.contains(&key).await?,
                _ => false,
            };
            return Ok(Some(KeyPair {
                key,
                old: old_obj,
                new: new_obj,
                tombstoned,
                left_behind,
            }));
        }
    }
}

/// Whether two listed objects hold the same content, as far as listings can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Same,
    Different,
    /// Same size, but the ETags are not both plain MD5s (multipart, another provider's format).
    NotComparable,
}

/// Compares two listed objects whose values are in the client's form (as [`Cursor`] gives
/// them), so an OSS old provider's uppercase ETag and an AWS new one's agree on the same bytes.
pub fn compare(old: &ListedObject, new: &ListedObject) -> Comparison {
    if old.size != new.size {
        return Comparison::Different;
    }
    if !(is_plain_md5_etag(&old.etag) && is_plain_md5_etag(&new.etag)) {
        return Comparison::NotComparable;
    }
    if same_etag(&old.etag, &new.etag) {
        Comparison::Same
    } else {
        Comparison::Different
    }
}

/// Which shard of a split (`--shard I/N`) a run covers; reports carry it so that
/// `check --merge` can tell that N reports cover every shard of one split exactly once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardLabel {
    pub index: u32,
    pub count: u32,
    /// The split's [`ShardPlan::id`].
    pub plan: String,
    pub range: KeyRange,
}

impl ShardLabel {
    /// Shard `spec` of `plan`; `None` for a run of one shard, which covers everything.
    pub fn of(spec: ShardSpec, plan: Option<&ShardPlan>) -> Option<Self> {
        let plan = plan?;
        Some(Self {
            index: spec.index,
            count: spec.count,
            plan: plan.id(),
            range: plan.range(spec.index),
        })
    }

    fn range_of(shard: Option<&Self>) -> KeyRange {
        shard.map(|s| s.range.clone()).unwrap_or_default()
    }
}

/// How hard `migrate` may push besides its concurrency (`--max-bytes-in-flight`,
/// `--bandwidth`; the request rate is paced per provider, see `Upstream::pace_requests`).
#[derive(Debug, Clone)]
pub struct CopyLimits {
    /// The most bytes of objects being copied at once: copies wait for room, so many large
    /// objects do not all stream at once; an object larger than this is copied alone.
    pub max_bytes_in_flight: u64,
    /// Bytes per second over the run, taken per object as it starts (see `upstream::pace`).
    pub bandwidth: Option<Arc<TokenBucket>>,
}

impl Default for CopyLimits {
    fn default() -> Self {
        Self {
            max_bytes_in_flight: DEFAULT_MAX_BYTES_IN_FLIGHT,
            bandwidth: None,
        }
    }
}

/// `--max-bytes-in-flight` unless given: 512 MiB.
pub const DEFAULT_MAX_BYTES_IN_FLIGHT: u64 = 512 << 20;

/// Byte budgets count in KiB, so that a semaphore's permits (at most `u32::MAX` per take)
/// cover terabytes.
fn kib(bytes: u64) -> u32 {
    u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX).max(1)
}

/// Options of `s3ferry migrate`.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub limits: CopyLimits,
    pub prefix: String,
    /// Only this shard's keys (`--shard`), or all.
    pub shard: Option<ShardLabel>,
    pub concurrency: usize,
    /// Walks of the key range at once (`--list-parallelism`), cut at the old bucket's prefixes.
    pub list_parallelism: usize,
    pub dry_run: bool,
    /// When copies go in parts (`[migration] multipart_copy_*`).
    pub parts: super::copy_task::PartSizes,
}

/// What `migrate` did (or, with `--dry-run`, would do).
#[derive(Debug, Default, Clone, Serialize)]
pub struct MigrateReport {
    pub planned_objects: u64,
    pub planned_bytes: u64,
    pub copied_objects: u64,
    pub copied_bytes: u64,
    pub already_in_new: u64,
    /// In both, with other content: a client wrote the key through s3ferry; never overwritten.
    pub newer_in_new: u64,
    pub deleted_through_s3ferry: u64,
    /// Old objects that cannot reach the new provider: lost when the old provider is switched off.
    pub left_behind: Vec<LeftBehind>,
    /// Copies that failed: every one counted, the first [`MAX_LISTED_KEYS`] named.
    pub failed_objects: u64,
    pub failed: Vec<(String, String)>,
    pub interrupted: bool,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardLabel>,
}

/// How `migrate` reports progress (a progress bar in the CLI, counters in tests).
pub trait Progress: Sync {
    /// What the walk has found to copy so far: called as it goes (the totals grow while it
    /// runs ahead of the copies), last with the whole.
    fn planned(&self, objects: u64, bytes: u64);
    fn done(&self, key: &str, bytes: u64);
    /// A copy failed, and why (it is listed in the report, and the next run tries it again).
    fn failed(&self, _key: &str, _reason: &str) {}
}

/// Copies everything only the old provider holds. Stops early (reporting `interrupted`) when
/// `stop` is set; what was copied stays copied, and running again resumes.
pub async fn migrate(
    route: &Route,
    fallback: &FallbackRoute,
    options: &MigrateOptions,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<MigrateReport, GatewayError> {
    let mut report = MigrateReport {
        dry_run: options.dry_run,
        shard: options.shard.clone(),
        ..MigrateReport::default()
    };
    let range = ShardLabel::range_of(options.shard.as_ref());
    // The walk: it counts what it finds and hands the keys to copy to the copies, up to two
    // listing pages ahead of them, so they never wait for the next page. (A walk of its own
    // for the totals first would list both buckets twice: on a bucket of small objects that
    // walk alone took about as long as the copies.) The totals grow as the walk goes. With
    // `list_parallelism`, several walks over parts of the range run at once.
    let ranges = fan_out(fallback, &options.prefix, &range, options.list_parallelism).await?;
    let ahead = (options.concurrency * 4).max(2 * LISTING_PAGE);
    let (pairs_tx, pairs_rx) = tokio::sync::mpsc::channel::<KeyPair>(ahead);
    let found = FoundSoFar::default();
    // Copying starts now; the totals follow a page at a time.
    progress.planned(0, 0);
    let walks: Vec<_> = ranges
        .iter()
        .map(|part| {
            let pairs_tx = (!options.dry_run).then(|| pairs_tx.clone());
            let found = &found;
            async move {
                let mut walk = PairWalk::new(route, fallback, &options.prefix, part);
                let mut walked = MigrateReport::default();
                let mut since_progress = 0;
                while let Some(pair) = walk.next().await? {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    since_progress += 1;
                    if since_progress == LISTING_PAGE {
                        since_progress = 0;
                        found.show(progress);
                    }
                    let Some(pair) = tally(&mut walked, pair) else { continue };
                    found.add(pair.old.as_ref().map_or(0, |o| o.size));
                    if let Some(tx) = &pairs_tx
                        && tx.send(pair).await.is_err()
                    {
                        break;
                    }
                }
                Ok::<MigrateReport, GatewayError>(walked)
            }
        })
        .collect();
    drop(pairs_tx);
    let producer = async {
        let walked = futures_util::future::try_join_all(walks).await;
        found.show(progress);
        walked
    };
    let budget_kib = kib(options.limits.max_bytes_in_flight);
    let bytes_in_flight = Semaphore::new(budget_kib as usize);
    let bytes_in_flight = &bytes_in_flight;
    let consumer = tokio_stream_from(pairs_rx)
        .map(|pair| async move {
            if stop.load(Ordering::Relaxed) {
                return (pair.key, None);
            }
            let size = pair.old.as_ref().map_or(0, |o| o.size);
            // Never closed, so the permits always come; held until the copy ends.
            let _room = bytes_in_flight.acquire_many(kib(size).min(budget_kib)).await.ok();
            if let Some(bandwidth) = &options.limits.bandwidth {
                bandwidth.acquire(size).await;
            }
            if stop.load(Ordering::Relaxed) {
                return (pair.key, None);
            }
            let task = CopyTask {
                client_bucket: route.client_bucket.clone(),
                old: fallback.provider.clone(),
                old_bucket: fallback.bucket.clone(),
                new: route.provider.clone(),
                new_bucket: route.upstream_bucket.clone(),
                key: pair.key.clone(),
                parts: options.parts.within(options.limits.max_bytes_in_flight),
            };
            let outcome = copy_walked_object(&task).await;
            (pair.key, Some(outcome))
        })
        .buffer_unordered(options.concurrency.max(1))
        // Counted as they end, not kept: a run over a billion keys holds counts, not keys
        // (only the failures, up to MAX_LISTED_KEYS of them, are named).
        .fold(MigrateReport::default(), |mut copied, (key, outcome)| {
            match outcome {
                None => {}
                Some(Ok(CopyOutcome::Copied { bytes })) => {
                    progress.done(&key, bytes);
                    copied.copied_objects += 1;
                    copied.copied_bytes += bytes;
                }
                Some(Ok(CopyOutcome::AlreadyInNew)) => copied.already_in_new += 1,
                Some(Ok(CopyOutcome::Tombstoned)) => copied.deleted_through_s3ferry += 1,
                Some(Ok(CopyOutcome::GoneFromOld | CopyOutcome::Superseded)) => {}
                Some(Err(e)) => {
                    let reason = e.to_string();
                    progress.failed(&key, &reason);
                    copied.failed_objects += 1;
                    if copied.failed.len() < MAX_LISTED_KEYS {
                        copied.failed.push((key, reason));
                    }
                }
            }
            async move { copied }
        });
    let (walked, copied) = tokio::join!(producer, consumer);
    for part in walked? {
        report.add(part);
    }
    report.add(copied);
    report.interrupted = stop.load(Ordering::Relaxed);
    Ok(report)
}

/// The most keys a report names per list (failed copies, objects missing or different): every
/// one is counted, the first this many named, so a run over a billion keys holds counts.
pub const MAX_LISTED_KEYS: usize = 10_000;

/// Counts `key` and names it while the list has room.
fn count_and_name(list: &mut Vec<String>, count: &mut u64, key: String) {
    *count += 1;
    if list.len() < MAX_LISTED_KEYS {
        list.push(key);
    }
}

/// What the walks found to copy so far, for the progress shown while they run.
#[derive(Default)]
struct FoundSoFar {
    objects: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
}

impl FoundSoFar {
    fn add(&self, bytes: u64) {
        self.objects.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn show(&self, progress: &dyn Progress) {
        progress.planned(self.objects.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed));
    }
}

/// `range` cut for `walks` walks at once at the old bucket's prefixes one level below
/// `prefix` (its first delimiter listing page: up to 1,000 of them, spread evenly over the
/// walks). A bucket without such prefixes has one walk, whatever `walks` says.
async fn fan_out(
    fallback: &FallbackRoute,
    prefix: &str,
    range: &KeyRange,
    walks: usize,
) -> Result<Vec<KeyRange>, GatewayError> {
    if walks <= 1 {
        return Ok(vec![range.clone()]);
    }
    let list = ListRequest {
        prefix: prefix.to_string(),
        delimiter: Some("/".to_string()),
        start_after: range.after.clone(),
        continuation_token: None,
        max_keys: LISTING_PAGE,
    };
    let page = list_page(&fallback.provider, &fallback.bucket, &list).await?;
    let prefixes: Vec<String> = page.common_prefixes.into_iter().filter(|p| range.contains(p)).collect();
    Ok(range.split_at(&spread(&prefixes, walks - 1)))
}

impl MigrateReport {
    /// Adds what another walk, or the copies, counted.
    fn add(&mut self, other: MigrateReport) {
        self.planned_objects += other.planned_objects;
        self.planned_bytes += other.planned_bytes;
        self.copied_objects += other.copied_objects;
        self.copied_bytes += other.copied_bytes;
        self.already_in_new += other.already_in_new;
        self.newer_in_new += other.newer_in_new;
        self.deleted_through_s3ferry += other.deleted_through_s3ferry;
        self.left_behind.extend(other.left_behind);
        self.failed_objects += other.failed_objects;
        self.failed.extend(other.failed);
    }
}

/// Counts one walked key in `report` (planned, already or newer in new, deleted, left
/// behind); returns it when it is to be copied.
fn tally(report: &mut MigrateReport, pair: KeyPair) -> Option<KeyPair> {
    if let Some(reason) = pair.left_behind {
        report.left_behind.push(LeftBehind { key: pair.key, reason });
        return None;
    }
    match (&pair.old, &pair.new, pair.tombstoned) {
        (Some(_), None, true) => report.deleted_through_s3ferry += 1,
        (Some(old), None, false) => {
            report.planned_objects += 1;
            report.planned_bytes += old.size;
            return Some(pair);
        }
        (Some(old), Some(new), _) => match compare(old, new) {
            Comparison::Different => report.newer_in_new += 1,
            Comparison::Same | Comparison::NotComparable => report.already_in_new += 1,
        },
        _ => {}
    }
    None
}

fn tokio_stream_from<T: Send + 'static>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The result of `s3ferry check` (read back by `check --merge`).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckReport {
    /// The client's bucket name and the prefix checked.
    pub bucket: String,
    pub prefix: String,
    /// The shard checked (`--shard`); absent for the whole bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardLabel>,
    pub matching: u64,
    /// Same size, ETags not comparable, and not downloaded (`--download` compares content).
    pub unverified: u64,
    /// Objects only in the old provider: all counted, the first [`MAX_LISTED_KEYS`] named.
    pub missing_in_new_objects: u64,
    pub missing_in_new: Vec<String>,
    /// Objects whose size or content differ: all counted, the first [`MAX_LISTED_KEYS`] named.
    pub differ_objects: u64,
    pub differ: Vec<String>,
    pub only_in_new: u64,
    pub deleted_through_s3ferry: u64,
    pub bytes_only_in_old: u64,
    /// Old objects that cannot reach the new provider (not in `missing_in_new`): lost when the
    /// old provider is switched off.
    pub left_behind: Vec<LeftBehind>,
}

impl CheckReport {
    /// Differences that make `check` fail.
    pub fn differences(&self) -> u64 {
        self.missing_in_new_count() + self.differ_count() + self.left_behind.len() as u64
    }

    /// Objects missing in the new provider (a report written before the count existed has
    /// only the list).
    pub fn missing_in_new_count(&self) -> u64 {
        self.missing_in_new_objects.max(self.missing_in_new.len() as u64)
    }

    /// Objects that differ (as [`Self::missing_in_new_count`]).
    pub fn differ_count(&self) -> u64 {
        self.differ_objects.max(self.differ.len() as u64)
    }
}

/// Why `check --merge` refuses its reports: a merge that says "no differences" must have
/// seen every shard of one split exactly once.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    #[error("no reports to merge")]
    Empty,
    #[error("report {0} covers a whole bucket, not a shard: merge the reports of `check --shard I/N --json`")]
    NotSharded(usize),
    #[error("the reports are of different buckets, prefixes or splits (shard count or plan)")]
    DifferentSplits,
    #[error("shard {0} is in more than one report")]
    Duplicate(u32),
    #[error("shards {0:?} have no report: a merge without them would hide their differences")]
    Missing(Vec<u32>),
}

/// The reports of every shard of one split (`check --shard I/N --json`), as one report of the
/// whole bucket.
pub fn merge_check_reports(reports: Vec<CheckReport>) -> Result<CheckReport, MergeError> {
    let first = reports.first().ok_or(MergeError::Empty)?;
    let label = |i: usize, r: &CheckReport| r.shard.clone().ok_or(MergeError::NotSharded(i + 1));
    let split = label(0, first)?;
    let mut merged = CheckReport {
        bucket: first.bucket.clone(),
        prefix: first.prefix.clone(),
        ..CheckReport::default()
    };
    let mut seen = vec![false; split.count as usize];
    for (i, report) in reports.into_iter().enumerate() {
        let shard = label(i, &report)?;
        if (shard.count, &shard.plan, &report.bucket, &report.prefix)
            != (split.count, &split.plan, &merged.bucket, &merged.prefix)
        {
            return Err(MergeError::DifferentSplits);
        }
        let slot = seen.get_mut(shard.index as usize).ok_or(MergeError::DifferentSplits)?;
        if std::mem::replace(slot, true) {
            return Err(MergeError::Duplicate(shard.index));
        }
        merged.matching += report.matching;
        merged.unverified += report.unverified;
        merged.only_in_new += report.only_in_new;
        merged.deleted_through_s3ferry += report.deleted_through_s3ferry;
        merged.bytes_only_in_old += report.bytes_only_in_old;
        merged.missing_in_new_objects += report.missing_in_new_count();
        merged.differ_objects += report.differ_count();
        merged.missing_in_new.extend(report.missing_in_new);
        merged.differ.extend(report.differ);
        merged.left_behind.extend(report.left_behind);
    }
    let missing: Vec<u32> = (0..split.count).filter(|&i| !seen[i as usize]).collect();
    if !missing.is_empty() {
        return Err(MergeError::Missing(missing));
    }
    merged.missing_in_new.sort();
    merged.missing_in_new.truncate(MAX_LISTED_KEYS);
    merged.differ.sort();
    merged.differ.truncate(MAX_LISTED_KEYS);
    merged.left_behind.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(merged)
}

/// Compares both providers. With `download`, objects whose ETags cannot be compared are read
/// from both sides and their MD5s compared.
pub async fn check(
    route: &Route,
    fallback: &FallbackRoute,
    prefix: &str,
    download: bool,
) -> Result<CheckReport, GatewayError> {
    check_shard(route, fallback, prefix, None, download).await
}

/// [`check`] of one shard's keys (`shard`), or of all (`None`).
pub async fn check_shard(
    route: &Route,
    fallback: &FallbackRoute,
    prefix: &str,
    shard: Option<ShardLabel>,
    download: bool,
) -> Result<CheckReport, GatewayError> {
    let range = ShardLabel::range_of(shard.as_ref());
    let mut report = CheckReport {
        bucket: route.client_bucket.clone(),
        prefix: prefix.to_string(),
        shard,
        ..CheckReport::default()
    };
    let mut walk = PairWalk::new(route, fallback, prefix, &range);
    while let Some(pair) = walk.next().await? {
        if let Some(reason) = pair.left_behind {
            report.left_behind.push(LeftBehind { key: pair.key, reason });
            continue;
        }
        match (&pair.old, &pair.new) {
            (Some(old), None) if pair.tombstoned => {
                let _ = old;
                report.deleted_through_s3ferry += 1;
            }
            (Some(old), None) => {
                report.bytes_only_in_old += old.size;
                count_and_name(&mut report.missing_in_new, &mut report.missing_in_new_objects, pair.key);
            }
            (None, Some(_)) => report.only_in_new += 1,
            (Some(old), Some(new)) => match compare(old, new) {
                Comparison::Same => report.matching += 1,
                Comparison::Different => count_and_name(&mut report.differ, &mut report.differ_objects, pair.key),
                Comparison::NotComparable if download => {
                    let a = content_md5(&fallback.provider, &fallback.bucket, &pair.key).await?;
                    let b = content_md5(&route.provider, &route.upstream_bucket, &pair.key).await?;
                    if a == b {
                        report.matching += 1;
                    } else {
                        count_and_name(&mut report.differ, &mut report.differ_objects, pair.key);
                    }
                }
                Comparison::NotComparable => report.unverified += 1,
            },
            (None, None) => {}
        }
    }
    Ok(report)
}

/// MD5 of an object's content, streamed.
async fn content_md5(provider: &Upstream, bucket: &str, key: &str) -> Result<String, GatewayError> {
    use http_body_util::BodyExt as _;
    let response = provider.get_object(bucket, key, http::HeaderMap::new()).await?;
    if !response.status().is_success() {
        return Err(GatewayError::UpstreamProtocol {
            provider: provider.settings.name.clone(),
            cause: format!("GET {bucket}/{key} answered {}", response.status()),
        });
    }
    let mut body = response.into_body();
    let mut hasher = md5::Md5::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| GatewayError::UpstreamProtocol {
            provider: provider.settings.name.clone(),
            cause: e.to_string(),
        })?;
        if let Ok(data) = frame.into_data() {
            hasher.update(&data);
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(size: u64, etag: &str) -> ListedObject {
        ListedObject {
            size,
            etag: etag.into(),
            ..Default::default()
        }
    }

    fn shard_report(index: u32, count: u32, missing: &[&str], matching: u64) -> CheckReport {
        CheckReport {
            bucket: "media".into(),
            shard: Some(ShardLabel {
                index,
                count,
                plan: "p1".into(),
                range: KeyRange::all(),
            }),
            matching,
            missing_in_new: missing.iter().map(|k| (*k).to_string()).collect(),
            ..CheckReport::default()
        }
    }

    #[test]
    fn merged_shard_reports_add_up_and_need_every_shard_once() {
        let merged = merge_check_reports(vec![
            shard_report(1, 3, &["m"], 4),
            shard_report(0, 3, &["b", "a"], 1),
            shard_report(2, 3, &[], 2),
        ])
        .expect("merges");
        assert_eq!(merged.matching, 7);
        assert_eq!(merged.missing_in_new, vec!["a", "b", "m"]);
        assert_eq!((merged.shard, merged.bucket.as_str()), (None, "media"));

        let two_of_three = vec![shard_report(0, 3, &[], 1), shard_report(2, 3, &[], 1)];
        assert_eq!(
            merge_check_reports(two_of_three).err(),
            Some(MergeError::Missing(vec![1]))
        );
        let twice = vec![shard_report(0, 2, &[], 1), shard_report(0, 2, &[], 1)];
        assert_eq!(merge_check_reports(twice).err(), Some(MergeError::Duplicate(0)));
        let mixed = vec![shard_report(0, 2, &[], 1), shard_report(1, 3, &[], 1)];
        assert_eq!(merge_check_reports(mixed).err(), Some(MergeError::DifferentSplits));
        let whole = vec![CheckReport::default()];
        assert_eq!(merge_check_reports(whole).err(), Some(MergeError::NotSharded(1)));
        assert_eq!(merge_check_reports(Vec::new()).err(), Some(MergeError::Empty));
    }

    #[test]
    fn reports_count_every_key_and_name_the_first_ones() {
        let mut report = CheckReport::default();
        for i in 0..MAX_LISTED_KEYS + 5 {
            count_and_name(
                &mut report.missing_in_new,
                &mut report.missing_in_new_objects,
                format!("k{i:06}"),
            );
        }
        assert_eq!(report.missing_in_new.len(), MAX_LISTED_KEYS);
        assert_eq!(report.differences(), (MAX_LISTED_KEYS + 5) as u64);

        // Counts add up across shards; a report without counts (an older s3ferry's) counts
        // its list.
        let mut first = shard_report(0, 2, &["a"], 0);
        first.missing_in_new_objects = MAX_LISTED_KEYS as u64 + 7;
        let older = shard_report(1, 2, &["b", "c"], 0);
        let merged = merge_check_reports(vec![first, older]).expect("merges");
        assert_eq!(merged.missing_in_new_count(), MAX_LISTED_KEYS as u64 + 9);
        assert_eq!(merged.missing_in_new, vec!["a", "b", "c"]);
    }

    #[test]
    fn comparisons_use_size_then_plain_md5_etags() {
        let md5a = "\"9b2cf535f27731c974343645a3985328\"";
        let md5b = "\"0b2cf535f27731c974343645a3985328\"";
        assert_eq!(compare(&obj(3, md5a), &obj(3, md5a)), Comparison::Same);
        assert_eq!(compare(&obj(3, md5a), &obj(3, &md5a.to_uppercase())), Comparison::Same);
        assert_eq!(compare(&obj(3, md5a), &obj(3, md5b)), Comparison::Different);
        assert_eq!(compare(&obj(3, md5a), &obj(4, md5a)), Comparison::Different);
        assert_eq!(compare(&obj(3, "\"abc-2\""), &obj(3, md5a)), Comparison::NotComparable);
    }
}
