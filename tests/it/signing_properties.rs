//! SigV4 (and SigV2) canonicalisation as property tests: a request signed by s3ferry's signers
//! (`upstream::sign::sign_v4`, `upstream::sign_v2::sign_v2`, with paths and queries built by
//! `s3::encoding`, `upstream::address`) for arbitrary keys, headers, queries, key pairs and regions verifies in s3s
//! (what the gateway and the test providers run), reaches the route with the same object key,
//! and stops verifying when one signed value changes.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use s3ferry::s3::addressing::Addressing;
use s3ferry::s3::encoding::{canonical_query, percent_decode, uri_encode};
use s3ferry::upstream::sign::{EMPTY_PAYLOAD_SHA256, SigningParams, UNSIGNED_PAYLOAD, hex_sha256, sign_v4};
use s3ferry::upstream::sign_v2::{resource_path, sign_v2};
use time::OffsetDateTime;

use crate::support::verifier::Verifier;

/// Object keys as clients send them: spaces, `+`, `%`, `=`, `&`, `?`, `#`, unicode, `//`,
/// trailing `/`, dot segments.
fn object_key() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[a-zA-Z0-9 +%=&?#;:,!*'()~._-]{1,6}",
        1 => Just("/".to_string()),
        1 => Just("//".to_string()),
        1 => Just("./".to_string()),
        1 => "[\u{e9}\u{4e2d}\u{1f600}\u{a0}]{1,3}",
    ];
    prop::collection::vec(piece, 1..6).prop_map(|p| p.concat())
}

/// Query parameters with arbitrary names and values, sub-resources among them (names stay
/// clear of the presigned `X-Amz-*` ones).
fn query() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            prop_oneof![
                "[a-z][a-z0-9-]{0,8}",
                "[a-zA-Z0-9 +%=&/?:\u{e9}~._-]{1,8}",
                prop::sample::select(&["acl", "tagging", "uploadId", "partNumber", "versionId", "uploads"][..])
                    .prop_map(String::from),
            ]
            .prop_filter("not a presigned parameter", |n| {
                !n.to_ascii_lowercase().starts_with("x-amz-")
            }),
            "[a-zA-Z0-9 +%=&/?:\u{e9}\u{4e2d}~._-]{0,8}",
        ),
        0..4,
    )
}

/// `x-amz-meta-*` headers (signed, as every `x-amz-*` is) with inner and outer runs of spaces,
/// and the plain headers s3ferry signs.
fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    // Values with runs of spaces inside and around, which canonicalisation trims and collapses.
    let value = prop_oneof!["[ !-~]{0,12}", "( {1,3}[a-z!-~]{1,3}){1,4} {0,3}"];
    let meta = ("[a-z0-9]{1,6}", value).prop_map(|(n, v)| (format!("x-amz-meta-{n}"), v));
    let plain = prop_oneof![
        "[a-z]{1,8}/[a-z]{1,8}".prop_map(|v| ("content-type".to_string(), v)),
        (0..1000u32, 0..1000u32).prop_map(|(a, b)| ("range".to_string(), format!("bytes={a}-{}", a + b))),
    ];
    prop::collection::vec(prop_oneof![3 => meta, 1 => plain], 0..4).prop_map(|mut headers| {
        // Content-Type and Range are single-valued in HTTP: at most one of each.
        let mut seen = Vec::new();
        headers.retain(|(name, _)| {
            let repeated_plain = !name.starts_with("x-amz-") && seen.contains(name);
            seen.push(name.clone());
            !repeated_plain
        });
        headers
    })
}

#[derive(Debug, Clone)]
struct Case {
    access_key: String,
    secret: String,
    region: String,
    method: Method,
    key: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    unsigned_payload: bool,
    /// SigV2 instead of SigV4 (providers with `signature = "v2"`).
    v2: bool,
    /// Which signed byte to change for the negative half: the index of a header (or of the
    /// path when out of range).
    tamper: prop::sample::Index,
}

fn case() -> impl Strategy<Value = Case> {
    (
        (
            "[A-Z0-9]{16,20}",
            "[!-~]{1,40}",
            prop_oneof![Just("us-east-1".to_string()), "[a-z]{2}-[a-z]{4,9}-[1-9]"],
        ),
        prop::sample::select(vec![
            Method::GET,
            Method::PUT,
            Method::POST,
            Method::DELETE,
            Method::HEAD,
        ]),
        object_key(),
        query(),
        headers(),
        (prop::collection::vec(any::<u8>(), 0..64), any::<bool>(), any::<bool>()),
        any::<prop::sample::Index>(),
    )
        .prop_map(
            |((access_key, secret, region), method, key, query, headers, (body, unsigned_payload, v2), tamper)| Case {
                access_key,
                secret,
                region,
                body: if method == Method::PUT || method == Method::POST {
                    body
                } else {
                    Vec::new()
                },
                method,
                key,
                // SigV2 verifiers (s3s's) drop a repeated sub-resource from the string to sign,
                // s3ferry signs it twice: a repeated parameter is tested with SigV4 only.
                query: if v2 { first_of_each_name(query) } else { query },
                headers,
                unsigned_payload,
                v2,
                tamper,
            },
        )
}

fn first_of_each_name(mut pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    pairs.retain(|(name, _)| {
        let first = !seen.contains(name);
        seen.push(name.clone());
        first
    });
    pairs
}

const HOST: &str = "127.0.0.1:9000";
const BUCKET: &str = "prop-bucket";

/// The request s3ferry would send for `case`, signed.
fn signed_request(case: &Case) -> (String, HeaderMap) {
    let path = format!("/{BUCKET}/{}", uri_encode(case.key.as_bytes(), true));
    let canonical = canonical_query(&case.query);
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static(HOST));
    for (name, value) in &case.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            headers.append(n, v);
        }
    }
    let payload_hash = match (case.unsigned_payload, case.body.is_empty()) {
        (true, _) => UNSIGNED_PAYLOAD.to_string(),
        (false, true) => EMPTY_PAYLOAD_SHA256.to_string(),
        (false, false) => hex_sha256(&case.body),
    };
    let params = SigningParams {
        access_key_id: &case.access_key,
        secret_access_key: &case.secret,
        region: &case.region,
        time: OffsetDateTime::now_utc(),
    };
    if case.v2 {
        let resource = resource_path(Addressing::Path, Some(BUCKET), &path);
        sign_v2(&case.method, &resource, &case.query, &mut headers, &params);
    } else {
        sign_v4(&case.method, &path, &canonical, &mut headers, &payload_hash, &params);
    }
    let target = if canonical.is_empty() {
        path
    } else {
        format!("{path}?{canonical}")
    };
    (target, headers)
}

fn request(method: &Method, target: &str, headers: &HeaderMap, body: &[u8]) -> Request<Bytes> {
    let mut builder = Request::builder()
        .method(method.clone())
        .uri(format!("http://{HOST}{target}"));
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Bytes::copy_from_slice(body))
        .expect("a request s3ferry builds is valid HTTP")
}

async fn check(case: Case) -> Result<(), TestCaseError> {
    let (target, headers) = signed_request(&case);

    let verifier = Verifier::new(&case.access_key, &case.secret);
    let (status, reached) = verifier
        .call(request(&case.method, &target, &headers, &case.body))
        .await;
    prop_assert_eq!(
        status,
        200,
        "s3s refused what s3ferry signed: {} {}",
        case.method,
        target
    );
    prop_assert_eq!(reached.len(), 1);
    let seen = &reached[0];
    prop_assert_eq!(&seen.method, &case.method);
    let decoded = String::from_utf8_lossy(&percent_decode(seen.uri.path())).into_owned();
    prop_assert_eq!(
        decoded,
        format!("/{BUCKET}/{}", case.key),
        "the key that arrived is the key signed"
    );
    prop_assert_eq!(seen.body.as_deref().ok(), Some(case.body.as_slice()));

    // The same request with one signed value changed must not verify.
    let verifier = Verifier::new(&case.access_key, &case.secret);
    let mut tampered = headers.clone();
    let signed: Vec<HeaderName> = case
        .headers
        .iter()
        .filter_map(|(n, _)| HeaderName::try_from(n.as_str()).ok())
        .filter(|n| headers.contains_key(n))
        // SigV2 signs x-amz-* headers, Content-Type and Content-MD5, not Range.
        .filter(|n| !case.v2 || n.as_str() != "range")
        .collect();
    let tampered_target = match signed.get(case.tamper.index(signed.len() + 1)) {
        Some(name) => {
            let value = format!("{}x", tampered[name].to_str().unwrap_or_default());
            tampered.insert(name, HeaderValue::from_str(&value).expect("ascii"));
            target.clone()
        }
        None => target.replacen(BUCKET, &format!("{BUCKET}/x"), 1),
    };
    let (status, reached) = verifier
        .call(request(&case.method, &tampered_target, &tampered, &case.body))
        .await;
    prop_assert_eq!(status, 403, "a changed signed value went through: {}", tampered_target);
    prop_assert!(reached.is_empty());
    Ok(())
}

#[test]
fn requests_signed_by_s3ferry_with_sigv4_or_sigv2_verify_in_s3s_and_tampering_is_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&case(), |case| rt.block_on(check(case)));
    if let Err(e) = result {
        panic!("{e}");
    }
}
