//! Browser form uploads (POST Object, <https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html>):
//! a `multipart/form-data` POST to a bucket, whose signed policy says what the form may upload.
//!
//! s3s would read the whole form before checking its signature, so the edge takes these
//! requests before s3s sees them, and [`upload_form`] does, in order:
//!
//! 1. read the fields before the file, at most 20 KB of them ([`form`]), with an idle timeout
//!    on every read;
//! 2. check the policy's signature (SigV4 or SigV2, constant time), its expiration and every
//!    condition, and that every field is covered by one ([`policy`]);
//! 3. ask [`UploadGrant`] whether the signer may write that key;
//! 4. write the file to a spool file, within the policy's `content-length-range` and s3ferry's
//!    caps ([`spool`]): nothing reaches the provider before the whole file has arrived and
//!    met the policy;
//! 5. hand a PutObject of the spool file, with the form's object headers, to the gateway, which
//!    routes, translates, signs and sends it like any other PutObject (and checks checksum
//!    fields before a provider that stores first keeps the bytes);
//! 6. answer as S3 does: 204, or `success_action_status` 200 / 201 (`PostResponse`), or a 303
//!    to `success_action_redirect`.

pub mod form;
pub mod policy;
pub mod spool;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body_util::BodyExt as _;

use crate::access::{self, AccessPolicy, Action, Identity, Object};
use crate::access_log::RequestContext;
use crate::auth::ClientAuth;
use crate::checksum::ChecksumAlgorithm;
use crate::config::PostUploadConfig;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::s3::encoding::uri_encode;
use crate::s3::operation::Operation;
use crate::target::ClientTarget;
use form::{FormError, FormEvent, FormParser};
use policy::{FormFields, PolicySigner};
use spool::{SpoolBudget, SpoolWriter};

/// How long the form's body may send nothing before the upload is abandoned.
const FORM_READ_IDLE: Duration = Duration::from_secs(30);

/// Form fields that become the object's headers as they are (AWS's list of POST fields that
/// are object headers, in the page cited in the module documentation).
const OBJECT_HEADER_FIELDS: &[&str] = &[
    "cache-control",
    "content-type",
    "content-disposition",
    "content-encoding",
    "expires",
    "x-amz-storage-class",
    "x-amz-website-redirect-location",
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-context",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-server-side-encryption-customer-key",
    "x-amz-server-side-encryption-customer-key-md5",
];

/// Whether the signer of a form may write `key` in `bucket` (a routed bucket), setting an ACL
/// when `sets_acl`. The one place a form upload is authorised; `None` is an unsigned
/// (anonymous) form.
pub trait UploadGrant: Send + Sync {
    fn may_put(
        &self,
        signer: Option<&PolicySigner>,
        bucket: &str,
        key: &str,
        sets_acl: bool,
    ) -> Result<(), GatewayError>;
}

/// The signer's `[[credentials]]` grants (`access`): a form is a PutObject, so it needs
/// `upload` access to the key, and `admin` when it sets an ACL, as a PutObject with `x-amz-acl`
/// does. Unsigned forms are refused on every bucket, anonymous ones included: s3ferry would
/// write the file with the provider's key, lending it to anyone.
pub struct KeyGrants<'a>(pub &'a AccessPolicy);

impl UploadGrant for KeyGrants<'_> {
    fn may_put(
        &self,
        signer: Option<&PolicySigner>,
        bucket: &str,
        key: &str,
        sets_acl: bool,
    ) -> Result<(), GatewayError> {
        let Some(signer) = signer else {
            return Err(GatewayError::AccessDenied(
                "Access Denied: anonymous form uploads are not allowed (sign the form's policy with a key of s3ferry's [[credentials]])"
                    .into(),
            ));
        };
        let action = if sets_acl {
            Action::ObjectAdmin
        } else {
            Action::ObjectUpload
        };
        access::decide(
            self.0,
            Identity::Key(&signer.access_key),
            action,
            bucket,
            Object::Key(key),
        )?;
        Ok(())
    }
}

/// What a form upload needs from the running gateway.
pub struct FormUploadContext<'a> {
    pub gateway: &'a Gateway,
    pub keys: &'a ClientAuth,
    pub grant: &'a dyn UploadGrant,
    pub config: &'a PostUploadConfig,
    pub spool: &'a SpoolBudget,
    /// `http` or `https`, for the `Location` S3 answers with.
    pub scheme: &'static str,
}

/// Takes a form upload to a routed bucket from its request to its answer. Errors are the
/// client's answer; nothing reaches a provider before the whole file has met the policy.
pub async fn upload_form(
    req: http::Request<s3s::Body>,
    target: ClientTarget,
    up: FormUploadContext<'_>,
    ctx: &RequestContext,
) -> Result<http::Response<s3s::Body>, GatewayError> {
    let Some(bucket) = target.bucket.clone().filter(|_| target.key.is_empty()) else {
        return Err(GatewayError::InvalidRequest(
            "a form upload (POST Object) goes to a bucket's URL, with the key in the form".into(),
        ));
    };
    let boundary = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(form::boundary_of)
        .ok_or_else(|| GatewayError::MalformedPostRequest("the Content-Type has no multipart boundary".into()))?;
    ctx.record(|f| {
        f.operation = Operation::PostObject.as_str();
        f.bucket = Some(bucket.clone());
    });
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut body = req.into_body();
    let mut parser = FormParser::new(&boundary);

    let (fields, filename) = read_fields(&mut parser, &mut body).await?;
    let signer = policy::verify_signature(&fields, up.keys)?;
    ctx.record(|f| f.client_key_id = signer.as_ref().map(|s| s.access_key.clone()));
    let (key, length_range) = match (&signer, fields.get("policy")) {
        (Some(_), Some(encoded)) => {
            let policy = policy::parse_policy(encoded)?;
            let now = time::OffsetDateTime::now_utc();
            let checked = policy::check_policy(&policy, &fields, &bucket, &filename, now)?;
            (checked.key, checked.length_range)
        }
        _ => (policy::upload_key(&fields, &filename)?, None),
    };
    up.grant
        .may_put(signer.as_ref(), &bucket, &key, fields.get("acl").is_some())?;
    up.gateway.check_routed(&bucket)?;
    let headers = object_headers(&fields)?;

    let (min, max) = length_range.unwrap_or((0, up.config.max_file_bytes));
    let mut writer = SpoolWriter::create(&up.config.spool_dir, max.min(up.config.max_file_bytes), up.spool).await?;
    spool_file(&mut parser, &mut body, &mut writer).await?;
    drop(body);
    let spooled = writer.finish().await?;
    if spooled.length < min {
        return Err(GatewayError::EntityTooSmall);
    }

    let target = ClientTarget {
        bucket: Some(bucket.clone()),
        key: key.clone(),
    };
    let put = put_request(target.clone(), headers, spooled, signer.as_ref(), up.keys, ctx)?;
    let answer = up.gateway.answer(put).await;
    // The gateway logged the PutObject it sent; the client's operation was a POST Object.
    ctx.record(|f| f.operation = Operation::PostObject.as_str());
    let status = answer.status.unwrap_or(StatusCode::OK);
    if !status.is_success() {
        let mut response = http::Response::new(answer.output);
        *response.status_mut() = status;
        *response.headers_mut() = answer.headers;
        return Ok(response);
    }
    let etag = answer
        .headers
        .get(http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let location = object_location(up.scheme, &host, &target);
    Ok(success_answer(&fields, &bucket, &key, &etag, &location))
}

/// Reads the form up to the file part: its fields and the file's name.
async fn read_fields(parser: &mut FormParser, body: &mut s3s::Body) -> Result<(FormFields, String), GatewayError> {
    let mut fields = FormFields::default();
    loop {
        while let Some(event) = parser.next_event().map_err(form_error)? {
            match event {
                FormEvent::Field { name, value } => fields.add(&name, value)?,
                FormEvent::FileStart { filename, .. } => return Ok((fields, filename)),
                FormEvent::FileData(_) | FormEvent::FileEnd => {
                    return Err(GatewayError::Internal("file data before the file part".into()));
                }
            }
        }
        match next_piece(body).await? {
            Some(piece) => parser.push(&piece),
            None => {
                parser.finish().map_err(form_error)?;
                return Err(form_error(FormError::Malformed("the body ended before the file part")));
            }
        }
    }
}

/// Writes the file part to the spool file, up to its closing boundary.
async fn spool_file(
    parser: &mut FormParser,
    body: &mut s3s::Body,
    writer: &mut SpoolWriter,
) -> Result<(), GatewayError> {
    loop {
        while let Some(event) = parser.next_event().map_err(form_error)? {
            match event {
                FormEvent::FileData(data) => writer.write(&data).await?,
                // Fields after the file are ignored, as AWS ignores them; the rest of the body
                // is not read.
                FormEvent::FileEnd => return Ok(()),
                FormEvent::Field { .. } | FormEvent::FileStart { .. } => {
                    return Err(GatewayError::Internal("a form part after the file part".into()));
                }
            }
        }
        match next_piece(body).await? {
            Some(piece) => parser.push(&piece),
            None => return parser.finish().map_err(form_error),
        }
    }
}

/// The next piece of the client's body, within [`FORM_READ_IDLE`].
async fn next_piece(body: &mut s3s::Body) -> Result<Option<Bytes>, GatewayError> {
    loop {
        match tokio::time::timeout(FORM_READ_IDLE, body.frame()).await {
            Err(_) => {
                return Err(GatewayError::InvalidRequest(format!(
                    "the form upload sent nothing for {} s",
                    FORM_READ_IDLE.as_secs()
                )));
            }
            Ok(None) => return Ok(None),
            Ok(Some(Err(_))) => return Err(GatewayError::IncompleteBody),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

fn form_error(e: FormError) -> GatewayError {
    match e {
        FormError::PreFileTooLarge => GatewayError::MaxPostPreDataLengthExceeded,
        FormError::Malformed(reason) => GatewayError::MalformedPostRequest(reason.to_string()),
    }
}

/// The object's headers from the form: content headers, metadata, storage class, encryption,
/// checksums, the canned ACL (`acl`, sent as `x-amz-acl`) and the tags (`tagging`, a
/// `<Tagging>` document, sent as `x-amz-tagging`).
fn object_headers(fields: &FormFields) -> Result<HeaderMap, GatewayError> {
    let mut headers = HeaderMap::new();
    for (name, value) in fields.iter() {
        if name == "tagging" {
            let tags = crate::rewrite::tagging::parse_tag_set(value.as_bytes())
                .map_err(|e| GatewayError::MalformedXml(e.to_string()))?;
            if let Some(tagging) = crate::rewrite::tagging::tagging_header_value(&tags) {
                let value = HeaderValue::from_str(&tagging)
                    .map_err(|_| GatewayError::Internal("an encoded tag set is a header value".into()))?;
                headers.insert("x-amz-tagging", value);
            }
            continue;
        }
        let header = if name == "acl" {
            "x-amz-acl"
        } else if OBJECT_HEADER_FIELDS.contains(&name)
            || name.starts_with("x-amz-meta-")
            || ChecksumAlgorithm::from_header_name(name).is_some()
        {
            name
        } else {
            continue;
        };
        let header = HeaderName::from_bytes(header.as_bytes())
            .map_err(|_| GatewayError::InvalidArgument(format!("'{name}' is not a valid header name")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| GatewayError::InvalidArgument(format!("the value of '{name}' is not a valid header value")))?;
        headers.insert(header, value);
    }
    Ok(headers)
}

/// The PutObject the gateway sends for the form: the spool file with its length and SHA-256
/// (the provider request is signed with it), the object's headers, and the signer as the
/// request's identity.
fn put_request(
    target: ClientTarget,
    mut headers: HeaderMap,
    spooled: spool::Spooled,
    signer: Option<&PolicySigner>,
    keys: &ClientAuth,
    ctx: &RequestContext,
) -> Result<s3s::S3Request<s3s::Body>, GatewayError> {
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(spooled.length));
    let sha =
        HeaderValue::from_str(&spooled.sha256).map_err(|_| GatewayError::Internal("hex is a header value".into()))?;
    headers.insert("x-amz-content-sha256", sha);
    let uri = format!("/{}/{}", target.bucket.as_deref().unwrap_or(""), target.encoded_key())
        .parse()
        .map_err(|_| GatewayError::Internal("an encoded key makes a valid path".into()))?;
    let mut extensions = http::Extensions::new();
    extensions.insert(target);
    extensions.insert(ctx.clone());
    let credentials = signer.and_then(|s| {
        keys.secret(&s.access_key).map(|secret| s3s::auth::Credentials {
            access_key: s.access_key.clone(),
            secret_key: secret.clone(),
        })
    });
    Ok(s3s::S3Request {
        input: s3s::Body::http_body_unsync(spooled.body),
        method: http::Method::PUT,
        uri,
        headers,
        extensions,
        credentials,
        region: None,
        service: None,
        trailing_headers: None,
    })
}

/// The object's URL as S3 gives it in `Location`: virtual-host style when the form was posted
/// that way (the host starts with the bucket), else path style.
fn object_location(scheme: &str, host: &str, target: &ClientTarget) -> String {
    let bucket = target.bucket.as_deref().unwrap_or("");
    let key = target.encoded_key();
    if host.starts_with(&format!("{bucket}.")) {
        format!("{scheme}://{host}/{key}")
    } else {
        format!("{scheme}://{host}/{bucket}/{key}")
    }
}

/// S3's answer to a stored form: a 303 to `success_action_redirect` (or the older `redirect`)
/// with `bucket`, `key` and `etag`; else `success_action_status` 200 (empty) or 201 (a
/// `PostResponse` document); else 204. ETag and Location go with every one.
fn success_answer(
    fields: &FormFields,
    bucket: &str,
    key: &str,
    etag: &str,
    location: &str,
) -> http::Response<s3s::Body> {
    let redirect = fields
        .get("success_action_redirect")
        .or_else(|| fields.get("redirect"))
        .filter(|r| r.starts_with("http://") || r.starts_with("https://"));
    let (status, body, content_type) = if let Some(redirect) = redirect {
        let separator = if redirect.contains('?') { '&' } else { '?' };
        let to = format!(
            "{redirect}{separator}bucket={}&key={}&etag={}",
            uri_encode(bucket.as_bytes(), false),
            uri_encode(key.as_bytes(), false),
            uri_encode(etag.as_bytes(), false)
        );
        let mut response = http::Response::new(s3s::Body::empty());
        *response.status_mut() = StatusCode::SEE_OTHER;
        if let Ok(value) = HeaderValue::from_str(&to) {
            response.headers_mut().insert(http::header::LOCATION, value);
        }
        add_etag(&mut response, etag);
        return response;
    } else {
        match fields.get("success_action_status") {
            Some("200") => (StatusCode::OK, Bytes::new(), None),
            Some("201") => (
                StatusCode::CREATED,
                Bytes::from(post_response_xml(location, bucket, key, etag)),
                Some("application/xml"),
            ),
            _ => (StatusCode::NO_CONTENT, Bytes::new(), None),
        }
    };
    let mut response = http::Response::new(s3s::Body::from(body));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(http::header::LOCATION, value);
    }
    add_etag(&mut response, etag);
    response
}

fn add_etag(response: &mut http::Response<s3s::Body>, etag: &str) {
    if let Ok(value) = HeaderValue::from_str(etag)
        && !etag.is_empty()
    {
        response.headers_mut().insert(http::header::ETAG, value);
    }
}

/// The `PostResponse` document of `success_action_status` 201.
fn post_response_xml(location: &str, bucket: &str, key: &str, etag: &str) -> String {
    use quick_xml::escape::escape;
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
        escape(location),
        escape(bucket),
        escape(key),
        escape(etag)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> FormFields {
        let mut f = FormFields::default();
        for (n, v) in pairs {
            f.add(n, (*v).to_string()).unwrap();
        }
        f
    }

    #[test]
    fn success_answers_follow_the_form() {
        let etag = "\"abc\"";
        let loc = "http://h/b/k";
        let status = |f: &[(&str, &str)]| success_answer(&fields(f), "b", "a b", etag, loc).status();
        assert_eq!(status(&[]), StatusCode::NO_CONTENT);
        assert_eq!(status(&[("success_action_status", "200")]), StatusCode::OK);
        assert_eq!(status(&[("success_action_status", "201")]), StatusCode::CREATED);
        assert_eq!(status(&[("success_action_status", "404")]), StatusCode::NO_CONTENT);
        let redirect = success_answer(
            &fields(&[("success_action_redirect", "http://example.com/done?x=1")]),
            "b",
            "a b",
            etag,
            loc,
        );
        assert_eq!(redirect.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            redirect.headers()[http::header::LOCATION],
            "http://example.com/done?x=1&bucket=b&key=a%20b&etag=%22abc%22"
        );
    }

    #[test]
    fn object_headers_are_the_allowed_fields_only() {
        let f = fields(&[
            ("Content-Type", "text/plain"),
            ("acl", "public-read"),
            ("x-amz-meta-color", "blue"),
            ("x-amz-checksum-crc32", "AAAAAA=="),
            ("success_action_status", "201"),
            ("x-amz-credential", "k/d/r/s3/aws4_request"),
            ("x-goog-acl", "public-read"),
            ("x-ignore-me", "1"),
        ]);
        let headers = object_headers(&f).unwrap();
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["content-type", "x-amz-acl", "x-amz-checksum-crc32", "x-amz-meta-color"]
        );
        let tagged = object_headers(&fields(&[(
            "tagging",
            "<Tagging><TagSet><Tag><Key>a b</Key><Value>1</Value></Tag></TagSet></Tagging>",
        )]))
        .unwrap();
        assert_eq!(tagged["x-amz-tagging"], "a%20b=1");
        assert!(object_headers(&fields(&[("tagging", "<Tagging></Tag>")])).is_err());
    }
}
