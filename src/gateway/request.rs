//! The client's request as the gateway reads it, parsed once: its target (parsed at the edge),
//! its operation, the query it forwards, the checksum parameters that stand for headers, who
//! signed it and the copy source it names.

use http::{HeaderMap, HeaderName, HeaderValue};
use s3s::{Body, S3Request};

use crate::access::Identity;
use crate::access_log::AccessFields;
use crate::checksum::ChecksumAlgorithm;
use crate::error::GatewayError;
use crate::s3::copy_source::{CopySourceRef, parse_copy_source};
use crate::s3::encoding::parse_query;
use crate::s3::operation::{self, Operation, Target};
use crate::target::ClientTarget;

/// Query parameters that carry the client's presigned-URL signature; they are verified by s3s
/// and never forwarded (the upstream request is signed anew in headers).
const PRESIGN_PARAMS: &[&str] = &[
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
    "AWSAccessKeyId",
    "Signature",
    "Expires",
];

/// What a verified request asks, read once.
#[derive(Debug)]
pub(super) struct ClientRequest {
    pub target: ClientTarget,
    pub operation: Operation,
    /// The query that goes on: without the presigned-URL signature, an empty `delimiter=`, or
    /// the checksum parameters (which travel as `checksum_params`).
    pub query: Vec<(String, String)>,
    /// Checksum parameters of the query (presigned URLs of some SDKs carry
    /// `x-amz-checksum-crc32` and `x-amz-sdk-checksum-algorithm` there, docs/dialects.md rule
    /// 29) as the headers they stand for: checked by the provider or by s3ferry per dialect, so
    /// a value that does not match the body is `BadDigest`, as on AWS.
    pub checksum_params: HeaderMap,
    /// The access key that signed it; `None` for an unsigned request.
    pub client_key: Option<String>,
    /// The client's `x-amz-copy-source`, when it names one.
    pub copy_source: Option<CopySourceRef>,
}

impl ClientRequest {
    /// Reads the request; the target the edge parsed is taken out of its extensions.
    pub fn parse(req: &mut S3Request<Body>) -> Result<Self, GatewayError> {
        let target = req
            .extensions
            .remove::<ClientTarget>()
            .ok_or_else(|| GatewayError::Internal("the edge did not parse the request target".into()))?;
        let (query, checksum_params) = checksum_params_as_headers(forwarded_query(req.uri.query()));
        let copy_source = copy_source_of(&req.headers)?;
        let operation = operation::classify(&req.method, target_kind(&target), &query, copy_source.is_some());
        Ok(Self {
            target,
            operation,
            query,
            checksum_params,
            client_key: req.credentials.as_ref().map(|c| c.access_key.clone()),
            copy_source,
        })
    }

    /// Who signed it, for the access decision.
    pub fn identity(&self) -> Identity<'_> {
        self.client_key.as_deref().map_or(Identity::Anonymous, Identity::Key)
    }

    /// What the access log says of it.
    pub fn record(&self, fields: &mut AccessFields) {
        fields.client_key_id.clone_from(&self.client_key);
        fields.operation = self.operation.as_str();
        fields.bucket.clone_from(&self.target.bucket);
    }

    /// What the request addresses: the service, a bucket or an object.
    pub fn target_kind(&self) -> Target {
        target_kind(&self.target)
    }

    /// `(partNumber, uploadId)` of an UploadPartCopy.
    pub fn upload_part(&self) -> Option<(String, String)> {
        let get = |name: &str| self.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        Some((get("partNumber")?, get("uploadId")?))
    }

    /// Whether the query names `name` (`versionId`, `uploads`, ...).
    pub fn has_param(&self, name: &str) -> bool {
        self.query.iter().any(|(n, _)| n == name)
    }
}

fn target_kind(target: &ClientTarget) -> Target {
    match (&target.bucket, target.key.is_empty()) {
        (None, _) => Target::Service,
        (Some(_), true) => Target::Bucket,
        (Some(_), false) => Target::Object,
    }
}

/// The client's query pairs without its presigned-URL signature parameters. An empty
/// `delimiter=` means "no delimiter" to S3, but some stores (s3s-fs) take it for a real, empty
/// delimiter and answer with nothing but common prefixes, so it is not forwarded.
fn forwarded_query(raw: Option<&str>) -> Vec<(String, String)> {
    parse_query(raw.unwrap_or(""))
        .into_iter()
        .filter(|(name, value)| {
            let signature_param = PRESIGN_PARAMS.contains(&name.as_str());
            let empty_delimiter = name == "delimiter" && value.is_empty();
            !(signature_param || empty_delimiter)
        })
        .collect()
}

/// Checksum parameters taken out of the query, as the headers they stand for.
fn checksum_params_as_headers(query: Vec<(String, String)>) -> (Vec<(String, String)>, HeaderMap) {
    let (params, rest): (Vec<_>, Vec<_>) = query.into_iter().partition(|(name, _)| {
        let lower = name.to_ascii_lowercase();
        ChecksumAlgorithm::from_header_name(&lower).is_some() || lower == "x-amz-sdk-checksum-algorithm"
    });
    let headers = params
        .into_iter()
        .filter_map(|(name, value)| {
            let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok()?;
            Some((name, HeaderValue::from_str(&value).ok()?))
        })
        .collect();
    (rest, headers)
}

/// The client's `x-amz-copy-source`, parsed (`None` when the request has none).
fn copy_source_of(headers: &HeaderMap) -> Result<Option<CopySourceRef>, GatewayError> {
    let Some(value) = headers.get("x-amz-copy-source") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| GatewayError::InvalidArgument("x-amz-copy-source is not valid text".into()))?;
    parse_copy_source(text).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presign_parameters_are_not_forwarded() {
        let q = forwarded_query(Some("X-Amz-Signature=abc&X-Amz-Date=1&versionId=v1&uploads&delimiter="));
        assert_eq!(
            q,
            vec![
                ("versionId".to_string(), "v1".to_string()),
                ("uploads".to_string(), String::new())
            ]
        );
    }

    #[test]
    fn checksum_parameters_become_headers() {
        let (query, headers) = checksum_params_as_headers(vec![
            ("x-id".to_string(), "PutObject".to_string()),
            ("x-amz-checksum-crc32".to_string(), "AAAAAA==".to_string()),
            ("X-Amz-Sdk-Checksum-Algorithm".to_string(), "CRC32".to_string()),
            ("partNumber".to_string(), "1".to_string()),
        ]);
        assert_eq!(
            query,
            vec![
                ("x-id".to_string(), "PutObject".to_string()),
                ("partNumber".to_string(), "1".to_string())
            ]
        );
        let names: Vec<&str> = headers.keys().map(http::HeaderName::as_str).collect();
        assert_eq!(names, ["x-amz-checksum-crc32", "x-amz-sdk-checksum-algorithm"]);
    }
}
