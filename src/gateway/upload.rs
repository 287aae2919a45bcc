//! A client body's way to the provider: how the client framed it, the form the provider gets
//! (unchanged, de-chunked, or re-framed with its verified trailer), the checksums s3ferry checks
//! itself, and the small bodies s3ferry reads and writes again (a part list in the provider's
//! form, `Content-MD5` where the dialect needs it).

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use s3s::{Body, S3Request};

use super::keep_checksum::TrailerKeeping;
use super::plan::RequestPlan;
use crate::body::{
    self, ChecksumCheck, ExpectedChecksum, FailureSlot, HoldBackLast, UnsignedTrailerBody, UploadFailure,
};
use crate::checksum::{ChecksumAlgorithm, mismatched_header};
use crate::config::SignatureVersion;
use crate::error::GatewayError;
use crate::rewrite;
use crate::route::Route;
use crate::s3::headers::{CHUNKED_FRAMING_HEADERS, content_length};
use crate::s3::operation::Operation;
use crate::small_body::{Buffered, MAX_CONTROL_BODY, ReadError, ReadLimits, read_capped};
use crate::upstream::exchange::Exchange;
use crate::upstream::sign::{EMPTY_PAYLOAD_SHA256, STREAMING_UNSIGNED_PAYLOAD_TRAILER, UNSIGNED_PAYLOAD};
use crate::upstream::{OutgoingRequest, UpstreamSettings};

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
    // No Content-Length here means an empty body: the edge refused any other
    // (`body::require_stated_length`).
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

/// The exchange that carries the client's request to the route's provider as `plan` says: the
/// body in its upstream form with the checks s3ferry makes on it, then the part list and
/// `Content-MD5` where the provider needs them. With it, for a PutObject whose trailing
/// checksum the provider cannot take, what keeps that checksum once the upload is answered.
pub(super) async fn exchange_for(
    req: &mut S3Request<Body>,
    route: &Route,
    encoded_key: String,
    plan: &mut RequestPlan,
) -> Result<(Exchange, Option<TrailerKeeping>), GatewayError> {
    let operation = plan.response.operation;
    let slot = FailureSlot::default();
    let mut keeping = plan.keep_trailer_by_copy.then(|| TrailerKeeping::new(&encoded_key));
    let unforwarded_trailer = keeping.as_ref().map(TrailerKeeping::slot);
    let request = build_outgoing(req, route, encoded_key, plan, &slot, unforwarded_trailer).await?;
    let mut exchange = Exchange::with_client_body(request, slot);
    if plan.rewrite_part_list {
        translate_part_list(&mut exchange, route).await?;
    }
    if plan.content_md5 && lacks_content_md5(&exchange.request) {
        let bytes = read_small_body(&mut exchange, route, operation).await?;
        set_content_md5(&mut exchange.request, bytes)?;
    }
    if let Some(keeping) = &mut keeping {
        keeping.remember_sent(&exchange.request.headers);
    }
    Ok((exchange, keeping))
}

/// Assembles the upstream request: address, query, headers and the body in its upstream form.
async fn build_outgoing(
    req: &mut S3Request<Body>,
    route: &Route,
    encoded_key: String,
    plan: &mut RequestPlan,
    slot: &FailureSlot,
    unforwarded_trailer: Option<body::VerifiedSlot>,
) -> Result<OutgoingRequest, GatewayError> {
    let mut headers = std::mem::take(&mut plan.headers);
    let query = std::mem::take(&mut plan.query);
    let body_check = plan.body.clone();
    let input = std::mem::replace(&mut req.input, Body::empty());
    let framing = framing_of(&req.headers)?;
    // A provider that stores a body before comparing it with the client's digests (the local
    // provider) would keep corrupted bytes and answer BadDigest: s3ferry compares them first,
    // holding back the last piece, and the headers still go on so the provider stores them.
    let before_storing = body_check.object_data && !route.provider.settings.profile.verifies_before_storing;
    let content_md5 = if before_storing {
        content_md5_of(&req.headers)?
    } else {
        None
    };
    let header_check = body_check
        .withheld
        .map(|w| ChecksumCheck::new(w.algorithm, ExpectedChecksum::Header(w.value)))
        .or_else(|| before_storing.then(|| forwarded_checksum_check(&headers)).flatten());
    let hold_back = |input: Body, check: Option<ChecksumCheck>| {
        let held = HoldBackLast::new(input, check, slot.clone());
        match content_md5 {
            Some(expected) => held.expecting_md5(expected),
            None => held,
        }
    };
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
            let held = hold_back(input, header_check);
            if held.checks_anything() {
                verify_empty_upload(held, slot).await?;
            }
            (body::empty(), payload.to_string())
        }
        Framing::Unchanged { payload_hash, length } => {
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(length));
            let held = hold_back(input, header_check);
            let body = if held.checks_anything() {
                // Checked by s3ferry: the last piece waits for the checksum to match.
                held.into_upstream_body()
            } else {
                body::verified_passthrough(held.into_inner(), slot.clone())
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
            // s3s does not compare the decoded body with its announced length: s3ferry does.
            let mut held = hold_back(input, check).expecting_length(length);
            let forwarded =
                trailer.filter(|a| body_check.object_data && forwards_trailer(&route.provider.settings, *a, &headers));
            if let Some(algorithm) = forwarded {
                // The provider stores the checksum: the trailer goes on, after it verified.
                set_unsigned_trailer_framing(&mut headers, length, algorithm);
                let body = UnsignedTrailerBody::new(held, algorithm, length).into_upstream_body();
                (body, STREAMING_UNSIGNED_PAYLOAD_TRAILER.to_string())
            } else {
                if let (Some(report), Some(_)) = (unforwarded_trailer, trailer) {
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
        method: req.method.clone(),
        bucket: Some(route.upstream_bucket.clone()),
        encoded_key,
        query,
        headers,
        body,
        payload_hash,
    })
}

/// The client's `Content-MD5`, decoded; `InvalidDigest` (as AWS answers) unless it is the
/// base64 of 16 bytes.
fn content_md5_of(headers: &HeaderMap) -> Result<Option<[u8; 16]>, GatewayError> {
    use base64::Engine as _;
    let Some(value) = headers.get("content-md5") else {
        return Ok(None);
    };
    base64::engine::general_purpose::STANDARD
        .decode(value.as_bytes())
        .ok()
        .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
        .map(Some)
        .ok_or(GatewayError::InvalidDigest)
}

/// A check of the `x-amz-checksum-*` header that goes on to the provider, for a provider that
/// compares it only after storing the body.
fn forwarded_checksum_check(headers: &HeaderMap) -> Option<ChecksumCheck> {
    headers.iter().find_map(|(name, value)| {
        let algorithm = ChecksumAlgorithm::from_header_name(name.as_str())?;
        let value = value.to_str().ok()?;
        Some(ChecksumCheck::new(
            algorithm,
            ExpectedChecksum::Header(value.to_string()),
        ))
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
            return Err(failure.into());
        }
    }
    Ok(body::empty())
}

/// Whether a client's verified `algorithm` trailer goes on to the provider (docs/dialects.md rule
/// 10c): it takes unsigned-trailer uploads and the algorithm, signs with SigV4 (SigV2 knows no
/// aws-chunked), and gets no `x-amz-checksum-*` header besides (AWS refuses both together).
fn forwards_trailer(settings: &UpstreamSettings, algorithm: ChecksumAlgorithm, headers: &HeaderMap) -> bool {
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

/// Whether a request has a body but no `Content-MD5` of the client's.
fn lacks_content_md5(outgoing: &OutgoingRequest) -> bool {
    let has_body = outgoing
        .headers
        .get(http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0");
    has_body && !outgoing.headers.contains_key("content-md5")
}

/// Reads a small request body (an XML control document) into memory, with a cap and under the
/// gateway's body budget (see `small_body`); a body that failed verification reports that
/// failure. The announced length is taken from the budget before the first byte is read, so a
/// request refused for lack of room has sent nothing upstream.
pub(super) async fn read_small_body(
    exchange: &mut Exchange,
    route: &Route,
    operation: Operation,
) -> Result<Buffered, GatewayError> {
    let outgoing = &mut exchange.request;
    let body = std::mem::replace(&mut outgoing.body, body::empty());
    let limits = ReadLimits {
        max: MAX_CONTROL_BODY,
        idle: route.provider.settings.read_timeout,
    };
    let announced = content_length(&outgoing.headers);
    let read = read_capped(body, announced, limits, route.provider.budget()).await;
    read.map_err(|e| match (exchange.body_failure(), e) {
        (Some(failure), _) => failure.into(),
        (None, ReadError::Overloaded) => GatewayError::SlowDown,
        (None, e) => GatewayError::InvalidRequest(format!("cannot read the {operation} body: {e}")),
    })
}

/// Replaces the body with `bytes`, signed with their SHA-256; the body keeps their share of
/// the budget until it has been sent.
fn set_small_body(outgoing: &mut OutgoingRequest, bytes: Buffered) {
    outgoing
        .headers
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    outgoing.payload_hash = crate::upstream::sign::hex_sha256(&bytes);
    outgoing.body = bytes.into_upstream_body();
}

/// Sends `bytes` with `Content-MD5` instead of the client's CRC (docs/dialects.md rule 12). A CRC
/// header still present (the provider takes the algorithm elsewhere) is checked here and dropped.
pub(super) fn set_content_md5(outgoing: &mut OutgoingRequest, bytes: Buffered) -> Result<(), GatewayError> {
    use base64::Engine as _;
    use md5::Digest as _;
    if let Some(algorithm) = mismatched_header(&outgoing.headers, &bytes) {
        return Err(UploadFailure::ChecksumMismatch { algorithm }.into());
    }
    for algorithm in ChecksumAlgorithm::ALL {
        outgoing.headers.remove(algorithm.header_name());
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

/// Replaces a small body the client sent with `replacement` (a control document s3ferry wrote
/// again): the client's checksums are checked against what it sent, then give way to a
/// Content-MD5 of the replacement, which providers take for operations that require one.
pub(super) fn replace_small_body(
    outgoing: &mut OutgoingRequest,
    sent: Buffered,
    replacement: Bytes,
) -> Result<(), GatewayError> {
    use base64::Engine as _;
    use md5::Digest as _;
    if let Some(algorithm) = mismatched_header(&outgoing.headers, &sent) {
        return Err(UploadFailure::ChecksumMismatch { algorithm }.into());
    }
    if let Some(claimed) = outgoing.headers.remove("content-md5") {
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&sent));
        if claimed.as_bytes().trim_ascii() != md5.as_bytes() {
            return Err(GatewayError::BadDigest(
                "the Content-MD5 you specified did not match what we received".into(),
            ));
        }
    }
    for algorithm in ChecksumAlgorithm::ALL {
        outgoing.headers.remove(algorithm.header_name());
    }
    set_content_md5(outgoing, sent.replaced_by(replacement))
}

/// A CompleteMultipartUpload body (small XML, read with a cap) with each part's ETag in the
/// provider's form and without part checksums the provider does not take; re-signed with the
/// hash of the new body.
async fn translate_part_list(exchange: &mut Exchange, route: &Route) -> Result<(), GatewayError> {
    let bytes = read_small_body(exchange, route, Operation::CompleteMultipartUpload).await?;
    let rewritten =
        rewrite::provider_values::rewrite_complete_multipart_request(&bytes, &route.provider.settings.profile)
            .map_err(|e| GatewayError::InvalidRequest(format!("malformed CompleteMultipartUpload body: {e}")))?;
    let outgoing = &mut exchange.request;
    outgoing.headers.remove("content-md5");
    set_small_body(outgoing, bytes.replaced_by(Bytes::from(rewritten)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
