//! The request lifecycle after verification: read, authorize, route, plan, send, relay.
//!
//! s3s has already verified who signed the request (and wraps the body in verifying streams);
//! it hands every request to [`Gateway`] as a catch-all custom route. [`Gateway::handle`] reads
//! top-down, one step per line. Each step lives in its own module:
//!
//! - [`request`]: the client's request, parsed once (target, operation, query, copy source);
//! - [`plan`]: every provider decision for the request, pure (headers, query, body checks,
//!   part list, `Content-MD5`, how the answer is turned back);
//! - [`answers`]: what s3ferry answers itself or takes over (ACLs a provider lacks,
//!   DeleteObjects, ListBuckets, cross-provider copies) and the migration-aware reads;
//! - [`upload`]: the body's upstream form and the checks s3ferry makes on it;
//! - `upstream::exchange`: signing, sending and measuring, for every request s3ferry sends;
//! - [`keep_checksum`]: a verified trailing checksum kept once the upload is answered;
//! - [`relay`]: the provider's answer turned into the client's.

mod answers;
mod keep_checksum;
mod plan;
mod relay;
mod request;
mod upload;

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method};
use hyper::body::Incoming;
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result};

use crate::access::{self, AccessPolicy, Action, Forwarding, Object};
use crate::access_log::{HandledByGateway, RequestContext};
use crate::error::GatewayError;
use crate::migration::serve::{DeleteAnswer, Migration};
use crate::route::{Route, RouteTable};
use crate::s3::copy_source::CopySourceRef;
use crate::s3::operation::Operation;
use crate::target::{has_dot_segment, refuse_reserved};
use crate::upstream::exchange::Exchange;
use crate::upstream::refuse_dot_segments;
use plan::{RequestPlan, refuse_unsupported};
use request::ClientRequest;

/// The gateway: the routing table plus what it needs to answer service-level requests.
pub struct Gateway {
    routes: RouteTable,
    /// Who may do what (the generation's grants and anonymous buckets).
    access: Arc<AccessPolicy>,
    migration: Migration,
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
    pub fn new(routes: RouteTable, access: Arc<AccessPolicy>, migration: Migration) -> Self {
        let started = crate::s3::timestamp::s3_timestamp(time::OffsetDateTime::now_utc());
        Self {
            routes,
            access,
            migration,
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
        let request = ClientRequest::parse(&mut req)?;
        ctx.record(|f| request.record(f));
        let Some(bucket) = request.target.bucket.as_deref() else {
            return self.answer_service_request(&req.method, request.identity()).await;
        };
        let forwarding = self.authorize(&request, &req)?;
        let route = self.routes.resolve(bucket)?;
        ctx.record(|f| f.upstream = Some(route.provider.settings.name.clone()));
        refuse_unsupported(&route.provider.settings, request.operation)?;
        check_key(&route, &request.target.key)?;
        let copy_source = self.resolve_copy_source(&request)?;
        // Held until the answer is relayed: no background copy of the key lands after it.
        let _claim = self
            .migration
            .claim(&route, request.operation, &request.target.key)
            .await;
        if let Some(answer) = self
            .answer_itself(&mut req, &request, &route, copy_source.as_ref(), forwarding)
            .await?
        {
            return Ok(answer);
        }
        let satisfied_by_old = self
            .migration
            .put_satisfied_by_old(&route, request.operation, &request.target.key, &req.headers)
            .await?;
        let copy_header = copy_source
            .as_ref()
            .map(ResolvedCopySource::upstream_header)
            .transpose()?;
        let settings = &route.provider.settings;
        let mut plan = RequestPlan::new(settings, &request, &req.headers, copy_header, satisfied_by_old)?;
        let encoded_key = request.target.encoded_key();
        let (exchange, keeping) = upload::exchange_for(&mut req, &route, encoded_key, &mut plan).await?;
        let response = self.forward(signed_as(exchange, forwarding), &route, &request).await?;
        if let Some(keeping) = keeping {
            keeping.keep_after(&route, &response).await;
        }
        relay::relay_response(response, &route, plan.response).await
    }

    /// Sends the request to the route's provider. On a bucket under migration a DeleteObject is
    /// tombstoned around it (see `migration::serve::DeleteAnswer`), and a successful write
    /// clears the key's tombstone.
    async fn forward(
        &self,
        exchange: Exchange,
        route: &Route,
        request: &ClientRequest,
    ) -> Result<http::Response<Incoming>, GatewayError> {
        let key = &request.target.key;
        let unversioned_delete = request.operation == Operation::DeleteObject && !request.has_param("versionId");
        let response = match route.fallback.as_ref().filter(|_| unversioned_delete) {
            None => exchange.send(&route.provider).await?,
            Some(fallback) => {
                let keys = std::slice::from_ref(key);
                self.migration.tombstone_before_delete(route, keys).await?;
                let sent = exchange.send(&route.provider).await;
                let answer = DeleteAnswer::of_exchange(sent.as_ref().map(http::Response::status));
                self.migration.after_delete(route, fallback, keys, answer).await;
                sent?
            }
        };
        if route.fallback.is_some() && request.operation.writes_object() && response.status().is_success() {
            self.migration.after_write(route, key, request.operation).await;
        }
        Ok(response)
    }

    /// Whether the request's signer may send it (see `access`): the operation on its bucket and
    /// key, and a copy's source. Decided before the route is resolved, so a refused request
    /// learns nothing of the routes and reaches no provider. DeleteObjects is decided here for
    /// the bucket and again for each key once its body is read (`answers::delete_objects`).
    fn authorize(&self, request: &ClientRequest, req: &S3Request<Body>) -> Result<Forwarding, GatewayError> {
        let who = request.identity();
        let target = &request.target;
        let bucket = target.bucket.as_deref().unwrap_or_default();
        let action = access::action_of(
            request.operation,
            &req.method,
            request.target_kind(),
            &request.query,
            access::sets_acl(&req.headers),
        );
        let object = if request.operation == Operation::DeleteObjects {
            Object::SomeKey
        } else {
            access::object_of(action, &target.key, &request.query)
        };
        let forwarding = access::decide(&self.access, who, action, bucket, object)?;
        if let Some(source) = &request.copy_source {
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

    /// The client's `x-amz-copy-source`, routed: the source must be a key the client may name
    /// on the source's route.
    fn resolve_copy_source(&self, request: &ClientRequest) -> Result<Option<ResolvedCopySource>, GatewayError> {
        let Some(source) = &request.copy_source else {
            return Ok(None);
        };
        let route = self.routes.resolve(&source.bucket)?;
        check_key(&route, &source.key)?;
        Ok(Some(ResolvedCopySource {
            source: source.clone(),
            route,
        }))
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

/// The exchange signed with the provider's key, or sent unsigned where the access decision
/// says so (`anonymous = "provider"`).
fn signed_as(exchange: Exchange, forwarding: Forwarding) -> Exchange {
    match forwarding {
        Forwarding::Signed => exchange,
        Forwarding::Unsigned => exchange.unsigned(),
    }
}

/// An `x-amz-copy-source` with the route of its bucket.
struct ResolvedCopySource {
    source: CopySourceRef,
    route: Route,
}

impl ResolvedCopySource {
    /// `x-amz-copy-source` as the provider gets it: pointing at the source's upstream bucket.
    fn upstream_header(&self) -> Result<HeaderValue, GatewayError> {
        HeaderValue::from_str(&self.source.header_value(&self.route.upstream_bucket))
            .map_err(|_| GatewayError::InvalidArgument("x-amz-copy-source is not valid text".into()))
    }
}

/// A key the client may name on `route`: never one of s3ferry's own, and with `.`/`..`
/// segments only where every provider it may reach (the route's, and a migration's old one)
/// stores them literally.
fn check_key(route: &Route, key: &str) -> Result<(), GatewayError> {
    refuse_reserved(key)?;
    if !has_dot_segment(key) {
        // Almost every key: nothing to check per provider (DeleteObjects asks up to 1,000 times).
        return Ok(());
    }
    let mut providers = vec![&route.provider.settings];
    if let Some(fallback) = &route.fallback {
        providers.push(&fallback.provider.settings);
    }
    refuse_dot_segments(key, &providers)
}
