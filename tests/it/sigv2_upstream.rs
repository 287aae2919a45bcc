//! Old S3 clones that know only AWS signature v2 (issue 3, item 9): s3s-fs behind a wrapper that
//! refuses anything but `Authorization: AWS ...` (`Quirks::sigv2_only`), and s3s's own SigV2
//! verifier checking every signature s3ferry makes. The current aws-sdk-s3 signs only SigV4, so
//! it is refused directly and served through s3ferry with `signature = "v2"`.

use std::sync::atomic::Ordering;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use s3ferry::server::RunningGateway;

use crate::support::{
    TestUpstream, UPSTREAM_KEY, UPSTREAM_SECRET, error_code, error_status, pattern, single_provider_gateway,
};

/// A v2-only store holding `buckets`, and s3ferry in front of it signing with SigV2; the client
/// talks path-style to s3ferry whatever addressing the provider uses.
struct V2Store {
    upstream: TestUpstream,
    gateway: RunningGateway,
    client: Client,
}

impl V2Store {
    async fn start(upstream: TestUpstream, buckets: &[&str]) -> Self {
        Self::start_signing_with(upstream, buckets, UPSTREAM_SECRET).await
    }

    /// As `start`, with s3ferry holding `secret` for the store's key.
    async fn start_signing_with(upstream: TestUpstream, buckets: &[&str], secret: &str) -> Self {
        for bucket in buckets {
            upstream.create_bucket(bucket);
        }
        upstream.quirks.sigv2_only.store(true, Ordering::Relaxed);
        let addressing = if upstream.virtual_hosted_only {
            "virtual"
        } else {
            "path"
        };
        let provider = format!("addressing = \"{addressing}\"\nsignature = \"v2\"");
        let (gateway, client) =
            single_provider_gateway(&upstream.endpoint(), UPSTREAM_KEY, secret, "aws", &provider).await;
        Self {
            upstream,
            gateway,
            client,
        }
    }

    async fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        let got = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get {bucket}/{key}: {e:?}"));
        got.body.collect().await.expect("body").into_bytes().to_vec()
    }

    async fn stop(self) {
        self.gateway.shutdown(std::time::Duration::from_secs(5)).await;
    }
}

#[tokio::test]
async fn the_sdk_is_refused_by_a_v2_only_store_and_served_through_s3ferry() {
    let store = V2Store::start(TestUpstream::path_style().await, &["old"]).await;
    let err = store
        .upstream
        .direct_client()
        .put_object()
        .bucket("old")
        .key("k")
        .body(ByteStream::from_static(b"v4"))
        .send()
        .await
        .expect_err("SigV4 is refused");
    assert_eq!(
        (error_status(&err), error_code(&err).as_str()),
        (400, "InvalidArgument")
    );

    let data = pattern(10_000, 3);
    // An in-memory body: the SDK adds its default CRC32 checksum header, which s3s-fs checks.
    store
        .client
        .put_object()
        .bucket("old")
        .key("k")
        .content_type("application/octet-stream")
        .metadata("origin", "v2 test")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put through s3ferry");
    assert_eq!(store.get("old", "k").await, data);
    let stored = std::fs::read(store.upstream.bucket_dir("old").join("k")).expect("stored file");
    assert_eq!(stored, data, "the store holds the bytes");

    let ranged = store
        .client
        .get_object()
        .bucket("old")
        .key("k")
        .range("bytes=100-1099")
        .send()
        .await
        .expect("ranged get");
    assert_eq!(ranged.content_length(), Some(1000));
    let body = ranged.body.collect().await.expect("body").into_bytes();
    assert_eq!(body.as_ref(), &data[100..1100]);

    let head = store
        .client
        .head_object()
        .bucket("old")
        .key("k")
        .send()
        .await
        .expect("head");
    assert_eq!(head.content_length(), Some(10_000));
    assert_eq!(head.content_type(), Some("application/octet-stream"));
    assert_eq!(
        head.metadata().and_then(|m| m.get("origin")).map(String::as_str),
        Some("v2 test")
    );
    store.stop().await;
}

#[tokio::test]
async fn a_wrong_provider_secret_is_refused_by_the_v2_verifier() {
    // The other tests pass only if s3s's SigV2 check accepts s3ferry's signatures; this one
    // shows that the check is really made.
    let store = V2Store::start_signing_with(TestUpstream::path_style().await, &["old"], "not-the-secret").await;
    let err = store
        .client
        .put_object()
        .bucket("old")
        .key("k")
        .body(ByteStream::from_static(b"refused"))
        .send()
        .await
        .expect_err("a v2 signature with the wrong secret is refused");
    // The store answered SignatureDoesNotMatch; s3ferry's key is wrong, not the client's, so
    // the client gets a server error (and the log a hint naming the provider's secret).
    assert_eq!((error_status(&err), error_code(&err).as_str()), (500, "InternalError"));
    store.stop().await;
}

#[tokio::test]
async fn a_streamed_file_upload_reaches_a_v2_store_intact() {
    let store = V2Store::start(TestUpstream::path_style().await, &["old"]).await;
    let data = pattern(3 * 1024 * 1024 + 17, 9);
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("upload.bin");
    std::fs::write(&file, &data).expect("write file");
    // From a path, the SDK sends aws-chunked with a trailing checksum; s3ferry de-chunks it
    // and checks the trailer before the v2 store gets a plain body.
    store
        .client
        .put_object()
        .bucket("old")
        .key("streamed.bin")
        .body(ByteStream::from_path(&file).await.expect("byte stream"))
        .send()
        .await
        .expect("streamed put");
    assert!(
        store.get("old", "streamed.bin").await == data,
        "streamed object differs"
    );
    store.stop().await;
}

#[tokio::test]
async fn listing_and_awkward_keys_work_on_a_v2_store() {
    let store = V2Store::start(TestUpstream::path_style().await, &["old"]).await;
    let keys = [
        "dir/with space.txt",
        "dir/plus+sign.txt",
        "dir/equals=sign&amp.txt",
        "dir/percent%25and%.txt",
        "dir/unicodé/日本語/ключ.txt",
        "top.txt",
    ];
    for key in keys {
        store
            .client
            .put_object()
            .bucket("old")
            .key(key)
            .body(ByteStream::from(key.as_bytes().to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key:?}: {e:?}"));
        assert_eq!(store.get("old", key).await, key.as_bytes(), "{key:?}");
    }
    // `//` is signed and sent as it is; s3s-fs stores a key through the file system, which
    // folds `a//b` into `a/b`, so only the round trip is checked, not the listed name.
    store
        .client
        .put_object()
        .bucket("old")
        .key("double//slash")
        .body(ByteStream::from_static(b"slashes"))
        .send()
        .await
        .expect("put a key with //");
    assert_eq!(store.get("old", "double//slash").await, b"slashes");

    let listed = store
        .client
        .list_objects_v2()
        .bucket("old")
        .prefix("dir/")
        .delimiter("/")
        .send()
        .await
        .expect("list");
    let mut names: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "dir/equals=sign&amp.txt",
            "dir/percent%25and%.txt",
            "dir/plus+sign.txt",
            "dir/with space.txt"
        ]
    );
    let prefixes: Vec<&str> = listed.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, ["dir/unicodé/"]);
    store.stop().await;
}

#[tokio::test]
async fn multipart_copy_and_batch_delete_work_on_a_v2_store() {
    let store = V2Store::start(TestUpstream::path_style().await, &["old"]).await;
    let client = &store.client;
    let key = "multi part.bin";
    let created = client
        .create_multipart_upload()
        .bucket("old")
        .key(key)
        .send()
        .await
        .expect("create multipart");
    let upload_id = created.upload_id().expect("upload id");
    let pieces = [pattern(5 * 1024 * 1024, 1), pattern(1024, 2)];
    let mut parts = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let number = i32::try_from(i + 1).expect("part number");
        let part = client
            .upload_part()
            .bucket("old")
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(piece.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("part {number}: {e:?}"));
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(part.e_tag().map(str::to_string))
                .build(),
        );
    }
    let listed = client
        .list_parts()
        .bucket("old")
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
        .expect("list parts");
    let mut numbers: Vec<i32> = listed.parts().iter().filter_map(|p| p.part_number()).collect();
    numbers.sort_unstable(); // s3s-fs lists parts unordered
    assert_eq!(numbers, [1, 2]);
    client
        .complete_multipart_upload()
        .bucket("old")
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .expect("complete");
    let whole = pieces.concat();
    assert!(store.get("old", key).await == whole, "multipart object differs");

    client
        .copy_object()
        .bucket("old")
        .key("copy of it")
        .copy_source("old/multi%20part.bin")
        .send()
        .await
        .expect("copy");
    assert!(store.get("old", "copy of it").await == whole, "copy differs");

    let deleted = client
        .delete_objects()
        .bucket("old")
        .delete(
            Delete::builder()
                .objects(ObjectIdentifier::builder().key(key).build().expect("id"))
                .objects(ObjectIdentifier::builder().key("copy of it").build().expect("id"))
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .expect("delete objects");
    assert_eq!(deleted.deleted().len(), 2, "{deleted:?}");
    let left = client.list_objects_v2().bucket("old").send().await.expect("list");
    assert_eq!(left.key_count(), Some(0));
    store.stop().await;
}

#[tokio::test]
async fn a_virtual_hosted_v2_store_is_signed_with_the_bucket_in_the_resource() {
    let store = V2Store::start(TestUpstream::virtual_hosted_only().await, &["vold"]).await;
    let data = pattern(4096, 5);
    store
        .client
        .put_object()
        .bucket("vold")
        .key("v key+1.bin")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put");
    assert_eq!(store.get("vold", "v key+1.bin").await, data);
    let listed = store
        .client
        .list_objects_v2()
        .bucket("vold")
        .prefix("v ")
        .send()
        .await
        .expect("list");
    let names: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(names, ["v key+1.bin"]);
    let created = store
        .client
        .create_multipart_upload()
        .bucket("vold")
        .key("mp")
        .send()
        .await
        .expect("create multipart (?uploads is a signed sub-resource)");
    store
        .client
        .abort_multipart_upload()
        .bucket("vold")
        .key("mp")
        .upload_id(created.upload_id().expect("upload id"))
        .send()
        .await
        .expect("abort (?uploadId is a signed sub-resource)");
    store.stop().await;
}

#[tokio::test]
async fn lazy_migration_reads_lists_and_copies_from_a_v2_store() {
    // Fallback reads, merged listings and copies on read are requests s3ferry makes on its own;
    // they are signed for the old store with SigV2 like client traffic.
    let new = TestUpstream::path_style().await;
    new.create_bucket("media");
    let old = TestUpstream::path_style().await;
    old.create_bucket("media");
    let data = pattern(20_000, 7);
    old.direct_client()
        .put_object()
        .bucket("media")
        .key("only old.bin")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("seed the old store");
    old.quirks.sigv2_only.store(true, Ordering::Relaxed);
    let routes = format!(
        r#"[providers.old]
endpoint = "{}"
access_key_id = "{UPSTREAM_KEY}"
secret_access_key = "{UPSTREAM_SECRET}"
signature = "v2"
[[buckets]]
name = "media"
provider = "up"
fallback = "old"
copy_on_read = true"#,
        old.endpoint()
    );
    let (gateway, client) =
        single_provider_gateway(&new.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "aws", &routes).await;

    let listed = client
        .list_objects_v2()
        .bucket("media")
        .send()
        .await
        .expect("merged list");
    let names: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(names, ["only old.bin"]);
    let got = client
        .get_object()
        .bucket("media")
        .key("only old.bin")
        .send()
        .await
        .expect("fallback get");
    assert!(got.body.collect().await.expect("body").into_bytes().as_ref() == data.as_slice());
    let copied = new.bucket_dir("media").join("only old.bin");
    for _ in 0..500 {
        if std::fs::read(&copied).is_ok_and(|stored| stored == data) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        std::fs::read(&copied).is_ok_and(|stored| stored == data),
        "copy on read did not reach the new store within 10 s"
    );
    gateway.shutdown(std::time::Duration::from_secs(5)).await;
}
