//! SigV2 client signatures, checked in constant time before s3s checks them.
//!
//! s3s compares SigV2 signatures with `!=`, which returns at the first differing byte: over
//! many tries, its timing tells an attacker how much of a forged signature is right. s3ferry
//! computes the same string to sign (the rules of s3s 0.14's `sig_v2`, which follow
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/RESTAuthentication.html>) and
//! compares in constant time first. A wrong signature never reaches s3s's comparison; a right
//! one is compared again by s3s, which then learns nothing an attacker could use.

use base64::Engine as _;
use http::{HeaderMap, Method};
use subtle::ConstantTimeEq;

use super::ClientAuth;
use super::boundary::AuthForm;
use crate::error::GatewayError;
use crate::upstream::sign_v2::SIGNED_SUB_RESOURCES;

/// The request parts a SigV2 signature covers.
pub struct SignedV2<'a> {
    pub method: &'a Method,
    /// The path as sent (SigV2 signs it as received, not decoded).
    pub raw_path: &'a str,
    /// The decoded query pairs.
    pub query: &'a [(String, String)],
    pub headers: &'a HeaderMap,
    /// The bucket of a virtual-hosted-style request.
    pub virtual_host_bucket: Option<&'a str>,
}

/// Checks a SigV2 request's signature against `keys` in constant time. Other forms pass.
pub fn verify(form: &AuthForm, request: &SignedV2<'_>, keys: &ClientAuth) -> Result<(), GatewayError> {
    let query = request.query;
    let (access_key, signature) = match form {
        AuthForm::V2Header => {
            let value = request
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("AWS "))
                .and_then(|v| v.split_once(':'));
            match value {
                Some((key, signature)) => (key.to_string(), signature.to_string()),
                None => {
                    return Err(GatewayError::AuthorizationHeaderMalformed(
                        "expected AWS <key>:<signature>".into(),
                    ));
                }
            }
        }
        AuthForm::V2Presigned => {
            let get = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
            match (get("AWSAccessKeyId"), get("Signature")) {
                (Some(key), Some(signature)) => (key, signature),
                _ => {
                    return Err(GatewayError::AccessDenied(
                        "a SigV2 presigned URL needs AWSAccessKeyId, Signature and Expires".into(),
                    ));
                }
            }
        }
        _ => return Ok(()),
    };
    let Some(secret) = keys.secret(&access_key) else {
        return Err(GatewayError::InvalidAccessKeyId);
    };
    let presigned = matches!(form, AuthForm::V2Presigned);
    let expected = signature_of(&string_to_sign(request, query, presigned), secret.expose());
    check_signature(expected.as_bytes(), signature.as_bytes())
}

/// Compares a signature s3ferry computed with the one a client sent, in constant time
/// (`SignatureDoesNotMatch` unless equal); form policies are checked with it too.
pub(crate) fn check_signature(expected: &[u8], given: &[u8]) -> Result<(), GatewayError> {
    if bool::from(expected.ct_eq(given)) {
        Ok(())
    } else {
        Err(GatewayError::SignatureDoesNotMatch)
    }
}

/// `base64(HMAC-SHA1(secret, string_to_sign))`.
pub(crate) fn signature_of(string_to_sign: &str, secret: &str) -> String {
    let mac = crate::upstream::sign_v2::hmac_sha1(secret.as_bytes(), string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac)
}

/// The value of a header that appears exactly once (with valid text), as s3s reads it.
fn unique<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter().filter_map(|v| v.to_str().ok());
    match (values.next(), values.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

/// SigV2's string to sign: verb, Content-MD5, Content-Type, Date (or Expires), the `x-amz-*`
/// headers in name order, and the resource with its signed sub-resources.
fn string_to_sign(request: &SignedV2<'_>, query: &[(String, String)], presigned: bool) -> String {
    let headers = request.headers;
    let mut out = String::with_capacity(256);
    out.push_str(request.method.as_str());
    out.push('\n');
    out.push_str(unique(headers, "content-md5").unwrap_or(""));
    out.push('\n');
    out.push_str(unique(headers, "content-type").unwrap_or(""));
    out.push('\n');
    if presigned {
        let expires = query.iter().filter(|(n, _)| n == "Expires").map(|(_, v)| v.as_str());
        out.push_str(single(expires).unwrap_or(""));
    } else if unique(headers, "x-amz-date").is_none() {
        out.push_str(unique(headers, "date").unwrap_or(""));
    }
    out.push('\n');
    let mut amz_names: Vec<&str> = headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|n| n.starts_with("x-amz-"))
        .collect();
    amz_names.sort_unstable();
    amz_names.dedup();
    for name in amz_names {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::trim)
            .collect();
        if values.is_empty() {
            continue;
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    if let Some(bucket) = request.virtual_host_bucket {
        out.push('/');
        out.push_str(bucket);
    }
    out.push_str(request.raw_path);
    let mut first = true;
    for name in SIGNED_SUB_RESOURCES {
        let values = query.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str());
        if let Some(value) = single(values) {
            out.push(if first { '?' } else { '&' });
            first = false;
            out.push_str(name);
            if !value.is_empty() {
                out.push('=');
                out.push_str(value);
            }
        }
    }
    out
}

fn single<'a>(mut values: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    match (values.next(), values.next()) {
        (Some(v), None) => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::encoding::parse_query;
    use http::HeaderValue;

    /// AWS's own example (RESTAuthentication, "Object GET"), with its published signature.
    #[test]
    fn aws_documentation_example_verifies() {
        let keys = ClientAuth::from_pairs(&[("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")]);
        let check = |signature: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert("date", HeaderValue::from_static("Tue, 27 Mar 2007 19:36:42 +0000"));
            headers.insert("authorization", HeaderValue::from_static(signature));
            let request = SignedV2 {
                method: &Method::GET,
                raw_path: "/photos/puppy.jpg",
                query: &[],
                headers: &headers,
                virtual_host_bucket: Some("awsexamplebucket1"),
            };
            verify(&AuthForm::V2Header, &request, &keys)
        };
        check("AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=").expect("AWS's example signature");
        let err = check("AWS AKIAIOSFODNN7EXAMPLE:qgk2+6Sv9/oM7G3qLEjTH1a1l1X=").expect_err("one byte off");
        assert_eq!(err.code_and_status().0, "SignatureDoesNotMatch");
    }

    #[test]
    fn an_unknown_key_is_refused_before_any_comparison() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("AWS NOBODY:sig"));
        let request = SignedV2 {
            method: &Method::GET,
            raw_path: "/b/k",
            query: &[],
            headers: &headers,
            virtual_host_bucket: None,
        };
        let keys = ClientAuth::from_pairs(&[("AK", "SK")]);
        let err = verify(&AuthForm::V2Header, &request, &keys).expect_err("unknown key");
        assert_eq!(err.code_and_status().0, "InvalidAccessKeyId");
    }

    #[test]
    fn sub_resources_are_signed_in_order_and_only_once() {
        let headers = HeaderMap::new();
        let query = parse_query("versioning&acl&prefix=x");
        let request = SignedV2 {
            method: &Method::GET,
            raw_path: "/b/",
            query: &query,
            headers: &headers,
            virtual_host_bucket: None,
        };
        assert_eq!(string_to_sign(&request, &query, false), "GET\n\n\n\n/b/?acl&versioning");
        let query = parse_query("acl&acl");
        assert_eq!(string_to_sign(&request, &query, false), "GET\n\n\n\n/b/");
    }
}
