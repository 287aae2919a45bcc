//! The `?acl` operations for providers whose dialect lacks part of S3's ACL model
//! (docs/dialects.md §1b, rule 26):
//! - no ACL API at all (`acl_api = false`: R2, MinIO, Garage, local): s3ferry answers
//!   Get*Acl with the only policy such a provider enforces (the owner's full control) and
//!   Put*Acl by the same canned-ACL policy as the `x-amz-acl` header (private is a no-op,
//!   anything wider follows `[providers.X.acl] unsupported`);
//! - canned ACLs but no grants (`grants = false`: OSS, B2, Spaces): a Put*Acl XML body is read
//!   into the canned ACL it is equivalent to and sent as `x-amz-acl`.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use s3s::{Body, S3Request, S3Response};

use crate::checksum::{ChecksumAlgorithm, mismatched_header};
use crate::dialect::translate;
use crate::dialect::{DialectProfile, UnsupportedAcl};
use crate::error::GatewayError;
use crate::gateway::relay::xml_response;
use crate::rewrite::acl::{parse_access_control_policy, render_owner_only_policy};
use crate::route::Route;
use crate::s3::headers::{CHUNKED_FRAMING_HEADERS, decoded_length, is_aws_chunked};
use crate::s3::operation::Operation;
use crate::small_body::{Buffered, MAX_ACL_BODY, ReadError, ReadLimits, read_capped};

/// Owner reported for providers without ACLs (the name ListBuckets reports too).
const OWNER: &str = "s3ferry";

/// `Some(answer)` when s3ferry answers the ACL operation itself; `None` when the (possibly
/// rewritten) request goes on to the provider.
pub(in crate::gateway) async fn answer_or_rewrite(
    req: &mut S3Request<Body>,
    route: &Route,
    operation: Operation,
    key: &str,
) -> Result<Option<S3Response<Body>>, GatewayError> {
    let profile = &route.provider.settings.profile;
    let reads = operation.reads_acl();
    let writes = operation.writes_acl();
    if !(reads || writes) || (profile.acl_api && profile.grants) {
        return Ok(None);
    }
    if reads {
        if profile.acl_api {
            return Ok(None);
        }
        ensure_exists(route, key).await?;
        return Ok(Some(xml_response(
            StatusCode::OK,
            Bytes::from(render_owner_only_policy(OWNER)),
        )));
    }
    let from_body = match read_policy_body(req, route).await? {
        None => None,
        Some(bytes) => Some(canned_acl_of_body(&bytes, profile, &route.provider.settings.name)?),
    };
    if let Some(canned) = from_body {
        req.headers.insert("x-amz-acl", HeaderValue::from_static(canned));
    }
    if profile.acl_api {
        return Ok(None);
    }
    // No ACL API: the header policy decides; what it lets through is a no-op here.
    let mut asked: HeaderMap = req
        .headers
        .iter()
        .filter(|(n, _)| n.as_str() == "x-amz-acl" || n.as_str().starts_with("x-amz-grant-"))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    translate::translate_request(
        profile,
        &route.provider.settings.name,
        operation,
        &mut asked,
        &mut Vec::new(),
    )
    .map_err(|e| GatewayError::AclNotSupported(e.to_string()))?;
    ensure_exists(route, key).await?;
    let mut answer = S3Response::new(Body::empty());
    answer.status = Some(StatusCode::OK);
    Ok(Some(answer))
}

/// The body of a Put*Acl, read (small, capped, under the gateway's body budget) and verified
/// against a checksum header the client sent with it; the request is left without a body.
/// `None` when there is none.
async fn read_policy_body(req: &mut S3Request<Body>, route: &Route) -> Result<Option<Buffered>, GatewayError> {
    let announced = crate::s3::headers::content_length(&req.headers).unwrap_or(0);
    let streamed = is_aws_chunked(&req.headers);
    if announced == 0 && !streamed {
        return Ok(None);
    }
    let body = std::mem::replace(&mut req.input, Body::empty());
    let limits = ReadLimits {
        max: MAX_ACL_BODY,
        idle: std::time::Duration::from_secs(30),
    };
    // For aws-chunked bodies the Content-Length counts the framing: the decoded length is what
    // is buffered.
    let expected = decoded_length(&req.headers);
    let bytes = read_capped(body, expected, limits, route.provider.budget())
        .await
        .map_err(|e| match e {
            ReadError::Overloaded => GatewayError::SlowDown,
            e => GatewayError::InvalidRequest(format!("cannot read the AccessControlPolicy body: {e}")),
        })?;
    if let Some(algorithm) = mismatched_header(&req.headers, &bytes) {
        return Err(GatewayError::BadDigest(format!(
            "the {} header does not match the AccessControlPolicy body",
            algorithm.header_name()
        )));
    }
    for name in CHUNKED_FRAMING_HEADERS
        .iter()
        .chain(&["content-md5", "x-amz-content-sha256", "content-encoding"])
    {
        req.headers.remove(*name);
    }
    for algorithm in ChecksumAlgorithm::ALL {
        req.headers.remove(algorithm.header_name());
    }
    req.headers
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    Ok((!bytes.is_empty()).then_some(bytes))
}

/// The canned ACL an `AccessControlPolicy` body amounts to. Grants no canned ACL expresses
/// are refused under `reject`, and otherwise narrowed to `private` (they are dropped).
fn canned_acl_of_body(bytes: &[u8], profile: &DialectProfile, provider: &str) -> Result<&'static str, GatewayError> {
    let policy = parse_access_control_policy(bytes)
        .map_err(|e| GatewayError::InvalidRequest(format!("malformed AccessControlPolicy: {e}")))?;
    match (policy.canned_equivalent(), profile.unsupported_acl) {
        (Some(canned), _) => Ok(canned),
        (None, UnsupportedAcl::Reject) => Err(GatewayError::AclNotSupported(format!(
            "provider '{provider}' takes canned ACLs only, and these grants match none of them"
        ))),
        (None, UnsupportedAcl::Map | UnsupportedAcl::Drop) => Ok("private"),
    }
}

/// NoSuchKey / NoSuchBucket unless the object (or bucket) exists, at the provider or, for a
/// bucket under migration, at the old one.
async fn ensure_exists(route: &Route, key: &str) -> Result<(), GatewayError> {
    if key.is_empty() {
        if route.provider.bucket_exists(&route.upstream_bucket).await? {
            return Ok(());
        }
        return Err(GatewayError::Relayed {
            status: StatusCode::NOT_FOUND,
            code: "NoSuchBucket".into(),
            message: "The specified bucket does not exist".into(),
        });
    }
    if route.provider.head_object(&route.upstream_bucket, key).await?.is_some() {
        return Ok(());
    }
    if let Some(fallback) = &route.fallback
        && fallback.provider.head_object(&fallback.bucket, key).await?.is_some()
    {
        return Ok(());
    }
    Err(GatewayError::NoSuchKey { key: key.to_string() })
}
