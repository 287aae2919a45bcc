//! The trust boundary, tested where it was broken: raw HTTP through the real listener, with a
//! provider stand-in that records every request that reaches it. For a refused request, the
//! assertion that matters is that nothing reached the provider.

use std::path::Path;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use http::{HeaderMap, HeaderValue, Method, Request};
use s3ferry::config::Config;
use s3ferry::upstream::sign::{UNSIGNED_PAYLOAD, hex_sha256};

use crate::support::raw::{self, RawBody, RawResponse, Signer, full_body};
use crate::support::{CLIENT_KEY, CLIENT_SECRET, Harness, error_code, error_status, sdk_client};

/// Sends `request` and asserts the gateway refused it with `status`/`code` and that the
/// provider behind `pathup` saw nothing of it.
async fn refused_before_the_provider(h: &Harness, request: Request<RawBody>, status: u16, code: &str) -> RawResponse {
    let before = h.path_up.quirks.received_count();
    let response = raw::send(request).await;
    assert_eq!(
        (response.status, response.code().as_str()),
        (status, code),
        "{}",
        response.body
    );
    let reached = h.path_up.quirks.received_since(before);
    assert!(
        reached.is_empty(),
        "nothing may reach the provider, but it got {reached:?}"
    );
    response
}

async fn put_secret(h: &Harness) {
    h.path_up
        .direct_client()
        .put_object()
        .bucket("other")
        .key("private.txt")
        .body(ByteStream::from_static(b"top secret"))
        .send()
        .await
        .expect("seed the private object");
}

fn presigned_put(h: &Harness, key: &str, signed: &[(&str, &str)]) -> (String, HeaderMap) {
    Signer::client(h.addr).presign(&Method::PUT, &format!("/alpha/{key}"), 300, signed)
}

#[tokio::test]
async fn a_presigned_put_with_an_unsigned_amz_header_is_refused_like_aws() {
    let h = Harness::start().await;
    put_secret(&h).await;
    for (name, value) in [
        ("x-amz-copy-source", "/other/private.txt"),
        ("x-amz-acl", "public-read"),
        ("x-amz-tagging", "a=b"),
        ("x-amz-website-redirect-location", "/elsewhere"),
        ("x-amz-copy-source-if-match", "\"0123\""),
    ] {
        let (url, _) = presigned_put(&h, "victim.txt", &[]);
        let request = Request::put(url)
            .header(name, value)
            .body(full_body("mine"))
            .expect("request");
        let response = refused_before_the_provider(&h, request, 403, "AccessDenied").await;
        assert!(response.body.contains("not signed"), "{name}: {}", response.body);
    }
    assert!(!h.path_up.has_object("alpha", "victim.txt").await, "no copy, no write");
    // The same URL without the extra header does what it was signed for.
    let (url, _) = presigned_put(&h, "victim.txt", &[]);
    let ok = raw::send(Request::put(url).body(full_body("mine")).expect("request")).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    h.stop().await;
}

#[tokio::test]
async fn a_header_added_after_sigv4_header_signing_is_refused() {
    let h = Harness::start().await;
    put_secret(&h).await;
    let (builder, _) = Signer::client(h.addr).sign(Method::PUT, "/alpha/added.txt", HeaderMap::new(), &hex_sha256(b""));
    let request = builder
        .header("x-amz-copy-source", "/other/private.txt")
        .body(full_body(""))
        .expect("request");
    refused_before_the_provider(&h, request, 403, "AccessDenied").await;
    h.stop().await;
}

#[tokio::test]
async fn signed_headers_reach_the_provider_and_unsigned_odd_ones_do_not() {
    let h = Harness::start().await;
    let (url, signed) = presigned_put(&h, "meta.txt", &[("x-amz-meta-owner", "ana")]);
    let before = h.path_up.quirks.received_count();
    let mut request = Request::put(url)
        .header("x-custom-debug", "1")
        .header("content-type", "text/plain")
        .body(full_body("hello"))
        .expect("request");
    request.headers_mut().extend(signed);
    let response = raw::send(request).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let reached = h.path_up.quirks.received_since(before);
    let put = reached
        .iter()
        .find(|r| r.method == Method::PUT)
        .expect("the PUT reached the provider");
    assert_eq!(
        put.headers.get("x-amz-meta-owner").map(HeaderValue::as_bytes),
        Some(&b"ana"[..])
    );
    assert_eq!(
        put.headers.get("content-type").map(HeaderValue::as_bytes),
        Some(&b"text/plain"[..])
    );
    assert!(
        !put.headers.contains_key("x-custom-debug"),
        "unsigned, non-S3 headers are dropped"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_signed_header_named_in_connection_refuses_the_request() {
    let h = Harness::start().await;
    let client = h.client();
    client
        .put_object()
        .bucket("alpha")
        .key("create-only.txt")
        .body(ByteStream::from_static(b"first"))
        .send()
        .await
        .expect("first write");
    let (url, signed) = presigned_put(&h, "create-only.txt", &[("if-none-match", "*")]);
    let mut request = Request::put(url)
        .header("connection", "keep-alive, if-none-match")
        .body(full_body("overwrite"))
        .expect("request");
    request.headers_mut().extend(signed);
    refused_before_the_provider(&h, request, 400, "InvalidRequest").await;
    let got = client
        .get_object()
        .bucket("alpha")
        .key("create-only.txt")
        .send()
        .await
        .expect("get");
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), b"first");
    h.stop().await;
}

#[tokio::test]
async fn an_encoded_slash_or_dot_segments_cannot_reach_another_bucket() {
    let h = Harness::start().await;
    put_secret(&h).await;
    let s = Signer::client(h.addr);
    // `%2F` in the first segment: the signature covers the decoded path, so sign that and send
    // the encoded form, as an attacker holding a valid key would.
    for (signed_path, sent_path, method) in [
        (
            "/abc/../other/private.txt",
            "/abc%2F..%2Fother/private.txt",
            Method::GET,
        ),
        (
            "/alpha/../other/private.txt",
            "/alpha/../other/private.txt",
            Method::GET,
        ),
        ("/alpha/./x", "/alpha/./x", Method::PUT),
        ("/alpha/..", "/alpha/..", Method::GET),
    ] {
        let (builder, _) = s.sign(method.clone(), signed_path, HeaderMap::new(), &hex_sha256(b""));
        let request = builder
            .uri(format!("http://127.0.0.1:{}{sent_path}", h.addr.port()))
            .body(full_body(""))
            .expect("request");
        let response = refused_before_the_provider(&h, request, 400, "InvalidArgument").await;
        assert!(!response.body.contains("top secret"), "{sent_path}");
    }
    // A bucket segment that would carry a query or a path is not a bucket name.
    for sent_path in ["/abc%3Fx-id%3DPutBucketPolicy/k", "/ABC/k"] {
        let (builder, _) = s.sign(Method::GET, sent_path, HeaderMap::new(), &hex_sha256(b""));
        let request = builder.body(full_body("")).expect("request");
        let before = h.path_up.quirks.received_count();
        let response = raw::send(request).await;
        assert_eq!(response.status, 400, "{sent_path}: {}", response.body);
        assert_eq!(
            h.path_up.quirks.received_count(),
            before,
            "{sent_path} reached the provider"
        );
    }
    h.stop().await;
}

#[tokio::test]
async fn keys_travel_upstream_percent_encoded() {
    let h = Harness::start().await;
    let client = h.client();
    let before = h.path_up.quirks.received_count();
    client
        .put_object()
        .bucket("alpha")
        .key("dir/a b?c#d%e")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put");
    let reached = h.path_up.quirks.received_since(before);
    let put = reached.iter().find(|r| r.method == Method::PUT).expect("put reached");
    let path = put.target.split_once('?').map_or(put.target.as_str(), |(p, _)| p);
    assert_eq!(path, "/alpha/dir/a%20b%3Fc%23d%25e");
    h.stop().await;
}

#[tokio::test]
async fn the_reserved_prefix_is_refused_in_keys_delete_bodies_and_copy_sources() {
    let h = Harness::start().await;
    let client = h.client();
    let before = h.path_up.quirks.received_count();
    for key in [".s3ferry/tombstones/k", ".s3ferry"] {
        let err = client
            .put_object()
            .bucket("alpha")
            .key(key)
            .body(ByteStream::from_static(b"planted"))
            .send()
            .await
            .expect_err(key);
        assert_eq!(
            (error_status(&err), error_code(&err).as_str()),
            (403, "AccessDenied"),
            "{key}"
        );
    }
    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key("ordinary").build().expect("id"))
        .objects(
            ObjectIdentifier::builder()
                .key(".s3ferry/tombstones/k")
                .build()
                .expect("id"),
        )
        .build()
        .expect("delete");
    let err = client
        .delete_objects()
        .bucket("alpha")
        .delete(delete)
        .send()
        .await
        .expect_err("reserved key in the body");
    assert_eq!(error_code(&err), "AccessDenied");
    let err = client
        .copy_object()
        .bucket("alpha")
        .key("copy")
        .copy_source("alpha/.s3ferry/tombstones/k")
        .send()
        .await
        .expect_err("reserved copy source");
    assert_eq!(error_code(&err), "AccessDenied");
    let reached = h.path_up.quirks.received_since(before);
    assert!(reached.is_empty(), "nothing reached the provider: {reached:?}");
    h.stop().await;
}

#[tokio::test]
async fn copy_sources_with_dot_segments_are_refused_and_others_are_re_encoded() {
    let h = Harness::start().await;
    put_secret(&h).await;
    let client = h.client();
    let before = h.path_up.quirks.received_count();
    let err = client
        .copy_object()
        .bucket("alpha")
        .key("stolen")
        .copy_source("alpha/../other/private.txt")
        .send()
        .await
        .expect_err("dot segments in the copy source");
    assert_eq!(error_code(&err), "InvalidArgument");
    assert!(h.path_up.quirks.received_since(before).is_empty());
    client
        .put_object()
        .bucket("renamed")
        .key("a b+c")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put");
    let before = h.path_up.quirks.received_count();
    client
        .copy_object()
        .bucket("alpha")
        .key("copied")
        .copy_source("renamed/a%20b%2Bc")
        .send()
        .await
        .expect("copy within the provider");
    let reached = h.path_up.quirks.received_since(before);
    let copy = reached.iter().find(|r| r.method == Method::PUT).expect("copy reached");
    assert_eq!(
        copy.headers.get("x-amz-copy-source").map(HeaderValue::as_bytes),
        Some(&b"/renamed-upstream/a%20b%2Bc"[..])
    );
    h.stop().await;
}

#[tokio::test]
async fn the_wildcard_route_does_not_reach_buckets_explicit_routes_use_upstream() {
    let h = Harness::start().await;
    let client = h.client();
    for hidden in ["renamed-upstream", "vrenamed-upstream"] {
        let before = h.path_up.quirks.received_count();
        let err = client.list_objects_v2().bucket(hidden).send().await.expect_err(hidden);
        assert_eq!(
            (error_status(&err), error_code(&err).as_str()),
            (404, "NoSuchBucket"),
            "{hidden}"
        );
        assert_eq!(
            h.path_up.quirks.received_count(),
            before,
            "{hidden} reached the provider"
        );
    }
    client
        .list_objects_v2()
        .bucket("other")
        .send()
        .await
        .expect("other buckets stay reachable");
    h.stop().await;
}

#[tokio::test]
async fn presigned_urls_live_at_most_a_week_and_must_sign_host() {
    let h = Harness::start().await;
    let s = Signer::client(h.addr);
    let (url, _) = s.presign(&Method::GET, "/alpha/k", 31 * 365 * 86_400, &[]);
    let request = Request::get(url).body(full_body("")).expect("request");
    refused_before_the_provider(&h, request, 400, "AuthorizationQueryParametersError").await;
    let (url, _) = s.presign(&Method::GET, "/alpha/k", 604_800, &[]);
    let week = raw::send(Request::get(url).body(full_body("")).expect("request")).await;
    assert_eq!(
        (week.status, week.code().as_str()),
        (404, "NoSuchKey"),
        "a week is allowed"
    );

    let (builder, _) = s.sign(Method::GET, "/alpha/k", HeaderMap::new(), UNSIGNED_PAYLOAD);
    let mut request = builder.body(full_body("")).expect("request");
    let without_host = request.headers()["authorization"]
        .to_str()
        .expect("text")
        .replace("SignedHeaders=host;", "SignedHeaders=");
    request
        .headers_mut()
        .insert("authorization", HeaderValue::from_str(&without_host).expect("value"));
    refused_before_the_provider(&h, request, 403, "AccessDenied").await;
    h.stop().await;
}

#[tokio::test]
async fn sigv2_requests_must_be_dated_now_and_sign_their_query() {
    let h = Harness::start().await;
    h.client()
        .put_object()
        .bucket("alpha")
        .key("v2.txt")
        .body(ByteStream::from_static(b"v2"))
        .send()
        .await
        .expect("seed");
    let now = SystemTime::now();
    let ok = raw::send(raw::sigv2_get_dated(
        h.addr,
        "/alpha/v2.txt",
        CLIENT_KEY,
        CLIENT_SECRET,
        now,
    ))
    .await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "v2"));
    let day = Duration::from_secs(86_400);
    for when in [
        SystemTime::UNIX_EPOCH + Duration::from_secs(978_307_200), // 2001
        SystemTime::UNIX_EPOCH + Duration::from_secs(4_070_908_800), // 2099
        now - Duration::from_secs(16 * 60),
        now + day,
    ] {
        let request = raw::sigv2_get_dated(h.addr, "/alpha/v2.txt", CLIENT_KEY, CLIENT_SECRET, when);
        refused_before_the_provider(&h, request, 403, "RequestTimeTooSkewed").await;
    }
    // A captured request with a sub-resource appended: SigV2 does not sign `?acl&acl` (a
    // repeated parameter) or `x-id`, so neither may change what the request does.
    for path in [
        "/alpha/v2.txt?acl&acl",
        "/alpha/v2.txt?x-id=DeleteObject",
        "/alpha/v2.txt?ownershipControls",
    ] {
        let request = raw::sigv2_get_dated(h.addr, path, CLIENT_KEY, CLIENT_SECRET, now);
        refused_before_the_provider(&h, request, 403, "AccessDenied").await;
    }
    let forged = raw::sigv2_get_dated(h.addr, "/alpha/v2.txt", CLIENT_KEY, "not-the-secret", now);
    refused_before_the_provider(&h, forged, 403, "SignatureDoesNotMatch").await;
    h.stop().await;
}

#[tokio::test]
async fn two_signature_forms_in_one_request_are_refused() {
    let h = Harness::start().await;
    let s = Signer::client(h.addr);
    let (url, _) = s.presign(&Method::GET, "/alpha/k", 300, &[]);
    let (builder, _) = s.sign(Method::GET, "/alpha/k", HeaderMap::new(), UNSIGNED_PAYLOAD);
    let authorization = builder
        .headers_ref()
        .and_then(|h| h.get("authorization").cloned())
        .expect("authorization");
    let request = Request::get(url)
        .header("authorization", authorization)
        .body(full_body(""))
        .expect("request");
    refused_before_the_provider(&h, request, 400, "InvalidArgument").await;
    h.stop().await;
}

#[tokio::test]
async fn provider_native_headers_are_never_forwarded_even_when_signed() {
    let h = Harness::start().await;
    put_secret(&h).await;
    let mut headers = HeaderMap::new();
    headers.insert("x-goog-copy-source", HeaderValue::from_static("/other/private.txt"));
    let (builder, _) = Signer::client(h.addr).sign(Method::PUT, "/alpha/g.txt", headers, &hex_sha256(b""));
    let request = builder.body(full_body("")).expect("request");
    refused_before_the_provider(&h, request, 400, "InvalidArgument").await;
    h.stop().await;
}

async fn local_gateway(root: &Path) -> s3ferry::server::RunningGateway {
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[[credentials]]
access_key_id = "{CLIENT_KEY}"
secret_access_key = "{CLIENT_SECRET}"
grants = "all"
[providers.disk]
kind = "local"
root = "{}"
[[buckets]]
name = "photos"
provider = "disk"
[[buckets]]
name = "media"
provider = "disk"
upstream_bucket = "media-2017"
"#,
        root.display()
    );
    let config = Config::parse(&toml, "local.toml", Path::new("."), &|_| None).expect("config");
    s3ferry::server::start(&config).await.expect("gateway")
}

#[tokio::test]
async fn the_local_provider_never_sees_a_path_outside_the_bucket() {
    let dir = tempfile::tempdir().expect("dir");
    let g = local_gateway(dir.path()).await;
    let s = Signer {
        addr: g.addr(),
        key: CLIENT_KEY,
        secret: CLIENT_SECRET,
        time: time::OffsetDateTime::now_utc(),
    };
    let before = std::fs::read_dir(dir.path().join("media-2017")).expect("dir").count();
    for (method, path) in [
        (Method::PUT, "/photos/../media-2017/x"),
        (Method::PUT, "/photos/a/../../media-2017/x"),
        (Method::GET, "/photos/.."),
        (Method::GET, "/photos/."),
    ] {
        let (builder, _) = s.sign(method.clone(), path, HeaderMap::new(), &hex_sha256(b"planted"));
        let request = builder.body(full_body("planted")).expect("request");
        let response = raw::send(request).await;
        assert_eq!(
            (response.status, response.code().as_str()),
            (400, "InvalidArgument"),
            "{path}"
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path().join("media-2017")).expect("dir").count(),
        before,
        "nothing was written into another bucket"
    );
    // The gateway still serves after the attempts (no panic took it down).
    let client = sdk_client(
        &format!("http://127.0.0.1:{}", g.addr().port()),
        CLIENT_KEY,
        CLIENT_SECRET,
        true,
    );
    client
        .put_object()
        .bucket("photos")
        .key("ok.txt")
        .body(ByteStream::from_static(b"fine"))
        .send()
        .await
        .expect("an ordinary put");
    g.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn dot_segments_are_refused_when_a_migrations_old_provider_would_resolve_them() {
    // The new provider (aws dialect) keeps `a/../b` literally, but the old one is a local
    // directory: a fallback read of `../secret-bucket/x` would leave the old bucket.
    let new = crate::support::TestUpstream::path_style().await;
    new.create_bucket("media");
    let old_root = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(old_root.path().join("secret-bucket")).expect("dir");
    std::fs::write(old_root.path().join("secret-bucket/x"), b"top secret").expect("seed");
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[[credentials]]
access_key_id = "{CLIENT_KEY}"
secret_access_key = "{CLIENT_SECRET}"
grants = "all"
[providers.new]
endpoint = "{endpoint}"
access_key_id = "{key}"
secret_access_key = "{secret}"
dialect = "aws"
[providers.old]
kind = "local"
root = "{old}"
[[buckets]]
name = "media"
provider = "new"
fallback = "old"
fallback_bucket = "media-2017"
"#,
        endpoint = new.endpoint(),
        key = crate::support::UPSTREAM_KEY,
        secret = crate::support::UPSTREAM_SECRET,
        old = old_root.path().display(),
    );
    let config = Config::parse(&toml, "migrating.toml", Path::new("."), &|_| None).expect("config");
    let g = s3ferry::server::start(&config).await.expect("gateway");
    let s = Signer {
        addr: g.addr(),
        key: CLIENT_KEY,
        secret: CLIENT_SECRET,
        time: time::OffsetDateTime::now_utc(),
    };
    let before = new.quirks.received_count();
    let (builder, _) = s.sign(
        Method::GET,
        "/media/../secret-bucket/x",
        HeaderMap::new(),
        &hex_sha256(b""),
    );
    let response = raw::send(builder.body(full_body("")).expect("request")).await;
    assert_eq!(
        (response.status, response.code().as_str()),
        (400, "InvalidArgument"),
        "{}",
        response.body
    );
    assert!(!response.body.contains("top secret"));
    assert!(
        response.body.contains("&apos;old&apos;"),
        "names the provider that would resolve it: {}",
        response.body
    );
    assert!(
        new.quirks.received_since(before).is_empty(),
        "nothing reached the new provider either"
    );
    g.shutdown(Duration::from_secs(2)).await;
}
