//! The per-request record behind the one access-log event each request produces at the edge.
//!
//! The server creates a [`RequestContext`] per request and hands it down in the request's
//! extensions; the gateway fills in what only it knows (who signed, which operation, which
//! bucket and provider); the server emits the event when the response body has been sent, so
//! bytes and duration are final. Nothing secret is ever stored here.
//!
//! The bodies that measure the request at the edge live here too: [`CountingBody`] counts the
//! bytes the client sent, and [`EdgeBody`] counts the bytes sent back and emits the
//! [`AccessRecord`] when the response is done.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;

use crate::connection::InFlight;
use crate::metrics::{Metrics, RequestObservation};

/// Fields the gateway learns while handling a request.
#[derive(Debug, Default, Clone)]
pub struct AccessFields {
    pub client_key_id: Option<String>,
    pub operation: &'static str,
    pub bucket: Option<String>,
    pub upstream: Option<String>,
}

/// Shared between the edge and the gateway for one request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: Arc<str>,
    fields: Arc<Mutex<AccessFields>>,
}

impl RequestContext {
    pub fn new(request_id: String) -> Self {
        Self {
            request_id: request_id.into(),
            fields: Arc::default(),
        }
    }

    /// Updates the fields.
    pub fn record(&self, update: impl FnOnce(&mut AccessFields)) {
        if let Ok(mut guard) = self.fields.lock() {
            update(&mut guard);
        }
    }

    /// A copy of the fields as they are now.
    pub fn fields(&self) -> AccessFields {
        self.fields.lock().map(|g| g.clone()).unwrap_or_default()
    }
}

/// Marks a response the gateway produced itself or relayed from a provider, as opposed to an
/// error the verification front door (s3s) rendered, which the edge re-renders.
#[derive(Debug, Clone, Copy)]
pub struct HandledByGateway;

/// Counts request body bytes for the access log, and notes whether the body was read at all.
pub(crate) struct CountingBody {
    inner: Incoming,
    count: Arc<AtomicU64>,
    polled: Arc<AtomicBool>,
}

impl CountingBody {
    /// `count` adds up the data bytes read; `polled` is set at the first read.
    pub(crate) fn new(inner: Incoming, count: Arc<AtomicU64>, polled: Arc<AtomicBool>) -> Self {
        Self { inner, count, polled }
    }
}

impl HttpBody for CountingBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        self.polled.store(true, Ordering::Relaxed);
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.count.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What the access-log event and the request metrics need besides the gateway's fields.
pub(crate) struct AccessRecord {
    pub(crate) ctx: RequestContext,
    pub(crate) method: http::Method,
    /// The shape of the path (`/{bucket}/{key}`), never the client's names.
    pub(crate) path: &'static str,
    pub(crate) status: StatusCode,
    pub(crate) started: Instant,
    pub(crate) bytes_in: Arc<AtomicU64>,
    pub(crate) remote: SocketAddr,
    pub(crate) metrics: Arc<Metrics>,
}

impl AccessRecord {
    /// The request's one access-log event and its metrics. `body_failed`: the response body
    /// broke off while streaming (a provider failing mid-body).
    fn emit(self, bytes_out: u64, completed: bool, body_failed: bool) {
        let f = self.ctx.fields();
        let duration = self.started.elapsed();
        let bytes_in = self.bytes_in.load(Ordering::Relaxed);
        let upstream = f.upstream.as_deref().unwrap_or(crate::metrics::UNKNOWN);
        tracing::info!(
            target: "s3ferry::access",
            request_id = %self.ctx.request_id,
            method = %self.method,
            path = self.path,
            operation = f.operation,
            bucket = f.bucket.as_deref().unwrap_or("-"),
            client_key_id = f.client_key_id.as_deref().unwrap_or("-"),
            status = self.status.as_u16(),
            bytes_in,
            bytes_out,
            duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            upstream,
            remote = %self.remote,
            completed,
            "request"
        );
        self.metrics.observe_request(&RequestObservation {
            operation: f.operation,
            status: self.status.as_u16(),
            provider: upstream,
            duration,
            bytes_in,
            bytes_out,
        });
        if body_failed && f.upstream.is_some() {
            self.metrics.upstream_error(upstream, "response_body");
        }
    }
}

/// The response body as sent to the client; logs the request once, when the body has been
/// sent completely or dropped (client gone, HEAD).
pub struct EdgeBody {
    inner: s3s::Body,
    bytes_out: u64,
    body_failed: bool,
    record: Option<AccessRecord>,
    /// Keeps the connection out of its idle deadline until the body is sent or dropped.
    _in_flight: InFlight,
}

impl EdgeBody {
    /// `record` is emitted once, when `inner` ends or the body is dropped; `in_flight` is held
    /// as long.
    pub(crate) fn new(inner: s3s::Body, record: AccessRecord, in_flight: InFlight) -> Self {
        Self {
            inner,
            bytes_out: 0,
            body_failed: false,
            record: Some(record),
            _in_flight: in_flight,
        }
    }
}

impl HttpBody for EdgeBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes_out += data.len() as u64;
                }
            }
            Poll::Ready(None) => {
                if let Some(record) = self.record.take() {
                    record.emit(self.bytes_out, true, false);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                self.body_failed = true;
                tracing::warn!(error = %e, "response body failed while streaming; the client sees a truncated response");
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for EdgeBody {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            let completed = self.inner.is_end_stream();
            record.emit(self.bytes_out, completed, self.body_failed);
        }
    }
}
