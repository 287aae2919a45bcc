//! An OSS-like upstream: a thin wrapper in front of a real moto server that adds the quirks
//! docs/dialects.md §A.1 reports for Alibaba OSS, and nothing else:
//! - path-style requests are refused with `403 SecondLevelDomainForbidden`;
//! - ETags come back in uppercase hex (headers and XML), and conditionals / part lists match
//!   only the uppercase form;
//! - only the canned ACLs private, public-read and public-read-write are accepted (in
//!   `x-amz-acl`; an `AccessControlPolicy` body is refused), no grants;
//! - storage classes are named IA / Archive / ColdArchive (stored in moto as STANDARD_IA /
//!   GLACIER / DEEP_ARCHIVE) in responses; on upload `x-amz-storage-class` is ignored (the
//!   object stays STANDARD, as reported for OSS's S3 API) and only the native
//!   `x-oss-storage-class` sets the class;
//! - flexible checksums are refused: any `x-amz-checksum-*` / `x-amz-sdk-checksum-algorithm`
//!   header gets `400 InvalidArgument`, an unsigned-trailer body `400 NotImplemented`;
//! - `If-None-Match` / `If-Match` on writes are ignored (silent overwrite); the native
//!   `x-oss-forbid-overwrite: true` refuses an existing key with `409 FileAlreadyExists`.

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::moto::{MotoClient, Wrapped, forward};
use super::sdk_client;

/// (OSS name, what moto stores).
const CLASSES: &[(&str, &str)] = &[
    ("IA", "STANDARD_IA"),
    ("Archive", "GLACIER"),
    ("ColdArchive", "DEEP_ARCHIVE"),
];
const CANNED_ACLS: &[&str] = &["private", "public-read", "public-read-write"];
const CONDITIONALS: &[&str] = &[
    "if-match",
    "if-none-match",
    "x-amz-copy-source-if-match",
    "x-amz-copy-source-if-none-match",
];

/// moto behind the OSS-quirk wrapper, addressed as `http://<bucket>.localhost:PORT`.
pub struct OssLike {
    wrapped: Wrapped,
}

impl OssLike {
    pub async fn start(buckets: &[&str]) -> Self {
        Self {
            wrapped: Wrapped::start(buckets, answer).await,
        }
    }

    pub fn endpoint(&self) -> String {
        self.wrapped.endpoint()
    }

    /// The current aws-sdk-s3 client talking to the emulator directly (virtual-hosted, as
    /// OSS requires), with its default checksums.
    pub fn direct(&self) -> aws_sdk_s3::Client {
        sdk_client(&self.endpoint(), "oss", "oss", false)
    }

    /// A direct client configured the way OSS users had to since 2025 (checksums only when
    /// required), to seed and inspect the emulator.
    pub fn direct_without_checksums(&self) -> aws_sdk_s3::Client {
        super::sdk_client_without_checksums(&self.endpoint(), "oss", "oss", false)
    }
}

fn oss_error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut resp = Response::new(Full::new(Bytes::from(xml)));
    *resp.status_mut() = StatusCode::from_u16(status).expect("status");
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/xml"));
    resp
}

fn has_lowercase_hex(text: &str) -> bool {
    text.chars().any(|c| matches!(c, 'a'..='f'))
}

/// Replaces the text of every `<name>...</name>` with `f(text)`.
fn map_elements(xml: &str, name: &str, mut f: impl FnMut(&str) -> String) -> String {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = start + open.len();
        let Some(len) = rest[after..].find(&close) else { break };
        out.push_str(&rest[..after]);
        out.push_str(&f(&rest[after..after + len]));
        rest = &rest[after + len..];
    }
    out.push_str(rest);
    out
}

async fn answer(client: MotoClient, moto_addr: String, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (mut parts, body) = req.into_parts();
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bucket_in_host = host.split(':').next().is_some_and(|h| h.ends_with(".localhost"));
    if !bucket_in_host && parts.uri.path() != "/" {
        return oss_error(
            403,
            "SecondLevelDomainForbidden",
            "Please use virtual hosted style to access.",
        );
    }
    if let Some(acl) = parts.headers.get("x-amz-acl").and_then(|v| v.to_str().ok())
        && !CANNED_ACLS.contains(&acl)
    {
        return oss_error(400, "InvalidArgument", "no such bucket access control exists");
    }
    let sets_acl = parts.method == http::Method::PUT
        && parts
            .uri
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "acl" || p == "acl="));
    let announced = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    if sets_acl && announced > 0 {
        return oss_error(400, "InvalidArgument", "only the x-amz-acl header sets an ACL");
    }
    if parts.headers.keys().any(|k| k.as_str().starts_with("x-amz-grant-")) {
        return oss_error(400, "InvalidArgument", "grants are not supported");
    }
    if let Some(name) = parts
        .headers
        .keys()
        .find(|k| k.as_str().starts_with("x-amz-checksum-") || k.as_str() == "x-amz-sdk-checksum-algorithm")
    {
        return oss_error(
            400,
            "InvalidArgument",
            &format!("The header '{name}' is not supported."),
        );
    }
    if parts
        .headers
        .get("x-amz-content-sha256")
        .is_some_and(|v| v == "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    {
        return oss_error(
            400,
            "NotImplemented",
            "Aws MultiChunkedEncoding STREAMING-UNSIGNED-PAYLOAD-TRAILER is not supported.",
        );
    }
    let writes = parts.method == http::Method::PUT || parts.method == http::Method::POST;
    if writes {
        // The S3 dialect's class header has no effect on upload; conditionals do not exist.
        parts.headers.remove("x-amz-storage-class");
        parts.headers.remove("if-none-match");
        parts.headers.remove("if-match");
        if let Some(native) = parts.headers.remove("x-oss-storage-class") {
            parts.headers.insert("x-amz-storage-class", native);
        }
        if parts.headers.get("x-oss-forbid-overwrite").is_some_and(|v| v == "true") {
            parts.headers.remove("x-oss-forbid-overwrite");
            let target = format!("http://{moto_addr}{}", parts.uri.path());
            let mut head = Request::head(target).header("host", host.as_str());
            if let Some(auth) = parts.headers.get("authorization") {
                head = head.header("authorization", auth);
            }
            let head = head.body(Full::new(Bytes::new())).expect("head");
            if client.request(head).await.is_ok_and(|r| r.status().is_success()) {
                return oss_error(409, "FileAlreadyExists", "The object you specified already exists.");
            }
        }
    }
    if let Some(class) = parts.headers.get("x-amz-storage-class").and_then(|v| v.to_str().ok()) {
        let stored = match CLASSES.iter().find(|(oss, _)| *oss == class) {
            Some((_, stored)) => *stored,
            None if class == "STANDARD" => "STANDARD",
            None => {
                return oss_error(
                    400,
                    "InvalidStorageClass",
                    "The storage class you specified is not valid",
                );
            }
        };
        parts
            .headers
            .insert("x-amz-storage-class", HeaderValue::from_static(stored));
    }
    for name in CONDITIONALS {
        if let Some(value) = parts.headers.get(*name).and_then(|v| v.to_str().ok()) {
            // OSS holds the uppercase form: a lowercase ETag never matches.
            let seen = if has_lowercase_hex(value) {
                "\"no-such-etag\"".to_string()
            } else {
                value.to_ascii_lowercase()
            };
            parts
                .headers
                .insert(*name, HeaderValue::from_str(&seen).expect("header"));
        }
    }
    // A body that breaks off is never stored, as on every real S3 server.
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return oss_error(400, "IncompleteBody", "The request body ended early.");
    };
    let mut body = body;
    let completes = parts.method == http::Method::POST && parts.uri.query().is_some_and(|q| q.contains("uploadId="));
    if completes {
        let text = String::from_utf8_lossy(&body).into_owned();
        let mut lowercase_part = false;
        let rewritten = map_elements(&text, "ETag", |etag| {
            lowercase_part |= has_lowercase_hex(etag.replace("&quot;", "").as_str());
            etag.to_ascii_lowercase()
        });
        if lowercase_part {
            return oss_error(
                400,
                "InvalidPart",
                "One or more of the specified parts could not be found.",
            );
        }
        body = Bytes::from(rewritten);
        parts.headers.remove("content-md5");
        parts.headers.remove("x-amz-checksum-crc32");
    }
    let (mut parts, body) = match forward(&client, &moto_addr, parts, body).await {
        Ok(answer) => answer,
        Err(e) => return oss_error(500, "InternalError", &e),
    };
    let upper = |etag: &str| {
        etag.chars()
            .map(|c| {
                if matches!(c, 'a'..='f') {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect::<String>()
    };
    let oss_class = |class: &str| {
        CLASSES
            .iter()
            .find(|(_, stored)| *stored == class)
            .map_or(class.to_string(), |(oss, _)| (*oss).to_string())
    };
    if let Some(etag) = parts.headers.get("etag").and_then(|v| v.to_str().ok()) {
        let up = upper(etag);
        parts.headers.insert("etag", HeaderValue::from_str(&up).expect("etag"));
    }
    if let Some(class) = parts.headers.get("x-amz-storage-class").and_then(|v| v.to_str().ok()) {
        let oss = oss_class(class);
        parts
            .headers
            .insert("x-amz-storage-class", HeaderValue::from_str(&oss).expect("class"));
    }
    let is_xml = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("xml"));
    let body = if is_xml && body.starts_with(b"<") {
        // moto names these roots `...Response` when addressed virtual-hosted; OSS and AWS say `...Result`.
        let text = String::from_utf8_lossy(&body)
            .replace("CompleteMultipartUploadResponse", "CompleteMultipartUploadResult")
            .replace("ListPartsResponse", "ListPartsResult");
        let text = map_elements(&text, "ETag", upper);
        Bytes::from(map_elements(&text, "StorageClass", oss_class))
    } else {
        body
    };
    parts.headers.remove("transfer-encoding");
    parts.headers.insert("content-length", HeaderValue::from(body.len()));
    Response::from_parts(parts, Full::new(body))
}
