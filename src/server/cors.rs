//! CORS at the edge: every `OPTIONS` request is answered here, before authentication, and
//! never reaches s3s (a browser's preflight carries no credentials, by the Fetch standard); the
//! rules themselves and what they decide are `crate::cors`.
//! - a bucket with rules: answered from the rules; nothing reaches a provider;
//! - a bucket without rules: the preflight goes to the bucket's provider *unsigned*, with no body,
//!   no query and only the three CORS request headers, so the provider's own CORS configuration
//!   (set with PutBucketCors, which passes through as any operation does) answers, and s3ferry
//!   lends the request none of its keys. The provider's CORS headers come back; its error body
//!   does not (see [`relay_provider_preflight`]);
//! - no bucket, or a bucket no route serves: 403, as S3 answers a bucket without CORS.
//!
//! On a bucket with rules, every other answer (errors included) gets the matching rule's headers
//! and the provider's own `Access-Control-*` headers are replaced; on a bucket without rules the
//! provider's pass through unchanged.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::access_log::RequestContext;
use crate::cors::{CorsRule, Preflight, PreflightRefusal, VARY_CORS, decide_actual, decide_preflight};
use crate::error::{GatewayError, render_error};
use crate::route::{Route, RouteTable};
use crate::small_body::{ReadLimits, read_capped};
use crate::target::ClientTarget;
use crate::upstream::OutgoingRequest;
use crate::upstream::exchange::Exchange;
use crate::upstream::sign::EMPTY_PAYLOAD_SHA256;

/// A preflight's answer from the provider is read up to this size (an S3 error document).
const PROVIDER_PREFLIGHT_BODY_MAX: usize = 16 * 1024;

/// What the edge needs to know of a request's CORS side, read before the trust boundary cuts
/// the headers down.
#[derive(Debug)]
pub struct EdgeCors {
    /// The rules of the addressed bucket (empty: none, or no bucket routed).
    rules: Arc<[CorsRule]>,
    origin: Option<String>,
    method: Method,
}

impl EdgeCors {
    /// Reads the request's `Origin` and the rules of the bucket it addresses.
    pub fn of(method: &Method, headers: &HeaderMap, target: Option<&ClientTarget>, routes: &RouteTable) -> Self {
        let rules = target
            .and_then(|t| t.bucket.as_deref())
            .and_then(|bucket| routes.resolve(bucket).ok())
            .map_or_else(|| Arc::from(Vec::new()), |route| route.cors.clone());
        Self {
            rules,
            origin: header_text(headers, "origin").map(str::to_string),
            method: method.clone(),
        }
    }

    /// On a bucket with rules, the answer's CORS headers are the matching rule's (none when no
    /// rule matches), never the provider's; `Vary` is set on every answer of such a bucket,
    /// since what it carries depends on the `Origin`. Other buckets' answers are left as the
    /// provider gave them. `OPTIONS` answers carry their own.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if self.rules.is_empty() || self.method == Method::OPTIONS {
            return;
        }
        let provider_cors: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in provider_cors {
            headers.remove(name);
        }
        if let Some(grant) = self
            .origin
            .as_deref()
            .and_then(|origin| decide_actual(&self.rules, origin, self.method.as_str()))
        {
            grant.write(headers);
        }
        headers.append(http::header::VARY, HeaderValue::from_static(VARY_CORS));
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Answers an `OPTIONS` request, before authentication (see the module documentation).
/// `target` is the edge's one parse of the request target; `ctx` gets the access-log fields.
pub async fn answer_options(
    headers: &HeaderMap,
    target: &ClientTarget,
    routes: &RouteTable,
    ctx: &RequestContext,
) -> http::Response<s3s::Body> {
    let request_id = &*ctx.request_id;
    let preflight = Preflight {
        origin: header_text(headers, "origin"),
        method: header_text(headers, "access-control-request-method"),
        request_headers: header_text(headers, "access-control-request-headers"),
    };
    let route = target.bucket.as_deref().and_then(|bucket| routes.resolve(bucket).ok());
    ctx.record(|f| {
        f.operation = "OptionsObject";
        f.bucket.clone_from(&target.bucket);
    });
    let decided = match &route {
        Some(route) if route.cors.is_empty() && preflight.origin.is_some() && preflight.method.is_some() => {
            ctx.record(|f| f.upstream = Some(route.provider.settings.name.clone()));
            return relay_provider_preflight(route, target, preflight, request_id).await;
        }
        Some(route) => decide_preflight(&route.cors, preflight),
        None => decide_preflight(&[], preflight),
    };
    match decided {
        Ok(grant) => {
            let mut response = http::Response::new(s3s::Body::empty());
            grant.write(response.headers_mut());
            response
                .headers_mut()
                .insert(http::header::VARY, HeaderValue::from_static(VARY_CORS));
            response
        }
        Err(refusal) => refusal_response(refusal, request_id),
    }
}

fn refusal_response(refusal: PreflightRefusal, request_id: &str) -> http::Response<s3s::Body> {
    let (code, status, message) = refusal.code_status_message();
    render_error(status, code, message, None, request_id).map(s3s::Body::from)
}

/// A preflight for a bucket without rules, sent on to its provider unsigned: the provider's
/// CORS configuration answers. What comes back is the status and the CORS headers
/// (`Access-Control-*`, `Vary`); an error body is never relayed (it may name the upstream
/// bucket or host): any other answer but a server error is S3's 403 `AccessForbidden`, with the
/// provider's message only when it is one of S3's fixed `CORSResponse:` messages.
async fn relay_provider_preflight(
    route: &Route,
    target: &ClientTarget,
    preflight: Preflight<'_>,
    request_id: &str,
) -> http::Response<s3s::Body> {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("origin", preflight.origin),
        ("access-control-request-method", preflight.method),
        ("access-control-request-headers", preflight.request_headers),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
    let request = OutgoingRequest {
        method: Method::OPTIONS,
        bucket: Some(route.upstream_bucket.clone()),
        encoded_key: target.encoded_key(),
        query: Vec::new(),
        headers,
        body: crate::body::empty(),
        payload_hash: EMPTY_PAYLOAD_SHA256.into(),
    };
    let provider = &route.provider;
    let answer = match Exchange::new(request).unsigned().send(provider).await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(request_id, provider = %provider.settings.name, error = %error, "CORS preflight to the provider failed");
            return error.to_response(request_id).map(s3s::Body::from);
        }
    };
    let (parts, body) = answer.into_parts();
    if parts.status.is_success() {
        let mut response = http::Response::new(s3s::Body::empty());
        for (name, value) in &parts.headers {
            if name.as_str().starts_with("access-control-") || name == http::header::VARY {
                response.headers_mut().append(name.clone(), value.clone());
            }
        }
        return response;
    }
    // A provider without CORS support may answer 501 (s3s-fs does): for the browser that is a
    // bucket without CORS. Other server errors are the provider failing, and said so.
    if parts.status.is_server_error() && parts.status != StatusCode::NOT_IMPLEMENTED {
        let error = GatewayError::unreadable_error_answer(&provider.settings.name, parts.status);
        return error.to_response(request_id).map(s3s::Body::from);
    }
    let limits = ReadLimits {
        max: PROVIDER_PREFLIGHT_BODY_MAX,
        idle: provider.settings.read_timeout,
    };
    let read = read_capped(body, None, limits, provider.budget()).await.ok();
    let message = read
        .as_deref()
        .and_then(crate::error::parse_error_code)
        .map(|(_, message)| message)
        .filter(|m| m.starts_with("CORSResponse:") && m.len() <= 512);
    match message {
        Some(message) => {
            render_error(StatusCode::FORBIDDEN, "AccessForbidden", &message, None, request_id).map(s3s::Body::from)
        }
        None => refusal_response(PreflightRefusal::NotEnabled, request_id),
    }
}
