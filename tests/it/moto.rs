//! Against moto server, the broadest S3 model here (ACLs, tagging, versioning, conditional
//! requests): operations s3ferry does not model pass through faithfully, conditional requests
//! keep their meaning, and keys too long for a file-system store round-trip.

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{BucketVersioningStatus, ObjectCannedAcl, Tag, Tagging, VersioningConfiguration};
use s3ferry::config::Config;
use s3ferry::server::RunningGateway;

use crate::support::moto::Moto;
use crate::support::{CLIENT_KEY, CLIENT_SECRET, error_code, error_status, sdk_client};

async fn gateway(moto: &Moto) -> RunningGateway {
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[[credentials]]
access_key_id = "{CLIENT_KEY}"
secret_access_key = "{CLIENT_SECRET}"
grants = "all"
[providers.moto]
endpoint = "{}"
access_key_id = "moto"
secret_access_key = "moto"
[[buckets]]
name = "mapped"
provider = "moto"
upstream_bucket = "mapped-upstream"
[[buckets]]
name = "*"
provider = "moto"
"#,
        moto.endpoint()
    );
    let config = Config::parse(&toml, "moto.toml", Path::new("."), &|_| None).expect("config");
    s3ferry::server::start(&config).await.expect("gateway")
}

async fn setup() -> (Moto, RunningGateway, aws_sdk_s3::Client) {
    let moto = Moto::start().await;
    for b in ["plain", "mapped-upstream"] {
        moto.direct()
            .create_bucket()
            .bucket(b)
            .send()
            .await
            .expect("create bucket on moto");
    }
    let g = gateway(&moto).await;
    let client = sdk_client(
        &format!("http://127.0.0.1:{}", g.addr().port()),
        CLIENT_KEY,
        CLIENT_SECRET,
        true,
    );
    (moto, g, client)
}

#[tokio::test]
async fn conditional_gets_keep_their_meaning() {
    let (_moto, g, client) = setup().await;
    let put = client
        .put_object()
        .bucket("mapped")
        .key("c")
        .body(ByteStream::from_static(b"conditional"))
        .send()
        .await
        .expect("put");
    let etag = put.e_tag().expect("etag").to_string();

    let err = client
        .get_object()
        .bucket("mapped")
        .key("c")
        .if_none_match(&etag)
        .send()
        .await
        .expect_err("not modified");
    assert_eq!(error_status(&err), 304);
    let err = client
        .get_object()
        .bucket("mapped")
        .key("c")
        .if_match("\"0000\"")
        .send()
        .await
        .expect_err("precondition");
    assert_eq!(error_status(&err), 412);
    let ok = client
        .get_object()
        .bucket("mapped")
        .key("c")
        .if_match(&etag)
        .send()
        .await
        .expect("if-match holds");
    assert_eq!(
        ok.body.collect().await.expect("body").into_bytes().as_ref(),
        b"conditional"
    );
    let future = DateTime::from_secs(4_102_444_800); // 2100-01-01
    let err = client
        .head_object()
        .bucket("mapped")
        .key("c")
        .if_modified_since(future)
        .send()
        .await
        .expect_err("not modified");
    assert_eq!(error_status(&err), 304);

    let past = DateTime::from_secs(946_684_800); // 2000-01-01
    let err = client
        .get_object()
        .bucket("mapped")
        .key("c")
        .if_unmodified_since(past)
        .send()
        .await
        .expect_err("precondition");
    assert_eq!(error_status(&err), 412);
    // (moto ignores x-amz-copy-source-if-match, so copy preconditions are not asserted here.)
    g.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn long_and_trailing_slash_keys_round_trip() {
    let (_moto, g, client) = setup().await;
    let keys = [
        "k".repeat(1024),
        "folder/".to_string(),
        "a/./b/../c".to_string(),
        "//leading".to_string(),
        "double//slash".to_string(),
    ];
    for key in &keys {
        client
            .put_object()
            .bucket("mapped")
            .key(key)
            .body(ByteStream::from(key.clone().into_bytes()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
        let got = client
            .get_object()
            .bucket("mapped")
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
        assert_eq!(
            got.body.collect().await.expect("body").into_bytes().as_ref(),
            key.as_bytes()
        );
    }
    let listed = client.list_objects_v2().bucket("mapped").send().await.expect("list");
    assert_eq!(listed.name(), Some("mapped"));
    let mut names: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    names.sort_unstable();
    let mut expected: Vec<&str> = keys.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(names, expected);
    g.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn operations_s3ferry_does_not_model_pass_through() {
    let (moto, g, client) = setup().await;
    client
        .put_object()
        .bucket("mapped")
        .key("t")
        .body(ByteStream::from_static(b"tagged"))
        .send()
        .await
        .expect("put");
    let tagging = Tagging::builder()
        .tag_set(Tag::builder().key("team").value("ferry").build().expect("tag"))
        .build()
        .expect("tagging");
    client
        .put_object_tagging()
        .bucket("mapped")
        .key("t")
        .tagging(tagging)
        .send()
        .await
        .expect("put tagging");
    let tags = client
        .get_object_tagging()
        .bucket("mapped")
        .key("t")
        .send()
        .await
        .expect("get tagging");
    assert_eq!(
        tags.tag_set().first().map(|t| (t.key(), t.value())),
        Some(("team", "ferry"))
    );

    client
        .put_object_acl()
        .bucket("mapped")
        .key("t")
        .acl(ObjectCannedAcl::PublicRead)
        .send()
        .await
        .expect("put acl");
    let acl = client
        .get_object_acl()
        .bucket("mapped")
        .key("t")
        .send()
        .await
        .expect("get acl");
    assert!(acl.grants().iter().any(|g| {
        g.grantee()
            .and_then(|x| x.uri())
            .is_some_and(|u| u.ends_with("AllUsers"))
    }));

    client
        .put_bucket_versioning()
        .bucket("mapped")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("versioning");
    let v1 = client
        .put_object()
        .bucket("mapped")
        .key("v")
        .body(ByteStream::from_static(b"one"))
        .send()
        .await
        .expect("v1");
    client
        .put_object()
        .bucket("mapped")
        .key("v")
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .expect("v2");
    let versions = client
        .list_object_versions()
        .bucket("mapped")
        .prefix("v")
        .send()
        .await
        .expect("versions");
    assert_eq!(
        versions.name(),
        Some("mapped"),
        "ListObjectVersions names the client's bucket"
    );
    assert_eq!(versions.versions().len(), 2);
    let old = client
        .get_object()
        .bucket("mapped")
        .key("v")
        .version_id(v1.version_id().expect("version id"))
        .send()
        .await
        .expect("get old version");
    assert_eq!(old.body.collect().await.expect("body").into_bytes().as_ref(), b"one");

    // The tag really is on the upstream object, under the upstream bucket name.
    let direct = moto
        .direct()
        .get_object_tagging()
        .bucket("mapped-upstream")
        .key("t")
        .send()
        .await
        .expect("direct tagging");
    assert_eq!(direct.tag_set().len(), 1);
    let err = client
        .get_object()
        .bucket("plain")
        .key("missing")
        .send()
        .await
        .expect_err("missing");
    assert_eq!(error_code(&err), "NoSuchKey");
    g.shutdown(Duration::from_secs(2)).await;
}

/// A form upload's `tagging` field (a `<Tagging>` document) and `acl` reach the provider as the
/// object's tags and canned ACL, as a PutObject's headers would.
#[tokio::test]
async fn a_form_upload_keeps_its_tags_and_acl() {
    let (_moto, g, client) = setup().await;
    let tagging = "<Tagging><TagSet><Tag><Key>team</Key><Value>a b</Value></Tag></TagSet></Tagging>";
    let conditions = format!(
        r#"[{{"bucket": "plain"}}, ["starts-with", "$key", "form/"], {{"acl": "public-read"}}, ["eq", "$tagging", "{}"]]"#,
        tagging
    );
    let form = crate::post_upload::sigv4_form(
        &conditions,
        &[("key", "form/tagged"), ("acl", "public-read"), ("tagging", tagging)],
        b"tagged by a form",
        CLIENT_KEY,
        CLIENT_SECRET,
    );
    let request = crate::post_upload::post_request_to(g.addr(), "plain", crate::support::raw::full_body(form.body()));
    let response = crate::support::raw::send(request).await;
    assert_eq!(response.status, 204, "{}", response.body);
    let tags = client
        .get_object_tagging()
        .bucket("plain")
        .key("form/tagged")
        .send()
        .await
        .expect("tags");
    let pairs: Vec<(&str, &str)> = tags.tag_set().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(pairs, [("team", "a b")]);
    let acl = client
        .get_object_acl()
        .bucket("plain")
        .key("form/tagged")
        .send()
        .await
        .expect("acl");
    assert!(
        acl.grants().iter().any(|g| g
            .grantee()
            .and_then(|p| p.uri())
            .is_some_and(|u| u.ends_with("/global/AllUsers"))),
        "public-read grants AllUsers: {acl:?}"
    );
    g.shutdown(Duration::from_secs(2)).await;
}
