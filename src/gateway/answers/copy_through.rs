//! CopyObject and UploadPartCopy done by s3ferry itself, streaming the source through: when the
//! source lives on another provider than the destination (another route, or the old provider
//! of a bucket under lazy migration), the destination provider cannot copy it server-side.
//!
//! Each side gets its own dialect: the source's conditional ETags in the source provider's
//! form, the written object's headers in the destination's (storage class, ACL, conditional
//! and checksum headers, as for a client's PutObject), and the result's ETag in the client's.

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::body::IdleTimeoutBody;
use crate::checksum::take_stored_checksums;
use crate::error::GatewayError;
use crate::migration::copy::{preserved_headers, read_tagging, translate_copy_headers};
use crate::rewrite::copy_result::render_copy_result;
use crate::route::Route;
use crate::s3::encoding::uri_encode;
use crate::s3::headers::content_length;
use crate::small_body::MAX_SMALL_ANSWER;
use crate::upstream::exchange::Exchange;
use crate::upstream::sign::UNSIGNED_PAYLOAD;
use crate::upstream::{OutgoingRequest, Upstream};

/// Where the copy reads from.
pub struct CopySource<'a> {
    pub provider: &'a Upstream,
    pub bucket: &'a str,
    pub key: &'a str,
    pub version_id: Option<&'a str>,
}

/// Copies `source` into the destination (`route`, `encoded_key`) as CopyObject (no `upload`)
/// or UploadPartCopy (`upload` = part number and upload id). Returns the XML result.
pub(in crate::gateway) async fn copy_through(
    source: CopySource<'_>,
    route: &Route,
    encoded_key: &str,
    client_headers: &HeaderMap,
    upload: Option<(String, String)>,
) -> Result<String, GatewayError> {
    let mut get_headers = HeaderMap::new();
    for (from, to) in [
        ("x-amz-copy-source-if-match", http::header::IF_MATCH),
        ("x-amz-copy-source-if-none-match", http::header::IF_NONE_MATCH),
        ("x-amz-copy-source-if-modified-since", http::header::IF_MODIFIED_SINCE),
        (
            "x-amz-copy-source-if-unmodified-since",
            http::header::IF_UNMODIFIED_SINCE,
        ),
    ] {
        if let Some(v) = client_headers.get(from) {
            // ETags in the source provider's form (OSS: uppercase); dates pass unchanged.
            let value = v
                .to_str()
                .ok()
                .and_then(|text| HeaderValue::from_str(&source.provider.settings.profile.provider_etag(text)).ok())
                .unwrap_or_else(|| v.clone());
            get_headers.insert(to, value);
        }
    }
    if upload.is_some()
        && let Some(range) = client_headers.get("x-amz-copy-source-range")
    {
        get_headers.insert(http::header::RANGE, range.clone());
    }
    let mut get = OutgoingRequest {
        method: Method::GET,
        bucket: Some(source.bucket.to_string()),
        encoded_key: uri_encode(source.key.as_bytes(), true),
        query: source
            .version_id
            .map(|v| vec![("versionId".to_string(), v.to_string())])
            .unwrap_or_default(),
        headers: get_headers,
        body: crate::body::empty(),
        payload_hash: crate::upstream::sign::EMPTY_PAYLOAD_SHA256.to_string(),
    };
    get.headers.remove(http::header::HOST);
    let response = Exchange::new(get).send(source.provider).await?;
    match response.status() {
        s if s.is_success() => {}
        StatusCode::NOT_FOUND => {
            return Err(GatewayError::NoSuchKey {
                key: source.key.to_string(),
            });
        }
        StatusCode::NOT_MODIFIED | StatusCode::PRECONDITION_FAILED => return Err(GatewayError::PreconditionFailed),
        s => {
            return Err(GatewayError::UpstreamProtocol {
                provider: source.provider.settings.name.clone(),
                cause: format!("GET of the copy source answered {s}"),
            });
        }
    }
    let (parts, body) = response.into_parts();
    let length = content_length(&parts.headers).ok_or_else(|| GatewayError::UpstreamProtocol {
        provider: source.provider.settings.name.clone(),
        cause: "the copy source has no Content-Length".into(),
    })?;

    let mut headers = if upload.is_some() {
        HeaderMap::new()
    } else {
        let mut headers = object_headers(&source, &parts.headers, client_headers).await;
        translate_copy_headers(
            &route.provider.settings.profile,
            &route.provider.settings.name,
            &mut headers,
        )?;
        headers
    };
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(length));
    let query = match &upload {
        Some((part, id)) => vec![
            ("partNumber".to_string(), part.clone()),
            ("uploadId".to_string(), id.clone()),
        ],
        None => Vec::new(),
    };
    let put = OutgoingRequest {
        method: Method::PUT,
        bucket: Some(route.upstream_bucket.clone()),
        encoded_key: encoded_key.to_string(),
        query,
        headers,
        body: http_body_util::BodyExt::boxed(IdleTimeoutBody::new(body, source.provider.settings.read_timeout)),
        payload_hash: UNSIGNED_PAYLOAD.to_string(),
    };
    let written = Exchange::new(put)
        .send_collect(&route.provider, MAX_SMALL_ANSWER)
        .await?;
    if !written.status().is_success() {
        let code = crate::error::parse_error_code(written.body())
            .map(|(c, _)| c)
            .unwrap_or_default();
        return Err(GatewayError::UpstreamProtocol {
            provider: route.provider.settings.name.clone(),
            cause: format!("writing the copy answered {} {code}", written.status()),
        });
    }
    let etag = written
        .headers()
        .get(http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(|etag| route.provider.settings.profile.client_etag(etag))
        .unwrap_or_default();
    let now = crate::s3::timestamp::s3_timestamp(time::OffsetDateTime::now_utc());
    Ok(render_copy_result(upload.is_some(), &now, &etag))
}

/// Headers of the new object, in the client's (AWS) form: the source's metadata (or the
/// request's, with `x-amz-metadata-directive: REPLACE`), the request's storage class, ACL and
/// encryption, and the source's tags (or the request's, with `x-amz-tagging-directive: REPLACE`).
async fn object_headers(source: &CopySource<'_>, source_headers: &HeaderMap, client: &HeaderMap) -> HeaderMap {
    let directive = |name: &str| {
        client
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("REPLACE"))
    };
    let mut headers = if directive("x-amz-metadata-directive") {
        let mut h = preserved_headers(client);
        // s3ferry's own metadata names, which clients may not set (the source's travel below).
        take_stored_checksums(&mut h);
        h
    } else {
        let mut h = preserved_headers(source_headers);
        h.remove("x-amz-storage-class");
        h
    };
    for (name, value) in client {
        let n = name.as_str();
        if n == "x-amz-storage-class"
            || n == "x-amz-acl"
            || n.starts_with("x-amz-grant-")
            || n.starts_with("x-amz-server-side-encryption")
        {
            headers.insert(name.clone(), value.clone());
        }
    }
    if directive("x-amz-tagging-directive") {
        if let Some(t) = client.get("x-amz-tagging") {
            headers.insert(HeaderName::from_static("x-amz-tagging"), t.clone());
        }
    } else if let Some(tagging) = read_tagging(source.provider, source.bucket, source.key).await
        && let Ok(v) = HeaderValue::from_str(&tagging)
    {
        headers.insert(HeaderName::from_static("x-amz-tagging"), v);
    }
    headers
}
