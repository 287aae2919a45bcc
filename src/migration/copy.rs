//! Copying one object from the old provider into the new one, and the bounded background queue
//! that does it after a read fell back (copy on read).
//!
//! A copy only ever creates an object that did not exist and was not deleted since it started:
//! - it is skipped when the key exists in the new provider or was deleted through s3ferry (a
//!   copy on read asks both just before it copies; `s3ferry migrate` relies on its walk's
//!   listings and tombstones instead where the conditional write below covers the same ground,
//!   see [`PreWriteChecks`]);
//! - inside this process, a client's write or delete of the key claims it first
//!   ([`super::claim`]): a copy not yet at its commit point (the last byte of its body) is
//!   stopped, a committed one is awaited, and the client's request lands after it;
//! - against other processes (replicas, `s3ferry migrate`), it is written with the new
//!   provider's atomic create-if-absent (`If-None-Match: *` or its dialect's form) where the
//!   provider has one, and a delete that landed meanwhile (a tombstone found after the write)
//!   removes the copy again, but only while the object there is still the one the copy wrote.
//!
//! A copy is
//! verified before it counts: when the source ETag is a plain MD5 it must equal the MD5 the new
//! provider computed over what it received (both compared in the client's form).
//!
//! Where one provider holds both buckets, it copies the object itself
//! ([`super::provider_copy`]); an object larger than `[migration] multipart_copy_threshold` is
//! copied in parts ([`super::multipart_copy`]); both with the same guarantees.
//!
//! The copy is written in the new provider's dialect: the old provider's storage class name
//! goes through both profiles (old name -> AWS name -> new name), the conditional write takes
//! the new provider's form, and headers its profile drops or rejects are not sent.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::sync::{Semaphore, mpsc};

use super::claim::{CommitGatedBody, CommitPoint, KeyClaim, KeyClaims};
use super::copy_task::{CopyOutcome, CopyTask, PartSizes, is_plain_md5_etag, keep_unless_deleted_meanwhile, same_etag};
use super::multipart_copy::{SourceObject, copy_in_parts};
use super::provider_copy::{copy_by_provider, provider_can_copy};
use super::tombstone;
use super::{CopyResult, MigrationStats};
use crate::body::IdleTimeoutBody;
use crate::checksum::take_stored_checksums;
use crate::config::MigrationConfig;
use crate::dialect::translate::{translate_request, translate_response_headers};
use crate::dialect::{ConditionalWrites, DialectProfile};
use crate::error::GatewayError;
use crate::s3::operation::Operation;
use crate::upstream::Upstream;

/// Headers of the source object that travel with a copy.
const PRESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "content-disposition",
    "content-language",
    "cache-control",
    "expires",
    "x-amz-storage-class",
    "x-amz-website-redirect-location",
];

/// The headers a copy of an object with `source` headers is written with.
pub fn preserved_headers(source: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in source {
        let n = name.as_str();
        if PRESERVED_HEADERS.contains(&n) || n.starts_with("x-amz-meta-") {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Translates a copy's object headers (in the client's form: AWS storage class names) into the
/// dialect of the destination provider (`profile`, named `provider` in errors), as a client's PutObject would be: storage class (and the
/// provider's native class header), conditional write, headers the provider drops, checksum
/// headers it does not take. Unlike on a client's request, s3ferry's stored checksum metadata
/// (`x-amz-meta-s3ferry-checksum-*`, see [`crate::checksum`]) travels: a copy holds the same
/// bytes, and the destination may not store a checksum of its own either.
pub fn translate_copy_headers(
    profile: &DialectProfile,
    provider: &str,
    headers: &mut HeaderMap,
) -> Result<(), GatewayError> {
    let stored = take_stored_checksums(headers);
    // No x-amz-checksum-* is ever among a copy's headers, so nothing is withheld to verify.
    translate_request(profile, provider, Operation::PutObject, headers, &mut Vec::new())?;
    headers.extend(stored);
    Ok(())
}

/// What a copy asks the new provider before it writes. Whatever is chosen, the write is the
/// new provider's create-if-absent where it has one (a key written meanwhile refuses it), and
/// the key's tombstone is looked for after the write (a delete meanwhile removes the copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreWriteChecks {
    /// The key's tombstone and the key itself, just before the copy (a copy on read: nothing
    /// else looked at the key since the read fell back), and the source's tags always.
    Full,
    /// Only what the walk of `s3ferry migrate` does not already stand for. The walk listed the
    /// key in neither the new provider nor its tombstones moments ago; since then, a write
    /// makes the conditional PUT fail and a delete is found by the tombstone check after the
    /// write, so asking again before the write adds a request per object and no safety. The
    /// HEAD in the new provider stays where the new provider has no conditional write, and
    /// before a copy in parts (a HEAD costs less than an upload refused at its last request).
    /// The source's tags are asked for only where they may exist ([`source_may_have_tags`]).
    AfterWalk,
}

/// Whether an object the old provider answered a GET for with `headers` may have tags, so
/// that its `?tagging` is worth a request. No, where the old provider's profile refuses the
/// tagging operations (it keeps none), or where it sends `x-amz-tagging-count` with every GET
/// of a tagged object (`tag_count_in_reads`: AWS documents the header as "the number of tags,
/// if any, on the object, when you have the relevant permission to read object tags"; without
/// that permission the `?tagging` GET is refused too, so no tags would travel either way) and
/// this answer has none, or zero. Yes otherwise.
pub fn source_may_have_tags(old: &DialectProfile, headers: &HeaderMap) -> bool {
    if old.unsupported_operations.contains(&Operation::GetObjectTagging) {
        return false;
    }
    if !old.tag_count_in_reads {
        return true;
    }
    match headers.get("x-amz-tagging-count") {
        None => false,
        // A count that does not read as a number is asked about, not taken for none.
        Some(count) => count.to_str().ok().and_then(|c| c.trim().parse::<u64>().ok()) != Some(0),
    }
}

/// Copies one object with no client of this process to yield to, checking the key just before
/// (see [`PreWriteChecks::Full`]); see the module documentation for the guarantees.
pub async fn copy_object(task: &CopyTask) -> Result<CopyOutcome, GatewayError> {
    copy_object_until(task, PreWriteChecks::Full, &Arc::new(CommitPoint::default())).await
}

/// Copies one object that the walk of `s3ferry migrate` found only in the old provider and not
/// tombstoned (see [`PreWriteChecks::AfterWalk`]), with the same guarantees.
pub async fn copy_walked_object(task: &CopyTask) -> Result<CopyOutcome, GatewayError> {
    copy_object_until(task, PreWriteChecks::AfterWalk, &Arc::new(CommitPoint::default())).await
}

/// Copies one object; its write takes effect only if `commit` is not stopped first.
pub async fn copy_object_until(
    task: &CopyTask,
    checks: PreWriteChecks,
    commit: &Arc<CommitPoint>,
) -> Result<CopyOutcome, GatewayError> {
    let CopyTask {
        old,
        old_bucket,
        new,
        new_bucket,
        key,
        ..
    } = task;
    // A key listed at the old provider reaches the new one only if both store it as it is.
    crate::upstream::refuse_dot_segments(key, &[&old.settings, &new.settings])?;
    let conditional = new.settings.profile.conditional_writes != ConditionalWrites::Unsupported;
    let full = checks == PreWriteChecks::Full;
    if full && tombstone::is_tombstoned(new, new_bucket, key).await? {
        return Ok(CopyOutcome::Tombstoned);
    }
    if (full || !conditional) && new.head_object(new_bucket, key).await?.is_some() {
        return Ok(CopyOutcome::AlreadyInNew);
    }
    if provider_can_copy(task)
        && let Some(outcome) = copy_by_provider(task, full || !conditional, commit).await?
    {
        return Ok(outcome);
    }
    let source = old.get_object(old_bucket, key, HeaderMap::new()).await?;
    match source.status() {
        StatusCode::NOT_FOUND => return Ok(CopyOutcome::GoneFromOld),
        s if !s.is_success() => {
            return Err(GatewayError::UpstreamProtocol {
                provider: old.settings.name.clone(),
                cause: format!("GET of the copy source in '{old_bucket}' answered {s}"),
            });
        }
        _ => {}
    }
    let (parts, body) = source.into_parts();
    let length = crate::s3::headers::content_length(&parts.headers).ok_or_else(|| GatewayError::UpstreamProtocol {
        provider: old.settings.name.clone(),
        cause: format!("GET of the copy source in '{old_bucket}' has no Content-Length"),
    })?;
    let etag_of = |upstream: &Upstream, headers: &HeaderMap| {
        let etag = headers
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        upstream.settings.profile.client_etag(etag)
    };
    let source_etag = etag_of(old, &parts.headers);
    // Old provider's names -> the client's (e.g. OSS `IA` -> `STANDARD_IA`) -> the new one's.
    let mut headers = preserved_headers(&parts.headers);
    translate_response_headers(&old.settings.profile, &mut headers);
    let ask_tags = full || source_may_have_tags(&old.settings.profile, &parts.headers);
    if ask_tags
        && let Some(tagging) = read_tagging(old, old_bucket, key).await
        && let Ok(v) = HeaderValue::from_str(&tagging)
    {
        headers.insert(HeaderName::from_static("x-amz-tagging"), v);
    }
    if length > task.parts.threshold {
        // Too large for one PUT. This GET's body is not read: each part is read by range.
        drop(body);
        if !full && conditional && new.head_object(new_bucket, key).await?.is_some() {
            return Ok(CopyOutcome::AlreadyInNew);
        }
        translate_copy_headers(&new.settings.profile, &new.settings.name, &mut headers)?;
        let source = SourceObject {
            size: length,
            etag: source_etag,
            headers,
        };
        return copy_in_parts(task, source, commit).await;
    }
    // Where the new provider has no conditional write at all, the HEAD above (asked whatever
    // the checks) and, against this process's clients, the claims are the guards.
    if new.settings.profile.conditional_writes != ConditionalWrites::Unsupported {
        headers.insert(http::header::IF_NONE_MATCH, HeaderValue::from_static("*"));
    }
    translate_copy_headers(&new.settings.profile, &new.settings.name, &mut headers)?;
    // An empty body has no last byte to hold back: its write commits when it is sent.
    if length == 0 && !commit.try_commit() {
        return Ok(CopyOutcome::Superseded);
    }
    let body = http_body_util::BodyExt::boxed(IdleTimeoutBody::new(body, old.settings.read_timeout));
    let body = http_body_util::BodyExt::boxed(CommitGatedBody::new(body, length, commit.clone()));
    let written = match new.put_object(new_bucket, key, headers, body, length).await {
        Err(_) if commit.is_stopped() => return Ok(CopyOutcome::Superseded),
        other => other?,
    };
    match written.status() {
        StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => return Ok(CopyOutcome::AlreadyInNew),
        s if !s.is_success() => {
            return Err(GatewayError::UpstreamProtocol {
                provider: new.settings.name.clone(),
                cause: format!("PUT of the copy into '{new_bucket}' answered {s}"),
            });
        }
        _ => {}
    }
    let new_etag = etag_of(new, written.headers());
    if is_plain_md5_etag(&source_etag) && !same_etag(&new_etag, &source_etag) {
        // What arrived is not what the old provider holds: remove the bad copy.
        new.delete_object(new_bucket, key).await?;
        return Err(GatewayError::UpstreamProtocol {
            provider: new.settings.name.clone(),
            cause: format!("the copy into '{new_bucket}' has ETag {new_etag}, the source {source_etag}; copy removed"),
        });
    }
    keep_unless_deleted_meanwhile(task, &new_etag, length).await
}

/// The source's tags as an `x-amz-tagging` value, when the old key may read them.
pub(crate) async fn read_tagging(old: &Upstream, bucket: &str, key: &str) -> Option<String> {
    let response = old.get_subresource(bucket, key, "tagging").await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let tags = crate::rewrite::tagging::parse_tag_set(response.body()).ok()?;
    crate::rewrite::tagging::tagging_header_value(&tags)
}

/// The copy-on-read queue: bounded, a fixed number of workers, one copy per key at a time,
/// failures retried later with growing delays and counted; never visible to the reading client.
/// Its log lines name the client's bucket and the provider, never the key: keys are client data
/// and stay out of every log line but none (the access log has no key either).
pub struct Copier {
    queue: mpsc::Sender<QueuedCopy>,
    in_flight: Arc<DashMap<(String, String), ()>>,
    /// Client writes and deletes against running copies (see [`super::claim`]).
    claims: Arc<KeyClaims>,
    stats: Arc<MigrationStats>,
    max_bytes: u64,
    parts: PartSizes,
}

struct QueuedCopy {
    task: CopyTask,
    attempt: u32,
}

impl Copier {
    /// Starts the workers (they stop when the last `Copier` handle is dropped). `claims` is
    /// shared with the queue this one replaces on a reload, whose copies may still run.
    pub fn start(config: &MigrationConfig, stats: Arc<MigrationStats>, claims: Arc<KeyClaims>) -> Arc<Self> {
        let (tx, mut rx) = mpsc::channel::<QueuedCopy>(config.copy_queue);
        let in_flight: Arc<DashMap<(String, String), ()>> = Arc::default();
        let copier = Arc::new(Self {
            queue: tx.clone(),
            in_flight: in_flight.clone(),
            claims: claims.clone(),
            stats: stats.clone(),
            max_bytes: config.copy_on_read_max_bytes,
            parts: PartSizes::from(config),
        });
        let workers = Arc::new(Semaphore::new(config.copy_workers));
        let retries = config.copy_retries;
        let retry_queue = tx.downgrade();
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let Ok(permit) = workers.clone().acquire_owned().await else {
                    break;
                };
                let in_flight = in_flight.clone();
                let claims = claims.clone();
                let stats = stats.clone();
                let retry_queue = retry_queue.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    run_job(job, retries, in_flight, &claims, stats, retry_queue).await;
                });
            }
        });
        copier
    }

    /// Schedules a copy of `task.key` unless one is queued or running, or the object is larger
    /// than the inline limit. Returns whether a copy was scheduled.
    pub fn schedule(&self, task: CopyTask, size: Option<u64>) -> bool {
        if size.is_some_and(|s| s > self.max_bytes) {
            self.stats.copy(&task.client_bucket, CopyResult::Skipped, 0);
            tracing::info!(bucket = %task.client_bucket, ?size, "object larger than copy_on_read_max_bytes: left for `s3ferry migrate`");
            return false;
        }
        let id = (task.new_bucket.clone(), task.key.clone());
        let bucket = task.client_bucket.clone();
        if self.in_flight.insert(id.clone(), ()).is_some() {
            return false;
        }
        if self.queue.try_send(QueuedCopy { task, attempt: 0 }).is_err() {
            self.in_flight.remove(&id);
            self.stats.copy(&bucket, CopyResult::Skipped, 0);
            tracing::warn!(%bucket, "copy-on-read queue full: copy skipped (a later read or `s3ferry migrate` will copy it)");
            return false;
        }
        true
    }

    /// Claims `key` of the new provider's `bucket` for a client's write or delete; see
    /// [`KeyClaims::claim`]. Hold it until the provider has answered the client's request.
    pub async fn claim(&self, bucket: &str, key: &str) -> KeyClaim {
        self.claims.claim(bucket, key).await
    }

    /// [`Copier::claim`] for every key of a DeleteObjects.
    pub async fn claim_all(&self, bucket: &str, keys: &[String]) -> Vec<KeyClaim> {
        self.claims.claim_all(bucket, keys).await
    }

    /// The claims and leases of this queue's keys.
    pub fn claims(&self) -> Arc<KeyClaims> {
        self.claims.clone()
    }

    /// When copies go in parts, and how large the parts are.
    pub fn part_sizes(&self) -> PartSizes {
        self.parts
    }
}

/// Runs one copy under a lease on its key: not at all while a client claims the key, and
/// stopped when a client claims it before the copy's write committed.
async fn copy_under_lease(task: &CopyTask, claims: &Arc<KeyClaims>) -> Result<CopyOutcome, GatewayError> {
    let Some(lease) = claims.start_copy(&task.new_bucket, &task.key) else {
        return Ok(CopyOutcome::Superseded);
    };
    let commit = lease.commit_point().clone();
    tokio::select! {
        outcome = copy_object_until(task, PreWriteChecks::Full, &commit) => outcome,
        // Dropping the copy ends its requests; a body already handed to a connection fails at
        // its next poll (`CommitGatedBody`), so the provider never has all of it.
        () = commit.stopped() => Ok(CopyOutcome::Superseded),
    }
}

async fn run_job(
    job: QueuedCopy,
    retries: u32,
    in_flight: Arc<DashMap<(String, String), ()>>,
    claims: &Arc<KeyClaims>,
    stats: Arc<MigrationStats>,
    retry_queue: mpsc::WeakSender<QueuedCopy>,
) {
    let id = (job.task.new_bucket.clone(), job.task.key.clone());
    match copy_under_lease(&job.task, claims).await {
        Ok(CopyOutcome::Copied { bytes }) => {
            stats.copy(&job.task.client_bucket, CopyResult::Done, bytes);
            tracing::info!(bucket = %job.task.client_bucket, bytes, provider = %job.task.new.settings.name, "copied on read");
            in_flight.remove(&id);
        }
        Ok(CopyOutcome::AlreadyInNew) => {
            // Another replica (or `migrate`, or a client) got there first: harmless, counted.
            stats.copy_already_in_new(&job.task.client_bucket);
            tracing::debug!(bucket = %job.task.client_bucket, "copy on read found the key already in the new provider");
            in_flight.remove(&id);
        }
        Ok(outcome) => {
            stats.copy(&job.task.client_bucket, CopyResult::Skipped, 0);
            tracing::debug!(bucket = %job.task.client_bucket, ?outcome, "copy on read not needed");
            in_flight.remove(&id);
        }
        Err(e) if job.attempt < retries => {
            tracing::warn!(bucket = %job.task.client_bucket, provider = %job.task.new.settings.name, attempt = job.attempt + 1, error = %e, "copy on read failed; will retry");
            // The key stays in flight until the retry runs, so no duplicate copy starts meanwhile.
            let bucket = job.task.client_bucket.clone();
            let last_error = e.to_string();
            let delay = Duration::from_secs(2u64.saturating_pow(job.attempt + 1));
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let retry = QueuedCopy {
                    task: job.task,
                    attempt: job.attempt + 1,
                };
                let key = retry.task.key.clone();
                let requeued = retry_queue.upgrade().is_some_and(|queue| queue.try_send(retry).is_ok());
                if !requeued {
                    let reason = format!("retry dropped (queue full or gateway stopping) after: {last_error}");
                    stats.copy_failed(&bucket, &key, &reason);
                    tracing::warn!(%bucket, "copy retry dropped (queue full or gateway stopping)");
                    in_flight.remove(&id);
                }
            });
        }
        Err(e) => {
            stats.copy_failed(&job.task.client_bucket, &job.task.key, &e.to_string());
            tracing::warn!(bucket = %job.task.client_bucket, provider = %job.task.new.settings.name, error = %e, "copy on read failed for good; `s3ferry migrate` will copy it");
            in_flight.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_asked_for_only_where_the_source_may_have_some() {
        let aws = crate::dialect::builtin("aws").expect("aws");
        let minio = crate::dialect::builtin("minio").expect("minio");
        let garage = crate::dialect::builtin("garage").expect("garage");
        let none = HeaderMap::new();
        let count = |n: &'static str| header_map(&[("x-amz-tagging-count", n)]);
        // (profile, GET answer's headers, worth a `?tagging` request)
        let table: &[(&DialectProfile, HeaderMap, bool)] = &[
            (&aws, none.clone(), false),
            (&aws, count("2"), true),
            (&aws, count("0"), false),
            (&aws, count("many"), true),
            // Not known to send the count: its absence proves nothing.
            (&minio, none.clone(), true),
            (&minio, count("0"), true),
            // Tagging operations refused: the provider keeps no tags.
            (&garage, none.clone(), false),
            (&garage, count("3"), false),
        ];
        for (i, (profile, headers, expected)) in table.iter().enumerate() {
            assert_eq!(source_may_have_tags(profile, headers), *expected, "row {i}");
        }
    }

    #[test]
    fn plain_md5_etags_are_recognised() {
        assert!(is_plain_md5_etag("\"9b2cf535f27731c974343645a3985328\""));
        assert!(is_plain_md5_etag("9B2CF535F27731C974343645A3985328"));
        assert!(!is_plain_md5_etag("\"3858f62230ac3c915f300c664312c11f-3\""));
        assert!(!is_plain_md5_etag(""));
    }

    fn header_map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_copy_from_oss_to_aws_names_the_storage_class_for_aws() {
        let mut h = header_map(&[("x-amz-storage-class", "IA"), ("content-type", "text/plain")]);
        translate_response_headers(&crate::dialect::builtin("oss").expect("oss"), &mut h);
        translate_copy_headers(&crate::dialect::builtin("aws").expect("aws"), "new", &mut h).expect("translates");
        assert_eq!(
            h.get("x-amz-storage-class").map(HeaderValue::as_bytes),
            Some(&b"STANDARD_IA"[..])
        );
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn a_copy_into_oss_takes_its_dialect_and_keeps_the_stored_checksum() {
        let mut h = header_map(&[
            ("x-amz-storage-class", "GLACIER"),
            ("if-none-match", "*"),
            ("x-amz-meta-s3ferry-checksum-crc32", "i9aeUg=="),
            ("x-amz-meta-owner", "me"),
        ]);
        translate_copy_headers(&crate::dialect::builtin("oss").expect("oss"), "new", &mut h).expect("translates");
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(get("x-amz-storage-class"), Some("Archive"));
        assert_eq!(get("x-oss-storage-class"), Some("Archive"));
        assert_eq!(get("x-oss-forbid-overwrite"), Some("true"));
        assert_eq!(get("if-none-match"), None);
        assert_eq!(
            get("x-amz-meta-s3ferry-checksum-crc32"),
            Some("i9aeUg=="),
            "same bytes, same checksum"
        );
        assert_eq!(get("x-amz-meta-owner"), Some("me"));
    }

    #[test]
    fn copies_keep_content_headers_and_user_metadata_only() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("content-type", "image/png"),
            ("cache-control", "max-age=60"),
            ("x-amz-meta-owner", "me"),
            ("etag", "\"x\""),
            ("content-length", "3"),
            ("x-amz-request-id", "r"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let kept = preserved_headers(&h);
        let mut names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["cache-control", "content-type", "x-amz-meta-owner"]);
    }
}
