//! The provider's answer turned into the client's, as the request's [`ResponsePlan`] says:
//! hop-by-hop headers dropped, dialect values and error codes translated, bucket names mapped
//! back, listings encoded or converted from V1, and the checksums a read may carry.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use s3s::{Body, S3Response};

use super::plan::ResponsePlan;
use crate::body::IdleTimeoutBody;
use crate::checksum::{ChecksumAlgorithm, stored_algorithm, take_stored_checksums};
use crate::dialect::translate;
use crate::error::GatewayError;
use crate::rewrite::client_view::{ClientView, EncodeKeys, rewrite_for_client};
use crate::rewrite::list_v2_via_v1;
use crate::route::Route;
use crate::s3::operation::Operation;
use crate::small_body::{Buffered, MAX_SMALL_ANSWER, MAX_XML_BODY};
use crate::upstream;

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

/// A provider's answer body: still streaming, or already read (for s3ferry to learn from it).
enum AnswerBody {
    Streaming(hyper::body::Incoming),
    Read(Buffered),
}

/// Turns the provider's response into the client's: hop-by-hop headers dropped, the provider's
/// request id kept under its own name, bucket names mapped back where the bucket is renamed.
pub(super) async fn relay_response(
    response: http::Response<hyper::body::Incoming>,
    route: &Route,
    plan: ResponsePlan,
) -> Result<S3Response<Body>, GatewayError> {
    let (parts, incoming) = response.into_parts();
    relay_answer(parts, AnswerBody::Streaming(incoming), route, plan).await
}

/// [`relay_response`] for an answer s3ferry has already read whole.
pub(super) async fn relay_read_response(
    response: http::Response<Buffered>,
    route: &Route,
    plan: ResponsePlan,
) -> Result<S3Response<Body>, GatewayError> {
    let (parts, read) = response.into_parts();
    relay_answer(parts, AnswerBody::Read(read), route, plan).await
}

async fn relay_answer(
    mut parts: http::response::Parts,
    answer: AnswerBody,
    route: &Route,
    plan: ResponsePlan,
) -> Result<S3Response<Body>, GatewayError> {
    let ResponsePlan {
        operation,
        encode_listing,
        checksum_mode,
        ranged,
        v2_via_v1,
    } = plan;
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
    let names_bucket = operation.response_names_bucket() || failed;
    let rename = route.is_renamed() && names_bucket;
    let dialect = (profile.rewrites_object_values() && operation.response_carries_object_values())
        || (failed && !profile.error_codes.is_empty());
    let encode_listing = encode_listing && is_xml && !failed;
    // Converted whatever the Content-Type says: relayed as it came, a V1 page would end the
    // client's pagination silently.
    let v2_via_v1 = v2_via_v1.as_ref().filter(|_| !failed);
    let mut answer = answer;
    if parts.status.is_server_error() && !operation.is_head() {
        // A failing provider (or a proxy in front of it) may answer with anything: what is not
        // an S3 error becomes one, so the client's SDK reads a code and retries as it should.
        let read = match answer {
            AnswerBody::Streaming(incoming) => route.provider.read_answer(incoming, MAX_SMALL_ANSWER).await?,
            AnswerBody::Read(read) => read,
        };
        if !crate::error::is_whole_error_document(&read) {
            return Err(GatewayError::unreadable_error_answer(&settings.name, parts.status));
        }
        answer = AnswerBody::Read(read);
    }
    let body = if (is_xml && (rename || dialect || encode_listing)) || v2_via_v1.is_some() {
        let protocol_error = |cause: String| GatewayError::UpstreamProtocol {
            provider: settings.name.clone(),
            cause,
        };
        // Held until the client has the rewritten answer: its share of the budget goes with it.
        let read = match answer {
            AnswerBody::Streaming(incoming) => route.provider.read_answer(incoming, MAX_XML_BODY).await?,
            AnswerBody::Read(read) => read,
        };
        let mut bytes = read.to_vec();
        // First, on the provider's own XML: it may hold keys URL-encoded by the provider.
        if let Some(request) = v2_via_v1 {
            bytes = list_v2_via_v1::into_v2_answer(&bytes, request).map_err(|e| protocol_error(e.to_string()))?;
        }
        if dialect && failed {
            apply_error_mapping(&bytes, settings, &mut parts.status);
        }
        // The bucket's client name, the AWS values and encoded keys, in one pass.
        let view = ClientView {
            rename: rename.then_some((route.upstream_bucket.as_str(), route.client_bucket.as_str())),
            values: dialect.then_some(profile),
            encode_keys: encode_listing.then_some(EncodeKeys { declare: true }),
        };
        if rename || dialect || encode_listing {
            bytes = rewrite_for_client(&bytes, &view).map_err(|e| protocol_error(e.to_string()))?;
        }
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        read.replaced_by(Bytes::from(bytes)).into_client_body()
    } else {
        match answer {
            AnswerBody::Streaming(incoming) => Body::http_body(IdleTimeoutBody::new(incoming, settings.read_timeout)),
            AnswerBody::Read(read) => read.into_client_body(),
        }
    };
    let mut response = S3Response::new(body);
    response.status = Some(parts.status);
    response.headers = headers;
    Ok(response)
}

/// Checksums in a GetObject/HeadObject answer (docs/dialects.md rules 14 and 15): s3ferry's stored
/// checksum metadata never reaches the client as metadata; under `x-amz-checksum-mode` it
/// answers for a provider that stored none; and a ranged response carries no full-object
/// checksum, which clients would check against the partial bytes and fail.
fn answer_checksums(
    headers: &mut HeaderMap,
    status: StatusCode,
    operation: Operation,
    checksum_mode: bool,
    ranged: bool,
) {
    let stored = take_stored_checksums(headers);
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
    let reads_object = operation.reads_object();
    let provider_answered = headers
        .keys()
        .any(|n| ChecksumAlgorithm::from_header_name(n.as_str()).is_some());
    if !(reads_object && checksum_mode && status == StatusCode::OK) || provider_answered {
        return;
    }
    for (name, value) in stored {
        if let Some(algorithm) = stored_algorithm(&name) {
            headers.insert(algorithm.header_name(), value);
            headers.insert("x-amz-checksum-type", HeaderValue::from_static("FULL_OBJECT"));
        }
    }
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

pub(super) fn xml_response(status: StatusCode, xml: Bytes) -> S3Response<Body> {
    let mut response = S3Response::new(Body::from(xml));
    response.status = Some(status);
    response
        .headers
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    response
}
