//! Through-gateway vs direct-to-upstream, in the same run: large-object PUT/GET throughput and
//! small-object GET rate against an in-process s3s-fs upstream; and a large streamed PUT as SDKs
//! send it (aws-chunked with a CRC32 trailer), which s3ferry re-frames for the provider, and
//! the same through a provider with `unsigned_trailer = false` (plain body). Prints each ratio.
//!
//!     cargo bench --bench throughput
//!
//! Environment: BENCH_LARGE_MIB (default 256), BENCH_SMALL_COUNT (default 500).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use s3ferry::upstream::sign::{EMPTY_PAYLOAD_SHA256, SigningParams, UNSIGNED_PAYLOAD, sign_v4};

type BenchBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

const UP_KEY: &str = "bench-upstream";
const UP_SECRET: &str = "bench-upstream-secret";
const GW_KEY: &str = "bench-client";
const GW_SECRET: &str = "bench-client-secret";
const MIB: usize = 1024 * 1024;

struct Target {
    name: &'static str,
    addr: SocketAddr,
    key: &'static str,
    secret: &'static str,
}

fn signed(
    target: &Target,
    method: Method,
    path: &str,
    mut headers: HeaderMap,
    payload: &str,
) -> http::request::Builder {
    let host = target.addr.to_string();
    headers.insert("host", HeaderValue::from_str(&host).expect("host"));
    let params = SigningParams {
        access_key_id: target.key,
        secret_access_key: target.secret,
        region: "us-east-1",
        time: time::OffsetDateTime::now_utc(),
    };
    sign_v4(&method, path, "", &mut headers, payload, &params);
    let mut b = Request::builder().method(method).uri(format!("http://{host}{path}"));
    for (k, v) in &headers {
        b = b.header(k, v);
    }
    b
}

fn body_of(pieces: Vec<Bytes>) -> BenchBody {
    let stream = futures_util::stream::iter(pieces.into_iter().map(|p| Ok(http_body::Frame::data(p))));
    BodyExt::boxed(http_body_util::StreamBody::new(stream))
}

async fn put_large(client: &Client<HttpConnector, BenchBody>, t: &Target, key: &str, mib: usize) -> Duration {
    let piece = Bytes::from(vec![7u8; MIB]);
    let mut headers = HeaderMap::new();
    headers.insert("content-length", HeaderValue::from(mib * MIB));
    let req = signed(t, Method::PUT, &format!("/bench/{key}"), headers, UNSIGNED_PAYLOAD);
    let started = Instant::now();
    let resp = client
        .request(req.body(body_of(vec![piece; mib])).expect("req"))
        .await
        .expect("put");
    assert!(resp.status().is_success(), "{} PUT: {}", t.name, resp.status());
    resp.into_body().collect().await.expect("body");
    started.elapsed()
}

/// `mib` MiB framed as SDKs stream a file: unsigned 64 KiB aws-chunked chunks and a CRC32
/// trailer. Returns the pieces and the encoded length.
fn trailer_body_pieces(mib: usize) -> (Vec<Bytes>, usize) {
    let data = vec![7u8; MIB];
    let mut segment = Vec::with_capacity(MIB + 16 * 16);
    for chunk in data.chunks(64 * 1024) {
        segment.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        segment.extend_from_slice(chunk);
        segment.extend_from_slice(b"\r\n");
    }
    let mut crc = s3ferry::checksum::ChecksumHasher::new(s3ferry::checksum::ChecksumAlgorithm::Crc32);
    for _ in 0..mib {
        crc.update(&data);
    }
    let end = Bytes::from(format!("0\r\nx-amz-checksum-crc32:{}\r\n\r\n", crc.finalize_base64()));
    let segment = Bytes::from(segment);
    let mut pieces = vec![segment; mib];
    pieces.push(end);
    let len = pieces.iter().map(Bytes::len).sum();
    (pieces, len)
}

async fn put_large_with_trailer(
    client: &Client<HttpConnector, BenchBody>,
    t: &Target,
    key: &str,
    mib: usize,
) -> Duration {
    let (pieces, encoded_len) = trailer_body_pieces(mib);
    let mut headers = HeaderMap::new();
    headers.insert("content-length", HeaderValue::from(encoded_len));
    headers.insert("content-encoding", HeaderValue::from_static("aws-chunked"));
    headers.insert("x-amz-decoded-content-length", HeaderValue::from(mib * MIB));
    headers.insert("x-amz-trailer", HeaderValue::from_static("x-amz-checksum-crc32"));
    headers.insert("x-amz-sdk-checksum-algorithm", HeaderValue::from_static("CRC32"));
    let req = signed(
        t,
        Method::PUT,
        &format!("/bench/{key}"),
        headers,
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    );
    let started = Instant::now();
    let resp = client
        .request(req.body(body_of(pieces)).expect("req"))
        .await
        .expect("put");
    assert!(resp.status().is_success(), "{} trailer PUT: {}", t.name, resp.status());
    resp.into_body().collect().await.expect("body");
    started.elapsed()
}

async fn get(client: &Client<HttpConnector, BenchBody>, t: &Target, key: &str) -> (Duration, usize) {
    let req = signed(
        t,
        Method::GET,
        &format!("/bench/{key}"),
        HeaderMap::new(),
        EMPTY_PAYLOAD_SHA256,
    );
    let started = Instant::now();
    let resp = client
        .request(req.body(body_of(vec![])).expect("req"))
        .await
        .expect("get");
    assert!(resp.status().is_success(), "{} GET: {}", t.name, resp.status());
    let mut body = resp.into_body();
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame.expect("frame").into_data() {
            n += d.len();
        }
    }
    (started.elapsed(), n)
}

async fn small_gets(client: &Client<HttpConnector, BenchBody>, t: &Target, count: usize) -> Duration {
    let started = Instant::now();
    for _ in 0..count {
        let (_, n) = get(client, t, "small").await;
        assert_eq!(n, 4096);
    }
    started.elapsed()
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let large_mib = env_usize("BENCH_LARGE_MIB", 256);
    let small_count = env_usize("BENCH_SMALL_COUNT", 500);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let root = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(root.path().join("bench")).expect("bucket");
        let fs = s3s_fs::FileSystem::new(root.path()).expect("fs");
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(UP_KEY, UP_SECRET));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let up_addr = listener.local_addr().expect("addr");
        tokio::spawn(s3ferry::local::serve_s3_service(listener, builder.build()));

        let toml = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[[credentials]]\naccess_key_id = \"{GW_KEY}\"\nsecret_access_key = \"{GW_SECRET}\"\ngrants = \"all\"\n\
             [providers.up]\nendpoint = \"http://{up_addr}\"\naccess_key_id = \"{UP_KEY}\"\nsecret_access_key = \"{UP_SECRET}\"\n\
             [[buckets]]\nname = \"*\"\nprovider = \"up\"\n"
        );
        let config = s3ferry::config::Config::parse(&toml, "bench.toml", Path::new("."), &|_| None).expect("config");
        let gateway = s3ferry::server::start(&config).await.expect("gateway");
        let plain_toml = format!("{toml}[providers.up.dialect_overrides]\nunsigned_trailer = false\n");
        let config = s3ferry::config::Config::parse(&plain_toml, "bench.toml", Path::new("."), &|_| None).expect("config");
        let plain_gateway = s3ferry::server::start(&config).await.expect("gateway");

        let direct = Target { name: "direct", addr: up_addr, key: UP_KEY, secret: UP_SECRET };
        let through = Target { name: "s3ferry", addr: gateway.addr(), key: GW_KEY, secret: GW_SECRET };
        let through_plain = Target { name: "s3ferry-plain", addr: plain_gateway.addr(), key: GW_KEY, secret: GW_SECRET };
        let client: Client<HttpConnector, BenchBody> = Client::builder(TokioExecutor::new()).build_http();

        // Seed the small object once.
        let mut h = HeaderMap::new();
        h.insert("content-length", HeaderValue::from(4096));
        let req = signed(&direct, Method::PUT, "/bench/small", h, UNSIGNED_PAYLOAD);
        client.request(req.body(body_of(vec![Bytes::from(vec![1u8; 4096])])).expect("req")).await.expect("seed");

        println!("s3ferry throughput bench: {large_mib} MiB objects, {small_count} x 4 KiB GETs, s3s-fs upstream on loopback");
        println!("{:<28} {:>12} {:>12} {:>8}", "measure", "direct", "s3ferry", "ratio");
        for round in 0..2 {
            let mut results = Vec::new();
            for t in [&direct, &through] {
                let put = put_large(&client, t, &format!("large-{}", t.name), large_mib).await;
                let (get_time, n) = get(&client, t, &format!("large-{}", t.name)).await;
                assert_eq!(n, large_mib * MIB);
                let small = small_gets(&client, t, small_count).await;
                results.push((put, get_time, small));
            }
            let mbps = |d: Duration| large_mib as f64 / d.as_secs_f64();
            let rate = |d: Duration| small_count as f64 / d.as_secs_f64();
            let (d, g) = (results[0], results[1]);
            let label = if round == 0 { " (warm-up)" } else { "" };
            println!("{:<28} {:>9.0} MB/s {:>7.0} MB/s {:>7.2}x", format!("PUT large{label}"), mbps(d.0), mbps(g.0), mbps(g.0) / mbps(d.0));
            println!("{:<28} {:>9.0} MB/s {:>7.0} MB/s {:>7.2}x", format!("GET large{label}"), mbps(d.1), mbps(g.1), mbps(g.1) / mbps(d.1));
            println!("{:<28} {:>10.0} /s {:>9.0} /s {:>7.2}x", format!("GET 4 KiB sequential{label}"), rate(d.2), rate(g.2), rate(g.2) / rate(d.2));
            let mut trailer = Vec::new();
            for t in [&direct, &through, &through_plain] {
                trailer.push(put_large_with_trailer(&client, t, &format!("trailer-{}", t.name), large_mib).await);
            }
            let (d, reframed, plain) = (mbps(trailer[0]), mbps(trailer[1]), mbps(trailer[2]));
            println!("{:<28} {:>9.0} MB/s {:>7.0} MB/s {:>7.2}x", format!("PUT trailer, re-framed{label}"), d, reframed, reframed / d);
            println!("{:<28} {:>9.0} MB/s {:>7.0} MB/s {:>7.2}x", format!("PUT trailer, plain{label}"), d, plain, plain / d);
        }
        gateway.shutdown(Duration::from_secs(2)).await;
        plain_gateway.shutdown(Duration::from_secs(2)).await;
    });
}
