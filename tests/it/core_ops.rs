//! Everyday S3 operations through the gateway with the real aws-sdk-s3 client, path-style and
//! virtual-hosted style, against a path-style and a virtual-host-only upstream.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use futures::StreamExt as _;

use crate::support::{Harness, error_code, pattern};

const BUCKETS: &[&str] = &["alpha", "renamed", "vbucket", "vrenamed"];

#[tokio::test]
async fn put_get_head_delete_round_trip_for_both_client_and_upstream_addressing_styles() {
    let h = Harness::start().await;
    for (style, client) in [("path", h.client()), ("virtual", h.vhost_client())] {
        for bucket in BUCKETS {
            let key = format!("dir/{style}-object.txt");
            let data = pattern(1000, 7);
            client
                .put_object()
                .bucket(*bucket)
                .key(&key)
                .body(ByteStream::from(data.clone()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("put {style} {bucket}: {e:?}"));
            let got = client.get_object().bucket(*bucket).key(&key).send().await.expect("get");
            assert_eq!(
                got.body.collect().await.expect("body").into_bytes().as_ref(),
                data.as_slice(),
                "{style} {bucket}"
            );
            let head = client
                .head_object()
                .bucket(*bucket)
                .key(&key)
                .send()
                .await
                .expect("head");
            assert_eq!(head.content_length(), Some(1000));
            client
                .delete_object()
                .bucket(*bucket)
                .key(&key)
                .send()
                .await
                .expect("delete");
            let err = client
                .get_object()
                .bucket(*bucket)
                .key(&key)
                .send()
                .await
                .expect_err("gone");
            assert_eq!(error_code(&err), "NoSuchKey", "{style} {bucket}");
        }
    }
    h.stop().await;
}

#[tokio::test]
async fn renamed_buckets_store_under_the_upstream_name() {
    let h = Harness::start().await;
    let client = h.client();
    client
        .put_object()
        .bucket("renamed")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put");
    client
        .put_object()
        .bucket("vrenamed")
        .key("k")
        .body(ByteStream::from_static(b"y"))
        .send()
        .await
        .expect("put");
    assert!(h.path_up.has_object("renamed-upstream", "k").await);
    assert!(h.vhost_up.has_object("vrenamed-upstream", "k").await);
    assert!(
        !h.path_up.bucket_dir("renamed").exists(),
        "the client's name never reaches the provider"
    );
    h.stop().await;
}

#[tokio::test]
async fn awkward_keys_round_trip_and_list_exactly() {
    let h = Harness::start().await;
    let keys: Vec<String> = vec![
        "with space.txt".into(),
        "plus+sign.txt".into(),
        "percent%25and%.txt".into(),
        "tilde~name".into(),
        "unicodé/日本語/ключ.txt".into(),
        "equals=and&amp;ersand?.txt".into(),
        "semi;colon,comma:colon@at$dollar!bang'quote(paren)*star".into(),
    ];
    // (1024-byte keys, trailing slashes and `//` exceed what s3s-fs can store on a file system; they
    // are covered against moto in `moto.rs`.)
    for (client, bucket) in [
        (h.client(), "alpha"),
        (h.vhost_client(), "vbucket"),
        (h.client(), "vrenamed"),
    ] {
        for key in &keys {
            client
                .put_object()
                .bucket(bucket)
                .key(key)
                .body(ByteStream::from(key.as_bytes().to_vec()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("put {key:?} into {bucket}: {e:?}"));
            let got = client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("get {key:?}: {e:?}"));
            assert_eq!(
                got.body.collect().await.expect("body").into_bytes().as_ref(),
                key.as_bytes()
            );
        }
        let listed = client.list_objects_v2().bucket(bucket).send().await.expect("list");
        let mut names: Vec<String> = listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        names.sort();
        let mut expected = keys.clone();
        expected.sort();
        assert_eq!(names, expected, "listing of {bucket}");
    }
    h.stop().await;
}

#[tokio::test]
async fn multipart_upload_lists_parts_completes_and_aborts() {
    let h = Harness::start().await;
    const PART: usize = 5 * 1024 * 1024;
    for (client, bucket) in [(h.client(), "alpha"), (h.vhost_client(), "vrenamed")] {
        let key = "big/multipart.bin";
        let created = client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .expect("create");
        assert_eq!(created.bucket(), Some(bucket), "the client's bucket name comes back");
        let upload_id = created.upload_id().expect("upload id").to_string();
        let mut parts = Vec::new();
        let mut all = Vec::new();
        for n in 1..=3 {
            let data = pattern(PART, n as u8);
            all.extend_from_slice(&data);
            let part = client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(n)
                .body(ByteStream::from(data))
                .send()
                .await
                .expect("upload part");
            parts.push(
                CompletedPart::builder()
                    .part_number(n)
                    .set_e_tag(part.e_tag().map(str::to_string))
                    .build(),
            );
        }
        let listed = client
            .list_parts()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await
            .expect("list parts");
        let mut numbers: Vec<i32> = listed.parts().iter().filter_map(|p| p.part_number()).collect();
        numbers.sort();
        assert_eq!(numbers, vec![1, 2, 3]);
        assert!(listed.parts().iter().all(|p| p.size() == Some(PART as i64)));
        let done = client
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .expect("complete");
        assert_eq!(
            done.bucket(),
            Some(bucket),
            "CompleteMultipartUpload names the client's bucket"
        );
        let got = client.get_object().bucket(bucket).key(key).send().await.expect("get");
        let bytes = got.body.collect().await.expect("body").into_bytes();
        assert_eq!(bytes.len(), all.len());
        assert!(bytes.as_ref() == all.as_slice(), "multipart content differs");

        let aborted = client
            .create_multipart_upload()
            .bucket(bucket)
            .key("aborted")
            .send()
            .await
            .expect("create");
        let id = aborted.upload_id().expect("id").to_string();
        client
            .upload_part()
            .bucket(bucket)
            .key("aborted")
            .upload_id(&id)
            .part_number(1)
            .body(ByteStream::from(pattern(1024, 1)))
            .send()
            .await
            .expect("part");
        client
            .abort_multipart_upload()
            .bucket(bucket)
            .key("aborted")
            .upload_id(&id)
            .send()
            .await
            .expect("abort");
        // AWS answers NoSuchUpload; s3s-fs lists an aborted upload as having no parts.
        match client
            .list_parts()
            .bucket(bucket)
            .key("aborted")
            .upload_id(&id)
            .send()
            .await
        {
            Err(err) => assert_eq!(error_code(&err), "NoSuchUpload"),
            Ok(listed) => assert!(listed.parts().is_empty(), "aborted upload still has parts"),
        }
    }
    h.stop().await;
}

#[tokio::test]
async fn copy_object_and_upload_part_copy_work_across_renames_and_providers() {
    let h = Harness::start().await;
    let client = h.client();
    let data = pattern(64 * 1024, 3);
    client
        .put_object()
        .bucket("alpha")
        .key("src/a b+c.bin")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put");
    // alpha -> renamed (renamed upstream): the copy source must name the upstream bucket.
    client
        .copy_object()
        .bucket("renamed")
        .key("copied")
        .copy_source("alpha/src/a%20b%2Bc.bin")
        .send()
        .await
        .expect("copy into renamed");
    assert!(h.path_up.has_object("renamed-upstream", "copied").await);
    // renamed -> alpha: the source's client name is mapped to its upstream name.
    client
        .copy_object()
        .bucket("alpha")
        .key("back")
        .copy_source("renamed/copied")
        .send()
        .await
        .expect("copy out of renamed");
    let got = client
        .get_object()
        .bucket("alpha")
        .key("back")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.body.collect().await.expect("body").into_bytes().as_ref(),
        data.as_slice()
    );
    // vhost upstream: copy within a renamed bucket.
    client
        .put_object()
        .bucket("vrenamed")
        .key("v1")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put");
    client
        .copy_object()
        .bucket("vrenamed")
        .key("v2")
        .copy_source("vrenamed/v1")
        .send()
        .await
        .expect("copy in vrenamed");
    assert!(h.vhost_up.has_object("vrenamed-upstream", "v2").await);

    // UploadPartCopy from a renamed source.
    let up = client
        .create_multipart_upload()
        .bucket("alpha")
        .key("assembled")
        .send()
        .await
        .expect("create");
    let id = up.upload_id().expect("id").to_string();
    let part = client
        .upload_part_copy()
        .bucket("alpha")
        .key("assembled")
        .upload_id(&id)
        .part_number(1)
        .copy_source("renamed/copied")
        .send()
        .await
        .expect("upload part copy");
    let etag = part.copy_part_result().and_then(|r| r.e_tag()).map(str::to_string);
    client
        .complete_multipart_upload()
        .bucket("alpha")
        .key("assembled")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).set_e_tag(etag).build())
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let got = client
        .get_object()
        .bucket("alpha")
        .key("assembled")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.body.collect().await.expect("body").into_bytes().as_ref(),
        data.as_slice()
    );

    // Across providers s3ferry streams the copy through itself, metadata included.
    client
        .put_object()
        .bucket("alpha")
        .key("typed")
        .content_type("text/csv")
        .metadata("origin", "alpha")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put");
    let copied = client
        .copy_object()
        .bucket("vbucket")
        .key("x")
        .copy_source("alpha/typed")
        .send()
        .await
        .expect("cross-provider copy");
    assert!(copied.copy_object_result().and_then(|r| r.e_tag()).is_some());
    assert!(h.vhost_up.has_object("vbucket", "x").await);
    let got = client
        .get_object()
        .bucket("vbucket")
        .key("x")
        .send()
        .await
        .expect("get");
    assert_eq!(got.content_type(), Some("text/csv"));
    assert_eq!(
        got.metadata().and_then(|m| m.get("origin")).map(String::as_str),
        Some("alpha")
    );
    assert_eq!(
        got.body.collect().await.expect("body").into_bytes().as_ref(),
        data.as_slice()
    );
    h.stop().await;
}

#[tokio::test]
async fn delete_objects_removes_every_listed_key() {
    let h = Harness::start().await;
    for (client, bucket, upstream) in [
        (h.client(), "renamed", &h.path_up),
        (h.vhost_client(), "vbucket", &h.vhost_up),
    ] {
        let keys: Vec<String> = (0..20).map(|i| format!("del/{i:02}")).collect();
        for k in &keys {
            client
                .put_object()
                .bucket(bucket)
                .key(k)
                .body(ByteStream::from_static(b"d"))
                .send()
                .await
                .expect("put");
        }
        let ids: Vec<ObjectIdentifier> = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build().expect("id"))
            .collect();
        let out = client
            .delete_objects()
            .bucket(bucket)
            .delete(Delete::builder().set_objects(Some(ids)).build().expect("delete"))
            .send()
            .await
            .expect("delete objects");
        assert_eq!(out.deleted().len(), 20);
        let upstream_bucket = if bucket == "renamed" {
            "renamed-upstream"
        } else {
            "vbucket"
        };
        for k in &keys {
            assert!(!upstream.has_object(upstream_bucket, k).await, "{k} still upstream");
        }
    }
    h.stop().await;
}

#[tokio::test]
async fn list_v1_and_v2_paginate_over_2500_keys_exactly_once() {
    let h = Harness::start().await;
    let client = h.vhost_client();
    let bucket = "vrenamed";
    let keys: Vec<String> = (0..2500).map(|i| format!("many/{i:05}")).collect();
    futures::stream::iter(keys.iter().cloned())
        .map(|k| {
            let client = client.clone();
            async move {
                client
                    .put_object()
                    .bucket(bucket)
                    .key(&k)
                    .body(ByteStream::from_static(b"k"))
                    .send()
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("puts");

    // V2 with continuation tokens.
    let mut v2 = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix("many/")
        .max_keys(1000)
        .into_paginator()
        .send();
    let mut page_count = 0;
    while let Some(page) = pages.next().await {
        let page = page.expect("page");
        assert_eq!(page.name(), Some(bucket), "the listing names the client's bucket");
        page_count += 1;
        v2.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
    }
    assert_eq!(page_count, 3);
    assert_eq!(v2, keys, "v2 lists every key once, in order");

    // V1 with markers.
    let mut v1 = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = client
            .list_objects()
            .bucket(bucket)
            .prefix("many/")
            .max_keys(1000)
            .set_marker(marker.clone())
            .send()
            .await
            .expect("v1 page");
        assert_eq!(page.name(), Some(bucket));
        let got: Vec<String> = page
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        marker = page.next_marker().map(str::to_string).or_else(|| got.last().cloned());
        v1.extend(got);
        if !page.is_truncated().unwrap_or(false) {
            break;
        }
    }
    assert_eq!(v1, keys, "v1 lists every key once, in order");

    // Delimiters give common prefixes.
    let top = client
        .list_objects_v2()
        .bucket(bucket)
        .delimiter("/")
        .send()
        .await
        .expect("list");
    let prefixes: Vec<&str> = top.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, vec!["many/"]);
    h.stop().await;
}

#[tokio::test]
async fn range_get_returns_exactly_the_requested_bytes() {
    let h = Harness::start().await;
    let data = pattern(100_000, 9);
    for (client, bucket) in [(h.client(), "alpha"), (h.vhost_client(), "vbucket")] {
        client
            .put_object()
            .bucket(bucket)
            .key("r")
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .expect("put");
        let got = client
            .get_object()
            .bucket(bucket)
            .key("r")
            .range("bytes=1000-1999")
            .send()
            .await
            .expect("range get");
        assert_eq!(got.content_range(), Some("bytes 1000-1999/100000"));
        assert_eq!(
            got.body.collect().await.expect("body").into_bytes().as_ref(),
            &data[1000..2000]
        );
        let tail = client
            .get_object()
            .bucket(bucket)
            .key("r")
            .range("bytes=-10")
            .send()
            .await
            .expect("suffix");
        assert_eq!(
            tail.body.collect().await.expect("body").into_bytes().as_ref(),
            &data[data.len() - 10..]
        );
    }
    h.stop().await;
}

#[tokio::test]
async fn sdk_default_and_explicit_checksums_are_accepted() {
    let h = Harness::start().await;
    let client = h.client();
    let data = pattern(300_000, 5);
    // The SDK's default (CRC32, sent as an aws-chunked trailer for streaming bodies).
    client
        .put_object()
        .bucket("alpha")
        .key("default")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("default checksum");
    for (alg, key) in [
        (ChecksumAlgorithm::Crc32C, "crc32c"),
        (ChecksumAlgorithm::Sha256, "sha256"),
        (ChecksumAlgorithm::Sha1, "sha1"),
        (ChecksumAlgorithm::Crc64Nvme, "crc64"),
    ] {
        client
            .put_object()
            .bucket("vbucket")
            .key(key)
            .checksum_algorithm(alg)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
        let got = h
            .vhost_client()
            .get_object()
            .bucket("vbucket")
            .key(key)
            .send()
            .await
            .expect("get");
        assert_eq!(
            got.body.collect().await.expect("body").into_bytes().as_ref(),
            data.as_slice(),
            "{key}"
        );
    }
    // A streamed body of unknown length from a file goes through as well.
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("file.bin");
    std::fs::write(&path, &data).expect("write");
    client
        .put_object()
        .bucket("alpha")
        .key("from-file")
        .body(ByteStream::from_path(&path).await.expect("stream"))
        .send()
        .await
        .expect("file put");
    let got = client
        .get_object()
        .bucket("alpha")
        .key("from-file")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.body.collect().await.expect("body").into_bytes().as_ref(),
        data.as_slice()
    );
    h.stop().await;
}

#[tokio::test]
async fn presigned_get_and_put_work_through_the_gateway() {
    use aws_sdk_s3::presigning::PresigningConfig;
    use std::time::Duration;
    let h = Harness::start().await;
    let client = h.client();
    let cfg = PresigningConfig::expires_in(Duration::from_secs(600)).expect("cfg");
    let put = client
        .put_object()
        .bucket("renamed")
        .key("presigned.txt")
        .presigned(cfg.clone())
        .await
        .expect("presign put");
    let mut req = http::Request::builder().method("PUT").uri(put.uri());
    for (k, v) in put.headers() {
        req = req.header(k, v);
    }
    let resp =
        crate::support::raw::send(req.body(crate::support::raw::full_body("presigned body")).expect("req")).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(h.path_up.has_object("renamed-upstream", "presigned.txt").await);

    let get = client
        .get_object()
        .bucket("renamed")
        .key("presigned.txt")
        .presigned(cfg)
        .await
        .expect("presign get");
    let resp = crate::support::raw::send(
        http::Request::get(get.uri())
            .body(crate::support::raw::full_body(""))
            .expect("req"),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, "presigned body");
    h.stop().await;
}

#[tokio::test]
async fn list_buckets_shows_routes_and_wildcard_buckets_but_not_renamed_targets() {
    let h = Harness::start().await;
    let out = h.client().list_buckets().send().await.expect("list buckets");
    let names: Vec<&str> = out.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, vec!["alpha", "other", "renamed", "vbucket", "vrenamed"]);
    assert!(out.buckets().iter().all(|b| b.creation_date().is_some()));
    // The wildcard route serves buckets under their own name, and CreateBucket passes through.
    let client = h.client();
    client
        .create_bucket()
        .bucket("fresh-bucket")
        .send()
        .await
        .expect("create bucket");
    client
        .put_object()
        .bucket("fresh-bucket")
        .key("k")
        .body(ByteStream::from_static(b"v"))
        .send()
        .await
        .expect("put");
    assert!(h.path_up.has_object("fresh-bucket", "k").await);
    h.stop().await;
}
