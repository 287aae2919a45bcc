//! How the gateway serves a bucket under lazy migration: reads that fall back, deletes that
//! leave tombstones, conditional writes and copies that see the old provider, merged listings.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;

use super::claim::KeyClaim;
use super::copy::Copier;
use super::copy_task::PartSizes;
use super::copy_task::{CopyTask, same_etag};
use super::listing::{MergeSources, merged_page, parse_list_query};
use super::policy::{ReadDecision, decide_read};
use super::{MigrationStats, tombstone};
use crate::body;
use crate::dialect::translate::translate_request;
use crate::error::GatewayError;
use crate::rewrite::delete_objects::DeleteResult;
use crate::rewrite::list_objects::render_list_objects;
use crate::route::{FallbackRoute, Route};
use crate::s3::operation::Operation;
use crate::small_body::MAX_SMALL_ANSWER;
use crate::upstream::exchange::Exchange;
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
        cors: route.cors.clone(),
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
        let response = Exchange::new(read.outgoing(&route.provider, &route.upstream_bucket)?)
            .send(&route.provider)
            .await?;
        let status = response.status();
        let mut message = String::new();
        let error_code = if status == StatusCode::NOT_FOUND && read.method == Method::GET {
            let (_, body) = response.into_parts();
            // Only the error code is wanted: an answer that cannot be read has none, but a full
            // budget is the client's answer (SlowDown), not a guess at the code.
            let answer = match route.provider.read_answer(body, MAX_SMALL_ANSWER).await {
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
        let response = Exchange::new(read.outgoing(old, &fallback.bucket)?).send(old).await?;
        tracing::debug!(bucket = %route.client_bucket, status = %response.status(), provider = %old.settings.name, "read fell back to the old provider");
        if fallback.copy_on_read && read.method == Method::GET && response.status().is_success() {
            self.copier.schedule(
                copy_task(route, fallback, key, self.copier.part_sizes()),
                object_size(&response),
            );
        }
        Ok((response, old_side(route, fallback)))
    }

    /// A delete under migration, before the new provider sees it: a tombstone for every key
    /// (see [`DeleteAnswer`] for the order of operations). When one cannot be written, those
    /// that were are removed again and the request fails before it reaches a provider, so
    /// nothing changed.
    pub async fn tombstone_before_delete(&self, route: &Route, keys: &[String]) -> Result<(), GatewayError> {
        let written = for_each_key(keys, |key| async move {
            tombstone::write_tombstone(&route.provider, &route.upstream_bucket, &key).await
        })
        .await;
        let mut first_error = None;
        let mut undo = Vec::new();
        for (key, result) in written {
            match result {
                Ok(()) => undo.push(key),
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => {
                self.clear_tombstones(route, &undo).await;
                Err(e)
            }
        }
    }

    /// After the new provider answered a delete whose keys were tombstoned first: the keys it
    /// did not delete lose their tombstones again (a refused request hides nothing); the ones
    /// it deleted keep theirs, are counted, and with `delete_from_fallback` are deleted at the
    /// old provider too (a failure there is logged: the tombstone still hides the old copy).
    pub async fn after_delete(
        &self,
        route: &Route,
        fallback: &FallbackRoute,
        keys: &[String],
        answer: DeleteAnswer<'_>,
    ) {
        let (deleted, refused) = deleted_keys(keys, answer);
        self.clear_tombstones(route, &refused).await;
        for _ in &deleted {
            self.stats.tombstone(&route.client_bucket);
        }
        if fallback.delete_from_fallback {
            let results = for_each_key(&deleted, |key| async move {
                fallback.provider.delete_object(&fallback.bucket, &key).await
            })
            .await;
            if let Some((_, Err(e))) = results.iter().find(|(_, r)| r.is_err()) {
                // A read-only key on the old provider: the tombstone remembers the delete.
                tracing::warn!(bucket = %route.client_bucket, provider = %fallback.provider.settings.name, error = %e, "delete at the old provider failed; the tombstone stays");
            }
        }
    }

    /// Removes the tombstones of `keys`; a failure is logged (the key then stays hidden, which
    /// a client's delete or write of it settles).
    async fn clear_tombstones(&self, route: &Route, keys: &[String]) {
        let results = for_each_key(keys, |key| async move {
            tombstone::clear_tombstone(&route.provider, &route.upstream_bucket, &key).await
        })
        .await;
        let failed = results.iter().filter(|(_, r)| r.is_err()).count();
        if let Some((_, Err(e))) = results.iter().find(|(_, r)| r.is_err()) {
            tracing::warn!(bucket = %route.client_bucket, provider = %route.provider.settings.name, failed, error = %e, "removing the tombstones of a refused delete failed; those keys stay hidden until deleted or written again");
        }
    }

    /// After a client's write of `key` (PutObject, CopyObject, CompleteMultipartUpload) was
    /// answered with success: the key is not deleted any more, so its tombstone goes. A
    /// tombstone left behind by a failure here is harmless while the object exists (reads
    /// find it first, a copy's re-check removes only the copy's own object), so it is logged,
    /// not returned.
    pub async fn after_write(&self, route: &Route, key: &str, operation: Operation) {
        let provider = &route.provider;
        if matches!(operation, Operation::CompleteMultipartUpload | Operation::CopyObject) {
            // Their 200 can still carry an error in the body: clear only if the object is there.
            if !matches!(provider.head_object(&route.upstream_bucket, key).await, Ok(Some(_))) {
                return;
            }
        }
        if let Err(e) = tombstone::clear_tombstone(provider, &route.upstream_bucket, key).await {
            tracing::warn!(bucket = %route.client_bucket, provider = %provider.settings.name, error = %e, "clearing the tombstone of a key written again failed");
        }
    }

    /// A client's write or delete of `key` on a bucket under migration claims the key first, so
    /// no background copy of it lands after the client's request (see `claim`); held until the
    /// answer is relayed. `None` for other requests and buckets.
    pub async fn claim(&self, route: &Route, operation: Operation, key: &str) -> Option<KeyClaim> {
        match &route.fallback {
            Some(_) if operation.changes_object() => Some(self.copier.claim(&route.upstream_bucket, key).await),
            _ => None,
        }
    }

    /// [`Migration::check_conditional_write`] for a PutObject on a bucket under migration;
    /// `false` (nothing satisfied by the old provider) for any other request.
    pub async fn put_satisfied_by_old(
        &self,
        route: &Route,
        operation: Operation,
        key: &str,
        headers: &HeaderMap,
    ) -> Result<bool, GatewayError> {
        match &route.fallback {
            Some(fallback) if operation == Operation::PutObject => {
                self.check_conditional_write(route, fallback, key, headers).await
            }
            _ => Ok(false),
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

/// Runs `action` for each key, 16 at a time; each key with its result.
async fn for_each_key<F, Fut>(keys: &[String], action: F) -> Vec<(String, Result<(), GatewayError>)>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), GatewayError>>,
{
    futures_util::stream::iter(keys.iter().cloned())
        .map(|key| {
            let done = action(key.clone());
            async move { (key, done.await) }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

/// What the new provider answered to a delete whose keys were tombstoned first.
///
/// The order of operations under migration is tombstone, then the new provider, then (for the
/// keys it did not delete) no tombstone again. The other order would let an old copy come back
/// whenever the provider deletes and the tombstone write then fails; this one never does, and a
/// request the provider refuses hides nothing once its tombstones are removed. The tombstones
/// are written just before the request is sent, after everything that could still refuse it
/// locally. A request whose answer never arrives (timeout, broken connection) keeps its
/// tombstones: the provider may have deleted, and only then could an old copy come back.
#[derive(Debug, Clone, Copy)]
pub enum DeleteAnswer<'a> {
    /// The request never reached the provider (no connection, a certificate refused): nothing
    /// was deleted.
    NotSent,
    /// The provider's answer never came (timeout, broken connection): it may have deleted.
    Unknown,
    /// DeleteObject: the status says it all (a 404 also means the key is not there).
    Single(StatusCode),
    /// DeleteObjects: the status and, on a 2xx, the provider's `<DeleteResult>` (`None`: it
    /// could not be read, so the keys count as deleted, the side on which nothing comes back).
    Batch {
        status: StatusCode,
        result: Option<&'a DeleteResult>,
    },
}

impl DeleteAnswer<'_> {
    /// What an exchange says: a DeleteObject's status, or why there was no answer at all.
    pub fn of_exchange(sent: Result<StatusCode, &GatewayError>) -> Self {
        match sent {
            Ok(status) => Self::Single(status),
            Err(GatewayError::UpstreamUnreachable { .. } | GatewayError::UpstreamCertificateRejected { .. }) => {
                Self::NotSent
            }
            Err(_) => Self::Unknown,
        }
    }
}

/// Splits `keys` into (deleted, refused) by the provider's answer. A 2xx DeleteObjects answer
/// refuses exactly the keys it lists as `<Error>`: that is what the client reads as "not
/// deleted". A key it does not mention (quiet mode lists only errors; a provider may leave out
/// keys it did not hold) keeps its tombstone, so nothing the client was told is gone comes back.
pub fn deleted_keys(keys: &[String], answer: DeleteAnswer<'_>) -> (Vec<String>, Vec<String>) {
    let failed: std::collections::HashSet<&str> = match answer {
        DeleteAnswer::Batch {
            result: Some(result), ..
        } => result.failed.iter().map(String::as_str).collect(),
        _ => std::collections::HashSet::new(),
    };
    let deleted = |key: &String| match answer {
        DeleteAnswer::NotSent => false,
        DeleteAnswer::Unknown => true,
        DeleteAnswer::Single(status) => status.is_success() || status == StatusCode::NOT_FOUND,
        DeleteAnswer::Batch { status, .. } if !status.is_success() => false,
        DeleteAnswer::Batch { result: None, .. } => true,
        DeleteAnswer::Batch { result: Some(_), .. } => !failed.contains(key.as_str()),
    };
    keys.iter().cloned().partition(deleted)
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
            Operation::HeadObject
        } else {
            Operation::GetObject
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

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|k| (*k).to_string()).collect()
    }

    #[test]
    fn only_keys_the_provider_deleted_keep_their_tombstones() {
        let all = keys(&["a", "b", "c"]);
        let result = DeleteResult {
            deleted: keys(&["a"]),
            failed: keys(&["b"]),
        };
        let batch = |status: u16, result| DeleteAnswer::Batch {
            status: StatusCode::from_u16(status).expect("status"),
            result,
        };
        let table: Vec<(DeleteAnswer<'_>, Vec<String>)> = vec![
            (DeleteAnswer::NotSent, keys(&[])),
            // Only an answer that never came leaves the question open: nothing may come back.
            (DeleteAnswer::Unknown, keys(&["a", "b", "c"])),
            (DeleteAnswer::Single(StatusCode::NO_CONTENT), keys(&["a", "b", "c"])),
            (DeleteAnswer::Single(StatusCode::NOT_FOUND), keys(&["a", "b", "c"])),
            (DeleteAnswer::Single(StatusCode::FORBIDDEN), keys(&[])),
            (DeleteAnswer::Single(StatusCode::INTERNAL_SERVER_ERROR), keys(&[])),
            // A refused request (malformed XML, missing checksum, no permission) deleted nothing.
            (batch(400, None), keys(&[])),
            (batch(403, None), keys(&[])),
            // All but what is listed as failed (`c`, not mentioned, as in quiet mode).
            (batch(200, Some(&result)), keys(&["a", "c"])),
            // A 200 whose body cannot be read: the provider deleted, as far as anyone knows.
            (batch(200, None), keys(&["a", "b", "c"])),
        ];
        for (answer, expected) in table {
            let (deleted, refused) = deleted_keys(&all, answer);
            assert_eq!(deleted, expected, "{answer:?}");
            assert_eq!(deleted.len() + refused.len(), all.len());
        }
    }
}
