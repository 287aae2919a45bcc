//! One exchange with a provider: the outgoing request and the failure slot its client body
//! reports to, signed (or sent unsigned), sent, and measured.
//!
//! Every request s3ferry sends to a provider goes through [`Exchange::send`]: the client's own
//! requests, lazy migration's reads, tombstones and copies, cross-provider copies, ACL checks,
//! the metadata copy that keeps a trailing checksum, CORS preflights and bulk `migrate`/`check`.
//! It is the one place `s3ferry_upstream_duration_seconds` and `s3ferry_upstream_errors_total`
//! are recorded, so a bucket under migration shows all of its traffic. The readiness probe
//! (`Upstream::probe`) alone is not traffic and is not counted.

use std::time::Instant;

use http::Response;
use hyper::body::Incoming;

use super::{OutgoingRequest, Signing, Upstream};
use crate::body::{self, FailureSlot, UploadFailure};
use crate::error::GatewayError;
use crate::small_body::Buffered;

/// A request on its way to one provider, with what decides its outcome besides the provider's
/// answer.
pub struct Exchange {
    pub request: OutgoingRequest,
    /// Where the client's streamed body records a failed verification: that failure, not
    /// whatever the provider made of the aborted request, is the answer (s3ferry's own bodies
    /// never record one).
    slot: FailureSlot,
    signing: Signing,
}

impl Exchange {
    /// A request with a body of s3ferry's own (or none), signed with the provider's key.
    pub fn new(request: OutgoingRequest) -> Self {
        Self::with_client_body(request, FailureSlot::default())
    }

    /// A request carrying a client's body whose verifying stream reports to `slot`.
    pub fn with_client_body(request: OutgoingRequest, slot: FailureSlot) -> Self {
        Self {
            request,
            slot,
            signing: Signing::ProviderKey,
        }
    }

    /// Sent without any signature (no `Authorization`, no `x-amz-date` or
    /// `x-amz-content-sha256` of s3ferry's): the provider treats it as anonymous, so its own
    /// public-access rules decide (`anonymous = "provider"`), and its bucket's CORS
    /// configuration answers a browser's preflight, without s3ferry's key.
    pub fn unsigned(mut self) -> Self {
        self.signing = Signing::None;
        self
    }

    /// How the client's body failed verification, if it has (a small body read whole before
    /// the exchange is sent reports it this way).
    pub fn body_failure(&self) -> Option<UploadFailure> {
        body::recorded_failure(&self.slot)
    }

    /// Signs and sends the request (again where that is safe, see `upstream::retry`), and
    /// records the exchange. A client body that failed verification wins over whatever the
    /// provider answered: that failure is the client's, and is not counted against the
    /// provider.
    pub async fn send(self, provider: &Upstream) -> Result<Response<Incoming>, GatewayError> {
        let Self { request, slot, signing } = self;
        if let Some(pace) = provider.request_pace.get() {
            pace.acquire(1).await;
        }
        let sent = Instant::now();
        let result = provider.send_under(request, &provider.settings.retry, signing).await;
        if let Some(failure) = body::recorded_failure(&slot) {
            return Err(failure.into());
        }
        let result = result.map_err(|e| e.into_gateway_error(&provider.settings));
        if let Some(metrics) = &provider.metrics {
            let name = &provider.settings.name;
            match &result {
                Ok(_) => metrics.answered(name, sent.elapsed()),
                Err(e) => {
                    if let Some(kind) = e.upstream_error_kind() {
                        metrics.error(name, kind);
                    }
                }
            }
        }
        result
    }

    /// [`Exchange::send`] for a small answer, read whole (at most `max_body` bytes) under the
    /// gateway's body budget.
    pub async fn send_collect(self, provider: &Upstream, max_body: usize) -> Result<Response<Buffered>, GatewayError> {
        let (parts, body) = self.send(provider).await?.into_parts();
        let buffered = provider.read_answer(body, max_body).await?;
        Ok(Response::from_parts(parts, buffered))
    }
}
