//! One error type for everything the gateway itself refuses or fails at, rendered as an S3 XML
//! `<Error>` with a request id in exactly one place ([`render_error`]).
//!
//! Errors the client-verification front door (s3s) produces are re-rendered through the same
//! function at the edge (see `server`), so every error a client sees has the same shape.
//! Errors an upstream provider returns are relayed as they are (see `gateway`).
//!
//! # What a client is told, and what only the log is told
//! An error has two texts. [`GatewayError::client_message`] is what the client reads in
//! `<Message>`; `Display` is the full detail, which goes to the server log (at warn level, with
//! the request id, where the gateway fails a request) and nowhere else. A client may read:
//! - the names it used itself: its bucket, its key, its headers and parameters;
//! - the configured *name* of a provider (`provider 'old-s3' could not be reached`) and of a
//!   dialect, and the config keys that change a behaviour: the operator chose those names, and
//!   they tell a client's operator what to look at;
//! - a generic cause: unreachable, timed out, an answer s3ferry cannot relay, an internal error.
//!
//! A client never reads, because it could not have named them itself and they map the
//! infrastructure behind the gateway: upstream bucket names (a renamed route's, a migration's
//! old and new bucket), s3ferry's reserved `.s3ferry/` keys and tombstones, provider endpoints,
//! hosts, ports and addresses, and transport detail (TLS, DNS and connection error chains, OS
//! errors). Those live only in the `cause` of the upstream variants and in [`GatewayError::Internal`],
//! which [`GatewayError::client_message`] leaves out. No text of either kind carries a secret or
//! a signature; log lines other than the access log carry no object key either, so causes name
//! an operation and an upstream bucket, never a key.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

/// Who caused an error: decides logging level and which side is blamed in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Client,
    Upstream,
    Internal,
}

/// What went wrong, with enough context to tell the user what to do. Messages never contain
/// secrets or signatures.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("The specified bucket is not routed by this gateway: add a [[buckets]] route for it (or a \"*\" route)")]
    NoSuchBucket { bucket: String },

    #[error("{0}")]
    InvalidRequest(String),

    #[error("{0}")]
    InvalidArgument(String),

    /// A request body that is not the XML its operation takes, or breaks a limit of its schema
    /// (more than 1,000 objects in a DeleteObjects): AWS's answer to both.
    #[error("The XML you provided was not well-formed or did not validate against our published schema: {0}")]
    MalformedXml(String),

    #[error("The specified key does not exist.")]
    NoSuchKey { key: String },

    #[error("At least one of the pre-conditions you specified did not hold")]
    PreconditionFailed,

    #[error("{0}")]
    AccessDenied(String),

    #[error("{0}")]
    InvalidUri(String),

    #[error("{0}")]
    InvalidBucketName(String),

    #[error(
        "The AWS Access Key Id you provided does not exist in our records (it is not in s3ferry's [[credentials]])."
    )]
    InvalidAccessKeyId,

    #[error(
        "The request signature we calculated does not match the signature you provided. Check your key and signing method."
    )]
    SignatureDoesNotMatch,

    /// A signature dated too far from now (AWS allows 15 minutes either way).
    #[error("{0}")]
    RequestTimeTooSkewed(String),

    /// A presigned URL's parameters break AWS's rules (e.g. `X-Amz-Expires` over a week).
    #[error("{0}")]
    AuthorizationQueryParametersError(String),

    /// An `Authorization` header that does not follow AWS's grammar or rules.
    #[error("{0}")]
    AuthorizationHeaderMalformed(String),

    #[error("{0}")]
    NotImplemented(String),

    /// An ACL the provider's dialect cannot express, refused by the `acl.unsupported` policy.
    #[error("{0}")]
    AclNotSupported(String),

    #[error("The request body did not match its checksum: {0}")]
    BadDigest(String),

    #[error("The provided 'x-amz-content-sha256' header does not match what was computed")]
    ContentSha256Mismatch,

    #[error(
        "The request signature we calculated does not match the signature you provided (aws-chunked chunk or trailer signature). Check your key and signing method"
    )]
    ChunkSignatureMismatch,

    #[error("You did not provide the number of bytes specified by the Content-Length HTTP header")]
    IncompleteBody,

    /// An upload whose length is stated nowhere (`Transfer-Encoding: chunked` without
    /// aws-chunked framing, an HTTP/2 stream without `content-length`): providers need the
    /// length before the first byte, and AWS refuses such a PUT with this error.
    #[error("You must provide the Content-Length HTTP header.")]
    MissingContentLength,

    /// A `Content-MD5` that is not the base64 of 16 bytes.
    #[error("The Content-MD5 you specified is not valid.")]
    InvalidDigest,

    #[error("Upstream provider '{provider}' is unreachable: {cause}")]
    UpstreamUnreachable { provider: String, cause: String },

    /// The provider's TLS certificate did not verify: nothing was sent. Its own variant so the
    /// client learns what to fix without reading the TLS detail, which stays in the log.
    #[error("Upstream provider '{provider}' presented a TLS certificate that does not verify: {cause}")]
    UpstreamCertificateRejected { provider: String, cause: String },

    #[error("Upstream provider '{provider}' did not answer within {seconds} s")]
    UpstreamTimeout { provider: String, seconds: u64 },

    #[error("Upstream provider '{provider}' sent a response s3ferry cannot relay: {cause}")]
    UpstreamProtocol { provider: String, cause: String },

    /// A browser form upload (POST Object) larger than its policy's `content-length-range`
    /// or s3ferry's `post_upload.max_file_bytes`.
    #[error("Your proposed upload exceeds the maximum allowed size")]
    EntityTooLarge,

    /// A browser form upload smaller than its policy's `content-length-range`.
    #[error("Your proposed upload is smaller than the minimum allowed size")]
    EntityTooSmall,

    /// A form upload whose body is not well-formed `multipart/form-data`.
    #[error("The body of your POST request is not well-formed multipart/form-data. {0}")]
    MalformedPostRequest(String),

    /// A form upload whose fields before the file exceed 20 KB, AWS's limit.
    #[error("Your POST request fields preceding the upload file were too large.")]
    MaxPostPreDataLengthExceeded,

    /// A form upload's policy that is not the JSON document AWS specifies.
    #[error("Invalid Policy: {0}")]
    InvalidPolicyDocument(String),

    #[error("Internal error: {0}")]
    Internal(String),

    /// No room in the budget for bodies read whole (`server.max_buffered_body_bytes`): what AWS
    /// answers when it is overloaded, with a hint to retry.
    #[error("Please reduce your request rate.")]
    SlowDown,

    /// An error answer of a provider that s3ferry had to read (to decide what to do) and now
    /// passes on with the provider's status and code.
    #[error("{message}")]
    Relayed {
        status: StatusCode,
        code: String,
        message: String,
    },
}

impl GatewayError {
    /// The S3 error code and HTTP status AWS would give for this condition.
    pub fn code_and_status(&self) -> (&'static str, StatusCode) {
        match self {
            Self::NoSuchBucket { .. } => ("NoSuchBucket", StatusCode::NOT_FOUND),
            Self::InvalidRequest(_) => ("InvalidRequest", StatusCode::BAD_REQUEST),
            Self::InvalidArgument(_) => ("InvalidArgument", StatusCode::BAD_REQUEST),
            Self::MalformedXml(_) => ("MalformedXML", StatusCode::BAD_REQUEST),
            Self::NoSuchKey { .. } => ("NoSuchKey", StatusCode::NOT_FOUND),
            Self::PreconditionFailed => ("PreconditionFailed", StatusCode::PRECONDITION_FAILED),
            Self::AccessDenied(_) => ("AccessDenied", StatusCode::FORBIDDEN),
            Self::InvalidUri(_) => ("InvalidURI", StatusCode::BAD_REQUEST),
            Self::InvalidBucketName(_) => ("InvalidBucketName", StatusCode::BAD_REQUEST),
            Self::InvalidAccessKeyId => ("InvalidAccessKeyId", StatusCode::FORBIDDEN),
            Self::SignatureDoesNotMatch => ("SignatureDoesNotMatch", StatusCode::FORBIDDEN),
            Self::RequestTimeTooSkewed(_) => ("RequestTimeTooSkewed", StatusCode::FORBIDDEN),
            Self::AuthorizationQueryParametersError(_) => {
                ("AuthorizationQueryParametersError", StatusCode::BAD_REQUEST)
            }
            Self::AuthorizationHeaderMalformed(_) => ("AuthorizationHeaderMalformed", StatusCode::BAD_REQUEST),
            Self::NotImplemented(_) => ("NotImplemented", StatusCode::NOT_IMPLEMENTED),
            Self::AclNotSupported(_) => ("AccessControlListNotSupported", StatusCode::BAD_REQUEST),
            Self::BadDigest(_) => ("BadDigest", StatusCode::BAD_REQUEST),
            Self::ContentSha256Mismatch => ("XAmzContentSHA256Mismatch", StatusCode::BAD_REQUEST),
            Self::ChunkSignatureMismatch => ("SignatureDoesNotMatch", StatusCode::FORBIDDEN),
            Self::IncompleteBody => ("IncompleteBody", StatusCode::BAD_REQUEST),
            Self::MissingContentLength => ("MissingContentLength", StatusCode::LENGTH_REQUIRED),
            Self::InvalidDigest => ("InvalidDigest", StatusCode::BAD_REQUEST),
            Self::UpstreamUnreachable { .. } | Self::UpstreamCertificateRejected { .. } => {
                ("ServiceUnavailable", StatusCode::SERVICE_UNAVAILABLE)
            }
            Self::UpstreamTimeout { .. } => ("GatewayTimeout", StatusCode::GATEWAY_TIMEOUT),
            Self::UpstreamProtocol { .. } => ("BadGateway", StatusCode::BAD_GATEWAY),
            Self::EntityTooLarge => ("EntityTooLarge", StatusCode::BAD_REQUEST),
            Self::EntityTooSmall => ("EntityTooSmall", StatusCode::BAD_REQUEST),
            Self::MalformedPostRequest(_) => ("MalformedPOSTRequest", StatusCode::BAD_REQUEST),
            Self::MaxPostPreDataLengthExceeded => ("MaxPostPreDataLengthExceeded", StatusCode::BAD_REQUEST),
            Self::InvalidPolicyDocument(_) => ("InvalidPolicyDocument", StatusCode::BAD_REQUEST),
            Self::Internal(_) => ("InternalError", StatusCode::INTERNAL_SERVER_ERROR),
            Self::SlowDown => ("SlowDown", StatusCode::SERVICE_UNAVAILABLE),
            Self::Relayed { status, .. } => ("", *status),
        }
    }

    pub fn origin(&self) -> Origin {
        match self {
            Self::NoSuchBucket { .. }
            | Self::InvalidRequest(_)
            | Self::InvalidArgument(_)
            | Self::MalformedXml(_)
            | Self::NoSuchKey { .. }
            | Self::PreconditionFailed
            | Self::AccessDenied(_)
            | Self::InvalidUri(_)
            | Self::InvalidBucketName(_)
            | Self::InvalidAccessKeyId
            | Self::SignatureDoesNotMatch
            | Self::RequestTimeTooSkewed(_)
            | Self::AuthorizationQueryParametersError(_)
            | Self::AuthorizationHeaderMalformed(_)
            | Self::NotImplemented(_)
            | Self::AclNotSupported(_)
            | Self::BadDigest(_)
            | Self::ContentSha256Mismatch
            | Self::ChunkSignatureMismatch
            | Self::IncompleteBody
            | Self::MissingContentLength
            | Self::InvalidDigest
            | Self::EntityTooLarge
            | Self::EntityTooSmall
            | Self::MalformedPostRequest(_)
            | Self::MaxPostPreDataLengthExceeded
            | Self::InvalidPolicyDocument(_) => Origin::Client,
            Self::UpstreamUnreachable { .. }
            | Self::UpstreamCertificateRejected { .. }
            | Self::UpstreamTimeout { .. }
            | Self::UpstreamProtocol { .. } => Origin::Upstream,
            Self::Internal(_) | Self::SlowDown => Origin::Internal,
            Self::Relayed { .. } => Origin::Upstream,
        }
    }

    /// The `kind` label of `s3ferry_upstream_errors_total` for a failed provider exchange;
    /// `None` for errors that are not the provider's.
    pub fn upstream_error_kind(&self) -> Option<&'static str> {
        match self {
            Self::UpstreamUnreachable { .. } | Self::UpstreamCertificateRejected { .. } => Some("unreachable"),
            Self::UpstreamTimeout { .. } => Some("timeout"),
            Self::UpstreamProtocol { .. } => Some("protocol"),
            _ => None,
        }
    }

    fn bucket(&self) -> Option<&str> {
        match self {
            Self::NoSuchBucket { bucket } => Some(bucket),
            _ => None,
        }
    }

    /// The `<Message>` a client reads: `Display` without what only the log may say (see the
    /// module documentation).
    pub fn client_message(&self) -> String {
        match self {
            Self::UpstreamUnreachable { provider, .. } => {
                format!("Upstream provider '{provider}' could not be reached")
            }
            Self::UpstreamCertificateRejected { provider, .. } => format!(
                "Upstream provider '{provider}' could not be reached: its TLS certificate is not trusted by s3ferry \
                 (the gateway log has the detail; check the provider's endpoint and ca_file)"
            ),
            Self::UpstreamProtocol { provider, .. } => {
                format!("Upstream provider '{provider}' sent a response s3ferry cannot relay")
            }
            Self::Internal(_) => "We encountered an internal error. Please try again.".to_string(),
            other => other.to_string(),
        }
    }

    /// A provider's 5xx answer whose body is not an S3 error (a proxy's page, a cut or garbled
    /// document): the client gets the provider's status with the S3 code AWS uses for it.
    pub fn unreadable_error_answer(provider: &str, status: StatusCode) -> Self {
        let code = match status {
            StatusCode::NOT_IMPLEMENTED => "NotImplemented",
            StatusCode::BAD_GATEWAY => "BadGateway",
            StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
            StatusCode::GATEWAY_TIMEOUT => "GatewayTimeout",
            _ => "InternalError",
        };
        Self::Relayed {
            status,
            code: code.to_string(),
            message: format!(
                "Upstream provider '{provider}' failed ({}) without an S3 error",
                status.as_u16()
            ),
        }
    }

    /// The S3 XML error response for this error.
    pub fn to_response(&self, request_id: &str) -> Response<Bytes> {
        let (code, status) = match self {
            Self::Relayed { status, code, .. } => (code.as_str(), *status),
            other => other.code_and_status(),
        };
        let mut response = render_error(status, code, &self.client_message(), self.bucket(), request_id);
        if matches!(self, Self::SlowDown) {
            // SDKs back off on SlowDown by themselves; Retry-After tells plain HTTP clients when.
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                HeaderValue::from_static(SLOW_DOWN_RETRY_AFTER),
            );
        }
        response
    }
}

/// Seconds a client refused with SlowDown should wait: about twice the wait for buffer room
/// (`small_body::BUDGET_WAIT`), so the buffers of that moment have been sent on.
pub const SLOW_DOWN_RETRY_AFTER: &str = "1";

/// Renders an S3 `<Error>` document. The only place error XML is written.
pub fn render_error(
    status: StatusCode,
    code: &str,
    message: &str,
    bucket: Option<&str>,
    request_id: &str,
) -> Response<Bytes> {
    let mut xml = String::with_capacity(256);
    xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>");
    xml.push_str(&escape_xml(code));
    xml.push_str("</Code><Message>");
    xml.push_str(&escape_xml(message));
    xml.push_str("</Message>");
    if let Some(bucket) = bucket {
        xml.push_str("<BucketName>");
        xml.push_str(&escape_xml(bucket));
        xml.push_str("</BucketName>");
    }
    xml.push_str("<RequestId>");
    xml.push_str(&escape_xml(request_id));
    xml.push_str("</RequestId></Error>");

    let mut response = Response::new(Bytes::from(xml));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-amz-request-id", v);
    }
    response
}

fn escape_xml(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

/// Reads `<Code>` and `<Message>` from an S3 `<Error>` document.
pub fn parse_error_code(xml: &[u8]) -> Option<(String, String)> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut current = Vec::new();
    let (mut code, mut message) = (None, String::new());
    loop {
        match reader.read_event_into(&mut buf).ok()? {
            Event::Eof => break,
            Event::Start(e) => current = e.local_name().as_ref().to_vec(),
            Event::End(_) => current.clear(),
            Event::Text(t) => match current.as_slice() {
                b"Code" => code = Some(t.unescape().ok()?.into_owned()),
                b"Message" => message = t.unescape().ok()?.into_owned(),
                _ => {}
            },
            _ => {}
        }
        buf.clear();
    }
    code.map(|c| (c, message))
}

/// Whether `xml` is a whole S3 `<Error>` document with a `<Code>`: closed, not cut short.
/// ([`parse_error_code`] reads what it can of a cut document too.)
pub fn is_whole_error_document(xml: &[u8]) -> bool {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let (mut depth, mut code, mut closed) = (0usize, false, false);
    loop {
        match reader.read_event_into(&mut buf) {
            Err(_) => return false,
            Ok(Event::Eof) => return closed && code,
            Ok(Event::Start(e)) => {
                let name = e.local_name();
                if (depth == 0 && (closed || name.as_ref() != b"Error")) || depth > 64 {
                    return false;
                }
                code |= depth == 1 && name.as_ref() == b"Code";
                depth += 1;
            }
            Ok(Event::End(_)) => {
                depth = depth.saturating_sub(1);
                closed |= depth == 0;
            }
            Ok(Event::Empty(_)) if depth == 0 => return false,
            Ok(_) => {}
        }
        buf.clear();
    }
}

/// A fresh request id in the shape AWS uses (16 uppercase hex digits): a counter from a random
/// start, through a bijective mix (SplitMix64's finaliser), so ids never repeat within a
/// process and replicas start far apart. Not a secret: it only names a request in logs. One
/// random draw per process instead of one per request (a UUID each was 0.8% of the CPU of a
/// 4 KiB GET).
pub fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static START: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| uuid::Uuid::new_v4().as_u64_pair().0);
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let n = START.wrapping_add(COUNT.fetch_add(1, Ordering::Relaxed));
    format!("{:016X}", mix64(n))
}

/// SplitMix64's finaliser: a bijection on u64 that spreads consecutive inputs over the range.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_16_uppercase_hex_digits_and_do_not_repeat() {
        let ids: Vec<String> = (0..10_000).map(|_| new_request_id()).collect();
        for id in &ids {
            assert_eq!(id.len(), 16, "{id}");
            assert!(
                id.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
                "{id}"
            );
        }
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        // Consecutive ids do not look consecutive.
        assert_ne!(ids[0][..12], ids[1][..12]);
    }

    #[test]
    fn error_renders_code_message_bucket_and_request_id() {
        let err = GatewayError::NoSuchBucket { bucket: "a<b".into() };
        let resp = err.to_response("REQ1");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let body = std::str::from_utf8(resp.body()).expect("utf8");
        assert!(body.contains("<Code>NoSuchBucket</Code>"), "{body}");
        assert!(body.contains("<BucketName>a&lt;b</BucketName>"), "{body}");
        assert!(body.contains("<RequestId>REQ1</RequestId>"), "{body}");
        assert_eq!(resp.headers()["x-amz-request-id"], "REQ1");
    }

    #[test]
    fn upstream_failures_map_to_retryable_statuses() {
        let unreachable = GatewayError::UpstreamUnreachable {
            provider: "p".into(),
            cause: "refused".into(),
        };
        assert_eq!(
            unreachable.code_and_status(),
            ("ServiceUnavailable", StatusCode::SERVICE_UNAVAILABLE)
        );
        let timeout = GatewayError::UpstreamTimeout {
            provider: "p".into(),
            seconds: 3,
        };
        assert_eq!(timeout.code_and_status().1, StatusCode::GATEWAY_TIMEOUT);
    }

    #[test]
    fn upstream_detail_stays_in_the_log_text() {
        let errors = [
            GatewayError::UpstreamUnreachable {
                provider: "old-s3".into(),
                cause: "client error (Connect): tcp connect error: Connection refused (os error 111) 10.0.0.7:9000"
                    .into(),
            },
            GatewayError::UpstreamProtocol {
                provider: "old-s3".into(),
                cause: "writing a tombstone in 'photos-2017' answered 403 AccessDenied".into(),
            },
            GatewayError::Internal("cannot build the request for 'old-s3': invalid uri 10.0.0.7".into()),
        ];
        for err in errors {
            let resp = err.to_response("R");
            let body = std::str::from_utf8(resp.body()).expect("utf8");
            for hidden in ["10.0.0.7", "os error", "photos-2017", "tombstone", "Connect"] {
                assert!(!body.contains(hidden), "{hidden} in {body}");
            }
        }
        let unreachable = GatewayError::UpstreamUnreachable {
            provider: "old-s3".into(),
            cause: "dns error".into(),
        };
        assert_eq!(
            unreachable.client_message(),
            "Upstream provider 'old-s3' could not be reached"
        );
        assert!(unreachable.to_string().contains("dns error"), "the log keeps the cause");
    }

    #[test]
    fn slow_down_is_a_retryable_503_with_a_hint() {
        let resp = GatewayError::SlowDown.to_response("R");
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[http::header::RETRY_AFTER], "1");
        assert_eq!(
            parse_error_code(resp.body()).map(|(c, _)| c).as_deref(),
            Some("SlowDown")
        );
    }

    #[test]
    fn error_code_and_message_are_read_back() {
        let resp = render_error(StatusCode::FORBIDDEN, "SignatureDoesNotMatch", "a & b", None, "R");
        assert_eq!(
            parse_error_code(resp.body()),
            Some(("SignatureDoesNotMatch".to_string(), "a & b".to_string()))
        );
        assert_eq!(parse_error_code(b"<NotAnError/>"), None);
    }

    #[test]
    fn relayed_provider_errors_keep_status_and_code() {
        let err = GatewayError::Relayed {
            status: StatusCode::NOT_FOUND,
            code: "NoSuchVersion".into(),
            message: "The specified version does not exist.".into(),
        };
        let resp = err.to_response("R");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            parse_error_code(resp.body()),
            Some((
                "NoSuchVersion".to_string(),
                "The specified version does not exist.".to_string()
            ))
        );
    }

    #[test]
    fn only_whole_error_documents_count_as_s3_errors() {
        let whole = render_error(StatusCode::SERVICE_UNAVAILABLE, "SlowDown", "m", None, "R");
        assert!(is_whole_error_document(whole.body()));
        for broken in [
            &b"<?xml version=\"1.0\"?>\n<Error><Code>Internal"[..],
            b"<Error><Message>no code</Message></Error>",
            b"<NotAnError><Code>X</Code></NotAnError>",
            b"\x01<<not xml>> }{",
            b"",
            b"<Error><Code>X</Code></Error><Error/>",
        ] {
            assert!(!is_whole_error_document(broken), "{}", String::from_utf8_lossy(broken));
        }
    }

    #[test]
    fn a_5xx_without_an_s3_error_gets_the_code_for_its_status() {
        for (status, code) in [(500, "InternalError"), (503, "ServiceUnavailable"), (502, "BadGateway")] {
            let status = StatusCode::from_u16(status).expect("status");
            let resp = GatewayError::unreadable_error_answer("old-s3", status).to_response("R");
            assert_eq!(resp.status(), status);
            let (got, message) = parse_error_code(resp.body()).expect("S3 error");
            assert_eq!(got, code);
            assert!(message.contains("'old-s3'"), "{message}");
        }
    }

    #[test]
    fn request_ids_are_16_uppercase_hex() {
        let id = new_request_id();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
    }
}
