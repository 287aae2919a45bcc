//! One byte budget for every body s3ferry reads whole (`server.max_buffered_body_bytes`):
//! requests that find no room get 503 SlowDown and never reach the provider, and the budget is
//! whole again once the bodies have been sent on.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use http_body::Frame;
use http_body_util::BodyExt as _;
use s3ferry::config::Config;
use s3ferry::server::RunningGateway;

use crate::support::raw::{self, RawBody, RawResponse, Signer, full_body};
use crate::support::{CLIENT_KEY, CLIENT_SECRET, TestUpstream, UPSTREAM_KEY, UPSTREAM_SECRET};

const BUDGET: usize = 64 * 1024;
const BUCKET: &str = "tidy";

/// A gateway with a 64 KiB body budget in front of `up`, whose dialect wants `Content-MD5` on
/// DeleteObjects, so s3ferry reads every DeleteObjects body whole.
async fn gateway_with_small_budget(up: &TestUpstream) -> RunningGateway {
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
max_buffered_body_bytes = {BUDGET}
[[credentials]]
access_key_id = "{CLIENT_KEY}"
secret_access_key = "{CLIENT_SECRET}"
grants = "all"
[providers.up]
endpoint = "{endpoint}"
access_key_id = "{UPSTREAM_KEY}"
secret_access_key = "{UPSTREAM_SECRET}"
addressing = "path"
dialect = "minio"
read_timeout_secs = 20
[providers.up.dialect_overrides]
content_md5_required = true
[[buckets]]
name = "*"
provider = "up"
"#,
        endpoint = up.endpoint()
    );
    let config = Config::parse(&toml, "budget.toml", Path::new("."), &|_| None).expect("config");
    s3ferry::server::start(&config).await.expect("gateway")
}

/// A DeleteObjects document naming `real` keys and enough fillers to weigh about `size` bytes.
fn delete_document(real: &[&str], size: usize) -> Vec<u8> {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">"#,
    );
    for key in real {
        xml.push_str(&format!("<Object><Key>{key}</Key></Object>"));
    }
    let mut i = 0;
    while xml.len() < size - 200 {
        xml.push_str(&format!("<Object><Key>filler/{i:05}/{}</Key></Object>", "x".repeat(80)));
        i += 1;
    }
    xml.push_str("<Quiet>false</Quiet></Delete>");
    xml.into_bytes()
}

/// A signed DeleteObjects head of `length` bytes (the body unsigned, as presigned and
/// streaming clients send it).
fn delete_request(addr: std::net::SocketAddr, length: usize) -> http::request::Builder {
    let signer = Signer {
        addr,
        key: CLIENT_KEY,
        secret: CLIENT_SECRET,
        time: time::OffsetDateTime::now_utc(),
    };
    let mut headers = HeaderMap::new();
    headers.insert("content-length", HeaderValue::from(length));
    headers.insert("content-type", HeaderValue::from_static("application/xml"));
    headers.insert("x-amz-content-sha256", HeaderValue::from_static("UNSIGNED-PAYLOAD"));
    signer
        .sign(Method::POST, &format!("/{BUCKET}?delete"), headers, "UNSIGNED-PAYLOAD")
        .0
}

/// The free bytes the gateway reports in `s3ferry_buffered_body_budget_free_bytes`.
fn free_bytes(g: &RunningGateway) -> usize {
    let text = g.metrics().render().expect("metrics render");
    text.lines()
        .find_map(|l| l.strip_prefix("s3ferry_buffered_body_budget_free_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the gauge is exported")
}

/// Waits (at most 10 s) until the gauge shows `expected` free bytes.
async fn wait_for_free(g: &RunningGateway, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while free_bytes(g) != expected {
        assert!(
            Instant::now() < deadline,
            "free bytes stayed {} instead of {expected}",
            free_bytes(g)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn delete_objects_beyond_the_body_budget_get_slow_down_and_never_reach_the_provider() {
    let up = TestUpstream::path_style().await;
    up.create_bucket(BUCKET);
    let keys = ["held/a", "held/b", "refused/0", "refused/1", "refused/2"];
    let direct = up.direct_client();
    for key in keys {
        direct
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b"x"))
            .send()
            .await
            .expect("seed");
    }
    let g = gateway_with_small_budget(&up).await;
    assert_eq!(free_bytes(&g), BUDGET, "the whole budget is free at start");

    // One client announces a 40 KB DeleteObjects and sends half of it: its whole announced size
    // is taken from the budget before the first byte is read, and held while it stalls.
    let held = delete_document(&["held/a", "held/b"], 40_000);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(2);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let piece = rx.recv().await?;
        Some((
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(piece)),
            rx,
        ))
    });
    let body: RawBody = http_body_util::StreamBody::new(stream).boxed();
    let stalled = tokio::spawn(raw::send(
        delete_request(g.addr(), held.len()).body(body).expect("request"),
    ));
    let (first, rest) = held.split_at(held.len() / 2);
    tx.send(Bytes::copy_from_slice(first)).await.expect("first half");
    wait_for_free(&g, BUDGET - held.len()).await;

    // Three more, 30 KB each, at once: none fits in what is left.
    let refused: Vec<RawResponse> = futures::future::join_all((0..3).map(|i| {
        let key = format!("refused/{i}");
        let document = delete_document(&[key.as_str()], 30_000);
        let request = delete_request(g.addr(), document.len())
            .body(full_body(document))
            .expect("request");
        raw::send(request)
    }))
    .await;
    for resp in &refused {
        assert_eq!((resp.status, resp.code().as_str()), (503, "SlowDown"), "{}", resp.body);
        assert_eq!(
            resp.headers.get("retry-after").map(HeaderValue::as_bytes),
            Some(&b"1"[..])
        );
    }
    for key in ["refused/0", "refused/1", "refused/2"] {
        assert!(
            up.has_object(BUCKET, key).await,
            "{key} was deleted by a refused request"
        );
    }

    // The stalled client finishes: its request goes through, and the budget is whole again.
    tx.send(Bytes::copy_from_slice(rest)).await.expect("second half");
    drop(tx);
    let done = tokio::time::timeout(Duration::from_secs(30), stalled)
        .await
        .expect("answered within 30 s")
        .expect("joined");
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(!up.has_object(BUCKET, "held/a").await && !up.has_object(BUCKET, "held/b").await);
    wait_for_free(&g, BUDGET).await;
    g.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn small_bodies_within_the_budget_are_served_and_give_their_bytes_back() {
    let up = TestUpstream::path_style().await;
    up.create_bucket(BUCKET);
    let g = gateway_with_small_budget(&up).await;
    // Eight at once, 6 KB each: 48 KB fits in the 64 KiB budget.
    let answers: Vec<RawResponse> = futures::future::join_all((0..8).map(|i| {
        let key = format!("k{i}");
        let document = delete_document(&[key.as_str()], 6_000);
        let request = delete_request(g.addr(), document.len())
            .body(full_body(document))
            .expect("request");
        raw::send(request)
    }))
    .await;
    for resp in &answers {
        assert_eq!(resp.status, 200, "{}", resp.body);
    }
    wait_for_free(&g, BUDGET).await;
    g.shutdown(Duration::from_secs(2)).await;
}
