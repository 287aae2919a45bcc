//! Copies the provider makes itself: where the old and the new bucket are one account of one
//! provider ([`same_account`]), an object goes by one CopyObject with `x-amz-copy-source`
//! instead of a GET streamed into a PUT, so none of its bytes pass through s3ferry. The
//! provider copies the metadata and tags with it (`x-amz-metadata-directive` and
//! `x-amz-tagging-directive` default to COPY); the storage class is sent, as CopyObject would
//! otherwise make the copy STANDARD.
//!
//! The guarantees are those of [`super::copy`]:
//! - the copy source is pinned to the ETag the HEAD of the source gave
//!   (`x-amz-copy-source-if-match`), and where that ETag is a plain MD5 the copy's ETag must equal
//!   it, or the copy is removed;
//! - the write is the new provider's create-if-absent where its profile says CopyObject honours
//!   one (`conditional_copy`: AWS documents `If-None-Match: *` on CopyObject); elsewhere the key
//!   is looked up in the new provider just before (a HEAD), as for a provider without
//!   conditional writes;
//! - the key's tombstone is looked for after the write, and a delete that landed meanwhile
//!   removes the copy;
//! - a copy on read's commit point is the CopyObject itself: a client claim before it stops
//!   the copy.
//!
//! Objects above `multipart_copy_threshold` go in parts ([`super::multipart_copy`]), where
//! UploadPartCopy does the same for each part.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use super::claim::CommitPoint;
use super::copy_task::{
    CopyOutcome, CopyTask, copy_source, is_plain_md5_etag, keep_unless_deleted_meanwhile, same_etag,
};
use crate::dialect::ConditionalWrites;
use crate::dialect::translate::{translate_request, translate_response_headers};
use crate::error::GatewayError;
use crate::rewrite::multipart_upload::parse_result_etag;
use crate::s3::operation::Operation;
use crate::small_body::MAX_SMALL_ANSWER;
use crate::upstream::Upstream;
use crate::upstream::exchange::Exchange;

/// Whether one provider holds both buckets under one account, so that it can copy between
/// them itself: one configured provider, or two with the same endpoint, region, key and
/// dialect.
pub fn same_account(a: &Upstream, b: &Upstream) -> bool {
    let (a, b) = (&a.settings, &b.settings);
    std::ptr::eq(a, b)
        || (a.endpoint == b.endpoint
            && a.region == b.region
            && a.access_key_id == b.access_key_id
            && a.secret_access_key == b.secret_access_key
            && a.signature == b.signature
            && a.profile == b.profile)
}

/// Whether `task`'s object can go by one CopyObject of the new provider.
pub fn provider_can_copy(task: &CopyTask) -> bool {
    same_account(&task.old, &task.new)
        && !task
            .new
            .settings
            .profile
            .unsupported_operations
            .contains(&Operation::CopyObject)
}

/// Copies `task`'s object with one CopyObject (`headed`: the key was looked up in the new
/// provider already, see [`super::copy::PreWriteChecks`]). `None` when the object is too large
/// for one CopyObject: the caller copies it in parts.
pub(super) async fn copy_by_provider(
    task: &CopyTask,
    headed: bool,
    commit: &Arc<CommitPoint>,
) -> Result<Option<CopyOutcome>, GatewayError> {
    let CopyTask {
        old,
        old_bucket,
        new,
        new_bucket,
        key,
        ..
    } = task;
    let Some(source) = old.head_object(old_bucket, key).await? else {
        return Ok(Some(CopyOutcome::GoneFromOld));
    };
    if source.size > task.parts.threshold {
        return Ok(None);
    }
    let profile = &new.settings.profile;
    let conditional = profile.conditional_copy && profile.conditional_writes != ConditionalWrites::Unsupported;
    if !conditional && !headed && new.head_object(new_bucket, key).await?.is_some() {
        return Ok(Some(CopyOutcome::AlreadyInNew));
    }
    let source_etag = old.settings.profile.client_etag(&source.etag);
    // The storage class, old provider's name -> the client's -> the new provider's.
    let mut headers = HeaderMap::new();
    if let Some(class) = source.headers.get("x-amz-storage-class") {
        headers.insert(HeaderName::from_static("x-amz-storage-class"), class.clone());
    }
    translate_response_headers(&old.settings.profile, &mut headers);
    if conditional {
        headers.insert(http::header::IF_NONE_MATCH, HeaderValue::from_static("*"));
    }
    headers.insert(HeaderName::from_static("x-amz-copy-source"), copy_source(task)?);
    if !source.etag.is_empty()
        && let Ok(etag) = HeaderValue::from_str(&source.etag)
    {
        headers.insert(HeaderName::from_static("x-amz-copy-source-if-match"), etag);
    }
    let mut request = new.request(Method::PUT, new_bucket, key, Vec::new());
    request.headers = headers;
    translate_request(
        profile,
        &new.settings.name,
        Operation::CopyObject,
        &mut request.headers,
        &mut request.query,
    )?;
    // The provider copies in one request: sending it is the commit.
    if !commit.try_commit() {
        return Ok(Some(CopyOutcome::Superseded));
    }
    let answer = Exchange::new(request).send_collect(new, MAX_SMALL_ANSWER).await?;
    let copy_etag = match answer.status() {
        StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => {
            // Either the key was written meanwhile, or the source changed since its HEAD.
            if new.head_object(new_bucket, key).await?.is_some() {
                return Ok(Some(CopyOutcome::AlreadyInNew));
            }
            return Err(GatewayError::UpstreamProtocol {
                provider: old.settings.name.clone(),
                cause: format!("the copy source in '{old_bucket}' changed during its copy; the next run copies it"),
            });
        }
        // A 200 can still carry an error: only a result with an ETag is a success.
        s if s.is_success() => match parse_result_etag(answer.body()) {
            Some(etag) => profile.client_etag(&etag),
            None => return Err(new.failed(&format!("CopyObject into '{new_bucket}'"), s, answer.body())),
        },
        s => return Err(new.failed(&format!("CopyObject into '{new_bucket}'"), s, answer.body())),
    };
    if is_plain_md5_etag(&source_etag) && !same_etag(&copy_etag, &source_etag) {
        new.delete_object(new_bucket, key).await?;
        return Err(GatewayError::UpstreamProtocol {
            provider: new.settings.name.clone(),
            cause: format!(
                "the provider's copy into '{new_bucket}' has ETag {copy_etag}, the source {source_etag}; copy removed"
            ),
        });
    }
    tracing::debug!(bucket = %task.client_bucket, "copied by the provider");
    keep_unless_deleted_meanwhile(task, &copy_etag, source.size)
        .await
        .map(Some)
}
