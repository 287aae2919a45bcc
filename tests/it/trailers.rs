//! A client's trailing checksum (what every current AWS SDK sends with a streamed upload) reaches
//! providers that store it: s3ferry verifies the trailer, then sends the body re-framed as
//! `STREAMING-UNSIGNED-PAYLOAD-TRAILER` with the verified checksum in its own trailer
//! (dialects.md §B.2, §D.2, rule 10c). Providers without it get the plain body, as before.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm as SdkAlgorithm, ChecksumMode};
use http::{HeaderMap, HeaderValue, Method};
use s3ferry::checksum::ChecksumAlgorithm;
use time::OffsetDateTime;

use crate::support::moto::Moto;
use crate::support::raw::{self, Signer, full_body, unsigned_trailer_chunks};
use crate::support::{
    CLIENT_KEY, CLIENT_SECRET, TestUpstream, UPSTREAM_KEY, UPSTREAM_SECRET, pattern, single_provider_gateway,
};

const K64: usize = 64 * 1024;

/// A temporary file holding `data`: the SDK streams a file body as aws-chunked with a trailer.
fn temp_file(data: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut file, data).expect("write");
    file
}

/// Streams `data` from a file with the SDK, asking for `algorithm` (`None`: the SDK's CRC32).
async fn put_streamed(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    data: &[u8],
    algorithm: Option<SdkAlgorithm>,
) {
    let file = temp_file(data);
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .set_checksum_algorithm(algorithm)
        .body(ByteStream::from_path(file.path()).await.expect("file"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("streamed put of {key} ({} bytes): {e:?}", data.len()));
}

/// The checksum `client` gets for `bucket/key` under `x-amz-checksum-mode: ENABLED`, after
/// reading the body (which makes the SDK validate it) and comparing it with `data`.
async fn checksum_of(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    algorithm: ChecksumAlgorithm,
    data: &[u8],
) -> Option<String> {
    let got = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    let checksum = match algorithm {
        ChecksumAlgorithm::Crc32 => got.checksum_crc32(),
        ChecksumAlgorithm::Crc32c => got.checksum_crc32_c(),
        ChecksumAlgorithm::Crc64Nvme => got.checksum_crc64_nvme(),
        ChecksumAlgorithm::Sha1 => got.checksum_sha1(),
        ChecksumAlgorithm::Sha256 => got.checksum_sha256(),
    }
    .map(str::to_owned);
    let body = got.body.collect().await.expect("the SDK read and validated the body");
    assert_eq!(body.into_bytes().as_ref(), data, "{key}");
    checksum
}

fn take_put_payload_hashes(upstream: &TestUpstream) -> Vec<String> {
    std::mem::take(&mut *upstream.quirks.put_payload_hashes.lock().expect("not poisoned"))
}

#[tokio::test]
async fn a_streamed_sdk_upload_keeps_its_crc32_at_the_provider_at_every_chunk_boundary() {
    let upstream = TestUpstream::path_style().await;
    upstream.create_bucket("sums");
    let (g, client) = single_provider_gateway(&upstream.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "aws", "").await;
    for size in [0, 1, K64, K64 + 1, 3 * 1024 * 1024 + 7] {
        let data = pattern(size, 11);
        let key = format!("streamed-{size}");
        put_streamed(&client, "sums", &key, &data, None).await;
        let expected = ChecksumAlgorithm::Crc32.of(&data);
        let hashes = take_put_payload_hashes(&upstream);
        assert_eq!(
            hashes,
            ["STREAMING-UNSIGNED-PAYLOAD-TRAILER"],
            "{size} bytes: the provider got the re-framed body"
        );
        let stored = checksum_of(&upstream.direct_client(), "sums", &key, ChecksumAlgorithm::Crc32, &data).await;
        assert_eq!(
            stored.as_deref(),
            Some(expected.as_str()),
            "{size} bytes: stored upstream"
        );
        let answered = checksum_of(&client, "sums", &key, ChecksumAlgorithm::Crc32, &data).await;
        assert_eq!(
            answered.as_deref(),
            Some(expected.as_str()),
            "{size} bytes: through s3ferry"
        );
    }
    g.shutdown(std::time::Duration::from_secs(5)).await;
}

#[tokio::test]
async fn crc32c_and_sha256_trailers_reach_the_provider_too() {
    let upstream = TestUpstream::path_style().await;
    upstream.create_bucket("sums");
    let (g, client) = single_provider_gateway(&upstream.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "aws", "").await;
    for (sdk, ours) in [
        (SdkAlgorithm::Crc32C, ChecksumAlgorithm::Crc32c),
        (SdkAlgorithm::Sha256, ChecksumAlgorithm::Sha256),
    ] {
        for size in [0, 1, K64, K64 + 1, 3 * 1024 * 1024 + 7] {
            let data = pattern(size, 12);
            let key = format!("{}-{size}", ours.name());
            put_streamed(&client, "sums", &key, &data, Some(sdk.clone())).await;
            assert_eq!(
                take_put_payload_hashes(&upstream),
                ["STREAMING-UNSIGNED-PAYLOAD-TRAILER"],
                "{key}"
            );
            let expected = ours.of(&data);
            let stored = checksum_of(&upstream.direct_client(), "sums", &key, ours, &data).await;
            assert_eq!(stored.as_deref(), Some(expected.as_str()), "{key}: stored upstream");
            let answered = checksum_of(&client, "sums", &key, ours, &data).await;
            assert_eq!(answered.as_deref(), Some(expected.as_str()), "{key}: through s3ferry");
        }
    }
    g.shutdown(std::time::Duration::from_secs(5)).await;
}

fn trailer_headers(decoded_len: usize, encoded_len: usize) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-encoding", HeaderValue::from_static("aws-chunked"));
    h.insert("x-amz-decoded-content-length", HeaderValue::from(decoded_len));
    h.insert("content-length", HeaderValue::from(encoded_len));
    h.insert("x-amz-trailer", HeaderValue::from_static("x-amz-checksum-crc32"));
    h.insert("x-amz-sdk-checksum-algorithm", HeaderValue::from_static("CRC32"));
    h
}

#[tokio::test]
async fn a_wrong_trailer_is_bad_digest_and_nothing_reaches_the_provider() {
    let upstream = TestUpstream::path_style().await;
    upstream.create_bucket("sums");
    let (g, _client) = single_provider_gateway(&upstream.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "aws", "").await;
    let signer = Signer {
        addr: g.addr(),
        key: CLIENT_KEY,
        secret: CLIENT_SECRET,
        time: OffsetDateTime::now_utc(),
    };
    let wrong = raw::crc32_base64(b"other bytes");
    for size in [0, 1, K64, K64 + 1, 300_000] {
        let data = pattern(size, 13);
        // Unsigned chunks, as SDKs send over TLS.
        let key = format!("unsigned-{size}");
        let body = unsigned_trailer_chunks(&data, 50_000, Some(&wrong));
        let (req, _) = signer.sign(
            Method::PUT,
            &format!("/sums/{key}"),
            trailer_headers(data.len(), body.len()),
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        );
        let resp = raw::send(req.body(full_body(body)).expect("request")).await;
        assert_eq!(
            (resp.status, resp.code().as_str()),
            (400, "BadDigest"),
            "{key}: {}",
            resp.body
        );
        assert!(!upstream.has_object("sums", &key).await, "{key} was committed");
        // Signed chunks and a signed trailer whose value is wrong.
        let key = format!("signed-{size}");
        let encoded_len = signer
            .signed_chunks_with_trailer(&"0".repeat(64), &data, K64, Some(&wrong))
            .len();
        let (req, seed) = signer.sign(
            Method::PUT,
            &format!("/sums/{key}"),
            trailer_headers(data.len(), encoded_len),
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        );
        let body = signer.signed_chunks_with_trailer(&seed, &data, K64, Some(&wrong));
        let resp = raw::send(req.body(full_body(body)).expect("request")).await;
        assert_eq!(
            (resp.status, resp.code().as_str()),
            (400, "BadDigest"),
            "{key}: {}",
            resp.body
        );
        assert!(!upstream.has_object("sums", &key).await, "{key} was committed");
    }
    // The same requests with the right trailer are stored, with their checksum.
    let data = pattern(300_000, 13);
    let body = unsigned_trailer_chunks(&data, 50_000, None);
    let (req, _) = signer.sign(
        Method::PUT,
        "/sums/right",
        trailer_headers(data.len(), body.len()),
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    );
    let resp = raw::send(req.body(full_body(body)).expect("request")).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let stored = checksum_of(
        &upstream.direct_client(),
        "sums",
        "right",
        ChecksumAlgorithm::Crc32,
        &data,
    )
    .await;
    assert_eq!(stored, Some(raw::crc32_base64(&data)));
    g.shutdown(std::time::Duration::from_secs(5)).await;
}

#[tokio::test]
async fn moto_takes_the_reframed_body_and_stores_its_checksum() {
    let moto = Moto::start().await;
    moto.direct()
        .create_bucket()
        .bucket("sums")
        .send()
        .await
        .expect("create bucket on moto");
    let (g, client) = single_provider_gateway(&moto.endpoint(), "moto", "moto", "aws", "").await;
    for (sdk, ours) in [
        (None, ChecksumAlgorithm::Crc32),
        (Some(SdkAlgorithm::Sha256), ChecksumAlgorithm::Sha256),
    ] {
        for size in [1, K64 + 1, 300_000] {
            let data = pattern(size, 14);
            let key = format!("{}-{size}", ours.name());
            put_streamed(&client, "sums", &key, &data, sdk.clone()).await;
            let expected = ours.of(&data);
            let stored = checksum_of(&moto.direct(), "sums", &key, ours, &data).await;
            assert_eq!(stored.as_deref(), Some(expected.as_str()), "{key}: stored by moto");
            let answered = checksum_of(&client, "sums", &key, ours, &data).await;
            assert_eq!(answered.as_deref(), Some(expected.as_str()), "{key}: through s3ferry");
        }
    }
    g.shutdown(std::time::Duration::from_secs(5)).await;
}

#[tokio::test]
async fn without_unsigned_trailers_or_the_algorithm_the_provider_gets_the_plain_body() {
    for (case, extra, algorithm) in [
        (
            "unsigned_trailer = false",
            "[providers.up.dialect_overrides]\nunsigned_trailer = false",
            None,
        ),
        (
            "algorithm not taken",
            "[providers.up.dialect_overrides]\nchecksum_algorithms = [\"crc32\"]",
            Some(SdkAlgorithm::Sha256),
        ),
    ] {
        let upstream = TestUpstream::path_style().await;
        upstream.create_bucket("sums");
        let (g, client) =
            single_provider_gateway(&upstream.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "aws", extra).await;
        let data = pattern(K64 + 1, 15);
        put_streamed(&client, "sums", "plain", &data, algorithm.clone()).await;
        assert_eq!(take_put_payload_hashes(&upstream), ["UNSIGNED-PAYLOAD"], "{case}");
        let ours = if algorithm.is_some() {
            ChecksumAlgorithm::Sha256
        } else {
            ChecksumAlgorithm::Crc32
        };
        let stored = checksum_of(&upstream.direct_client(), "sums", "plain", ours, &data).await;
        assert_eq!(stored, None, "{case}: the provider got no checksum");

        // A wrong trailer is still refused by s3ferry before the provider commits.
        let signer = Signer {
            addr: g.addr(),
            key: CLIENT_KEY,
            secret: CLIENT_SECRET,
            time: OffsetDateTime::now_utc(),
        };
        let body = unsigned_trailer_chunks(&data, 50_000, Some("AAAAAA=="));
        let (req, _) = signer.sign(
            Method::PUT,
            "/sums/bad",
            trailer_headers(data.len(), body.len()),
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        );
        let resp = raw::send(req.body(full_body(body)).expect("request")).await;
        assert_eq!(resp.code(), "BadDigest", "{case}: {}", resp.body);
        assert!(!upstream.has_object("sums", "bad").await, "{case}");
        g.shutdown(std::time::Duration::from_secs(5)).await;
    }
}
