//! Copies of objects above `[migration] multipart_copy_threshold` (5 GiB by default, the most
//! one PUT may carry) as a multipart upload: UploadPartCopy where both sides are one provider
//! that has it, else a ranged GET of each part streamed into UploadPart with its
//! Content-Length. Up to `PartSizes::parallel` parts go at once (one after another where the
//! bytes that pass through are hashed for a plain-MD5 source); no part is ever held in memory.
//!
//! The source's part layout is kept where the old provider tells it (a multipart ETag
//! `"<hex>-N"` and HEAD `?partNumber=1..N` giving each part's size), so the copy's ETag can be
//! compared with the source's. Otherwise parts are `multipart_copy_part_size` (grown so that at
//! most 10,000 are needed) and the copy is verified by content: its size, and where the
//! source's ETag is a plain MD5, the MD5 of the bytes that went through.
//!
//! The same guarantees as a single PUT hold (see [`super::claim`] and the copy on read): a
//! client claim stops the copy before its CompleteMultipartUpload (the commit point), which is
//! sent with the new provider's create-if-absent where it has one. Any failure, and a copy
//! that is stopped or dropped, aborts the upload, so no parts are left behind.

use std::sync::{Arc, Mutex};

use futures_util::{StreamExt as _, TryStreamExt as _};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use md5::Digest as _;

use super::claim::{CommitGatedBody, CommitPoint};
use super::copy_task::{CopyOutcome, CopyTask, copy_source, is_plain_md5_etag, same_etag};
use super::provider_copy::same_account;
use crate::body::{BoxError, IdleTimeoutBody};
use crate::config::MAX_PART_SIZE;
use crate::dialect::ConditionalWrites;
use crate::dialect::translate::translate_request;
use crate::error::GatewayError;
use crate::rewrite::multipart_upload::{parse_result_etag, parse_upload_id, render_complete_multipart_upload};
use crate::s3::operation::Operation;
use crate::small_body::MAX_SMALL_ANSWER;
use crate::upstream::Upstream;
use crate::upstream::exchange::Exchange;

/// S3's most parts in one upload.
const MAX_PARTS: u64 = 10_000;

/// The sizes of the parts of an object of `size` bytes cut into `part_size` pieces, the piece
/// grown where more than 10,000 would be needed.
pub fn fixed_layout(size: u64, part_size: u64) -> Vec<u64> {
    let part = part_size.max(size.div_ceil(MAX_PARTS)).clamp(1, MAX_PART_SIZE);
    let mut sizes = Vec::new();
    let mut left = size;
    while left > 0 {
        let next = left.min(part);
        sizes.push(next);
        left -= next;
    }
    sizes
}

/// The number of parts a multipart ETag (`"<32 hex>-N"`, client form) names.
pub fn multipart_etag_parts(etag: &str) -> Option<u64> {
    let (hex, count) = etag.trim_matches('"').split_once('-')?;
    let count: u64 = count.parse().ok()?;
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && (1..=MAX_PARTS).contains(&count)).then_some(count)
}

/// The object being copied, as the whole-object GET described it.
pub struct SourceObject {
    pub size: u64,
    /// In the client's form.
    pub etag: String,
    /// The new object's headers, already in the new provider's dialect (no condition).
    pub headers: HeaderMap,
}

/// Copies `task`'s object in parts; see the module documentation.
pub async fn copy_in_parts(
    task: &CopyTask,
    source: SourceObject,
    commit: &Arc<CommitPoint>,
) -> Result<CopyOutcome, GatewayError> {
    let (sizes, layout_kept) = match source_part_sizes(task, &source).await {
        Some(sizes) => (sizes, true),
        None => (fixed_layout(source.size, task.parts.part_size), false),
    };
    let upload = Upload::create(task, source.headers.clone()).await?;
    let server_side = same_account(&task.old, &task.new) && task.new.settings.profile.upload_part_copy;
    // Bytes that pass through s3ferry can be hashed; a plain-MD5 source is checked against it.
    let hasher = (!server_side && is_plain_md5_etag(&source.etag)).then(|| Arc::new(Mutex::new(md5::Md5::new())));
    let written = match upload
        .write_parts(task, &sizes, server_side, hasher.as_ref(), commit)
        .await
    {
        Ok(written) => written,
        Err(e) => {
            upload.abort().await;
            // A stopped copy's part was cut short on purpose.
            return if commit.is_stopped() {
                Ok(CopyOutcome::Superseded)
            } else {
                Err(e)
            };
        }
    };
    let Some(copy_etag) = written else {
        upload.abort().await;
        // Stopped by a client claim here, or the provider's create-if-absent refused: a write
        // from elsewhere landed first.
        return Ok(if commit.is_stopped() {
            CopyOutcome::Superseded
        } else {
            CopyOutcome::AlreadyInNew
        });
    };
    upload.completed();
    let new = &task.new;
    let copy_etag = new.settings.profile.client_etag(&copy_etag);
    let content_differs = match &hasher {
        Some(hasher) => {
            let md5 = hex::encode(hasher.lock().map_err(|_| internal("the MD5 state"))?.clone().finalize());
            (!same_etag(&md5, &source.etag)).then(|| format!("MD5 {md5}"))
        }
        None if layout_kept => (!same_etag(&copy_etag, &source.etag)).then(|| format!("ETag {copy_etag}")),
        None => None,
    };
    let stored = new.head_object(&task.new_bucket, &task.key).await?;
    if let Some(head) = &stored
        && !same_etag(&new.settings.profile.client_etag(&head.etag), &copy_etag)
    {
        // Another writer (a replica, `s3ferry migrate`) replaced the copy since it completed:
        // what it wrote is newer and stays, as in `copy::keep_unless_deleted_meanwhile`.
        return Ok(CopyOutcome::AlreadyInNew);
    }
    let size_differs = match &stored {
        Some(head) if head.size == source.size => None,
        Some(head) => Some(format!("{} bytes", head.size)),
        None => Some("no object".to_string()),
    };
    if let Some(found) = content_differs.or(size_differs) {
        new.delete_object(&task.new_bucket, &task.key).await?;
        return Err(GatewayError::UpstreamProtocol {
            provider: new.settings.name.clone(),
            cause: format!(
                "the copy in parts into '{}' has {found}, the source {} bytes with ETag {}; copy removed",
                task.new_bucket, source.size, source.etag
            ),
        });
    }
    tracing::debug!(bucket = %task.client_bucket, parts = sizes.len(), layout_kept, "copied in parts");
    super::copy_task::keep_unless_deleted_meanwhile(task, &copy_etag, source.size).await
}

/// The sizes of the source's own parts, when its ETag is multipart and the old provider
/// answers HEAD `?partNumber=` with each part's size (they must add up to the object).
async fn source_part_sizes(task: &CopyTask, source: &SourceObject) -> Option<Vec<u64>> {
    let count = multipart_etag_parts(&source.etag)?;
    let mut sizes = Vec::new();
    for part in 1..=count {
        let request = task.old.request(
            Method::HEAD,
            &task.old_bucket,
            &task.key,
            vec![("partNumber".to_string(), part.to_string())],
        );
        let answer = Exchange::new(request).send_collect(&task.old, 0).await.ok()?;
        if !answer.status().is_success() {
            return None;
        }
        // A provider that ignores `partNumber` answers with the whole object's length.
        let size = crate::s3::headers::content_length(answer.headers())?;
        sizes.push(size);
    }
    let whole: u64 = sizes.iter().sum();
    let fits = whole == source.size && sizes.iter().all(|s| (1..=MAX_PART_SIZE).contains(s));
    fits.then_some(sizes)
}

fn internal(what: &str) -> GatewayError {
    GatewayError::Internal(format!("{what} of a copy in parts is unusable"))
}

/// A multipart upload at the new provider; aborted when dropped before it completed.
struct Upload {
    new: Arc<Upstream>,
    bucket: String,
    key: String,
    id: String,
    /// Cleared once the upload completed or was aborted.
    open: std::sync::atomic::AtomicBool,
}

impl Upload {
    /// CreateMultipartUpload, carried to its answer even when the copy is dropped meanwhile
    /// (stopped by a client claim): the provider may have created the upload, and only its id
    /// lets it be aborted, which the `Upload` then does when it is dropped unclaimed.
    async fn create(task: &CopyTask, headers: HeaderMap) -> Result<Self, GatewayError> {
        let (new, bucket, key) = (task.new.clone(), task.new_bucket.clone(), task.key.clone());
        let (created_tx, created_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let created = Self::create_now(new, bucket, key, headers).await;
            // With the copy gone the upload comes back here and is dropped, so aborted.
            drop(created_tx.send(created));
        });
        created_rx
            .await
            .map_err(|_| internal("the CreateMultipartUpload task"))?
    }

    async fn create_now(
        new: Arc<Upstream>,
        bucket: String,
        key: String,
        headers: HeaderMap,
    ) -> Result<Self, GatewayError> {
        let mut request = new.request(
            Method::POST,
            &bucket,
            &key,
            vec![("uploads".to_string(), String::new())],
        );
        request.headers = headers;
        let answer = Exchange::new(request).send_collect(&new, MAX_SMALL_ANSWER).await?;
        let id = answer
            .status()
            .is_success()
            .then(|| parse_upload_id(answer.body()))
            .flatten()
            .ok_or_else(|| new.failed("CreateMultipartUpload of a copy", answer.status(), answer.body()))?;
        Ok(Self {
            new,
            bucket,
            key,
            id,
            open: std::sync::atomic::AtomicBool::new(true),
        })
    }

    fn query(&self, part: Option<usize>) -> Vec<(String, String)> {
        let mut query = Vec::new();
        if let Some(part) = part {
            query.push(("partNumber".to_string(), part.to_string()));
        }
        query.push(("uploadId".to_string(), self.id.clone()));
        query
    }

    /// Writes every part and completes the upload: the ETag the provider gave the object, or
    /// `None` when a client claim stopped the copy first or the key exists already. Up to
    /// `task.parts.parallel` parts go at once, except where the bytes are hashed on their way
    /// (`hasher`): the whole object's MD5 needs them in order.
    async fn write_parts(
        &self,
        task: &CopyTask,
        sizes: &[u64],
        server_side: bool,
        hasher: Option<&Arc<Mutex<md5::Md5>>>,
        commit: &Arc<CommitPoint>,
    ) -> Result<Option<String>, GatewayError> {
        let at_once = if hasher.is_some() {
            1
        } else {
            task.parts.parallel.max(1)
        };
        let mut parts = Vec::with_capacity(sizes.len());
        let mut offset = 0u64;
        for (index, size) in sizes.iter().copied().enumerate() {
            parts.push((index, size, offset));
            offset += size;
        }
        let written: Vec<Option<String>> = futures_util::stream::iter(parts)
            .map(|(index, size, offset)| async move {
                if commit.is_stopped() {
                    return Ok(None);
                }
                let range = format!("bytes={}-{}", offset, offset + size - 1);
                let etag = if server_side {
                    self.copy_part(task, index + 1, &range).await?
                } else {
                    self.upload_part(task, index + 1, &range, size, hasher, commit).await?
                };
                Ok::<_, GatewayError>(Some(etag))
            })
            // In order: the etags are the parts' list.
            .buffered(at_once)
            .try_collect()
            .await?;
        let Some(etags) = written.into_iter().collect::<Option<Vec<String>>>() else {
            return Ok(None);
        };
        if !commit.try_commit() {
            return Ok(None);
        }
        self.complete(&etags).await
    }

    /// UploadPartCopy of `range` of the source (same provider).
    async fn copy_part(&self, task: &CopyTask, part: usize, range: &str) -> Result<String, GatewayError> {
        let mut request = self
            .new
            .request(Method::PUT, &self.bucket, &self.key, self.query(Some(part)));
        request
            .headers
            .insert(HeaderName::from_static("x-amz-copy-source"), copy_source(task)?);
        let range = HeaderValue::from_str(range).map_err(|_| internal("the copy source range"))?;
        request
            .headers
            .insert(HeaderName::from_static("x-amz-copy-source-range"), range);
        let settings = &self.new.settings;
        translate_request(
            &settings.profile,
            &settings.name,
            Operation::UploadPartCopy,
            &mut request.headers,
            &mut request.query,
        )?;
        let answer = Exchange::new(request).send_collect(&self.new, MAX_SMALL_ANSWER).await?;
        match parse_result_etag(answer.body()) {
            Some(etag) if answer.status().is_success() => Ok(etag),
            _ => Err(self
                .new
                .failed("UploadPartCopy of a copy", answer.status(), answer.body())),
        }
    }

    /// A ranged GET of the old provider streamed into UploadPart.
    async fn upload_part(
        &self,
        task: &CopyTask,
        part: usize,
        range: &str,
        size: u64,
        hasher: Option<&Arc<Mutex<md5::Md5>>>,
        commit: &Arc<CommitPoint>,
    ) -> Result<String, GatewayError> {
        let old = &task.old;
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::RANGE,
            HeaderValue::from_str(range).map_err(|_| internal("the range"))?,
        );
        let source = old.get_object(&task.old_bucket, &task.key, headers).await?;
        let length = crate::s3::headers::content_length(source.headers());
        if source.status() != StatusCode::PARTIAL_CONTENT || length != Some(size) {
            return Err(GatewayError::UpstreamProtocol {
                provider: old.settings.name.clone(),
                cause: format!(
                    "ranged GET of a part of the copy source in '{}' answered {} with {length:?} bytes, not {size}",
                    task.old_bucket,
                    source.status()
                ),
            });
        }
        let body = IdleTimeoutBody::new(source.into_body(), old.settings.read_timeout);
        let body = HashingBody::new(body, hasher.cloned());
        // A stopped copy's part is cut short too, so no part lands after the abort.
        let body = http_body_util::BodyExt::boxed(CommitGatedBody::until_stopped(body, commit.clone()));
        let mut request = self
            .new
            .request(Method::PUT, &self.bucket, &self.key, self.query(Some(part)));
        request
            .headers
            .insert(http::header::CONTENT_LENGTH, HeaderValue::from(size));
        request.body = body;
        let answer = Exchange::new(request).send_collect(&self.new, MAX_SMALL_ANSWER).await?;
        let etag = answer
            .headers()
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match etag {
            Some(etag) if answer.status().is_success() => Ok(etag),
            _ => Err(self.new.failed("UploadPart of a copy", answer.status(), answer.body())),
        }
    }

    /// CompleteMultipartUpload, conditional where the provider has an atomic form: the
    /// object's ETag, or `None` when the key exists already (a client wrote it meanwhile).
    async fn complete(&self, etags: &[String]) -> Result<Option<String>, GatewayError> {
        let new = &self.new;
        let xml = render_complete_multipart_upload(etags);
        let mut request = new.request(Method::POST, &self.bucket, &self.key, self.query(None));
        if new.settings.profile.conditional_writes != ConditionalWrites::Unsupported {
            request
                .headers
                .insert(http::header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        }
        translate_request(
            &new.settings.profile,
            &new.settings.name,
            Operation::CompleteMultipartUpload,
            &mut request.headers,
            &mut Vec::new(),
        )?;
        request
            .headers
            .insert(http::header::CONTENT_LENGTH, HeaderValue::from(xml.len()));
        request.body = crate::body::full(bytes::Bytes::from(xml));
        let answer = Exchange::new(request).send_collect(new, MAX_SMALL_ANSWER).await?;
        match answer.status() {
            StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => Ok(None),
            // A 200 can still carry an error: only a result with an ETag is a success.
            s if s.is_success() => match parse_result_etag(answer.body()) {
                Some(etag) => Ok(Some(etag)),
                None => Err(new.failed("CompleteMultipartUpload of a copy", s, answer.body())),
            },
            s => Err(new.failed("CompleteMultipartUpload of a copy", s, answer.body())),
        }
    }

    fn completed(&self) {
        self.open.store(false, std::sync::atomic::Ordering::Release);
    }

    /// AbortMultipartUpload; a failure is logged (the provider's lifecycle rules, if any,
    /// remain the last resort).
    async fn abort(&self) {
        if self.open.load(std::sync::atomic::Ordering::Acquire) {
            abort_upload(&self.new, &self.bucket, &self.key, &self.id).await;
            // Only now: a copy dropped while this request was in flight aborts again on drop.
            self.open.store(false, std::sync::atomic::Ordering::Release);
        }
    }
}

impl Drop for Upload {
    /// A copy dropped mid-way (stopped by a client claim, or the gateway stopping) still aborts
    /// its upload, from a task of its own.
    fn drop(&mut self) {
        if self.open.swap(false, std::sync::atomic::Ordering::AcqRel)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (new, bucket, key, id) = (self.new.clone(), self.bucket.clone(), self.key.clone(), self.id.clone());
            runtime.spawn(async move { abort_upload(&new, &bucket, &key, &id).await });
        }
    }
}

async fn abort_upload(new: &Upstream, bucket: &str, key: &str, id: &str) {
    let request = new.request(
        Method::DELETE,
        bucket,
        key,
        vec![("uploadId".to_string(), id.to_string())],
    );
    match Exchange::new(request).send_collect(new, MAX_SMALL_ANSWER).await {
        Ok(answer) if answer.status().is_success() || answer.status() == StatusCode::NOT_FOUND => {}
        Ok(answer) => {
            tracing::warn!(provider = %new.settings.name, %bucket, status = %answer.status(), "aborting the multipart upload of a failed copy was refused; its parts remain until the provider's lifecycle rules remove them")
        }
        Err(e) => {
            tracing::warn!(provider = %new.settings.name, %bucket, error = %e, "aborting the multipart upload of a failed copy failed; its parts remain until the provider's lifecycle rules remove them")
        }
    }
}

pin_project_lite::pin_project! {
    /// A part's body that feeds every byte it passes into the whole object's MD5.
    struct HashingBody<B> {
        #[pin]
        inner: B,
        hasher: Option<Arc<Mutex<md5::Md5>>>,
    }
}

impl<B> HashingBody<B> {
    fn new(inner: B, hasher: Option<Arc<Mutex<md5::Md5>>>) -> Self {
        Self { inner, hasher }
    }
}

impl<B> http_body::Body for HashingBody<B>
where
    B: http_body::Body<Data = bytes::Bytes, Error = BoxError>,
{
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, BoxError>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let (std::task::Poll::Ready(Some(Ok(frame))), Some(hasher)) = (&polled, this.hasher.as_ref())
            && let Some(data) = frame.data_ref()
            && let Ok(mut md5) = hasher.lock()
        {
            md5.update(data);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_layouts_cover_the_object_in_at_most_10000_parts() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(fixed_layout(11 * MIB, 5 * MIB), vec![5 * MIB, 5 * MIB, MIB]);
        assert_eq!(fixed_layout(10 * MIB, 5 * MIB), vec![5 * MIB, 5 * MIB]);
        assert_eq!(fixed_layout(3, 5 * MIB), vec![3]);
        assert!(fixed_layout(0, 5 * MIB).is_empty());
        let huge = 5 * 1024 * 1024 * MIB; // 5 TiB, S3's largest object
        let parts = fixed_layout(huge, 5 * MIB);
        assert!(parts.len() as u64 <= MAX_PARTS);
        assert_eq!(parts.iter().sum::<u64>(), huge);
        assert!(parts.iter().all(|p| *p <= MAX_PART_SIZE));
    }

    #[test]
    fn multipart_etags_name_their_part_count() {
        assert_eq!(multipart_etag_parts("\"3858f62230ac3c915f300c664312c11f-3\""), Some(3));
        assert_eq!(
            multipart_etag_parts("3858F62230AC3C915F300C664312C11F-10000"),
            Some(10_000)
        );
        assert_eq!(multipart_etag_parts("\"3858f62230ac3c915f300c664312c11f\""), None);
        assert_eq!(multipart_etag_parts("\"3858f62230ac3c915f300c664312c11f-0\""), None);
        assert_eq!(multipart_etag_parts("\"3858f62230ac3c915f300c664312c11f-10001\""), None);
        assert_eq!(multipart_etag_parts("\"xyz-2\""), None);
    }
}
