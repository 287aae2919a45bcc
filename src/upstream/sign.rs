//! AWS Signature Version 4 for requests s3ferry sends upstream: pure functions, no network.
//!
//! The caller builds the path and query in canonical form (see `s3::encoding` and `upstream::address`) and sends
//! exactly those bytes, so what is signed is what goes on the wire. Checked against the
//! examples in the S3 SigV4 documentation (tests below).

use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, Method};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

/// Payload hash for a body s3ferry does not hash (streamed, verified elsewhere).
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Payload hash for an `aws-chunked` body with unsigned chunks and an unsigned trailer.
pub const STREAMING_UNSIGNED_PAYLOAD_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/// SHA-256 of the empty body.
pub const EMPTY_PAYLOAD_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Whose key signs, for which region, at what time.
pub struct SigningParams<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub time: OffsetDateTime,
}

/// Headers that are signed when present, besides `host` and every `x-amz-*` header. Other
/// headers travel unsigned so that nothing between s3ferry and the provider can break the
/// signature by normalising them.
const SIGNED_PLAIN_HEADERS: &[&str] = &["host", "content-md5", "content-type", "range", "date"];

fn is_signed(name: &str) -> bool {
    name.starts_with("x-amz-") || SIGNED_PLAIN_HEADERS.contains(&name)
}

/// Adds `x-amz-date`, `x-amz-content-sha256` and `authorization` to `headers`.
/// `headers` must already hold `host`.
pub fn sign_v4(
    method: &Method,
    canonical_path: &str,
    canonical_query: &str,
    headers: &mut HeaderMap,
    payload_hash: &str,
    params: &SigningParams<'_>,
) {
    let amz_date = params
        .time
        .format(format_description!("[year][month][day]T[hour][minute][second]Z"));
    let amz_date = amz_date.unwrap_or_default();
    let date = &amz_date[..8];

    if let Ok(v) = HeaderValue::from_str(&amz_date) {
        headers.insert("x-amz-date", v);
    }
    if let Ok(v) = HeaderValue::from_str(payload_hash) {
        headers.insert("x-amz-content-sha256", v);
    }

    let (canonical_headers, signed_headers) = canonical_headers(headers);
    let canonical_request =
        format!("{method}\n{canonical_path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}");
    let scope = format!("{date}/{}/s3/aws4_request", params.region);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex_sha256(canonical_request.as_bytes())
    );

    let key = signing_key(params.secret_access_key, date, params.region, "s3");
    let signature = hex::encode(hmac_sha256(&key, string_to_sign.as_bytes()));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        params.access_key_id
    );
    if let Ok(v) = HeaderValue::from_str(&authorization) {
        headers.insert(http::header::AUTHORIZATION, v);
    }
}

/// `(canonical headers block, signed header list)`: lowercase names, sorted, values trimmed with
/// inner runs of spaces collapsed, repeated headers joined by `,`.
fn canonical_headers(headers: &HeaderMap) -> (String, String) {
    let mut names: Vec<&str> = headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|n| is_signed(n))
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut block = String::new();
    for name in &names {
        let values: Vec<String> = headers
            .get_all(*name)
            .iter()
            .map(|v| collapse_spaces(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        block.push_str(name);
        block.push(':');
        block.push_str(&values.join(","));
        block.push('\n');
    }
    (block, names.join(";"))
}

fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// SigV4's signing key for a scope (`date` as `YYYYMMDD`): what signs requests, and what a
/// client signs a form upload's policy with.
pub(crate) fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub fn hex_sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    // The examples of https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
    const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn params() -> SigningParams<'static> {
        SigningParams {
            access_key_id: KEY_ID,
            secret_access_key: SECRET,
            region: "us-east-1",
            time: datetime!(2013-05-24 0:00 UTC),
        }
    }

    fn signature_of(headers: &HeaderMap) -> String {
        let auth = headers["authorization"].to_str().expect("ascii");
        auth.rsplit("Signature=").next().expect("signature").to_string()
    }

    #[test]
    fn get_object_example_matches_aws_documentation() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("examplebucket.s3.amazonaws.com"));
        headers.insert("range", HeaderValue::from_static("bytes=0-9"));
        sign_v4(
            &Method::GET,
            "/test.txt",
            "",
            &mut headers,
            EMPTY_PAYLOAD_SHA256,
            &params(),
        );
        assert_eq!(
            signature_of(&headers),
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        let auth = headers["authorization"].to_str().expect("ascii");
        assert!(
            auth.contains("SignedHeaders=host;range;x-amz-content-sha256;x-amz-date"),
            "{auth}"
        );
    }

    #[test]
    fn put_object_example_matches_aws_documentation() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("examplebucket.s3.amazonaws.com"));
        headers.insert("date", HeaderValue::from_static("Fri, 24 May 2013 00:00:00 GMT"));
        headers.insert("x-amz-storage-class", HeaderValue::from_static("REDUCED_REDUNDANCY"));
        let payload = hex_sha256(b"Welcome to Amazon S3.");
        sign_v4(&Method::PUT, "/test%24file.text", "", &mut headers, &payload, &params());
        assert_eq!(
            signature_of(&headers),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
    }

    #[test]
    fn get_bucket_lifecycle_example_matches_aws_documentation() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("examplebucket.s3.amazonaws.com"));
        sign_v4(
            &Method::GET,
            "/",
            "lifecycle=",
            &mut headers,
            EMPTY_PAYLOAD_SHA256,
            &params(),
        );
        assert_eq!(
            signature_of(&headers),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );
    }

    #[test]
    fn list_objects_example_matches_aws_documentation() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("examplebucket.s3.amazonaws.com"));
        sign_v4(
            &Method::GET,
            "/",
            "max-keys=2&prefix=J",
            &mut headers,
            EMPTY_PAYLOAD_SHA256,
            &params(),
        );
        assert_eq!(
            signature_of(&headers),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
    }

    #[test]
    fn unsigned_headers_do_not_enter_the_signature() {
        let mut a = HeaderMap::new();
        a.insert("host", HeaderValue::from_static("h"));
        let mut b = a.clone();
        b.insert("user-agent", HeaderValue::from_static("something/1.0"));
        sign_v4(&Method::GET, "/k", "", &mut a, UNSIGNED_PAYLOAD, &params());
        sign_v4(&Method::GET, "/k", "", &mut b, UNSIGNED_PAYLOAD, &params());
        assert_eq!(signature_of(&a), signature_of(&b));
    }
}
