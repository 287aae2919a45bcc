//! The S3 listener: connections accepted under `server.max_connections`, each with the
//! request-head and idle deadlines, TLS when configured, and the graceful drain on stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::edge::handle_edge;
use super::generation::Shared;
use crate::config::ConnectionLimits;
use crate::connection::{Activity, WatchedIo, accept_with_slot, http_builder};
use crate::metrics::Metrics;

/// One open client connection: holds a place under `server.max_connections` and counts in
/// `s3ferry_active_connections` until it closes.
struct ConnectionSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl ConnectionSlot {
    fn new(permit: tokio::sync::OwnedSemaphorePermit, metrics: Arc<Metrics>) -> Self {
        metrics.connection_opened();
        Self {
            _permit: permit,
            metrics,
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = http_builder(&limits);
    builder
        .http1()
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    builder
        .http2()
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let on_full = || {
        shared.metrics.connection_limit_reached();
        tracing::debug!(
            max_connections = limits.max_connections,
            "connection limit reached: new clients wait until a connection closes"
        );
    };
    loop {
        let (socket, remote, permit) = tokio::select! {
            accepted = accept_with_slot(&listener, &slots, &on_full) => match accepted {
                Some(accepted) => accepted,
                None => break,
            },
            _ = stop.changed() => break,
        };
        let slot = ConnectionSlot::new(permit, shared.metrics.clone());
        let _ = socket.set_nodelay(true);
        // Wrapped before TLS, so that the handshake counts against the request-head deadline.
        let (socket, activity) = WatchedIo::new(socket, &limits);
        let tls = shared.current().tls.clone();
        let watcher = graceful.watcher();
        match tls {
            None => {
                tokio::spawn(serve_connection(
                    builder.clone(),
                    socket,
                    shared.clone(),
                    remote,
                    activity,
                    watcher,
                    slot,
                ));
            }
            Some(acceptor) => {
                let builder = builder.clone();
                let shared = shared.clone();
                let handshake_timeout = limits.request_head_timeout;
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(socket)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            return tracing::debug!(error = %e, %remote, "TLS handshake failed");
                        }
                        Err(_) => return tracing::debug!(%remote, "TLS handshake timed out"),
                    };
                    serve_connection(builder, stream, shared, remote, activity, watcher, slot).await;
                });
            }
        }
    }
    drop(listener);
    shared.draining.store(true, Ordering::Relaxed);
    let grace = shared.current().config.server.shutdown_grace;
    tracing::info!(
        grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
        "listener closed: draining in-flight requests"
    );
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests still running after the shutdown grace period; closing them");
    }
}

/// One client connection, plain or after its TLS handshake: every request through
/// [`handle_edge`], the whole connection under the graceful drain, its slot held to the end.
async fn serve_connection<I>(
    builder: ConnBuilder<TokioExecutor>,
    io: I,
    shared: Arc<Shared>,
    remote: SocketAddr,
    activity: Activity,
    watcher: Watcher,
    slot: ConnectionSlot,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The request's future is boxed: hyper keeps its service future inline in the connection's
    // task, so unboxed every idle keep-alive connection would hold a request's worth of state
    // (several KiB) between requests. One allocation per request buys that back.
    let service =
        hyper::service::service_fn(move |req| Box::pin(handle_edge(shared.clone(), req, remote, activity.begin())));
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(error = %e, %remote, "client connection ended with an error");
    }
    drop(slot);
}
