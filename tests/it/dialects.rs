//! Provider dialects against emulators: a thin OSS-like wrapper around moto and an R2-like
//! wrapper around s3s-fs. Each test shows the current aws-sdk-s3 client failing or misbehaving
//! directly against the emulator, then the same operation working through s3ferry.

use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ObjectCannedAcl, StorageClass};
use md5::{Digest, Md5};
use s3ferry::config::Config;
use s3ferry::server::RunningGateway;

use crate::support::oss::OssLike;
use crate::support::{
    CLIENT_KEY, CLIENT_SECRET, TestUpstream, UPSTREAM_KEY, UPSTREAM_SECRET, error_code, error_status, sdk_client,
};

/// The gateway with one provider `up` of `dialect` at `endpoint`, every bucket routed to it.
pub(crate) async fn gateway(
    endpoint: &str,
    key: &str,
    secret: &str,
    dialect: &str,
    extra: &str,
) -> (RunningGateway, aws_sdk_s3::Client) {
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[[credentials]]
access_key_id = "{CLIENT_KEY}"
secret_access_key = "{CLIENT_SECRET}"
[[buckets]]
name = "*"
provider = "up"
[providers.up]
endpoint = "{endpoint}"
access_key_id = "{key}"
secret_access_key = "{secret}"
dialect = "{dialect}"
read_timeout_secs = 20
{extra}
"#
    );
    let config = Config::parse(&toml, "dialects.toml", Path::new("."), &|_| None).expect("config");
    let g = s3ferry::server::start(&config).await.expect("gateway");
    let client = sdk_client(
        &format!("http://127.0.0.1:{}", g.addr().port()),
        CLIENT_KEY,
        CLIENT_SECRET,
        true,
    );
    (g, client)
}

async fn oss_gateway(oss: &OssLike, extra: &str) -> (RunningGateway, aws_sdk_s3::Client) {
    gateway(&oss.endpoint(), "oss", "oss", "oss", extra).await
}

fn md5_etag(data: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Md5::digest(data)))
}

#[tokio::test]
async fn oss_uppercase_etags_reach_clients_lowercase_and_conditionals_match() {
    let oss = OssLike::start(&["etags"]).await;
    let data = b"etag case matters";
    let direct = oss.direct();
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
    let direct = oss.direct();
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
    let direct = oss.direct();
    let err = direct
        .put_object()
        .bucket("classes")
        .key("d")
        .storage_class(StorageClass::StandardIa)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("OSS does not know STANDARD_IA");
    assert_eq!(error_code(&err), "InvalidStorageClass");

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
            ("ia", Some(&StorageClass::StandardIa))
        ],
        "{listed:?}"
    );
}

#[tokio::test]
async fn oss_canned_acls_outside_its_three_are_mapped_to_the_nearest_safe_one() {
    let oss = OssLike::start(&["acls"]).await;
    let err = oss
        .direct()
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

    let (_g, client) = gateway(&r2.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "r2", "").await;
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

    let (g, client) = gateway(&upstream.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "spaces", "").await;
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
