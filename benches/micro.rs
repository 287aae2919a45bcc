//! Micro-benchmarks of the per-request work s3ferry adds (docs/performance.md):
//!
//! - verify a SigV4 header-signed request: s3s's `S3Service` with a key pair and a route that
//!   answers at once, as s3ferry's front door is built;
//! - re-sign it for a provider (`upstream::sign::sign_v4_cached`, and `sign_v4` deriving the key);
//! - decode and verify 1 MiB of aws-chunked data: signed chunks (s3s checks each chunk's
//!   signature), and unsigned chunks with a CRC32 trailer (s3s decodes, s3ferry's
//!   `HoldBackLast` checks the checksum);
//! - rewrite a 1,000-key ListObjectsV2 answer: bucket names, provider values (ETag case), key
//!   URL-encoding, and the three in the one pass the relay makes.
//!
//!     cargo bench --bench micro

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::BodyExt;
use s3ferry::upstream::sign::{
    EMPTY_PAYLOAD_SHA256, SigningKeys, SigningParams, UNSIGNED_PAYLOAD, hex_sha256, sign_v4, sign_v4_cached,
};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Request, S3Response, S3Result};
use sha2::Sha256;

const KEY: &str = "AKIAMICROBENCH";
const SECRET: &str = "micro-bench-secret";
const HOST: &str = "127.0.0.1:8333";
const MIB: usize = 1024 * 1024;

/// No S3 operation: every request goes to [`DrainRoute`].
struct NoOperations;
#[async_trait::async_trait]
impl s3s::S3 for NoOperations {}

/// Accepts every verified request and reads its body to the end, checking a CRC32 trailer
/// with s3ferry's `HoldBackLast` when one was announced.
struct DrainRoute;

#[async_trait::async_trait]
impl s3s::route::S3Route for DrainRoute {
    fn is_match(&self, _: &Method, _: &http::Uri, _: &HeaderMap, _: &mut http::Extensions) -> bool {
        true
    }

    async fn call(&self, req: S3Request<s3s::Body>) -> S3Result<S3Response<s3s::Body>> {
        let slot = s3ferry::body::FailureSlot::default();
        let check = req
            .trailing_headers
            .clone()
            .filter(|_| req.headers.contains_key("x-amz-trailer"))
            .map(|t| {
                s3ferry::body::ChecksumCheck::new(
                    s3ferry::checksum::ChecksumAlgorithm::Crc32,
                    s3ferry::body::ExpectedChecksum::Trailer(t),
                )
            });
        let mut body = s3ferry::body::HoldBackLast::new(req.input, check, slot.clone()).into_upstream_body();
        let mut n = 0usize;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => n += frame.data_ref().map_or(0, Bytes::len),
                Err(_) => return Err(s3s::s3_error!(InvalidRequest, "body failed")),
            }
        }
        if s3ferry::body::recorded_failure(&slot).is_some() {
            return Err(s3s::s3_error!(BadDigest));
        }
        black_box(n);
        Ok(S3Response::new(s3s::Body::empty()))
    }
}

fn service() -> S3Service {
    let mut builder = S3ServiceBuilder::new(NoOperations);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(KEY, SECRET));
    builder.set_route(DrainRoute);
    builder.build()
}

fn params() -> SigningParams<'static> {
    SigningParams {
        access_key_id: KEY,
        secret_access_key: SECRET,
        region: "us-east-1",
        time: time::OffsetDateTime::now_utc(),
    }
}

/// A GET as an SDK signs it: host, x-amz-date, x-amz-content-sha256, a user agent.
fn signed_get_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static(HOST));
    headers.insert(
        "user-agent",
        HeaderValue::from_static("aws-sdk-rust/1.0 os/linux lang/rust"),
    );
    headers.insert(
        "amz-sdk-invocation-id",
        HeaderValue::from_static("5a9b7c1e-0000-4000-8000-000000000000"),
    );
    sign_v4(
        &Method::GET,
        "/photos/2026/11/IMG_00042.jpg",
        "",
        &mut headers,
        EMPTY_PAYLOAD_SHA256,
        &params(),
    );
    headers
}

fn request(method: Method, path: &str, headers: &HeaderMap, body: s3s::Body) -> Request<s3s::Body> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = path.parse().expect("uri");
    *req.headers_mut() = headers.clone();
    req
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("hmac key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// 1 MiB as `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: 64 KiB chunks, each signed after the one
/// before it, the seed being the header signature. Returns the headers and the body.
fn signed_chunked_put() -> (HeaderMap, Bytes) {
    let data = vec![7u8; MIB];
    let chunk_size = 64 * 1024;
    let chunks = MIB / chunk_size;
    let encoded_len = chunks * (format!("{chunk_size:x};chunk-signature=").len() + 64 + 2 + chunk_size + 2)
        + "0;chunk-signature=".len()
        + 64
        + 4;
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static(HOST));
    headers.insert("content-encoding", HeaderValue::from_static("aws-chunked"));
    headers.insert("content-length", HeaderValue::from(encoded_len));
    headers.insert("x-amz-decoded-content-length", HeaderValue::from(MIB));
    let params = params();
    sign_v4(
        &Method::PUT,
        "/photos/big.bin",
        "",
        &mut headers,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        &params,
    );
    let authorization = headers["authorization"].to_str().expect("ascii").to_string();
    let mut previous = authorization
        .rsplit_once("Signature=")
        .expect("signature")
        .1
        .to_string();
    let amz_date = headers["x-amz-date"].to_str().expect("ascii").to_string();
    let date = &amz_date[..8];
    let scope = format!("{date}/us-east-1/s3/aws4_request");
    let mut key = hmac(format!("AWS4{SECRET}").as_bytes(), date.as_bytes());
    for part in ["us-east-1", "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let mut body = Vec::with_capacity(encoded_len);
    let empty = hex_sha256(b"");
    for chunk in data.chunks(chunk_size).chain(std::iter::once(&[][..])) {
        let to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n{empty}\n{}",
            hex_sha256(chunk)
        );
        previous = hex::encode(hmac(&key, to_sign.as_bytes()));
        body.extend_from_slice(format!("{:x};chunk-signature={previous}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    assert_eq!(body.len(), encoded_len, "encoded length");
    (headers, Bytes::from(body))
}

/// 1 MiB as SDKs send it by default: unsigned 64 KiB chunks and a CRC32 trailer.
fn trailer_chunked_put() -> (HeaderMap, Bytes) {
    let data = vec![7u8; MIB];
    let mut body = Vec::with_capacity(MIB + 1024);
    for chunk in data.chunks(64 * 1024) {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    let mut crc = s3ferry::checksum::ChecksumHasher::new(s3ferry::checksum::ChecksumAlgorithm::Crc32);
    crc.update(&data);
    body.extend_from_slice(format!("0\r\nx-amz-checksum-crc32:{}\r\n\r\n", crc.finalize_base64()).as_bytes());
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static(HOST));
    headers.insert("content-encoding", HeaderValue::from_static("aws-chunked"));
    headers.insert("content-length", HeaderValue::from(body.len()));
    headers.insert("x-amz-decoded-content-length", HeaderValue::from(MIB));
    headers.insert("x-amz-trailer", HeaderValue::from_static("x-amz-checksum-crc32"));
    headers.insert("x-amz-sdk-checksum-algorithm", HeaderValue::from_static("CRC32"));
    sign_v4(
        &Method::PUT,
        "/photos/big.bin",
        "",
        &mut headers,
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        &params(),
    );
    (headers, Bytes::from(body))
}

/// The body in 64 KiB pieces, as it would come off a socket.
fn streamed(body: &Bytes) -> s3s::Body {
    let pieces: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = (0..body.len())
        .step_by(64 * 1024)
        .map(|i| Ok(http_body::Frame::data(body.slice(i..(i + 64 * 1024).min(body.len())))))
        .collect();
    s3s::Body::http_body(http_body_util::StreamBody::new(futures_util::stream::iter(pieces)))
}

fn bench_auth(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let service = Arc::new(service());

    let headers = signed_get_headers();
    let probe = runtime.block_on(service.call(request(
        Method::GET,
        "/photos/2026/11/IMG_00042.jpg",
        &headers,
        s3s::Body::empty(),
    )));
    assert!(
        probe.as_ref().is_ok_and(|r| r.status().is_success()),
        "GET not verified: {probe:?}"
    );
    c.bench_function("verify SigV4 header GET (s3s service, no-op route)", |b| {
        b.iter_batched(
            || {
                request(
                    Method::GET,
                    "/photos/2026/11/IMG_00042.jpg",
                    &headers,
                    s3s::Body::empty(),
                )
            },
            |req| runtime.block_on(service.call(req)),
            BatchSize::SmallInput,
        )
    });

    // What a provider sends: its signing key derived once a day (`sign_v4_cached`), and for
    // comparison derived per request (`sign_v4`, four more HMACs).
    let keys = SigningKeys::default();
    for (name, cached) in [
        ("re-sign for the provider (sign_v4_cached, the day's key kept)", true),
        ("re-sign for the provider (sign_v4, key derived each time)", false),
    ] {
        c.bench_function(name, |b| {
            let mut outgoing = HeaderMap::new();
            outgoing.insert(
                "host",
                HeaderValue::from_static("acme-photos.fra1.digitaloceanspaces.com"),
            );
            outgoing.insert(
                "user-agent",
                HeaderValue::from_static("aws-sdk-rust/1.0 os/linux lang/rust"),
            );
            outgoing.insert("range", HeaderValue::from_static("bytes=0-1023"));
            let params = SigningParams {
                region: "fra1",
                ..params()
            };
            b.iter_batched(
                || outgoing.clone(),
                |mut h| {
                    let (path, payload) = ("/2026/11/IMG_00042.jpg", UNSIGNED_PAYLOAD);
                    if cached {
                        sign_v4_cached(&Method::GET, path, "", &mut h, payload, &params, &keys);
                    } else {
                        sign_v4(&Method::GET, path, "", &mut h, payload, &params);
                    }
                    h
                },
                BatchSize::SmallInput,
            )
        });
    }

    let mut group = c.benchmark_group("decode and verify 1 MiB aws-chunked");
    group.throughput(Throughput::Bytes(MIB as u64));
    for (name, (headers, body)) in [
        ("signed chunks", signed_chunked_put()),
        ("unsigned + CRC32 trailer", trailer_chunked_put()),
    ] {
        let probe = runtime.block_on(service.call(request(Method::PUT, "/photos/big.bin", &headers, streamed(&body))));
        assert!(
            probe.as_ref().is_ok_and(|r| r.status().is_success()),
            "{name} not verified: {probe:?}"
        );
        // A damaged body must fail, or the figure would time a check that never ran.
        let mut damaged = body.to_vec();
        damaged[100] ^= 1;
        let probe = runtime.block_on(service.call(request(
            Method::PUT,
            "/photos/big.bin",
            &headers,
            streamed(&Bytes::from(damaged)),
        )));
        assert!(
            !probe.as_ref().is_ok_and(|r| r.status().is_success()),
            "{name}: a damaged body was accepted"
        );
        group.bench_function(name, |b| {
            b.iter_batched(
                || request(Method::PUT, "/photos/big.bin", &headers, streamed(&body)),
                |req| runtime.block_on(service.call(req)),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// A provider's 1,000-key ListObjectsV2 page, as an S3 server writes it.
fn list_page() -> Vec<u8> {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <Name>acme-photos-fra1</Name><Prefix>2026/</Prefix><KeyCount>1000</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>\
         <NextContinuationToken>MjAyNi8xMS9JTUdfMDA5OTkuanBn</NextContinuationToken>",
    );
    for i in 0..1000 {
        xml.push_str(&format!(
            "<Contents><Key>2026/11/holiday photos+{i:05}.jpg</Key><LastModified>2026-11-30T12:00:00.000Z</LastModified>\
             <ETag>&quot;{:032x}&quot;</ETag><Size>{}</Size><StorageClass>STANDARD</StorageClass></Contents>",
            (i as u128) * 0x9e37_79b9_7f4a_7c15,
            1_000_000 + i
        ));
    }
    xml.push_str("</ListBucketResult>");
    xml.into_bytes()
}

fn bench_rewrite(c: &mut Criterion) {
    let xml = list_page();
    let profile = s3ferry::dialect::builtin("oss").expect("oss dialect");
    assert!(profile.rewrites_object_values(), "oss rewrites ETags");
    let mut group = c.benchmark_group(format!("rewrite 1,000-key ListObjectsV2 ({} KiB)", xml.len() / 1024));
    group.throughput(Throughput::Bytes(xml.len() as u64));
    group.bench_function("bucket names", |b| {
        b.iter(|| s3ferry::rewrite::bucket_names::rewrite_bucket_names(black_box(&xml), "acme-photos-fra1", "photos"))
    });
    group.bench_function("provider values (oss ETags)", |b| {
        b.iter(|| s3ferry::rewrite::provider_values::rewrite_response(black_box(&xml), &profile))
    });
    group.bench_function("key encoding (encoding-type=url)", |b| {
        b.iter(|| s3ferry::rewrite::listing_encoding::encode_listing_keys(black_box(&xml), true))
    });
    group.bench_function("all three in one pass", |b| {
        let view = s3ferry::rewrite::client_view::ClientView {
            rename: Some(("acme-photos-fra1", "photos")),
            values: Some(&profile),
            encode_keys: Some(s3ferry::rewrite::client_view::EncodeKeys { declare: true }),
        };
        b.iter(|| s3ferry::rewrite::client_view::rewrite_for_client(black_box(&xml), &view))
    });
    group.finish();
}

criterion_group!(benches, bench_auth, bench_rewrite);
criterion_main!(benches);
