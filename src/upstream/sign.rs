//! AWS Signature Version 4 for requests s3ferry sends upstream: pure functions, no network.
//!
//! The caller builds the path and query in canonical form (see `s3::encoding` and `upstream::address`) and sends
//! exactly those bytes, so what is signed is what goes on the wire. Checked against the
//! examples in the S3 SigV4 documentation (tests below).

use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, Method};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

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
    let keys = SigningKeys::default();
    sign_v4_cached(
        method,
        canonical_path,
        canonical_query,
        headers,
        payload_hash,
        params,
        &keys,
    );
}

/// The signing key of the last day a provider signed for. One per provider (one secret, one
/// region): a provider's settings never change under it, a reload builds a new provider.
#[derive(Default)]
pub struct SigningKeys {
    last: std::sync::Mutex<Option<([u8; 8], [u8; 32])>>,
}

impl SigningKeys {
    fn key_for(&self, date: &str, derive: impl FnOnce() -> [u8; 32]) -> [u8; 32] {
        let day: Option<[u8; 8]> = date.as_bytes().try_into().ok();
        if let (Some(day), Ok(last)) = (day, self.last.lock())
            && let Some((cached_day, key)) = *last
            && cached_day == day
        {
            return key;
        }
        let key = derive();
        if let (Some(day), Ok(mut last)) = (day, self.last.lock()) {
            *last = Some((day, key));
        }
        key
    }
}

/// [`sign_v4`] with the day's signing key taken from `keys`: what a provider signs every
/// request with. The key changes once a day, and deriving it is four HMACs of the request's
/// eight; AWS's SDKs keep it the same way.
pub fn sign_v4_cached(
    method: &Method,
    canonical_path: &str,
    canonical_query: &str,
    headers: &mut HeaderMap,
    payload_hash: &str,
    params: &SigningParams<'_>,
    keys: &SigningKeys,
) {
    let amz_date = amz_date(params.time);
    let date = &amz_date[..8];

    if let Ok(v) = HeaderValue::from_str(&amz_date) {
        headers.insert("x-amz-date", v);
    }
    if let Ok(v) = HeaderValue::from_str(payload_hash) {
        headers.insert("x-amz-content-sha256", v);
    }

    // The canonical request is hashed as it is written, never held as one string.
    let mut canonical = Sha256::new();
    for part in [method.as_str(), "\n", canonical_path, "\n", canonical_query, "\n"] {
        canonical.update(part.as_bytes());
    }
    let signed_headers = hash_canonical_headers(headers, &mut canonical);
    for part in ["\n", signed_headers.as_str(), "\n", payload_hash] {
        canonical.update(part.as_bytes());
    }
    let scope = format!("{date}/{}/s3/aws4_request", params.region);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(canonical.finalize())
    );

    let key = keys.key_for(date, || {
        signing_key(params.secret_access_key, date, params.region, "s3")
    });
    let signature = hex::encode(hmac_sha256(&key, string_to_sign.as_bytes()));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        params.access_key_id
    );
    if let Ok(v) = HeaderValue::from_str(&authorization) {
        headers.insert(http::header::AUTHORIZATION, v);
    }
}

/// `YYYYMMDDTHHMMSSZ`, SigV4's timestamp.
fn amz_date(time: OffsetDateTime) -> String {
    let time = time.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

/// Feeds the canonical headers block into `canonical` and returns the signed header list:
/// lowercase names, sorted, values trimmed with inner runs of spaces collapsed, repeated
/// headers joined by `,`.
fn hash_canonical_headers(headers: &HeaderMap, canonical: &mut Sha256) -> String {
    let mut names: Vec<&str> = headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|n| is_signed(n))
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut signed = String::with_capacity(names.iter().map(|n| n.len() + 1).sum());
    for name in &names {
        canonical.update(name.as_bytes());
        canonical.update(b":");
        for (i, value) in headers.get_all(*name).iter().enumerate() {
            if i > 0 {
                canonical.update(b",");
            }
            let bytes = value.as_bytes();
            if is_canonical_already(bytes) {
                canonical.update(bytes);
            } else {
                canonical.update(collapse_spaces(&String::from_utf8_lossy(bytes)).as_bytes());
            }
        }
        canonical.update(b"\n");
        if !signed.is_empty() {
            signed.push(';');
        }
        signed.push_str(name);
    }
    signed
}

/// Whether `collapse_spaces` would return `value` unchanged: visible ASCII and single inner
/// spaces only. Most values are, and are hashed without a copy.
fn is_canonical_already(value: &[u8]) -> bool {
    value.first() != Some(&b' ')
        && value.last() != Some(&b' ')
        && value.iter().all(|b| b.is_ascii_graphic() || *b == b' ')
        && !value.windows(2).any(|w| w == b"  ")
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

    #[test]
    fn the_cached_signing_key_signs_as_the_derived_one_across_days() {
        let keys = SigningKeys::default();
        let day_one = params();
        let day_two = SigningParams {
            time: day_one.time + time::Duration::days(1),
            ..params()
        };
        for p in [&day_one, &day_one, &day_two, &day_two, &day_one] {
            let signed = |cached: bool| {
                let mut headers = HeaderMap::new();
                headers.insert("host", HeaderValue::from_static("examplebucket.s3.amazonaws.com"));
                headers.insert(
                    "x-amz-meta-note",
                    HeaderValue::from_static("  two   spaces\tand a tab "),
                );
                if cached {
                    sign_v4_cached(&Method::GET, "/a", "", &mut headers, UNSIGNED_PAYLOAD, p, &keys);
                } else {
                    sign_v4(&Method::GET, "/a", "", &mut headers, UNSIGNED_PAYLOAD, p);
                }
                signature_of(&headers)
            };
            assert_eq!(signed(true), signed(false));
        }
    }

    #[test]
    fn values_are_hashed_raw_only_when_already_canonical() {
        assert!(is_canonical_already(b"text/plain; charset=utf-8"));
        for value in [&b" lead"[..], b"trail ", b"two  spaces", b"tab\there", b"caf\xc3\xa9"] {
            assert!(!is_canonical_already(value), "{value:?}");
        }
    }
}
