//! `s3ferry probe`: what a configured provider actually accepts, found by asking it.
//!
//! A short capability suite runs against one provider with the provider's own key and its
//! configured endpoint, each question one small request, sent in AWS's form without any dialect
//! translation, so the answer is the provider's own:
//! - always (read-only): addressing styles, SigV4 and SigV2, the error codes of a missing key and
//!   bucket, whether `list-type=2` gets a ListObjectsV2 answer;
//! - with `--write`, inside a scratch prefix (`.s3ferry-probe-<id>/`) of the given bucket, or a
//!   scratch bucket it creates: ETag case, flexible checksums (single and multipart, header and
//!   unsigned trailer), whether DeleteObjects needs `Content-MD5`, conditional writes (AWS's
//!   headers, else OSS's or GCS's native form), canned ACLs, grants and the `?acl` API, storage
//!   classes, `encoding-type=url` honesty, UploadPartCopy, and whether `.`/`..` key segments are
//!   stored literally. Everything it wrote is deleted afterwards (and the scratch bucket removed).
//!
//! The findings become the `[providers.NAME]` settings and `dialect_overrides` that fit
//! ([`report`], pure), compared with the profile configured now.

pub mod report;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::Serialize;

use crate::checksum::ChecksumAlgorithm;
use crate::config::SignatureVersion;
use crate::dialect::{AWS_CANNED_ACLS, AWS_STORAGE_CLASSES, EtagCase};
use crate::error::GatewayError;
use crate::s3::addressing::Addressing;
use crate::s3::encoding::uri_encode;
use crate::small_body::{BUDGET_WAIT, BodyBudget, Buffered, MAX_XML_BODY};
use crate::upstream::exchange::Exchange;
use crate::upstream::sign::{EMPTY_PAYLOAD_SHA256, STREAMING_UNSIGNED_PAYLOAD_TRAILER, UNSIGNED_PAYLOAD, hex_sha256};
use crate::upstream::{OutgoingRequest, Upstream, UpstreamSettings};

/// What to probe.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// The bucket to probe in (its scratch prefix); `None`: a scratch bucket is created when
    /// writing, and the read-only checks use a bucket name that does not exist.
    pub bucket: Option<String>,
    /// Run the checks that write (in the scratch prefix or bucket only).
    pub write: bool,
    /// How long one request may take.
    pub timeout: Duration,
}

/// The answer to one question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Answer {
    /// The provider did it.
    Accepted,
    /// The provider refused it (status and S3 error code).
    Refused { status: u16, code: String },
    /// The provider accepted the request but ignored what was asked (a condition that did not
    /// hold, a class or encoding it did not apply).
    Ignored,
    /// Not asked (no bucket, read-only run, an earlier step failed), or no answer.
    NotProbed { reason: String },
}

impl Answer {
    pub fn accepted(&self) -> Option<bool> {
        match self {
            Answer::Accepted => Some(true),
            Answer::Refused { .. } | Answer::Ignored => Some(false),
            Answer::NotProbed { .. } => None,
        }
    }

    fn not_probed(reason: impl Into<String>) -> Self {
        Answer::NotProbed { reason: reason.into() }
    }
}

/// Everything the probe found.
#[derive(Debug, Clone, Serialize)]
pub struct Findings {
    pub provider: String,
    pub bucket: Option<String>,
    pub path_style: Answer,
    pub virtual_style: Answer,
    pub sigv4: Answer,
    pub sigv2: Answer,
    /// The code of a GET of a missing key (S3: NoSuchKey).
    pub missing_key_code: Option<String>,
    /// The code of a GET in a missing bucket (S3: NoSuchBucket).
    pub missing_bucket_code: Option<String>,
    pub list_objects_v2: Answer,
    pub etag_case: Option<EtagCase>,
    /// Each algorithm as an `x-amz-checksum-*` header on a PutObject.
    pub checksums: Vec<(ChecksumAlgorithm, Answer)>,
    /// Each algorithm on a multipart upload (CreateMultipartUpload's algorithm, the part's
    /// header, CompleteMultipartUpload).
    pub multipart_checksums: Vec<(ChecksumAlgorithm, Answer)>,
    /// A CRC32 trailer on an unsigned aws-chunked upload.
    pub unsigned_trailer: Answer,
    /// DeleteObjects with a CRC32 header but no `Content-MD5`.
    pub delete_objects_without_md5: Answer,
    /// `If-None-Match: *` on an existing key refused (412), as AWS does.
    pub if_none_match: Answer,
    /// `If-Match` with another ETag refused (412).
    pub if_match: Answer,
    /// OSS's `x-oss-forbid-overwrite: true` on an existing key refused.
    pub oss_forbid_overwrite: Answer,
    /// GCS's `x-goog-if-generation-match: 0` on an existing key refused.
    pub gcs_generation_match: Answer,
    pub canned_acls: Vec<(String, Answer)>,
    pub grants: Answer,
    pub acl_api: Answer,
    pub storage_classes: Vec<(String, Answer)>,
    /// A listing with `encoding-type=url` returns keys encoded.
    pub url_encoded_listings: Answer,
    pub upload_part_copy: Answer,
    /// A key with a `..` segment is stored as it is, not resolved as a path.
    pub literal_dot_segments: Answer,
    /// What the run could not do (cleanup that failed, steps skipped), for the operator.
    pub notes: Vec<String>,
}

/// Probes the provider of `settings`. The returned findings are complete even when the provider
/// refuses much: each refusal is a finding.
pub async fn probe(settings: &UpstreamSettings, options: &ProbeOptions) -> Result<Findings, GatewayError> {
    let prober = Prober::new(settings, options)?;
    let mut findings = prober.read_only().await;
    if options.write {
        prober.write_checks(&mut findings).await;
    }
    Ok(findings)
}

/// The provider, as configured and in the other addressing style and signature version.
struct Prober {
    configured: Arc<Upstream>,
    path: Arc<Upstream>,
    virtual_hosted: Arc<Upstream>,
    sigv4: Arc<Upstream>,
    sigv2: Arc<Upstream>,
    options: ProbeOptions,
    /// Names no key or bucket has (each run its own).
    run_id: String,
}

impl Prober {
    fn new(settings: &UpstreamSettings, options: &ProbeOptions) -> Result<Self, GatewayError> {
        let budget = BodyBudget::new(64 * 1024 * 1024, BUDGET_WAIT, None);
        let variant = |addressing: Addressing, signature: SignatureVersion| {
            let mut s = settings.clone();
            s.addressing = addressing;
            s.signature = signature;
            s.read_timeout = options.timeout;
            s.connect_timeout = s.connect_timeout.min(options.timeout);
            // One attempt: the probe reports the provider as it is.
            s.retry.retries = 0;
            Upstream::new(s, budget.clone(), None).map_err(GatewayError::Internal)
        };
        let (a, v) = (settings.addressing, settings.signature);
        Ok(Self {
            configured: variant(a, v)?,
            path: variant(Addressing::Path, v)?,
            virtual_hosted: variant(Addressing::Virtual, v)?,
            sigv4: variant(a, SignatureVersion::V4)?,
            sigv2: variant(a, SignatureVersion::V2)?,
            options: options.clone(),
            run_id: run_id(),
        })
    }

    /// The checks that change nothing.
    async fn read_only(&self) -> Findings {
        let bucket = self.options.bucket.clone();
        let no_bucket = format!("s3ferry-probe-missing-{}", self.run_id);
        let head_bucket = |u: &Arc<Upstream>, b: String| {
            let u = u.clone();
            async move { answer_of(send(&u, Method::HEAD, &b, "", &[], HeaderMap::new(), Bytes::new()).await) }
        };
        let (path_style, virtual_style, sigv4, sigv2) = match &bucket {
            Some(b) => (
                head_bucket(&self.path, b.clone()).await,
                if endpoint_is_ip(&self.configured.settings) {
                    Answer::not_probed("the endpoint is an IP address: no bucket host names")
                } else {
                    head_bucket(&self.virtual_hosted, b.clone()).await
                },
                head_bucket(&self.sigv4, b.clone()).await,
                head_bucket(&self.sigv2, b.clone()).await,
            ),
            None => {
                let reason = Answer::not_probed("no --bucket given");
                (reason.clone(), reason.clone(), reason.clone(), reason)
            }
        };
        let missing_bucket_code = error_code_of(
            send(
                &self.configured,
                Method::GET,
                &no_bucket,
                "k",
                &[],
                HeaderMap::new(),
                Bytes::new(),
            )
            .await,
        );
        let (missing_key_code, list_objects_v2) = match &bucket {
            Some(b) => {
                let key = format!(".s3ferry-probe-missing-{}", self.run_id);
                let code = error_code_of(
                    send(
                        &self.configured,
                        Method::GET,
                        b,
                        &key,
                        &[],
                        HeaderMap::new(),
                        Bytes::new(),
                    )
                    .await,
                );
                (code, self.lists_v2(b).await)
            }
            None => (None, Answer::not_probed("no --bucket given")),
        };
        let not_written = || Answer::not_probed("read-only run (add --write)");
        Findings {
            provider: self.configured.settings.name.clone(),
            bucket,
            path_style,
            virtual_style,
            sigv4,
            sigv2,
            missing_key_code,
            missing_bucket_code,
            list_objects_v2,
            etag_case: None,
            checksums: ChecksumAlgorithm::ALL.iter().map(|a| (*a, not_written())).collect(),
            multipart_checksums: ChecksumAlgorithm::ALL.iter().map(|a| (*a, not_written())).collect(),
            unsigned_trailer: not_written(),
            delete_objects_without_md5: not_written(),
            if_none_match: not_written(),
            if_match: not_written(),
            oss_forbid_overwrite: not_written(),
            gcs_generation_match: not_written(),
            canned_acls: AWS_CANNED_ACLS
                .iter()
                .map(|a| ((*a).to_string(), not_written()))
                .collect(),
            grants: not_written(),
            acl_api: not_written(),
            storage_classes: AWS_STORAGE_CLASSES
                .iter()
                .map(|c| ((*c).to_string(), not_written()))
                .collect(),
            url_encoded_listings: not_written(),
            upload_part_copy: not_written(),
            literal_dot_segments: not_written(),
            notes: Vec::new(),
        }
    }

    /// Whether `list-type=2` is answered as ListObjectsV2 (a V1-only store ignores it and
    /// answers V1, without `KeyCount`).
    async fn lists_v2(&self, bucket: &str) -> Answer {
        let query = [("list-type", "2"), ("max-keys", "1")];
        seen_in(
            send(
                &self.configured,
                Method::GET,
                bucket,
                "",
                &query,
                HeaderMap::new(),
                Bytes::new(),
            )
            .await,
            &["<KeyCount>"],
        )
    }

    /// The checks that write, in a scratch prefix or bucket, and the cleanup.
    async fn write_checks(&self, findings: &mut Findings) {
        let (bucket, created) = match &self.options.bucket {
            Some(b) => (b.clone(), false),
            None => {
                let b = format!("s3ferry-probe-{}", self.run_id);
                let made = send(
                    &self.configured,
                    Method::PUT,
                    &b,
                    "",
                    &[],
                    HeaderMap::new(),
                    Bytes::new(),
                )
                .await;
                if answer_of(made) != Answer::Accepted {
                    findings.notes.push(format!(
                        "could not create a scratch bucket '{b}': give --bucket to probe in one"
                    ));
                    return;
                }
                (b, true)
            }
        };
        let scratch = Scratch {
            upstream: self.configured.clone(),
            bucket,
            prefix: format!(".s3ferry-probe-{}/", self.run_id),
        };
        self.object_checks(&scratch, findings).await;
        scratch.clean_up(created, &mut findings.notes).await;
    }

    async fn object_checks(&self, s: &Scratch, f: &mut Findings) {
        let base = s.key("base");
        let body = Bytes::from_static(b"s3ferry probe");
        let put = s.put(&base, HeaderMap::new(), body.clone()).await;
        let etag = match &put {
            Ok((status, headers, _)) if status.is_success() => header_text(headers, "etag"),
            _ => None,
        };
        let Some(etag) = etag else {
            f.notes.push(format!(
                "a plain PutObject in '{}' was refused ({}); no write check could run",
                s.bucket,
                describe(&answer_of(put))
            ));
            return;
        };
        f.etag_case = Some(etag_case_of(&etag));
        for (algorithm, answer) in &mut f.checksums {
            let mut h = HeaderMap::new();
            insert(&mut h, algorithm.header_name(), &algorithm.of(&body));
            *answer = answer_of(
                s.put(&s.key(&format!("sum-{}", algorithm.name())), h, body.clone())
                    .await,
            );
        }
        for (algorithm, answer) in &mut f.multipart_checksums {
            *answer = self.multipart_with(s, *algorithm).await;
        }
        f.unsigned_trailer = self.trailer_upload(s).await;
        f.delete_objects_without_md5 = self.delete_objects_without_md5(s).await;
        self.conditional_writes(s, &etag, f).await;
        for (acl, answer) in &mut f.canned_acls {
            let mut h = HeaderMap::new();
            insert(&mut h, "x-amz-acl", acl);
            *answer = answer_of(s.put(&s.key(&format!("acl-{acl}")), h, body.clone()).await);
        }
        let mut grant = HeaderMap::new();
        insert(
            &mut grant,
            "x-amz-grant-read",
            "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"",
        );
        f.grants = answer_of(s.put(&s.key("grant"), grant, body.clone()).await);
        f.acl_api = answer_of(
            s.send(Method::GET, &base, &[("acl", "")], HeaderMap::new(), Bytes::new())
                .await,
        );
        for (class, answer) in &mut f.storage_classes {
            *answer = self.storage_class(s, class, body.clone()).await;
        }
        f.url_encoded_listings = self.encoded_listing(s, body.clone()).await;
        f.upload_part_copy = self.upload_part_copy(s, &base).await;
        f.literal_dot_segments = self.dot_segments(s, body).await;
    }

    /// A two-part upload (5 MiB and 1 byte) with `algorithm`'s checksums, completed.
    async fn multipart_with(&self, s: &Scratch, algorithm: ChecksumAlgorithm) -> Answer {
        let key = s.key(&format!("multipart-{}", algorithm.name()));
        let mut create = HeaderMap::new();
        insert(&mut create, "x-amz-checksum-algorithm", algorithm.sdk_name());
        let created = s
            .send(Method::POST, &key, &[("uploads", "")], create, Bytes::new())
            .await;
        let upload_id = match &created {
            Ok((status, _, body)) if status.is_success() => xml_text(body, "UploadId"),
            _ => None,
        };
        let Some(upload_id) = upload_id else {
            return answer_of(created);
        };
        let parts = [Bytes::from(vec![b'p'; 5 * 1024 * 1024]), Bytes::from_static(b"q")];
        let mut completed = String::new();
        for (i, data) in parts.iter().enumerate() {
            let number = (i + 1).to_string();
            let sum = algorithm.of(data);
            let mut h = HeaderMap::new();
            insert(&mut h, algorithm.header_name(), &sum);
            let query = [("partNumber", number.as_str()), ("uploadId", upload_id.as_str())];
            let sent = s.send(Method::PUT, &key, &query, h, data.clone()).await;
            let etag = match &sent {
                Ok((status, headers, _)) if status.is_success() => header_text(headers, "etag"),
                _ => None,
            };
            let Some(etag) = etag else {
                s.abort(&key, &upload_id).await;
                return answer_of(sent);
            };
            let element = algorithm_element(algorithm);
            completed.push_str(&format!(
                "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag><{element}>{sum}</{element}></Part>",
                quick_xml::escape::escape(&etag)
            ));
        }
        let xml = format!("<CompleteMultipartUpload>{completed}</CompleteMultipartUpload>");
        let done = s
            .send(
                Method::POST,
                &key,
                &[("uploadId", upload_id.as_str())],
                HeaderMap::new(),
                Bytes::from(xml),
            )
            .await;
        let answer = match done {
            // S3 may answer a completion with 200 and an <Error> body.
            Ok((status, _, body)) if status.is_success() && contains(&body, "<Error>") => Answer::Refused {
                status: status.as_u16(),
                code: xml_text(&body, "Code").unwrap_or_default(),
            },
            other => answer_of(other),
        };
        if answer != Answer::Accepted {
            s.abort(&key, &upload_id).await;
        }
        answer
    }

    /// An unsigned aws-chunked upload with a CRC32 trailer, as SDKs send over TLS.
    async fn trailer_upload(&self, s: &Scratch) -> Answer {
        let data = b"s3ferry probe trailer";
        let crc = ChecksumAlgorithm::Crc32.of(data);
        let framed = format!(
            "{:x}\r\n{}\r\n0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n",
            data.len(),
            String::from_utf8_lossy(data)
        );
        let mut h = HeaderMap::new();
        insert(&mut h, "content-encoding", "aws-chunked");
        insert(&mut h, "x-amz-decoded-content-length", &data.len().to_string());
        insert(&mut h, "x-amz-trailer", "x-amz-checksum-crc32");
        insert(&mut h, "x-amz-sdk-checksum-algorithm", "CRC32");
        let key = s.key("trailer");
        let mut request = s.upstream.request(Method::PUT, &s.bucket, &key, Vec::new());
        h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(framed.len()));
        request.headers = h;
        request.body = crate::body::full(Bytes::from(framed));
        request.payload_hash = STREAMING_UNSIGNED_PAYLOAD_TRAILER.to_string();
        answer_of(exchange(&s.upstream, request).await)
    }

    async fn delete_objects_without_md5(&self, s: &Scratch) -> Answer {
        let xml = format!(
            "<Delete><Quiet>true</Quiet><Object><Key>{}</Key></Object></Delete>",
            quick_xml::escape::escape(s.key("never-written"))
        );
        let body = Bytes::from(xml);
        let mut h = HeaderMap::new();
        insert(&mut h, "x-amz-checksum-crc32", &ChecksumAlgorithm::Crc32.of(&body));
        insert(&mut h, "x-amz-sdk-checksum-algorithm", "CRC32");
        let mut request = s
            .upstream
            .request(Method::POST, &s.bucket, "", vec![("delete".into(), String::new())]);
        h.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        request.headers = h;
        request.payload_hash = hex_sha256(&body);
        request.body = crate::body::full(body);
        answer_of(exchange(&s.upstream, request).await)
    }

    /// AWS's conditional headers, then OSS's and GCS's native forms, on an existing key: each
    /// is honoured when the write is refused (412, or OSS's 409) and the object is unchanged.
    async fn conditional_writes(&self, s: &Scratch, etag: &str, f: &mut Findings) {
        let key = s.key("base");
        let attempt = |name: &'static str, value: String| {
            let key = key.clone();
            async move {
                let mut h = HeaderMap::new();
                insert(&mut h, name, &value);
                let sent = s.put(&key, h, Bytes::from_static(b"overwritten")).await;
                match sent {
                    Ok((status, _, _)) if status.is_success() => {
                        // Put the original back for the next condition.
                        let _ = s
                            .put(&key, HeaderMap::new(), Bytes::from_static(b"s3ferry probe"))
                            .await;
                        Answer::Ignored
                    }
                    Ok((status, _, body))
                        if status == StatusCode::PRECONDITION_FAILED || status == StatusCode::CONFLICT =>
                    {
                        let code = xml_text(&body, "Code").unwrap_or_default();
                        if code.is_empty() || code == "PreconditionFailed" || code == "FileAlreadyExists" {
                            Answer::Accepted
                        } else {
                            Answer::Refused {
                                status: status.as_u16(),
                                code,
                            }
                        }
                    }
                    other => answer_of(other),
                }
            }
        };
        f.if_none_match = attempt("if-none-match", "*".into()).await;
        // An ETag no object has (the real one is only needed to know the write went through).
        let other_etag = if etag.contains("ffffffff") {
            "\"00000000000000000000000000000000\""
        } else {
            "\"ffffffffffffffffffffffffffffffff\""
        };
        f.if_match = attempt("if-match", other_etag.to_string()).await;
        f.oss_forbid_overwrite = attempt("x-oss-forbid-overwrite", "true".into()).await;
        f.gcs_generation_match = attempt("x-goog-if-generation-match", "0".into()).await;
    }

    /// A PutObject with `class`, then a HEAD: the class was applied if the HEAD reports it
    /// (S3 reports STANDARD by leaving the header out).
    async fn storage_class(&self, s: &Scratch, class: &str, body: Bytes) -> Answer {
        let key = s.key(&format!("class-{class}"));
        let mut h = HeaderMap::new();
        insert(&mut h, "x-amz-storage-class", class);
        match s.put(&key, h, body).await {
            Ok((status, _, _)) if status.is_success() => {}
            other => return answer_of(other),
        }
        match s.send(Method::HEAD, &key, &[], HeaderMap::new(), Bytes::new()).await {
            Ok((status, headers, _)) if status.is_success() => {
                let reported = header_text(&headers, "x-amz-storage-class").unwrap_or_else(|| "STANDARD".into());
                if reported.eq_ignore_ascii_case(class) {
                    Answer::Accepted
                } else {
                    Answer::Ignored
                }
            }
            other => answer_of(other),
        }
    }

    /// A key with `+` and a space, listed with `encoding-type=url`: an honest provider returns
    /// it encoded (`a%2Bb+c` or `a%2Bb%20c`), not raw.
    async fn encoded_listing(&self, s: &Scratch, body: Bytes) -> Answer {
        let key = s.key("enc/a+b c");
        match s.put(&key, HeaderMap::new(), body).await {
            Ok((status, _, _)) if status.is_success() => {}
            other => return answer_of(other),
        }
        let listed = s.list(&s.key("enc/"), &[("encoding-type", "url")]).await;
        seen_in(listed, &["a%2Bb+c", "a%2Bb%20c"])
    }

    async fn upload_part_copy(&self, s: &Scratch, source_key: &str) -> Answer {
        let key = s.key("part-copy");
        let created = s
            .send(Method::POST, &key, &[("uploads", "")], HeaderMap::new(), Bytes::new())
            .await;
        let Some(upload_id) = (match &created {
            Ok((status, _, body)) if status.is_success() => xml_text(body, "UploadId"),
            _ => None,
        }) else {
            return answer_of(created);
        };
        let mut h = HeaderMap::new();
        let source = format!("/{}/{}", s.bucket, uri_encode(source_key.as_bytes(), true));
        insert(&mut h, "x-amz-copy-source", &source);
        let query = [("partNumber", "1"), ("uploadId", upload_id.as_str())];
        let copied = s.send(Method::PUT, &key, &query, h, Bytes::new()).await;
        s.abort(&key, &upload_id).await;
        match copied {
            Ok((status, _, body)) if status.is_success() && contains(&body, "<Error>") => Answer::Refused {
                status: status.as_u16(),
                code: xml_text(&body, "Code").unwrap_or_default(),
            },
            other => answer_of(other),
        }
    }

    /// `<prefix>dots/x/../y` written, then listed: stored literally when the listing has that
    /// very key (a normalising provider stores `<prefix>dots/y`).
    async fn dot_segments(&self, s: &Scratch, body: Bytes) -> Answer {
        let key = s.key("dots/x/../y");
        match s.put(&key, HeaderMap::new(), body).await {
            Ok((status, _, _)) if status.is_success() => {}
            other => return answer_of(other),
        }
        seen_in(s.list(&s.key("dots/"), &[]).await, &["dots/x/../y"])
    }
}

/// Where the write checks write.
struct Scratch {
    upstream: Arc<Upstream>,
    bucket: String,
    prefix: String,
}

impl Scratch {
    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    async fn send(
        &self,
        method: Method,
        key: &str,
        query: &[(&str, &str)],
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Reply, GatewayError> {
        send(&self.upstream, method, &self.bucket, key, query, headers, body).await
    }

    /// ListObjectsV2 of the keys under `prefix`, with `extra` parameters.
    async fn list(&self, prefix: &str, extra: &[(&str, &str)]) -> Result<Reply, GatewayError> {
        let mut query = vec![("list-type", "2"), ("prefix", prefix)];
        query.extend_from_slice(extra);
        self.send(Method::GET, "", &query, HeaderMap::new(), Bytes::new()).await
    }

    async fn put(&self, key: &str, headers: HeaderMap, body: Bytes) -> Result<Reply, GatewayError> {
        self.send(Method::PUT, key, &[], headers, body).await
    }

    async fn abort(&self, key: &str, upload_id: &str) {
        let _ = self
            .send(
                Method::DELETE,
                key,
                &[("uploadId", upload_id)],
                HeaderMap::new(),
                Bytes::new(),
            )
            .await;
    }

    /// Deletes every key under the scratch prefix (and the scratch bucket), noting what stays.
    async fn clean_up(&self, remove_bucket: bool, notes: &mut Vec<String>) {
        // Each round deletes what a listing shows; a few rounds cover a provider whose listing
        // lags behind its deletes.
        for round in 0..=10 {
            let keys = match self.list(&self.prefix, &[]).await {
                Ok((status, _, body)) if status.is_success() => xml_all(&body, "Key"),
                other => {
                    notes.push(format!(
                        "s3://{}/{} could not be listed to delete the probe's objects ({})",
                        self.bucket,
                        self.prefix,
                        describe(&answer_of(other))
                    ));
                    break;
                }
            };
            if keys.is_empty() {
                break;
            }
            if round == 10 {
                notes.push(format!(
                    "{} probe objects could not be deleted under s3://{}/{}",
                    keys.len(),
                    self.bucket,
                    self.prefix
                ));
                break;
            }
            for key in keys {
                let _ = self
                    .send(Method::DELETE, &key, &[], HeaderMap::new(), Bytes::new())
                    .await;
            }
        }
        if remove_bucket {
            let gone = send(
                &self.upstream,
                Method::DELETE,
                &self.bucket,
                "",
                &[],
                HeaderMap::new(),
                Bytes::new(),
            )
            .await;
            if answer_of(gone) != Answer::Accepted {
                notes.push(format!("the scratch bucket '{}' could not be removed", self.bucket));
            }
        }
    }
}

/// A provider's answer, read whole (probe answers are small).
type Reply = (StatusCode, HeaderMap, Buffered);

/// One request, in AWS's form, signed as the upstream is configured.
async fn send(
    upstream: &Upstream,
    method: Method,
    bucket: &str,
    key: &str,
    query: &[(&str, &str)],
    mut headers: HeaderMap,
    body: Bytes,
) -> Result<Reply, GatewayError> {
    let query = query
        .iter()
        .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
        .collect();
    let mut request = upstream.request(method.clone(), bucket, key, query);
    if method == Method::PUT || method == Method::POST {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        request.payload_hash = if body.is_empty() {
            EMPTY_PAYLOAD_SHA256.to_string()
        } else {
            hex_sha256(&body)
        };
    } else if !body.is_empty() {
        request.payload_hash = UNSIGNED_PAYLOAD.to_string();
    }
    request.headers = headers;
    request.body = crate::body::full(body);
    exchange(upstream, request).await
}

async fn exchange(upstream: &Upstream, request: OutgoingRequest) -> Result<Reply, GatewayError> {
    let response = Exchange::new(request).send_collect(upstream, MAX_XML_BODY).await?;
    let (parts, body) = response.into_parts();
    Ok((parts.status, parts.headers, body))
}

/// For a listing that shows whether the provider did something: accepted when a 2xx answer
/// holds any of `needles`, ignored when it holds none, else what [`answer_of`] says.
fn seen_in(reply: Result<Reply, GatewayError>, needles: &[&str]) -> Answer {
    match reply {
        Ok((status, _, body)) if status.is_success() => {
            if needles.iter().any(|n| contains(&body, n)) {
                Answer::Accepted
            } else {
                Answer::Ignored
            }
        }
        other => answer_of(other),
    }
}

/// Accepted on 2xx; refused with the status and S3 code otherwise; not probed without an answer.
fn answer_of(reply: Result<Reply, GatewayError>) -> Answer {
    match reply {
        Ok((status, _, _)) if status.is_success() => Answer::Accepted,
        Ok((status, _, body)) => Answer::Refused {
            status: status.as_u16(),
            code: xml_text(&body, "Code").unwrap_or_default(),
        },
        Err(e) => Answer::not_probed(format!("no answer: {e}")),
    }
}

fn error_code_of(reply: Result<Reply, GatewayError>) -> Option<String> {
    match reply {
        Ok((status, _, body)) if !status.is_success() => {
            Some(xml_text(&body, "Code").unwrap_or_else(|| format!("(status {} without a body)", status.as_u16())))
        }
        _ => None,
    }
}

/// One line for an answer, in the operator's words.
pub fn describe(answer: &Answer) -> String {
    match answer {
        Answer::Accepted => "accepted".into(),
        Answer::Refused { status, code } if code.is_empty() => format!("refused ({status})"),
        Answer::Refused { status, code } => format!("refused ({status} {code})"),
        Answer::Ignored => "accepted but ignored".into(),
        Answer::NotProbed { reason } => format!("not probed: {reason}"),
    }
}

fn etag_case_of(etag: &str) -> EtagCase {
    if etag.bytes().any(|b| b.is_ascii_uppercase() && b.is_ascii_hexdigit()) {
        EtagCase::Upper
    } else {
        EtagCase::Lower
    }
}

/// The `<ChecksumXXX>` element of a part in CompleteMultipartUpload.
fn algorithm_element(algorithm: ChecksumAlgorithm) -> &'static str {
    match algorithm {
        ChecksumAlgorithm::Crc32 => "ChecksumCRC32",
        ChecksumAlgorithm::Crc32c => "ChecksumCRC32C",
        ChecksumAlgorithm::Crc64Nvme => "ChecksumCRC64NVME",
        ChecksumAlgorithm::Sha1 => "ChecksumSHA1",
        ChecksumAlgorithm::Sha256 => "ChecksumSHA256",
    }
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn contains(body: &[u8], needle: &str) -> bool {
    body.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The text of the first `<name>` element (unescaped).
fn xml_text(body: &[u8], name: &str) -> Option<String> {
    xml_all(body, name).into_iter().next()
}

/// The text of every `<name>` element, in order (unescaped).
fn xml_all(body: &[u8], name: &str) -> Vec<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut out = Vec::new();
    let mut inside = false;
    let mut text = String::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) if e.local_name().as_ref() == name.as_bytes() => {
                inside = true;
                text.clear();
            }
            Ok(Event::Text(t)) if inside => {
                if let Ok(s) = t.unescape() {
                    text.push_str(&s);
                }
            }
            Ok(Event::End(e)) if inside && e.local_name().as_ref() == name.as_bytes() => {
                inside = false;
                out.push(std::mem::take(&mut text));
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    out
}

/// Whether the endpoint's host is an IP address, where `<bucket>.<host>` names nothing.
fn endpoint_is_ip(settings: &UpstreamSettings) -> bool {
    settings.endpoint.host().is_some_and(|h| {
        h.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok()
    })
}

/// A short id of this run, for scratch names no one else uses.
fn run_id() -> String {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let mixed = nanos ^ i128::from(std::process::id()) << 64;
    format!("{:012x}", (mixed as u128) & 0xffff_ffff_ffff)
}
