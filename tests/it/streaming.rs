//! The built binary streams a 1 GiB upload and download in flat memory.

use bytes::Bytes;
use futures::StreamExt as _;
use http::{HeaderMap, HeaderValue, Method};
use http_body::Frame;
use http_body_util::BodyExt;
use md5::{Digest as _, Md5};

use crate::support::binary::{GatewayProcess, write_config};
use crate::support::raw::{RawBody, Signer};
use crate::support::{CLIENT_KEY, CLIENT_SECRET, TestUpstream, UPSTREAM_KEY, UPSTREAM_SECRET};

const MIB: usize = 1024 * 1024;
const OBJECT_MIB: usize = 1024;
const RSS_LIMIT_KIB: u64 = 100 * 1024;

/// Seventeen distinct 1 MiB pieces, cycled: the body is never one repeated block, and the test
/// itself holds 17 MiB, not the object.
fn pieces() -> Vec<Bytes> {
    (0..17u8)
        .map(|i| Bytes::from(crate::support::pattern(MIB, i)))
        .collect()
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM line");
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmHWM value")
}

#[tokio::test]
async fn the_binary_streams_a_1_gib_put_and_get_in_under_100_mib_of_memory() {
    let upstream = TestUpstream::path_style().await;
    upstream.create_bucket("big");
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[[credentials]]
access_key_id = "{CLIENT_KEY}"
secret_access_key = "{CLIENT_SECRET}"
grants = "all"
[providers.up]
endpoint = "{}"
access_key_id = "{UPSTREAM_KEY}"
secret_access_key = "{UPSTREAM_SECRET}"
[[buckets]]
name = "*"
provider = "up"
"#,
            upstream.endpoint()
        ),
    );
    let mut gateway = GatewayProcess::start(&config).await;
    let (addr, pid) = (gateway.addr, gateway.pid);

    let signer = Signer {
        addr,
        key: CLIENT_KEY,
        secret: CLIENT_SECRET,
        time: time::OffsetDateTime::now_utc(),
    };
    let mut headers = HeaderMap::new();
    headers.insert("content-length", HeaderValue::from(OBJECT_MIB * MIB));
    let (request, _) = signer.sign(Method::PUT, "/big/one-gib", headers, "UNSIGNED-PAYLOAD");
    let sent_md5 = std::sync::Arc::new(std::sync::Mutex::new(Md5::new()));
    let hasher = sent_md5.clone();
    let pieces = pieces();
    let stream = futures::stream::iter(0..OBJECT_MIB).map(move |i| {
        let p = pieces[i % pieces.len()].clone();
        hasher.lock().expect("hasher").update(&p);
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(p))
    });
    let body: RawBody = BodyExt::boxed(http_body_util::StreamBody::new(stream));
    let client: hyper_util::client::legacy::Client<_, RawBody> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let response = client
        .request(request.body(body).expect("request"))
        .await
        .expect("PUT response");
    assert_eq!(response.status(), 200, "PUT of 1 GiB");
    let sent = hex::encode(sent_md5.lock().expect("hasher").clone().finalize());
    let etag = response.headers()["etag"]
        .to_str()
        .expect("etag")
        .trim_matches('"')
        .to_string();
    assert_eq!(etag, sent, "the upstream stored exactly what was sent");

    let (request, _) = signer.sign(
        Method::GET,
        "/big/one-gib",
        HeaderMap::new(),
        s3ferry::upstream::sign::EMPTY_PAYLOAD_SHA256,
    );
    let response = client
        .request(request.body(crate::support::raw::full_body("")).expect("request"))
        .await
        .expect("GET response");
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut got = Md5::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("frame").into_data() {
            total += data.len();
            got.update(&data);
        }
    }
    assert_eq!(total, OBJECT_MIB * MIB);
    assert_eq!(hex::encode(got.finalize()), sent, "the download is the upload");

    let peak = peak_rss_kib(pid);
    eprintln!("s3ferry peak RSS after 1 GiB up and down: {} MiB", peak / 1024);
    assert!(peak < RSS_LIMIT_KIB, "peak RSS {peak} KiB exceeds {RSS_LIMIT_KIB} KiB");

    // One JSON access-log event per request, with sizes, and never a secret or a signature.
    gateway.signal("TERM");
    assert!(gateway.wait_exit().await.success());
    let log = gateway.lines();
    let events: Vec<serde_json::Value> = log
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let puts: Vec<&serde_json::Value> = events.iter().filter(|e| e["operation"] == "PutObject").collect();
    assert_eq!(puts.len(), 1, "one access event for the PUT: {log:?}");
    assert_eq!(puts[0]["bytes_in"].as_u64(), Some((OBJECT_MIB * MIB) as u64));
    assert_eq!(puts[0]["client_key_id"], CLIENT_KEY);
    let gets: Vec<&serde_json::Value> = events.iter().filter(|e| e["operation"] == "GetObject").collect();
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0]["bytes_out"].as_u64(), Some((OBJECT_MIB * MIB) as u64));
    for line in &log {
        for secret in [
            CLIENT_SECRET,
            UPSTREAM_SECRET,
            "Signature=",
            "AWS4-HMAC-SHA256 Credential",
        ] {
            assert!(!line.contains(secret), "a log line leaks {secret:?}: {line}");
        }
    }
}
