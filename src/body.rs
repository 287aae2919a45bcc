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

use bytes::Bytes;
use futures_util::Stream;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt as _;
use http_body_util::combinators::BoxBody;

use crate::checksum::{ChecksumAlgorithm, ChecksumHasher};

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
    /// The checksum (trailer or header) did not match the body.
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

/// Where the checksum a body must match comes from.
pub enum ExpectedChecksum {
    /// The `aws-chunked` trailer, readable once the body has ended.
    Trailer(s3s::TrailingHeaders),
    /// A request header the provider will not see (its dialect does not take the algorithm),
    /// so s3ferry checks it instead.
    Header(String),
}

/// A checksum to verify once the body has ended.
pub struct ChecksumCheck {
    pub algorithm: ChecksumAlgorithm,
    pub hasher: ChecksumHasher,
    pub expected: ExpectedChecksum,
}

impl ChecksumCheck {
    pub fn new(algorithm: ChecksumAlgorithm, expected: ExpectedChecksum) -> Self {
        Self {
            algorithm,
            hasher: ChecksumHasher::new(algorithm),
            expected,
        }
    }
}

/// A transformed or checked upload body that always holds back its most recent piece. The last
/// piece is released only when the client's body has ended cleanly (s3s has verified every chunk
/// signature and the trailer signature) and the checksum (trailer or header) matched. So when anything
/// fails, the upstream request is still short of its `Content-Length` and the provider
/// discards it.
pub struct HoldBackLast {
    inner: s3s::Body,
    held: Option<Bytes>,
    check: Option<ChecksumCheck>,
    slot: FailureSlot,
    finished: bool,
}

impl HoldBackLast {
    pub fn new(inner: s3s::Body, check: Option<ChecksumCheck>, slot: FailureSlot) -> Self {
        Self {
            inner,
            held: None,
            check,
            slot,
            finished: false,
        }
    }

    pub fn into_upstream_body(self) -> UpstreamBody {
        http_body_util::StreamBody::new(futures_util::StreamExt::map(self, |r| r.map(Frame::data))).boxed()
    }

    /// Checks the checksum after the body ended.
    fn verify_checksum(&mut self) -> Result<(), UploadFailure> {
        let Some(check) = self.check.take() else {
            return Ok(());
        };
        let header = check.algorithm.header_name();
        let sent = match check.expected {
            ExpectedChecksum::Header(value) => Some(value),
            ExpectedChecksum::Trailer(trailers) => trailers
                .read(|h| h.get(header).and_then(|v| v.to_str().ok()).map(str::to_owned))
                .flatten(),
        };
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
                    if let Some(check) = &mut self.check {
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
                    if let Err(failure) = self.verify_checksum() {
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

    #[tokio::test]
    async fn a_header_checksum_that_does_not_match_withholds_the_last_piece() {
        let check = |value: &str| {
            Some(ChecksumCheck::new(
                ChecksumAlgorithm::Crc32,
                ExpectedChecksum::Header(value.to_string()),
            ))
        };
        let pieces = || stream_of(vec![Ok(Bytes::from("Hello ")), Ok(Bytes::from("world"))]);
        let slot = FailureSlot::default();
        let out: Vec<_> = HoldBackLast::new(pieces(), check("i9aeUg=="), slot.clone())
            .collect()
            .await;
        assert!(out.iter().all(Result::is_ok) && out.len() == 2);
        assert_eq!(recorded_failure(&slot), None);
        let slot = FailureSlot::default();
        let out: Vec<_> = HoldBackLast::new(pieces(), check("AAAAAA=="), slot.clone())
            .collect()
            .await;
        assert_eq!(out.len(), 2, "first piece, then the error; 'world' is never released");
        assert!(out[1].is_err());
        assert_eq!(
            recorded_failure(&slot),
            Some(UploadFailure::ChecksumMismatch {
                algorithm: ChecksumAlgorithm::Crc32
            })
        );
    }
}
