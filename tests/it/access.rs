//! Who may do what, through the real listener: per-key grants (read, upload, write, admin,
//! prefixes), ListBuckets filtered, DeleteObjects and copies checked key by key, multipart
//! uploads checked at every part, anonymous buckets in both modes, and grants swapped by a
//! reload. Every refusal is asserted to have reached nothing at the provider stand-in, which
//! records every request.

use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use http::{HeaderMap, HeaderValue, Method, Request};
use s3ferry::config::Config;
use s3ferry::server::RunningGateway;
use time::OffsetDateTime;

use crate::support::raw::{self, Signer, full_body, sha256_hex};
use crate::support::{TestUpstream, UPSTREAM_KEY, UPSTREAM_SECRET, error_code, error_status, sdk_client};

const READER: (&str, &str) = ("reader", "reader-secret-0123456789");
const UPLOADER: (&str, &str) = ("uploader", "uploader-secret-0123456789");
const WRITER: (&str, &str) = ("writer", "writer-secret-0123456789");
const ADMIN: (&str, &str) = ("admin", "admin-secret-0123456789");

/// The keys of these tests; `reader_grants` is the reader's (changed by the reload test).
fn config_text(endpoint: &str, reader_grants: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[[credentials]]
access_key_id = "{admin}"
secret_access_key = "{admin_secret}"
grants = "all"

[[credentials]]
access_key_id = "{reader}"
secret_access_key = "{reader_secret}"
grants = {reader_grants}

[[credentials]]
access_key_id = "{uploader}"
secret_access_key = "{uploader_secret}"
grants = [{{ buckets = ["photos"], prefix = "in/", access = "upload" }}]

[[credentials]]
access_key_id = "{writer}"
secret_access_key = "{writer_secret}"
grants = [
  {{ buckets = ["photos"], prefix = "team/", access = "write" }},
  {{ buckets = ["docs"], access = "read" }},
]

[providers.up]
endpoint = "{endpoint}"
access_key_id = "{UPSTREAM_KEY}"
secret_access_key = "{UPSTREAM_SECRET}"
dialect = "minio"
read_timeout_secs = 20

[[buckets]]
name = "public"
provider = "up"
anonymous = "read"

[[buckets]]
name = "listed"
provider = "up"
anonymous = "read"
anonymous_list = true

[[buckets]]
name = "native"
provider = "up"
anonymous = "provider"

[[buckets]]
name = "*"
provider = "up"
"#,
        admin = ADMIN.0,
        admin_secret = ADMIN.1,
        reader = READER.0,
        reader_secret = READER.1,
        uploader = UPLOADER.0,
        uploader_secret = UPLOADER.1,
        writer = WRITER.0,
        writer_secret = WRITER.1,
    )
}

const READER_READS_PHOTOS: &str = r#"[{ buckets = ["photos"], access = "read" }]"#;

struct Setup {
    up: TestUpstream,
    gateway: RunningGateway,
}

impl Setup {
    async fn start() -> Self {
        let up = TestUpstream::path_style().await;
        for bucket in ["photos", "docs", "other", "public", "listed", "native"] {
            up.create_bucket(bucket);
        }
        for (bucket, key, body) in [
            ("photos", "secret", "not for the writer"),
            ("photos", "in/existing", "uploaded before"),
            ("docs", "manual", "readable by the writer"),
            ("public", "logo.svg", "<svg/>"),
            ("listed", "a.txt", "listed"),
            ("native", "page.html", "<html/>"),
        ] {
            std::fs::create_dir_all(up.bucket_dir(bucket).join(key).parent().expect("parent")).expect("dir");
            std::fs::write(up.bucket_dir(bucket).join(key), body).expect("object");
        }
        let config = parse(&config_text(&up.endpoint(), READER_READS_PHOTOS));
        let gateway = s3ferry::server::start(&config).await.expect("gateway");
        Self { up, gateway }
    }

    fn client(&self, (key, secret): (&str, &str)) -> aws_sdk_s3::Client {
        sdk_client(&self.endpoint(), key, secret, true)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway.addr().port())
    }

    fn received(&self) -> usize {
        self.up.quirks.received_count()
    }

    /// Runs `refused`, which must be refused with 403 AccessDenied without anything reaching
    /// the provider.
    async fn assert_refused<T, E>(
        &self,
        what: &str,
        refused: impl std::future::Future<Output = Result<T, aws_sdk_s3::error::SdkError<E>>>,
    ) where
        T: std::fmt::Debug,
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
    {
        let before = self.received();
        let err = refused.await.expect_err(what);
        assert_eq!(error_status(&err), 403, "{what}: {err:?}");
        // HEAD answers have no body to carry the code.
        let code = error_code(&err);
        assert!(code == "AccessDenied" || code == "<no code>", "{what}: {code}");
        assert_eq!(self.received(), before, "{what}: nothing may reach the provider");
    }

    /// An unsigned request through the gateway.
    async fn unsigned(&self, method: Method, path: &str, body: &'static str) -> raw::RawResponse {
        let url = format!("{}{path}", self.endpoint());
        raw::send(
            Request::builder()
                .method(method)
                .uri(url)
                .body(full_body(body))
                .expect("request"),
        )
        .await
    }
}

fn parse(text: &str) -> Config {
    Config::parse(text, "access.toml", Path::new("."), &|_| None).expect("config")
}

async fn body_of(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let out = client.get_object().bucket(bucket).key(key).send().await.expect("get");
    String::from_utf8(out.body.collect().await.expect("body").to_vec()).expect("utf-8")
}

#[tokio::test]
async fn a_read_only_key_reads_and_lists_and_every_write_is_refused_before_the_provider() {
    let s = Setup::start().await;
    let reader = s.client(READER);
    assert_eq!(body_of(&reader, "photos", "secret").await, "not for the writer");
    let listed = reader.list_objects_v2().bucket("photos").send().await.expect("list");
    assert!(listed.contents().iter().any(|o| o.key() == Some("secret")));
    reader.head_bucket().bucket("photos").send().await.expect("head bucket");

    let put = reader
        .put_object()
        .bucket("photos")
        .key("new")
        .body(ByteStream::from_static(b"x"));
    s.assert_refused("PutObject", put.send()).await;
    s.assert_refused(
        "DeleteObject",
        reader.delete_object().bucket("photos").key("secret").send(),
    )
    .await;
    s.assert_refused("CreateBucket", reader.create_bucket().bucket("fresh").send())
        .await;
    s.assert_refused("DeleteBucket", reader.delete_bucket().bucket("photos").send())
        .await;
    s.assert_refused(
        "GetObject on another bucket",
        reader.get_object().bucket("docs").key("manual").send(),
    )
    .await;
    s.assert_refused(
        "CreateMultipartUpload",
        reader.create_multipart_upload().bucket("photos").key("big").send(),
    )
    .await;
    assert!(s.up.has_object("photos", "secret").await);
    assert!(!s.up.has_object("photos", "new").await);
}

#[tokio::test]
async fn an_upload_only_key_writes_under_its_prefix_and_nothing_else() {
    let s = Setup::start().await;
    let uploader = s.client(UPLOADER);
    uploader
        .put_object()
        .bucket("photos")
        .key("in/report.csv")
        .body(ByteStream::from_static(b"a,b"))
        .send()
        .await
        .expect("upload under the prefix");
    assert!(s.up.has_object("photos", "in/report.csv").await);

    let outside = uploader
        .put_object()
        .bucket("photos")
        .key("out/x")
        .body(ByteStream::from_static(b"x"));
    s.assert_refused("PutObject outside the prefix", outside.send()).await;
    let edge = uploader
        .put_object()
        .bucket("photos")
        .key("in")
        .body(ByteStream::from_static(b"x"));
    s.assert_refused("PutObject of the prefix without its slash", edge.send())
        .await;
    s.assert_refused(
        "GetObject of its own upload",
        uploader.get_object().bucket("photos").key("in/report.csv").send(),
    )
    .await;
    s.assert_refused(
        "HeadObject",
        uploader.head_object().bucket("photos").key("in/existing").send(),
    )
    .await;
    s.assert_refused(
        "ListObjectsV2",
        uploader.list_objects_v2().bucket("photos").prefix("in/").send(),
    )
    .await;
    s.assert_refused(
        "DeleteObject",
        uploader.delete_object().bucket("photos").key("in/existing").send(),
    )
    .await;
    s.assert_refused(
        "PutObject with a public-read ACL",
        uploader
            .put_object()
            .bucket("photos")
            .key("in/public")
            .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
            .body(ByteStream::from_static(b"x"))
            .send(),
    )
    .await;
    assert!(s.up.has_object("photos", "in/existing").await);
}

#[tokio::test]
async fn a_multipart_upload_is_checked_at_create_and_at_every_part() {
    let s = Setup::start().await;
    let uploader = s.client(UPLOADER);
    let part = vec![7u8; 5 * 1024 * 1024];
    let upload = uploader
        .create_multipart_upload()
        .bucket("photos")
        .key("in/big")
        .send()
        .await
        .expect("create under the prefix");
    let upload_id = upload.upload_id().expect("upload id");
    let etag = uploader
        .upload_part()
        .bucket("photos")
        .key("in/big")
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from(part.clone()))
        .send()
        .await
        .expect("part")
        .e_tag()
        .expect("etag")
        .to_string();
    uploader
        .complete_multipart_upload()
        .bucket("photos")
        .key("in/big")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
                .build(),
        )
        .send()
        .await
        .expect("complete");
    assert!(s.up.has_object("photos", "in/big").await);

    s.assert_refused(
        "CreateMultipartUpload outside the prefix",
        uploader
            .create_multipart_upload()
            .bucket("photos")
            .key("out/big")
            .send(),
    )
    .await;
    // An upload someone else started outside the prefix: its id does not open it to the key.
    let admin = s.client(ADMIN);
    let theirs = admin
        .create_multipart_upload()
        .bucket("photos")
        .key("out/big")
        .send()
        .await
        .expect("admin creates");
    let theirs_id = theirs.upload_id().expect("upload id");
    s.assert_refused(
        "UploadPart to an upload outside the prefix",
        uploader
            .upload_part()
            .bucket("photos")
            .key("out/big")
            .upload_id(theirs_id)
            .part_number(1)
            .body(ByteStream::from(part))
            .send(),
    )
    .await;
    s.assert_refused(
        "AbortMultipartUpload outside the prefix",
        uploader
            .abort_multipart_upload()
            .bucket("photos")
            .key("out/big")
            .upload_id(theirs_id)
            .send(),
    )
    .await;
}

#[tokio::test]
async fn a_write_key_deletes_and_copies_only_what_its_grants_cover() {
    let s = Setup::start().await;
    let writer = s.client(WRITER);
    let put = |key: &'static str| {
        writer
            .put_object()
            .bucket("photos")
            .key(key)
            .body(ByteStream::from_static(b"team data"))
            .send()
    };
    put("team/a").await.expect("put under the prefix");
    assert_eq!(body_of(&writer, "photos", "team/a").await, "team data");
    writer
        .copy_object()
        .bucket("photos")
        .key("team/b")
        .copy_source("photos/team/a")
        .send()
        .await
        .expect("copy within the prefix");
    writer
        .copy_object()
        .bucket("photos")
        .key("team/manual")
        .copy_source("docs/manual")
        .send()
        .await
        .expect("copy from a bucket the key may read");
    s.assert_refused(
        "CopyObject from a key the writer may not read",
        writer
            .copy_object()
            .bucket("photos")
            .key("team/stolen")
            .copy_source("photos/secret")
            .send(),
    )
    .await;
    s.assert_refused(
        "CopyObject to a key outside the prefix",
        writer
            .copy_object()
            .bucket("photos")
            .key("elsewhere")
            .copy_source("photos/team/a")
            .send(),
    )
    .await;
    s.assert_refused(
        "PutObject into a bucket the key may only read",
        writer
            .put_object()
            .bucket("docs")
            .key("x")
            .body(ByteStream::from_static(b"x"))
            .send(),
    )
    .await;
    writer
        .list_objects_v2()
        .bucket("photos")
        .prefix("team/")
        .send()
        .await
        .expect("list under the prefix");
    s.assert_refused(
        "ListObjectsV2 without a prefix",
        writer.list_objects_v2().bucket("photos").send(),
    )
    .await;
    s.assert_refused(
        "ListObjectsV2 with a shorter prefix",
        writer.list_objects_v2().bucket("photos").prefix("tea").send(),
    )
    .await;
    s.assert_refused(
        "PutObjectAcl (admin)",
        writer
            .put_object_acl()
            .bucket("photos")
            .key("team/a")
            .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
            .send(),
    )
    .await;

    // DeleteObjects with one key outside the grants is refused whole.
    let ids = |keys: &[&str]| {
        Delete::builder()
            .set_objects(Some(
                keys.iter()
                    .map(|k| ObjectIdentifier::builder().key(*k).build().expect("id"))
                    .collect(),
            ))
            .build()
            .expect("delete")
    };
    s.assert_refused(
        "DeleteObjects naming a key outside the prefix",
        writer
            .delete_objects()
            .bucket("photos")
            .delete(ids(&["team/b", "secret"]))
            .send(),
    )
    .await;
    assert!(s.up.has_object("photos", "team/b").await && s.up.has_object("photos", "secret").await);
    let deleted = writer
        .delete_objects()
        .bucket("photos")
        .delete(ids(&["team/a", "team/b"]))
        .send()
        .await
        .expect("delete under the prefix");
    assert_eq!(deleted.deleted().len(), 2, "{deleted:?}");
    assert!(!s.up.has_object("photos", "team/a").await);
    s.assert_refused(
        "DeleteObject outside the prefix",
        writer.delete_object().bucket("photos").key("secret").send(),
    )
    .await;
    writer
        .delete_object()
        .bucket("photos")
        .key("team/manual")
        .send()
        .await
        .expect("delete under the prefix");
}

#[tokio::test]
async fn list_buckets_shows_only_the_buckets_a_key_has_grants_on() {
    let s = Setup::start().await;
    let names = |out: aws_sdk_s3::operation::list_buckets::ListBucketsOutput| -> Vec<String> {
        out.buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_string))
            .collect()
    };
    let reader = names(s.client(READER).list_buckets().send().await.expect("list"));
    assert_eq!(reader, ["photos"]);
    let writer = names(s.client(WRITER).list_buckets().send().await.expect("list"));
    assert_eq!(writer, ["docs", "photos"]);
    let admin = names(s.client(ADMIN).list_buckets().send().await.expect("list"));
    for bucket in ["docs", "listed", "native", "other", "photos", "public"] {
        assert!(admin.iter().any(|b| b == bucket), "{bucket} in {admin:?}");
    }
    let before = s.received();
    let anonymous = s.unsigned(Method::GET, "/", "").await;
    assert_eq!((anonymous.status, anonymous.code().as_str()), (403, "AccessDenied"));
    assert_eq!(s.received(), before);
}

#[tokio::test]
async fn a_presigned_url_carries_the_grants_of_the_key_that_signed_it() {
    let s = Setup::start().await;
    let signer = Signer {
        addr: s.gateway.addr(),
        key: UPLOADER.0,
        secret: UPLOADER.1,
        time: OffsetDateTime::now_utc(),
    };
    let before = s.received();
    let (url, headers) = signer.presign(&Method::GET, "/photos/in/existing", 300, &[]);
    let mut request = Request::get(url).body(full_body("")).expect("request");
    *request.headers_mut() = headers;
    let refused = raw::send(request).await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (403, "AccessDenied"),
        "{}",
        refused.body
    );
    assert_eq!(s.received(), before, "nothing reached the provider");
    let (url, headers) = signer.presign(&Method::PUT, "/photos/in/presigned", 300, &[]);
    let mut request = Request::put(url).body(full_body("by url")).expect("request");
    *request.headers_mut() = headers;
    assert_eq!(raw::send(request).await.status, 200);
    assert!(s.up.has_object("photos", "in/presigned").await);
}

#[tokio::test]
async fn anonymous_reads_are_served_with_the_providers_key_only_where_configured() {
    let s = Setup::start().await;
    let got = s.unsigned(Method::GET, "/public/logo.svg", "").await;
    assert_eq!((got.status, got.body.as_str()), (200, "<svg/>"));
    let before = s.received();
    let head = s.unsigned(Method::HEAD, "/public/logo.svg", "").await;
    assert_eq!(head.status, 200);
    let sent = s.up.quirks.received_since(before);
    assert!(
        sent.iter().all(|r| r.headers.contains_key("authorization")),
        "anonymous = \"read\" is served with the provider's key: {sent:?}"
    );

    // An SDK configured without credentials (unsigned requests) reads the same object.
    let http_client = s
        .client(READER)
        .config()
        .http_client()
        .expect("the test client's HTTP client");
    let anonymous_sdk = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(s.endpoint())
            .force_path_style(true)
            .http_client(http_client)
            .allow_no_auth()
            .build(),
    );
    assert_eq!(body_of(&anonymous_sdk, "public", "logo.svg").await, "<svg/>");

    // Listing is off unless anonymous_list says so.
    assert_eq!(
        s.unsigned(Method::HEAD, "/listed", "").await.status,
        200,
        "HeadBucket with anonymous_list"
    );
    let listed = s.unsigned(Method::GET, "/listed?list-type=2", "").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(listed.body.contains("<Key>a.txt</Key>"), "{}", listed.body);
    for (method, path, body, what) in [
        (
            Method::GET,
            "/public?list-type=2",
            "",
            "a listing without anonymous_list",
        ),
        (Method::GET, "/public/logo.svg?acl", "", "GetObjectAcl"),
        (
            Method::GET,
            "/public/logo.svg?versionId=old",
            "",
            "a read of another version",
        ),
        (
            Method::GET,
            "/public/logo.svg?response-content-type=text%2Fhtml",
            "",
            "a read with response headers overridden (AWS refuses them unsigned)",
        ),
        (Method::GET, "/listed?versions", "", "ListObjectVersions"),
        (Method::PUT, "/public/new", "x", "a write to an anonymous-read bucket"),
        (Method::DELETE, "/public/logo.svg", "", "a delete"),
        (Method::PUT, "/listed/new", "x", "a write to an anonymous-list bucket"),
        (Method::GET, "/photos/secret", "", "a read of a private bucket"),
        (Method::HEAD, "/photos", "", "HeadBucket of a private bucket"),
        (Method::PUT, "/fresh", "", "CreateBucket"),
    ] {
        let before = s.received();
        let refused = s.unsigned(method, path, body).await;
        assert_eq!(refused.status, 403, "{what}: {}", refused.body);
        if !refused.body.is_empty() {
            assert_eq!(refused.code(), "AccessDenied", "{what}");
        }
        assert_eq!(s.received(), before, "{what}: nothing may reach the provider");
    }
    assert!(!s.up.has_object("public", "new").await);

    // The trust boundary holds for unsigned requests too: an x-amz-* header no signature
    // covers is refused, so it is never re-signed with the provider's key.
    let before = s.received();
    let mut request = Request::get(format!("{}/public/logo.svg", s.endpoint()))
        .body(full_body(""))
        .expect("request");
    request
        .headers_mut()
        .insert("x-amz-copy-source", HeaderValue::from_static("photos/secret"));
    let refused = raw::send(request).await;
    assert_eq!((refused.status, refused.code().as_str()), (403, "AccessDenied"));
    assert_eq!(s.received(), before);
}

#[tokio::test]
async fn anonymous_provider_mode_forwards_unsigned_and_lends_no_credentials() {
    let s = Setup::start().await;
    let before = s.received();
    // s3s-fs, like a provider whose bucket is private, refuses unsigned requests itself.
    let got = s.unsigned(Method::GET, "/native/page.html", "").await;
    assert_eq!(got.status, 403, "the provider's own rules decide: {}", got.body);
    let put = s.unsigned(Method::PUT, "/native/dropped", "x").await;
    assert_eq!(put.status, 403, "{}", put.body);
    let sent = s.up.quirks.received_since(before);
    assert_eq!(sent.len(), 2, "both went to the provider: {sent:?}");
    for request in &sent {
        for lent in [
            "authorization",
            "x-amz-date",
            "x-amz-content-sha256",
            "x-amz-security-token",
        ] {
            assert!(!request.headers.contains_key(lent), "{lent} sent upstream: {request:?}");
        }
        assert!(!request.target.contains("X-Amz-Signature"), "{request:?}");
    }
    assert!(!s.up.has_object("native", "dropped").await);

    // What provider mode never forwards: copies (their source would be read with s3ferry's key
    // when it lives elsewhere), bucket administration, ACL reads, ListBuckets.
    for (method, path, what) in [
        (Method::DELETE, "/native", "DeleteBucket"),
        (Method::GET, "/native/page.html?acl", "GetObjectAcl"),
        (Method::PUT, "/native?policy", "PutBucketPolicy"),
    ] {
        let before = s.received();
        let refused = s.unsigned(method, path, "").await;
        assert_eq!(
            (refused.status, refused.code().as_str()),
            (403, "AccessDenied"),
            "{what}"
        );
        assert_eq!(s.received(), before, "{what}: nothing may reach the provider");
    }

    // Signed requests to the same bucket keep being signed with the provider's key.
    let admin = s.client(ADMIN);
    assert_eq!(body_of(&admin, "native", "page.html").await, "<html/>");
}

#[tokio::test]
async fn a_reload_swaps_the_grants() {
    let s = Setup::start().await;
    let reader = s.client(READER);
    let put = || {
        reader
            .put_object()
            .bucket("photos")
            .key("after-reload")
            .body(ByteStream::from_static(b"x"))
            .send()
    };
    s.assert_refused("PutObject before the reload", put()).await;

    let write = r#"[{ buckets = ["photos"], access = "write" }]"#;
    s.gateway
        .reload(&parse(&config_text(&s.up.endpoint(), write)))
        .await
        .expect("reload");
    put().await.expect("write after the reload");

    let elsewhere = r#"[{ buckets = ["docs"], access = "read" }]"#;
    s.gateway
        .reload(&parse(&config_text(&s.up.endpoint(), elsewhere)))
        .await
        .expect("reload");
    s.assert_refused(
        "GetObject once the grant is gone",
        reader.get_object().bucket("photos").key("secret").send(),
    )
    .await;
    assert_eq!(body_of(&reader, "docs", "manual").await, "readable by the writer");
}

#[tokio::test]
async fn a_sigv4_request_of_a_key_without_grants_on_the_bucket_is_refused_in_raw_http() {
    let s = Setup::start().await;
    let signer = Signer {
        addr: s.gateway.addr(),
        key: READER.0,
        secret: READER.1,
        time: OffsetDateTime::now_utc(),
    };
    let before = s.received();
    let (request, _) = signer.sign(Method::DELETE, "/photos/secret", HeaderMap::new(), &sha256_hex(b""));
    let refused = raw::send(request.body(full_body("")).expect("request")).await;
    assert_eq!((refused.status, refused.code().as_str()), (403, "AccessDenied"));
    assert!(
        !refused.body.contains("secret</"),
        "the key stays out of the answer: {}",
        refused.body
    );
    assert_eq!(s.received(), before);
}

/// A bucket that is public at the provider keeps working through `anonymous = "provider"`:
/// the unsigned GET reaches moto (behind a wrapper that records every request head) with no
/// signature of s3ferry's, and moto's answer comes back. moto serves unsigned reads as a
/// public-read bucket does.
#[tokio::test]
async fn a_bucket_public_at_the_provider_is_read_unsigned_through_provider_mode() {
    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Full};

    use crate::support::moto::{MotoClient, Wrapped, forward};

    let seen: std::sync::Arc<std::sync::Mutex<Vec<HeaderMap>>> = std::sync::Arc::default();
    let recorder = seen.clone();
    let record_and_forward = move |client: MotoClient, moto: String, req: Request<hyper::body::Incoming>| {
        let recorder = recorder.clone();
        async move {
            recorder.lock().expect("not poisoned").push(req.headers().clone());
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            match forward(&client, &moto, parts, body).await {
                Ok((parts, body)) => http::Response::from_parts(parts, Full::new(body)),
                Err(e) => {
                    let mut response = http::Response::new(Full::new(Bytes::from(e)));
                    *response.status_mut() = http::StatusCode::BAD_GATEWAY;
                    response
                }
            }
        }
    };
    let wrapped = Wrapped::start(&["downloads"], record_and_forward).await;
    crate::support::sdk_client(&wrapped.endpoint(), "moto", "moto", true)
        .put_object()
        .bucket("downloads")
        .key("release.tar")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"release bytes"))
        .send()
        .await
        .expect("seed moto");
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[[credentials]]
access_key_id = "{key}"
secret_access_key = "{secret}"
grants = "all"
[providers.moto]
endpoint = "{endpoint}"
access_key_id = "moto-key-of-s3ferry"
secret_access_key = "moto-secret-of-s3ferry"
[[buckets]]
name = "downloads"
provider = "moto"
anonymous = "provider"
"#,
        key = ADMIN.0,
        secret = ADMIN.1,
        endpoint = wrapped.endpoint(),
    );
    let gateway = s3ferry::server::start(&parse(&toml)).await.expect("gateway");
    let before = seen.lock().expect("not poisoned").len();
    let url = format!("http://127.0.0.1:{}/downloads/release.tar", gateway.addr().port());
    let got = raw::send(Request::get(url).body(full_body("")).expect("request")).await;
    assert_eq!((got.status, got.body.as_str()), (200, "release bytes"));
    let sent = seen.lock().expect("not poisoned")[before..].to_vec();
    assert_eq!(sent.len(), 1, "{sent:?}");
    for lent in [
        "authorization",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-security-token",
    ] {
        assert!(
            !sent[0].contains_key(lent),
            "{lent} reached the provider: {:?}",
            sent[0]
        );
    }
    assert!(
        !format!("{:?}", sent[0]).contains("moto-key-of-s3ferry"),
        "s3ferry's key id never travels"
    );
    gateway.shutdown(std::time::Duration::from_secs(5)).await;
}

#[test]
fn config_check_lists_each_keys_grants_and_warns_about_keys_that_reach_every_bucket() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config_text("http://127.0.0.1:9", READER_READS_PHOTOS)).expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"))
        .args(["config", "check", "--config"])
        .arg(&path)
        .output()
        .expect("run s3ferry");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("reader (secret ***): read on photos"), "{stdout}");
    assert!(
        stdout.contains("uploader (secret ***): upload on photos under 'in/'"),
        "{stdout}"
    );
    assert!(stdout.contains("public -> up:public, anonymous reads"), "{stdout}");
    assert!(
        stderr.contains("warning: key 'admin' can reach every bucket"),
        "{stderr}"
    );
    assert!(!stderr.contains("'reader' can reach"), "{stderr}");
    assert!(
        !stdout.contains(READER.1) && !stderr.contains(READER.1),
        "secrets stay masked"
    );
}

/// A browser form upload is a PutObject by the key that signed its policy, judged by that
/// key's grants: `upload` access to the key, and `admin` to set an ACL. A refused form
/// reaches no provider.
#[tokio::test]
async fn form_uploads_are_held_to_the_grants_of_the_key_that_signed_them() {
    use crate::post_upload::{post_request_to, sigv4_form};
    let s = Setup::start().await;
    let post =
        |form: crate::post_upload::Form| raw::send(post_request_to(s.gateway.addr(), "photos", full_body(form.body())));
    let policy = |prefix: &str| format!(r#"[{{"bucket": "photos"}}, ["starts-with", "$key", "{prefix}"]]"#);

    let inside = sigv4_form(
        &policy("in/"),
        &[("key", "in/form.txt")],
        b"form data",
        UPLOADER.0,
        UPLOADER.1,
    );
    let response = post(inside).await;
    assert_eq!(response.status, 204, "{}", response.body);
    assert!(s.up.has_object("photos", "in/form.txt").await);

    for (what, form) in [
        (
            "the uploader outside its prefix",
            sigv4_form(&policy(""), &[("key", "elsewhere.txt")], b"x", UPLOADER.0, UPLOADER.1),
        ),
        (
            "the read-only key",
            sigv4_form(&policy("in/"), &[("key", "in/by-reader.txt")], b"x", READER.0, READER.1),
        ),
        (
            "an ACL set by a key without admin",
            sigv4_form(
                r#"[{"bucket": "photos"}, ["starts-with", "$key", "in/"], {"acl": "public-read"}]"#,
                &[("key", "in/public.txt"), ("acl", "public-read")],
                b"x",
                UPLOADER.0,
                UPLOADER.1,
            ),
        ),
    ] {
        let before = s.received();
        let response = post(form).await;
        assert_eq!(
            (response.status, response.code().as_str()),
            (403, "AccessDenied"),
            "{what}: {}",
            response.body
        );
        // The grants refused it, not the policy (whose refusals say "Invalid according to Policy").
        assert_eq!(response.message(), "Access Denied", "{what}");
        assert_eq!(s.received(), before, "{what}: nothing reaches the provider");
    }
}
