//! The embedded `kind = "local"` provider behaves like S3 where s3s-fs alone would not, and
//! edge cases of the client connection are handled.

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::EncodingType;
use http::{HeaderMap, HeaderValue, Method};
use s3ferry::config::Config;
use s3ferry::server::RunningGateway;

use crate::support::raw::{self, Signer, full_body};
use crate::support::{CLIENT_KEY, CLIENT_SECRET, error_code, error_status, sdk_client};

pub(crate) async fn local_gateway(root: &Path) -> (RunningGateway, aws_sdk_s3::Client) {
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
name = "local-bucket"
provider = "disk"
[[buckets]]
name = "*"
provider = "disk"
"#,
        root.display()
    );
    let config = Config::parse(&toml, "local.toml", Path::new("."), &|_| None).expect("config");
    let g = s3ferry::server::start(&config).await.expect("gateway");
    let client = sdk_client(
        &format!("http://127.0.0.1:{}", g.addr().port()),
        CLIENT_KEY,
        CLIENT_SECRET,
        true,
    );
    (g, client)
}

#[tokio::test]
async fn configured_local_buckets_exist_at_start_and_non_empty_buckets_are_not_deleted() {
    let dir = tempfile::tempdir().expect("dir");
    let (g, client) = local_gateway(dir.path()).await;
    client
        .put_object()
        .bucket("local-bucket")
        .key("keep/me")
        .body(ByteStream::from_static(b"data"))
        .send()
        .await
        .expect("put into the configured bucket");
    let err = client
        .delete_bucket()
        .bucket("local-bucket")
        .send()
        .await
        .expect_err("not empty");
    assert_eq!((error_status(&err), error_code(&err).as_str()), (409, "BucketNotEmpty"));
    assert!(dir.path().join("local-bucket/keep/me").exists(), "the object survived");
    client
        .delete_object()
        .bucket("local-bucket")
        .key("keep/me")
        .send()
        .await
        .expect("delete object");
    client
        .delete_bucket()
        .bucket("local-bucket")
        .send()
        .await
        .expect("empty bucket deletes");
    let err = client
        .get_object()
        .bucket("local-bucket")
        .key("x")
        .send()
        .await
        .expect_err("gone");
    assert_eq!(error_code(&err), "NoSuchBucket");
    g.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn url_encoded_listings_encode_keys_and_empty_delimiters_mean_none() {
    let dir = tempfile::tempdir().expect("dir");
    let (g, client) = local_gateway(dir.path()).await;
    for key in ["dir/a+b c.txt", "dir/sub/d.txt"] {
        client
            .put_object()
            .bucket("local-bucket")
            .key(key)
            .body(ByteStream::from_static(b"v"))
            .send()
            .await
            .expect("put");
    }
    let encoded = client
        .list_objects_v2()
        .bucket("local-bucket")
        .encoding_type(EncodingType::Url)
        .send()
        .await
        .expect("list");
    let keys: Vec<&str> = encoded.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, vec!["dir/a%2Bb%20c.txt", "dir/sub/d.txt"]);
    let plain = client
        .list_objects_v2()
        .bucket("local-bucket")
        .delimiter("")
        .send()
        .await
        .expect("list");
    let keys: Vec<&str> = plain.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        keys,
        vec!["dir/a+b c.txt", "dir/sub/d.txt"],
        "an empty delimiter lists keys, not prefixes"
    );
    assert!(plain.common_prefixes().is_empty());
    g.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn conditional_reads_and_missing_uploads_answer_like_s3() {
    let dir = tempfile::tempdir().expect("dir");
    let (g, client) = local_gateway(dir.path()).await;
    let put = client
        .put_object()
        .bucket("local-bucket")
        .key("c")
        .body(ByteStream::from_static(b"v"))
        .send()
        .await
        .expect("put");
    let etag = put.e_tag().expect("etag").to_string();
    let err = client
        .get_object()
        .bucket("local-bucket")
        .key("c")
        .if_none_match(&etag)
        .send()
        .await
        .expect_err("304");
    assert_eq!(error_status(&err), 304);
    let err = client
        .head_object()
        .bucket("local-bucket")
        .key("c")
        .if_match("\"nope\"")
        .send()
        .await
        .expect_err("412");
    assert_eq!(error_status(&err), 412);
    client
        .get_object()
        .bucket("local-bucket")
        .key("c")
        .if_match(&etag)
        .send()
        .await
        .expect("if-match holds");
    let err = client
        .upload_part()
        .bucket("local-bucket")
        .key("c")
        .upload_id("00000000-0000-0000-0000-000000000000")
        .part_number(1)
        .body(ByteStream::from_static(b"p"))
        .send()
        .await
        .expect_err("no such upload");
    assert_eq!((error_status(&err), error_code(&err).as_str()), (404, "NoSuchUpload"));
    g.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn zero_byte_put_awaiting_100_continue_closes_the_connection_after_answering() {
    let dir = tempfile::tempdir().expect("dir");
    let (g, _client) = local_gateway(dir.path()).await;
    let signer = Signer {
        addr: g.addr(),
        key: CLIENT_KEY,
        secret: CLIENT_SECRET,
        time: time::OffsetDateTime::now_utc(),
    };
    let mut headers = HeaderMap::new();
    headers.insert("expect", HeaderValue::from_static("100-continue"));
    headers.insert("content-length", HeaderValue::from_static("0"));
    let (req, _) = signer.sign(Method::PUT, "/local-bucket/empty", headers, &raw::sha256_hex(b""));
    let resp = raw::send(req.body(full_body("")).expect("req")).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        resp.headers.get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    assert!(dir.path().join("local-bucket/empty").exists());
    g.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn conditional_writes_never_overwrite_silently() {
    let dir = tempfile::tempdir().expect("dir");
    let (g, client) = local_gateway(dir.path()).await;
    let put = |key: &'static str, body: &'static [u8]| {
        client
            .put_object()
            .bucket("local-bucket")
            .key(key)
            .body(ByteStream::from_static(body))
    };
    let etag = put("k", b"first").send().await.expect("put").e_tag.expect("etag");
    let err = put("k", b"second").if_none_match("*").send().await.expect_err("exists");
    assert_eq!(
        (error_status(&err), error_code(&err).as_str()),
        (412, "PreconditionFailed")
    );
    let err = put("k", b"second")
        .if_match("\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await
        .expect_err("another ETag");
    assert_eq!(error_status(&err), 412);
    let err = put("missing", b"x")
        .if_match(&etag)
        .send()
        .await
        .expect_err("nothing to match");
    assert_eq!((error_status(&err), error_code(&err).as_str()), (404, "NoSuchKey"));
    put("k", b"second")
        .if_match(&etag)
        .send()
        .await
        .expect("the ETag matches");
    put("new", b"x").if_none_match("*").send().await.expect("a free key");
    let got = client
        .get_object()
        .bucket("local-bucket")
        .key("k")
        .send()
        .await
        .expect("get");
    assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), b"second");
    g.shutdown(std::time::Duration::from_secs(2)).await;
}

#[tokio::test]
async fn keys_a_directory_cannot_hold_get_a_clear_400_not_a_500() {
    let dir = tempfile::tempdir().expect("dir");
    let (g, client) = local_gateway(dir.path()).await;
    // s3s-fs names an object's metadata file after the base64 of bucket and key: with the
    // 12-byte bucket name, keys up to 123 bytes fit a 255-byte file name.
    for (key, code) in [
        ("a\0b".to_string(), "InvalidArgument"),
        ("x".repeat(124), "KeyTooLongError"),
        (format!("d/{}/z", "y".repeat(256)), "KeyTooLongError"),
    ] {
        let err = client
            .put_object()
            .bucket("local-bucket")
            .key(&key)
            .body(ByteStream::from_static(b"data"))
            .send()
            .await
            .expect_err("refused");
        assert_eq!((error_status(&err), error_code(&err).as_str()), (400, code), "{key:?}");
    }
    let longest = format!("dir/{}", "k".repeat(119));
    client
        .put_object()
        .bucket("local-bucket")
        .key(&longest)
        .body(ByteStream::from_static(b"data"))
        .send()
        .await
        .expect("the longest key that fits");
    let upload = client
        .create_multipart_upload()
        .bucket("local-bucket")
        .key(&longest)
        .send()
        .await
        .expect("multipart uploads fit too");
    client
        .abort_multipart_upload()
        .bucket("local-bucket")
        .key(&longest)
        .upload_id(upload.upload_id().unwrap_or_default())
        .send()
        .await
        .expect("abort");
    g.shutdown(Duration::from_secs(2)).await;
}

/// Two `If-None-Match: *` PUTs of one key, the second sent while the first is still streaming
/// its body (its condition already checked): exactly one creates the key, the other gets 412.
/// The check and the write were two steps, so both used to pass and the later one overwrote.
#[tokio::test]
async fn racing_create_if_absent_writes_of_one_key_let_exactly_one_win() {
    use http_body_util::BodyExt as _;
    let root = tempfile::tempdir().expect("temp dir");
    s3ferry::local::ensure_local_bucket(root.path(), "racing").expect("bucket");
    let server = s3ferry::local::start_local_provider(root.path())
        .await
        .expect("local provider");
    let signer = Signer {
        addr: server.addr,
        key: &server.access_key_id,
        secret: server.secret_access_key.expose(),
        time: time::OffsetDateTime::now_utc(),
    };
    let create = |body: raw::RawBody, length: usize| {
        let mut headers = HeaderMap::new();
        headers.insert("if-none-match", HeaderValue::from_static("*"));
        headers.insert("content-length", HeaderValue::from(length));
        let (request, _) = signer.sign(Method::PUT, "/racing/contested", headers, "UNSIGNED-PAYLOAD");
        request.body(body).expect("request")
    };
    let (first_body, frames) = tokio::sync::mpsc::channel::<
        Result<http_body::Frame<bytes::Bytes>, Box<dyn std::error::Error + Send + Sync>>,
    >(1);
    let streamed = http_body_util::StreamBody::new(futures::stream::unfold(frames, |mut frames| async move {
        frames.recv().await.map(|frame| (frame, frames))
    }));
    let first = tokio::spawn(raw::send(create(streamed.boxed(), 8)));
    first_body
        .send(Ok(http_body::Frame::data(bytes::Bytes::from_static(b"firs"))))
        .await
        .expect("first half");
    // The server has taken the first half: the first PUT's condition was checked.
    crate::migration::wait_for("the first PUT's body to be read", || {
        first_body.capacity() == first_body.max_capacity()
    })
    .await;
    let mut second = tokio::spawn(raw::send(create(full_body(&b"second!!"[..]), 8)));
    // Give the second PUT time to be answered if nothing holds it back (it used to be: 200).
    let second_early = tokio::time::timeout(Duration::from_secs(2), &mut second).await.ok();
    // (If the first PUT already ended, its answer below says why.)
    let _ = first_body
        .send(Ok(http_body::Frame::data(bytes::Bytes::from_static(b"t!!!"))))
        .await;
    drop(first_body);
    let first = first.await.expect("first PUT");
    let second = match second_early {
        Some(answer) => answer.expect("second PUT"),
        None => second.await.expect("second PUT"),
    };
    assert_eq!(first.status, 200, "the first PUT creates the key: {}", first.body);
    assert_eq!(
        (second.status, second.code()),
        (412, "PreconditionFailed".to_string()),
        "the second PUT finds the key the first created"
    );
}
