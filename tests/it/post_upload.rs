//! Browser form uploads (POST Object) through the real listener to a real s3s-fs provider, with
//! forms built by hand as a browser sends them: SigV4 and SigV2 policies, each kind of
//! condition met and not met, the success answers S3 gives, and, for every refusal, the
//! provider stand-in seeing nothing.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::Request;
use sha2::Sha256;
use time::OffsetDateTime;

use crate::support::raw::{self, RawBody, RawResponse, full_body};
use crate::support::{CLIENT_KEY, CLIENT_SECRET, Harness, error_code, pattern};

const BOUNDARY: &str = "----s3ferryFormBoundary7MA4YWxk";

/// A form as a browser sends it: fields in order, then the file.
pub(crate) struct Form {
    fields: Vec<(String, String)>,
    filename: String,
    file: Vec<u8>,
}

impl Form {
    fn new(fields: &[(&str, &str)], file: &[u8]) -> Self {
        Self {
            fields: fields
                .iter()
                .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
                .collect(),
            filename: "photo.txt".into(),
            file: file.to_vec(),
        }
    }

    fn with(mut self, name: &str, value: &str) -> Self {
        self.fields.push((name.into(), value.into()));
        self
    }

    fn without(mut self, name: &str) -> Self {
        self.fields.retain(|(n, _)| n != name);
        self
    }

    /// The multipart body, with a field after the file that must be ignored.
    pub(crate) fn body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in &self.fields {
            out.extend_from_slice(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        out.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                self.filename
            )
            .as_bytes(),
        );
        out.extend_from_slice(&self.file);
        out.extend_from_slice(
            format!("\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"after\"\r\n\r\nignored\r\n--{BOUNDARY}--\r\n")
                .as_bytes(),
        );
        out
    }
}

fn policy_document(conditions: &str, expiration: OffsetDateTime) -> String {
    let expiration = expiration
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let json = format!(r#"{{"expiration": "{expiration}", "conditions": {conditions}}}"#);
    base64::engine::general_purpose::STANDARD.encode(json)
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// A SigV4-signed form: the policy fields AWS's docs list, then `fields`. `conditions` is the
/// JSON list, which must name the SigV4 fields too (as botocore's policies do).
pub(crate) fn sigv4_form(conditions: &str, fields: &[(&str, &str)], file: &[u8], key: &str, secret: &str) -> Form {
    sigv4_form_expiring(
        conditions,
        fields,
        file,
        key,
        secret,
        OffsetDateTime::now_utc() + Duration::from_secs(600),
    )
}

fn sigv4_form_expiring(
    conditions: &str,
    fields: &[(&str, &str)],
    file: &[u8],
    key: &str,
    secret: &str,
    expiration: OffsetDateTime,
) -> Form {
    let now = OffsetDateTime::now_utc();
    let date = format!("{:04}{:02}{:02}", now.year(), u8::from(now.month()), now.day());
    let credential = format!("{key}/{date}/us-east-1/s3/aws4_request");
    let amz_date = format!("{date}T000000Z");
    let sigv4_conditions = format!(
        r#"{{"x-amz-algorithm": "AWS4-HMAC-SHA256"}}, {{"x-amz-credential": "{credential}"}}, {{"x-amz-date": "{amz_date}"}}"#
    );
    let all = match conditions.trim().strip_prefix('[').and_then(|c| c.strip_suffix(']')) {
        Some(inner) if !inner.trim().is_empty() => format!("[{sigv4_conditions}, {inner}]"),
        _ => format!("[{sigv4_conditions}]"),
    };
    let policy = policy_document(&all, expiration);
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, b"us-east-1");
    let k_service = hmac_sha256(&k_region, b"s3");
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    let signature = hex::encode(hmac_sha256(&k_signing, policy.as_bytes()));
    let mut form = Form::new(fields, file);
    for (name, value) in [
        ("policy", policy.as_str()),
        ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
        ("x-amz-credential", credential.as_str()),
        ("x-amz-date", amz_date.as_str()),
        ("x-amz-signature", signature.as_str()),
    ] {
        form = form.with(name, value);
    }
    form
}

/// A SigV2-signed form (`AWSAccessKeyId`, `policy`, `signature`), as ceph's s3-tests build them.
fn sigv2_form(conditions: &str, fields: &[(&str, &str)], file: &[u8]) -> Form {
    let policy = policy_document(conditions, OffsetDateTime::now_utc() + Duration::from_secs(600));
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(CLIENT_SECRET.as_bytes()).unwrap();
    mac.update(policy.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    Form::new(fields, file)
        .with("AWSAccessKeyId", CLIENT_KEY)
        .with("policy", &policy)
        .with("signature", &signature)
}

fn post_request(h: &Harness, bucket: &str, body: RawBody) -> Request<RawBody> {
    post_request_to(h.addr, bucket, body)
}

pub(crate) fn post_request_to(addr: std::net::SocketAddr, bucket: &str, body: RawBody) -> Request<RawBody> {
    Request::post(format!("http://127.0.0.1:{}/{bucket}", addr.port()))
        .header("content-type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(body)
        .unwrap()
}

async fn post(h: &Harness, bucket: &str, form: &Form) -> RawResponse {
    raw::send(post_request(h, bucket, full_body(form.body()))).await
}

/// Posts `form` and asserts the refusal (`status`, `code`) and that nothing reached the provider.
async fn refused(h: &Harness, form: &Form, status: u16, code: &str) -> RawResponse {
    let before = h.path_up.quirks.received_count();
    let response = post(h, "alpha", form).await;
    assert_eq!(
        (response.status, response.code().as_str()),
        (status, code),
        "{}",
        response.body
    );
    let reached = h.path_up.quirks.received_since(before);
    assert!(
        reached.is_empty(),
        "nothing may reach the provider, but it got {reached:?}"
    );
    response
}

async fn object(h: &Harness, key: &str) -> aws_sdk_s3::operation::get_object::GetObjectOutput {
    h.client().get_object().bucket("alpha").key(key).send().await.unwrap()
}

const BASIC: &str = r#"[{"bucket": "alpha"}, ["starts-with", "$key", "uploads/"]]"#;

#[tokio::test]
async fn a_sigv4_form_uploads_its_file_with_its_headers_and_answers_204() {
    let h = Harness::start().await;
    let data = pattern(3 * 1024 * 1024 + 17, 5);
    let conditions = r#"[{"bucket": "alpha"}, ["starts-with", "$key", "uploads/"], ["starts-with", "$Content-Type", "text/"],
        ["eq", "$x-amz-meta-color", "blue"], ["content-length-range", 1, 10485760]]"#;
    let form = sigv4_form(
        conditions,
        &[
            ("key", "uploads/big.bin"),
            ("Content-Type", "text/plain"),
            ("x-amz-meta-color", "blue"),
            ("x-ignore-note", "free"),
        ],
        &data,
        CLIENT_KEY,
        CLIENT_SECRET,
    );
    let before = h.path_up.quirks.received_count();
    let response = post(&h, "alpha", &form).await;
    assert_eq!(response.status, 204, "{}", response.body);
    assert!(response.body.is_empty());
    let etag = response.headers["etag"].to_str().unwrap().to_string();
    assert_eq!(
        response.headers["location"],
        format!("http://127.0.0.1:{}/alpha/uploads/big.bin", h.addr.port()).as_str()
    );
    let puts: Vec<_> = h
        .path_up
        .quirks
        .received_since(before)
        .into_iter()
        .filter(|r| r.method == http::Method::PUT)
        .collect();
    assert_eq!(puts.len(), 1, "one PutObject reaches the provider");
    assert_eq!(puts[0].headers["content-length"], data.len().to_string().as_str());
    assert_eq!(
        puts[0].headers["x-amz-content-sha256"],
        raw::sha256_hex(&data).as_str(),
        "signed with the file's hash"
    );
    let got = object(&h, "uploads/big.bin").await;
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    assert_eq!(got.content_type(), Some("text/plain"));
    assert_eq!(
        got.metadata().and_then(|m| m.get("color")).map(String::as_str),
        Some("blue")
    );
    let body = got.body.collect().await.unwrap().into_bytes();
    assert!(body == data.as_slice(), "the stored object is the file");
    h.stop().await;
}

#[tokio::test]
async fn a_sigv2_form_uploads_its_file() {
    let h = Harness::start().await;
    let form = sigv2_form(BASIC, &[("key", "uploads/v2.txt")], b"signed with v2");
    let response = post(&h, "alpha", &form).await;
    assert_eq!(response.status, 204, "{}", response.body);
    let body = object(&h, "uploads/v2.txt")
        .await
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(&body[..], b"signed with v2");
    h.stop().await;
}

#[tokio::test]
async fn the_filename_is_substituted_into_the_key() {
    let h = Harness::start().await;
    let mut form = sigv4_form(
        BASIC,
        &[("key", "uploads/${filename}")],
        b"named by the browser",
        CLIENT_KEY,
        CLIENT_SECRET,
    );
    form.filename = "from-disk.txt".into();
    let response = post(&h, "alpha", &form).await;
    assert_eq!(response.status, 204, "{}", response.body);
    let body = object(&h, "uploads/from-disk.txt")
        .await
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(&body[..], b"named by the browser");
    h.stop().await;
}

#[tokio::test]
async fn success_action_status_and_redirect_answer_as_s3_does() {
    let h = Harness::start().await;
    let form = |key: &str, extra: (&str, &str)| {
        let conditions = format!(
            r#"[{{"bucket": "alpha"}}, ["starts-with", "$key", "uploads/"], ["eq", "${}", "{}"]]"#,
            extra.0, extra.1
        );
        sigv4_form(&conditions, &[("key", key), extra], b"x", CLIENT_KEY, CLIENT_SECRET)
    };

    let ok = post(&h, "alpha", &form("uploads/200", ("success_action_status", "200"))).await;
    assert_eq!((ok.status, ok.body.as_str()), (200, ""));

    let created = post(&h, "alpha", &form("uploads/a&b", ("success_action_status", "201"))).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let etag = created.headers["etag"].to_str().unwrap().replace('"', "&quot;");
    let location = format!("http://127.0.0.1:{}/alpha/uploads/a%26b", h.addr.port());
    assert_eq!(
        created.body,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{location}</Location><Bucket>alpha</Bucket><Key>uploads/a&amp;b</Key><ETag>{etag}</ETag></PostResponse>"
        )
    );

    let other = post(&h, "alpha", &form("uploads/404", ("success_action_status", "404"))).await;
    assert_eq!(other.status, 204, "an unknown status is 204, as on S3");

    let redirected = post(
        &h,
        "alpha",
        &form("uploads/r r", ("success_action_redirect", "http://app.example/done")),
    )
    .await;
    assert_eq!(redirected.status, 303, "{}", redirected.body);
    let etag = redirected.headers["etag"]
        .to_str()
        .unwrap()
        .trim_matches('"')
        .to_string();
    assert_eq!(
        redirected.headers["location"],
        format!("http://app.example/done?bucket=alpha&key=uploads%2Fr%20r&etag=%22{etag}%22").as_str()
    );
    assert!(h.path_up.has_object("alpha", "uploads/r r").await);
    h.stop().await;
}

#[tokio::test]
async fn each_condition_kind_refuses_what_it_does_not_allow() {
    let h = Harness::start().await;
    let file = b"content";
    let v4 =
        |conditions: &str, fields: &[(&str, &str)]| sigv4_form(conditions, fields, file, CLIENT_KEY, CLIENT_SECRET);
    // Met: exact match in both notations, starts-with (empty prefix = anything), the range.
    let all = r#"[{"bucket": "alpha"}, ["eq", "$key", "uploads/exact"], {"acl": "private"}, ["starts-with", "$Cache-Control", ""],
        ["content-length-range", 7, 7]]"#;
    let met = v4(
        all,
        &[
            ("key", "uploads/exact"),
            ("acl", "private"),
            ("Cache-Control", "max-age=1"),
        ],
    );
    assert_eq!(post(&h, "alpha", &met).await.status, 204);

    let cases: Vec<(&str, Form)> = vec![
        (
            "eq on key",
            v4(
                all,
                &[("key", "uploads/other"), ("acl", "private"), ("Cache-Control", "x")],
            ),
        ),
        (
            "object eq on acl",
            v4(
                all,
                &[("key", "uploads/exact"), ("acl", "public-read"), ("Cache-Control", "x")],
            ),
        ),
        ("starts-with on key", v4(BASIC, &[("key", "elsewhere/a")])),
        (
            "a condition's field is missing",
            v4(all, &[("key", "uploads/exact"), ("acl", "private")]),
        ),
        (
            "a field no condition covers",
            v4(BASIC, &[("key", "uploads/a"), ("x-amz-meta-extra", "1")]),
        ),
        (
            "another bucket",
            v4(
                r#"[{"bucket": "renamed"}, ["starts-with", "$key", ""]]"#,
                &[("key", "uploads/a")],
            ),
        ),
        (
            "no bucket condition",
            v4(r#"[["starts-with", "$key", ""]]"#, &[("key", "uploads/a")]),
        ),
    ];
    for (case, form) in cases {
        let response = refused(&h, &form, 403, "AccessDenied").await;
        assert!(
            response.message().starts_with("Invalid according to Policy"),
            "{case}: {}",
            response.message()
        );
    }
    let failed = refused(&h, &v4(BASIC, &[("key", "elsewhere/a")]), 403, "AccessDenied").await;
    assert_eq!(
        failed.message(),
        "Invalid according to Policy: Policy Condition failed: [\"starts-with\", \"$key\", \"uploads/\"]"
    );
    h.stop().await;
}

#[tokio::test]
async fn content_length_range_bounds_the_file() {
    let h = Harness::start().await;
    let range = r#"[{"bucket": "alpha"}, ["starts-with", "$key", "uploads/"], ["content-length-range", 10, 100]]"#;
    let form = |file: &[u8]| sigv4_form(range, &[("key", "uploads/ranged")], file, CLIENT_KEY, CLIENT_SECRET);
    refused(&h, &form(&[1u8; 101]), 400, "EntityTooLarge").await;
    refused(&h, &form(&[1u8; 9]), 400, "EntityTooSmall").await;
    // A file far over the range is refused at the range, not read to its end.
    refused(&h, &form(&pattern(2 * 1024 * 1024, 1)), 400, "EntityTooLarge").await;
    assert_eq!(post(&h, "alpha", &form(&[1u8; 100])).await.status, 204);
    assert_eq!(post(&h, "alpha", &form(&[1u8; 10])).await.status, 204);
    h.stop().await;
}

#[tokio::test]
async fn signatures_keys_and_expiration_are_checked() {
    let h = Harness::start().await;
    let file = b"x";
    let expired = sigv4_form_expiring(
        BASIC,
        &[("key", "uploads/a")],
        file,
        CLIENT_KEY,
        CLIENT_SECRET,
        OffsetDateTime::now_utc() - Duration::from_secs(1),
    );
    let response = refused(&h, &expired, 403, "AccessDenied").await;
    assert_eq!(response.message(), "Invalid according to Policy: Policy expired.");

    let wrong_secret = sigv4_form(BASIC, &[("key", "uploads/a")], file, CLIENT_KEY, "not-the-secret");
    refused(&h, &wrong_secret, 403, "SignatureDoesNotMatch").await;
    let unknown_key = sigv4_form(BASIC, &[("key", "uploads/a")], file, "nobody", CLIENT_SECRET);
    refused(&h, &unknown_key, 403, "InvalidAccessKeyId").await;

    // A field changed after signing: the policy no longer verifies.
    let mut tampered = sigv2_form(BASIC, &[("key", "uploads/a")], file);
    let policy = policy_document(
        r#"[{"bucket": "alpha"}, ["starts-with", "$key", ""]]"#,
        OffsetDateTime::now_utc() + Duration::from_secs(60),
    );
    tampered = tampered.without("policy").with("policy", &policy);
    refused(&h, &tampered, 403, "SignatureDoesNotMatch").await;
    let mut v2_unknown = sigv2_form(BASIC, &[("key", "uploads/a")], file).without("AWSAccessKeyId");
    v2_unknown = v2_unknown.with("AWSAccessKeyId", "nobody");
    refused(&h, &v2_unknown, 403, "InvalidAccessKeyId").await;

    // No signature at all: an anonymous form, which today's grants refuse.
    refused(&h, &Form::new(&[("key", "uploads/a")], file), 403, "AccessDenied").await;
    // A policy without its signature.
    let unsigned = sigv2_form(BASIC, &[("key", "uploads/a")], file).without("signature");
    refused(&h, &unsigned, 400, "InvalidArgument").await;
    h.stop().await;
}

#[tokio::test]
async fn malformed_forms_and_policies_are_refused_with_aws_codes() {
    let h = Harness::start().await;
    let file = b"x";
    refused(
        &h,
        &sigv4_form(BASIC, &[], file, CLIENT_KEY, CLIENT_SECRET),
        400,
        "InvalidArgument",
    )
    .await;
    let pad = "p".repeat(21 * 1024);
    let big = sigv4_form(
        BASIC,
        &[("key", "uploads/a"), ("x-ignore-pad", &pad)],
        file,
        CLIENT_KEY,
        CLIENT_SECRET,
    );
    refused(&h, &big, 400, "MaxPostPreDataLengthExceeded").await;
    let bad_policy = {
        let policy = base64::engine::general_purpose::STANDARD.encode(r#"{"conditions": []}"#);
        let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(CLIENT_SECRET.as_bytes()).unwrap();
        mac.update(policy.as_bytes());
        let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        Form::new(
            &[
                ("key", "uploads/a"),
                ("AWSAccessKeyId", CLIENT_KEY),
                ("policy", &policy),
                ("signature", &signature),
            ],
            file,
        )
    };
    refused(&h, &bad_policy, 400, "InvalidPolicyDocument").await;

    // A body that stops inside the file, and one without a file part.
    let mut cut = sigv4_form(
        BASIC,
        &[("key", "uploads/cut")],
        &[7u8; 5000],
        CLIENT_KEY,
        CLIENT_SECRET,
    )
    .body();
    cut.truncate(cut.len() - 200);
    let before = h.path_up.quirks.received_count();
    let response = raw::send(post_request(&h, "alpha", full_body(cut))).await;
    assert_eq!(
        (response.status, response.code().as_str()),
        (400, "MalformedPOSTRequest"),
        "{}",
        response.body
    );
    let no_file =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nuploads/a\r\n--{BOUNDARY}--\r\n");
    let response = raw::send(post_request(&h, "alpha", full_body(no_file))).await;
    assert_eq!(
        (response.status, response.code().as_str()),
        (400, "MalformedPOSTRequest"),
        "{}",
        response.body
    );
    assert_eq!(h.path_up.quirks.received_count(), before);

    // A bucket no route exposes (a renamed route's upstream name) is refused before the file
    // is read, as any request to it is.
    let hidden = sigv4_form(
        r#"[{"bucket": "renamed-upstream"}, ["starts-with", "$key", ""]]"#,
        &[("key", "a")],
        file,
        CLIENT_KEY,
        CLIENT_SECRET,
    );
    let before = h.path_up.quirks.received_count();
    let response = post(&h, "renamed-upstream", &hidden).await;
    assert_eq!(
        (response.status, response.code().as_str()),
        (404, "NoSuchBucket"),
        "{}",
        response.body
    );
    assert_eq!(h.path_up.quirks.received_count(), before);

    // s3ferry's own keys stay out of reach of a form, as of every write.
    let reserved = sigv4_form(
        r#"[{"bucket": "alpha"}, ["starts-with", "$key", ""]]"#,
        &[("key", ".s3ferry/x")],
        file,
        CLIENT_KEY,
        CLIENT_SECRET,
    );
    refused(&h, &reserved, 403, "AccessDenied").await;
    h.stop().await;
}

/// The policy is checked as soon as the file part begins: a forged form is refused without
/// s3ferry reading its file, however long it is.
#[tokio::test]
async fn a_forged_form_is_refused_before_its_file_is_read() {
    let h = Harness::start().await;
    let form = sigv4_form(BASIC, &[("key", "uploads/a")], b"", CLIENT_KEY, "wrong-secret");
    let body = form.body();
    // Everything up to the file's first byte.
    let marker = b"application/octet-stream\r\n\r\n";
    let head_end = body.windows(marker.len()).position(|w| w == marker).unwrap() + marker.len();
    // The file never ends: if anything waited for it, no answer would come.
    let (sender, mut receiver) =
        tokio::sync::mpsc::channel::<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>(4);
    sender
        .send(Ok(http_body::Frame::data(bytes::Bytes::from(
            body[..head_end].to_vec(),
        ))))
        .await
        .unwrap();
    let endless = http_body_util::StreamBody::new(futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)));
    let body: RawBody = http_body_util::BodyExt::boxed(http_body_util::BodyExt::map_err(endless, |e| {
        Box::new(e) as Box<dyn std::error::Error + Send + Sync>
    }));
    let before = h.path_up.quirks.received_count();
    // A browser states the form's length; this one announces far more than it sends.
    let mut request = post_request(&h, "alpha", body);
    request
        .headers_mut()
        .insert("content-length", http::HeaderValue::from(head_end + 100 * 1024 * 1024));
    let response = tokio::time::timeout(Duration::from_secs(10), raw::send(request))
        .await
        .expect("answered without reading the file");
    assert_eq!(
        (response.status, response.code().as_str()),
        (403, "SignatureDoesNotMatch"),
        "{}",
        response.body
    );
    assert_eq!(h.path_up.quirks.received_count(), before);
    drop(sender);
    h.stop().await;
}

/// The local provider stores what it is sent before it compares digests; a form's checksum
/// field is checked by s3ferry first, as for a PutObject, so a file that does not match it is
/// never kept. The spool files are gone after every form, refused or stored, and
/// `post_upload.max_file_bytes` bounds a form whose policy sets no range.
#[tokio::test]
async fn a_local_provider_keeps_no_file_that_fails_its_checksum_and_no_spool_file_stays() {
    let root = tempfile::tempdir().unwrap();
    let spool = tempfile::tempdir().unwrap();
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
name = "alpha"
provider = "disk"
[post_upload]
spool_dir = "{}"
max_file_bytes = 1000
max_spool_bytes = 4000
"#,
        root.path().display(),
        spool.path().display()
    );
    let config = s3ferry::config::Config::parse(&toml, "local.toml", std::path::Path::new("."), &|_| None).unwrap();
    let g = s3ferry::server::start(&config).await.unwrap();
    let client = crate::support::sdk_client(
        &format!("http://127.0.0.1:{}", g.addr().port()),
        CLIENT_KEY,
        CLIENT_SECRET,
        true,
    );
    let conditions =
        r#"[{"bucket": "alpha"}, ["starts-with", "$key", "uploads/"], ["starts-with", "$x-amz-checksum-crc32", ""]]"#;
    let send = |form: Form| raw::send(post_request_to(g.addr(), "alpha", full_body(form.body())));

    let data = b"checked before it is kept";
    let wrong = sigv4_form(
        conditions,
        &[
            ("key", "uploads/c"),
            ("x-amz-checksum-crc32", &raw::crc32_base64(b"other")),
        ],
        data,
        CLIENT_KEY,
        CLIENT_SECRET,
    );
    let response = send(wrong).await;
    assert_eq!(
        (response.status, response.code().as_str()),
        (400, "BadDigest"),
        "{}",
        response.body
    );
    let missing = client
        .head_object()
        .bucket("alpha")
        .key("uploads/c")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&missing), "NotFound");

    let right = sigv4_form(
        conditions,
        &[("key", "uploads/c"), ("x-amz-checksum-crc32", &raw::crc32_base64(data))],
        data,
        CLIENT_KEY,
        CLIENT_SECRET,
    );
    assert_eq!(send(right).await.status, 204);
    let stored = client
        .get_object()
        .bucket("alpha")
        .key("uploads/c")
        .send()
        .await
        .unwrap();
    assert_eq!(&stored.body.collect().await.unwrap().into_bytes()[..], data);

    let too_big = sigv4_form(
        BASIC,
        &[("key", "uploads/big")],
        &[0u8; 1001],
        CLIENT_KEY,
        CLIENT_SECRET,
    );
    let response = send(too_big).await;
    assert_eq!(
        (response.status, response.code().as_str()),
        (400, "EntityTooLarge"),
        "{}",
        response.body
    );

    let left: Vec<_> = std::fs::read_dir(spool.path()).unwrap().collect();
    assert!(left.is_empty(), "spool files left behind: {left:?}");
    g.shutdown(Duration::from_secs(2)).await;
}

/// s3s reads any multipart POST as a form signed by its policy, whatever other signature it
/// carries; s3ferry refuses a form that also carries an `Authorization` header, without reading
/// its body (which never ends here).
#[tokio::test]
async fn a_form_with_an_authorization_header_is_refused_unread() {
    let h = Harness::start().await;
    let (_sender, mut receiver) =
        tokio::sync::mpsc::channel::<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>(1);
    let endless = http_body_util::StreamBody::new(futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)));
    let body: RawBody = http_body_util::BodyExt::boxed(http_body_util::BodyExt::map_err(endless, |e| {
        Box::new(e) as Box<dyn std::error::Error + Send + Sync>
    }));
    let mut request = post_request(&h, "alpha", body);
    request.headers_mut().insert(
        "authorization",
        http::HeaderValue::from_static(
            "AWS4-HMAC-SHA256 Credential=client-key/20261130/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00",
        ),
    );
    request
        .headers_mut()
        .insert("content-length", http::HeaderValue::from(1_000_000));
    let before = h.path_up.quirks.received_count();
    let response = tokio::time::timeout(Duration::from_secs(10), raw::send(request))
        .await
        .expect("answered without reading the form");
    assert_eq!(
        (response.status, response.code().as_str()),
        (400, "InvalidArgument"),
        "{}",
        response.body
    );
    assert_eq!(h.path_up.quirks.received_count(), before);
    h.stop().await;
}
