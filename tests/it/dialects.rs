//! Provider dialects against emulators: a thin OSS-like wrapper around moto and an R2-like
//! wrapper around s3s-fs. Each test shows the current aws-sdk-s3 client failing or misbehaving
//! directly against the emulator, then the same operation working through s3ferry.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ObjectCannedAcl, StorageClass};
use md5::{Digest, Md5};
use s3ferry::server::RunningGateway;

use crate::support::oss::OssLike;
use crate::support::{
    TestUpstream, UPSTREAM_KEY, UPSTREAM_SECRET, error_code, error_status, sdk_client, single_provider_gateway,
    temp_file,
};

async fn oss_gateway(oss: &OssLike, extra: &str) -> (RunningGateway, aws_sdk_s3::Client) {
    single_provider_gateway(&oss.endpoint(), "oss", "oss", "oss", extra).await
}

pub(crate) fn md5_etag(data: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Md5::digest(data)))
}

#[tokio::test]
async fn oss_uppercase_etags_reach_clients_lowercase_and_conditionals_match() {
    let oss = OssLike::start(&["etags"]).await;
    let data = b"etag case matters";
    let direct = oss.direct_without_checksums();
    let put = direct
        .put_object()
        .bucket("etags")
        .key("d")
        .body(ByteStream::from_static(data))
        .send()
        .await
        .expect("direct put");
    assert_eq!(
        put.e_tag(),
        Some(md5_etag(data).to_uppercase().as_str()),
        "OSS answers uppercase"
    );
    let err = direct
        .get_object()
        .bucket("etags")
        .key("d")
        .if_match(md5_etag(data))
        .send()
        .await
        .expect_err("the lowercase MD5 does not match directly");
    assert_eq!(error_status(&err), 412);

    let (_g, client) = oss_gateway(&oss, "").await;
    let put = client
        .put_object()
        .bucket("etags")
        .key("k")
        .body(ByteStream::from_static(data))
        .send()
        .await
        .expect("put");
    let etag = put.e_tag().expect("etag").to_string();
    assert_eq!(etag, md5_etag(data));
    let get = client
        .get_object()
        .bucket("etags")
        .key("k")
        .if_match(&etag)
        .send()
        .await
        .expect("If-Match");
    assert_eq!(get.e_tag(), Some(etag.as_str()));
    let err = client
        .get_object()
        .bucket("etags")
        .key("k")
        .if_none_match(&etag)
        .send()
        .await
        .expect_err("304");
    assert_eq!(error_status(&err), 304);
    let listed = client.list_objects_v2().bucket("etags").send().await.expect("list");
    assert!(
        listed
            .contents()
            .iter()
            .all(|o| o.e_tag().is_some_and(|e| e == e.to_lowercase())),
        "{listed:?}"
    );
    let listed_v1 = client.list_objects().bucket("etags").send().await.expect("list v1");
    assert!(listed_v1.contents().iter().any(|o| o.e_tag() == Some(etag.as_str())));
    let copy = client
        .copy_object()
        .bucket("etags")
        .key("copy")
        .copy_source("etags/k")
        .copy_source_if_match(&etag)
        .send()
        .await
        .expect("copy with the lowercase ETag");
    assert_eq!(copy.copy_object_result().and_then(|r| r.e_tag()), Some(etag.as_str()));
}

#[tokio::test]
async fn oss_multipart_completes_with_the_part_etags_the_client_saw() {
    let oss = OssLike::start(&["parts"]).await;
    let part = vec![7u8; 5 * 1024 * 1024];
    let direct = oss.direct_without_checksums();
    let up = direct
        .create_multipart_upload()
        .bucket("parts")
        .key("d")
        .send()
        .await
        .expect("create");
    let id = up.upload_id().expect("id");
    direct
        .upload_part()
        .bucket("parts")
        .key("d")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from(part.clone()))
        .send()
        .await
        .expect("part");
    let lowercase = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(md5_etag(&part)).build())
        .build();
    let err = direct
        .complete_multipart_upload()
        .bucket("parts")
        .key("d")
        .upload_id(id)
        .multipart_upload(lowercase)
        .send()
        .await
        .expect_err("lowercase part ETags are not OSS's");
    assert_eq!(error_code(&err), "InvalidPart");

    let (_g, client) = oss_gateway(&oss, "").await;
    let up = client
        .create_multipart_upload()
        .bucket("parts")
        .key("k")
        .send()
        .await
        .expect("create");
    let id = up.upload_id().expect("id");
    let uploaded = client
        .upload_part()
        .bucket("parts")
        .key("k")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from(part.clone()))
        .send()
        .await
        .expect("part");
    assert_eq!(uploaded.e_tag(), Some(md5_etag(&part).as_str()));
    let done = client
        .complete_multipart_upload()
        .bucket("parts")
        .key("k")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(uploaded.e_tag().expect("etag"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete through s3ferry");
    let etag = done.e_tag().expect("etag");
    assert!(etag.ends_with("-1\"") && etag == etag.to_lowercase(), "{etag}");
}

#[tokio::test]
async fn oss_storage_classes_round_trip_in_aws_names() {
    let oss = OssLike::start(&["classes"]).await;
    let direct = oss.direct_without_checksums();
    direct
        .put_object()
        .bucket("classes")
        .key("d")
        .storage_class(StorageClass::StandardIa)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("the class header is accepted...");
    let at_oss = direct
        .head_object()
        .bucket("classes")
        .key("d")
        .send()
        .await
        .expect("head");
    assert_eq!(
        at_oss.storage_class(),
        None,
        "...and ignored: the object is STANDARD (docs/dialects.md A.1, [gobackup-oss])"
    );

    let (_g, client) = oss_gateway(&oss, "").await;
    client
        .put_object()
        .bucket("classes")
        .key("ia")
        .storage_class(StorageClass::StandardIa)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("put STANDARD_IA");
    let head = client
        .head_object()
        .bucket("classes")
        .key("ia")
        .send()
        .await
        .expect("head");
    assert_eq!(head.storage_class(), Some(&StorageClass::StandardIa));
    let at_oss = direct
        .head_object()
        .bucket("classes")
        .key("ia")
        .send()
        .await
        .expect("direct head");
    assert_eq!(
        at_oss.storage_class().map(StorageClass::as_str),
        Some("IA"),
        "stored as OSS's IA"
    );
    client
        .copy_object()
        .bucket("classes")
        .key("archived")
        .copy_source("classes/ia")
        .storage_class(StorageClass::Glacier)
        .send()
        .await
        .expect("copy to GLACIER");
    let listed = client.list_objects_v2().bucket("classes").send().await.expect("list");
    let classes: Vec<(&str, Option<&StorageClass>)> = listed
        .contents()
        .iter()
        .map(|o| {
            (
                o.key().unwrap_or(""),
                o.storage_class().map(|c| match c {
                    aws_sdk_s3::types::ObjectStorageClass::StandardIa => &StorageClass::StandardIa,
                    aws_sdk_s3::types::ObjectStorageClass::Glacier => &StorageClass::Glacier,
                    _ => &StorageClass::Standard,
                }),
            )
        })
        .collect();
    assert_eq!(
        classes,
        [
            ("archived", Some(&StorageClass::Glacier)),
            ("d", Some(&StorageClass::Standard)),
            ("ia", Some(&StorageClass::StandardIa))
        ],
        "{listed:?}"
    );
}

#[tokio::test]
async fn oss_canned_acls_outside_its_three_are_mapped_to_the_nearest_safe_one() {
    let oss = OssLike::start(&["acls"]).await;
    let err = oss
        .direct_without_checksums()
        .put_object()
        .bucket("acls")
        .key("d")
        .acl(ObjectCannedAcl::AuthenticatedRead)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("OSS knows three canned ACLs");
    assert_eq!(error_status(&err), 400);

    let (_g, client) = oss_gateway(&oss, "").await;
    let public_grants = |acl: &aws_sdk_s3::operation::get_object_acl::GetObjectAclOutput| {
        acl.grants()
            .iter()
            .filter(|g| {
                g.grantee()
                    .and_then(|e| e.uri())
                    .is_some_and(|u| u.contains("AllUsers") || u.contains("AuthenticatedUsers"))
            })
            .filter_map(|g| g.permission().map(|p| p.as_str().to_string()))
            .collect::<Vec<_>>()
    };
    client
        .put_object()
        .bucket("acls")
        .key("auth")
        .acl(ObjectCannedAcl::AuthenticatedRead)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("authenticated-read is mapped");
    let acl = client
        .get_object_acl()
        .bucket("acls")
        .key("auth")
        .send()
        .await
        .expect("acl");
    assert!(public_grants(&acl).is_empty(), "mapped to private: {acl:?}");
    client
        .put_object()
        .bucket("acls")
        .key("open")
        .acl(ObjectCannedAcl::PublicReadWrite)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("public-read-write is one of OSS's");
    let acl = client
        .get_object_acl()
        .bucket("acls")
        .key("open")
        .send()
        .await
        .expect("acl");
    // moto records public-read-write as an AllUsers READ grant (plus WRITE where it models it).
    assert!(public_grants(&acl).iter().any(|p| p == "READ"), "{acl:?}");
    client
        .put_object_acl()
        .bucket("acls")
        .key("open")
        .acl(ObjectCannedAcl::BucketOwnerFullControl)
        .send()
        .await
        .expect("PutObjectAcl with a mapped ACL");
    let acl = client
        .get_object_acl()
        .bucket("acls")
        .key("open")
        .send()
        .await
        .expect("acl");
    assert!(public_grants(&acl).is_empty(), "{acl:?}");
}

#[tokio::test]
async fn oss_acl_policy_reject_refuses_with_an_s3_error() {
    let oss = OssLike::start(&["strict"]).await;
    let (_g, client) = oss_gateway(&oss, "[providers.up.acl]\nunsupported = \"reject\"").await;
    let err = client
        .put_object()
        .bucket("strict")
        .key("k")
        .acl(ObjectCannedAcl::AuthenticatedRead)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("refused");
    assert_eq!(
        (error_status(&err), error_code(&err).as_str()),
        (400, "AccessControlListNotSupported")
    );
    client
        .put_object()
        .bucket("strict")
        .key("k")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("supported ACLs pass");
}

#[tokio::test]
async fn oss_refusing_path_style_is_reported_as_a_gateway_misconfiguration() {
    let oss = OssLike::start(&["misconf"]).await;
    let path_client = sdk_client(&oss.endpoint(), "oss", "oss", true);
    let err = path_client
        .head_bucket()
        .bucket("misconf")
        .send()
        .await
        .expect_err("path style");
    assert_eq!(error_status(&err), 403);
    let err = path_client
        .list_objects_v2()
        .bucket("misconf")
        .send()
        .await
        .expect_err("path style");
    assert_eq!(error_code(&err), "SecondLevelDomainForbidden");

    let (_g, client) = oss_gateway(&oss, "addressing = \"path\"").await;
    let err = client
        .list_objects_v2()
        .bucket("misconf")
        .send()
        .await
        .expect_err("misconfigured");
    assert_eq!((error_status(&err), error_code(&err).as_str()), (500, "InternalError"));
    let (_g2, client) = oss_gateway(&oss, "").await;
    client
        .list_objects_v2()
        .bucket("misconf")
        .send()
        .await
        .expect("the oss profile addresses virtual-hosted");
}

#[tokio::test]
async fn r2_gets_no_acl_headers_and_public_acls_are_refused() {
    let r2 = TestUpstream::path_style().await;
    r2.create_bucket("r2bucket");
    r2.quirks
        .reject_acl_headers
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let err = r2
        .direct_client()
        .put_object()
        .bucket("r2bucket")
        .key("d")
        .acl(ObjectCannedAcl::Private)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("R2 rejects x-amz-acl");
    assert_eq!((error_status(&err), error_code(&err).as_str()), (501, "NotImplemented"));

    let (_g, client) = single_provider_gateway(&r2.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "r2", "").await;
    client
        .put_object()
        .bucket("r2bucket")
        .key("k")
        .acl(ObjectCannedAcl::Private)
        .body(ByteStream::from_static(b"private"))
        .send()
        .await
        .expect("private is R2's only ACL: no header needed");
    assert!(r2.has_object("r2bucket", "k").await);
    let err = client
        .put_object()
        .bucket("r2bucket")
        .key("public")
        .acl(ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("public ACLs cannot be honoured");
    assert_eq!(
        (error_status(&err), error_code(&err).as_str()),
        (400, "AccessControlListNotSupported")
    );
    assert!(!r2.has_object("r2bucket", "public").await, "nothing was written");
    client
        .create_multipart_upload()
        .bucket("r2bucket")
        .key("mpu")
        .acl(ObjectCannedAcl::BucketOwnerFullControl)
        .send()
        .await
        .expect("bucket-owner-full-control is a no-op on R2");
}

#[tokio::test]
async fn spaces_listings_asked_url_encoded_are_encoded_by_s3ferry() {
    // s3s-fs, like DigitalOcean Spaces, returns raw keys even when asked for encoding-type=url;
    // a client that trusts <EncodingType>url</EncodingType> then decodes `+` into a space.
    let upstream = TestUpstream::path_style().await;
    upstream.create_bucket("spaced");
    let direct = upstream.direct_client();
    for key in ["a+b c.txt", "d%e/f"] {
        direct
            .put_object()
            .bucket("spaced")
            .key(key)
            .body(ByteStream::from_static(b"v"))
            .send()
            .await
            .expect("seed");
    }
    let raw = direct
        .list_objects_v2()
        .bucket("spaced")
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .send()
        .await
        .expect("direct list");
    let raw_keys: Vec<&str> = raw.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        raw_keys,
        vec!["a+b c.txt", "d%e/f"],
        "the provider declares url encoding but sends raw keys"
    );

    let (g, client) = single_provider_gateway(&upstream.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "spaces", "").await;
    for v2 in [true, false] {
        let (keys, encoding) = if v2 {
            let out = client
                .list_objects_v2()
                .bucket("spaced")
                .encoding_type(aws_sdk_s3::types::EncodingType::Url)
                .send()
                .await
                .expect("list v2");
            let keys: Vec<String> = out
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string))
                .collect();
            (keys, out.encoding_type().cloned())
        } else {
            let out = client
                .list_objects()
                .bucket("spaced")
                .encoding_type(aws_sdk_s3::types::EncodingType::Url)
                .send()
                .await
                .expect("list v1");
            let keys: Vec<String> = out
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string))
                .collect();
            (keys, out.encoding_type().cloned())
        };
        assert_eq!(
            keys,
            vec!["a%2Bb%20c.txt".to_string(), "d%25e/f".to_string()],
            "v2={v2}"
        );
        assert_eq!(encoding, Some(aws_sdk_s3::types::EncodingType::Url), "v2={v2}");
    }
    // Without encoding-type the keys stay raw.
    let plain = client
        .list_objects_v2()
        .bucket("spaced")
        .send()
        .await
        .expect("plain list");
    let keys: Vec<&str> = plain.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, vec!["a+b c.txt", "d%e/f"]);
    g.shutdown(std::time::Duration::from_secs(2)).await;
}

/// The CRC32 S3 reports for `data`.
fn crc32(data: &[u8]) -> String {
    s3ferry::checksum::ChecksumAlgorithm::Crc32.of(data)
}

/// A DeleteObjects body for `keys`.
fn delete_request(keys: &[&str]) -> aws_sdk_s3::types::Delete {
    let objects = keys
        .iter()
        .map(|k| {
            aws_sdk_s3::types::ObjectIdentifier::builder()
                .key(*k)
                .build()
                .expect("id")
        })
        .collect();
    aws_sdk_s3::types::Delete::builder()
        .set_objects(Some(objects))
        .build()
        .expect("delete")
}

#[tokio::test]
async fn oss_gets_no_flexible_checksums_and_s3ferry_verifies_and_keeps_them() {
    let oss = OssLike::start(&["sums"]).await;
    let data = crate::support::pattern(300_000, 3);
    let file = temp_file(&data);
    let direct = oss.direct();
    let err = direct
        .put_object()
        .bucket("sums")
        .key("d")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect_err("the SDK's default CRC32 header");
    assert_eq!(
        (error_status(&err), error_code(&err).as_str()),
        (400, "InvalidArgument")
    );
    let err = direct
        .put_object()
        .bucket("sums")
        .key("d")
        .body(ByteStream::from_path(file.path()).await.expect("file"))
        .send()
        .await
        .expect_err("a streamed upload");
    assert_eq!(error_status(&err), 400, "{err:?}");
    let err = direct
        .delete_objects()
        .bucket("sums")
        .delete(delete_request(&["d"]))
        .send()
        .await
        .expect_err("DeleteObjects carries a CRC32 instead of Content-MD5");
    assert_eq!(error_code(&err), "InvalidArgument");

    let (_g, client) = oss_gateway(&oss, "").await;
    client
        .put_object()
        .bucket("sums")
        .key("in-memory")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put with the SDK's CRC32 header");
    client
        .put_object()
        .bucket("sums")
        .key("streamed")
        .body(ByteStream::from_path(file.path()).await.expect("file"))
        .send()
        .await
        .expect("streamed put");
    let got = client
        .get_object()
        .bucket("sums")
        .key("in-memory")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("get with checksum mode");
    assert_eq!(got.checksum_crc32(), Some(crc32(&data).as_str()), "kept by s3ferry");
    assert!(got.metadata().is_none_or(|m| m.is_empty()), "{:?}", got.metadata());
    let body = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(body.as_ref(), data.as_slice(), "the SDK validated the CRC32 as it read");
    let streamed = client
        .get_object()
        .bucket("sums")
        .key("streamed")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("get streamed");
    assert_eq!(
        streamed.checksum_crc32(),
        None,
        "a trailer OSS cannot take is verified, not kept, unless trailing_checksums_by_copy"
    );
    assert_eq!(
        streamed.body.collect().await.expect("body").into_bytes().as_ref(),
        data.as_slice()
    );
    let ranged = client
        .get_object()
        .bucket("sums")
        .key("in-memory")
        .range("bytes=10-19")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("ranged get");
    assert_eq!(ranged.checksum_crc32(), None, "no full-object checksum on a range");
    assert_eq!(
        ranged.body.collect().await.expect("body").into_bytes().as_ref(),
        &data[10..20]
    );

    let err = client
        .put_object()
        .bucket("sums")
        .key("tampered")
        .checksum_crc32(crc32(b"other bytes"))
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect_err("a CRC32 that does not match");
    assert_eq!((error_status(&err), error_code(&err).as_str()), (400, "BadDigest"));
    let listed = oss
        .direct_without_checksums()
        .list_objects_v2()
        .bucket("sums")
        .send()
        .await
        .expect("list at OSS");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        keys,
        ["in-memory", "streamed"],
        "nothing was committed for the bad body: {listed:?}"
    );

    let deleted = client
        .delete_objects()
        .bucket("sums")
        .delete(delete_request(&["in-memory", "streamed"]))
        .send()
        .await
        .expect("DeleteObjects gets Content-MD5 from s3ferry");
    assert_eq!(deleted.deleted().len(), 2, "{deleted:?}");
    let left = oss
        .direct_without_checksums()
        .list_objects_v2()
        .bucket("sums")
        .send()
        .await
        .expect("list at OSS");
    assert_eq!(left.key_count(), Some(0), "{left:?}");
}

#[tokio::test]
async fn oss_conditional_writes_become_forbid_overwrite() {
    let oss = OssLike::start(&["cond"]).await;
    let direct = oss.direct_without_checksums();
    direct
        .put_object()
        .bucket("cond")
        .key("taken")
        .body(ByteStream::from_static(b"first"))
        .send()
        .await
        .expect("seed");
    direct
        .put_object()
        .bucket("cond")
        .key("taken")
        .if_none_match("*")
        .body(ByteStream::from_static(b"overwritten"))
        .send()
        .await
        .expect("OSS ignores If-None-Match and overwrites");
    let read = |client: aws_sdk_s3::Client, key: &'static str| async move {
        let got = client.get_object().bucket("cond").key(key).send().await.expect("get");
        got.body.collect().await.expect("body").into_bytes()
    };
    assert_eq!(read(direct.clone(), "taken").await.as_ref(), b"overwritten");

    let (_g, client) = oss_gateway(&oss, "").await;
    let err = client
        .put_object()
        .bucket("cond")
        .key("taken")
        .if_none_match("*")
        .body(ByteStream::from_static(b"lost update"))
        .send()
        .await
        .expect_err("refused through s3ferry");
    assert_eq!(
        (error_status(&err), error_code(&err).as_str()),
        (412, "PreconditionFailed")
    );
    assert_eq!(read(direct.clone(), "taken").await.as_ref(), b"overwritten", "kept");
    client
        .put_object()
        .bucket("cond")
        .key("free")
        .if_none_match("*")
        .body(ByteStream::from_static(b"new"))
        .send()
        .await
        .expect("a free key is written");
    assert_eq!(read(direct.clone(), "free").await.as_ref(), b"new");
    let err = client
        .put_object()
        .bucket("cond")
        .key("taken")
        .if_match("\"0123456789abcdef0123456789abcdef\"")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("OSS has no If-Match on writes");
    assert_eq!((error_status(&err), error_code(&err).as_str()), (501, "NotImplemented"));
    assert_eq!(read(direct, "taken").await.as_ref(), b"overwritten");
}

/// B2 keeps one storage class and refuses the others with 501 (gobackup/gobackup#155): through
/// s3ferry every class is stored as STANDARD, and reads and listings say STANDARD, which is what
/// B2 holds.
#[tokio::test]
async fn b2_stores_every_storage_class_as_standard_and_reports_standard() {
    use aws_sdk_s3::types::StorageClass;
    let b2 = TestUpstream::path_style().await;
    b2.create_bucket("b2classes");
    b2.quirks
        .b2_standard_only
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let refused = b2
        .direct_client()
        .put_object()
        .bucket("b2classes")
        .key("direct")
        .storage_class(StorageClass::StandardIa)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("B2 refuses STANDARD_IA");
    assert_eq!(
        (error_status(&refused), error_code(&refused).as_str()),
        (501, "NotImplemented")
    );

    let (_g, client) = single_provider_gateway(&b2.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "b2", "").await;
    for (key, class) in [
        ("ia", StorageClass::StandardIa),
        ("glacier", StorageClass::Glacier),
        ("rr", StorageClass::ReducedRedundancy),
    ] {
        client
            .put_object()
            .bucket("b2classes")
            .key(key)
            .storage_class(class)
            .body(ByteStream::from_static(b"kept"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
        let head = client
            .head_object()
            .bucket("b2classes")
            .key(key)
            .send()
            .await
            .expect("head");
        assert!(
            head.storage_class().is_none_or(|c| *c == StorageClass::Standard),
            "{key}: {:?}",
            head.storage_class()
        );
    }
    client
        .copy_object()
        .bucket("b2classes")
        .key("copied")
        .copy_source("b2classes/ia")
        .storage_class(StorageClass::OnezoneIa)
        .send()
        .await
        .expect("copy with a storage class");
    let upload = client
        .create_multipart_upload()
        .bucket("b2classes")
        .key("parts")
        .storage_class(StorageClass::IntelligentTiering)
        .send()
        .await
        .expect("multipart upload with a storage class");
    client
        .abort_multipart_upload()
        .bucket("b2classes")
        .key("parts")
        .upload_id(upload.upload_id().expect("id"))
        .send()
        .await
        .expect("abort");
    let listed = client.list_objects_v2().bucket("b2classes").send().await.expect("list");
    let classes: Vec<_> = listed.contents().iter().map(|o| o.storage_class().cloned()).collect();
    assert_eq!(classes.len(), 4, "{classes:?}");
    assert!(
        classes.iter().all(|c| c
            .as_ref()
            .is_none_or(|c| *c == aws_sdk_s3::types::ObjectStorageClass::Standard)),
        "{classes:?}"
    );
}

#[tokio::test]
async fn b2_refuses_checksum_headers_and_s3ferry_answers_checksum_mode_itself() {
    let b2 = TestUpstream::path_style().await;
    b2.create_bucket("b2bucket");
    b2.quirks.b2_checksums.store(true, std::sync::atomic::Ordering::Relaxed);
    let data = crate::support::pattern(200_000, 9);
    let err = b2
        .direct_client()
        .put_object()
        .bucket("b2bucket")
        .key("d")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect_err("B2 refuses x-amz-checksum-crc32");
    assert_eq!(
        (error_status(&err), error_code(&err).as_str()),
        (400, "InvalidArgument")
    );
    let message = err
        .as_service_error()
        .and_then(|e| aws_sdk_s3::error::ProvideErrorMetadata::message(e));
    assert!(
        message.is_some_and(|m| m.starts_with("Unsupported header 'x-amz-")),
        "{message:?}"
    );

    let (_g, client) = single_provider_gateway(&b2.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "b2", "").await;
    client
        .put_object()
        .bucket("b2bucket")
        .key("k")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("put through s3ferry");
    let head = client
        .head_object()
        .bucket("b2bucket")
        .key("k")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("head with checksum mode (B2 refuses the header itself)");
    assert_eq!(head.checksum_crc32(), Some(crc32(&data).as_str()));
    assert!(head.metadata().is_none_or(|m| m.is_empty()), "{:?}", head.metadata());
    client
        .copy_object()
        .bucket("b2bucket")
        .key("copy")
        .copy_source("b2bucket/k")
        .send()
        .await
        .expect("copy");
    let copy = client
        .get_object()
        .bucket("b2bucket")
        .key("copy")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("get the copy");
    assert_eq!(
        copy.checksum_crc32(),
        Some(crc32(&data).as_str()),
        "the kept checksum travels with a copy"
    );

    // Multipart: each part's CRC32 is checked by s3ferry, and the part checksums in the
    // complete request are not forwarded.
    let part = crate::support::pattern(5 * 1024 * 1024, 1);
    let up = client
        .create_multipart_upload()
        .bucket("b2bucket")
        .key("mpu")
        .send()
        .await
        .expect("create");
    let id = up.upload_id().expect("id");
    let err = client
        .upload_part()
        .bucket("b2bucket")
        .key("mpu")
        .upload_id(id)
        .part_number(1)
        .checksum_crc32(crc32(b"not this part"))
        .body(ByteStream::from(part.clone()))
        .send()
        .await
        .expect_err("a part that fails its CRC32");
    assert_eq!(error_code(&err), "BadDigest");
    let uploaded = client
        .upload_part()
        .bucket("b2bucket")
        .key("mpu")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from(part.clone()))
        .send()
        .await
        .expect("part");
    client
        .complete_multipart_upload()
        .bucket("b2bucket")
        .key("mpu")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(uploaded.e_tag().expect("etag"))
                        .checksum_crc32(crc32(&part))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let got = client
        .get_object()
        .bucket("b2bucket")
        .key("mpu")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.body.collect().await.expect("body").into_bytes().as_ref(),
        part.as_slice()
    );

    let deleted = client
        .delete_objects()
        .bucket("b2bucket")
        .delete(delete_request(&["k", "copy"]))
        .send()
        .await
        .expect("DeleteObjects with Content-MD5 instead of the CRC32");
    assert_eq!(deleted.deleted().len(), 2);
    assert!(!b2.has_object("b2bucket", "k").await && !b2.has_object("b2bucket", "copy").await);
}

/// An `AccessControlPolicy` giving the owner full control and `extra` grants.
fn policy(extra: Vec<aws_sdk_s3::types::Grant>) -> aws_sdk_s3::types::AccessControlPolicy {
    aws_sdk_s3::types::AccessControlPolicy::builder()
        .owner(aws_sdk_s3::types::Owner::builder().id("owner-id").build())
        .set_grants(Some(std::iter::once(owner_grant()).chain(extra).collect()))
        .build()
}

fn owner_grant() -> aws_sdk_s3::types::Grant {
    use aws_sdk_s3::types::{Grant, Grantee, Permission, Type};
    Grant::builder()
        .grantee(
            Grantee::builder()
                .r#type(Type::CanonicalUser)
                .id("owner-id")
                .build()
                .expect("grantee"),
        )
        .permission(Permission::FullControl)
        .build()
}

fn group_grant(uri: &str, permission: aws_sdk_s3::types::Permission) -> aws_sdk_s3::types::Grant {
    use aws_sdk_s3::types::{Grant, Grantee, Type};
    Grant::builder()
        .grantee(
            Grantee::builder()
                .r#type(Type::Group)
                .uri(uri)
                .build()
                .expect("grantee"),
        )
        .permission(permission)
        .build()
}

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";

#[tokio::test]
async fn providers_without_an_acl_api_get_their_acl_operations_answered_by_s3ferry() {
    use aws_sdk_s3::types::Permission;
    let r2 = TestUpstream::path_style().await;
    r2.create_bucket("noacl");
    let direct = r2.direct_client();
    direct
        .put_object()
        .bucket("noacl")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("seed");
    let err = direct
        .get_object_acl()
        .bucket("noacl")
        .key("k")
        .send()
        .await
        .expect_err("no ACL API");
    assert_eq!(error_status(&err), 501);

    let (_g, client) = single_provider_gateway(&r2.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "r2", "").await;
    let acl = client
        .get_object_acl()
        .bucket("noacl")
        .key("k")
        .send()
        .await
        .expect("GetObjectAcl in AWS form");
    let grants: Vec<(Option<&str>, Option<&Permission>)> = acl
        .grants()
        .iter()
        .map(|g| (g.grantee().and_then(|e| e.id()), g.permission()))
        .collect();
    assert_eq!(grants, [(Some("s3ferry"), Some(&Permission::FullControl))]);
    let bucket_acl = client
        .get_bucket_acl()
        .bucket("noacl")
        .send()
        .await
        .expect("GetBucketAcl");
    assert_eq!(bucket_acl.grants().len(), 1);
    client
        .put_object_acl()
        .bucket("noacl")
        .key("k")
        .acl(ObjectCannedAcl::Private)
        .send()
        .await
        .expect("private is what R2 enforces");
    client
        .put_object_acl()
        .bucket("noacl")
        .key("k")
        .access_control_policy(policy(Vec::new()))
        .send()
        .await
        .expect("an owner-only policy body is private");
    for (what, result) in [
        (
            "public-read header",
            client
                .put_object_acl()
                .bucket("noacl")
                .key("k")
                .acl(ObjectCannedAcl::PublicRead)
                .send()
                .await,
        ),
        (
            "AllUsers READ body",
            client
                .put_object_acl()
                .bucket("noacl")
                .key("k")
                .access_control_policy(policy(vec![group_grant(ALL_USERS, Permission::Read)]))
                .send()
                .await,
        ),
    ] {
        let err = result.expect_err(what);
        assert_eq!(
            (error_status(&err), error_code(&err).as_str()),
            (400, "AccessControlListNotSupported"),
            "{what}"
        );
    }
    let err = client
        .get_object_acl()
        .bucket("noacl")
        .key("missing")
        .send()
        .await
        .expect_err("no such key");
    assert_eq!((error_status(&err), error_code(&err).as_str()), (404, "NoSuchKey"));
}

#[tokio::test]
async fn oss_acl_bodies_become_the_canned_acl_they_amount_to() {
    use aws_sdk_s3::types::Permission;
    let oss = OssLike::start(&["aclbody"]).await;
    let direct = oss.direct_without_checksums();
    direct
        .put_object()
        .bucket("aclbody")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("seed");
    let public_read = policy(vec![group_grant(ALL_USERS, Permission::Read)]);
    let err = direct
        .put_object_acl()
        .bucket("aclbody")
        .key("k")
        .access_control_policy(public_read.clone())
        .send()
        .await
        .expect_err("OSS sets ACLs by x-amz-acl only");
    assert_eq!(error_status(&err), 400);

    let (_g, client) = oss_gateway(&oss, "").await;
    client
        .put_object_acl()
        .bucket("aclbody")
        .key("k")
        .access_control_policy(public_read)
        .send()
        .await
        .expect("sent as x-amz-acl: public-read");
    let acl = client
        .get_object_acl()
        .bucket("aclbody")
        .key("k")
        .send()
        .await
        .expect("acl");
    let all_users_read = |acl: &aws_sdk_s3::operation::get_object_acl::GetObjectAclOutput| {
        acl.grants()
            .iter()
            .any(|g| g.grantee().and_then(|e| e.uri()) == Some(ALL_USERS) && g.permission() == Some(&Permission::Read))
    };
    assert!(all_users_read(&acl), "{acl:?}");
    let user_grant = aws_sdk_s3::types::Grant::builder()
        .grantee(
            aws_sdk_s3::types::Grantee::builder()
                .r#type(aws_sdk_s3::types::Type::CanonicalUser)
                .id("another-account")
                .build()
                .expect("grantee"),
        )
        .permission(Permission::Read)
        .build();
    client
        .put_object_acl()
        .bucket("aclbody")
        .key("k")
        .access_control_policy(policy(vec![user_grant]))
        .send()
        .await
        .expect("a grant no canned ACL expresses is narrowed to private under map");
    let acl = client
        .get_object_acl()
        .bucket("aclbody")
        .key("k")
        .send()
        .await
        .expect("acl");
    assert!(!all_users_read(&acl), "{acl:?}");
}

#[tokio::test]
async fn gcs_upload_part_copy_is_streamed_through_s3ferry() {
    let gcs = TestUpstream::path_style().await;
    gcs.create_bucket("gcsbucket");
    gcs.quirks
        .no_upload_part_copy
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let source = crate::support::pattern(6 * 1024 * 1024, 5);
    let direct = crate::support::sdk_client_without_checksums(&gcs.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, true);
    direct
        .put_object()
        .bucket("gcsbucket")
        .key("source")
        .body(ByteStream::from(source.clone()))
        .send()
        .await
        .expect("seed");
    let up = direct
        .create_multipart_upload()
        .bucket("gcsbucket")
        .key("direct")
        .send()
        .await
        .expect("create");
    let err = direct
        .upload_part_copy()
        .bucket("gcsbucket")
        .key("direct")
        .upload_id(up.upload_id().expect("id"))
        .part_number(1)
        .copy_source("gcsbucket/source")
        .send()
        .await
        .expect_err("no multipart server-side copy");
    assert_eq!(error_status(&err), 501);

    let (_g, client) = single_provider_gateway(&gcs.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "gcs", "").await;
    let up = client
        .create_multipart_upload()
        .bucket("gcsbucket")
        .key("assembled")
        .send()
        .await
        .expect("create");
    let id = up.upload_id().expect("id");
    let mut parts = Vec::new();
    for (n, range) in [(1, "bytes=0-5242879"), (2, "bytes=5242880-6291455")] {
        let copied = client
            .upload_part_copy()
            .bucket("gcsbucket")
            .key("assembled")
            .upload_id(id)
            .part_number(n)
            .copy_source("gcsbucket/source")
            .copy_source_range(range)
            .send()
            .await
            .expect("UploadPartCopy through s3ferry");
        let etag = copied.copy_part_result().and_then(|r| r.e_tag()).expect("etag");
        parts.push(CompletedPart::builder().part_number(n).e_tag(etag).build());
    }
    client
        .complete_multipart_upload()
        .bucket("gcsbucket")
        .key("assembled")
        .upload_id(id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .expect("complete");
    let got = client
        .get_object()
        .bucket("gcsbucket")
        .key("assembled")
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.body.collect().await.expect("body").into_bytes().as_ref(),
        source.as_slice()
    );
}

#[tokio::test]
async fn operations_a_provider_lacks_get_a_501_naming_it() {
    let oss = OssLike::start(&["ops"]).await;
    let (_g, client) = oss_gateway(&oss, "").await;
    let err = client
        .list_multipart_uploads()
        .bucket("ops")
        .send()
        .await
        .expect_err("not in OSS's S3 operation list");
    assert_eq!((error_status(&err), error_code(&err).as_str()), (501, "NotImplemented"));
    let message = err
        .as_service_error()
        .and_then(aws_sdk_s3::error::ProvideErrorMetadata::message);
    assert!(
        message.is_some_and(|m| m.contains("provider 'up'") && m.contains("unsupported_operations")),
        "{message:?}"
    );
    let (_g2, client) = oss_gateway(&oss, "[providers.up.dialect_overrides]\nunsupported_operations = []").await;
    client
        .list_multipart_uploads()
        .bucket("ops")
        .send()
        .await
        .expect("forwarded once the override lifts it");
}

#[tokio::test]
async fn r2_gets_crc64nvme_multipart_checksums_checked_by_s3ferry() {
    use aws_sdk_s3::types::ChecksumAlgorithm as Algorithm;
    let r2 = TestUpstream::path_style().await;
    r2.create_bucket("crc");
    r2.quirks
        .r2_no_composite_crc64nvme
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let err = r2
        .direct_client()
        .create_multipart_upload()
        .bucket("crc")
        .key("d")
        .checksum_algorithm(Algorithm::Crc64Nvme)
        .send()
        .await
        .expect_err("CRC64NVME multipart, as the AWS CLI v2 does by default");
    assert_eq!((error_status(&err), error_code(&err).as_str()), (501, "NotImplemented"));

    let (_g, client) = single_provider_gateway(&r2.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "r2", "").await;
    crc64nvme_multipart_round_trip(&client, "crc").await;
}

/// A one-part CRC64NVME multipart upload through s3ferry (as the AWS CLI v2 sends by default)
/// completes and reads back whole.
pub(crate) async fn crc64nvme_multipart_round_trip(client: &aws_sdk_s3::Client, bucket: &str) {
    use aws_sdk_s3::types::ChecksumAlgorithm as Algorithm;
    let part = crate::support::pattern(5 * 1024 * 1024, 2);
    let up = client
        .create_multipart_upload()
        .bucket(bucket)
        .key("k")
        .checksum_algorithm(Algorithm::Crc64Nvme)
        .send()
        .await
        .expect("create");
    let id = up.upload_id().expect("id");
    let uploaded = client
        .upload_part()
        .bucket(bucket)
        .key("k")
        .upload_id(id)
        .part_number(1)
        .checksum_algorithm(Algorithm::Crc64Nvme)
        .body(ByteStream::from(part.clone()))
        .send()
        .await
        .expect("part with a CRC64NVME checked by s3ferry");
    client
        .complete_multipart_upload()
        .bucket(bucket)
        .key("k")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(uploaded.e_tag().expect("etag"))
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("complete");
    let got = client.get_object().bucket(bucket).key("k").send().await.expect("get");
    assert_eq!(
        got.body.collect().await.expect("body").into_bytes().as_ref(),
        part.as_slice()
    );
}

#[tokio::test]
async fn oss_listings_with_awkward_keys_round_trip() {
    let oss = OssLike::start(&["keys"]).await;
    let keys = [
        "a b.txt",
        "a+b.txt",
        "dir/ü.txt",
        "dir/x&y<z>.txt",
        "percent%2F.txt",
        "quote\"d.txt",
    ];
    let err = oss
        .direct()
        .put_object()
        .bucket("keys")
        .key(keys[0])
        .body(ByteStream::from_static(b"v"))
        .send()
        .await
        .expect_err("the SDK's default checksum");
    assert_eq!(error_code(&err), "InvalidArgument");

    let (_g, client) = oss_gateway(&oss, "").await;
    for key in keys {
        client
            .put_object()
            .bucket("keys")
            .key(key)
            .body(ByteStream::from_static(b"v"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
    }
    let mut listed = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket("keys")
        .max_keys(2)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.expect("page");
        listed.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        assert!(
            page.contents()
                .iter()
                .all(|o| o.e_tag().is_some_and(|e| e == e.to_lowercase()))
        );
    }
    let mut expected: Vec<String> = keys.iter().map(|k| (*k).to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected);
    let top = client
        .list_objects()
        .bucket("keys")
        .delimiter("/")
        .send()
        .await
        .expect("v1 with a delimiter");
    let prefixes: Vec<&str> = top.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
    assert_eq!(prefixes, ["dir/"]);
    assert_eq!(top.contents().len(), 4);
    for key in keys {
        let got = client.get_object().bucket("keys").key(key).send().await.expect(key);
        assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), b"v");
    }
}

#[tokio::test]
async fn oss_trailing_checksums_are_kept_by_a_metadata_copy_when_asked() {
    let oss = OssLike::start(&["kept"]).await;
    let data = crate::support::pattern(700_000, 4);
    let file = temp_file(&data);
    let (_g, client) = oss_gateway(
        &oss,
        "[providers.up.dialect_overrides]\ntrailing_checksums_by_copy = true",
    )
    .await;
    client
        .put_object()
        .bucket("kept")
        .key("streamed")
        .content_type("text/plain")
        .metadata("color", "blue")
        .storage_class(StorageClass::StandardIa)
        .body(ByteStream::from_path(file.path()).await.expect("file"))
        .send()
        .await
        .expect("streamed put with a CRC32 trailer");
    let got = client
        .get_object()
        .bucket("kept")
        .key("streamed")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("get with checksum mode");
    assert_eq!(got.checksum_crc32(), Some(crc32(&data).as_str()), "kept by the copy");
    assert_eq!(
        got.content_type(),
        Some("text/plain"),
        "the copy kept the object's headers"
    );
    assert_eq!(got.storage_class(), Some(&StorageClass::StandardIa));
    let metadata = got.metadata().cloned().unwrap_or_default();
    assert_eq!(metadata.len(), 1, "only the client's own metadata shows: {metadata:?}");
    assert_eq!(metadata.get("color").map(String::as_str), Some("blue"));
    assert_eq!(
        got.body.collect().await.expect("body").into_bytes().as_ref(),
        data.as_slice()
    );
}

#[tokio::test]
async fn checksums_in_the_query_are_checked_like_headers() {
    use crate::support::raw::{self, Signer};
    // Presigned URLs of some SDKs carry the checksum as a query parameter (JS v3.729 bakes in
    // the CRC32 of an empty body); AWS answers a mismatch with BadDigest, so does s3ferry.
    let b2 = TestUpstream::path_style().await;
    b2.create_bucket("query");
    b2.quirks.b2_checksums.store(true, std::sync::atomic::Ordering::Relaxed);
    let (g, client) = single_provider_gateway(&b2.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "b2", "").await;
    let signer = Signer {
        addr: g.addr(),
        key: crate::support::CLIENT_KEY,
        secret: crate::support::CLIENT_SECRET,
        time: time::OffsetDateTime::now_utc(),
    };
    let body = b"presigned body";
    for (key, crc, expected) in [("baked", "AAAAAA==".to_string(), 400), ("right", crc32(body), 200)] {
        let path = format!("/query/{key}?x-amz-checksum-crc32={}", crc.replace('=', "%3D"));
        let mut headers = http::HeaderMap::new();
        headers.insert("content-length", http::HeaderValue::from(body.len()));
        let (request, _) = signer.sign(http::Method::PUT, &path, headers, "UNSIGNED-PAYLOAD");
        let response = raw::send(request.body(raw::full_body(&body[..])).expect("request")).await;
        assert_eq!(response.status, expected, "{key}: {}", response.body);
        if expected == 400 {
            assert_eq!(response.code(), "BadDigest");
        }
    }
    assert!(
        !b2.has_object("query", "baked").await,
        "nothing committed for the mismatch"
    );
    let head = client
        .head_object()
        .bucket("query")
        .key("right")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .expect("head");
    assert_eq!(head.checksum_crc32(), Some(crc32(body).as_str()));
}
