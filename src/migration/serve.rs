//! How the gateway serves a bucket under lazy migration: reads that fall back, deletes that
//! leave tombstones, conditional writes and copies that see the old provider, merged listings.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;

use super::copy::{Copier, CopyTask, same_etag};
use super::listing::{MergeSources, merged_page, parse_list_query};
use super::multipart_copy::PartSizes;
use super::policy::{ReadDecision, decide_read};
use super::{MigrationStats, tombstone};
use crate::body;
use crate::dialect::translate::translate_request;
use crate::error::GatewayError;
use crate::rewrite::list_objects::render_list_objects;
use crate::route::{FallbackRoute, Route};
use crate::upstream::sign::EMPTY_PAYLOAD_SHA256;
use crate::upstream::{OutgoingRequest, Upstream};

/// Lazy-migration state shared by all requests: the copy-on-read queue and the counters.
pub struct Migration {
    pub copier: Arc<Copier>,
    pub stats: Arc<MigrationStats>,
}

/// A bucket's route as seen from its old provider (for relaying the old provider's answers).
pub fn old_side(route: &Route, fallback: &FallbackRoute) -> Route {
    Route {
        client_bucket: route.client_bucket.clone(),
        upstream_bucket: fallback.bucket.clone(),
        provider: fallback.provider.clone(),
        fallback: None,
    }
}

fn copy_task(route: &Route, fallback: &FallbackRoute, key: &str, parts: PartSizes) -> CopyTask {
    CopyTask {
        client_bucket: route.client_bucket.clone(),
        old: fallback.provider.clone(),
        old_bucket: fallback.bucket.clone(),
        new: route.provider.clone(),
        new_bucket: route.upstream_bucket.clone(),
        key: key.to_string(),
        parts,
    }
}

/// The object size from a 200 (`Content-Length`) or 206 (`Content-Range: bytes a-b/size`).
fn object_size(response: &Response<Incoming>) -> Option<u64> {
    let header = |name| response.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    match response.status() {
        StatusCode::PARTIAL_CONTENT => header(http::header::CONTENT_RANGE)?.rsplit('/').next()?.parse().ok(),
        _ => header(http::header::CONTENT_LENGTH)?.parse().ok(),
    }
}

impl Migration {
    /// GET/HEAD: the new provider first; on a definite miss, unless the key was deleted through
    /// s3ferry, the old provider (same range and conditions). Returns the answer to relay and
    /// the route it came from.
    pub async fn read_through(
        &self,
        route: &Route,
        fallback: &FallbackRoute,
        key: &str,
        read: ReadRequest,
    ) -> Result<(Response<Incoming>, Route), GatewayError> {
        let response = route
            .provider
            .send(read.outgoing(&route.provider, &route.upstream_bucket)?)
            .await
            .map_err(|e| e.into_gateway_error(&route.provider.settings))?;
        let status = response.status();
        let mut message = String::new();
        let error_code = if status == StatusCode::NOT_FOUND && read.method == Method::GET {
            let (_, body) = response.into_parts();
            // Only the error code is wanted: an answer that cannot be read has none, but a full
            // budget is the client's answer (SlowDown), not a guess at the code.
            let answer = match route.provider.read_answer(body, 64 * 1024).await {
                Ok(buffered) => Some(buffered),
                Err(GatewayError::SlowDown) => return Err(GatewayError::SlowDown),
                Err(_) => None,
            };
            crate::error::parse_error_code(answer.as_deref().unwrap_or_default()).map(|(code, text)| {
                message = text;
                code
            })
        } else {
            if decide_read(&read.method, status, None) == ReadDecision::Serve {
                self.stats.new_hit(&route.client_bucket);
                return Ok((response, route.clone()));
            }
            None
        };
        if decide_read(&read.method, status, error_code.as_deref()) == ReadDecision::Serve {
            // A GET 404 that is not a plain miss (NoSuchVersion...): the provider's body was read
            // to learn its code, so its answer is passed on with the same status and code.
            return Err(GatewayError::Relayed {
                status,
                code: error_code.unwrap_or_else(|| "NotFound".into()),
                message,
            });
        }
        if tombstone::is_tombstoned(&route.provider, &route.upstream_bucket, key).await? {
            return Err(GatewayError::NoSuchKey { key: key.to_string() });
        }
        self.stats.fallback(&route.client_bucket);
        let old = &fallback.provider;
        let response = old
            .send(read.outgoing(old, &fallback.bucket)?)
            .await
            .map_err(|e| e.into_gateway_error(&old.settings))?;
        tracing::debug!(bucket = %route.client_bucket, status = %response.status(), provider = %old.settings.name, "read fell back to the old provider");
        if fallback.copy_on_read && read.method == Method::GET && response.status().is_success() {
            self.copier.schedule(
                copy_task(route, fallback, key, self.copier.part_sizes()),
                object_size(&response),
            );
        }
        Ok((response, old_side(route, fallback)))
    }

    /// Before a DELETE reaches the new provider: delete at the old one too, or leave a tombstone
    /// so the old copy never comes back. Done first, so a failure leaves nothing half-deleted.
    pub async fn before_delete(
        &self,
        route: &Route,
        fallback: &FallbackRoute,
        keys: &[String],
    ) -> Result<(), GatewayError> {
        let results: Vec<Result<(), GatewayError>> = futures_util::stream::iter(keys.to_vec())
            .map(|key| async move { self.forget_in_old(route, fallback, &key).await })
            .buffer_unordered(16)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn forget_in_old(&self, route: &Route, fallback: &FallbackRoute, key: &str) -> Result<(), GatewayError> {
        if fallback.delete_from_fallback {
            match fallback.provider.delete_object(&fallback.bucket, key).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    // A read-only key on the old provider: remember the delete instead.
                    tracing::warn!(bucket = %route.client_bucket, provider = %fallback.provider.settings.name, error = %e, "delete at the old provider failed; leaving a tombstone");
                }
            }
        }
        tombstone::write_tombstone(&route.provider, &route.upstream_bucket, key).await?;
        self.stats.tombstone(&route.client_bucket);
        Ok(())
    }

    /// After a client's write of `key` (PutObject, CopyObject, CompleteMultipartUpload) was
    /// answered with success: the key is not deleted any more, so its tombstone goes. A
    /// tombstone left behind by a failure here is harmless while the object exists (reads
    /// find it first, a copy's re-check removes only the copy's own object), so it is logged,
    /// not returned.
    pub async fn after_write(&self, route: &Route, key: &str, operation: &str) {
        let provider = &route.provider;
        if matches!(operation, "CompleteMultipartUpload" | "CopyObject") {
            // Their 200 can still carry an error in the body: clear only if the object is there.
            if !matches!(provider.head_object(&route.upstream_bucket, key).await, Ok(Some(_))) {
                return;
            }
        }
        if let Err(e) = tombstone::clear_tombstone(provider, &route.upstream_bucket, key).await {
            tracing::warn!(bucket = %route.client_bucket, provider = %provider.settings.name, error = %e, "clearing the tombstone of a key written again failed");
        }
    }

    /// `If-None-Match: *` and `If-Match` on a PUT must see objects that live only in the old
    /// provider. Returns whether `If-Match` was satisfied by the old copy (then the new provider,
    /// which lacks the object, must not see the header).
    pub async fn check_conditional_write(
        &self,
        route: &Route,
        fallback: &FallbackRoute,
        key: &str,
        headers: &HeaderMap,
    ) -> Result<bool, GatewayError> {
        let if_none_match = headers.get(http::header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
        let if_match = headers.get(http::header::IF_MATCH).and_then(|v| v.to_str().ok());
        if if_none_match.is_none() && if_match.is_none() {
            return Ok(false);
        }
        if route.provider.head_object(&route.upstream_bucket, key).await?.is_some() {
            return Ok(false); // the new provider has it and evaluates the condition itself
        }
        let old_copy = if tombstone::is_tombstoned(&route.provider, &route.upstream_bucket, key).await? {
            None
        } else {
            fallback.provider.head_object(&fallback.bucket, key).await?
        };
        if if_none_match.is_some_and(|v| v.trim() == "*") && old_copy.is_some() {
            return Err(GatewayError::PreconditionFailed);
        }
        if let Some(expected) = if_match {
            let Some(old) = old_copy else { return Ok(false) };
            // The client holds the ETag in its (AWS) form, not the old provider's (OSS: uppercase).
            let old_etag = fallback.provider.settings.profile.client_etag(&old.etag);
            let matches = expected
                .split(',')
                .map(str::trim)
                .any(|e| e == "*" || same_etag(e, &old_etag));
            return if matches {
                Ok(true)
            } else {
                Err(GatewayError::PreconditionFailed)
            };
        }
        Ok(false)
    }

    /// ListObjects / ListObjectsV2 over both providers.
    pub async fn list(
        &self,
        route: &Route,
        fallback: &FallbackRoute,
        query: &[(String, String)],
        v2: bool,
    ) -> Result<Bytes, GatewayError> {
        let (list, resume) = parse_list_query(&route.client_bucket, query, v2)?;
        let sources = MergeSources {
            new: &route.provider,
            new_bucket: &route.upstream_bucket,
            old: &fallback.provider,
            old_bucket: &fallback.bucket,
        };
        let (entries, next) = if list.max_keys == 0 {
            (Vec::new(), None)
        } else {
            merged_page(&sources, &list, resume.as_deref()).await?
        };
        Ok(Bytes::from(render_list_objects(&list, &entries, next.as_deref())))
    }

    /// Whether the copy source `key` of a bucket under migration must be read from the old
    /// provider (it is not in the new one and was not deleted through s3ferry).
    pub async fn source_only_in_old(
        &self,
        route: &Route,
        fallback: &FallbackRoute,
        key: &str,
    ) -> Result<bool, GatewayError> {
        if route.provider.head_object(&route.upstream_bucket, key).await?.is_some() {
            return Ok(false);
        }
        if tombstone::is_tombstoned(&route.provider, &route.upstream_bucket, key).await? {
            return Err(GatewayError::NoSuchKey { key: key.to_string() });
        }
        Ok(fallback.provider.head_object(&fallback.bucket, key).await?.is_some())
    }
}

/// A read (GET/HEAD) to send to either provider.
pub struct ReadRequest {
    pub method: Method,
    pub encoded_key: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
}

impl ReadRequest {
    /// The read as `provider` gets it, in its dialect: conditional ETags in its case, checksum
    /// headers it does not take (`x-amz-checksum-mode`) and headers or parameters it rejects
    /// left out. Each side of a bucket under migration may speak another dialect.
    fn outgoing(&self, provider: &Upstream, bucket: &str) -> Result<OutgoingRequest, GatewayError> {
        let operation = if self.method == Method::HEAD {
            "HeadObject"
        } else {
            "GetObject"
        };
        let mut headers = self.headers.clone();
        let mut query = self.query.clone();
        let settings = &provider.settings;
        // A read has no body, so there is no withheld checksum to verify.
        translate_request(&settings.profile, &settings.name, operation, &mut headers, &mut query)?;
        Ok(OutgoingRequest {
            method: self.method.clone(),
            bucket: Some(bucket.to_string()),
            encoded_key: self.encoded_key.clone(),
            query,
            headers,
            body: body::empty(),
            payload_hash: EMPTY_PAYLOAD_SHA256.to_string(),
        })
    }
}
