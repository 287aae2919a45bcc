//! Copying one object from the old provider into the new one, and the bounded background queue
//! that does it after a read fell back (copy on read).
//!
//! A copy never overwrites newer data: it is skipped when the key exists in the new provider or
//! was deleted through s3ferry, it is written with `If-None-Match: *` so a client write that
//! lands meanwhile wins, and a delete that lands meanwhile removes the copy again. A copy is
//! verified before it counts: when the source ETag is a plain MD5 it must equal the MD5 the new
//! provider computed over what it received.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tokio::sync::{Semaphore, mpsc};

use super::tombstone;
use super::{CopyResult, MigrationStats};
use crate::body::IdleTimeoutBody;
use crate::config::MigrationConfig;
use crate::error::GatewayError;
use crate::upstream::Upstream;

/// Where one object comes from and goes to.
#[derive(Debug, Clone)]
pub struct CopyTask {
    /// The bucket's name for clients (labels the counters).
    pub client_bucket: String,
    pub old: Arc<Upstream>,
    pub old_bucket: String,
    pub new: Arc<Upstream>,
    pub new_bucket: String,
    pub key: String,
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyOutcome {
    Copied {
        bytes: u64,
    },
    /// The new provider already has the key (copied before, or written by a client).
    AlreadyInNew,
    /// The key was deleted through s3ferry.
    Tombstoned,
    /// The old provider no longer has the key.
    GoneFromOld,
}

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

/// True for an ETag that is the MD5 of the content (not multipart, not encrypted with KMS).
pub fn is_plain_md5_etag(etag: &str) -> bool {
    let e = etag.trim_matches('"');
    e.len() == 32 && e.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Copies one object; see the module documentation for the guarantees.
pub async fn copy_object(task: &CopyTask) -> Result<CopyOutcome, GatewayError> {
    let CopyTask {
        old,
        old_bucket,
        new,
        new_bucket,
        key,
        ..
    } = task;
    if tombstone::is_tombstoned(new, new_bucket, key).await? {
        return Ok(CopyOutcome::Tombstoned);
    }
    if new.head_object(new_bucket, key).await?.is_some() {
        return Ok(CopyOutcome::AlreadyInNew);
    }
    let source = old.get_object(old_bucket, key, HeaderMap::new()).await?;
    match source.status() {
        StatusCode::NOT_FOUND => return Ok(CopyOutcome::GoneFromOld),
        s if !s.is_success() => {
            return Err(GatewayError::UpstreamProtocol {
                provider: old.settings.name.clone(),
                cause: format!("GET {old_bucket}/{key} for a copy answered {s}"),
            });
        }
        _ => {}
    }
    let (parts, body) = source.into_parts();
    let length =
        crate::upstream::requests::content_length(&parts.headers).ok_or_else(|| GatewayError::UpstreamProtocol {
            provider: old.settings.name.clone(),
            cause: format!("GET {old_bucket}/{key} has no Content-Length"),
        })?;
    let source_etag = parts
        .headers
        .get(http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut headers = preserved_headers(&parts.headers);
    if let Some(tagging) = read_tagging(old, old_bucket, key).await
        && let Ok(v) = HeaderValue::from_str(&tagging)
    {
        headers.insert(HeaderName::from_static("x-amz-tagging"), v);
    }
    headers.insert(http::header::IF_NONE_MATCH, HeaderValue::from_static("*"));
    let body = http_body_util::BodyExt::boxed(IdleTimeoutBody::new(body, old.settings.read_timeout));
    let written = new.put_object(new_bucket, key, headers, body, length).await?;
    match written.status() {
        StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => return Ok(CopyOutcome::AlreadyInNew),
        s if !s.is_success() => {
            return Err(GatewayError::UpstreamProtocol {
                provider: new.settings.name.clone(),
                cause: format!("PUT {new_bucket}/{key} for a copy answered {s}"),
            });
        }
        _ => {}
    }
    let new_etag = written
        .headers()
        .get(http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if is_plain_md5_etag(&source_etag)
        && !new_etag
            .trim_matches('"')
            .eq_ignore_ascii_case(source_etag.trim_matches('"'))
    {
        // What arrived is not what the old provider holds: remove the bad copy.
        new.delete_object(new_bucket, key).await?;
        return Err(GatewayError::UpstreamProtocol {
            provider: new.settings.name.clone(),
            cause: format!("copy of '{key}' has ETag {new_etag}, the source {source_etag}; copy removed"),
        });
    }
    // A DELETE that raced with the copy wins.
    if tombstone::is_tombstoned(new, new_bucket, key).await? {
        new.delete_object(new_bucket, key).await?;
        return Ok(CopyOutcome::Tombstoned);
    }
    Ok(CopyOutcome::Copied { bytes: length })
}

/// The source's tags as an `x-amz-tagging` value, when the old key may read them.
pub(crate) async fn read_tagging(old: &Upstream, bucket: &str, key: &str) -> Option<String> {
    let response = old.get_subresource(bucket, key, "tagging").await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let tags = crate::rewrite::tagging::parse_tag_set(response.body()).ok()?;
    if tags.is_empty() {
        return None;
    }
    let enc = |s: &str| crate::upstream::url::uri_encode(s.as_bytes(), false);
    Some(
        tags.iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

/// The copy-on-read queue: bounded, a fixed number of workers, one copy per key at a time,
/// failures retried later with growing delays and counted; never visible to the reading client.
pub struct Copier {
    queue: mpsc::Sender<QueuedCopy>,
    in_flight: Arc<DashMap<(String, String), ()>>,
    stats: Arc<MigrationStats>,
    max_bytes: u64,
}

struct QueuedCopy {
    task: CopyTask,
    attempt: u32,
}

impl Copier {
    /// Starts the workers (they stop when the last `Copier` handle is dropped).
    pub fn start(config: &MigrationConfig, stats: Arc<MigrationStats>) -> Arc<Self> {
        let (tx, mut rx) = mpsc::channel::<QueuedCopy>(config.copy_queue);
        let in_flight: Arc<DashMap<(String, String), ()>> = Arc::default();
        let copier = Arc::new(Self {
            queue: tx.clone(),
            in_flight: in_flight.clone(),
            stats: stats.clone(),
            max_bytes: config.copy_on_read_max_bytes,
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
                let stats = stats.clone();
                let retry_queue = retry_queue.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    run_job(job, retries, in_flight, stats, retry_queue).await;
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
            tracing::info!(key = %task.key, ?size, "object larger than copy_on_read_max_bytes: left for `s3ferry migrate`");
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
            tracing::warn!("copy-on-read queue full: copy skipped (a later read or `s3ferry migrate` will copy it)");
            return false;
        }
        true
    }
}

async fn run_job(
    job: QueuedCopy,
    retries: u32,
    in_flight: Arc<DashMap<(String, String), ()>>,
    stats: Arc<MigrationStats>,
    retry_queue: mpsc::WeakSender<QueuedCopy>,
) {
    let id = (job.task.new_bucket.clone(), job.task.key.clone());
    match copy_object(&job.task).await {
        Ok(CopyOutcome::Copied { bytes }) => {
            stats.copy(&job.task.client_bucket, CopyResult::Done, bytes);
            tracing::info!(key = %job.task.key, bytes, provider = %job.task.new.settings.name, "copied on read");
            in_flight.remove(&id);
        }
        Ok(outcome) => {
            stats.copy(&job.task.client_bucket, CopyResult::Skipped, 0);
            tracing::debug!(key = %job.task.key, ?outcome, "copy on read not needed");
            in_flight.remove(&id);
        }
        Err(e) if job.attempt < retries => {
            tracing::warn!(key = %job.task.key, attempt = job.attempt + 1, error = %e, "copy on read failed; will retry");
            // The key stays in flight until the retry runs, so no duplicate copy starts meanwhile.
            let bucket = job.task.client_bucket.clone();
            let delay = Duration::from_secs(2u64.saturating_pow(job.attempt + 1));
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let retry = QueuedCopy {
                    task: job.task,
                    attempt: job.attempt + 1,
                };
                let requeued = retry_queue.upgrade().is_some_and(|queue| queue.try_send(retry).is_ok());
                if !requeued {
                    stats.copy(&bucket, CopyResult::Failed, 0);
                    tracing::warn!("copy retry dropped (queue full or gateway stopping)");
                    in_flight.remove(&id);
                }
            });
        }
        Err(e) => {
            stats.copy(&job.task.client_bucket, CopyResult::Failed, 0);
            tracing::warn!(key = %job.task.key, error = %e, "copy on read failed for good; `s3ferry migrate` will copy it");
            in_flight.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_md5_etags_are_recognised() {
        assert!(is_plain_md5_etag("\"9b2cf535f27731c974343645a3985328\""));
        assert!(is_plain_md5_etag("9B2CF535F27731C974343645A3985328"));
        assert!(!is_plain_md5_etag("\"3858f62230ac3c915f300c664312c11f-3\""));
        assert!(!is_plain_md5_etag(""));
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
