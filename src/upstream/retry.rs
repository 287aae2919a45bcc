//! When a failed provider exchange is tried again, and after how long.
//!
//! The rule (pingora's, extended to idempotent reads; `docs/reliability.md` has the source): a
//! request is repeated only when repeating it cannot do twice what the provider may already
//! have done once. So a request is retried when
//! - nothing reached the provider (the connection was refused or did not open), whatever the
//!   method, as long as nothing of its body was sent;
//! - the connection closed or reset before any response byte, and the method is idempotent
//!   (GET, HEAD, PUT, DELETE) and nothing of its body was sent (a PUT whose body started is never
//!   repeated: the body is a stream that cannot be read twice, and the provider may hold part of
//!   it); a POST (CreateMultipartUpload, CompleteMultipartUpload, DeleteObjects) is not, since
//!   the provider may have acted on it;
//! - the provider answered 500 or 503 to a GET or HEAD (reads and listings), which repeat safely.
//!
//! A request that got no answer within `read_timeout` is not retried: the client has already
//! waited that long, and a provider that stalls is not helped by a second request. A TLS
//! certificate that does not verify is not retried either: it will not verify next time.
//!
//! Retries wait with exponential backoff and jitter (half the delay fixed, half random), and a
//! `Retry-After` the provider sends is honoured when it is within `retry_after_max`; a longer
//! one ends the retries and the answer (with its `Retry-After`) goes to the client, who can
//! wait that long better than a request held open in the gateway.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::body::{BoxError, UpstreamBody};
pub use crate::config::RetryPolicy;

/// How one attempt ended, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// No connection: nothing reached the provider.
    NotConnected,
    /// The connection closed or reset before any response byte.
    NoResponse,
    /// No response headers within the read timeout.
    TimedOut,
    /// A failure a repeat would meet again: a TLS certificate that does not verify, a request
    /// that cannot be built.
    WouldFailAgain,
    /// The provider answered with this status; `retry_after` is its `Retry-After`, if it
    /// sent one that parses.
    Answered {
        status: StatusCode,
        retry_after: Option<Duration>,
    },
}

/// Why a retry is made: the `reason` label of `s3ferry_upstream_retries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    NotConnected,
    NoResponse,
    Status5xx,
}

impl RetryReason {
    pub fn label(self) -> &'static str {
        match self {
            Self::NotConnected => "not_connected",
            Self::NoResponse => "no_response",
            Self::Status5xx => "status_5xx",
        }
    }
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Done: the answer (or the error) goes to the caller.
    Stop,
    /// Try again after this long.
    RetryAfter(Duration, RetryReason),
}

/// Whether the attempt `retries_done` (0 for the first) that ended in `outcome` is tried again.
/// `body_sent`: whether any of the request body left s3ferry. `jitter` in `0.0..=1.0` picks the
/// random half of the delay (a pure input, so the rule is testable).
pub fn decide_retry(
    policy: &RetryPolicy,
    method: &Method,
    body_sent: bool,
    outcome: AttemptOutcome,
    retries_done: u32,
    jitter: f64,
) -> RetryDecision {
    if retries_done >= policy.retries || body_sent {
        return RetryDecision::Stop;
    }
    let idempotent = matches!(*method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE);
    let reads = matches!(*method, Method::GET | Method::HEAD);
    let (reason, asked_wait) = match outcome {
        AttemptOutcome::NotConnected => (RetryReason::NotConnected, None),
        AttemptOutcome::NoResponse if idempotent => (RetryReason::NoResponse, None),
        AttemptOutcome::Answered { status, retry_after }
            if reads && (status == StatusCode::INTERNAL_SERVER_ERROR || status == StatusCode::SERVICE_UNAVAILABLE) =>
        {
            (RetryReason::Status5xx, retry_after)
        }
        _ => return RetryDecision::Stop,
    };
    if asked_wait.is_some_and(|wait| wait > policy.retry_after_max) {
        return RetryDecision::Stop;
    }
    let backoff = backoff_delay(policy, retries_done, jitter);
    RetryDecision::RetryAfter(backoff.max(asked_wait.unwrap_or_default()), reason)
}

/// `backoff * 2^retries_done`, capped at `retry_after_max`; half of it fixed, half scaled by
/// `jitter`, so that clients failed by one outage do not all come back at once.
fn backoff_delay(policy: &RetryPolicy, retries_done: u32, jitter: f64) -> Duration {
    let factor = 2u32.saturating_pow(retries_done.min(16));
    let full = policy.backoff.saturating_mul(factor).min(policy.retry_after_max);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// A `Retry-After` in seconds or as an HTTP date (then measured from now).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// A number in `0.0..1.0` that differs between calls, for jitter. The standard library's
/// randomly keyed hasher is random enough to spread retries, and needs no new dependency.
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos().into()),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A request body lent to one attempt: the attempt reads it through a [`LentBody`], and if the
/// attempt failed without reading any of it, the body is taken back for the next one. Once an
/// attempt has read from it, it is gone for good and the request is not repeated.
pub struct BodyLoan {
    slot: Arc<Mutex<Option<UpstreamBody>>>,
    /// The body was empty from the start: any attempt can have a fresh empty one.
    empty: bool,
}

impl BodyLoan {
    pub fn new(body: UpstreamBody) -> Self {
        let empty = body.is_end_stream();
        Self {
            slot: Arc::new(Mutex::new(Some(body))),
            empty,
        }
    }

    /// The body for the next attempt: `None` once an attempt has read some of it.
    pub fn lend(&self) -> Option<UpstreamBody> {
        if self.empty {
            return Some(crate::body::empty());
        }
        let present = self.slot.lock().ok().is_some_and(|slot| slot.is_some());
        present.then(|| {
            http_body_util::BodyExt::boxed(LentBody {
                slot: self.slot.clone(),
                taken: None,
            })
        })
    }

    /// Whether some of the body has been read by an attempt (so it cannot be sent again).
    pub fn sent(&self) -> bool {
        !self.empty && self.slot.lock().map_or(true, |slot| slot.is_none())
    }
}

/// The body as one attempt sees it: the first read takes it out of the loan for good.
struct LentBody {
    slot: Arc<Mutex<Option<UpstreamBody>>>,
    taken: Option<UpstreamBody>,
}

impl HttpBody for LentBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.taken.is_none() {
            let body = self.slot.lock().ok().and_then(|mut slot| slot.take());
            match body {
                Some(body) => self.taken = Some(body),
                None => return Poll::Ready(Some(Err("the request body was already sent".into()))),
            }
        }
        match self.taken.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.taken {
            Some(body) => body.is_end_stream(),
            None => self
                .slot
                .lock()
                .ok()
                .is_some_and(|slot| slot.as_ref().is_some_and(HttpBody::is_end_stream)),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.taken {
            Some(body) => body.size_hint(),
            None => self
                .slot
                .lock()
                .ok()
                .and_then(|slot| slot.as_ref().map(HttpBody::size_hint))
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        retries: 2,
        backoff: Duration::from_millis(100),
        retry_after_max: Duration::from_secs(5),
    };

    fn answered(status: u16, retry_after: Option<u64>) -> AttemptOutcome {
        AttemptOutcome::Answered {
            status: StatusCode::from_u16(status).expect("status"),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn only_requests_safe_to_repeat_are_retried() {
        use AttemptOutcome::{NoResponse, NotConnected, TimedOut, WouldFailAgain};
        let retry = |reason| Some(reason);
        // (method, body sent, outcome, retried for this reason?)
        let table: Vec<(Method, bool, AttemptOutcome, Option<RetryReason>)> = vec![
            (Method::GET, false, NotConnected, retry(RetryReason::NotConnected)),
            (Method::POST, false, NotConnected, retry(RetryReason::NotConnected)),
            (Method::PUT, false, NotConnected, retry(RetryReason::NotConnected)),
            (Method::PUT, true, NotConnected, None),
            (Method::GET, false, NoResponse, retry(RetryReason::NoResponse)),
            (Method::HEAD, false, NoResponse, retry(RetryReason::NoResponse)),
            (Method::DELETE, false, NoResponse, retry(RetryReason::NoResponse)),
            (Method::PUT, false, NoResponse, retry(RetryReason::NoResponse)),
            (Method::PUT, true, NoResponse, None),
            (Method::POST, false, NoResponse, None),
            (Method::POST, true, NoResponse, None),
            (Method::GET, false, TimedOut, None),
            (Method::GET, false, WouldFailAgain, None),
            (Method::GET, false, answered(500, None), retry(RetryReason::Status5xx)),
            (
                Method::GET,
                false,
                answered(503, Some(1)),
                retry(RetryReason::Status5xx),
            ),
            (Method::HEAD, false, answered(503, None), retry(RetryReason::Status5xx)),
            (Method::GET, false, answered(502, None), None),
            (Method::GET, false, answered(404, None), None),
            (Method::GET, false, answered(200, None), None),
            (Method::PUT, false, answered(503, None), None),
            (Method::PUT, true, answered(500, None), None),
            (Method::POST, false, answered(503, None), None),
            (Method::DELETE, false, answered(500, None), None),
            // A wait longer than the cap is the client's to make.
            (Method::GET, false, answered(503, Some(6)), None),
        ];
        for (method, body_sent, outcome, expected) in table {
            let got = match decide_retry(&POLICY, &method, body_sent, outcome, 0, 0.5) {
                RetryDecision::RetryAfter(_, reason) => Some(reason),
                RetryDecision::Stop => None,
            };
            assert_eq!(got, expected, "{method} body_sent={body_sent} {outcome:?}");
        }
    }

    #[test]
    fn retries_end_at_the_bound() {
        let outcome = AttemptOutcome::NotConnected;
        assert!(matches!(
            decide_retry(&POLICY, &Method::GET, false, outcome, 1, 0.0),
            RetryDecision::RetryAfter(..)
        ));
        assert_eq!(
            decide_retry(&POLICY, &Method::GET, false, outcome, 2, 0.0),
            RetryDecision::Stop
        );
        let off = RetryPolicy { retries: 0, ..POLICY };
        assert_eq!(
            decide_retry(&off, &Method::GET, false, outcome, 0, 0.0),
            RetryDecision::Stop
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let delay =
            |done, jitter| match decide_retry(&POLICY, &Method::GET, false, AttemptOutcome::NotConnected, done, jitter)
            {
                RetryDecision::RetryAfter(d, _) => d,
                RetryDecision::Stop => panic!("retried"),
            };
        assert_eq!(delay(0, 0.0), Duration::from_millis(50));
        assert_eq!(delay(0, 1.0), Duration::from_millis(100));
        assert_eq!(delay(1, 0.0), Duration::from_millis(100));
        assert_eq!(delay(1, 1.0), Duration::from_millis(200));
        let many = RetryPolicy { retries: 40, ..POLICY };
        let capped = decide_retry(&many, &Method::GET, false, AttemptOutcome::NotConnected, 30, 1.0);
        assert_eq!(
            capped,
            RetryDecision::RetryAfter(Duration::from_secs(5), RetryReason::NotConnected)
        );
    }

    #[test]
    fn retry_after_within_the_cap_is_honoured() {
        let got = decide_retry(&POLICY, &Method::GET, false, answered(503, Some(2)), 0, 0.0);
        assert_eq!(
            got,
            RetryDecision::RetryAfter(Duration::from_secs(2), RetryReason::Status5xx)
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_as_a_date() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO), "a date in the past: now");
        headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn jitter_is_in_range() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }

    #[tokio::test]
    async fn a_body_is_lent_again_only_while_unread() {
        use http_body_util::BodyExt as _;
        let loan = BodyLoan::new(crate::body::full(Bytes::from_static(b"abc")));
        let first = loan.lend().expect("lent");
        assert_eq!(first.size_hint().exact(), Some(3));
        drop(first);
        assert!(!loan.sent(), "an attempt that read nothing leaves the body");
        let second = loan.lend().expect("lent again");
        let bytes = second.collect().await.expect("body").to_bytes();
        assert_eq!(&bytes[..], b"abc");
        assert!(loan.sent());
        assert!(loan.lend().is_none(), "a read body is not sent twice");

        let empty = BodyLoan::new(crate::body::empty());
        drop(empty.lend().expect("lent").collect().await.expect("body"));
        assert!(!empty.sent(), "an empty body can always be sent again");
        assert!(empty.lend().is_some());
    }
}
