//! The request lifecycle after verification: route, translate, sign, send, rewrite.
//!
//! s3s has already verified who signed the request (and wraps the body in verifying streams);
//! it hands every request to [`Gateway`] as a catch-all custom route. [`Gateway::handle`] reads
//! top-down, one step per line.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result};

use crate::access_log::{HandledByGateway, RequestContext};
use crate::acl_answer;
use crate::body::{
    self, ChecksumCheck, ExpectedChecksum, FailureSlot, HoldBackLast, IdleTimeoutBody, UnsignedTrailerBody,
    UploadFailure,
};
use crate::checksum::{ChecksumAlgorithm, STORED_CHECKSUM_PREFIX};
use crate::config::SignatureVersion;
use crate::copy_through::{self, CopySource};
use crate::dialect::translate::{self, WithheldChecksum};
use crate::dialect::{DialectProfile, EtagCase};
use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::migration::serve::{Migration, ReadRequest};
use crate::migration::tombstone::{RESERVED_PREFIX, is_reserved};
use crate::operation::{self, Target};
use crate::rewrite::{self, MAX_XML_BODY, list_buckets::ListedBucket, list_v2_via_v1};
use crate::route::{FallbackRoute, Route, RouteTable};
use crate::upstream::sign::{EMPTY_PAYLOAD_SHA256, STREAMING_UNSIGNED_PAYLOAD_TRAILER, UNSIGNED_PAYLOAD};
use crate::upstream::url::{parse_query, percent_decode, uri_encode};
use crate::upstream::{self, OutgoingRequest};

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

/// Request headers that describe `aws-chunked` framing; dropped when s3ferry de-chunks.
const CHUNKED_FRAMING_HEADERS: &[&str] = &[
    "x-amz-decoded-content-length",
    "x-amz-trailer",
    "x-amz-sdk-checksum-algorithm",
];

/// Response headers that are not relayed (hop-by-hop).
const DROPPED_RESPONSE_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

/// The gateway: the routing table plus what it needs to answer service-level requests.
pub struct Gateway {
    routes: RouteTable,
    domain: Option<String>,
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

/// What the client addressed: a bucket (maybe) and the key as the client encoded it.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientTarget {
    pub bucket: Option<String>,
    pub raw_key: String,
}

/// How the client's body travels upstream.
enum Framing {
    /// No body.
    Empty,
    /// The client's bytes unchanged, with the payload hash to pass on.
    Unchanged { payload_hash: String, length: u64 },
    /// De-chunked `aws-chunked` body of `length` decoded bytes, checked before its last byte.
    Dechunked {
        length: u64,
        trailer: Option<ChecksumAlgorithm>,
    },
}

impl Gateway {
    pub fn new(routes: RouteTable, domain: Option<String>, migration: Migration, metrics: Arc<Metrics>) -> Self {
        let started = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into());
        Self {
            routes,
            domain,
            migration,
            metrics,
            started,
        }
    }

    /// The whole lifecycle of one verified request.
    async fn handle(&self, req: S3Request<Body>, ctx: &RequestContext) -> Result<S3Response<Body>, GatewayError> {
        let target = parse_client_target(&req.uri, &req.headers, self.domain.as_deref())?;
        let (query, checksum_params) = checksum_params_as_headers(forwarded_query(req.uri.query()));
        let operation = classify(
            &req.method,
            &target,
            &query,
            req.headers.contains_key("x-amz-copy-source"),
        );
        ctx.record(|f| {
            f.client_key_id = req.credentials.as_ref().map(|c| c.access_key.clone());
            f.operation = operation;
            f.bucket.clone_from(&target.bucket);
        });
        let Some(bucket) = target.bucket.as_deref() else {
            return self.answer_service_request(&req.method).await;
        };
        let route = self.routes.resolve(bucket)?;
        ctx.record(|f| f.upstream = Some(route.provider.settings.name.clone()));
        refuse_unsupported_operation(&route, operation)?;
        // The key is decoded once: kept readable for migration, and canonically encoded for the
        // provider (what is sent is what is signed).
        let key_bytes = percent_decode(&target.raw_key);
        let key = String::from_utf8_lossy(&key_bytes).into_owned();
        let encoded_key = uri_encode(&key_bytes, true);
        let mut req = req;
        if let Some(answer) = acl_answer::answer_or_rewrite(&mut req, &route, operation, &key).await? {
            return Ok(answer);
        }
        let mut satisfied_by_old = false;
        if let Some(fallback) = route.fallback.clone() {
            if is_reserved(&key) {
                return Err(GatewayError::AccessDenied(format!(
                    "keys under {RESERVED_PREFIX} hold s3ferry's migration state and are not accessible"
                )));
            }
            match operation {
                "GetObject" | "HeadObject" => {
                    let relay = Relay::new(operation, &req.headers, false);
                    let headers = self.forward_headers(&req.headers, &route)?;
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
                    self.migration
                        .before_delete(&route, &fallback, std::slice::from_ref(&key))
                        .await?;
                }
                "DeleteObjects" => {
                    return self
                        .delete_objects_migrating(req, &route, &fallback, encoded_key, query)
                        .await;
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
            && let Some(xml) = self
                .copy_from_another_provider(&req.headers, &route, &encoded_key, &query)
                .await?
        {
            return Ok(xml_response(StatusCode::OK, Bytes::from(xml)));
        }
        let mut headers = self.forward_headers(&req.headers, &route)?;
        for (name, value) in &checksum_params {
            headers.entry(name).or_insert_with(|| value.clone());
        }
        if satisfied_by_old {
            // The old copy matched If-Match; the new provider has no copy to match against.
            headers.remove(http::header::IF_MATCH);
        }
        let mut query = query;
        let withheld = translate_request_for(&route, operation, &mut headers, &mut query)?;
        let keeps_trailer = operation == "PutObject" && route.provider.settings.profile.trailing_checksums_by_copy;
        let body_check = BodyChecks {
            withheld: body_checksum_to_verify(operation, withheld, &mut headers),
            object_data: carries_object_data(operation),
            unforwarded_trailer: keeps_trailer.then(body::VerifiedSlot::default),
        };
        let unforwarded_trailer = body_check.unforwarded_trailer.clone();
        let encode_listing = encodes_listing_itself(&route, operation, &mut query);
        let mut relay = Relay::new(operation, &req.headers, encode_listing);
        relay.v2_via_v1 = lists_v2_via_v1(&route, operation, &mut query)?;
        let slot = FailureSlot::default();
        let encoded_key_for_copy = if unforwarded_trailer.is_some() {
            encoded_key.clone()
        } else {
            String::new()
        };
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
        let sent_headers = unforwarded_trailer.is_some().then(|| outgoing.headers.clone());
        let response = self.send(&route, outgoing, &slot).await?;
        if let (Some(verified), Some(sent_headers)) = (unforwarded_trailer, sent_headers)
            && response.status().is_success()
        {
            let checksum = verified.lock().ok().and_then(|mut g| g.take());
            if let Some(checksum) = checksum {
                keep_trailing_checksum_by_copy(
                    &route,
                    &encoded_key_for_copy,
                    &sent_headers,
                    response.headers(),
                    checksum,
                )
                .await;
            }
        }
        relay_response(response, &route, relay).await
    }

    /// Sends upstream; a body that failed verification wins over whatever the provider said.
    async fn send(
        &self,
        route: &Route,
        outgoing: OutgoingRequest,
        slot: &FailureSlot,
    ) -> Result<http::Response<hyper::body::Incoming>, GatewayError> {
        let sent = std::time::Instant::now();
        let result = route.provider.send(outgoing).await;
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

    /// Requests without a bucket: only ListBuckets exists.
    async fn answer_service_request(&self, method: &Method) -> Result<S3Response<Body>, GatewayError> {
        if *method != Method::GET {
            return Err(GatewayError::NotImplemented(format!(
                "{method} on the service root is not an S3 operation s3ferry can route (no bucket given)"
            )));
        }
        let buckets = self.list_buckets().await?;
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

    /// The client's headers minus what must not travel, with `x-amz-copy-source` pointing at
    /// the source's upstream bucket.
    fn forward_headers(&self, client: &HeaderMap, route: &Route) -> Result<HeaderMap, GatewayError> {
        let connection_tokens: Vec<String> = client
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
            .collect();
        let mut headers = HeaderMap::with_capacity(client.len());
        for (name, value) in client {
            let n = name.as_str();
            if DROPPED_REQUEST_HEADERS.contains(&n) || connection_tokens.iter().any(|t| t == n) {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
        if let Some(source) = client.get("x-amz-copy-source") {
            let source = source
                .to_str()
                .map_err(|_| GatewayError::InvalidRequest("x-amz-copy-source is not valid text".into()))?;
            let rewritten = self.rewrite_copy_source(source, route)?;
            let value = HeaderValue::from_str(&rewritten)
                .map_err(|_| GatewayError::InvalidRequest("x-amz-copy-source is not valid text".into()))?;
            headers.insert("x-amz-copy-source", value);
        }
        Ok(headers)
    }

    /// CopyObject / UploadPartCopy whose source the destination provider cannot reach: on
    /// another provider, or only in the old provider of a bucket under migration. s3ferry
    /// streams the source through. `None`: a server-side copy at the provider does it.
    async fn copy_from_another_provider(
        &self,
        client_headers: &HeaderMap,
        route: &Route,
        encoded_key: &str,
        query: &[(String, String)],
    ) -> Result<Option<String>, GatewayError> {
        let Some(source) = client_headers.get("x-amz-copy-source").and_then(|v| v.to_str().ok()) else {
            return Ok(None);
        };
        let (bucket, key, version) = copy_through::parse_copy_source(source)?;
        let source_route = self.routes.resolve(&bucket)?;
        if let Some(fallback) = &source_route.fallback
            && version.is_none()
            && self.migration.source_only_in_old(&source_route, fallback, &key).await?
        {
            let from = CopySource {
                provider: &fallback.provider,
                bucket: &fallback.bucket,
                key: &key,
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
            key: &key,
            version_id: version.as_deref(),
        };
        copy_through::copy_through(from, route, encoded_key, client_headers, upload_of(query))
            .await
            .map(Some)
    }

    /// DeleteObjects on a bucket under migration: the (small) request body is read to learn
    /// the keys, each gets its tombstone (or is deleted at the old provider), then the same body
    /// goes to the new provider.
    async fn delete_objects_migrating(
        &self,
        req: S3Request<Body>,
        route: &Route,
        fallback: &FallbackRoute,
        encoded_key: String,
        query: Vec<(String, String)>,
    ) -> Result<S3Response<Body>, GatewayError> {
        let mut headers = self.forward_headers(&req.headers, route)?;
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
        let keys = rewrite::delete_objects::parse_delete_keys(&bytes)
            .map_err(|e| GatewayError::InvalidRequest(format!("malformed DeleteObjects body: {e}")))?;
        self.migration.before_delete(route, fallback, &keys).await?;
        if needs_content_md5(&route.provider.settings.profile, "DeleteObjects", &outgoing) {
            set_content_md5(&mut outgoing, bytes)?;
        } else {
            outgoing.body = body::full(bytes);
        }
        let response = self.send(route, outgoing, &slot).await?;
        relay_response(response, route, relay).await
    }

    /// `x-amz-copy-source: /<client bucket>/<key>[?versionId=..]` -> the source's upstream bucket.
    fn rewrite_copy_source(&self, value: &str, destination: &Route) -> Result<String, GatewayError> {
        let trimmed = value.strip_prefix('/').unwrap_or(value);
        let (bucket_raw, rest) = trimmed.split_once('/').ok_or_else(|| {
            GatewayError::InvalidRequest(format!("x-amz-copy-source '{value}' must be <bucket>/<key>"))
        })?;
        let bucket = String::from_utf8_lossy(&percent_decode(bucket_raw)).into_owned();
        let source = self.routes.resolve(&bucket)?;
        debug_assert!(
            Arc::ptr_eq(&source.provider, &destination.provider),
            "cross-provider copies go through copy_through"
        );
        Ok(format!("/{}/{rest}", source.upstream_bucket))
    }
}

#[async_trait::async_trait]
impl S3Route for Gateway {
    /// Every request that passed verification is proxied.
    fn is_match(&self, _: &Method, _: &http::Uri, _: &HeaderMap, _: &mut http::Extensions) -> bool {
        true
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
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
        Ok(response)
    }
}

/// `(partNumber, uploadId)` of an UploadPartCopy.
fn upload_of(query: &[(String, String)]) -> Option<(String, String)> {
    let get = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    Some((get("partNumber")?, get("uploadId")?))
}

/// Finds the bucket and key: virtual-hosted style when the Host is `<bucket>.<domain>`,
/// path style otherwise.
pub fn parse_client_target(
    uri: &http::Uri,
    headers: &HeaderMap,
    domain: Option<&str>,
) -> Result<ClientTarget, GatewayError> {
    let path = uri.path();
    let rest = path.strip_prefix('/').unwrap_or(path);
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    if let (Some(domain), Some(host)) = (domain, host)
        && let Some(bucket) = virtual_host_bucket(host, domain)
    {
        return Ok(ClientTarget {
            bucket: Some(bucket),
            raw_key: rest.to_string(),
        });
    }
    if rest.is_empty() {
        return Ok(ClientTarget {
            bucket: None,
            raw_key: String::new(),
        });
    }
    let (bucket_raw, key) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket = String::from_utf8(percent_decode(bucket_raw))
        .map_err(|_| GatewayError::InvalidUri("the bucket name is not valid UTF-8".into()))?;
    Ok(ClientTarget {
        bucket: Some(bucket),
        raw_key: key.to_string(),
    })
}

/// `<bucket>.<domain>[:port]` -> `bucket` (case-insensitive domain match).
pub fn virtual_host_bucket(host: &str, domain: &str) -> Option<String> {
    let host_only = match host.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let lower = host_only.to_ascii_lowercase();
    let bucket = lower.strip_suffix(domain)?.strip_suffix('.')?;
    (!bucket.is_empty()).then(|| bucket.to_string())
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

/// Checksum parameters in the query (presigned URLs of some SDKs carry `x-amz-checksum-crc32`
/// and `x-amz-sdk-checksum-algorithm` there, dialects.md rule 29) taken out of it: they are
/// handled as the headers they stand for, checked by the provider or by s3ferry per dialect,
/// so a value that does not match the body is `BadDigest`, as on AWS.
fn checksum_params_as_headers(query: Vec<(String, String)>) -> (Vec<(String, String)>, HeaderMap) {
    let (params, rest): (Vec<_>, Vec<_>) = query.into_iter().partition(|(name, _)| {
        let lower = name.to_ascii_lowercase();
        ChecksumAlgorithm::from_header_name(&lower).is_some() || lower == "x-amz-sdk-checksum-algorithm"
    });
    let headers = params
        .into_iter()
        .filter_map(|(name, value)| {
            let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok()?;
            Some((name, HeaderValue::from_str(&value).ok()?))
        })
        .collect();
    (rest, headers)
}

fn classify(method: &Method, target: &ClientTarget, query: &[(String, String)], has_copy_source: bool) -> &'static str {
    let kind = match (&target.bucket, target.raw_key.is_empty()) {
        (None, _) => Target::Service,
        (Some(_), true) => Target::Bucket,
        (Some(_), false) => Target::Object,
    };
    operation::classify(method, kind, query, has_copy_source)
}

/// How the body must travel, from the client's `x-amz-content-sha256` and framing headers.
fn framing_of(headers: &HeaderMap) -> Result<Framing, GatewayError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let content_sha = header("x-amz-content-sha256").unwrap_or(UNSIGNED_PAYLOAD);
    if content_sha.starts_with("STREAMING-") {
        let length = header("x-amz-decoded-content-length")
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| {
                GatewayError::InvalidRequest("aws-chunked upload without x-amz-decoded-content-length".into())
            })?;
        let trailer = match header("x-amz-trailer") {
            None => None,
            Some(name) => Some(ChecksumAlgorithm::from_header_name(name).ok_or_else(|| {
                GatewayError::InvalidRequest(format!(
                    "unsupported trailer '{name}': only x-amz-checksum-* trailers exist"
                ))
            })?),
        };
        return Ok(Framing::Dechunked { length, trailer });
    }
    let length = header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if length == 0 {
        return Ok(Framing::Empty);
    }
    let payload_hash = if content_sha.len() == 64 && content_sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        content_sha.to_ascii_lowercase()
    } else {
        UNSIGNED_PAYLOAD.to_string()
    };
    Ok(Framing::Unchanged { payload_hash, length })
}

/// Assembles the upstream request: address, query, headers and the body in its upstream form.
async fn build_outgoing(
    req: S3Request<Body>,
    route: &Route,
    encoded_key: String,
    query: Vec<(String, String)>,
    mut headers: HeaderMap,
    slot: &FailureSlot,
    body_check: BodyChecks,
) -> Result<OutgoingRequest, GatewayError> {
    let framing = framing_of(&req.headers)?;
    let header_check = body_check
        .withheld
        .map(|w| ChecksumCheck::new(w.algorithm, ExpectedChecksum::Header(w.value)));
    let (body, payload_hash) = match framing {
        Framing::Empty => {
            let payload = if req.method == Method::GET || req.method == Method::HEAD || req.method == Method::DELETE {
                EMPTY_PAYLOAD_SHA256
            } else {
                // A 0-byte PUT signed with UNSIGNED-PAYLOAD by the client stays unsigned.
                match req.headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok()) {
                    Some(h) if h.len() == 64 => EMPTY_PAYLOAD_SHA256,
                    _ => UNSIGNED_PAYLOAD,
                }
            };
            if req.method == Method::PUT || req.method == Method::POST {
                headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
            }
            if let Some(check) = header_check {
                verify_empty_upload(HoldBackLast::new(req.input, Some(check), slot.clone()), slot).await?;
            }
            (body::empty(), payload.to_string())
        }
        Framing::Unchanged { payload_hash, length } => {
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(length));
            let body = match header_check {
                // Checked by s3ferry: the last piece waits for the checksum to match.
                Some(check) => HoldBackLast::new(req.input, Some(check), slot.clone()).into_upstream_body(),
                None => body::verified_passthrough(req.input, slot.clone()),
            };
            (body, payload_hash)
        }
        Framing::Dechunked { length, trailer } => {
            let check = match (trailer, req.trailing_headers.clone()) {
                (Some(_), _) if header_check.is_some() => {
                    return Err(GatewayError::InvalidRequest(
                        "Expecting a single x-amz-checksum- header: send the checksum as a header or as a trailer, not both"
                            .into(),
                    ));
                }
                (Some(algorithm), Some(trailers)) => {
                    Some(ChecksumCheck::new(algorithm, ExpectedChecksum::Trailer(trailers)))
                }
                (Some(_), None) => {
                    return Err(GatewayError::Internal(
                        "trailing checksum announced but no trailer handle".into(),
                    ));
                }
                (None, _) => header_check,
            };
            let mut held = HoldBackLast::new(req.input, check, slot.clone());
            let forwarded =
                trailer.filter(|a| body_check.object_data && forwards_trailer(&route.provider.settings, *a, &headers));
            if let Some(algorithm) = forwarded {
                // The provider stores the checksum: the trailer goes on, after it verified.
                set_unsigned_trailer_framing(&mut headers, length, algorithm);
                let body = UnsignedTrailerBody::new(held, algorithm, length).into_upstream_body();
                (body, STREAMING_UNSIGNED_PAYLOAD_TRAILER.to_string())
            } else {
                if let (Some(report), Some(_)) = (body_check.unforwarded_trailer, trailer) {
                    held = held.reporting_to(report);
                }
                strip_chunked_framing(&mut headers);
                headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(length));
                let body = if length == 0 {
                    verify_empty_upload(held, slot).await?
                } else {
                    held.into_upstream_body()
                };
                (body, UNSIGNED_PAYLOAD.to_string())
            }
        }
    };
    Ok(OutgoingRequest {
        method: req.method,
        bucket: Some(route.upstream_bucket.clone()),
        encoded_key,
        query,
        headers,
        body,
        payload_hash,
    })
}

/// An empty de-chunked body has no last byte to hold back: it is verified completely (it is
/// only framing and a trailer) before anything is sent.
async fn verify_empty_upload(held: HoldBackLast, slot: &FailureSlot) -> Result<body::UpstreamBody, GatewayError> {
    use futures_util::StreamExt as _;
    let mut held = held;
    while let Some(piece) = held.next().await {
        if piece.is_err() {
            let failure = body::recorded_failure(slot).unwrap_or(UploadFailure::Incomplete);
            return Err(upload_failure_error(failure));
        }
    }
    Ok(body::empty())
}

/// Whether a client's verified `algorithm` trailer goes on to the provider (dialects.md rule
/// 10c): it takes unsigned-trailer uploads and the algorithm, signs with SigV4 (SigV2 knows no
/// aws-chunked), and gets no `x-amz-checksum-*` header besides (AWS refuses both together).
fn forwards_trailer(settings: &upstream::UpstreamSettings, algorithm: ChecksumAlgorithm, headers: &HeaderMap) -> bool {
    let profile = &settings.profile;
    settings.signature == SignatureVersion::V4
        && profile.unsigned_trailer
        && profile.checksum_algorithms.contains(&algorithm)
        && !headers
            .keys()
            .any(|n| ChecksumAlgorithm::from_header_name(n.as_str()).is_some())
}

/// The headers of an `aws-chunked` body with an unsigned `algorithm` trailer, framed by
/// [`UnsignedTrailerBody`]: `aws-chunked` first in Content-Encoding (other encodings kept after
/// it), the decoded length, the trailer's name, and the exact encoded Content-Length.
fn set_unsigned_trailer_framing(headers: &mut HeaderMap, decoded_length: u64, algorithm: ChecksumAlgorithm) {
    strip_chunked_framing(headers);
    let encoding = match headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        Some(rest) => HeaderValue::from_str(&format!("aws-chunked,{rest}"))
            .unwrap_or_else(|_| HeaderValue::from_static("aws-chunked")),
        None => HeaderValue::from_static("aws-chunked"),
    };
    headers.insert(http::header::CONTENT_ENCODING, encoding);
    headers.insert("x-amz-decoded-content-length", HeaderValue::from(decoded_length));
    headers.insert("x-amz-trailer", HeaderValue::from_static(algorithm.header_name()));
    // What SDKs send with a trailer; some stores (s3s-fs, moto) read the algorithm from it.
    headers.insert(
        "x-amz-sdk-checksum-algorithm",
        HeaderValue::from_static(algorithm.sdk_name()),
    );
    let encoded = body::unsigned_trailer_encoded_length(decoded_length, algorithm);
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(encoded));
}

/// Removes `aws-chunked` from Content-Encoding and the chunked-framing headers.
fn strip_chunked_framing(headers: &mut HeaderMap) {
    for name in CHUNKED_FRAMING_HEADERS {
        headers.remove(*name);
    }
    if let Some(value) = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        let rest: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
            .collect();
        if rest.is_empty() {
            headers.remove(http::header::CONTENT_ENCODING);
        } else if let Ok(v) = HeaderValue::from_str(&rest.join(",")) {
            headers.insert(http::header::CONTENT_ENCODING, v);
        }
    }
}

/// The S3 error for an upload body that failed while it streamed.
fn upload_failure_error(failure: UploadFailure) -> GatewayError {
    match failure {
        UploadFailure::PayloadHashMismatch => GatewayError::ContentSha256Mismatch,
        UploadFailure::ChunkSignatureMismatch => GatewayError::ChunkSignatureMismatch,
        UploadFailure::ChecksumMismatch { algorithm } => GatewayError::BadDigest(format!(
            "the {} trailer does not match the uploaded data",
            algorithm.header_name()
        )),
        UploadFailure::MissingTrailer { header } => {
            GatewayError::InvalidRequest(format!("the announced trailer {header} was not sent"))
        }
        UploadFailure::Incomplete => GatewayError::IncompleteBody,
        UploadFailure::Malformed(detail) => {
            GatewayError::InvalidRequest(format!("malformed aws-chunked body: {detail}"))
        }
        UploadFailure::Io(detail) => {
            tracing::debug!(%detail, "client body ended with an error");
            GatewayError::IncompleteBody
        }
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

/// What s3ferry checks in a client's body, and what may go on to the provider.
struct BodyChecks {
    /// A client checksum header the provider does not get, checked against the body by s3ferry.
    withheld: Option<WithheldChecksum>,
    /// The body is object data, so a verified trailing checksum may go on to the provider
    /// re-framed. Other bodies stay plain: s3ferry may read them back (CompleteMultipartUpload,
    /// DeleteObjects).
    object_data: bool,
    /// Where a verified trailing checksum that does not go on to the provider is reported, so
    /// s3ferry can keep it afterwards (`trailing_checksums_by_copy`).
    unforwarded_trailer: Option<body::VerifiedSlot>,
}

/// Request headers a metadata-replacing copy must send again: `x-amz-metadata-directive:
/// REPLACE` replaces all of them.
const OBJECT_HEADERS: &[&str] = &[
    "content-type",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
    "x-amz-storage-class",
    "x-amz-acl",
    "x-amz-website-redirect-location",
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-context",
    "x-amz-server-side-encryption-bucket-key-enabled",
];

/// Keeps a verified trailing checksum the provider could not take: the object just uploaded
/// is copied onto itself, only if it is still the same object (`x-amz-copy-source-if-match`),
/// with the checksum in its metadata. The upload stands either way; a failed copy only means
/// the checksum is not kept, which is logged.
async fn keep_trailing_checksum_by_copy(
    route: &Route,
    encoded_key: &str,
    sent: &HeaderMap,
    response: &HeaderMap,
    (algorithm, value): (ChecksumAlgorithm, String),
) {
    let settings = &route.provider.settings;
    let Some(etag) = response.get(http::header::ETAG).cloned() else {
        return;
    };
    if sent.contains_key("x-amz-server-side-encryption-customer-key") {
        return; // a copy would need the customer key for both sides; not worth the risk
    }
    let mut headers = HeaderMap::new();
    for (name, value) in sent {
        let n = name.as_str();
        let native_class = settings.profile.native_storage_class_header.as_deref() == Some(n);
        if OBJECT_HEADERS.contains(&n) || n.starts_with("x-amz-meta-") || n.starts_with("x-amz-grant-") || native_class
        {
            headers.append(name.clone(), value.clone());
        }
    }
    let (Ok(name), Ok(stored), Ok(source)) = (
        HeaderName::from_bytes(algorithm.stored_header_name().as_bytes()),
        HeaderValue::from_str(&value),
        HeaderValue::from_str(&format!("/{}/{encoded_key}", route.upstream_bucket)),
    ) else {
        return;
    };
    headers.insert(name, stored);
    headers.insert("x-amz-metadata-directive", HeaderValue::from_static("REPLACE"));
    headers.insert("x-amz-copy-source", source);
    headers.insert("x-amz-copy-source-if-match", etag);
    let copy = OutgoingRequest {
        method: Method::PUT,
        bucket: Some(route.upstream_bucket.clone()),
        encoded_key: encoded_key.to_string(),
        query: Vec::new(),
        headers,
        body: body::empty(),
        payload_hash: EMPTY_PAYLOAD_SHA256.to_string(),
    };
    match route.provider.send_collect(copy, MAX_XML_BODY).await {
        // S3 may answer a copy with 200 and an <Error> document.
        Ok(r) if r.status().is_success() && crate::error::parse_error_code(r.body()).is_none() => {}
        Ok(r) => tracing::warn!(
            provider = %settings.name,
            status = %r.status(),
            "the upload stands, but its trailing checksum could not be kept (metadata copy refused)"
        ),
        Err(e) => {
            tracing::warn!(provider = %settings.name, error = %e, "the upload stands, but its trailing checksum could not be kept")
        }
    }
}

/// Operations whose body is the object's data.
fn carries_object_data(operation: &str) -> bool {
    matches!(operation, "PutObject" | "UploadPart")
}

/// Operations whose `x-amz-checksum-*` header is the checksum of the request body itself (for
/// CompleteMultipartUpload and copies it describes the object, not the body).
fn checksum_describes_body(operation: &str) -> bool {
    carries_object_data(operation) || operation::requires_checksum(operation)
}

/// A withheld client checksum that s3ferry must check against the body it streams. For
/// PutObject it is also kept in the object's metadata, so reads with `x-amz-checksum-mode`
/// can report it although the provider cannot.
fn body_checksum_to_verify(
    operation: &str,
    withheld: Option<WithheldChecksum>,
    headers: &mut HeaderMap,
) -> Option<WithheldChecksum> {
    let withheld = withheld.filter(|_| checksum_describes_body(operation))?;
    if operation == "PutObject"
        && let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(withheld.algorithm.stored_header_name().as_bytes()),
            HeaderValue::from_str(&withheld.value),
        )
    {
        headers.insert(name, value);
    }
    Some(withheld)
}

/// Whether s3ferry must add `Content-MD5`: an operation that requires a checksum, on a provider
/// that wants MD5 there, with a body and without the client's own MD5.
fn needs_content_md5(profile: &DialectProfile, operation: &str, outgoing: &OutgoingRequest) -> bool {
    let has_body = outgoing
        .headers
        .get(http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0");
    profile.content_md5_required
        && operation::requires_checksum(operation)
        && has_body
        && !outgoing.headers.contains_key("content-md5")
}

/// Reads a small request body (an XML control document) into memory, with a cap; a body that
/// failed verification reports that failure.
async fn read_small_body(
    outgoing: &mut OutgoingRequest,
    route: &Route,
    slot: &FailureSlot,
    operation: &str,
) -> Result<Bytes, GatewayError> {
    const MAX_CONTROL_BODY: usize = 4 * 1024 * 1024;
    let body = std::mem::replace(&mut outgoing.body, body::empty());
    upstream::collect_capped(body, MAX_CONTROL_BODY, route.provider.settings.read_timeout)
        .await
        .map_err(|cause| match body::recorded_failure(slot) {
            Some(failure) => upload_failure_error(failure),
            None => GatewayError::InvalidRequest(format!("cannot read the {operation} body: {cause}")),
        })
}

/// Replaces the body with `bytes`, signed with their SHA-256.
fn set_small_body(outgoing: &mut OutgoingRequest, bytes: Bytes) {
    outgoing
        .headers
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    outgoing.payload_hash = crate::upstream::sign::hex_sha256(&bytes);
    outgoing.body = body::full(bytes);
}

/// Sends `bytes` with `Content-MD5` instead of the client's CRC (dialects.md rule 12). A CRC
/// header still present (the provider takes the algorithm elsewhere) is checked here and dropped.
fn set_content_md5(outgoing: &mut OutgoingRequest, bytes: Bytes) -> Result<(), GatewayError> {
    use base64::Engine as _;
    use md5::Digest as _;
    for algorithm in ChecksumAlgorithm::ALL {
        let Some(sent) = outgoing.headers.remove(algorithm.header_name()) else {
            continue;
        };
        if sent.as_bytes().trim_ascii() != algorithm.of(&bytes).as_bytes() {
            return Err(upload_failure_error(UploadFailure::ChecksumMismatch { algorithm }));
        }
    }
    for name in ["x-amz-sdk-checksum-algorithm", "x-amz-checksum-algorithm"] {
        outgoing.headers.remove(name);
    }
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&bytes));
    let value = HeaderValue::from_str(&md5).map_err(|e| GatewayError::Internal(e.to_string()))?;
    outgoing.headers.insert("content-md5", value);
    set_small_body(outgoing, bytes);
    Ok(())
}

/// A CompleteMultipartUpload body (small XML, read with a cap) with each part's ETag in the
/// provider's form and without part checksums the provider does not take; re-signed with the
/// hash of the new body.
async fn translate_part_list(
    outgoing: &mut OutgoingRequest,
    route: &Route,
    slot: &FailureSlot,
) -> Result<(), GatewayError> {
    let bytes = read_small_body(outgoing, route, slot, "CompleteMultipartUpload").await?;
    let rewritten =
        rewrite::provider_values::rewrite_complete_multipart_request(&bytes, &route.provider.settings.profile)
            .map_err(|e| GatewayError::InvalidRequest(format!("malformed CompleteMultipartUpload body: {e}")))?;
    outgoing.headers.remove("content-md5");
    set_small_body(outgoing, Bytes::from(rewritten));
    Ok(())
}

/// Turns the provider's response into the client's: hop-by-hop headers dropped, the provider's
/// request id kept under its own name, bucket names mapped back where the bucket is renamed.
async fn relay_response(
    response: http::Response<hyper::body::Incoming>,
    route: &Route,
    relay: Relay,
) -> Result<S3Response<Body>, GatewayError> {
    let Relay {
        operation,
        encode_listing,
        checksum_mode,
        ranged,
        v2_via_v1,
    } = relay;
    let (mut parts, incoming) = response.into_parts();
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        if DROPPED_RESPONSE_HEADERS.contains(&name.as_str()) {
            continue;
        }
        if name.as_str() == "x-amz-request-id" {
            headers.insert(HeaderName::from_static("x-s3ferry-upstream-request-id"), value.clone());
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    let is_xml = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("xml"));
    let settings = &route.provider.settings;
    let profile = &settings.profile;
    translate::translate_response_headers(profile, &mut headers);
    answer_checksums(&mut headers, parts.status, operation, checksum_mode, ranged);
    let failed = !parts.status.is_success();
    let names_bucket = operation::response_names_bucket(operation) || failed;
    let rename = route.is_renamed() && names_bucket;
    let dialect = (profile.rewrites_object_values() && operation::response_carries_object_values(operation))
        || (failed && !profile.error_codes.is_empty());
    let encode_listing = encode_listing && is_xml && !failed;
    // Converted whatever the Content-Type says: relayed as it came, a V1 page would end the
    // client's pagination silently.
    let v2_via_v1 = v2_via_v1.as_ref().filter(|_| !failed);
    let body = if (is_xml && (rename || dialect || encode_listing)) || v2_via_v1.is_some() {
        let protocol_error = |cause: String| GatewayError::UpstreamProtocol {
            provider: settings.name.clone(),
            cause,
        };
        let mut bytes = upstream::collect_capped(incoming, MAX_XML_BODY, settings.read_timeout)
            .await
            .map_err(protocol_error)?
            .to_vec();
        // First, on the provider's own XML: it may hold keys URL-encoded by the provider.
        if let Some(request) = v2_via_v1 {
            bytes = list_v2_via_v1::into_v2_answer(&bytes, request).map_err(|e| protocol_error(e.to_string()))?;
        }
        if rename {
            bytes = rewrite::bucket_names::rewrite_bucket_names(&bytes, &route.upstream_bucket, &route.client_bucket)
                .map_err(|e| protocol_error(e.to_string()))?;
        }
        if dialect {
            if failed {
                apply_error_mapping(&bytes, settings, &mut parts.status);
            }
            bytes = rewrite::provider_values::rewrite_response(&bytes, profile)
                .map_err(|e| protocol_error(e.to_string()))?;
        }
        if encode_listing {
            bytes = rewrite::listing_encoding::encode_listing_keys(&bytes, true)
                .map_err(|e| protocol_error(e.to_string()))?;
        }
        let rewritten = bytes;
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(rewritten.len()));
        Body::from(rewritten)
    } else {
        Body::http_body_unsync(IdleTimeoutBody::new(incoming, settings.read_timeout))
    };
    let mut response = S3Response::new(body);
    response.status = Some(parts.status);
    response.headers = headers;
    Ok(response)
}

/// What the client asked that decides how the provider's response is turned into its answer.
#[derive(Debug, Clone)]
struct Relay {
    operation: &'static str,
    /// s3ferry URL-encodes the listing's keys itself.
    encode_listing: bool,
    /// The client sent `x-amz-checksum-mode: ENABLED`.
    checksum_mode: bool,
    /// The client asked for a byte range.
    ranged: bool,
    /// The answer is a V1 listing that becomes the client's ListObjectsV2 answer.
    v2_via_v1: Option<list_v2_via_v1::V2Request>,
}

impl Relay {
    fn new(operation: &'static str, client_headers: &HeaderMap, encode_listing: bool) -> Self {
        let checksum_mode = client_headers
            .get("x-amz-checksum-mode")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"enabled"));
        Self {
            operation,
            encode_listing,
            checksum_mode,
            ranged: client_headers.contains_key(http::header::RANGE),
            v2_via_v1: None,
        }
    }
}

/// Checksums in a GetObject/HeadObject answer (dialects.md rules 14 and 15): s3ferry's stored
/// checksum metadata never reaches the client as metadata; under `x-amz-checksum-mode` it
/// answers for a provider that stored none; and a ranged response carries no full-object
/// checksum, which clients would check against the partial bytes and fail.
fn answer_checksums(headers: &mut HeaderMap, status: StatusCode, operation: &str, checksum_mode: bool, ranged: bool) {
    let stored: Vec<(HeaderName, HeaderValue)> = headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with(STORED_CHECKSUM_PREFIX))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    for (name, _) in &stored {
        headers.remove(name);
    }
    if ranged && status == StatusCode::PARTIAL_CONTENT {
        let full_object: Vec<HeaderName> = headers
            .keys()
            .filter(|n| {
                ChecksumAlgorithm::from_header_name(n.as_str()).is_some() || n.as_str() == "x-amz-checksum-type"
            })
            .cloned()
            .collect();
        for name in full_object {
            headers.remove(name);
        }
        return;
    }
    let reads_object = matches!(operation, "GetObject" | "HeadObject");
    let provider_answered = headers
        .keys()
        .any(|n| ChecksumAlgorithm::from_header_name(n.as_str()).is_some());
    if !(reads_object && checksum_mode && status == StatusCode::OK) || provider_answered {
        return;
    }
    for (name, value) in stored {
        let algorithm = name.as_str()[STORED_CHECKSUM_PREFIX.len()..].to_string();
        if let Some(algorithm) = ChecksumAlgorithm::from_name(&algorithm) {
            headers.insert(algorithm.header_name(), value);
            headers.insert("x-amz-checksum-type", HeaderValue::from_static("FULL_OBJECT"));
        }
    }
}

/// For a listing asked with `encoding-type=url` on a provider whose profile says it does not
/// encode reliably: the parameter is not forwarded (raw keys come back) and s3ferry encodes.
fn encodes_listing_itself(route: &Route, operation: &str, query: &mut Vec<(String, String)>) -> bool {
    let listing = matches!(operation, "ListObjects" | "ListObjectsV2" | "ListObjectVersions");
    let asked = query.iter().any(|(n, v)| n == "encoding-type" && v == "url");
    if !(listing && asked) || route.provider.settings.profile.url_encoded_listings {
        return false;
    }
    query.retain(|(n, _)| n != "encoding-type");
    true
}

/// For a ListObjectsV2 on a provider whose profile says it serves only V1: the query becomes V1,
/// and the returned request says how to turn the V1 answer into V2.
fn lists_v2_via_v1(
    route: &Route,
    operation: &str,
    query: &mut Vec<(String, String)>,
) -> Result<Option<list_v2_via_v1::V2Request>, GatewayError> {
    if operation != "ListObjectsV2" || route.provider.settings.profile.list_objects_v2 {
        return Ok(None);
    }
    list_v2_via_v1::into_v1_query(query)
        .map(Some)
        .map_err(|e| GatewayError::InvalidArgument(e.to_string()))
}

/// A provider error code the dialect maps: the client's status, and the operator's hint logged.
fn apply_error_mapping(xml: &[u8], settings: &upstream::UpstreamSettings, status: &mut StatusCode) {
    let Some((code, _)) = crate::error::parse_error_code(xml) else {
        return;
    };
    let Some(mapping) = settings.profile.error_mapping(&code) else {
        return;
    };
    if let Some(hint) = &mapping.hint {
        let hint = hint.replace("providers.<name>", &format!("providers.{}", settings.name));
        tracing::warn!(provider = %settings.name, provider_code = %code, "provider refused the request: {hint}");
    }
    if let Some(new_status) = mapping.status.and_then(|s| StatusCode::from_u16(s).ok()) {
        *status = new_status;
    }
}

fn xml_response(status: StatusCode, xml: Bytes) -> S3Response<Body> {
    let mut response = S3Response::new(Body::from(xml));
    response.status = Some(status);
    response
        .headers
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(uri: &str, host: &str, domain: Option<&str>) -> ClientTarget {
        let uri: http::Uri = uri.parse().expect("uri");
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, HeaderValue::from_str(host).expect("host"));
        parse_client_target(&uri, &headers, domain).expect("target")
    }

    #[test]
    fn path_style_splits_bucket_and_raw_key() {
        let t = target("/photos/a%20b//c/", "127.0.0.1:8333", Some("s3.localhost"));
        assert_eq!(
            t,
            ClientTarget {
                bucket: Some("photos".into()),
                raw_key: "a%20b//c/".into()
            }
        );
        let t = target("/photos", "localhost:8333", Some("s3.localhost"));
        assert_eq!(
            t,
            ClientTarget {
                bucket: Some("photos".into()),
                raw_key: String::new()
            }
        );
        let t = target("/", "localhost:8333", None);
        assert_eq!(t.bucket, None);
    }

    #[test]
    fn virtual_hosted_style_takes_the_bucket_from_the_host() {
        let t = target("/a/b.txt", "photos.s3.localhost:8333", Some("s3.localhost"));
        assert_eq!(
            t,
            ClientTarget {
                bucket: Some("photos".into()),
                raw_key: "a/b.txt".into()
            }
        );
        let t = target("/", "Photos.S3.Localhost", Some("s3.localhost"));
        assert_eq!(t.bucket.as_deref(), Some("photos"));
        // The bare domain is path style.
        let t = target("/photos/k", "s3.localhost:8333", Some("s3.localhost"));
        assert_eq!(t.bucket.as_deref(), Some("photos"));
    }

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

    #[test]
    fn checksum_parameters_become_headers() {
        let (query, headers) = checksum_params_as_headers(vec![
            ("x-id".to_string(), "PutObject".to_string()),
            ("x-amz-checksum-crc32".to_string(), "AAAAAA==".to_string()),
            ("X-Amz-Sdk-Checksum-Algorithm".to_string(), "CRC32".to_string()),
            ("partNumber".to_string(), "1".to_string()),
        ]);
        assert_eq!(
            query,
            vec![
                ("x-id".to_string(), "PutObject".to_string()),
                ("partNumber".to_string(), "1".to_string())
            ]
        );
        let names: Vec<&str> = headers.keys().map(http::HeaderName::as_str).collect();
        assert_eq!(names, ["x-amz-checksum-crc32", "x-amz-sdk-checksum-algorithm"]);
    }

    #[test]
    fn chunked_framing_is_removed_but_other_encodings_stay() {
        let mut h = HeaderMap::new();
        h.insert("content-encoding", HeaderValue::from_static("aws-chunked,gzip"));
        h.insert("x-amz-decoded-content-length", HeaderValue::from_static("5"));
        h.insert("x-amz-trailer", HeaderValue::from_static("x-amz-checksum-crc32"));
        strip_chunked_framing(&mut h);
        assert_eq!(h.get("content-encoding").map(|v| v.to_str().ok()), Some(Some("gzip")));
        assert!(!h.contains_key("x-amz-decoded-content-length") && !h.contains_key("x-amz-trailer"));
        let mut h = HeaderMap::new();
        h.insert("content-encoding", HeaderValue::from_static("aws-chunked"));
        strip_chunked_framing(&mut h);
        assert!(!h.contains_key("content-encoding"));
    }

    #[test]
    fn unsigned_trailer_framing_puts_aws_chunked_first_and_sets_the_encoded_length() {
        let mut h = HeaderMap::new();
        h.insert("content-encoding", HeaderValue::from_static("aws-chunked,gzip"));
        h.insert("x-amz-decoded-content-length", HeaderValue::from_static("65537"));
        h.insert("x-amz-trailer", HeaderValue::from_static("x-amz-checksum-crc32c"));
        h.insert("x-amz-sdk-checksum-algorithm", HeaderValue::from_static("crc32c"));
        set_unsigned_trailer_framing(&mut h, 65_537, ChecksumAlgorithm::Crc32c);
        let get = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(get("content-encoding"), "aws-chunked,gzip");
        assert_eq!(get("x-amz-decoded-content-length"), "65537");
        assert_eq!(get("x-amz-trailer"), "x-amz-checksum-crc32c");
        assert_eq!(get("x-amz-sdk-checksum-algorithm"), "CRC32C");
        let encoded = 7 + 65_536 + 2 + 6 + 3 + "x-amz-checksum-crc32c:".len() + 8 + 4;
        assert_eq!(get("content-length"), encoded.to_string());
        let mut h = HeaderMap::new();
        set_unsigned_trailer_framing(&mut h, 0, ChecksumAlgorithm::Sha256);
        assert_eq!(
            h.get("content-encoding").map(HeaderValue::as_bytes),
            Some(&b"aws-chunked"[..])
        );
    }

    #[test]
    fn framing_follows_the_payload_hash_header() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-content-sha256",
            HeaderValue::from_static("STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
        );
        h.insert("x-amz-decoded-content-length", HeaderValue::from_static("10"));
        h.insert("x-amz-trailer", HeaderValue::from_static("x-amz-checksum-crc32c"));
        assert!(matches!(
            framing_of(&h),
            Ok(Framing::Dechunked {
                length: 10,
                trailer: Some(ChecksumAlgorithm::Crc32c)
            })
        ));
        let mut h = HeaderMap::new();
        h.insert("x-amz-content-sha256", HeaderValue::from_static(EMPTY_PAYLOAD_SHA256));
        h.insert("content-length", HeaderValue::from_static("3"));
        assert!(
            matches!(framing_of(&h), Ok(Framing::Unchanged { ref payload_hash, length: 3 }) if payload_hash == EMPTY_PAYLOAD_SHA256)
        );
        let mut h = HeaderMap::new();
        h.insert("content-length", HeaderValue::from_static("3"));
        assert!(
            matches!(framing_of(&h), Ok(Framing::Unchanged { ref payload_hash, .. }) if payload_hash == UNSIGNED_PAYLOAD)
        );
    }
}
