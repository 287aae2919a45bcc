//! The bodies that flow through the gateway, all streamed.
//!
//! - Upload bodies go upstream as [`UpstreamBody`]: either the client's bytes unchanged (the
//!   upstream re-checks the client's signed payload hash), or a body s3ferry changed (de-chunked
//!   `aws-chunked`), wrapped in [`HoldBackLast`] so that a failed chunk signature or trailing
//!   checksum aborts the upstream request before its last byte and nothing is committed.
//! - A de-chunked body whose trailing checksum the provider can store is framed again as
//!   `aws-chunked` with an unsigned trailer ([`UnsignedTrailerBody`], around [`HoldBackLast`]):
//!   the trailer line is written only after the client's trailer verified.
//! - Download bodies come back as [`IdleTimeoutBody`] so a stalled provider ends the response
//!   with an error instead of hanging the client forever.

use std::collections::VecDeque;
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
use crate::error::GatewayError;

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

/// Refuses a request whose body has a length stated nowhere: no `Content-Length`, framed by
/// `Transfer-Encoding: chunked` or an HTTP/2 stream still open after its headers, and not an
/// `aws-chunked` upload (which states its decoded length in `x-amz-decoded-content-length`).
/// Every provider needs an upload's length before its first byte, and AWS answers such a PUT
/// with `411 MissingContentLength`, as s3s does for SigV4 header auth; presigned and SigV2
/// requests reach s3ferry unchecked, and without this their body would be sent as 0 bytes.
/// `client_body` is hyper's size hint of the body as it arrived: exactly 0 for an HTTP/1
/// request without framing headers and an HTTP/2 stream ended with its headers.
pub fn require_stated_length(headers: &http::HeaderMap, client_body: &SizeHint) -> Result<(), GatewayError> {
    let aws_chunked = headers
        .get("x-amz-content-sha256")
        .is_some_and(|v| v.as_bytes().starts_with(b"STREAMING-"));
    if client_body.exact().is_some() || headers.contains_key(http::header::CONTENT_LENGTH) || aws_chunked {
        Ok(())
    } else {
        Err(GatewayError::MissingContentLength)
    }
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
    /// The body's MD5 is not the client's `Content-MD5`.
    ContentMd5Mismatch,
    /// The trailer named in `x-amz-trailer` never came.
    MissingTrailer { header: String },
    /// The body ended early.
    Incomplete,
    /// The `aws-chunked` framing was malformed.
    Malformed(String),
    /// Reading from the client failed (disconnect).
    Io(String),
}

/// The S3 error for an upload body that failed while it streamed.
impl From<UploadFailure> for GatewayError {
    fn from(failure: UploadFailure) -> Self {
        match failure {
            UploadFailure::PayloadHashMismatch => GatewayError::ContentSha256Mismatch,
            UploadFailure::ChunkSignatureMismatch => GatewayError::ChunkSignatureMismatch,
            UploadFailure::ChecksumMismatch { algorithm } => GatewayError::BadDigest(format!(
                "the {} checksum does not match the uploaded data",
                algorithm.header_name()
            )),
            UploadFailure::ContentMd5Mismatch => {
                GatewayError::BadDigest("The Content-MD5 you specified did not match what we received.".into())
            }
            UploadFailure::MissingTrailer { header } => {
                GatewayError::InvalidRequest(format!("the announced trailer {header} was not sent"))
            }
            UploadFailure::Incomplete => GatewayError::IncompleteBody,
            UploadFailure::Malformed(detail) => {
                GatewayError::InvalidRequest(format!("malformed aws-chunked body: {detail}"))
            }
            UploadFailure::Io(detail) => {
                tracing::debug!(%detail, "client body ended with an error");
                GatewayError::IncompleteBody
            }
        }
    }
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
    /// The client's `Content-MD5` (decoded) and the MD5 of the body so far, where s3ferry
    /// checks it because the provider would store the body before comparing.
    content_md5: Option<([u8; 16], md5::Md5)>,
    /// The checksum that matched, once the body has ended and verified.
    verified: Option<(ChecksumAlgorithm, String)>,
    /// Where the matched checksum is also reported, for the gateway after the body is gone.
    verified_slot: Option<VerifiedSlot>,
    /// The length the body must have (a de-chunked body's `x-amz-decoded-content-length`,
    /// which s3s does not compare with what it decodes), and what came so far.
    expected_length: Option<u64>,
    received: u64,
    slot: FailureSlot,
    finished: bool,
}

/// Where a body reports the checksum that matched, to be read after it was sent.
pub type VerifiedSlot = Arc<Mutex<Option<(ChecksumAlgorithm, String)>>>;

impl HoldBackLast {
    pub fn new(inner: s3s::Body, check: Option<ChecksumCheck>, slot: FailureSlot) -> Self {
        Self {
            inner,
            held: None,
            check,
            content_md5: None,
            verified: None,
            verified_slot: None,
            expected_length: None,
            received: 0,
            slot,
            finished: false,
        }
    }

    /// Also refuses the body unless it is exactly `length` bytes: a longer one as soon as it
    /// passes `length`, a shorter one at its end, and in both cases before its last piece.
    pub fn expecting_length(mut self, length: u64) -> Self {
        self.expected_length = Some(length);
        self
    }

    /// Also refuses the body, before its last piece, unless its MD5 is `expected` (the client's
    /// `Content-MD5`, decoded).
    pub fn expecting_md5(mut self, expected: [u8; 16]) -> Self {
        self.content_md5 = Some((expected, <md5::Md5 as md5::Digest>::new()));
        self
    }

    /// Whether anything is checked before the last piece is released.
    pub fn checks_anything(&self) -> bool {
        self.check.is_some() || self.content_md5.is_some() || self.expected_length.is_some()
    }

    /// Also reports the matched checksum to `slot`.
    pub fn reporting_to(mut self, slot: VerifiedSlot) -> Self {
        self.verified_slot = Some(slot);
        self
    }

    /// The checksum that matched (base64, as s3ferry computed it), once the body has ended and
    /// verified; `None` before that or when there was nothing to check.
    pub fn verified_checksum(&self) -> Option<(ChecksumAlgorithm, &str)> {
        self.verified.as_ref().map(|(a, v)| (*a, v.as_str()))
    }

    /// The client's body, unchecked (for when [`Self::checks_anything`] is false).
    pub fn into_inner(self) -> s3s::Body {
        self.inner
    }

    pub fn into_upstream_body(self) -> UpstreamBody {
        http_body_util::StreamBody::new(futures_util::StreamExt::map(self, |r| r.map(Frame::data))).boxed()
    }

    /// Checks the checksum (and `Content-MD5`) after the body ended.
    fn verify_checksum(&mut self) -> Result<(), UploadFailure> {
        if let Some((expected, hasher)) = self.content_md5.take()
            && <md5::Md5 as md5::Digest>::finalize(hasher).as_slice() != expected
        {
            return Err(UploadFailure::ContentMd5Mismatch);
        }
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
        let computed = check.hasher.finalize_base64();
        if computed == sent.trim() {
            if let Some(slot) = &self.verified_slot
                && let Ok(mut guard) = slot.lock()
            {
                *guard = Some((check.algorithm, computed.clone()));
            }
            self.verified = Some((check.algorithm, computed));
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
                    self.received = self.received.saturating_add(bytes.len() as u64);
                    if self.expected_length.is_some_and(|expected| self.received > expected) {
                        return self.fail(UploadFailure::Malformed(
                            "the body is longer than its x-amz-decoded-content-length".into(),
                        ));
                    }
                    if let Some(check) = &mut self.check {
                        check.hasher.update(&bytes);
                    }
                    if let Some((_, hasher)) = &mut self.content_md5 {
                        md5::Digest::update(hasher, &bytes);
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
                    if self.expected_length.is_some_and(|expected| self.received < expected) {
                        return self.fail(UploadFailure::Incomplete);
                    }
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

/// Chunk size of the `aws-chunked` bodies s3ferry writes. Fixed, so that the encoded length
/// (the upstream `Content-Length`) is known before the first byte.
pub const REFRAMED_CHUNK_SIZE: u64 = 64 * 1024;

/// The exact length of `decoded_length` bytes framed by [`UnsignedTrailerBody`]: each chunk is
/// `hex(len)\r\n<data>\r\n`, then `0\r\n`, the trailer line
/// `x-amz-checksum-<alg>:<base64>\r\n` (the base64 length is fixed per algorithm) and `\r\n`.
pub fn unsigned_trailer_encoded_length(decoded_length: u64, algorithm: ChecksumAlgorithm) -> u64 {
    let chunk = |size: u64| hex_digits(size) + 2 + size + 2;
    let full_chunks = decoded_length / REFRAMED_CHUNK_SIZE;
    let rest = decoded_length % REFRAMED_CHUNK_SIZE;
    let data = full_chunks * chunk(REFRAMED_CHUNK_SIZE) + if rest > 0 { chunk(rest) } else { 0 };
    let trailer_line = algorithm.header_name().len() + 1 + algorithm.base64_len() + 2;
    data + 3 + trailer_line as u64 + 2
}

fn hex_digits(n: u64) -> u64 {
    u64::from((u64::BITS - n.leading_zeros()).div_ceil(4).max(1))
}

/// A verified upload body framed again as `aws-chunked` for `STREAMING-UNSIGNED-PAYLOAD-TRAILER`
/// (docs/dialects.md §D.2, rule 10c), so the provider stores the client's trailing checksum.
///
/// It frames what [`HoldBackLast`] releases, so it keeps its guarantee: the last data piece
/// comes only after the client's body ended and its trailer matched, and everything after it
/// (the chunk's closing `\r\n`, the `0` chunk and the trailer line, carrying the checksum that
/// matched) only after that. When anything fails the upstream request ends short of its
/// `Content-Length` and the provider discards it. Data pieces pass through without copying;
/// only the small framing lines are allocated.
pub struct UnsignedTrailerBody {
    inner: HoldBackLast,
    algorithm: ChecksumAlgorithm,
    /// Decoded bytes not framed yet.
    remaining: u64,
    /// Data bytes the open chunk still needs (0: no chunk open).
    open_chunk: u64,
    /// The last chunk's data is complete and its closing `\r\n` not written yet; it goes in
    /// front of the next framing line.
    closing_crlf: bool,
    ready: VecDeque<Bytes>,
    finished: bool,
}

impl UnsignedTrailerBody {
    /// Frames `inner` (which verifies the client's `algorithm` trailer) as `decoded_length`
    /// bytes in [`REFRAMED_CHUNK_SIZE`] chunks.
    pub fn new(inner: HoldBackLast, algorithm: ChecksumAlgorithm, decoded_length: u64) -> Self {
        Self {
            inner,
            algorithm,
            remaining: decoded_length,
            open_chunk: 0,
            closing_crlf: false,
            ready: VecDeque::new(),
            finished: false,
        }
    }

    pub fn into_upstream_body(self) -> UpstreamBody {
        http_body_util::StreamBody::new(futures_util::StreamExt::map(self, |r| r.map(Frame::data))).boxed()
    }

    /// Queues `data` with the chunk headers it needs, splitting it (without copying) where a
    /// chunk ends.
    fn frame(&mut self, mut data: Bytes) -> Result<(), UploadFailure> {
        while !data.is_empty() {
            if self.open_chunk == 0 {
                let size = self.remaining.min(REFRAMED_CHUNK_SIZE);
                if size == 0 {
                    return Err(UploadFailure::Malformed(
                        "the body is longer than its x-amz-decoded-content-length".into(),
                    ));
                }
                let crlf = if std::mem::take(&mut self.closing_crlf) {
                    "\r\n"
                } else {
                    ""
                };
                self.ready.push_back(Bytes::from(format!("{crlf}{size:x}\r\n")));
                self.open_chunk = size;
            }
            let take = usize::try_from(self.open_chunk).map_or(data.len(), |open| open.min(data.len()));
            let piece = data.split_to(take);
            self.open_chunk -= piece.len() as u64;
            self.remaining -= piece.len() as u64;
            self.closing_crlf = self.open_chunk == 0;
            self.ready.push_back(piece);
        }
        Ok(())
    }

    /// The end of the body: the last chunk's `\r\n`, the `0` chunk and the verified trailer.
    fn final_frame(&mut self) -> Result<Bytes, UploadFailure> {
        if self.remaining != 0 {
            return Err(UploadFailure::Incomplete);
        }
        let header = self.algorithm.header_name();
        let checksum = match self.inner.verified_checksum() {
            Some((algorithm, value)) if algorithm == self.algorithm => value,
            _ => {
                return Err(UploadFailure::MissingTrailer {
                    header: header.to_string(),
                });
            }
        };
        let crlf = if self.closing_crlf { "\r\n" } else { "" };
        Ok(Bytes::from(format!("{crlf}0\r\n{header}:{checksum}\r\n\r\n")))
    }

    fn fail(&mut self, failure: UploadFailure) -> Poll<Option<Result<Bytes, BoxError>>> {
        self.finished = true;
        self.ready.clear();
        let message = format!("upload refused: {failure:?}");
        record(&self.inner.slot, failure);
        Poll::Ready(Some(Err(message.into())))
    }
}

impl Stream for UnsignedTrailerBody {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(bytes) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(bytes)));
            }
            if self.finished {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut self.inner).poll_next(cx)) {
                Some(Ok(data)) => {
                    if let Err(failure) = self.frame(data) {
                        return self.fail(failure);
                    }
                }
                Some(Err(e)) => {
                    // HoldBackLast has recorded why.
                    self.finished = true;
                    return Poll::Ready(Some(Err(e)));
                }
                None => match self.final_frame() {
                    Ok(end) => {
                        self.finished = true;
                        self.ready.push_back(end);
                    }
                    Err(failure) => return self.fail(failure),
                },
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that fails when the provider sends nothing for `timeout`.
    ///
    /// The timer is re-armed lazily: a frame only notes when it came (a clock read), and the
    /// timer, when it fires, moves itself to `timeout` after the last frame if one came since.
    /// Re-arming the timer on every frame costs a timer-wheel update per frame, a large share of
    /// the hop's CPU on big downloads.
    pub struct IdleTimeoutBody<B> {
        #[pin]
        inner: B,
        timeout: Duration,
        last_frame: tokio::time::Instant,
        #[pin]
        deadline: tokio::time::Sleep,
    }
}

impl<B> IdleTimeoutBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            last_frame: tokio::time::Instant::now(),
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
                *this.last_frame = tokio::time::Instant::now();
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => loop {
                ready!(this.deadline.as_mut().poll(cx));
                let due = *this.last_frame + *this.timeout;
                if due > tokio::time::Instant::now() {
                    // A frame came since the timer was set: it waits for the rest of the time.
                    this.deadline.as_mut().reset(due);
                    continue;
                }
                let message = format!("upstream sent no data for {} s", this.timeout.as_secs());
                return Poll::Ready(Some(Err(message.into())));
            },
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

    /// Frames that keep coming keep a download alive however long it takes in all; silence
    /// ends it one timeout after the last frame, not one timeout after the start.
    #[tokio::test]
    async fn an_idle_timeout_counts_from_the_last_frame() {
        use http_body_util::BodyExt as _;
        let timeout = Duration::from_millis(300);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
        let mut body = Box::pin(IdleTimeoutBody::new(http_body_util::StreamBody::new(stream), timeout));
        let sender = tokio::spawn(async move {
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if tx.send(Ok(Frame::data(Bytes::from_static(b"x")))).await.is_err() {
                    return;
                }
            }
            // Then silence, with the sender kept open.
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(tx);
        });
        let started = std::time::Instant::now();
        for n in 0..6 {
            let frame = body
                .frame()
                .await
                .expect("a frame")
                .unwrap_or_else(|e| panic!("frame {n}: {e}"));
            assert!(frame.is_data());
        }
        // 600 ms in, twice the timeout: still alive because frames came.
        assert!(started.elapsed() >= Duration::from_millis(550));
        let last = std::time::Instant::now();
        let ended = body.frame().await.expect("an error frame");
        let waited = last.elapsed();
        assert!(ended.is_err(), "silence ends the body with an error");
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_millis(1500),
            "ended {waited:?} after the last frame"
        );
        sender.abort();
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

    /// Found by fuzzing (`aws_chunked_upload`): s3s decodes an aws-chunked body to its end
    /// without comparing its length with `x-amz-decoded-content-length`, so the de-chunked body
    /// holds itself to the announced length, refusing before its last piece.
    #[tokio::test]
    async fn a_body_of_another_length_than_announced_never_releases_its_last_piece() {
        let pieces = || {
            stream_of(vec![
                Ok(Bytes::from("ab")),
                Ok(Bytes::from("cd")),
                Ok(Bytes::from("ef")),
            ])
        };
        for (announced, released, failure) in [
            (
                0,
                0,
                UploadFailure::Malformed("the body is longer than its x-amz-decoded-content-length".into()),
            ),
            (
                3,
                0,
                UploadFailure::Malformed("the body is longer than its x-amz-decoded-content-length".into()),
            ),
            (7, 2, UploadFailure::Incomplete),
            (40, 2, UploadFailure::Incomplete),
        ] {
            let slot = FailureSlot::default();
            let out: Vec<_> = HoldBackLast::new(pieces(), None, slot.clone())
                .expecting_length(announced)
                .collect()
                .await;
            let sent: Vec<&Bytes> = out.iter().filter_map(|r| r.as_ref().ok()).collect();
            assert_eq!(sent.len(), released, "announced {announced}: {sent:?}");
            assert!(out.last().is_some_and(Result::is_err), "announced {announced}");
            assert_eq!(recorded_failure(&slot), Some(failure), "announced {announced}");
        }
        let slot = FailureSlot::default();
        let out: Vec<_> = HoldBackLast::new(pieces(), None, slot.clone())
            .expecting_length(6)
            .collect()
            .await;
        assert!(
            out.iter().all(Result::is_ok) && out.len() == 3,
            "the announced length passes"
        );
        assert_eq!(recorded_failure(&slot), None);
    }

    /// `data` cut into `piece`-sized pieces, framed with a header CRC32 check of `claimed`.
    async fn reframe(data: &[u8], piece: usize, claimed: &str) -> (Vec<Result<Bytes, BoxError>>, FailureSlot) {
        let pieces = data
            .chunks(piece.max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let check = ChecksumCheck::new(ChecksumAlgorithm::Crc32, ExpectedChecksum::Header(claimed.to_string()));
        let slot = FailureSlot::default();
        let held = HoldBackLast::new(stream_of(pieces), Some(check), slot.clone());
        let out = UnsignedTrailerBody::new(held, ChecksumAlgorithm::Crc32, data.len() as u64)
            .collect()
            .await;
        (out, slot)
    }

    /// Reads an `aws-chunked` body: (data, chunk sizes, trailer lines).
    fn decode_chunked(mut encoded: &[u8]) -> (Vec<u8>, Vec<usize>, Vec<String>) {
        fn line<'a>(input: &mut &'a [u8]) -> &'a [u8] {
            let end = input.windows(2).position(|w| w == b"\r\n").expect("CRLF");
            let (l, rest) = input.split_at(end);
            *input = &rest[2..];
            l
        }
        let (mut data, mut sizes) = (Vec::new(), Vec::new());
        loop {
            let size = usize::from_str_radix(std::str::from_utf8(line(&mut encoded)).expect("hex"), 16).expect("hex");
            sizes.push(size);
            if size == 0 {
                break;
            }
            data.extend_from_slice(&encoded[..size]);
            encoded = &encoded[size..];
            assert_eq!(line(&mut encoded), b"", "chunk data ends with CRLF");
        }
        let mut trailers = Vec::new();
        loop {
            let l = line(&mut encoded);
            if l.is_empty() {
                break;
            }
            trailers.push(String::from_utf8(l.to_vec()).expect("utf-8"));
        }
        assert!(encoded.is_empty(), "nothing after the final CRLF");
        (data, sizes, trailers)
    }

    #[tokio::test]
    async fn a_verified_body_is_framed_in_64_kib_chunks_with_its_trailer_at_the_computed_length() {
        const K64: usize = 64 * 1024;
        for len in [0, 1, K64 - 1, K64, K64 + 1, 3 * K64 + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let crc = ChecksumAlgorithm::Crc32.of(&data);
            for piece in [1000, 7, K64, 100_000] {
                let (out, slot) = reframe(&data, piece, &crc).await;
                let encoded: Vec<u8> = out.into_iter().flat_map(|r| r.expect("ok").to_vec()).collect();
                assert_eq!(recorded_failure(&slot), None);
                assert_eq!(
                    encoded.len() as u64,
                    unsigned_trailer_encoded_length(len as u64, ChecksumAlgorithm::Crc32),
                    "{len} bytes in {piece}-byte pieces"
                );
                let (decoded, sizes, trailers) = decode_chunked(&encoded);
                assert_eq!(decoded, data, "{len}/{piece}");
                assert!(sizes[..sizes.len() - 1].iter().all(|s| *s > 0 && *s <= K64));
                assert!(
                    sizes[..sizes.len().saturating_sub(2)].iter().all(|s| *s == K64),
                    "{sizes:?}"
                );
                assert_eq!(trailers, [format!("x-amz-checksum-crc32:{crc}")]);
            }
        }
    }

    /// `data` cut at `cuts` (any positions, empty pieces included), framed with a header CRC32
    /// check of `claimed`: what the re-framer sends, and what it recorded.
    fn reframe_split(
        data: &[u8],
        cuts: &[proptest::sample::Index],
        claimed: &str,
    ) -> (Vec<Result<Bytes, BoxError>>, FailureSlot) {
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
        at.push(0);
        at.push(data.len());
        at.sort_unstable();
        let pieces = at
            .windows(2)
            .map(|w| Ok(Bytes::copy_from_slice(&data[w[0]..w[1]])))
            .collect();
        let check = ChecksumCheck::new(ChecksumAlgorithm::Crc32, ExpectedChecksum::Header(claimed.to_string()));
        let slot = FailureSlot::default();
        let held = HoldBackLast::new(stream_of(pieces), Some(check), slot.clone());
        let body = UnsignedTrailerBody::new(held, ChecksumAlgorithm::Crc32, data.len() as u64);
        (futures::executor::block_on(body.collect()), slot)
    }

    /// Bodies of up to three 64 KiB chunks and a bit, with deterministic content.
    fn body_strategy() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        (0..3 * 65_536 + 100usize, any::<u8>())
            .prop_map(|(len, seed)| (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 64,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        #[test]
        fn any_split_of_a_verified_body_is_framed_to_the_same_bytes(
            data in body_strategy(),
            cuts in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..12),
        ) {
            let crc = ChecksumAlgorithm::Crc32.of(&data);
            let (out, slot) = reframe_split(&data, &cuts, &crc);
            proptest::prop_assert_eq!(recorded_failure(&slot), None);
            let encoded: Vec<u8> = out.into_iter().flat_map(|r| r.expect("ok").to_vec()).collect();
            // However the input was split, the framing is the one for the whole body at once.
            let (whole, _) = reframe_split(&data, &[], &crc);
            let whole: Vec<u8> = whole.into_iter().flat_map(|r| r.expect("ok").to_vec()).collect();
            proptest::prop_assert!(encoded == whole, "{} cuts changed the framing", cuts.len());
            proptest::prop_assert_eq!(
                encoded.len() as u64,
                unsigned_trailer_encoded_length(data.len() as u64, ChecksumAlgorithm::Crc32)
            );
            let (decoded, _, trailers) = decode_chunked(&encoded);
            proptest::prop_assert!(decoded == data, "the data round-trips");
            proptest::prop_assert_eq!(trailers, vec![format!("x-amz-checksum-crc32:{crc}")]);
        }

        #[test]
        fn any_split_of_a_body_whose_checksum_fails_never_sends_its_end(
            data in body_strategy(),
            cuts in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..12),
        ) {
            let wrong = ChecksumAlgorithm::Crc32.of(&[data.as_slice(), b"x"].concat());
            proptest::prop_assume!(wrong != ChecksumAlgorithm::Crc32.of(&data));
            let (out, slot) = reframe_split(&data, &cuts, &wrong);
            proptest::prop_assert!(out.last().is_some_and(Result::is_err), "the body ends with an error");
            let sent: Vec<u8> = out.iter().filter_map(|r| r.as_ref().ok()).flat_map(|b| b.to_vec()).collect();
            proptest::prop_assert!(!sent.windows(14).any(|w| w == b"x-amz-checksum"), "no trailer went out");
            proptest::prop_assert!(
                (sent.len() as u64) < unsigned_trailer_encoded_length(data.len() as u64, ChecksumAlgorithm::Crc32)
            );
            proptest::prop_assert_eq!(
                recorded_failure(&slot),
                Some(UploadFailure::ChecksumMismatch { algorithm: ChecksumAlgorithm::Crc32 })
            );
        }
    }

    #[test]
    fn encoded_lengths_cover_every_algorithm() {
        // "0\r\n" + "x-amz-checksum-sha256:" + 44 + "\r\n" + "\r\n"
        assert_eq!(
            unsigned_trailer_encoded_length(0, ChecksumAlgorithm::Sha256),
            3 + 22 + 44 + 2 + 2
        );
        // "1\r\nx\r\n" + "0\r\n" + "x-amz-checksum-crc64nvme:" + 12 + "\r\n\r\n"
        assert_eq!(
            unsigned_trailer_encoded_length(1, ChecksumAlgorithm::Crc64Nvme),
            6 + 3 + 25 + 12 + 4
        );
        // "10000\r\n" + 65536 + "\r\n" + "1\r\nx\r\n" + "0\r\n" + "x-amz-checksum-crc32:" + 8 + "\r\n\r\n"
        assert_eq!(
            unsigned_trailer_encoded_length(65_537, ChecksumAlgorithm::Crc32),
            7 + 65_536 + 2 + 6 + 3 + 21 + 8 + 4
        );
    }

    #[tokio::test]
    async fn a_bad_trailer_never_releases_the_last_piece_nor_the_end_of_the_framing() {
        let data = vec![5u8; 150_000];
        let (out, slot) = reframe(&data, 40_000, "AAAAAA==").await;
        let last = out.last().expect("something");
        assert!(last.is_err(), "the body ends with an error");
        let sent: Vec<u8> = out
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .flat_map(|b| b.to_vec())
            .collect();
        // Two chunk headers and three of the four 40,000/30,000-byte pieces.
        let framing = b"10000\r\n".len() + b"\r\n10000\r\n".len();
        assert_eq!(
            sent.len(),
            framing + 120_000,
            "the last 30,000-byte piece was held back"
        );
        assert!(!sent.ends_with(b"\r\n\r\n") && !sent.windows(3).any(|w| w == b"\n0\r"));
        assert_eq!(
            recorded_failure(&slot),
            Some(UploadFailure::ChecksumMismatch {
                algorithm: ChecksumAlgorithm::Crc32
            })
        );
    }

    #[tokio::test]
    async fn a_body_longer_or_shorter_than_announced_is_refused() {
        let data = vec![1u8; 1000];
        let crc = ChecksumAlgorithm::Crc32.of(&data);
        for (announced, failure) in [(999, "Malformed"), (1001, "Incomplete")] {
            let check = ChecksumCheck::new(ChecksumAlgorithm::Crc32, ExpectedChecksum::Header(crc.clone()));
            let slot = FailureSlot::default();
            let held = HoldBackLast::new(
                stream_of(vec![Ok(Bytes::from(data.clone()))]),
                Some(check),
                slot.clone(),
            );
            let out: Vec<_> = UnsignedTrailerBody::new(held, ChecksumAlgorithm::Crc32, announced)
                .collect()
                .await;
            assert!(out.last().is_some_and(Result::is_err), "{announced}");
            let recorded = format!("{:?}", recorded_failure(&slot));
            assert!(recorded.contains(failure), "{announced}: {recorded}");
        }
    }
}
