//! The request target: the path and `Host` of a client request, and `x-amz-copy-source`. None
//! may panic; a bucket the parser accepts obeys S3's naming rules (so it can carry no path,
//! query or fragment upstream); a parsed target, encoded for a provider and parsed again, is the
//! same target; the reserved-prefix and dot-segment checks agree with what a normalising store
//! would make of the key.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use s3ferry::s3::bucket_name::bucket_name_problem;
use s3ferry::s3::copy_source::parse_copy_source;
use s3ferry::target::{ClientTarget, has_dot_segment, is_reserved, parse_client_target};

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    path: &'a str,
    host: &'a str,
    virtual_hosted: bool,
    copy_source: &'a str,
}

fn parse(path: &str, host: &str, domain: Option<&str>) -> Option<ClientTarget> {
    let uri: http::Uri = path.parse().ok()?;
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(host) {
        headers.insert(http::header::HOST, value);
    }
    parse_client_target(&uri, &headers, domain).ok()
}

fuzz_target!(|input: Input<'_>| {
    let domain = input.virtual_hosted.then_some("s3.example.com");
    if let Some(target) = parse(input.path, input.host, domain) {
        if let Some(bucket) = &target.bucket {
            assert!(bucket_name_problem(bucket).is_none(), "accepted bucket {bucket:?}");
            let again = format!("/{bucket}/{}", target.encoded_key());
            let reparsed = parse(&again, "127.0.0.1", None).expect("s3ferry's own path parses");
            assert_eq!(reparsed.bucket, target.bucket, "{again}");
            assert_eq!(reparsed.key, target.key, "{again}");
        }
        // A key that resolves (as a normalising store would) under the reserved prefix is
        // either reserved or has dot segments (refused where the provider normalises).
        let resolved: Vec<&str> = target.key.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
        if resolved.first() == Some(&".s3ferry") {
            assert!(
                is_reserved(&target.key) || has_dot_segment(&target.key),
                "{:?}",
                target.key
            );
        }
    }
    if let Ok(source) = parse_copy_source(input.copy_source) {
        assert!(bucket_name_problem(&source.bucket).is_none());
        let again = parse_copy_source(&source.header_value(&source.bucket)).expect("s3ferry's own copy source parses");
        assert_eq!(again, source);
    }
});
