//! A client's trailing checksum (what every current AWS SDK sends with a streamed upload) reaches
//! providers that store it: s3ferry verifies the trailer, then sends the body re-framed as
//! `STREAMING-UNSIGNED-PAYLOAD-TRAILER` with the verified checksum in its own trailer
//! (docs/dialects.md §B.2, §D.2, rule 10c). Providers without it get the plain body, as before.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm as SdkAlgorithm, ChecksumMode};
use http::Method;
use s3ferry::checksum::ChecksumAlgorithm;
use s3ferry::server::RunningGateway;
use time::OffsetDateTime;

use crate::support::moto::Moto;
use crate::support::raw::{self, Signer, full_body};
use crate::support::{
    CLIENT_KEY, CLIENT_SECRET, TestUpstream, UPSTREAM_KEY, UPSTREAM_SECRET, pattern, single_provider_gateway, temp_file,
};

const K64: usize = 64 * 1024;

/// An s3s-fs upstream with bucket `sums` behind a gateway that gives it the `aws` dialect (plus
/// `extra` in the provider's table), and a client of the gateway.
async fn aws_upstream(extra: &str) -> (TestUpstream, RunningGateway, aws_sdk_s3::Client) {
    let upstream = TestUpstream::path_style().await;
    upstream.create_bucket("sums");
    let (g, client) = single_provider_gateway(&upstream.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "aws", extra).await;
    (upstream, g, client)
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

/// Asserts that the provider (read directly through `provider`) and s3ferry (through `client`)
/// both answer `sums/key` under checksum mode with `algorithm`'s checksum of `data`.
async fn assert_checksum_kept(
    provider: &aws_sdk_s3::Client,
    client: &aws_sdk_s3::Client,
    key: &str,
    algorithm: ChecksumAlgorithm,
    data: &[u8],
) {
    let expected = algorithm.of(data);
    let stored = checksum_of(provider, "sums", key, algorithm, data).await;
    assert_eq!(
        stored.as_deref(),
        Some(expected.as_str()),
        "{key}: stored by the provider"
    );
    let answered = checksum_of(client, "sums", key, algorithm, data).await;
    assert_eq!(
        answered.as_deref(),
        Some(expected.as_str()),
        "{key}: answered through s3ferry"
    );
}

fn take_put_payload_hashes(upstream: &TestUpstream) -> Vec<String> {
    std::mem::take(&mut *upstream.quirks.put_payload_hashes.lock().expect("not poisoned"))
}

#[tokio::test]
async fn a_streamed_sdk_upload_keeps_its_crc32_at_the_provider_at_every_chunk_boundary() {
    let (upstream, g, client) = aws_upstream("").await;
    for size in [0, 1, K64, K64 + 1, 3 * 1024 * 1024 + 7] {
        let data = pattern(size, 11);
        let key = format!("streamed-{size}");
        put_streamed(&client, "sums", &key, &data, None).await;
        assert_eq!(
            take_put_payload_hashes(&upstream),
            ["STREAMING-UNSIGNED-PAYLOAD-TRAILER"],
            "{key}: the provider got the re-framed body"
        );
        let provider = upstream.direct_client();
        assert_checksum_kept(&provider, &client, &key, ChecksumAlgorithm::Crc32, &data).await;
    }
    g.shutdown(std::time::Duration::from_secs(5)).await;
}

#[tokio::test]
async fn crc32c_and_sha256_trailers_reach_the_provider_too() {
    let (upstream, g, client) = aws_upstream("").await;
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
            assert_checksum_kept(&upstream.direct_client(), &client, &key, ours, &data).await;
        }
    }
    g.shutdown(std::time::Duration::from_secs(5)).await;
}

/// Asserts `resp` is 400 BadDigest and nothing was stored at `sums/key`.
async fn assert_refused(resp: &raw::RawResponse, upstream: &TestUpstream, key: &str) {
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (400, "BadDigest"),
        "{key}: {}",
        resp.body
    );
    assert!(!upstream.has_object("sums", key).await, "{key} was committed");
}

#[tokio::test]
async fn a_wrong_trailer_is_bad_digest_and_nothing_reaches_the_provider() {
    let (upstream, g, _client) = aws_upstream("").await;
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
        let resp = raw::put_unsigned_trailer(&signer, &format!("/sums/{key}"), &data, Some(&wrong)).await;
        assert_refused(&resp, &upstream, &key).await;
        // Signed chunks and a signed trailer whose value is wrong.
        let key = format!("signed-{size}");
        let encoded_len = signer
            .signed_chunks_with_trailer(&"0".repeat(64), &data, K64, Some(&wrong))
            .len();
        let (req, seed) = signer.sign(
            Method::PUT,
            &format!("/sums/{key}"),
            raw::chunked_headers(data.len(), encoded_len, true),
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        );
        let body = signer.signed_chunks_with_trailer(&seed, &data, K64, Some(&wrong));
        let resp = raw::send(req.body(full_body(body)).expect("request")).await;
        assert_refused(&resp, &upstream, &key).await;
    }
    // The same requests with the right trailer are stored, with their checksum.
    let data = pattern(300_000, 13);
    let resp = raw::put_unsigned_trailer(&signer, "/sums/right", &data, None).await;
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
            assert_checksum_kept(&moto.direct(), &client, &key, ours, &data).await;
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
        let (upstream, g, client) = aws_upstream(extra).await;
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
        let resp = raw::put_unsigned_trailer(&signer, "/sums/bad", &data, Some("AAAAAA==")).await;
        assert_refused(&resp, &upstream, "bad").await;
        g.shutdown(std::time::Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn streamed_upload_parts_carry_their_trailer_and_the_upload_completes() {
    // s3s-fs neither checks nor keeps part checksums, so this shows the re-framed parts are
    // taken and assembled; the stored checksum is shown for PutObject above.
    let (upstream, g, client) = aws_upstream("").await;
    let created = client
        .create_multipart_upload()
        .bucket("sums")
        .key("parts")
        .checksum_algorithm(SdkAlgorithm::Crc32)
        .send()
        .await
        .expect("create");
    let upload_id = created.upload_id().expect("upload id");
    let parts = [pattern(5 * 1024 * 1024, 17), pattern(K64 + 1, 18)];
    let mut completed = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let number = i32::try_from(i + 1).expect("small");
        let file = temp_file(data);
        let part = client
            .upload_part()
            .bucket("sums")
            .key("parts")
            .upload_id(upload_id)
            .part_number(number)
            .checksum_algorithm(SdkAlgorithm::Crc32)
            .body(ByteStream::from_path(file.path()).await.expect("file"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("part {number}: {e:?}"));
        completed.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .e_tag(part.e_tag().expect("etag"))
                .build(),
        );
    }
    assert_eq!(
        take_put_payload_hashes(&upstream),
        ["STREAMING-UNSIGNED-PAYLOAD-TRAILER"; 2],
        "both parts were re-framed"
    );
    client
        .complete_multipart_upload()
        .bucket("sums")
        .key("parts")
        .upload_id(upload_id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let got = client
        .get_object()
        .bucket("sums")
        .key("parts")
        .send()
        .await
        .expect("get");
    let body = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(
        body.as_ref(),
        [parts[0].as_slice(), parts[1].as_slice()].concat().as_slice()
    );
    g.shutdown(std::time::Duration::from_secs(5)).await;
}
