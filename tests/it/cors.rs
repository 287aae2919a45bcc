//! CORS through the real listener: preflights answered before authentication from a bucket's
//! rules (nothing reaches the provider), the rule's headers on actual answers (errors included,
//! the provider's own replaced), and, for a bucket without rules, the provider's own CORS
//! configuration answering: moto implements bucket CORS (PutBucketCors, preflights).

use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use http::{Method, Request};

use crate::support::moto::Moto;
use crate::support::raw::{self, RawResponse, Signer, full_body};
use crate::support::{
    CLIENT_KEY, CLIENT_SECRET, TestUpstream, UPSTREAM_KEY, UPSTREAM_SECRET, single_provider_config,
    single_provider_gateway,
};

/// The rules of bucket `web` in these tests: uploads and reads from one origin, reads from any
/// subdomain of another.
const WEB_RULES: &str = r#"
[[buckets]]
name = "web"
provider = "up"
[[buckets.cors]]
allowed_origins = ["https://app.example"]
allowed_methods = ["GET", "PUT", "HEAD"]
allowed_headers = ["content-type", "x-amz-meta-*"]
expose_headers = ["ETag", "x-amz-request-id"]
max_age_secs = 3000
[[buckets.cors]]
allowed_origins = ["https://*.cdn.example"]
allowed_methods = ["GET"]
"#;

fn header<'a>(response: &'a RawResponse, name: &str) -> Option<&'a str> {
    response.headers.get(name).and_then(|v| v.to_str().ok())
}

fn all_headers(response: &RawResponse, name: &str) -> Vec<String> {
    response
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect()
}

/// `method uri` with `headers` and no body, read whole.
async fn send_with(method: Method, uri: String, headers: &[(&str, &str)]) -> RawResponse {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    raw::send(request.body(full_body("")).expect("request")).await
}

async fn preflight(
    addr: std::net::SocketAddr,
    path: &str,
    origin: Option<&str>,
    method: Option<&str>,
    headers: Option<&str>,
) -> RawResponse {
    let given = [
        ("origin", origin),
        ("access-control-request-method", method),
        ("access-control-request-headers", headers),
    ];
    let headers: Vec<(&str, &str)> = given.iter().filter_map(|(n, v)| v.map(|v| (*n, v))).collect();
    send_with(
        Method::OPTIONS,
        format!("http://127.0.0.1:{}{path}", addr.port()),
        &headers,
    )
    .await
}

fn signer(addr: std::net::SocketAddr) -> Signer<'static> {
    Signer {
        addr,
        key: CLIENT_KEY,
        secret: CLIENT_SECRET,
        time: time::OffsetDateTime::now_utc(),
    }
}

/// A presigned request as a browser sends it: the URL signed, `Origin` added by the browser.
async fn presigned_with_origin(
    addr: std::net::SocketAddr,
    method: Method,
    path: &str,
    origin: Option<&str>,
    body: &'static [u8],
) -> RawResponse {
    let (url, _) = signer(addr).presign(&method, path, 300, &[]);
    let mut request = Request::builder().method(method).uri(url);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    raw::send(request.body(full_body(body)).expect("request")).await
}

#[tokio::test]
async fn a_preflight_on_a_bucket_with_rules_is_answered_before_authentication_and_never_reaches_the_provider() {
    let up = TestUpstream::path_style().await;
    up.create_bucket("web");
    let (gateway, _) = single_provider_gateway(&up.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "minio", WEB_RULES).await;
    let addr = gateway.addr();
    let before = up.quirks.received_count();

    let allowed = preflight(
        addr,
        "/web/photos/cat.jpg",
        Some("https://app.example"),
        Some("PUT"),
        Some("Content-Type, X-Amz-Meta-Owner"),
    )
    .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(header(&allowed, "access-control-allow-credentials"), Some("true"));
    assert_eq!(header(&allowed, "access-control-allow-methods"), Some("GET, PUT, HEAD"));
    assert_eq!(
        header(&allowed, "access-control-allow-headers"),
        Some("content-type, x-amz-meta-owner")
    );
    assert_eq!(
        header(&allowed, "access-control-expose-headers"),
        Some("ETag, x-amz-request-id")
    );
    assert_eq!(header(&allowed, "access-control-max-age"), Some("3000"));
    assert_eq!(
        header(&allowed, "vary"),
        Some("Origin, Access-Control-Request-Headers, Access-Control-Request-Method")
    );
    assert!(allowed.body.is_empty());

    // The second rule, by its wildcard origin; a bucket-level path too.
    let cdn = preflight(addr, "/web", Some("https://img.cdn.example"), Some("GET"), None).await;
    assert_eq!(cdn.status, 200, "{}", cdn.body);
    assert_eq!(
        header(&cdn, "access-control-allow-origin"),
        Some("https://img.cdn.example")
    );
    assert_eq!(header(&cdn, "access-control-allow-methods"), Some("GET"));
    assert_eq!(header(&cdn, "access-control-allow-headers"), None);

    // What no rule allows: an origin, a method, a header. S3's answer, no CORS headers.
    for (origin, method, headers) in [
        ("https://evil.example", "GET", None),
        ("https://img.cdn.example", "PUT", None),
        ("https://app.example", "DELETE", None),
        ("https://app.example", "PUT", Some("content-type, x-amz-acl")),
    ] {
        let refused = preflight(addr, "/web/photos/cat.jpg", Some(origin), Some(method), headers).await;
        assert_eq!(
            (refused.status, refused.code().as_str()),
            (403, "AccessForbidden"),
            "{origin} {method}"
        );
        assert_eq!(refused.message(), s3ferry::cors::NOT_ALLOWED_MESSAGE);
        assert_eq!(header(&refused, "access-control-allow-origin"), None);
        assert!(header(&refused, "x-amz-request-id").is_some());
    }
    let no_method = preflight(addr, "/web/x", Some("https://app.example"), None, None).await;
    assert_eq!((no_method.status, no_method.code().as_str()), (400, "BadRequest"));
    let no_origin = preflight(addr, "/web/x", None, Some("GET"), None).await;
    assert_eq!((no_origin.status, no_origin.code().as_str()), (400, "BadRequest"));
    // No bucket, or a bucket no route serves: S3's answer for a bucket without CORS. (This
    // gateway routes `*`, so the service root stands for both.)
    let root = preflight(addr, "/", Some("https://app.example"), Some("GET"), None).await;
    assert_eq!((root.status, root.code().as_str()), (403, "AccessForbidden"));
    assert_eq!(root.message(), s3ferry::cors::NOT_ENABLED_MESSAGE);

    let reached = up.quirks.received_since(before);
    assert!(reached.is_empty(), "no preflight may reach the provider: {reached:?}");
    gateway.shutdown(std::time::Duration::from_secs(5)).await;
}

#[tokio::test]
async fn answers_on_a_bucket_with_rules_carry_the_matching_rules_headers_errors_included() {
    let up = TestUpstream::path_style().await;
    up.create_bucket("web");
    let (gateway, _) = single_provider_gateway(&up.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "minio", WEB_RULES).await;
    let addr = gateway.addr();
    let vary = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";

    let put = presigned_with_origin(
        addr,
        Method::PUT,
        "/web/page.txt",
        Some("https://app.example"),
        b"hello",
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(header(&put, "access-control-allow-origin"), Some("https://app.example"));
    assert_eq!(header(&put, "access-control-allow-credentials"), Some("true"));
    assert_eq!(
        header(&put, "access-control-expose-headers"),
        Some("ETag, x-amz-request-id")
    );
    assert_eq!(all_headers(&put, "vary"), vec![vary.to_string()]);
    assert!(header(&put, "etag").is_some());

    let get = presigned_with_origin(addr, Method::GET, "/web/page.txt", Some("https://img.cdn.example"), b"").await;
    assert_eq!((get.status, get.body.as_str()), (200, "hello"));
    assert_eq!(
        header(&get, "access-control-allow-origin"),
        Some("https://img.cdn.example")
    );
    assert_eq!(header(&get, "access-control-expose-headers"), None);

    // An origin the rules do not allow, or a method its rule does not: no CORS headers, so
    // the browser withholds the answer; `Vary` still tells caches the answer depends on Origin.
    for (method, origin) in [
        (Method::GET, "https://evil.example"),
        (Method::PUT, "https://img.cdn.example"),
    ] {
        let body: &'static [u8] = if method == Method::PUT { b"x" } else { b"" };
        let answer = presigned_with_origin(addr, method, "/web/page.txt", Some(origin), body).await;
        assert_eq!(header(&answer, "access-control-allow-origin"), None, "{origin}");
        assert_eq!(all_headers(&answer, "vary"), vec![vary.to_string()]);
    }
    // Without Origin: no CORS headers, but `Vary` (a cache must not hand this answer to a CORS request).
    let plain = presigned_with_origin(addr, Method::GET, "/web/page.txt", None, b"").await;
    assert_eq!(header(&plain, "access-control-allow-origin"), None);
    assert_eq!(all_headers(&plain, "vary"), vec![vary.to_string()]);

    // Errors: a missing key (the provider's), an unsigned request (s3s's), a refusal at the
    // trust boundary (an unsigned x-amz header). The page can read each.
    let missing = presigned_with_origin(addr, Method::GET, "/web/missing.txt", Some("https://app.example"), b"").await;
    assert_eq!((missing.status, missing.code().as_str()), (404, "NoSuchKey"));
    assert_eq!(
        header(&missing, "access-control-allow-origin"),
        Some("https://app.example")
    );
    let anonymous = send_with(
        Method::GET,
        format!("http://127.0.0.1:{}/web/page.txt", addr.port()),
        &[("origin", "https://app.example")],
    )
    .await;
    assert_eq!(anonymous.status, 403, "{}", anonymous.body);
    assert_eq!(
        header(&anonymous, "access-control-allow-origin"),
        Some("https://app.example")
    );
    let (url, _) = signer(addr).presign(&Method::GET, "/web/page.txt", 300, &[]);
    let unsigned_amz = send_with(
        Method::GET,
        url,
        &[
            ("origin", "https://app.example"),
            ("x-amz-copy-source", "/web/page.txt"),
        ],
    )
    .await;
    assert_eq!(
        (unsigned_amz.status, unsigned_amz.code().as_str()),
        (403, "AccessDenied")
    );
    assert_eq!(
        header(&unsigned_amz, "access-control-allow-origin"),
        Some("https://app.example")
    );

    // Another bucket, without rules, is left as the provider answers (s3s-fs sends no CORS).
    up.create_bucket("plain");
    let other = presigned_with_origin(addr, Method::PUT, "/plain/page.txt", Some("https://app.example"), b"x").await;
    assert_eq!(other.status, 200, "{}", other.body);
    assert_eq!(header(&other, "access-control-allow-origin"), None);
    assert_eq!(header(&other, "vary"), None);
    gateway.shutdown(std::time::Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_preflight_on_a_bucket_without_rules_reaches_the_provider_unsigned_with_only_its_cors_headers() {
    let up = TestUpstream::path_style().await;
    up.create_bucket("plain");
    let (gateway, _) = single_provider_gateway(&up.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "minio", "").await;
    let addr = gateway.addr();
    let before = up.quirks.received_count();
    let (url, _) = signer(addr).presign(&Method::PUT, "/plain/a%20b.txt", 300, &[]);
    let response = send_with(
        Method::OPTIONS,
        url,
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "content-type"),
            ("authorization", "AWS4-HMAC-SHA256 Credential=forged"),
            ("x-amz-copy-source", "/other/secret"),
            ("cookie", "session=1"),
        ],
    )
    .await;
    // s3s-fs has no bucket CORS: the provider refuses, and so does s3ferry, as S3 does.
    assert_eq!(
        (response.status, response.code().as_str()),
        (403, "AccessForbidden"),
        "{}",
        response.body
    );
    let reached = up.quirks.received_since(before);
    assert_eq!(reached.len(), 1, "{reached:?}");
    let sent = &reached[0];
    assert_eq!(sent.method, Method::OPTIONS);
    assert_eq!(
        sent.target, "/plain/a%20b.txt",
        "no query (the client's presigned signature) goes on"
    );
    let mut names: Vec<&str> = sent.headers.keys().map(http::HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        vec![
            "access-control-request-headers",
            "access-control-request-method",
            "host",
            "origin"
        ],
        "no signature of s3ferry's and nothing else of the client's goes on: {:?}",
        sent.headers
    );
    gateway.shutdown(std::time::Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_bucket_without_rules_relays_the_providers_own_cors_and_rules_replace_it() {
    let moto = Moto::start().await;
    let extra = r#"
[[buckets]]
name = "ruled"
provider = "up"
[[buckets.cors]]
allowed_origins = ["https://ours.example"]
allowed_methods = ["GET"]
expose_headers = ["ETag"]
"#;
    let (gateway, client) = single_provider_gateway(&moto.endpoint(), "moto", "moto", "aws", extra).await;
    let addr = gateway.addr();
    let providers_rule = CorsConfiguration::builder()
        .cors_rules(
            CorsRule::builder()
                .allowed_origins("https://app.example")
                .allowed_methods("GET")
                .expose_headers("ETag")
                .build()
                .expect("rule"),
        )
        .build()
        .expect("config");
    for bucket in ["open", "ruled"] {
        client
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("create bucket");
        // PutBucketCors passes through as any operation does.
        client
            .put_bucket_cors()
            .bucket(bucket)
            .cors_configuration(providers_rule.clone())
            .send()
            .await
            .expect("put bucket cors");
        client
            .put_object()
            .bucket(bucket)
            .key("k")
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"data"))
            .send()
            .await
            .expect("put");
    }
    let stored = client
        .get_bucket_cors()
        .bucket("open")
        .send()
        .await
        .expect("get bucket cors");
    assert_eq!(stored.cors_rules()[0].allowed_origins(), ["https://app.example"]);

    // `open` has no rules in s3ferry: moto's configuration answers the preflight.
    let allowed = preflight(addr, "/open", Some("https://app.example"), Some("GET"), None).await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(header(&allowed, "access-control-expose-headers"), Some("ETag"));
    let refused = preflight(addr, "/open", Some("https://evil.example"), Some("GET"), None).await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (403, "AccessForbidden"),
        "{}",
        refused.body
    );
    assert_eq!(refused.message(), s3ferry::cors::NOT_ALLOWED_MESSAGE);
    assert_eq!(header(&refused, "access-control-allow-origin"), None);

    // `ruled` has rules: they answer, whatever moto's configuration says.
    let ours = preflight(addr, "/ruled", Some("https://ours.example"), Some("GET"), None).await;
    assert_eq!(ours.status, 200, "{}", ours.body);
    assert_eq!(
        header(&ours, "access-control-allow-origin"),
        Some("https://ours.example")
    );
    let theirs = preflight(addr, "/ruled", Some("https://app.example"), Some("GET"), None).await;
    assert_eq!((theirs.status, theirs.code().as_str()), (403, "AccessForbidden"));

    // Actual answers: moto's own CORS headers pass through on `open`, unchanged...
    let direct = send_with(
        Method::GET,
        format!("{}/open/k", moto.endpoint()),
        &[("origin", "https://app.example"), ("authorization", "AWS moto:x")],
    )
    .await;
    let relayed = presigned_with_origin(addr, Method::GET, "/open/k", Some("https://app.example"), b"").await;
    assert_eq!((relayed.status, relayed.body.as_str()), (200, "data"));
    assert!(
        header(&direct, "access-control-allow-origin").is_some(),
        "moto sends CORS headers: {:?}",
        direct.headers
    );
    for name in ["access-control-allow-origin", "access-control-expose-headers"] {
        assert_eq!(header(&relayed, name), header(&direct, name), "{name}");
    }
    // ... and are replaced by the rules' on `ruled`.
    let theirs = presigned_with_origin(addr, Method::GET, "/ruled/k", Some("https://app.example"), b"").await;
    assert_eq!(theirs.status, 200);
    let cors_headers: Vec<&str> = theirs
        .headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|n| n.starts_with("access-control-"))
        .collect();
    assert!(cors_headers.is_empty(), "no rule allows app.example: {cors_headers:?}");
    let ours = presigned_with_origin(addr, Method::GET, "/ruled/k", Some("https://ours.example"), b"").await;
    assert_eq!(
        header(&ours, "access-control-allow-origin"),
        Some("https://ours.example")
    );
    assert_eq!(all_headers(&ours, "access-control-allow-origin").len(), 1);
    assert_eq!(header(&ours, "access-control-expose-headers"), Some("ETag"));
    gateway.shutdown(std::time::Duration::from_secs(5)).await;
}

#[tokio::test]
async fn cors_rules_change_with_a_reload_and_apply_to_virtual_hosted_requests() {
    let up = TestUpstream::path_style().await;
    up.create_bucket("web");
    let config = |origin: &str| {
        let rule = format!(
            "[[buckets]]\nname = \"web\"\nprovider = \"up\"\n[[buckets.cors]]\nallowed_origins = [\"{origin}\"]\nallowed_methods = [\"GET\"]\n"
        );
        let mut config = single_provider_config(&up.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "minio", &rule);
        config.server.domain = Some("s3.localhost".into());
        config
    };
    let gateway = s3ferry::server::start(&config("https://before.example"))
        .await
        .expect("gateway");
    let addr = gateway.addr();
    let answer =
        |origin: &'static str| async move { preflight(addr, "/web/x", Some(origin), Some("GET"), None).await.status };
    assert_eq!(answer("https://before.example").await, 200);
    assert_eq!(answer("https://after.example").await, 403);
    gateway.reload(&config("https://after.example")).await.expect("reload");
    assert_eq!(answer("https://before.example").await, 403);
    assert_eq!(answer("https://after.example").await, 200);
    // The same bucket addressed virtual-hosted style.
    let host = format!("web.s3.localhost:{}", addr.port());
    let vhost = send_with(
        Method::OPTIONS,
        format!("http://127.0.0.1:{}/x", addr.port()),
        &[
            ("host", &host),
            ("origin", "https://after.example"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert_eq!(vhost.status, 200, "{}", vhost.body);
    assert_eq!(
        header(&vhost, "access-control-allow-origin"),
        Some("https://after.example")
    );
    gateway.shutdown(std::time::Duration::from_secs(5)).await;
}
