//! One accepted client connection, for the S3 and the admin listener alike: the wait for a
//! free place under a connection cap, the hyper builder both listeners use, and the two
//! deadlines that stop a peer from holding a place without using it.
//!
//! A connection is *idle* while none of its requests is in flight. The first idle stretch,
//! from accept to the first request head (TLS handshake included), may last
//! `server.request_head_timeout`; every later one, `server.idle_timeout`. hyper bounds only
//! part of this on its own: HTTP/1's header timeout does not cover the bytes its auto builder
//! reads to tell HTTP/1 from HTTP/2, and an HTTP/2 connection with no open stream is never
//! closed. So the deadline lives under hyper, in the socket: [`WatchedIo`] fails reads once an
//! idle stretch has run out, and hyper then ends the connection the way it ends any broken
//! one, whatever protocol it was speaking.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::config::ConnectionLimits;

/// Waits for a free place under `slots`, then accepts the next connection. `on_full` runs
/// once each time the cap makes the listener wait.
///
/// Waiting before accepting leaves further clients in the kernel's listen backlog (as
/// HAProxy's maxconn does) instead of failing them: they are served as soon as a connection
/// closes. Cancel-safe: dropping the future loses no connection.
pub(crate) async fn accept_with_slot(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    on_full: impl Fn(),
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let permit = match slots.clone().try_acquire_owned() {
        Ok(permit) => permit,
        Err(_) => {
            on_full();
            slots.clone().acquire_owned().await.ok()?
        }
    };
    loop {
        match listener.accept().await {
            Ok((socket, remote)) => return Some((socket, remote, permit)),
            Err(e) => {
                // Typically EMFILE: back off instead of spinning on a listener that cannot
                // hand out sockets.
                tracing::warn!(error = %e, listener = ?listener.local_addr().ok(), "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The hyper builder both listeners start from: HTTP/1 and HTTP/2, with HTTP/2 keep-alive
/// pings so that a peer that vanished while a stream is open is noticed.
pub(crate) fn http_builder(limits: &ConnectionLimits) -> ConnBuilder<TokioExecutor> {
    let mut builder = ConnBuilder::new(TokioExecutor::new());
    // hyper's own header timeout is off: [`WatchedIo`] bounds every idle stretch, including
    // the wait for a request head, and hyper's would restart at each keep-alive wait and cut
    // idle connections at the shorter head timeout.
    builder.http1().timer(TokioTimer::new()).header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.idle_timeout)
        .keep_alive_timeout(limits.request_head_timeout);
    builder
}

/// What a connection's requests tell its socket: how many are in flight, and since when none
/// has been.
#[derive(Clone)]
pub(crate) struct Activity(Arc<ActivityState>);

struct ActivityState {
    in_flight: AtomicUsize,
    idle: Mutex<IdleStretch>,
}

struct IdleStretch {
    since: Instant,
    /// Whether a request has been seen: the first stretch gets the request-head timeout.
    served: bool,
    /// The connection's read side, woken when the last request in flight ends so that it arms
    /// the idle deadline even if no byte arrives.
    reader: Option<Waker>,
}

impl Activity {
    fn new() -> Self {
        Self(Arc::new(ActivityState {
            in_flight: AtomicUsize::new(0),
            idle: Mutex::new(IdleStretch {
                since: Instant::now(),
                served: false,
                reader: None,
            }),
        }))
    }

    /// Marks a request in flight until the returned guard is dropped (keep it with the
    /// response body, so that a long download is never idle).
    pub(crate) fn begin(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::SeqCst);
        self.with_idle(|idle| idle.served = true);
        InFlight(self.clone())
    }

    fn with_idle<T>(&self, f: impl FnOnce(&mut IdleStretch) -> T) -> T {
        // Nothing that holds the lock can panic; a poisoned one still holds a whole value.
        let mut idle = match self.0.idle.lock() {
            Ok(idle) => idle,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut idle)
    }
}

/// A request in flight on a connection; see [`Activity::begin`].
pub(crate) struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        if activity.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            let reader = activity.with_idle(|idle| {
                idle.since = Instant::now();
                idle.reader.take()
            });
            if let Some(waker) = reader {
                waker.wake();
            }
        }
    }
}

/// A connection's socket with its idle deadlines (see the module doc). Reads fail with
/// `TimedOut` once an idle stretch has run out; after that, writes fail too, so that a peer
/// that stopped reading cannot keep the connection in a flush.
pub(crate) struct WatchedIo<I> {
    inner: I,
    activity: Activity,
    request_head_timeout: Duration,
    idle_timeout: Duration,
    /// Boxed so that the socket stays `Unpin`, as tokio-rustls and hyper's `TokioIo` want.
    deadline: Pin<Box<Sleep>>,
    expired: bool,
}

impl<I> WatchedIo<I> {
    /// Wraps a just-accepted socket; the request-head deadline starts now.
    pub(crate) fn new(inner: I, limits: &ConnectionLimits) -> (Self, Activity) {
        let activity = Activity::new();
        let io = Self {
            inner,
            activity: activity.clone(),
            request_head_timeout: limits.request_head_timeout,
            idle_timeout: limits.idle_timeout,
            deadline: Box::pin(tokio::time::sleep(limits.request_head_timeout)),
            expired: false,
        };
        (io, activity)
    }
}

fn timed_out(served: bool) -> io::Error {
    let what = if served {
        "connection idle for server.idle_timeout"
    } else {
        "no request head within server.request_head_timeout"
    };
    io::Error::new(io::ErrorKind::TimedOut, what)
}

impl<I: AsyncRead + Unpin> AsyncRead for WatchedIo<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let idle = this.activity.0.in_flight.load(Ordering::SeqCst) == 0;
        let (since, served) = this.activity.with_idle(|stretch| {
            if !stretch.reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                stretch.reader = Some(cx.waker().clone());
            }
            (stretch.since, stretch.served)
        });
        if this.expired {
            return Poll::Ready(Err(timed_out(served)));
        }
        if idle {
            let limit = if served {
                this.idle_timeout
            } else {
                this.request_head_timeout
            };
            let deadline = since + limit;
            if this.deadline.deadline() != deadline {
                this.deadline.as_mut().reset(deadline);
            }
            if this.deadline.as_mut().poll(cx).is_ready() {
                this.expired = true;
                return Poll::Ready(Err(timed_out(served)));
            }
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WatchedIo<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.expired {
            return Poll::Ready(Err(io::Error::from(io::ErrorKind::TimedOut)));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.expired {
            return Poll::Ready(Err(io::Error::from(io::ErrorKind::TimedOut)));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.expired {
            return Poll::Ready(Err(io::Error::from(io::ErrorKind::TimedOut)));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.expired {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
