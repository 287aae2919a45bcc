//! The bodies that flow through the gateway, all streamed.
//!
//! - Upload bodies go upstream as [`UpstreamBody`]: either the client's bytes unchanged (the
//!   upstream re-checks the client's signed payload hash), or a body s3ferry changed (de-chunked
//!   `aws-chunked`), wrapped in [`HoldBackLast`] so that a failed chunk signature or trailing
//!   checksum aborts the upstream request before its last byte and nothing is committed.
//! - Download bodies come back as [`IdleTimeoutBody`] so a stalled provider ends the response
//!   with an error instead of hanging the client forever.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures_util::Stream;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt as _;
use http_body_util::combinators::BoxBody;
use s3s::crypto::Checksum as _;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body type sent to providers.
pub type UpstreamBody = BoxBody<Bytes, BoxError>;

/// An empty upstream body.
pub fn empty() -> UpstreamBody {
    http_body_util::Empty::new().map_err(|never| match never {}).boxed()
}

/// A small body held in memory (rewritten XML, tiny control bodies).
pub fn full(bytes: Bytes) -> UpstreamBody {
    http_body_util::Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// The client's body, unchanged.
pub fn passthrough(body: s3s::Body) -> UpstreamBody {
    body.boxed()
}

/// Why an upload body was refused while it streamed. Recorded so the gateway can answer with
/// the right S3 error after the upstream request was aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadFailure {
    /// The body did not hash to the client's signed `x-amz-content-sha256`.
    PayloadHashMismatch,
    /// An `aws-chunked` chunk or trailer signature did not verify.
    ChunkSignatureMismatch,
    /// The trailing checksum did not match the body.
    ChecksumMismatch { algorithm: ChecksumAlgorithm },
    /// The trailer named in `x-amz-trailer` never came.
    MissingTrailer { header: String },
    /// The body ended early.
    Incomplete,
    /// The `aws-chunked` framing was malformed.
    Malformed(String),
    /// Reading from the client failed (disconnect).
    Io(String),
}

/// Where a streaming body records its failure.
pub type FailureSlot = Arc<Mutex<Option<UploadFailure>>>;

/// Records `failure` unless one is already recorded (the first cause wins).
fn record(slot: &FailureSlot, failure: UploadFailure) {
    if let Ok(mut guard) = slot.lock()
        && guard.is_none()
    {
        *guard = Some(failure);
    }
}

/// Reads the recorded failure, if any.
pub fn recorded_failure(slot: &FailureSlot) -> Option<UploadFailure> {
    slot.lock().ok().and_then(|g| g.clone())
}

/// Maps an error raised by s3s's verifying streams to what went wrong. s3s keeps those error
/// types private, so their names in the message are what we can match; the integration tests
/// (tampered bodies, bad chunk signatures) keep this honest.
fn classify_stream_error(err: &BoxError) -> UploadFailure {
    let text = err.to_string();
    if text.contains("Sha256Mismatch") {
        UploadFailure::PayloadHashMismatch
    } else if text.contains("SignatureMismatch") {
        UploadFailure::ChunkSignatureMismatch
    } else if text.contains("Incomplete") || text.contains("LengthMismatch") {
        UploadFailure::Incomplete
    } else if text.contains("AwsChunkedStreamError") {
        UploadFailure::Malformed(text)
    } else {
        UploadFailure::Io(text)
    }
}

/// Wraps the client's unchanged body so a payload-hash failure is recorded.
pub fn verified_passthrough(body: s3s::Body, slot: FailureSlot) -> UpstreamBody {
    let stream = RecordFailures { inner: body, slot };
    http_body_util::StreamBody::new(futures_util::StreamExt::map(stream, |r| r.map(Frame::data))).boxed()
}

struct RecordFailures {
    inner: s3s::Body,
    slot: FailureSlot,
}

impl Stream for RecordFailures {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match ready!(Pin::new(&mut self.inner).poll_next(cx)) {
            Some(Err(e)) => {
                record(&self.slot, classify_stream_error(&e));
                Poll::Ready(Some(Err(e)))
            }
            other => Poll::Ready(other),
        }
    }
}

/// Checksum algorithms S3 clients send as trailers or headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    /// From a header name such as `x-amz-checksum-crc32`.
    pub fn from_header_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().strip_prefix("x-amz-checksum-")? {
            "crc32" => Some(Self::Crc32),
            "crc32c" => Some(Self::Crc32c),
            "crc64nvme" => Some(Self::Crc64Nvme),
            "sha1" => Some(Self::Sha1),
            "sha256" => Some(Self::Sha256),
            _ => None,
        }
    }

    pub fn header_name(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }
}

/// An incremental checksum of one algorithm (the primitives come from s3s).
pub enum ChecksumHasher {
    Crc32(s3s::crypto::Crc32),
    Crc32c(s3s::crypto::Crc32c),
    Crc64Nvme(s3s::crypto::Crc64Nvme),
    Sha1(s3s::crypto::Sha1),
    Sha256(s3s::crypto::Sha256),
}

impl ChecksumHasher {
    pub fn new(algorithm: ChecksumAlgorithm) -> Self {
        match algorithm {
            ChecksumAlgorithm::Crc32 => Self::Crc32(s3s::crypto::Crc32::new()),
            ChecksumAlgorithm::Crc32c => Self::Crc32c(s3s::crypto::Crc32c::new()),
            ChecksumAlgorithm::Crc64Nvme => Self::Crc64Nvme(s3s::crypto::Crc64Nvme::new()),
            ChecksumAlgorithm::Sha1 => Self::Sha1(s3s::crypto::Sha1::new()),
            ChecksumAlgorithm::Sha256 => Self::Sha256(s3s::crypto::Sha256::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc32(h) => h.update(data),
            Self::Crc32c(h) => h.update(data),
            Self::Crc64Nvme(h) => h.update(data),
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
        }
    }

    /// The base64 digest, as it appears in `x-amz-checksum-*`.
    pub fn finalize_base64(self) -> String {
        let engine = base64::engine::general_purpose::STANDARD;
        match self {
            Self::Crc32(h) => engine.encode(h.finalize()),
            Self::Crc32c(h) => engine.encode(h.finalize()),
            Self::Crc64Nvme(h) => engine.encode(h.finalize()),
            Self::Sha1(h) => engine.encode(h.finalize()),
            Self::Sha256(h) => engine.encode(h.finalize()),
        }
    }
}

/// A trailing checksum to verify once the body has ended.
pub struct TrailerCheck {
    pub algorithm: ChecksumAlgorithm,
    pub hasher: ChecksumHasher,
    pub trailers: s3s::TrailingHeaders,
}

/// A transformed upload body that always holds back its most recent piece. The last piece is
/// released only when the client's body has ended cleanly (s3s has verified every chunk
/// signature and the trailer signature) and the trailing checksum matched. So when anything
/// fails, the upstream request is still short of its `Content-Length` and the provider
/// discards it.
pub struct HoldBackLast {
    inner: s3s::Body,
    held: Option<Bytes>,
    trailer: Option<TrailerCheck>,
    slot: FailureSlot,
    finished: bool,
}

impl HoldBackLast {
    pub fn new(inner: s3s::Body, trailer: Option<TrailerCheck>, slot: FailureSlot) -> Self {
        Self {
            inner,
            held: None,
            trailer,
            slot,
            finished: false,
        }
    }

    pub fn into_upstream_body(self) -> UpstreamBody {
        http_body_util::StreamBody::new(futures_util::StreamExt::map(self, |r| r.map(Frame::data))).boxed()
    }

    /// Checks the trailing checksum after the body ended.
    fn verify_trailer(&mut self) -> Result<(), UploadFailure> {
        let Some(check) = self.trailer.take() else {
            return Ok(());
        };
        let header = check.algorithm.header_name();
        let sent = check
            .trailers
            .read(|h| h.get(header).and_then(|v| v.to_str().ok()).map(str::to_owned))
            .flatten();
        let Some(sent) = sent else {
            return Err(UploadFailure::MissingTrailer {
                header: header.to_string(),
            });
        };
        if check.hasher.finalize_base64() == sent.trim() {
            Ok(())
        } else {
            Err(UploadFailure::ChecksumMismatch {
                algorithm: check.algorithm,
            })
        }
    }

    fn fail(&mut self, failure: UploadFailure) -> Poll<Option<Result<Bytes, BoxError>>> {
        self.finished = true;
        self.held = None;
        let message = format!("upload refused: {failure:?}");
        record(&self.slot, failure);
        Poll::Ready(Some(Err(message.into())))
    }
}

impl Stream for HoldBackLast {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.finished {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut self.inner).poll_next(cx)) {
                Some(Ok(bytes)) => {
                    if bytes.is_empty() {
                        continue;
                    }
                    if let Some(check) = &mut self.trailer {
                        check.hasher.update(&bytes);
                    }
                    if let Some(previous) = self.held.replace(bytes) {
                        return Poll::Ready(Some(Ok(previous)));
                    }
                }
                Some(Err(e)) => {
                    let failure = classify_stream_error(&e);
                    return self.fail(failure);
                }
                None => {
                    if let Err(failure) = self.verify_trailer() {
                        return self.fail(failure);
                    }
                    self.finished = true;
                    return Poll::Ready(self.held.take().map(Ok));
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that fails when the provider sends nothing for `timeout`.
    pub struct IdleTimeoutBody<B> {
        #[pin]
        inner: B,
        timeout: Duration,
        #[pin]
        deadline: tokio::time::Sleep,
    }
}

impl<B> IdleTimeoutBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: tokio::time::sleep(timeout),
        }
    }
}

impl<B> HttpBody for IdleTimeoutBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = tokio::time::Instant::now() + *this.timeout;
                this.deadline.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                ready!(this.deadline.as_mut().poll(cx));
                let message = format!("upstream sent no data for {} s", this.timeout.as_secs());
                Poll::Ready(Some(Err(message.into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt as _;

    fn stream_of(pieces: Vec<Result<Bytes, BoxError>>) -> s3s::Body {
        let stream = futures_util::stream::iter(pieces);
        s3s::Body::http_body(http_body_util::StreamBody::new(stream.map(|r| r.map(Frame::data))))
    }

    #[tokio::test]
    async fn hold_back_releases_everything_after_a_clean_end() {
        let slot = FailureSlot::default();
        let body = stream_of(vec![Ok(Bytes::from("ab")), Ok(Bytes::from("cd"))]);
        let out: Vec<_> = HoldBackLast::new(body, None, slot.clone()).collect().await;
        let bytes: Vec<Bytes> = out.into_iter().map(|r| r.expect("ok")).collect();
        assert_eq!(bytes, vec![Bytes::from("ab"), Bytes::from("cd")]);
        assert_eq!(recorded_failure(&slot), None);
    }

    #[tokio::test]
    async fn hold_back_never_releases_the_last_piece_when_the_body_fails() {
        let slot = FailureSlot::default();
        let body = stream_of(vec![
            Ok(Bytes::from("ab")),
            Ok(Bytes::from("cd")),
            Err("AwsChunkedStreamError: SignatureMismatch".into()),
        ]);
        let out: Vec<_> = HoldBackLast::new(body, None, slot.clone()).collect().await;
        assert_eq!(out.len(), 2, "first piece, then the error; 'cd' is never released");
        assert_eq!(out[0].as_ref().expect("first piece"), &Bytes::from("ab"));
        assert!(out[1].is_err());
        assert_eq!(recorded_failure(&slot), Some(UploadFailure::ChunkSignatureMismatch));
    }

    #[test]
    fn checksum_algorithms_come_from_header_names() {
        assert_eq!(
            ChecksumAlgorithm::from_header_name("X-Amz-Checksum-CRC32"),
            Some(ChecksumAlgorithm::Crc32)
        );
        assert_eq!(
            ChecksumAlgorithm::from_header_name("x-amz-checksum-crc64nvme"),
            Some(ChecksumAlgorithm::Crc64Nvme)
        );
        assert_eq!(ChecksumAlgorithm::from_header_name("x-amz-meta-x"), None);
    }

    #[test]
    fn crc32_of_hello_world_matches_s3() {
        let mut h = ChecksumHasher::new(ChecksumAlgorithm::Crc32);
        h.update(b"Hello world");
        // S3 returns this CRC32 for the 11 bytes "Hello world".
        assert_eq!(h.finalize_base64(), "i9aeUg==");
    }
}
