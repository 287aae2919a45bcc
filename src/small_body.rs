//! Small bodies read whole into memory, and the one byte budget they all share.
//!
//! s3ferry streams object data, but a few bodies must be seen whole: the client's control
//! documents (DeleteObjects, CompleteMultipartUpload, ACL policies, PutBucket* documents that
//! need a `Content-MD5`) and the provider answers it parses or rewrites (listings, errors, copy
//! results). Each is capped on its own ([`ReadLimits::max`]), but a cap per body does not bound
//! the process: 60 concurrent 4 MiB DeleteObjects would hold 240 MiB. So every such read in the
//! request path goes through [`read_capped`], which takes its bytes from the gateway's one
//! [`BodyBudget`] (`server.max_buffered_body_bytes`) before it buffers them and gives them back
//! when the buffer ([`Buffered`]) is dropped — after the bytes were sent on, not when they were
//! read.
//!
//! A body whose `Content-Length` is known takes its whole size at once, before reading a byte:
//! readers that each hold part of what they need and wait for the rest could starve one
//! another. A body of unknown length takes its bytes as they arrive. When the budget has no
//! room within a short wait ([`BUDGET_WAIT`]), the read fails with [`ReadError::Overloaded`],
//! which the client sees as `503 SlowDown` (what AWS answers when it is overloaded) with a
//! `Retry-After`; nothing of that request has reached a provider.

use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::body::UpstreamBody;

/// How long a read waits for room in the budget before the request is refused: long enough to
/// ride out a burst, short enough that a client retrying after `Retry-After` does better.
/// The largest XML answer of a provider s3ferry reads to rewrite or learn from (a ListObjects
/// page of 1,000 long keys is well under 1 MiB).
pub const MAX_XML_BODY: usize = 16 * 1024 * 1024;

/// The largest control document a client sends that s3ferry reads (DeleteObjects of 1,000 keys,
/// CompleteMultipartUpload of 10,000 parts, PutBucket* documents).
pub const MAX_CONTROL_BODY: usize = 4 * 1024 * 1024;

/// The most of a small answer read whole: an S3 `<Error>`, a PutObject, CopyObject, UploadPart
/// or CompleteMultipartUpload result.
pub const MAX_SMALL_ANSWER: usize = 64 * 1024;

/// The largest `AccessControlPolicy` body read (AWS allows 100 grants; a few KiB).
pub const MAX_ACL_BODY: usize = 64 * 1024;

pub const BUDGET_WAIT: Duration = Duration::from_millis(500);

/// The bytes all small bodies of one running gateway may hold at once.
#[derive(Clone)]
pub struct BodyBudget {
    inner: Arc<BudgetInner>,
}

struct BudgetInner {
    bytes: Arc<Semaphore>,
    total: usize,
    wait: Duration,
    /// `s3ferry_buffered_body_budget_free_bytes`, moved by deltas so concurrent releases
    /// never leave a stale value behind.
    free_gauge: Option<IntGauge>,
}

impl std::fmt::Debug for BodyBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyBudget")
            .field("total", &self.inner.total)
            .field("free", &self.free())
            .finish()
    }
}

impl BodyBudget {
    /// A budget of `total` bytes; `free_gauge` (if any) reports the free bytes.
    pub fn new(total: usize, wait: Duration, free_gauge: Option<IntGauge>) -> Self {
        if let Some(g) = &free_gauge {
            g.set(i64::try_from(total).unwrap_or(i64::MAX));
        }
        Self {
            inner: Arc::new(BudgetInner {
                bytes: Arc::new(Semaphore::new(total)),
                total,
                wait,
                free_gauge,
            }),
        }
    }

    /// The configured size.
    pub fn total(&self) -> usize {
        self.inner.total
    }

    /// The bytes no buffer holds now.
    pub fn free(&self) -> usize {
        self.inner.bytes.available_permits()
    }

    /// Takes `bytes` from the budget, waiting at most the budget's wait. An amount larger than
    /// the whole budget can never fit and fails at once.
    async fn take(&self, bytes: usize) -> Result<BudgetPermit, ReadError> {
        let mut permit = BudgetPermit::none(self);
        if bytes == 0 {
            return Ok(permit);
        }
        let count = u32::try_from(bytes).map_err(|_| ReadError::Overloaded)?;
        if bytes > self.inner.total {
            return Err(ReadError::Overloaded);
        }
        let acquire = self.inner.bytes.clone().acquire_many_owned(count);
        match tokio::time::timeout(self.inner.wait, acquire).await {
            Ok(Ok(p)) => {
                if let Some(g) = &self.inner.free_gauge {
                    g.sub(i64::from(count));
                }
                permit.permit = Some(p);
                Ok(permit)
            }
            // Timed out, or (never here) the semaphore was closed.
            Ok(Err(_)) | Err(_) => Err(ReadError::Overloaded),
        }
    }
}

/// Bytes taken from a [`BodyBudget`], given back when dropped.
pub struct BudgetPermit {
    permit: Option<OwnedSemaphorePermit>,
    free_gauge: Option<IntGauge>,
}

impl BudgetPermit {
    fn none(budget: &BodyBudget) -> Self {
        Self {
            permit: None,
            free_gauge: budget.inner.free_gauge.clone(),
        }
    }

    /// The bytes held.
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }

    fn merge(&mut self, mut other: BudgetPermit) {
        match (&mut self.permit, other.permit.take()) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, theirs) => self.permit = theirs,
            (Some(_), None) => {}
        }
    }
}

impl Drop for BudgetPermit {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            let n = permit.num_permits();
            drop(permit);
            if let Some(g) = &self.free_gauge {
                g.add(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }
}

/// A body read into memory, holding its bytes of the budget until it is dropped (or until the
/// body made of it has been sent, see [`Buffered::into_upstream_body`]).
pub struct Buffered {
    bytes: Bytes,
    permit: BudgetPermit,
}

impl Buffered {
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The same budget, now for `bytes` (a rewrite of these bytes, about the same size).
    pub fn replaced_by(self, bytes: Bytes) -> Self {
        Self {
            bytes,
            permit: self.permit,
        }
    }

    /// A body for the provider that gives the bytes back to the budget when it is dropped.
    pub fn into_upstream_body(self) -> UpstreamBody {
        use http_body_util::BodyExt as _;
        HeldBody::from(self).map_err(|never| match never {}).boxed()
    }

    /// A body for the client that gives the bytes back to the budget when it is dropped.
    pub fn into_client_body(self) -> s3s::Body {
        s3s::Body::http_body(HeldBody::from(self))
    }
}

impl Deref for Buffered {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl AsRef<[u8]> for Buffered {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl std::fmt::Debug for Buffered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffered")
            .field("len", &self.bytes.len())
            .field("held", &self.permit.bytes())
            .finish()
    }
}

/// A one-frame body that keeps its budget permit until it is dropped.
struct HeldBody {
    data: Option<Bytes>,
    _permit: BudgetPermit,
}

impl From<Buffered> for HeldBody {
    fn from(b: Buffered) -> Self {
        Self {
            data: (!b.bytes.is_empty()).then_some(b.bytes),
            _permit: b.permit,
        }
    }
}

impl HttpBody for HeldBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.get_mut().data.take().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// How much one read may hold and how long it may wait for data.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    pub max: usize,
    pub idle: Duration,
}

/// Why a small body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("body larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("no data for {seconds} s")]
    Idle { seconds: u64 },
    #[error("body failed: {0}")]
    Body(String),
    /// The gateway's budget for buffered bodies had no room within the wait.
    #[error("the budget for buffered bodies is exhausted")]
    Overloaded,
}

/// Reads `body` into memory: at most `limits.max` bytes, each taken from `budget` before it is
/// buffered. `expected` is the announced length, if the caller knows it (else the body's own
/// exact size hint is used): it is taken at once, and one that exceeds the cap fails before
/// anything is read.
pub async fn read_capped<B>(
    body: B,
    expected: Option<u64>,
    limits: ReadLimits,
    budget: &BodyBudget,
) -> Result<Buffered, ReadError>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    use http_body_util::BodyExt as _;
    let mut body = body;
    let expected = expected.or_else(|| body.size_hint().exact());
    let upfront = match expected {
        Some(n) if n > limits.max as u64 => return Err(ReadError::TooLarge { max: limits.max }),
        Some(n) => usize::try_from(n).unwrap_or(limits.max),
        None => 0,
    };
    let mut permit = budget.take(upfront).await?;
    let mut out = BytesMut::with_capacity(upfront);
    loop {
        let frame = match tokio::time::timeout(limits.idle, body.frame()).await {
            Err(_) => {
                return Err(ReadError::Idle {
                    seconds: limits.idle.as_secs(),
                });
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(ReadError::Body(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else { continue };
        let needed = out.len() + data.len();
        if needed > limits.max {
            return Err(ReadError::TooLarge { max: limits.max });
        }
        if needed > permit.bytes() {
            permit.merge(budget.take(needed - permit.bytes()).await?);
        }
        out.extend_from_slice(&data);
    }
    Ok(Buffered {
        bytes: out.freeze(),
        permit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt as _, Full, StreamBody};

    fn limits(max: usize) -> ReadLimits {
        ReadLimits {
            max,
            idle: Duration::from_secs(5),
        }
    }

    fn budget(total: usize) -> BodyBudget {
        BodyBudget::new(total, Duration::from_millis(50), None)
    }

    /// A body of `pieces` without a size hint (like a chunked upload).
    fn unsized_body(pieces: &[&'static [u8]]) -> impl HttpBody<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> =
            pieces.iter().map(|p| Ok(Frame::data(Bytes::from_static(p)))).collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_read_holds_its_bytes_until_the_buffer_is_dropped() {
        let budget = budget(100);
        let read = read_capped(Full::new(Bytes::from_static(b"0123456789")), None, limits(50), &budget)
            .await
            .expect("fits");
        assert_eq!(&read[..], b"0123456789");
        assert_eq!(budget.free(), 90);
        let body = read.into_upstream_body();
        assert_eq!(budget.free(), 90, "the body made of the buffer still holds them");
        let sent = body.collect().await.expect("infallible").to_bytes();
        assert_eq!(&sent[..], b"0123456789");
        assert_eq!(budget.free(), 100);
    }

    #[tokio::test]
    async fn an_unsized_body_takes_its_bytes_as_they_arrive() {
        let budget = budget(100);
        let read = read_capped(unsized_body(&[b"abc", b"defg"]), None, limits(50), &budget)
            .await
            .expect("fits");
        assert_eq!(&read[..], b"abcdefg");
        assert_eq!(budget.free(), 93);
        drop(read);
        assert_eq!(budget.free(), 100);
    }

    #[tokio::test]
    async fn an_announced_length_over_the_cap_fails_before_reading() {
        let budget = budget(100);
        let err = read_capped(unsized_body(&[b"abc"]), Some(51), limits(50), &budget)
            .await
            .expect_err("too large");
        assert_eq!(err, ReadError::TooLarge { max: 50 });
        let err = read_capped(unsized_body(&[b"abcdef"]), None, limits(5), &budget)
            .await
            .expect_err("too large");
        assert_eq!(err, ReadError::TooLarge { max: 5 });
        assert_eq!(budget.free(), 100, "a failed read gives its bytes back");
    }

    #[tokio::test]
    async fn an_exhausted_budget_refuses_after_the_wait_and_recovers() {
        let budget = budget(10);
        let held = read_capped(Full::new(Bytes::from_static(b"12345678")), None, limits(50), &budget)
            .await
            .expect("fits");
        let refused = read_capped(Full::new(Bytes::from_static(b"123")), None, limits(50), &budget).await;
        assert_eq!(refused.expect_err("no room"), ReadError::Overloaded);
        let refused = read_capped(unsized_body(&[b"12", b"3"]), None, limits(50), &budget).await;
        assert_eq!(refused.expect_err("no room"), ReadError::Overloaded);
        assert_eq!(budget.free(), 2, "the refused reads gave back what they had taken");
        drop(held);
        let read = read_capped(Full::new(Bytes::from_static(b"123")), None, limits(50), &budget)
            .await
            .expect("room again");
        assert_eq!(read.len(), 3);
    }

    #[tokio::test]
    async fn a_read_waits_briefly_for_room() {
        let budget = BodyBudget::new(10, Duration::from_secs(5), None);
        let held = read_capped(Full::new(Bytes::from_static(b"12345678")), None, limits(50), &budget)
            .await
            .expect("fits");
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(held);
        });
        let read = read_capped(Full::new(Bytes::from_static(b"123")), None, limits(50), &budget)
            .await
            .expect("room after the other buffer was dropped");
        assert_eq!(read.len(), 3);
        release.await.expect("joined");
    }

    #[tokio::test]
    async fn more_than_the_whole_budget_is_refused_at_once() {
        let budget = BodyBudget::new(4, Duration::from_secs(30), None);
        let started = std::time::Instant::now();
        let refused = read_capped(Full::new(Bytes::from_static(b"12345")), None, limits(50), &budget).await;
        assert_eq!(refused.expect_err("never fits"), ReadError::Overloaded);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "did not wait for the impossible"
        );
    }

    #[tokio::test]
    async fn the_free_gauge_follows_the_budget() {
        let gauge = IntGauge::new("free", "free bytes").expect("gauge");
        let budget = BodyBudget::new(64, Duration::from_millis(50), Some(gauge.clone()));
        assert_eq!(gauge.get(), 64);
        let read = read_capped(unsized_body(&[b"abcd", b"ef"]), None, limits(50), &budget)
            .await
            .expect("fits");
        assert_eq!(gauge.get(), 58);
        let rewritten = read.replaced_by(Bytes::from_static(b"x"));
        assert_eq!(gauge.get(), 58, "a rewrite keeps the original's bytes");
        drop(rewritten);
        assert_eq!(gauge.get(), 64);
    }
}
