//! The trust boundary: a client's request reaches a provider, signed with the provider's key,
//! only as far as the client's own signature covers it.
//!
//! s3s checks that the headers a signature lists were signed; it does not look at the others.
//! A gateway that re-signs every header it forwards would therefore lend its provider keys to
//! any header added after signing (`x-amz-copy-source` on a presigned PUT turns it into a copy
//! of any object the gateway can read). This module decides, per request and before s3s runs:
//!
//! - which signature form the request uses ([`AuthForm`]); more than one is refused, as AWS
//!   refuses it;
//! - AWS's time rules s3s does not apply: `X-Amz-Expires` at most 604,800 s, a SigV2 `Date` (or
//!   `x-amz-date`) within 15 minutes of now, `host` among SigV4's signed headers;
//! - which headers go on ([`restrict_to_signed`]): every `x-amz-*` header must be signed
//!   (AWS: 403 `AccessDenied`, "There were headers present in the request which were not
//!   signed"); unsigned plain headers pass only if they are ordinary HTTP/S3 request headers
//!   AWS also takes unsigned (`Content-Type`, `Range`, `If-None-Match`, ...), everything else
//!   unsigned is dropped; provider-specific headers (`x-goog-*`, `x-oss-*`, ...) are never
//!   forwarded, since s3ferry cannot route what they name; and a signed header named in
//!   `Connection` (which would make it hop-by-hop and drop it) refuses the request;
//! - for SigV2, which query parameters are signed: SigV2 signs only a fixed list of
//!   sub-resources, so any other parameter that could change the operation is refused.
//!
//! SigV4 signs the whole query string, and SigV2 signs every `x-amz-*` header, so those need no
//! further check.

use http::{HeaderMap, HeaderName, Method};
use time::OffsetDateTime;

use crate::error::GatewayError;
use crate::upstream::sign_v2::SIGNED_SUB_RESOURCES;

/// The longest a SigV4 presigned URL may live: seven days, as AWS enforces
/// (<https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html>).
pub const MAX_PRESIGNED_EXPIRES_SECS: u64 = 604_800;

/// How far a SigV2 request's date may be from now: AWS allows 15 minutes
/// (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/RESTAuthentication.html#RESTAuthenticationTimeStamp>).
pub const MAX_SIGV2_SKEW_SECS: i64 = 15 * 60;

/// How the client signed its request, and so what the signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthForm {
    /// `Authorization: AWS4-HMAC-SHA256 ... SignedHeaders=...`.
    V4Header { signed_headers: Vec<String> },
    /// `?X-Amz-Signature=...&X-Amz-SignedHeaders=...`.
    V4Presigned {
        signed_headers: Vec<String>,
        expires_secs: u64,
    },
    /// `Authorization: AWS <key>:<signature>`.
    V2Header,
    /// `?AWSAccessKeyId=...&Signature=...&Expires=...`.
    V2Presigned,
    /// A browser form upload (`multipart/form-data` POST): its policy covers form fields, no
    /// header.
    PostForm,
    /// No signature at all.
    Anonymous,
}

impl AuthForm {
    /// Whether the signature covers header `name` (lowercase).
    fn signs_header(&self, name: &str, headers: &HeaderMap) -> bool {
        match self {
            Self::V4Header { signed_headers } | Self::V4Presigned { signed_headers, .. } => {
                signed_headers.iter().any(|h| h == name)
            }
            // SigV2's string to sign holds Content-MD5, Content-Type, Date and every x-amz-*
            // header (each once: repeated ones are refused in `restrict_to_signed`).
            Self::V2Header | Self::V2Presigned => {
                name.starts_with("x-amz-")
                    || matches!(name, "content-md5" | "content-type")
                    || (name == "date" && !headers.contains_key("x-amz-date"))
            }
            Self::PostForm | Self::Anonymous => false,
        }
    }

    fn is_v2(&self) -> bool {
        matches!(self, Self::V2Header | Self::V2Presigned)
    }
}

/// Which signature form a request with `query` (its decoded pairs) and `headers` uses. Refuses requests that carry more than one
/// (AWS: "Only one auth mechanism allowed") and signature fields s3s would read differently
/// than this module (repeated, or not in AWS's grammar).
pub fn auth_form(method: &Method, query: &[(String, String)], headers: &HeaderMap) -> Result<AuthForm, GatewayError> {
    let count = |name: &str| query.iter().filter(|(n, _)| n == name).count();
    let v4_query = ["X-Amz-Signature", "X-Amz-Algorithm", "X-Amz-Credential"]
        .iter()
        .any(|n| count(n) > 0);
    let v2_query = count("Signature") > 0;
    let authorization: Vec<&[u8]> = headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .map(http::HeaderValue::as_bytes)
        .collect();
    let forms = usize::from(v4_query) + usize::from(v2_query) + usize::from(!authorization.is_empty());
    let is_form = *method == Method::POST
        && headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    if is_form && forms > 0 {
        // s3s reads any multipart POST as a form signed by its policy, whatever else it
        // carries: a form upload is signed by its policy only, so nothing decides between two.
        return Err(GatewayError::InvalidArgument(
            "a browser form upload (multipart/form-data POST) is signed by its policy fields; it may not carry \
             an Authorization header or a presigned-URL signature"
                .into(),
        ));
    }
    if forms > 1 || authorization.len() > 1 {
        return Err(GatewayError::InvalidArgument(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string \
             parameter or the Authorization header should be specified"
                .into(),
        ));
    }
    if v2_query {
        return Ok(AuthForm::V2Presigned);
    }
    if v4_query {
        let single = |name: &str| -> Result<&str, GatewayError> {
            let mut values = query.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str());
            match (values.next(), values.next()) {
                (Some(v), None) => Ok(v),
                _ => Err(GatewayError::AuthorizationQueryParametersError(format!(
                    "Query-string authentication version 4 requires exactly one {name} parameter"
                ))),
            }
        };
        for required in ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date"] {
            single(required)?;
        }
        let signed_headers = parse_signed_headers(single("X-Amz-SignedHeaders")?).ok_or_else(|| {
            GatewayError::AuthorizationQueryParametersError("X-Amz-SignedHeaders is malformed".into())
        })?;
        let expires_secs = single("X-Amz-Expires")?.parse::<u64>().map_err(|_| {
            GatewayError::AuthorizationQueryParametersError("X-Amz-Expires must be a number of seconds".into())
        })?;
        return Ok(AuthForm::V4Presigned {
            signed_headers,
            expires_secs,
        });
    }
    if let Some(value) = authorization.first() {
        let value = std::str::from_utf8(value)
            .map_err(|_| GatewayError::AuthorizationHeaderMalformed("the Authorization header is not text".into()))?;
        if value.starts_with("AWS ") {
            return Ok(AuthForm::V2Header);
        }
        let signed_headers = v4_authorization_signed_headers(value).ok_or_else(|| {
            GatewayError::AuthorizationHeaderMalformed(
                "The authorization header is malformed; expected AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., \
                 Signature=... or AWS <key>:<signature>"
                    .into(),
            )
        })?;
        return Ok(AuthForm::V4Header { signed_headers });
    }
    Ok(if is_form {
        AuthForm::PostForm
    } else {
        AuthForm::Anonymous
    })
}

/// `a;b;c` -> names, all lowercase header names (AWS's grammar; s3s looks them up as given).
fn parse_signed_headers(list: &str) -> Option<Vec<String>> {
    let names: Vec<String> = list.split(';').map(str::to_string).collect();
    let valid = names.iter().all(|n| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    });
    valid.then_some(names)
}

/// The `SignedHeaders` of `AWS4-HMAC-SHA256 Credential=<c>, SignedHeaders=<h>, Signature=<s>`,
/// read with the same grammar as s3s: exactly three comma-separated fields in that order.
fn v4_authorization_signed_headers(value: &str) -> Option<Vec<String>> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256")?;
    if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    let fields: Vec<&str> = rest.split(',').map(str::trim).collect();
    let [credential, signed, signature] = fields.as_slice() else {
        return None;
    };
    credential.strip_prefix("Credential=")?;
    signature.strip_prefix("Signature=")?;
    parse_signed_headers(signed.strip_prefix("SignedHeaders=")?)
}

/// AWS's rules about time and `host` that s3s does not apply. `now` is passed in so the rules
/// are testable.
pub fn check_time_and_host(form: &AuthForm, headers: &HeaderMap, now: OffsetDateTime) -> Result<(), GatewayError> {
    match form {
        AuthForm::V4Presigned {
            signed_headers,
            expires_secs,
        } => {
            if *expires_secs > MAX_PRESIGNED_EXPIRES_SECS {
                return Err(GatewayError::AuthorizationQueryParametersError(format!(
                    "X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGNED_EXPIRES_SECS}"
                )));
            }
            if !signed_headers.iter().any(|h| h == "host") {
                return Err(GatewayError::AuthorizationQueryParametersError(
                    "X-Amz-SignedHeaders must include host".into(),
                ));
            }
        }
        AuthForm::V4Header { signed_headers } => {
            if !signed_headers.iter().any(|h| h == "host") {
                return Err(headers_not_signed(&["host".to_string()]));
            }
        }
        AuthForm::V2Header => {
            let date = headers.get("x-amz-date").or_else(|| headers.get(http::header::DATE));
            let when = date
                .and_then(|v| v.to_str().ok())
                .and_then(parse_v2_date)
                .ok_or_else(|| {
                    GatewayError::AccessDenied("AWS authentication requires a valid Date or x-amz-date header".into())
                })?;
            if (now - when).whole_seconds().abs() > MAX_SIGV2_SKEW_SECS {
                return Err(GatewayError::RequestTimeTooSkewed(
                    "The difference between the request time and the current time is too large.".into(),
                ));
            }
        }
        AuthForm::V2Presigned | AuthForm::PostForm | AuthForm::Anonymous => {}
    }
    Ok(())
}

/// A SigV2 date: an HTTP date (RFC 7231, also the obsolete RFC 850 and asctime forms), an RFC
/// 2822 date with a numeric zone (`Tue, 27 Mar 2007 19:36:42 +0000`, AWS's own example and what
/// s3cmd sends), or the ISO 8601 basic form some clients put in `x-amz-date`.
fn parse_v2_date(value: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = httpdate::parse_http_date(value) {
        return Some(OffsetDateTime::from(t));
    }
    if let Ok(t) = OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822) {
        return Some(t);
    }
    let basic = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(value, basic)
        .ok()
        .map(|t| t.assume_utc())
}

/// Plain (non-`x-amz-*`) request headers that AWS acts on without requiring them to be signed,
/// and that s3ferry passes on unsigned for the same reason: content metadata, conditions and
/// ranges, and the CORS request headers browsers send.
const UNSIGNED_PLAIN_HEADERS: &[&str] = &[
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-md5",
    "content-type",
    "expires",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-unmodified-since",
    "range",
    "origin",
    "access-control-request-method",
    "access-control-request-headers",
];

/// Headers about this hop and the signature itself: read by hyper, s3s and s3ferry, and never
/// forwarded as they came (the gateway sets its own framing and signature upstream).
const HOP_AND_SIGNATURE_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "expect",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
];

/// `x-amz-*` headers an SDK configured without credentials sends on every read, dropped from an
/// unsigned request instead of refusing it: `x-amz-user-agent` says only who the client is, and
/// without `x-amz-checksum-mode` the answer carries no checksum header, which an SDK takes as
/// an object without a checksum to validate. Every other unsigned `x-amz-*` header still
/// refuses the request (it would be re-signed with the provider's key).
const ANONYMOUS_DROPPED_AMZ_HEADERS: &[&str] = &["x-amz-user-agent", "x-amz-checksum-mode"];

/// Header prefixes of other providers' native APIs. s3ferry routes S3 names only, so a header
/// that names a bucket or object in a provider's own dialect (`x-goog-copy-source`) could reach
/// what no route allows; none is ever forwarded.
const PROVIDER_NATIVE_PREFIXES: &[&str] = &["x-goog-", "x-oss-", "x-bz-", "x-minio-", "x-rgw-", "x-emc-"];

/// Keeps in `headers` only what the signature covers, plus the plain headers AWS takes
/// unsigned (see the module doc). Refuses the request when it carries an unsigned `x-amz-*`
/// header, a provider-native header, a signed header named in `Connection`, or (SigV2) a
/// repeated header its signature reads only once.
pub fn restrict_to_signed(form: &AuthForm, headers: &mut HeaderMap) -> Result<(), GatewayError> {
    for token in connection_tokens(headers) {
        if form.signs_header(&token, headers) || token.starts_with("x-amz-") {
            return Err(GatewayError::InvalidRequest(format!(
                "header '{token}' is named in Connection, which would drop it on the way to the provider; a \
                 signed header must reach the provider as signed"
            )));
        }
    }
    if form.is_v2() {
        for name in ["content-md5", "content-type", "date"] {
            if headers.get_all(name).iter().count() > 1 {
                return Err(GatewayError::InvalidRequest(format!(
                    "header '{name}' is repeated; a SigV2 signature covers it only once"
                )));
            }
        }
    }
    let mut unsigned_amz: Vec<String> = Vec::new();
    let mut dropped: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        let n = name.as_str();
        if let Some(prefix) = PROVIDER_NATIVE_PREFIXES.iter().find(|p| n.starts_with(**p)) {
            return Err(GatewayError::InvalidArgument(format!(
                "s3ferry does not forward provider-native headers ({prefix}*, here '{n}'): use the S3 (x-amz-*) \
                 form, which s3ferry translates for each provider"
            )));
        }
        if form.signs_header(n, headers) || HOP_AND_SIGNATURE_HEADERS.contains(&n) {
            continue;
        }
        if n.starts_with("x-amz-") {
            // A presigned URL carries its signature in the query; s3s still checks a body hash
            // a client sends in x-amz-content-sha256, and s3ferry never forwards it.
            let presigned_body_hash = n == "x-amz-content-sha256" && matches!(form, AuthForm::V4Presigned { .. });
            let anonymous_sdk_header = *form == AuthForm::Anonymous && ANONYMOUS_DROPPED_AMZ_HEADERS.contains(&n);
            if anonymous_sdk_header {
                dropped.push(name.clone());
            } else if !presigned_body_hash {
                unsigned_amz.push(n.to_string());
            }
        } else if !UNSIGNED_PLAIN_HEADERS.contains(&n) {
            dropped.push(name.clone());
        }
    }
    if !unsigned_amz.is_empty() {
        return Err(headers_not_signed(&unsigned_amz));
    }
    for name in dropped {
        headers.remove(name);
    }
    Ok(())
}

/// Headers named in `Connection`, lowercase (`close` and `keep-alive` are options, not names,
/// and are ignored).
pub fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "close" && t != "keep-alive")
        .collect()
}

/// AWS's answer to a header outside the signature.
fn headers_not_signed(names: &[String]) -> GatewayError {
    GatewayError::AccessDenied(format!(
        "There were headers present in the request which were not signed: {}",
        names.join(", ")
    ))
}

/// Query parameters SigV2 does not sign, but that cannot change what a request does: listing
/// and paging parameters. Every other unsigned parameter refuses a SigV2 request, so a captured
/// SigV2 request cannot be turned into another operation by appending `?policy` or `?x-id=...`.
const V2_UNSIGNED_HARMLESS_PARAMS: &[&str] = &[
    "prefix",
    "delimiter",
    "marker",
    "max-keys",
    "list-type",
    "continuation-token",
    "start-after",
    "fetch-owner",
    "encoding-type",
    "key-marker",
    "version-id-marker",
    "upload-id-marker",
    "max-uploads",
    "max-parts",
    "part-number-marker",
];

/// SigV2 only: refuses query parameters the signature does not cover and that could change
/// the operation (see [`V2_UNSIGNED_HARMLESS_PARAMS`]), and repeated parameters (s3s signs a
/// repeated sub-resource as if it were absent).
pub fn check_v2_query(form: &AuthForm, query: &[(String, String)]) -> Result<(), GatewayError> {
    if !form.is_v2() {
        return Ok(());
    }
    let signature_params = ["AWSAccessKeyId", "Signature", "Expires"];
    for (i, (name, _)) in query.iter().enumerate() {
        if query[..i].iter().any(|(n, _)| n == name) {
            return Err(GatewayError::AccessDenied(format!(
                "query parameter '{name}' is repeated; a SigV2 signature covers it only once"
            )));
        }
        let covered = SIGNED_SUB_RESOURCES.contains(&name.as_str())
            || V2_UNSIGNED_HARMLESS_PARAMS.contains(&name.as_str())
            || (matches!(form, AuthForm::V2Presigned) && signature_params.contains(&name.as_str()));
        if !covered {
            return Err(GatewayError::AccessDenied(format!(
                "query parameter '{name}' is not covered by a Signature Version 2 signature; sign the request with \
                 Signature Version 4"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::header_map as headers;

    /// The decoded query pairs of a request target.
    fn query_of(target: &str) -> Vec<(String, String)> {
        let uri: http::Uri = target.parse().expect("uri");
        crate::s3::encoding::parse_query(uri.query().unwrap_or(""))
    }

    const V4_AUTH: &str = "AWS4-HMAC-SHA256 Credential=AK/20261130/us-east-1/s3/aws4_request, \
                           SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=abc";

    fn v4_header_form() -> AuthForm {
        AuthForm::V4Header {
            signed_headers: vec!["host".into(), "x-amz-content-sha256".into(), "x-amz-date".into()],
        }
    }

    #[test]
    fn the_signature_form_is_read_like_s3s_reads_it() {
        let h = headers(&[("authorization", V4_AUTH)]);
        assert_eq!(
            auth_form(&Method::GET, &query_of("/b/k"), &h).expect("v4"),
            v4_header_form()
        );
        let h = headers(&[("authorization", "AWS AK:sig")]);
        assert_eq!(
            auth_form(&Method::GET, &query_of("/b/k"), &h).expect("v2"),
            AuthForm::V2Header
        );
        let presigned = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=c&X-Amz-Date=d\
                         &X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bif-none-match&X-Amz-Signature=s";
        assert_eq!(
            auth_form(&Method::PUT, &query_of(presigned), &HeaderMap::new()).expect("presigned"),
            AuthForm::V4Presigned {
                signed_headers: vec!["host".into(), "if-none-match".into()],
                expires_secs: 60
            }
        );
        let v2 = "/b/k?AWSAccessKeyId=AK&Expires=1&Signature=s";
        assert_eq!(
            auth_form(&Method::GET, &query_of(v2), &HeaderMap::new()).expect("v2 presigned"),
            AuthForm::V2Presigned
        );
        assert_eq!(
            auth_form(&Method::GET, &query_of("/b/k"), &HeaderMap::new()).expect("anonymous"),
            AuthForm::Anonymous
        );
        let form = headers(&[("content-type", "multipart/form-data; boundary=x")]);
        assert_eq!(
            auth_form(&Method::POST, &query_of("/b"), &form).expect("form"),
            AuthForm::PostForm
        );
    }

    #[test]
    fn two_signature_forms_or_repeated_signature_fields_are_refused() {
        let presigned = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=c&X-Amz-Date=d\
                         &X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=s";
        let h = headers(&[("authorization", V4_AUTH)]);
        assert!(auth_form(&Method::GET, &query_of(presigned), &h).is_err());
        let twice = format!("{presigned}&X-Amz-SignedHeaders=host%3Bx-amz-acl");
        assert!(auth_form(&Method::GET, &query_of(&twice), &HeaderMap::new()).is_err());
        let h = headers(&[("authorization", V4_AUTH), ("authorization", "AWS AK:sig")]);
        assert!(auth_form(&Method::GET, &query_of("/b/k"), &h).is_err());
        let h = headers(&[("authorization", "Bearer token")]);
        assert!(auth_form(&Method::GET, &query_of("/b/k"), &h).is_err());
        // A form upload is signed by its policy alone: s3s would read it as a form whatever
        // header or query signature it also carried.
        let form_with_header = headers(&[
            ("content-type", "multipart/form-data; boundary=x"),
            ("authorization", V4_AUTH),
        ]);
        assert!(auth_form(&Method::POST, &query_of("/b"), &form_with_header).is_err());
        let form = headers(&[("content-type", "Multipart/Form-Data; boundary=x")]);
        assert!(auth_form(&Method::POST, &query_of(presigned), &form).is_err());
        assert!(
            auth_form(
                &Method::POST,
                &query_of("/b?AWSAccessKeyId=a&Signature=s&Expires=1"),
                &form
            )
            .is_err()
        );
        let odd = "AWS4-HMAC-SHA256 Credential=c, SignedHeaders=host, SignedHeaders=host;x-amz-acl, Signature=s";
        let h = headers(&[("authorization", odd)]);
        assert!(auth_form(&Method::GET, &query_of("/b/k"), &h).is_err());
    }

    #[test]
    fn unsigned_amz_headers_are_refused_like_aws() {
        let mut h = headers(&[
            ("host", "h"),
            ("x-amz-date", "d"),
            ("x-amz-content-sha256", "x"),
            ("x-amz-copy-source", "/other/private.txt"),
        ]);
        let err = restrict_to_signed(&v4_header_form(), &mut h).expect_err("refused");
        assert_eq!(err.code_and_status(), ("AccessDenied", http::StatusCode::FORBIDDEN));
        assert!(err.to_string().contains("x-amz-copy-source"), "{err}");
        for name in [
            "x-amz-acl",
            "x-amz-tagging",
            "x-amz-website-redirect-location",
            "x-amz-copy-source-if-match",
        ] {
            let presigned = AuthForm::V4Presigned {
                signed_headers: vec!["host".into()],
                expires_secs: 60,
            };
            let mut h = headers(&[("host", "h"), (name, "v")]);
            assert!(restrict_to_signed(&presigned, &mut h).is_err(), "{name}");
        }
    }

    #[test]
    fn an_unsigned_request_loses_the_sdks_informational_headers_and_is_refused_for_any_other() {
        let mut h = headers(&[
            ("host", "h"),
            ("x-amz-user-agent", "aws-sdk-rust"),
            ("x-amz-checksum-mode", "ENABLED"),
            ("range", "bytes=0-1"),
        ]);
        restrict_to_signed(&AuthForm::Anonymous, &mut h).expect("passes");
        assert!(!h.contains_key("x-amz-user-agent") && !h.contains_key("x-amz-checksum-mode"));
        assert!(h.contains_key("range"));
        for name in [
            "x-amz-request-payer",
            "x-amz-copy-source",
            "x-amz-content-sha256",
            "x-amz-acl",
        ] {
            let mut h = headers(&[("host", "h"), ("x-amz-user-agent", "sdk"), (name, "v")]);
            let err = restrict_to_signed(&AuthForm::Anonymous, &mut h).expect_err(name);
            assert!(err.to_string().contains(name), "{err}");
        }
        // A signed request's unsigned user agent is still refused: its SDK signs it.
        let mut h = headers(&[("host", "h"), ("x-amz-user-agent", "sdk")]);
        assert!(restrict_to_signed(&v4_header_form(), &mut h).is_err());
    }

    #[test]
    fn unsigned_plain_headers_pass_only_when_aws_takes_them_unsigned() {
        let presigned = AuthForm::V4Presigned {
            signed_headers: vec!["host".into()],
            expires_secs: 60,
        };
        let mut h = headers(&[
            ("host", "h"),
            ("content-type", "text/plain"),
            ("if-none-match", "*"),
            ("range", "bytes=0-1"),
            ("x-custom", "dropped"),
            ("user-agent", "dropped"),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ]);
        restrict_to_signed(&presigned, &mut h).expect("passes");
        for kept in ["host", "content-type", "if-none-match", "range", "x-amz-content-sha256"] {
            assert!(h.contains_key(kept), "{kept}");
        }
        assert!(!h.contains_key("x-custom") && !h.contains_key("user-agent"));
    }

    #[test]
    fn provider_native_headers_are_never_forwarded() {
        let form = AuthForm::V4Header {
            signed_headers: vec!["host".into(), "x-goog-copy-source".into()],
        };
        let mut h = headers(&[("host", "h"), ("x-goog-copy-source", "/b/k")]);
        assert!(restrict_to_signed(&form, &mut h).is_err());
        let mut h = headers(&[("host", "h"), ("x-oss-object-acl", "public-read")]);
        assert!(restrict_to_signed(&AuthForm::V2Header, &mut h).is_err());
    }

    #[test]
    fn a_signed_header_named_in_connection_refuses_the_request() {
        let form = AuthForm::V4Presigned {
            signed_headers: vec!["host".into(), "if-none-match".into()],
            expires_secs: 60,
        };
        let mut h = headers(&[
            ("host", "h"),
            ("if-none-match", "*"),
            ("connection", "keep-alive, If-None-Match"),
        ]);
        assert!(restrict_to_signed(&form, &mut h).is_err());
        let mut h = headers(&[("host", "h"), ("connection", "close")]);
        restrict_to_signed(&form, &mut h).expect("close is an option, not a header");
    }

    #[test]
    fn sigv2_signs_every_amz_header_but_only_one_content_type() {
        let mut h = headers(&[("date", "d"), ("x-amz-acl", "private"), ("x-amz-meta-a", "1")]);
        restrict_to_signed(&AuthForm::V2Header, &mut h).expect("all x-amz-* are signed in v2");
        let mut h = headers(&[("content-type", "a"), ("content-type", "b")]);
        assert!(restrict_to_signed(&AuthForm::V2Header, &mut h).is_err());
    }

    #[test]
    fn presigned_urls_live_at_most_a_week_and_sign_host() {
        let now = OffsetDateTime::now_utc();
        let week = AuthForm::V4Presigned {
            signed_headers: vec!["host".into()],
            expires_secs: MAX_PRESIGNED_EXPIRES_SECS,
        };
        check_time_and_host(&week, &HeaderMap::new(), now).expect("a week is allowed");
        let years = AuthForm::V4Presigned {
            signed_headers: vec!["host".into()],
            expires_secs: 31 * 365 * 86_400,
        };
        let err = check_time_and_host(&years, &HeaderMap::new(), now).expect_err("31 years");
        assert_eq!(err.code_and_status().0, "AuthorizationQueryParametersError");
        let no_host = AuthForm::V4Presigned {
            signed_headers: vec!["x-amz-date".into()],
            expires_secs: 60,
        };
        assert!(check_time_and_host(&no_host, &HeaderMap::new(), now).is_err());
        let header_no_host = AuthForm::V4Header {
            signed_headers: vec!["x-amz-date".into()],
        };
        assert!(check_time_and_host(&header_no_host, &HeaderMap::new(), now).is_err());
    }

    #[test]
    fn sigv2_dates_are_within_fifteen_minutes() {
        let now = OffsetDateTime::now_utc();
        let date = |t: OffsetDateTime| httpdate::fmt_http_date(t.into());
        let ok = headers(&[("date", &date(now - time::Duration::minutes(14)))]);
        check_time_and_host(&AuthForm::V2Header, &ok, now).expect("14 minutes");
        for skew in [time::Duration::minutes(16), time::Duration::minutes(-16)] {
            let h = headers(&[("date", &date(now - skew))]);
            let err = check_time_and_host(&AuthForm::V2Header, &h, now).expect_err("skewed");
            assert_eq!(err.code_and_status().0, "RequestTimeTooSkewed");
        }
        for old in [
            "Mon, 01 Jan 2001 00:00:00 GMT",
            "Thu, 01 Jan 2099 00:00:00 GMT",
            "20010101T000000Z",
        ] {
            let h = headers(&[("x-amz-date", old)]);
            assert!(check_time_and_host(&AuthForm::V2Header, &h, now).is_err(), "{old}");
        }
        assert!(check_time_and_host(&AuthForm::V2Header, &HeaderMap::new(), now).is_err());
        let basic = now.format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ));
        let h = headers(&[("x-amz-date", &basic.expect("format"))]);
        check_time_and_host(&AuthForm::V2Header, &h, now).expect("basic ISO 8601 now");
    }

    #[test]
    fn sigv2_refuses_query_parameters_it_does_not_sign() {
        let ok = query_of("/b/?prefix=a&max-keys=2&acl");
        check_v2_query(&AuthForm::V2Header, &ok).expect("signed and harmless parameters");
        for bad in [
            "/b/k?x-id=PutBucketPolicy",
            "/b/?policy&policy",
            "/b/k?x-amz-acl=public-read",
            "/b/?ownershipControls",
        ] {
            assert!(check_v2_query(&AuthForm::V2Header, &query_of(bad)).is_err(), "{bad}");
        }
        check_v2_query(&v4_header_form(), &query_of("/b/k?x-id=GetObject")).expect("SigV4 signs every parameter");
    }
}
