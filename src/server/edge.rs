//! The envelope around each request: a request id, the trust boundary (`auth::admit`), CORS
//! preflights, form uploads, s3s verification and the gateway, errors in the gateway's one
//! shape, and the access record that logs the request once its body is done.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body as HttpBody;
use hyper::body::Incoming;
use s3s::service::S3Service;

use super::generation::Shared;
use crate::access_log::{AccessRecord, CountingBody, EdgeBody, HandledByGateway, RequestContext};
use crate::auth::Verifier;
use crate::connection::InFlight;
use crate::error::{new_request_id, render_error};
use crate::post_upload::{FormUploadContext, KeyGrants, upload_form};
use crate::small_body::{BodyBudget, ReadError, ReadLimits, read_capped};
use crate::target::{host_from_authority, parse_client_target};

/// One request at the edge: give it an id, run it through s3s (verification) and the gateway,
/// make sure any error is in the gateway's shape, and log it once when its body is done.
pub(super) async fn handle_edge(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    remote: SocketAddr,
    in_flight: InFlight,
) -> Result<Response<EdgeBody>, Infallible> {
    let started = Instant::now();
    let generation = shared.current();
    let s3 = generation.s3.clone();
    let ctx = RequestContext::new(new_request_id());
    let method = req.method().clone();
    let expects_continue = req
        .headers()
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let bytes_in = Arc::new(AtomicU64::new(0));
    let body_polled = Arc::new(AtomicBool::new(false));
    // What hyper knows of the body's length as it arrived; s3s replaces the body later.
    let client_body = HttpBody::size_hint(req.body());
    let mut req = req.map(|b| s3s::Body::http_body_unsync(CountingBody::new(b, bytes_in.clone(), body_polled.clone())));
    host_from_authority(&mut req);
    normalize_sigv2_bucket_path(&mut req);
    req.extensions_mut().insert(ctx.clone());

    let domain = generation.config.server.domain.as_deref();
    let target = parse_client_target(req.uri(), req.headers(), domain);
    // Read before the trust boundary drops what no signature covers (`Origin` included).
    let cors = super::cors::EdgeCors::of(&method, req.headers(), target.as_ref().ok(), &generation.routes);
    let admitted = if method == http::Method::OPTIONS {
        // A CORS preflight carries no credentials: answered here, never by s3s (`cors`).
        target.map(Admitted::Preflight)
    } else {
        crate::auth::admit(
            &mut req,
            domain,
            &generation.client_auth,
            time::OffsetDateTime::now_utc(),
        )
        .and_then(|verifier| {
            crate::body::require_stated_length(req.headers(), &client_body)?;
            Ok(Admitted::Verified(verifier, target?))
        })
    };
    let path = match &admitted {
        Ok(Admitted::Verified(_, target) | Admitted::Preflight(target)) => path_template(target),
        Err(_) => "-",
    };
    let mut response = match admitted {
        Ok(Admitted::Preflight(target)) => {
            super::cors::answer_options(req.headers(), &target, &generation.routes, &ctx).await
        }
        Err(refused) => refusal_response(&refused, &ctx),
        Ok(Admitted::Verified(Verifier::FormPolicy, target)) => {
            let scheme = if generation.tls.is_some() { "https" } else { "http" };
            let grants = KeyGrants(generation.gateway.access_policy());
            let upload = FormUploadContext {
                gateway: &generation.gateway,
                keys: &generation.client_auth,
                grant: &grants,
                config: &generation.config.post_upload,
                spool: &shared.spool_budget,
                scheme,
            };
            match upload_form(req, target, upload, &ctx).await {
                Ok(response) => response,
                Err(refused) => refusal_response(&refused, &ctx),
            }
        }
        Ok(Admitted::Verified(Verifier::S3s, target)) => {
            // The one parse of the target: the gateway routes exactly this value.
            req.extensions_mut().insert(target);
            verify_and_handle(&s3, req, &ctx.request_id, &shared.body_budget).await
        }
    };
    cors.apply(response.headers_mut());
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        response.headers_mut().insert("x-amz-request-id", v);
    }
    // hyper sends `100 Continue` when a body with bytes to come is first read: never for an
    // empty one, even when s3ferry reads it (to verify a checksum of the empty upload).
    let continue_sent = body_polled.load(Ordering::Relaxed) && client_body.exact() != Some(0);
    if expects_continue && !continue_sent {
        // The client waited for `100 Continue` and got the final answer instead (a 0-byte
        // upload, or a refusal). botocore then mis-reads the next response on this
        // connection, so the connection is not reused.
        response
            .headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = response.status();
    let record = AccessRecord {
        ctx,
        method,
        path,
        status,
        started,
        bytes_in,
        remote,
        metrics: shared.metrics.clone(),
    };
    Ok(response.map(|body| EdgeBody::new(body, record, in_flight)))
}

/// A request the edge lets through, with the one parse of its target.
enum Admitted {
    /// Past the trust boundary: verified next by `Verifier` (s3s, or the form's policy).
    Verified(Verifier, crate::target::ClientTarget),
    /// An `OPTIONS` request: answered by [`super::cors::answer_options`].
    Preflight(crate::target::ClientTarget),
}

/// A request refused before s3s or the gateway ran, in the gateway's error shape.
fn refusal_response(refused: &crate::error::GatewayError, ctx: &RequestContext) -> Response<s3s::Body> {
    match refused.origin() {
        crate::error::Origin::Client => {
            tracing::debug!(request_id = %ctx.request_id, error = %refused, "request refused at the edge");
        }
        _ => tracing::warn!(request_id = %ctx.request_id, error = %refused, "request failed at the edge"),
    }
    let (parts, bytes) = refused.to_response(&ctx.request_id).into_parts();
    Response::from_parts(parts, s3s::Body::from(bytes))
}

/// s3s verifies the signature and hands the request to the gateway; its own errors are
/// re-rendered in the gateway's shape.
async fn verify_and_handle(
    s3: &S3Service,
    req: Request<s3s::Body>,
    request_id: &str,
    budget: &BodyBudget,
) -> Response<s3s::Body> {
    let response = match s3.call(req).await {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(request_id, error = ?e, "front door failed");
            let (parts, bytes) = render_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "the request could not be processed",
                None,
                request_id,
            )
            .into_parts();
            Response::from_parts(parts, s3s::Body::from(bytes))
        }
    };
    if response.extensions().get::<HandledByGateway>().is_none() && !response.status().is_success() {
        rerender_front_door_error(response, request_id, budget).await
    } else {
        response
    }
}

/// The shape of the resource a request addresses, for the access log: bucket and key names
/// are the client's data and stay out of the log line (the bucket has its own field).
fn path_template(target: &crate::target::ClientTarget) -> &'static str {
    match (&target.bucket, target.key.is_empty()) {
        (None, _) => "/",
        (Some(_), true) => "/{bucket}",
        (Some(_), false) => "/{bucket}/{key}",
    }
}

/// s3s renders its own verification errors without a request id; re-render them through the
/// gateway's one error renderer so every error a client sees has the same shape. Reading s3s's
/// answer draws from the body budget like every other body read whole.
async fn rerender_front_door_error(
    response: Response<s3s::Body>,
    request_id: &str,
    budget: &BodyBudget,
) -> Response<s3s::Body> {
    let (parts, body) = response.into_parts();
    let limits = ReadLimits {
        max: 64 * 1024,
        idle: Duration::from_secs(5),
    };
    let read = match read_capped(body, None, limits, budget).await {
        Ok(read) => Some(read),
        Err(ReadError::Overloaded) => {
            let (parts, bytes) = crate::error::GatewayError::SlowDown
                .to_response(request_id)
                .into_parts();
            return Response::from_parts(parts, s3s::Body::from(bytes));
        }
        Err(_) => None,
    };
    let (code, message) = crate::error::parse_error_code(read.as_deref().unwrap_or_default()).unwrap_or_else(|| {
        (
            "InternalError".to_string(),
            "the request could not be verified".to_string(),
        )
    });
    let (new_parts, new_body) = render_error(parts.status, &code, &message, None, request_id).into_parts();
    let mut out = Response::from_parts(new_parts, s3s::Body::from(new_body));
    // Keep headers s3s set on purpose (e.g. Allow), but not a stale length.
    for (name, value) in &parts.headers {
        if !out.headers().contains_key(name) && name != http::header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// SigV2 signs a bucket as `/<bucket>/` (AWS's canonical resource for a bucket), while
/// botocore sends a path-style bucket request as `/<bucket>?...`; s3s builds the resource from
/// the path as sent. Bucket-level SigV2 requests get the trailing slash AWS implies, so the
/// resource s3s checks is the one the client signed. Harmless for routing: `/<bucket>/` is the
/// same bucket with an empty key.
fn normalize_sigv2_bucket_path(req: &mut Request<s3s::Body>) {
    let is_sigv2_header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes().starts_with(b"AWS "));
    let is_sigv2_query = req
        .uri()
        .query()
        .is_some_and(|q| q.contains("AWSAccessKeyId=") && q.contains("Signature="));
    let path = req.uri().path();
    let is_bucket_path = path.len() > 1 && !path[1..].contains('/');
    if !(is_sigv2_header || is_sigv2_query) || !is_bucket_path {
        return;
    }
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{path}/?{q}"),
        None => format!("{path}/"),
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(uri: &str, authorization: Option<&str>) -> String {
        let mut builder = Request::builder().uri(uri);
        if let Some(a) = authorization {
            builder = builder.header("authorization", a);
        }
        let mut req = builder.body(s3s::Body::empty()).expect("request");
        normalize_sigv2_bucket_path(&mut req);
        req.uri().to_string()
    }

    #[test]
    fn sigv2_bucket_requests_get_the_trailing_slash_aws_signs() {
        assert_eq!(
            normalized("/demo?list-type=2", Some("AWS key:sig")),
            "/demo/?list-type=2"
        );
        assert_eq!(normalized("/demo", Some("AWS key:sig")), "/demo/");
        assert_eq!(
            normalized("/demo?AWSAccessKeyId=k&Signature=s&Expires=1", None),
            "/demo/?AWSAccessKeyId=k&Signature=s&Expires=1"
        );
    }

    #[test]
    fn other_requests_keep_their_path() {
        assert_eq!(normalized("/demo/key", Some("AWS key:sig")), "/demo/key");
        assert_eq!(normalized("/", Some("AWS key:sig")), "/");
        assert_eq!(normalized("/demo", Some("AWS4-HMAC-SHA256 Credential=x")), "/demo");
    }
}
