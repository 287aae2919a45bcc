//! Header vocabulary: lengths a message states, and the framing of `aws-chunked` bodies.

use http::HeaderMap;

/// Request headers that describe `aws-chunked` framing; dropped when s3ferry de-chunks.
pub const CHUNKED_FRAMING_HEADERS: &[&str] = &[
    "x-amz-decoded-content-length",
    "x-amz-trailer",
    "x-amz-sdk-checksum-algorithm",
];

/// A message's `Content-Length`, if it has a valid one.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Whether the body is `aws-chunked` framing (`x-amz-content-sha256: STREAMING-...`).
pub fn is_aws_chunked(headers: &HeaderMap) -> bool {
    headers
        .get("x-amz-content-sha256")
        .is_some_and(|v| v.as_bytes().starts_with(b"STREAMING-"))
}

/// The length of a request body once any `aws-chunked` framing is removed: the decoded length
/// of a streamed body, else its `Content-Length`.
pub fn decoded_length(headers: &HeaderMap) -> Option<u64> {
    if is_aws_chunked(headers) {
        return headers
            .get("x-amz-decoded-content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
    }
    content_length(headers)
}
