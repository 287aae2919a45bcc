//! Nothing truncated: an upload is stored whole or not at all. Tested where it broke, through
//! the real listener: bodies whose length is stated nowhere (presigned and SigV2 uploads with
//! `Transfer-Encoding: chunked`, HTTP/2 streams) were sent upstream as 0 bytes and answered 200;
//! the local provider stored a body whose `Content-MD5` or checksum did not match before
//! answering `BadDigest`.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::local_provider::local_gateway;
use crate::support::raw::{self, RawBody, RawResponse, Signer, full_body, unsized_body};
use crate::support::{CLIENT_KEY, CLIENT_SECRET, Harness};

const ORIGINAL: &[u8] = b"the original content";

async fn object(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client.get_object().bucket(bucket).key(key).send().await.expect("get");
    out.body.collect().await.expect("body").into_bytes().to_vec()
}

async fn seed(client: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(ORIGINAL))
        .send()
        .await
        .expect("seed");
}

/// Asserts `response` is `411 MissingContentLength`.
fn assert_length_required(response: &RawResponse, what: &str) {
    assert_eq!(
        (response.status, response.code().as_str()),
        (411, "MissingContentLength"),
        "{what}: {}",
        response.body
    );
}

#[tokio::test]
async fn uploads_whose_length_is_stated_nowhere_are_refused_and_store_nothing() {
    let h = Harness::start().await;
    let direct = h.path_up.direct_client();
    seed(&direct, "alpha", "kept.txt").await;
    let upload = crate::support::gateway_client(h.addr)
        .create_multipart_upload()
        .bucket("alpha")
        .key("parts.bin")
        .send()
        .await
        .expect("create upload");
    let upload_id = upload.upload_id().expect("upload id");
    let before = h.path_up.quirks.received_count();

    // curl -T - <presigned url>: HTTP/1.1 with Transfer-Encoding: chunked.
    let (url, _) = Signer::client(h.addr).presign(&Method::PUT, "/alpha/kept.txt", 300, &[]);
    let response = raw::send(
        Request::put(url)
            .body(unsized_body(&[b"replacement ", b"streamed"]))
            .expect("request"),
    )
    .await;
    assert_length_required(&response, "presigned PUT");

    // The same through SigV2, which s3s does not check for a length.
    let request = raw::sigv2_request(
        Method::PUT,
        h.addr,
        "/alpha/kept.txt",
        CLIENT_KEY,
        CLIENT_SECRET,
        SystemTime::now(),
    )
    .body(unsized_body(&[b"sigv2 replacement"]))
    .expect("request");
    assert_length_required(&raw::send(request).await, "SigV2 PUT");

    // UploadPart, presigned.
    let (url, _) = Signer::client(h.addr).presign(
        &Method::PUT,
        &format!("/alpha/parts.bin?partNumber=1&uploadId={upload_id}"),
        300,
        &[],
    );
    let response = raw::send(Request::put(url).body(unsized_body(&[b"part data"])).expect("request")).await;
    assert_length_required(&response, "presigned UploadPart");

    let reached = h.path_up.quirks.received_since(before);
    assert!(
        reached.is_empty(),
        "nothing may reach the provider, but it got {reached:?}"
    );
    assert_eq!(
        object(&direct, "alpha", "kept.txt").await,
        ORIGINAL,
        "the object is untouched"
    );
    h.stop().await;
}

/// An HTTP/2 client (prior knowledge, as `curl --http2-prior-knowledge` or a browser's
/// streaming `fetch` over h2) sends the upload as a stream without `content-length`.
#[tokio::test]
async fn an_http2_upload_without_content_length_is_refused_and_a_bodiless_http2_get_is_served() {
    let h = Harness::start().await;
    let direct = h.path_up.direct_client();
    seed(&direct, "alpha", "h2.txt").await;
    let h2: Client<_, RawBody> = Client::builder(TokioExecutor::new()).http2_only(true).build_http();
    let send = |request: Request<RawBody>| {
        let h2 = h2.clone();
        async move {
            let response = tokio::time::timeout(Duration::from_secs(30), h2.request(request))
                .await
                .expect("answer within 30 s")
                .expect("h2 response");
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.expect("body").to_bytes();
            (status, body)
        }
    };

    let (url, _) = Signer::client(h.addr).presign(&Method::PUT, "/alpha/h2.txt", 300, &[]);
    let before = h.path_up.quirks.received_count();
    let (status, body) = send(
        Request::put(url)
            .body(unsized_body(&[b"over ", b"h2"]))
            .expect("request"),
    )
    .await;
    assert_eq!(status, 411, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("<Code>MissingContentLength</Code>"));
    assert!(
        h.path_up.quirks.received_since(before).is_empty(),
        "nothing reached the provider"
    );

    // A GET whose stream ends with its headers has an empty body, not an unknown one.
    let (url, _) = Signer::client(h.addr).presign(&Method::GET, "/alpha/h2.txt", 300, &[]);
    let (status, body) = send(Request::get(url).body(full_body(Bytes::new())).expect("request")).await;
    assert_eq!((status, body.as_ref()), (200, ORIGINAL));
    h.stop().await;
}

/// The local provider (s3s-fs) writes an upload into place and compares its digests after;
/// s3ferry compares them first, so a refused upload leaves the stored object as it was.
#[tokio::test]
async fn the_local_provider_keeps_the_old_object_when_an_upload_fails_its_digest() {
    let dir = tempfile::tempdir().expect("dir");
    let (g, client) = local_gateway(dir.path()).await;
    seed(&client, "local-bucket", "guarded.txt").await;
    let put = |signed: Vec<(&'static str, String)>, body: &'static [u8]| {
        let signed_refs: Vec<(&str, &str)> = signed.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (url, headers) =
            Signer::client(g.addr()).presign(&Method::PUT, "/local-bucket/guarded.txt", 300, &signed_refs);
        let mut request = Request::put(url).body(full_body(body)).expect("request");
        request.headers_mut().extend(headers);
        raw::send(request)
    };
    let md5_of = |data: &[u8]| {
        use base64::Engine as _;
        use md5::Digest as _;
        base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
    };

    for (what, signed, body) in [
        (
            "Content-MD5",
            vec![("content-md5", md5_of(b"something else"))],
            &b"corrupted in transit"[..],
        ),
        ("empty body, Content-MD5", vec![("content-md5", md5_of(b"x"))], &b""[..]),
        (
            "x-amz-checksum-crc32",
            vec![("x-amz-checksum-crc32", raw::crc32_base64(b"something else"))],
            &b"corrupted in transit"[..],
        ),
    ] {
        let response = put(signed, body).await;
        assert_eq!(
            (response.status, response.code().as_str()),
            (400, "BadDigest"),
            "{what}: {}",
            response.body
        );
        assert_eq!(object(&client, "local-bucket", "guarded.txt").await, ORIGINAL, "{what}");
    }

    let response = put(vec![("content-md5", "not base64 of 16 bytes".into())], b"data").await;
    assert_eq!(
        (response.status, response.code().as_str()),
        (400, "InvalidDigest"),
        "{}",
        response.body
    );

    // A matching digest is stored, with its checksum.
    let fine = b"the new content";
    let response = put(
        vec![
            ("content-md5", md5_of(fine)),
            ("x-amz-checksum-crc32", raw::crc32_base64(fine)),
        ],
        fine,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(object(&client, "local-bucket", "guarded.txt").await, fine);
    g.shutdown(Duration::from_secs(5)).await;
}

/// s3s-fs does not compare an UploadPart's `Content-MD5` at all: a corrupted part replaced a
/// good one and got 200.
#[tokio::test]
async fn a_local_upload_part_with_a_wrong_content_md5_leaves_the_good_part() {
    use base64::Engine as _;
    use md5::Digest as _;
    let dir = tempfile::tempdir().expect("dir");
    let (g, client) = local_gateway(dir.path()).await;
    let upload = client
        .create_multipart_upload()
        .bucket("local-bucket")
        .key("assembled.bin")
        .send()
        .await
        .expect("create");
    let upload_id = upload.upload_id().expect("id").to_string();
    let good = client
        .upload_part()
        .bucket("local-bucket")
        .key("assembled.bin")
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"good part"))
        .send()
        .await
        .expect("good part");

    let wrong_md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(b"good part"));
    let (url, headers) = Signer::client(g.addr()).presign(
        &Method::PUT,
        &format!("/local-bucket/assembled.bin?partNumber=1&uploadId={upload_id}"),
        300,
        &[("content-md5", &wrong_md5)],
    );
    let mut request = Request::put(url).body(full_body("bad part!")).expect("request");
    request.headers_mut().extend(headers);
    let response = raw::send(request).await;
    assert_eq!(
        (response.status, response.code().as_str()),
        (400, "BadDigest"),
        "{}",
        response.body
    );

    client
        .complete_multipart_upload()
        .bucket("local-bucket")
        .key("assembled.bin")
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(good.e_tag().expect("etag"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete");
    assert_eq!(object(&client, "local-bucket", "assembled.bin").await, b"good part");
    g.shutdown(Duration::from_secs(5)).await;
}

/// botocore sends even a 0-byte PUT with `Expect: 100-continue` and a CRC32 of the empty body.
/// s3ferry reads that empty body to check the CRC for the local provider, but hyper sends no
/// `100 Continue` for an empty body, so the connection must still close after the answer:
/// botocore otherwise waits on it for the next request (conformance `empty-put-then-put`).
#[tokio::test]
async fn an_empty_checked_upload_that_expected_100_continue_closes_its_connection() {
    let dir = tempfile::tempdir().expect("dir");
    let (g, _client) = local_gateway(dir.path()).await;
    let crc = raw::crc32_base64(b"");
    let (url, headers) = Signer::client(g.addr()).presign(
        &Method::PUT,
        "/local-bucket/empty.txt",
        300,
        &[("x-amz-checksum-crc32", &crc)],
    );
    let mut request = Request::put(url)
        .header("expect", "100-continue")
        .header("content-length", "0")
        .body(full_body(""))
        .expect("request");
    request.headers_mut().extend(headers);
    let response = raw::send(request).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.headers.get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..]),
        "no 100 Continue was sent, so the connection is not reused"
    );
    g.shutdown(Duration::from_secs(5)).await;
}
