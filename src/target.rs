//! The request target, parsed once: which bucket and which key a client addressed.
//!
//! The parse follows s3s's exactly, so the bucket and key the gateway routes are the ones
//! whose signature s3s verified: the whole path is percent-decoded first (SigV4 signs the
//! decoded path, re-encoded canonically), then split at the first `/`. A bucket name is checked
//! by S3's rules before anything else sees it, so a `%2F`, `?` or `..` can never travel inside
//! it. Keys stay the client's bytes; they are percent-encoded once, segment by segment, on the
//! way to a provider ([`ClientTarget::encoded_key`]).
//!
//! What a key with `.` or `..` segments means is decided per provider (see
//! [`has_dot_segment`] and the `dot_segment_keys` dialect setting): S3 stores such keys
//! literally, but a provider (or anything in front of it) that normalises paths would read
//! `/photos/../other/x` as another bucket's object.

use http::HeaderMap;

use crate::error::GatewayError;
use crate::s3::bucket_name::check_bucket_name;
use crate::s3::encoding::{percent_decode, uri_encode};

/// Keys under this prefix hold s3ferry's own state (tombstones of a lazy migration); no client
/// request may read, write, list into, copy from or delete them.
pub const RESERVED_PREFIX: &str = ".s3ferry/";

/// What the client addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTarget {
    /// The bucket, already checked by S3's naming rules. `None` on the service root.
    pub bucket: Option<String>,
    /// The key, decoded (empty for bucket- and service-level requests).
    pub key: String,
}

impl ClientTarget {
    /// The key in canonical S3 URI encoding: what goes on the wire upstream and is signed.
    pub fn encoded_key(&self) -> String {
        uri_encode(self.key.as_bytes(), true)
    }
}

/// Finds the bucket and key: virtual-hosted style when the Host is `<bucket>.<domain>`,
/// path style otherwise.
pub fn parse_client_target(
    uri: &http::Uri,
    headers: &HeaderMap,
    domain: Option<&str>,
) -> Result<ClientTarget, GatewayError> {
    let decoded = String::from_utf8(percent_decode(uri.path()))
        .map_err(|_| GatewayError::InvalidUri("the request path is not valid UTF-8 once decoded".into()))?;
    let Some(rest) = decoded.strip_prefix('/') else {
        return Err(GatewayError::InvalidUri("the request path must start with '/'".into()));
    };
    // `Host` only, as s3s reads it: an HTTP/2 `:authority` was copied into it at the edge
    // ([`host_from_authority`]), and an HTTP/1 absolute-form target without `Host` is path style
    // for s3s too, so the bucket routed is always the bucket verified.
    let host = headers.get(http::header::HOST).and_then(|h| h.to_str().ok());
    if let (Some(domain), Some(host)) = (domain, host)
        && let Some(bucket) = virtual_host_bucket(host, domain)
    {
        check_bucket_name(&bucket)?;
        return Ok(ClientTarget {
            bucket: Some(bucket),
            key: rest.to_string(),
        });
    }
    if rest.is_empty() {
        return Ok(ClientTarget {
            bucket: None,
            key: String::new(),
        });
    }
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    check_bucket_name(bucket)?;
    Ok(ClientTarget {
        bucket: Some(bucket.to_string()),
        key: key.to_string(),
    })
}

/// HTTP/2 and HTTP/3 carry the host as the `:authority` pseudo-header, which hyper leaves in
/// the URI; s3s copies it into `Host` when there is none. Doing the same once, at the edge,
/// gives every later reader (the trust boundary, the target parse, s3s) the same host.
pub fn host_from_authority<B>(req: &mut http::Request<B>) {
    let is_h2 = matches!(req.version(), http::Version::HTTP_2 | http::Version::HTTP_3);
    if !is_h2 || req.headers().contains_key(http::header::HOST) {
        return;
    }
    if let Some(value) = req
        .uri()
        .authority()
        .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
    {
        req.headers_mut().insert(http::header::HOST, value);
    }
}

/// `<bucket>.<domain>[:port]` -> `bucket` (case-insensitive domain match).
pub fn virtual_host_bucket(host: &str, domain: &str) -> Option<String> {
    let host_only = match host.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let lower = host_only.to_ascii_lowercase();
    let bucket = lower.strip_suffix(domain)?.strip_suffix('.')?;
    (!bucket.is_empty()).then(|| bucket.to_string())
}

/// Whether `key` has a `.` or `..` segment (between `/`s, or at either end): the keys a
/// normalising server would read as another path.
pub fn has_dot_segment(key: &str) -> bool {
    key.split('/').any(|segment| segment == "." || segment == "..")
}

/// Whether `key` is, or after any path normalisation could become, one of s3ferry's own keys.
pub fn is_reserved(key: &str) -> bool {
    if key.starts_with(RESERVED_PREFIX) {
        return true;
    }
    // `./.s3ferry/x`, `a/../.s3ferry/x`, `/.s3ferry/x`: what a normalising store would turn into
    // a reserved key. Resolving the dot segments as such a store would shows it.
    let mut resolved: Vec<&str> = Vec::new();
    for segment in key.split('/') {
        match segment {
            "." | "" => {}
            ".." => {
                resolved.pop();
            }
            other => resolved.push(other),
        }
    }
    resolved
        .first()
        .is_some_and(|first| RESERVED_PREFIX.strip_suffix('/') == Some(*first))
}

/// [`is_reserved`] as the client's error.
pub fn refuse_reserved(key: &str) -> Result<(), GatewayError> {
    if is_reserved(key) {
        // AWS's plain answer: the reserved prefix is not named to clients (see `error`).
        return Err(GatewayError::AccessDenied("Access Denied".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn target(uri: &str, host: &str, domain: Option<&str>) -> Result<ClientTarget, GatewayError> {
        let uri: http::Uri = uri.parse().expect("uri");
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, HeaderValue::from_str(host).expect("host"));
        parse_client_target(&uri, &headers, domain)
    }

    fn ok(uri: &str, host: &str, domain: Option<&str>) -> ClientTarget {
        target(uri, host, domain).expect("target")
    }

    #[test]
    fn path_style_splits_bucket_and_decoded_key() {
        let t = ok("/photos/a%20b//c/", "127.0.0.1:8333", Some("s3.localhost"));
        assert_eq!(t.bucket.as_deref(), Some("photos"));
        assert_eq!(t.key, "a b//c/");
        assert_eq!(t.encoded_key(), "a%20b//c/");
        let t = ok("/photos", "localhost:8333", Some("s3.localhost"));
        assert_eq!((t.bucket.as_deref(), t.key.as_str()), (Some("photos"), ""));
        assert_eq!(ok("/", "localhost:8333", None).bucket, None);
    }

    #[test]
    fn an_encoded_slash_in_the_first_segment_splits_where_s3s_splits() {
        // s3s decodes the whole path before splitting; so does the gateway, so `abc` is the
        // bucket whose request was verified and routed, and the rest is its key.
        let t = ok("/abc%2F..%2Fother-bucket/key.txt", "127.0.0.1:1", None);
        assert_eq!(t.bucket.as_deref(), Some("abc"));
        assert_eq!(t.key, "../other-bucket/key.txt");
        assert!(has_dot_segment(&t.key));
    }

    #[test]
    fn bucket_names_that_could_carry_a_path_or_query_are_refused() {
        for uri in [
            "/abc%3Fx-id%3DPutBucketPolicy/k",
            "/ABC/k",
            "/a/k",
            "/..",
            "/a..b/k",
            "/192.168.0.1/k",
            "/-abc/k",
            "/abc%23frag/k",
        ] {
            let err = target(uri, "127.0.0.1:1", None).expect_err(uri);
            assert_eq!(err.code_and_status().0, "InvalidBucketName", "{uri}");
        }
        let err = target("/x", "bad_bucket.s3.localhost", Some("s3.localhost")).expect_err("vhost");
        assert_eq!(err.code_and_status().0, "InvalidBucketName");
    }

    #[test]
    fn virtual_hosted_style_takes_the_bucket_from_the_host() {
        let t = ok("/a/b.txt", "photos.s3.localhost:8333", Some("s3.localhost"));
        assert_eq!((t.bucket.as_deref(), t.key.as_str()), (Some("photos"), "a/b.txt"));
        assert_eq!(
            ok("/", "Photos.S3.Localhost", Some("s3.localhost")).bucket.as_deref(),
            Some("photos")
        );
        // The bare domain is path style.
        let t = ok("/photos/k", "s3.localhost:8333", Some("s3.localhost"));
        assert_eq!(t.bucket.as_deref(), Some("photos"));
    }

    #[test]
    fn the_host_comes_from_host_only_as_s3s_reads_it() {
        // An HTTP/1 absolute-form target without `Host`: s3s sees path style, so must we.
        let uri: http::Uri = "http://photos.s3.localhost/alpha/k".parse().expect("uri");
        let t = parse_client_target(&uri, &HeaderMap::new(), Some("s3.localhost")).expect("target");
        assert_eq!((t.bucket.as_deref(), t.key.as_str()), (Some("alpha"), "k"));
        // HTTP/2: the edge copies `:authority` into `Host`, and the bucket comes from it.
        let mut req = http::Request::builder()
            .version(http::Version::HTTP_2)
            .uri("http://photos.s3.localhost/k")
            .body(())
            .expect("request");
        host_from_authority(&mut req);
        let t = parse_client_target(req.uri(), req.headers(), Some("s3.localhost")).expect("target");
        assert_eq!((t.bucket.as_deref(), t.key.as_str()), (Some("photos"), "k"));
        // HTTP/1 keeps what it sent.
        let mut req = http::Request::builder()
            .uri("http://photos.s3.localhost/k")
            .body(())
            .expect("request");
        host_from_authority(&mut req);
        assert!(!req.headers().contains_key(http::header::HOST));
    }

    #[test]
    fn invalid_utf8_after_decoding_is_an_invalid_uri() {
        let err = target("/photos/%FF", "h", None).expect_err("not utf-8");
        assert_eq!(err.code_and_status().0, "InvalidURI");
    }

    #[test]
    fn dot_segments_are_found_wherever_they_stand() {
        for key in ["..", ".", "../x", "./x", "a/../b", "a/./b", "a/..", "a/."] {
            assert!(has_dot_segment(key), "{key}");
        }
        for key in ["a..b", "...", ".hidden", "a/.b/c", "a/b..", "a//b"] {
            assert!(!has_dot_segment(key), "{key}");
        }
    }

    #[test]
    fn reserved_keys_are_found_in_every_spelling_a_store_might_normalise() {
        for key in [
            ".s3ferry/tombstones/k",
            "./.s3ferry/tombstones/k",
            "x/../.s3ferry/tombstones/k",
            "/.s3ferry/x",
            "a/b/../../.s3ferry/x",
            "../.s3ferry/x",
            // The bare name too: on a file-system store an object `.s3ferry` would stand where
            // the tombstone directory must go.
            ".s3ferry",
        ] {
            assert!(is_reserved(key), "{key}");
        }
        for key in ["s3ferry/x", "x/.s3ferry/y", ".s3ferryx/y", "x/.s3ferry"] {
            assert!(!is_reserved(key), "{key}");
        }
    }
}

/// Hostile targets: whatever path a client sends, the parse never panics, a bucket it accepts
/// can carry nothing but a name, and a parsed target encoded for a provider parses back to the
/// same bucket and key: encoding never changes what a request means.
#[cfg(test)]
mod property_tests {
    use super::*;
    use crate::s3::bucket_name::bucket_name_problem;
    use proptest::prelude::*;

    /// Characters that matter in paths: separators, dots, escapes, query and fragment marks,
    /// spaces, plus signs, unicode.
    const PIECES: &[&str] = &[
        "a",
        "b",
        "0",
        "-",
        ".",
        "..",
        "/",
        "//",
        "%",
        "%2F",
        "%2f",
        "%2E",
        "%3F",
        "?",
        "#",
        " ",
        "+",
        "%20",
        "~",
        "é",
        "\u{1F600}",
        ".s3ferry",
        "x-id=",
        "&",
        "=",
        "%FF",
        "%C3%A9",
        "A",
        "_",
    ];

    fn path_piece() -> impl Strategy<Value = String> {
        prop::sample::select(PIECES).prop_map(str::to_string)
    }

    /// Any text, escaped so that it is a valid request target path.
    fn as_uri_path(text: &str) -> String {
        let mut out = String::from("/");
        for b in text.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~/%".contains(&b) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    fn valid_bucket() -> impl Strategy<Value = String> {
        (
            prop::sample::select(&["a", "z", "0", "9"][..]),
            prop::collection::vec(prop::sample::select(&["a", "k", "3", "-", "."][..]), 1..20),
            prop::sample::select(&["b", "7"][..]),
        )
            .prop_map(|(first, middle, last)| format!("{first}{}{last}", middle.concat()))
            .prop_filter("S3 naming rules", |b| bucket_name_problem(b).is_none())
    }

    fn parse(path: &str) -> Option<Result<ClientTarget, GatewayError>> {
        let uri: http::Uri = path.parse().ok()?;
        Some(parse_client_target(&uri, &HeaderMap::new(), None))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn any_key_survives_encoding_and_parsing(bucket in valid_bucket(), pieces in prop::collection::vec(path_piece(), 0..12)) {
            let key = pieces.concat();
            let path = format!("/{bucket}/{}", uri_encode(key.as_bytes(), true));
            let target = parse(&path).expect("an encoded path is a valid URI").expect("parses");
            prop_assert_eq!(target.bucket.as_deref(), Some(bucket.as_str()));
            prop_assert_eq!(&target.key, &key);
            prop_assert_eq!(target.encoded_key(), uri_encode(key.as_bytes(), true));
        }

        #[test]
        fn a_parsed_target_encoded_again_means_the_same(
            bucket in prop::option::of(valid_bucket()),
            pieces in prop::collection::vec(path_piece(), 0..14),
        ) {
            // Half the paths start with a valid bucket, so the re-encoding is exercised often.
            let text = match bucket {
                Some(b) => format!("{b}/{}", pieces.concat()),
                None => pieces.concat(),
            };
            let path = as_uri_path(&text);
            let Some(parsed) = parse(&path) else { return Ok(()) };
            let Ok(target) = parsed else { return Ok(()) };
            if let Some(bucket) = &target.bucket {
                prop_assert!(bucket_name_problem(bucket).is_none(), "{bucket}");
                prop_assert!(!bucket.contains(['/', '?', '#', '%', ' ']), "{bucket}");
                let again = format!("/{bucket}/{}", target.encoded_key());
                let reparsed = parse(&again).expect("valid URI").expect("parses again");
                prop_assert_eq!(&reparsed, &target);
            }
        }

        #[test]
        fn dot_prefixes_never_hide_the_reserved_prefix(
            prefix in prop::collection::vec(prop::sample::select(&["./", "", "x/../", "/"][..]), 0..4),
            rest in "[a-z/]{0,12}",
        ) {
            let key = format!("{}.s3ferry/{rest}", prefix.concat());
            prop_assert!(is_reserved(&key), "{key}");
        }
    }
}
