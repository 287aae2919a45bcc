//! Who may change a key of a bucket under migration at a given moment: a client's write or
//! delete, or a background copy from the old provider.
//!
//! The rule: a background copy may only create an object that did not exist and was not
//! deleted since the copy started. Inside one s3ferry process that is enforced here, whatever
//! the new provider can do (some have no atomic conditional write at all):
//! - every client request that changes a key (PutObject, CopyObject, CompleteMultipartUpload,
//!   DeleteObject, each key of DeleteObjects) first *claims* the key ([`KeyClaims::claim`]);
//! - no copy of a claimed key starts ([`KeyClaims::start_copy`] refuses);
//! - a copy running when the claim comes is stopped if it has not reached its commit point
//!   (the last byte of its body, or its CompleteMultipartUpload), and awaited either way;
//!   only then does the client's request go to the provider, so it lands after the copy and
//!   wins. A provider cannot commit a PUT whose body ended short of its `Content-Length`.
//!
//! Client claims of one key take turns: a second client's write or delete of the key goes to
//! the provider only once the first is answered and its bookkeeping done. Otherwise a PUT's
//! success could clear the tombstone of a DELETE still on its way, and once that DELETE landed
//! neither the object nor its tombstone would be left: the old provider's copy would be back.
//! Turns are taken in arrival order, and DeleteObjects takes its keys in sorted order, so two
//! requests never wait on each other. Other processes (replicas, `s3ferry migrate`)
//! are not seen here: against them only the provider's conditional write protects (see the
//! README's Known limits).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::{Notify, watch};

use crate::body::BoxError;

/// A key of a provider bucket: (upstream bucket, key).
type KeyId = (String, String);

/// The claims and copies of every key being changed right now (keys no one touches are not
/// held, so the map stays as small as the work in flight).
#[derive(Debug, Default)]
pub struct KeyClaims {
    keys: Mutex<HashMap<KeyId, KeyState>>,
}

#[derive(Debug, Default)]
struct KeyState {
    client_claims: usize,
    /// Held by the client whose turn it is (see the module documentation).
    client_turn: Arc<tokio::sync::Mutex<()>>,
    copy: Option<RunningCopy>,
}

#[derive(Debug)]
struct RunningCopy {
    commit: Arc<CommitPoint>,
    /// Closes when the copy's lease is dropped (its sender never sends).
    ended: watch::Receiver<()>,
}

impl KeyClaims {
    fn lock(&self) -> MutexGuard<'_, HashMap<KeyId, KeyState>> {
        // The map holds counters only; a panic elsewhere cannot leave it half-updated.
        self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Claims `key` of `bucket` for a client's write or delete: stops a copy of it that has
    /// not committed, and returns once no copy of it runs. Until the claim is dropped no copy
    /// of the key starts.
    pub async fn claim(self: &Arc<Self>, bucket: &str, key: &str) -> KeyClaim {
        let id = (bucket.to_string(), key.to_string());
        let (running, turn) = {
            let mut keys = self.lock();
            let state = keys.entry(id.clone()).or_default();
            state.client_claims += 1;
            let running = state.copy.as_ref().map(|copy| {
                copy.commit.stop();
                copy.ended.clone()
            });
            (running, state.client_turn.clone())
        };
        // Made before waiting, so a client that goes away meanwhile still gives the claim back.
        let mut claim = KeyClaim {
            claims: self.clone(),
            id,
            _turn: None,
        };
        if let Some(mut ended) = running {
            // Err once the lease is dropped: the copy was stopped, or it committed and has its
            // answer (bounded by the provider's timeouts).
            while ended.changed().await.is_ok() {}
        }
        // Bounded by the request ahead, whose provider exchange has its own timeouts.
        claim._turn = Some(turn.lock_owned().await);
        claim
    }

    /// Claims every key of `keys` (DeleteObjects), in sorted order and each once, so two
    /// requests naming the same keys never each hold a turn the other waits for.
    pub async fn claim_all(self: &Arc<Self>, bucket: &str, keys: &[String]) -> Vec<KeyClaim> {
        let sorted: std::collections::BTreeSet<&String> = keys.iter().collect();
        let mut claims = Vec::with_capacity(sorted.len());
        for key in sorted {
            claims.push(self.claim(bucket, key).await);
        }
        claims
    }

    /// The right to copy `key` into `bucket` now: `None` while a client claims the key or
    /// another copy of it runs.
    pub fn start_copy(self: &Arc<Self>, bucket: &str, key: &str) -> Option<CopyLease> {
        let id = (bucket.to_string(), key.to_string());
        let mut keys = self.lock();
        let state = keys.entry(id.clone()).or_default();
        if state.client_claims > 0 || state.copy.is_some() {
            return None;
        }
        let commit = Arc::new(CommitPoint::default());
        let (ended_sender, ended) = watch::channel(());
        state.copy = Some(RunningCopy {
            commit: commit.clone(),
            ended,
        });
        Some(CopyLease {
            claims: self.clone(),
            id,
            commit,
            _ended: ended_sender,
        })
    }

    /// Keys with a claim or a copy (for tests: the map must empty again).
    pub fn keys_held(&self) -> usize {
        self.lock().len()
    }

    fn release(&self, id: &KeyId, client: bool) {
        let mut keys = self.lock();
        if let Some(state) = keys.get_mut(id) {
            if client {
                state.client_claims = state.client_claims.saturating_sub(1);
            } else {
                state.copy = None;
            }
            if state.client_claims == 0 && state.copy.is_none() {
                keys.remove(id);
            }
        }
    }
}

/// A client's claim on a key; dropping it gives the turn to the next client and lets copies of
/// the key start again.
#[derive(Debug)]
pub struct KeyClaim {
    claims: Arc<KeyClaims>,
    id: KeyId,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for KeyClaim {
    fn drop(&mut self) {
        self.claims.release(&self.id, true);
    }
}

/// A background copy's right to write a key; dropping it tells waiting clients the copy ended.
#[derive(Debug)]
pub struct CopyLease {
    claims: Arc<KeyClaims>,
    id: KeyId,
    commit: Arc<CommitPoint>,
    _ended: watch::Sender<()>,
}

impl CopyLease {
    /// The copy's commit point, which a client claim may close first.
    pub fn commit_point(&self) -> &Arc<CommitPoint> {
        &self.commit
    }
}

impl Drop for CopyLease {
    fn drop(&mut self) {
        self.claims.release(&self.id, false);
    }
}

const OPEN: u8 = 0;
const COMMITTED: u8 = 1;
const STOPPED: u8 = 2;

/// The moment a copy's write becomes able to take effect at the provider (it sends the last
/// byte of its body, or its CompleteMultipartUpload), raced against a client claim that stops
/// it: exactly one of the two wins.
#[derive(Debug, Default)]
pub struct CommitPoint {
    state: AtomicU8,
    /// The task polling a [`CommitGatedBody`], woken so a stop fails the body at once.
    body_waker: AtomicWaker,
    stopped: Notify,
}

impl CommitPoint {
    /// The copy is about to let its write take effect: true if it may (it was not stopped).
    pub fn try_commit(&self) -> bool {
        match self
            .state
            .compare_exchange(OPEN, COMMITTED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(state) => state == COMMITTED,
        }
    }

    /// Stops the copy unless it committed; returns whether it was stopped.
    pub fn stop(&self) -> bool {
        let stopped = self
            .state
            .compare_exchange(OPEN, STOPPED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
            || self.is_stopped();
        if stopped {
            self.body_waker.wake();
            self.stopped.notify_waiters();
        }
        stopped
    }

    pub fn is_stopped(&self) -> bool {
        self.state.load(Ordering::Acquire) == STOPPED
    }

    /// Resolves when the copy is stopped (never, once it committed).
    pub async fn stopped(&self) {
        loop {
            let notified = self.stopped.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }
}

/// Why a copy's body ended early.
#[derive(Debug, thiserror::Error)]
#[error("the copy was stopped by a client's write or delete of the same key")]
pub struct CopyStopped;

pin_project_lite::pin_project! {
    /// A copy's body that fails at its next poll once its [`CommitPoint`] is stopped. When the
    /// body is the write itself (`length` given), its last byte goes only if the commit point
    /// lets it, so a stopped copy's provider never has the whole body and cannot commit it.
    pub struct CommitGatedBody<B> {
        #[pin]
        inner: B,
        length: Option<u64>,
        sent: u64,
        commit: Arc<CommitPoint>,
    }
}

impl<B> CommitGatedBody<B> {
    /// The body of the write that commits the copy, `length` bytes long.
    pub fn new(inner: B, length: u64, commit: Arc<CommitPoint>) -> Self {
        Self {
            inner,
            length: Some(length),
            sent: 0,
            commit,
        }
    }

    /// A body that does not commit anything (a part of a multipart copy), cut when stopped.
    pub fn until_stopped(inner: B, commit: Arc<CommitPoint>) -> Self {
        Self {
            inner,
            length: None,
            sent: 0,
            commit,
        }
    }
}

impl<B> HttpBody for CommitGatedBody<B>
where
    B: HttpBody<Data = Bytes, Error = BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        this.commit.body_waker.register(cx.waker());
        if this.commit.is_stopped() {
            return Poll::Ready(Some(Err(Box::new(CopyStopped))));
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(length)) = (frame.data_ref(), *this.length) {
                    let sent = this.sent.saturating_add(data.len() as u64);
                    if sent >= length && !this.commit.try_commit() {
                        return Poll::Ready(Some(Err(Box::new(CopyStopped))));
                    }
                    *this.sent = sent;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) if this.length.is_some() && !this.commit.try_commit() => {
                Poll::Ready(Some(Err(Box::new(CopyStopped))))
            }
            other => other,
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
    use http_body_util::BodyExt as _;

    #[tokio::test]
    async fn a_claim_stops_an_uncommitted_copy_and_waits_for_it() {
        let claims = Arc::new(KeyClaims::default());
        let lease = claims.start_copy("b", "k").expect("nothing claims the key");
        assert!(claims.start_copy("b", "k").is_none(), "one copy of a key at a time");
        let commit = lease.commit_point().clone();
        let waiting = tokio::spawn({
            let claims = claims.clone();
            async move { claims.claim("b", "k").await }
        });
        commit.stopped().await;
        assert!(!commit.try_commit(), "a stopped copy cannot commit");
        assert!(!waiting.is_finished(), "the claim waits until the copy ended");
        drop(lease);
        let claim = waiting.await.expect("claim");
        assert!(
            claims.start_copy("b", "k").is_none(),
            "no copy starts while a client claims the key"
        );
        drop(claim);
        assert_eq!(claims.keys_held(), 0);
        assert!(claims.start_copy("b", "k").is_some());
    }

    #[tokio::test]
    async fn a_committed_copy_is_not_stopped_but_awaited() {
        let claims = Arc::new(KeyClaims::default());
        let lease = claims.start_copy("b", "k").expect("lease");
        assert!(lease.commit_point().try_commit());
        assert!(!lease.commit_point().stop(), "too late to stop");
        let waiting = tokio::spawn({
            let claims = claims.clone();
            async move { claims.claim("b", "k").await }
        });
        tokio::task::yield_now().await;
        drop(lease);
        drop(waiting.await.expect("claim"));
        assert_eq!(claims.keys_held(), 0);
    }

    #[tokio::test]
    async fn a_stopped_body_never_yields_its_last_byte() {
        let commit = Arc::new(CommitPoint::default());
        let inner = http_body_util::Full::new(Bytes::from_static(b"abc")).map_err(|e| match e {});
        let body = CommitGatedBody::new(inner.boxed(), 3, commit.clone());
        assert!(commit.stop());
        assert!(body.collect().await.is_err());

        let commit = Arc::new(CommitPoint::default());
        let inner = http_body_util::Full::new(Bytes::from_static(b"abc")).map_err(|e| match e {});
        let body = CommitGatedBody::new(inner.boxed(), 3, commit.clone());
        let bytes = body.collect().await.expect("whole body").to_bytes();
        assert_eq!(&bytes[..], b"abc");
        assert!(!commit.stop(), "a body that went whole has committed");
    }
}
