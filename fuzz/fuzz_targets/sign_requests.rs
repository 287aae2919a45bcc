//! SigV4 and SigV2 signing and the URL encoding and query parsing they rest on
//! (`src/upstream/url.rs`), on arbitrary keys, raw query strings, headers and credentials:
//! nothing may panic, an encoded key decodes to itself, a canonical query parses back to the
//! same pairs and is a fixed point, and a request is always signed.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use s3ferry::s3::addressing::Addressing;
use s3ferry::s3::encoding::{canonical_query, decode_query_component, parse_query, percent_decode, uri_encode};
use s3ferry::upstream::address::upstream_address;
use s3ferry::upstream::sign::{SigningParams, UNSIGNED_PAYLOAD, sign_v4};
use s3ferry::upstream::sign_v2::{resource_path, sign_v2};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    method: u8,
    bucket: &'a str,
    key: &'a [u8],
    raw_query: &'a str,
    headers: Vec<(&'a str, &'a [u8])>,
    access_key: &'a str,
    secret: &'a str,
    region: &'a str,
    virtual_hosted: bool,
    /// Seconds after 2000-01-01: the signer runs on the clock, never on a client's date.
    seconds: u32,
}

fn sorted(mut pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    pairs.sort();
    pairs
}

fuzz_target!(|input: Input<'_>| {
    // Keys: encoded once, canonically; decoding gives the key back.
    let encoded_key = uri_encode(input.key, true);
    assert!(
        encoded_key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/%".contains(&b)),
        "{encoded_key}"
    );
    assert_eq!(percent_decode(&encoded_key), input.key);

    // Queries: the canonical form parses back to the same pairs, and is its own canonical form.
    let _ = decode_query_component(input.raw_query);
    let pairs = parse_query(input.raw_query);
    let canonical = canonical_query(&pairs);
    let reparsed = parse_query(&canonical);
    assert_eq!(sorted(reparsed.clone()), sorted(pairs.clone()), "{canonical}");
    assert_eq!(canonical_query(&reparsed), canonical);

    let method = match input.method % 6 {
        0 => Method::GET,
        1 => Method::PUT,
        2 => Method::POST,
        3 => Method::DELETE,
        4 => Method::HEAD,
        _ => Method::OPTIONS,
    };
    let addressing = if input.virtual_hosted {
        Addressing::Virtual
    } else {
        Addressing::Path
    };
    let address = upstream_address("provider.example:9000", addressing, Some(input.bucket), &encoded_key);
    let mut headers = HeaderMap::new();
    for (name, value) in &input.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(*name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    if let Ok(host) = HeaderValue::from_str(&address.authority) {
        headers.insert(http::header::HOST, host);
    }
    let time = time::OffsetDateTime::from_unix_timestamp(946_684_800 + i64::from(input.seconds))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let params = SigningParams {
        access_key_id: input.access_key,
        secret_access_key: input.secret,
        region: input.region,
        time,
    };
    let printable = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());

    let mut v4 = headers.clone();
    sign_v4(&method, &address.path, &canonical, &mut v4, UNSIGNED_PAYLOAD, &params);
    if printable(input.access_key) && printable(input.region) {
        let auth = v4.get(http::header::AUTHORIZATION).expect("a SigV4 request is signed");
        assert!(auth.as_bytes().starts_with(b"AWS4-HMAC-SHA256 Credential="));
    }

    let mut v2 = headers;
    let resource = resource_path(addressing, Some(input.bucket), &address.path);
    sign_v2(&method, &resource, &pairs, &mut v2, &params);
    if printable(input.access_key) {
        let auth = v2.get(http::header::AUTHORIZATION).expect("a SigV2 request is signed");
        assert!(auth.as_bytes().starts_with(b"AWS "));
    }
});
