//! The request lifecycle after verification: route, translate, sign, send, rewrite.
//!
//! s3s has already verified who signed the request (and wraps the body in verifying streams);
//! it hands every request to [`Gateway`] as a catch-all custom route. [`Gateway::handle`] reads
//! top-down, one step per line.
//!
//! The steps that need more than a line live beside it: [`upload`] (the body's upstream form
//! and the checks s3ferry makes on it) and [`relay`] (the provider's answer turned into the
//! client's).

mod relay;
mod upload;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result};

use crate::access::{self, AccessPolicy, Action, Forwarding, Identity, Object};
use crate::access_log::{HandledByGateway, RequestContext};
use crate::acl_answer;
use crate::auth::boundary::connection_tokens;
use crate::body::{self, FailureSlot};
use crate::checksum::ChecksumAlgorithm;
use crate::copy_through::{self, CopySource};
use crate::dialect::EtagCase;
use crate::dialect::translate::{self, WithheldChecksum};
use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::migration::serve::{DeleteAnswer, Migration, ReadRequest};
use crate::operation::{self, Target};
use crate::rewrite::{self, MAX_XML_BODY, list_buckets::ListedBucket};
use crate::route::{Route, RouteTable};
use crate::target::{ClientTarget, CopySourceRef, parse_copy_source, refuse_dot_segments, refuse_reserved};
use crate::upstream::OutgoingRequest;
use crate::upstream::sign::EMPTY_PAYLOAD_SHA256;
use crate::upstream::url::parse_query;
use relay::{Relay, encodes_listing_itself, lists_v2_via_v1, relay_read_response, relay_response, xml_response};
use upload::{
    BodyChecks, TrailerKeeping, body_checksum_to_verify, build_outgoing, carries_object_data,
    checksum_params_as_headers, needs_content_md5, read_small_body, replace_small_body, set_content_md5,
    translate_part_list, upload_failure_error,
};

/// Query parameters that carry the client's presigned-URL signature; they are verified by s3s
/// and never forwarded (the upstream request is signed anew in headers).
const PRESIGN_PARAMS: &[&str] = &[
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
    "AWSAccessKeyId",
    "Signature",
    "Expires",
];

/// Request headers that are not forwarded: hop-by-hop headers, the client's signature, and
/// framing that s3ferry sets itself.
const DROPPED_REQUEST_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
];

/// The gateway: the routing table plus what it needs to answer service-level requests.
pub struct Gateway {
    routes: RouteTable,
    /// Who may do what (the generation's grants and anonymous buckets).
    access: Arc<AccessPolicy>,
    migration: Migration,
    metrics: Arc<Metrics>,
    /// Creation date reported for configured buckets whose provider does not list them.
    started: String,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    pub fn new(routes: RouteTable, access: Arc<AccessPolicy>, migration: Migration, metrics: Arc<Metrics>) -> Self {
        let started = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into());
        Self {
            routes,
            access,
            migration,
            metrics,
            started,
        }
    }

    /// The grants and anonymous access this gateway enforces (form uploads decide with them
    /// at the edge, `post_upload`).
    pub fn access_policy(&self) -> &AccessPolicy {
        &self.access
    }

    /// The whole lifecycle of one verified request.
    async fn handle(&self, mut req: S3Request<Body>, ctx: &RequestContext) -> Result<S3Response<Body>, GatewayError> {
        // Only `handle` reads it: taken, not copied.
        let target = req
            .extensions
            .remove::<ClientTarget>()
            .ok_or_else(|| GatewayError::Internal("the edge did not parse the request target".into()))?;
        let (query, checksum_params) = checksum_params_as_headers(forwarded_query(req.uri.query()));
        let operation = classify(
            &req.method,
            &target,
            &query,
            req.headers.contains_key("x-amz-copy-source"),
        );
        let client_key = req.credentials.as_ref().map(|c| c.access_key.clone());
        ctx.record(|f| {
            f.client_key_id.clone_from(&client_key);
            f.operation = operation;
            f.bucket.clone_from(&target.bucket);
        });
        let who = client_key.as_deref().map_or(Identity::Anonymous, Identity::Key);
        let Some(bucket) = target.bucket.as_deref() else {
            return self.answer_service_request(&req.method, who).await;
        };
        let forwarding = self.authorize(who, operation, &req, &target, &query)?;
        let route = self.routes.resolve(bucket)?;
        ctx.record(|f| f.upstream = Some(route.provider.settings.name.clone()));
        refuse_unsupported_operation(&route, operation)?;
        let key = target.key.clone();
        check_key(&route, &key)?;
        let encoded_key = target.encoded_key();
        let copy_source = self.resolve_copy_source(&req.headers)?;
        if let Some(answer) = acl_answer::answer_or_rewrite(&mut req, &route, operation, &key).await? {
            return Ok(answer);
        }
        if operation == "DeleteObjects" {
            return self
                .delete_objects(req, &route, copy_source.as_ref(), encoded_key, query, (who, forwarding))
                .await;
        }
        // A write or delete of a key under migration claims it first: no background copy of
        // it lands after this request (`migration::claim`). Held until the answer is relayed.
        let _claim = match &route.fallback {
            Some(_) if changes_object(operation) => {
                Some(self.migration.copier.claim(&route.upstream_bucket, &key).await)
            }
            _ => None,
        };
        let mut satisfied_by_old = false;
        // A DeleteObject under migration: tombstoned just before it is sent, settled once answered.
        let mut tombstoned_delete = None;
        if let Some(fallback) = route.fallback.clone() {
            match operation {
                "GetObject" | "HeadObject" => {
                    let relay = Relay::new(operation, &req.headers, false);
                    let headers = forward_headers(&req.headers, &route, copy_source.as_ref())?;
                    let read = ReadRequest {
                        method: req.method.clone(),
                        encoded_key,
                        query,
                        headers,
                    };
                    let (response, answered_by) = self.migration.read_through(&route, &fallback, &key, read).await?;
                    return relay_response(response, &answered_by, relay).await;
                }
                "ListObjects" | "ListObjectsV2" => {
                    let xml = self
                        .migration
                        .list(&route, &fallback, &query, operation == "ListObjectsV2")
                        .await?;
                    return Ok(xml_response(StatusCode::OK, xml));
                }
                "DeleteObject" if !query.iter().any(|(n, _)| n == "versionId") => {
                    tombstoned_delete = Some(fallback);
                }
                "PutObject" => {
                    satisfied_by_old = self
                        .migration
                        .check_conditional_write(&route, &fallback, &key, &req.headers)
                        .await?;
                }
                _ => {}
            }
        }
        if matches!(operation, "CopyObject" | "UploadPartCopy")
            && let Some(source) = &copy_source
            && let Some(xml) = self
                .copy_from_another_provider(source, &req.headers, &route, &encoded_key, &query)
                .await?
        {
            if route.fallback.is_some() && operation == "CopyObject" {
                self.migration.after_write(&route, &key, operation).await;
            }
            return Ok(xml_response(StatusCode::OK, Bytes::from(xml)));
        }
        let mut headers = forward_headers(&req.headers, &route, copy_source.as_ref())?;
        for (name, value) in &checksum_params {
            headers.entry(name).or_insert_with(|| value.clone());
        }
        if satisfied_by_old {
            // The old copy matched If-Match; the new provider has no copy to match against.
            headers.remove(http::header::IF_MATCH);
        }
        let mut query = query;
        let withheld = translate_request_for(&route, operation, &mut headers, &mut query)?;
        let mut keeping = TrailerKeeping::for_request(&route, operation, &encoded_key);
        let body_check = BodyChecks {
            withheld: body_checksum_to_verify(operation, withheld, &mut headers),
            object_data: carries_object_data(operation),
            unforwarded_trailer: keeping.as_ref().map(TrailerKeeping::slot),
        };
        let encode_listing = encodes_listing_itself(&route, operation, &mut query);
        let mut relay = Relay::new(operation, &req.headers, encode_listing);
        relay.v2_via_v1 = lists_v2_via_v1(&route, operation, &mut query)?;
        let slot = FailureSlot::default();
        let mut outgoing = build_outgoing(req, &route, encoded_key, query, headers, &slot, body_check).await?;
        let profile = &route.provider.settings.profile;
        if operation == "CompleteMultipartUpload"
            && (profile.etag_case != EtagCase::Lower
                || profile.checksum_algorithms.len() < ChecksumAlgorithm::ALL.len())
        {
            translate_part_list(&mut outgoing, &route, &slot).await?;
        }
        if needs_content_md5(profile, operation, &outgoing) {
            let bytes = read_small_body(&mut outgoing, &route, &slot, operation).await?;
            set_content_md5(&mut outgoing, bytes)?;
        }
        if let Some(keeping) = &mut keeping {
            keeping.remember_sent(&outgoing.headers);
        }
        let response = match &tombstoned_delete {
            None => self.send(&route, outgoing, &slot, forwarding).await?,
            Some(fallback) => {
                let keys = std::slice::from_ref(&key);
                self.migration.tombstone_before_delete(&route, keys).await?;
                let sent = self.send(&route, outgoing, &slot, forwarding).await;
                let answer = DeleteAnswer::of_exchange(sent.as_ref().map(http::Response::status));
                self.migration.after_delete(&route, fallback, keys, answer).await;
                sent?
            }
        };
        if let Some(keeping) = keeping {
            keeping.keep_after(&route, &response).await;
        }
        if route.fallback.is_some() && writes_object(operation) && response.status().is_success() {
            self.migration.after_write(&route, &key, operation).await;
        }
        relay_response(response, &route, relay).await
    }

    /// Whether `who` may send this request (see `access`): the operation on its bucket and
    /// key, and a copy's source. Decided before the route is resolved, so a refused request
    /// learns nothing of the routes and reaches no provider. DeleteObjects is decided here for
    /// the bucket and again for each key once its body is read (`delete_objects`).
    fn authorize(
        &self,
        who: Identity<'_>,
        operation: &'static str,
        req: &S3Request<Body>,
        target: &ClientTarget,
        query: &[(String, String)],
    ) -> Result<Forwarding, GatewayError> {
        let bucket = target.bucket.as_deref().unwrap_or_default();
        let action = access::action_of(
            operation,
            &req.method,
            target_kind(target),
            query,
            access::sets_acl(&req.headers),
        );
        let object = if operation == "DeleteObjects" {
            Object::SomeKey
        } else {
            access::object_of(action, &target.key, query)
        };
        let forwarding = access::decide(&self.access, who, action, bucket, object)?;
        if let Some(source) = copy_source_of(&req.headers)? {
            access::decide(
                &self.access,
                who,
                Action::CopySource,
                &source.bucket,
                Object::Key(&source.key),
            )?;
        }
        Ok(forwarding)
    }

    /// Sends upstream (signed, or unsigned for `anonymous = "provider"`); a body that failed
    /// verification wins over whatever the provider said.
    async fn send(
        &self,
        route: &Route,
        outgoing: OutgoingRequest,
        slot: &FailureSlot,
        forwarding: Forwarding,
    ) -> Result<http::Response<hyper::body::Incoming>, GatewayError> {
        let sent = std::time::Instant::now();
        let result = match forwarding {
            Forwarding::Signed => route.provider.send(outgoing).await,
            Forwarding::Unsigned => route.provider.send_unsigned(outgoing).await,
        };
        // A client body that failed verification aborts the upstream request: that failure
        // is the client's, not the provider's, so it is not counted against the provider.
        if let Some(failure) = body::recorded_failure(slot) {
            return Err(upload_failure_error(failure));
        }
        let result = result.map_err(|e| e.into_gateway_error(&route.provider.settings));
        self.observe_upstream(&route.provider.settings.name, sent, result.as_ref().err());
        result
    }

    /// Upstream latency for an exchange that got response headers, else the error's kind.
    fn observe_upstream(&self, provider: &str, sent: std::time::Instant, error: Option<&GatewayError>) {
        match error.map(|e| e.upstream_error_kind()) {
            None => self.metrics.upstream_answered(provider, sent.elapsed()),
            Some(Some(kind)) => self.metrics.upstream_error(provider, kind),
            Some(None) => {}
        }
    }

    /// Requests without a bucket: only ListBuckets exists. It lists the buckets `who` has a
    /// grant on; an unsigned one is refused, as AWS refuses it.
    async fn answer_service_request(
        &self,
        method: &Method,
        who: Identity<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        if who == Identity::Anonymous {
            return Err(access::Denied.into());
        }
        if *method != Method::GET {
            return Err(GatewayError::NotImplemented(format!(
                "{method} on the service root is not an S3 operation s3ferry can route (no bucket given)"
            )));
        }
        let mut buckets = self.list_buckets().await?;
        buckets.retain(|b| self.access.lists_bucket(who, &b.name));
        let xml = rewrite::list_buckets::render_list_buckets(&buckets, "s3ferry");
        Ok(xml_response(StatusCode::OK, Bytes::from(xml)))
    }

    /// The client-visible buckets: every explicit route, plus what the `*` provider lists.
    async fn list_buckets(&self) -> Result<Vec<ListedBucket>, GatewayError> {
        let mut listed: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
        let mut wildcard_dates = std::collections::BTreeMap::new();
        if let Some(wild) = self.routes.wildcard() {
            let request = OutgoingRequest {
                method: Method::GET,
                bucket: None,
                encoded_key: String::new(),
                query: Vec::new(),
                headers: HeaderMap::new(),
                body: body::empty(),
                payload_hash: EMPTY_PAYLOAD_SHA256.into(),
            };
            let sent = std::time::Instant::now();
            let response = wild.send_collect(request, MAX_XML_BODY).await;
            self.observe_upstream(&wild.settings.name, sent, response.as_ref().err());
            let response = response?;
            if !response.status().is_success() {
                return Err(GatewayError::UpstreamProtocol {
                    provider: wild.settings.name.clone(),
                    cause: format!("ListBuckets answered {}", response.status()),
                });
            }
            let buckets = rewrite::list_buckets::parse_list_buckets(response.body()).map_err(|e| {
                GatewayError::UpstreamProtocol {
                    provider: wild.settings.name.clone(),
                    cause: e.to_string(),
                }
            })?;
            for b in buckets {
                if self.routes.wildcard_exposes(&b.name) {
                    listed.insert(b.name.clone(), b.creation_date.clone());
                }
                wildcard_dates.insert(b.name, b.creation_date);
            }
        }
        for (name, provider, upstream_bucket) in self.routes.explicit_buckets() {
            let on_wildcard = self.routes.wildcard().is_some_and(|w| Arc::ptr_eq(w, provider));
            let date = on_wildcard
                .then(|| wildcard_dates.get(upstream_bucket).cloned())
                .flatten();
            listed.insert(name.to_string(), date.unwrap_or_else(|| self.started.clone()));
        }
        Ok(listed
            .into_iter()
            .map(|(name, creation_date)| ListedBucket { name, creation_date })
            .collect())
    }

    /// The client's `x-amz-copy-source`, parsed and routed once per request: the source must be
    /// a key the client may name on the source's route.
    fn resolve_copy_source(&self, headers: &HeaderMap) -> Result<Option<ResolvedCopySource>, GatewayError> {
        let Some(source) = copy_source_of(headers)? else {
            return Ok(None);
        };
        let route = self.routes.resolve(&source.bucket)?;
        check_key(&route, &source.key)?;
        Ok(Some(ResolvedCopySource { source, route }))
    }

    /// CopyObject / UploadPartCopy whose source the destination provider cannot reach: on
    /// another provider, or only in the old provider of a bucket under migration. s3ferry
    /// streams the source through. `None`: a server-side copy at the provider does it.
    async fn copy_from_another_provider(
        &self,
        copy_source: &ResolvedCopySource,
        client_headers: &HeaderMap,
        route: &Route,
        encoded_key: &str,
        query: &[(String, String)],
    ) -> Result<Option<String>, GatewayError> {
        let ResolvedCopySource {
            source:
                CopySourceRef {
                    key,
                    version_id: version,
                    ..
                },
            route: source_route,
        } = copy_source;
        if let Some(fallback) = &source_route.fallback
            && version.is_none()
            && self.migration.source_only_in_old(source_route, fallback, key).await?
        {
            let from = CopySource {
                provider: &fallback.provider,
                bucket: &fallback.bucket,
                key,
                version_id: None,
            };
            return copy_through::copy_through(from, route, encoded_key, client_headers, upload_of(query))
                .await
                .map(Some);
        }
        let part_copy_by_provider = upload_of(query).is_none() || route.provider.settings.profile.upload_part_copy;
        if Arc::ptr_eq(&source_route.provider, &route.provider) && part_copy_by_provider {
            return Ok(None);
        }
        let from = CopySource {
            provider: &source_route.provider,
            bucket: &source_route.upstream_bucket,
            key,
            version_id: version.as_deref(),
        };
        copy_through::copy_through(from, route, encoded_key, client_headers, upload_of(query))
            .await
            .map(Some)
    }

    /// DeleteObjects: the (small) request body is read to learn the keys, and refused as AWS
    /// refuses it (not XML, more than 1,000 objects) before anything reaches a provider. Each
    /// key must be one a client may name (not s3ferry's own, no dot segments a provider would
    /// resolve). A body with CDATA goes on written again as plain text, so the provider deletes
    /// the keys s3ferry checked and tombstones. On a bucket under migration each key that names no version is tombstoned
    /// first, the same body goes to the provider, and its answer says which tombstones stay
    /// (see `migration::serve::DeleteAnswer`).
    async fn delete_objects(
        &self,
        req: S3Request<Body>,
        route: &Route,
        copy_source: Option<&ResolvedCopySource>,
        encoded_key: String,
        query: Vec<(String, String)>,
        (who, forwarding): (Identity<'_>, Forwarding),
    ) -> Result<S3Response<Body>, GatewayError> {
        let mut headers = forward_headers(&req.headers, route, copy_source)?;
        let mut query = query;
        let withheld = translate_request_for(route, "DeleteObjects", &mut headers, &mut query)?;
        let body_check = BodyChecks {
            withheld: body_checksum_to_verify("DeleteObjects", withheld, &mut headers),
            object_data: false,
            unforwarded_trailer: None,
        };
        let relay = Relay::new("DeleteObjects", &req.headers, false);
        let slot = FailureSlot::default();
        let mut outgoing = build_outgoing(req, route, encoded_key, query, headers, &slot, body_check).await?;
        let bytes = read_small_body(&mut outgoing, route, &slot, "DeleteObjects").await?;
        let request = rewrite::delete_objects::parse_delete_keys(&bytes)
            .map_err(|e| GatewayError::MalformedXml(e.to_string()))?;
        for entry in &request.entries {
            check_key(route, &entry.key)?;
        }
        // Every key must be one `who` may delete, or nothing is: AWS would answer each refused
        // key with its own `<Error>` entry and delete the others, but a request refused whole
        // never reaches the provider, which is simpler to reason about (README, "Who may do what").
        for entry in &request.entries {
            access::decide(
                &self.access,
                who,
                Action::ObjectChange,
                &route.client_bucket,
                Object::Key(&entry.key),
            )?;
        }
        let tombstoned: Vec<String> = match &route.fallback {
            Some(_) => {
                let unique: std::collections::BTreeSet<&str> =
                    request.unversioned_keys().filter(|k| !k.is_empty()).collect();
                unique.into_iter().map(str::to_string).collect()
            }
            None => Vec::new(),
        };
        // Held until the answer is relayed, as in `handle`.
        let _claims = match &route.fallback {
            Some(_) => {
                self.migration
                    .copier
                    .claim_all(&route.upstream_bucket, &tombstoned)
                    .await
            }
            None => Vec::new(),
        };
        if request.has_cdata {
            // Not every store reads CDATA (s3s skips it): the provider gets the keys s3ferry read.
            let plain = rewrite::delete_objects::render_delete_body(&request);
            replace_small_body(&mut outgoing, bytes, Bytes::from(plain))?;
        } else if needs_content_md5(&route.provider.settings.profile, "DeleteObjects", &outgoing) {
            set_content_md5(&mut outgoing, bytes)?;
        } else {
            outgoing.body = bytes.into_upstream_body();
        }
        let Some(fallback) = route.fallback.as_ref().filter(|_| !tombstoned.is_empty()) else {
            let response = self.send(route, outgoing, &slot, forwarding).await?;
            return relay_response(response, route, relay).await;
        };
        self.migration.tombstone_before_delete(route, &tombstoned).await?;
        let response = match self.send(route, outgoing, &slot, forwarding).await {
            Ok(response) => response,
            Err(e) => {
                let answer = DeleteAnswer::of_exchange(Err(&e));
                self.migration.after_delete(route, fallback, &tombstoned, answer).await;
                return Err(e);
            }
        };
        let (parts, incoming) = response.into_parts();
        // Unread, the answer leaves the tombstones in place: the provider may have deleted.
        let answer = route.provider.read_answer(incoming, MAX_XML_BODY).await?;
        let result = if parts.status.is_success() {
            let parsed = rewrite::delete_objects::parse_delete_result(&answer);
            if parsed.is_err() {
                // The reader's detail stays out: it can quote a key.
                tracing::warn!(bucket = %route.client_bucket, provider = %route.provider.settings.name, "the provider's DeleteObjects answer cannot be read; the tombstones stay");
            }
            parsed.ok()
        } else {
            None
        };
        let outcome = DeleteAnswer::Batch {
            status: parts.status,
            result: result.as_ref(),
        };
        self.migration.after_delete(route, fallback, &tombstoned, outcome).await;
        relay_read_response(http::Response::from_parts(parts, answer), route, relay).await
    }
}

#[async_trait::async_trait]
impl S3Route for Gateway {
    /// Every request that passed verification is proxied.
    fn is_match(&self, _: &Method, _: &http::Uri, _: &HeaderMap, _: &mut http::Extensions) -> bool {
        true
    }

    /// s3s's default refuses every request without credentials. Unsigned requests come through
    /// to [`Gateway::handle`], where `access::decide` refuses them unless their bucket is
    /// anonymous and the operation is one that allows.
    async fn check_access(&self, _: &mut S3Request<Body>) -> S3Result<()> {
        Ok(())
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        Ok(self.answer(req).await)
    }
}

impl Gateway {
    /// Refuses a bucket no route exposes (`NoSuchBucket`), as the request itself would be: lets a
    /// form upload be refused before its file is spooled.
    pub(crate) fn check_routed(&self, bucket: &str) -> Result<(), GatewayError> {
        self.routes.resolve(bucket).map(|_| ())
    }

    /// One verified request's answer, errors rendered as S3 errors. Form uploads
    /// (`post_upload`) come here too, as the PutObject they amount to.
    pub(crate) async fn answer(&self, req: S3Request<Body>) -> S3Response<Body> {
        let ctx = req
            .extensions
            .get::<RequestContext>()
            .cloned()
            .unwrap_or_else(|| RequestContext::new(crate::error::new_request_id()));
        let mut response = match self.handle(req, &ctx).await {
            Ok(response) => response,
            Err(err) => {
                match err.origin() {
                    crate::error::Origin::Client => {
                        tracing::debug!(request_id = %ctx.request_id, error = %err, "request refused")
                    }
                    _ => {
                        tracing::warn!(request_id = %ctx.request_id, error = %err, "request failed")
                    }
                }
                let (parts, bytes) = err.to_response(&ctx.request_id).into_parts();
                let mut r = S3Response::new(Body::from(bytes));
                r.status = Some(parts.status);
                r.headers = parts.headers;
                r
            }
        };
        response.extensions.insert(HandledByGateway);
        response
    }
}

/// Operations that write an object's data (create or replace the key).
fn writes_object(operation: &str) -> bool {
    matches!(operation, "PutObject" | "CopyObject" | "CompleteMultipartUpload")
}

/// Operations that create, replace or delete a key: on a bucket under migration they claim it
/// against background copies.
fn changes_object(operation: &str) -> bool {
    writes_object(operation) || operation == "DeleteObject"
}

/// `(partNumber, uploadId)` of an UploadPartCopy.
fn upload_of(query: &[(String, String)]) -> Option<(String, String)> {
    let get = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    Some((get("partNumber")?, get("uploadId")?))
}

/// An `x-amz-copy-source` with the route of its bucket.
struct ResolvedCopySource {
    source: CopySourceRef,
    route: Route,
}

/// The client's headers minus what must not travel, with `x-amz-copy-source` pointing at the
/// source's upstream bucket. The edge has already kept only what the client signed
/// (`auth::boundary`); what is left to drop here is this hop's framing and signature, and what
/// `Connection` names as hop-by-hop.
fn forward_headers(
    client: &HeaderMap,
    route: &Route,
    copy_source: Option<&ResolvedCopySource>,
) -> Result<HeaderMap, GatewayError> {
    let hop_by_hop = connection_tokens(client);
    let mut headers = HeaderMap::with_capacity(client.len());
    for (name, value) in client {
        let n = name.as_str();
        if DROPPED_REQUEST_HEADERS.contains(&n) || hop_by_hop.iter().any(|t| t == n) {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    if let Some(ResolvedCopySource {
        source,
        route: source_route,
    }) = copy_source
    {
        debug_assert!(
            Arc::ptr_eq(&source_route.provider, &route.provider),
            "cross-provider copies go through copy_through"
        );
        let value = HeaderValue::from_str(&source.header_value(&source_route.upstream_bucket))
            .map_err(|_| GatewayError::InvalidArgument("x-amz-copy-source is not valid text".into()))?;
        headers.insert("x-amz-copy-source", value);
    }
    Ok(headers)
}

/// The client's `x-amz-copy-source`, parsed once (`None` when the request has none).
fn copy_source_of(headers: &HeaderMap) -> Result<Option<CopySourceRef>, GatewayError> {
    let Some(value) = headers.get("x-amz-copy-source") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| GatewayError::InvalidArgument("x-amz-copy-source is not valid text".into()))?;
    parse_copy_source(text).map(Some)
}

/// A key the client may name on `route`: never one of s3ferry's own, and with `.`/`..`
/// segments only where every provider it may reach (the route's, and a migration's old one)
/// stores them literally.
fn check_key(route: &Route, key: &str) -> Result<(), GatewayError> {
    refuse_reserved(key)?;
    if !crate::target::has_dot_segment(key) {
        // Almost every key: nothing to check per provider (DeleteObjects asks up to 1,000 times).
        return Ok(());
    }
    let mut providers = vec![&route.provider.settings];
    if let Some(fallback) = &route.fallback {
        providers.push(&fallback.provider.settings);
    }
    refuse_dot_segments(key, &providers)
}

/// The client's query pairs without its presigned-URL signature parameters. An empty
/// `delimiter=` means "no delimiter" to S3, but some stores (s3s-fs) take it for a real, empty
/// delimiter and answer with nothing but common prefixes, so it is not forwarded.
fn forwarded_query(raw: Option<&str>) -> Vec<(String, String)> {
    parse_query(raw.unwrap_or(""))
        .into_iter()
        .filter(|(name, value)| {
            let signature_param = PRESIGN_PARAMS.contains(&name.as_str());
            let empty_delimiter = name == "delimiter" && value.is_empty();
            !(signature_param || empty_delimiter)
        })
        .collect()
}

fn classify(method: &Method, target: &ClientTarget, query: &[(String, String)], has_copy_source: bool) -> &'static str {
    operation::classify(method, target_kind(target), query, has_copy_source)
}

fn target_kind(target: &ClientTarget) -> Target {
    match (&target.bucket, target.key.is_empty()) {
        (None, _) => Target::Service,
        (Some(_), true) => Target::Bucket,
        (Some(_), false) => Target::Object,
    }
}

/// The client's headers and query in the provider's dialect (ACLs, storage class, ETag case,
/// conditional writes, checksum headers, headers and parameters the provider rejects). Returns
/// the client checksum the provider will not see.
fn translate_request_for(
    route: &Route,
    operation: &str,
    headers: &mut HeaderMap,
    query: &mut Vec<(String, String)>,
) -> Result<Option<WithheldChecksum>, GatewayError> {
    let settings = &route.provider.settings;
    Ok(translate::translate_request(
        &settings.profile,
        &settings.name,
        operation,
        headers,
        query,
    )?)
}

/// An operation the provider's dialect says it does not implement: a clear 501 naming the
/// provider, and the override that lifts it if the provider has gained it.
fn refuse_unsupported_operation(route: &Route, operation: &str) -> Result<(), GatewayError> {
    let settings = &route.provider.settings;
    if settings.profile.unsupported_operations.iter().any(|o| o == operation) {
        return Err(GatewayError::NotImplemented(format!(
            "{operation} is not supported by provider '{}' (dialect {}); if it is now, remove it from \
             dialect_overrides.unsupported_operations",
            settings.name, settings.profile.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presign_parameters_are_not_forwarded() {
        let q = forwarded_query(Some("X-Amz-Signature=abc&X-Amz-Date=1&versionId=v1&uploads&delimiter="));
        assert_eq!(
            q,
            vec![
                ("versionId".to_string(), "v1".to_string()),
                ("uploads".to_string(), String::new())
            ]
        );
    }
}
