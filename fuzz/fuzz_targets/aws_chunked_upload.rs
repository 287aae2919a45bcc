//! A client's `aws-chunked` upload body, any bytes, through the path the gateway takes: s3s's
//! `S3Service` verifies the (validly signed) head and decodes the body, then s3ferry's
//! `HoldBackLast` checks the trailing CRC32. The fuzzer controls the whole body and the
//! announced decoded length. `STREAMING-UNSIGNED-PAYLOAD-TRAILER` bodies have no signatures to
//! get past, so every framing path is reachable; signed bodies reach the framing parser up to
//! the first chunk signature. Nothing may panic; an accepted body must be exactly the announced
//! length, and its CRC32 must be one that the body carried as a trailer. (s3s alone accepts a body of another
//! length than announced: found here, and now checked by `HoldBackLast::expecting_length`.)
#![no_main]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use http_body_util::BodyExt as _;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use s3ferry::body::{ChecksumCheck, ExpectedChecksum, FailureSlot, HoldBackLast, recorded_failure};
use s3ferry::checksum::ChecksumAlgorithm;
use s3ferry::upstream::sign::{SigningParams, sign_v4};
use s3s::auth::SimpleAuth;
use s3s::route::S3Route;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{Body, S3Request, S3Response, S3Result};

const KEY: &str = "fuzz-key";
const SECRET: &str = "fuzz-secret";

/// Laid out so a seed can be written by hand (`fuzz/seeds/aws_chunked_upload/`): one byte for
/// the form, the decoded length (u16, little-endian), four cut points (u16 LE), then the body.
#[derive(Debug, Arbitrary)]
struct Input<'a> {
    signed_chunks: bool,
    decoded_length: u16,
    /// Where the body is cut into transport frames.
    cuts: [u16; 4],
    body: &'a [u8],
}

/// The decoded body, or why reading it failed; `None` until a request reaches the route.
type Outcome = Arc<Mutex<Option<Result<Vec<u8>, String>>>>;

#[derive(Clone, Default)]
struct Record(Outcome);

struct NoOperations;

#[async_trait::async_trait]
impl s3s::S3 for NoOperations {}

#[async_trait::async_trait]
impl S3Route for Record {
    fn is_match(&self, _: &Method, _: &Uri, _: &HeaderMap, _: &mut http::Extensions) -> bool {
        true
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        // As the gateway does (gateway/upload.rs): the CRC32 trailer checked and the body held
        // to its announced length by HoldBackLast; an announced trailer without a handle refused.
        let length = req
            .headers
            .get("x-amz-decoded-content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let read = match (req.trailing_headers, length) {
            (Some(trailers), Some(length)) => {
                let slot = FailureSlot::default();
                let check = ChecksumCheck::new(ChecksumAlgorithm::Crc32, ExpectedChecksum::Trailer(trailers));
                let held = HoldBackLast::new(req.input, Some(check), slot.clone()).expecting_length(length);
                match (held.into_upstream_body().collect().await, recorded_failure(&slot)) {
                    (Ok(b), None) => Ok(b.to_bytes().to_vec()),
                    (_, failure) => Err(format!("{failure:?}")),
                }
            }
            _ => Err("no trailer handle or no decoded length".to_string()),
        };
        if let Ok(mut outcome) = self.0.lock() {
            *outcome = Some(read);
        }
        Ok(S3Response::new(Body::empty()))
    }
}

fn service(record: Record) -> S3Service {
    let mut builder = S3ServiceBuilder::new(NoOperations);
    builder.set_auth(SimpleAuth::from_single(KEY, SECRET));
    builder.set_route(record);
    builder.build()
}

fn request(input: &Input<'_>) -> Request<Body> {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("127.0.0.1:9000"));
    headers.insert("content-encoding", HeaderValue::from_static("aws-chunked"));
    headers.insert("content-length", HeaderValue::from(input.body.len()));
    headers.insert("x-amz-decoded-content-length", HeaderValue::from(input.decoded_length));
    headers.insert("x-amz-trailer", HeaderValue::from_static("x-amz-checksum-crc32"));
    let payload = if input.signed_chunks {
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
    } else {
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    };
    let params = SigningParams {
        access_key_id: KEY,
        secret_access_key: SECRET,
        region: "us-east-1",
        time: time::OffsetDateTime::now_utc(),
    };
    sign_v4(&Method::PUT, "/fuzz-bucket/upload", "", &mut headers, payload, &params);

    let mut at: Vec<usize> = input
        .cuts
        .iter()
        .map(|c| usize::from(*c) % (input.body.len() + 1))
        .collect();
    at.extend([0, input.body.len()]);
    at.sort_unstable();
    let frames: Vec<Result<http_body::Frame<Bytes>, std::io::Error>> = at
        .windows(2)
        .map(|w| Ok(http_body::Frame::data(Bytes::copy_from_slice(&input.body[w[0]..w[1]]))))
        .collect();
    let body = Body::http_body(http_body_util::StreamBody::new(futures_util::stream::iter(frames)));
    let mut request = Request::builder()
        .method(Method::PUT)
        .uri("http://127.0.0.1:9000/fuzz-bucket/upload");
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    request.body(body).expect("a valid request head")
}

/// The values of every `x-amz-checksum-crc32` line in `body`, wherever it is (header names are
/// case-insensitive; s3s also ends a line at a bare LF, trims values, reads past the empty line
/// that ends the trailers, and takes the first of repeated trailers).
fn trailer_values(body: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(body);
    text.split('\n')
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("x-amz-checksum-crc32")
                .then(|| value.trim().to_string())
        })
        .collect()
}

fuzz_target!(|input: Input<'_>| {
    let record = Record::default();
    let service = service(record.clone());
    let status = futures_executor::block_on(service.call(request(&input)))
        .map(|r| r.status().as_u16())
        .unwrap_or(500);
    let outcome = record.0.lock().ok().and_then(|o| o.clone());
    if std::env::var_os("S3FERRY_FUZZ_REPORT").is_some() {
        // For judging a corpus: how far each input got (run with `-runs=0 corpus/...`).
        let reached = match &outcome {
            None => "refused before the body".to_string(),
            Some(Ok(decoded)) => format!("accepted {} bytes", decoded.len()),
            Some(Err(e)) => format!("body refused: {}", e.split(':').next().unwrap_or_default()),
        };
        eprintln!("s3ferry-fuzz: signed={} {reached}", input.signed_chunks);
    }
    if let Some(Ok(decoded)) = outcome {
        assert_eq!(status, 200);
        assert_eq!(
            decoded.len(),
            usize::from(input.decoded_length),
            "accepted a body of another length than announced"
        );
        if !input.signed_chunks {
            let crc = ChecksumAlgorithm::Crc32.of(&decoded);
            assert!(
                trailer_values(input.body).contains(&crc),
                "accepted a body whose CRC32 ({crc}) is in none of its trailer lines"
            );
        }
    }
});
