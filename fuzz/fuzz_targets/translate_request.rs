//! What s3ferry reads from a client's request head besides the signature: the query string,
//! `x-amz-copy-source`, listing parameters and continuation tokens, the operation it names,
//! and the dialect translation of its headers and query. Nothing may panic; a copy source
//! that s3ferry would write parses back to the same bucket and key; a token reads back.
#![no_main]

use std::sync::LazyLock;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use s3ferry::dialect::translate::{translate_request, translate_response_headers};
use s3ferry::dialect::{DialectProfile, builtin};
use s3ferry::migration::listing::parse_list_query;
use s3ferry::rewrite::list_objects::{decode_token, encode_token};
use s3ferry::rewrite::list_v2_via_v1::into_v1_query;
use s3ferry::s3::copy_source::parse_copy_source;
use s3ferry::s3::encoding::parse_query;
use s3ferry::s3::operation::{Target, classify};

static PROFILES: LazyLock<Vec<DialectProfile>> = LazyLock::new(|| {
    ["aws", "oss", "gcs", "garage", "spaces"]
        .iter()
        .filter_map(|name| builtin(name))
        .collect()
});

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    method: u8,
    target: u8,
    profile: u8,
    raw_query: &'a str,
    headers: Vec<(&'a str, &'a [u8])>,
    copy_source: &'a str,
    token: &'a str,
    body: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let mut query = parse_query(input.raw_query);
    let mut headers = HeaderMap::new();
    for (name, value) in &input.headers {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(*name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }

    if let Ok(source) = parse_copy_source(input.copy_source) {
        let written = source.header_value(&source.bucket);
        let again = parse_copy_source(&written).expect("s3ferry's own copy source parses");
        assert_eq!(again, source, "{written}");
    }
    if let Some(position) = decode_token(input.token) {
        assert_eq!(
            decode_token(&encode_token(&position)).as_deref(),
            Some(position.as_str())
        );
    }
    let _ = parse_list_query("bucket", &query, input.method & 1 == 0);
    let _ = into_v1_query(&mut query.clone());
    let _ = s3ferry::checksum::mismatched_header(&headers, input.body);

    let method = match input.method % 5 {
        0 => Method::GET,
        1 => Method::PUT,
        2 => Method::POST,
        3 => Method::DELETE,
        _ => Method::HEAD,
    };
    let target = match input.target % 3 {
        0 => Target::Service,
        1 => Target::Bucket,
        _ => Target::Object,
    };
    let operation = classify(&method, target, &query, headers.contains_key("x-amz-copy-source"));
    let profile = &PROFILES[usize::from(input.profile) % PROFILES.len()];
    let _ = translate_request(profile, "provider", operation, &mut headers, &mut query);
    translate_response_headers(profile, &mut headers);
});
