//! The edge: start-up (providers, routes, the s3s front door), the listener with optional TLS,
//! one hyper connection per client with `TCP_NODELAY`, the per-request envelope (request id,
//! one access-log event, errors rendered in the gateway's shape), and graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::access_log::{HandledByGateway, RequestContext};
use crate::auth::ClientAuth;
use crate::config::{Addressing, Config, ProviderKind};
use crate::error::{new_request_id, render_error};
use crate::gateway::{Gateway, virtual_host_bucket};
use crate::local::{LocalServer, ensure_local_bucket, start_local_provider};
use crate::migration::MigrationStats;
use crate::migration::copy::Copier;
use crate::migration::serve::Migration;
use crate::route::RouteTable;
use crate::upstream::{Upstream, UpstreamSettings};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("provider '{provider}': {reason}")]
    Provider { provider: String, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Setup(String),
}

/// A running gateway. Dropping it does not stop it; call [`RunningGateway::shutdown`].
pub struct RunningGateway {
    addr: SocketAddr,
    migration_stats: Arc<MigrationStats>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    _local_providers: Vec<LocalServer>,
}

impl RunningGateway {
    /// The address the S3 endpoint listens on (with the real port when configured as 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish for up to `grace`, then returns.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(grace + Duration::from_secs(1), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }

    /// Runs until the accept loop ends (after [`RunningGateway::shutdown`] from elsewhere).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// What lazy migration did since start-up.
    pub fn migration_stats(&self) -> &MigrationStats {
        &self.migration_stats
    }

    /// A handle that stops the gateway when sent `true`.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// How long in-flight requests may run after a stop signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Starts every provider, builds the routes and the front door, and listens.
pub async fn start(config: &Config) -> Result<RunningGateway, StartError> {
    let (upstreams, local_providers) = start_providers(config).await?;
    let routes = RouteTable::new(&config.buckets, &upstreams).map_err(StartError::Setup)?;
    let stats = Arc::new(MigrationStats::default());
    let migration = Migration {
        copier: Copier::start(&config.migration, stats.clone()),
        stats: stats.clone(),
    };
    let gateway = Gateway::new(routes, config.server.domain.clone(), migration);

    let mut builder = S3ServiceBuilder::new(ProxyOnly);
    builder.set_auth(ClientAuth::new(&config.credentials));
    builder.set_host(GatewayHost {
        domain: config.server.domain.clone(),
    });
    builder.set_route(gateway);
    let s3 = builder.build();

    let tls = match &config.server.tls {
        Some(files) => Some(tls_acceptor(&files.cert, &files.key)?),
        None => None,
    };
    let listener = TcpListener::bind(config.server.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.server.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.server.listen,
        source,
    })?;
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, tls, s3, stop_rx));
    tracing::info!(%addr, tls = config.server.tls.is_some(), providers = upstreams.len(), "s3ferry listening");
    Ok(RunningGateway {
        addr,
        migration_stats: stats,
        stop,
        task,
        _local_providers: local_providers,
    })
}

/// Every provider's client, with the in-process servers of the local ones (keep them alive).
pub type Providers = (std::collections::BTreeMap<String, Arc<Upstream>>, Vec<LocalServer>);

/// Starts local providers and builds a client for every provider.
pub async fn start_providers(config: &Config) -> Result<Providers, StartError> {
    let mut local_providers = Vec::new();
    let mut upstreams = std::collections::BTreeMap::new();
    for (name, provider) in &config.providers {
        let provider_error = |reason: String| StartError::Provider {
            provider: name.clone(),
            reason,
        };
        let settings = match &provider.kind {
            ProviderKind::Local { root } => {
                let local = start_local_provider(root).await.map_err(provider_error)?;
                for bucket in local_buckets(config, name) {
                    ensure_local_bucket(root, &bucket).map_err(provider_error)?;
                }
                let endpoint = format!("http://{}", local.addr)
                    .parse()
                    .map_err(|e| provider_error(format!("{e}")))?;
                let settings = UpstreamSettings {
                    name: name.clone(),
                    endpoint,
                    region: provider.region.clone(),
                    access_key_id: local.access_key_id.clone(),
                    secret_access_key: local.secret_access_key.clone(),
                    addressing: Addressing::Path,
                    profile: std::sync::Arc::new(provider.profile.clone()),
                    ca_file: None,
                    connect_timeout: provider.connect_timeout,
                    read_timeout: provider.read_timeout,
                };
                local_providers.push(local);
                settings
            }
            ProviderKind::Remote(remote) => UpstreamSettings {
                name: name.clone(),
                endpoint: remote.endpoint.clone(),
                region: provider.region.clone(),
                access_key_id: remote.access_key_id.clone(),
                secret_access_key: remote.secret_access_key.clone(),
                addressing: provider.addressing,
                profile: std::sync::Arc::new(provider.profile.clone()),
                ca_file: remote.ca_file.clone(),
                connect_timeout: provider.connect_timeout,
                read_timeout: provider.read_timeout,
            },
        };
        upstreams.insert(
            name.clone(),
            Upstream::new(settings).map_err(|reason| StartError::Provider {
                provider: name.clone(),
                reason,
            })?,
        );
    }
    Ok((upstreams, local_providers))
}

/// The buckets explicit routes keep on provider `name`, as route target or as fallback.
fn local_buckets(config: &Config, name: &str) -> Vec<String> {
    let mut buckets = Vec::new();
    for route in config
        .buckets
        .iter()
        .filter(|b| b.name != crate::config::WILDCARD_BUCKET)
    {
        if route.provider == name {
            buckets.push(route.upstream_bucket.clone().unwrap_or_else(|| route.name.clone()));
        }
        if let Some(f) = route.fallback.as_ref().filter(|f| f.provider == name) {
            buckets.push(f.bucket.clone().unwrap_or_else(|| route.name.clone()));
        }
    }
    buckets
}

/// s3s needs an `S3` implementation; every request is taken by the catch-all route first, so
/// none of these operations is ever called.
struct ProxyOnly;

#[async_trait::async_trait]
impl s3s::S3 for ProxyOnly {}

/// Tells s3s which requests are virtual-hosted style, with the same rule the gateway uses
/// (`<bucket>.<domain>[:port]`); any other Host means path style.
struct GatewayHost {
    domain: Option<String>,
}

impl s3s::host::S3Host for GatewayHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> s3s::S3Result<s3s::host::VirtualHost<'a>> {
        let vhost = s3s::host::VirtualHost::new(host);
        match self.domain.as_deref().and_then(|d| virtual_host_bucket(host, d)) {
            Some(bucket) => Ok(vhost.with_bucket(bucket)),
            None => Ok(vhost),
        }
    }
}

fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<tokio_rustls::TlsAcceptor, StartError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| StartError::Tls(format!("cannot read {}: {e}", p.display())))
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StartError::Tls(format!("{}: {e}", cert.display())))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| StartError::Tls(format!("{}: {e}", key.display())))?
        .ok_or_else(|| StartError::Tls(format!("{} holds no private key", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| StartError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    s3: S3Service,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = ConnBuilder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(60));
    loop {
        let (socket, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = socket.set_nodelay(true);
        let s3 = s3.clone();
        let service = hyper::service::service_fn(move |req| handle_edge(s3.clone(), req, remote));
        match &tls {
            None => {
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(socket), service)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, %remote, "client connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(socket)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            return tracing::debug!(error = %e, %remote, "TLS handshake failed");
                        }
                        Err(_) => return tracing::debug!(%remote, "TLS handshake timed out"),
                    };
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(error = %e, %remote, "client connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests still running after the shutdown grace period; closing them");
    }
}

/// One request at the edge: give it an id, run it through s3s (verification) and the gateway,
/// make sure any error is in the gateway's shape, and log it once when its body is done.
async fn handle_edge(
    s3: S3Service,
    req: Request<Incoming>,
    remote: SocketAddr,
) -> Result<Response<EdgeBody>, Infallible> {
    let started = Instant::now();
    let ctx = RequestContext::new(new_request_id());
    let method = req.method().clone();
    let expects_continue = req
        .headers()
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let bytes_in = Arc::new(AtomicU64::new(0));
    let body_polled = Arc::new(AtomicBool::new(false));
    let mut req = req.map(|b| {
        s3s::Body::http_body_unsync(CountingBody {
            inner: b,
            count: bytes_in.clone(),
            polled: body_polled.clone(),
        })
    });
    normalize_sigv2_bucket_path(&mut req);
    req.extensions_mut().insert(ctx.clone());

    let response = match s3.call(req).await {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(request_id = %ctx.request_id, error = ?e, "front door failed");
            let (parts, bytes) = render_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "the request could not be processed",
                None,
                &ctx.request_id,
            )
            .into_parts();
            Response::from_parts(parts, s3s::Body::from(bytes))
        }
    };
    let mut response = if response.extensions().get::<HandledByGateway>().is_none() && !response.status().is_success() {
        rerender_front_door_error(response, &ctx.request_id).await
    } else {
        response
    };
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        response.headers_mut().insert("x-amz-request-id", v);
    }
    if expects_continue && !body_polled.load(Ordering::Relaxed) {
        // The client waited for `100 Continue` and got the final answer instead (a 0-byte
        // upload, or a refusal). botocore then mis-reads the next response on this
        // connection, so the connection is not reused.
        response
            .headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = response.status();
    let record = AccessRecord {
        ctx,
        method,
        status,
        started,
        bytes_in,
        remote,
    };
    Ok(response.map(|body| EdgeBody {
        inner: body,
        bytes_out: 0,
        record: Some(record),
    }))
}

/// s3s renders its own verification errors without a request id; re-render them through the
/// gateway's one error renderer so every error a client sees has the same shape.
async fn rerender_front_door_error(response: Response<s3s::Body>, request_id: &str) -> Response<s3s::Body> {
    let (parts, body) = response.into_parts();
    let bytes = crate::upstream::collect_capped(body, 64 * 1024, Duration::from_secs(5))
        .await
        .unwrap_or_default();
    let (code, message) = crate::error::parse_error_code(&bytes).unwrap_or_else(|| {
        (
            "InternalError".to_string(),
            "the request could not be verified".to_string(),
        )
    });
    let (new_parts, new_body) = render_error(parts.status, &code, &message, None, request_id).into_parts();
    let mut out = Response::from_parts(new_parts, s3s::Body::from(new_body));
    // Keep headers s3s set on purpose (e.g. Allow), but not a stale length.
    for (name, value) in &parts.headers {
        if !out.headers().contains_key(name) && name != http::header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// SigV2 signs a bucket as `/<bucket>/` (AWS's canonical resource for a bucket), while
/// botocore sends a path-style bucket request as `/<bucket>?...`; s3s builds the resource from
/// the path as sent. Bucket-level SigV2 requests get the trailing slash AWS implies, so the
/// resource s3s checks is the one the client signed. Harmless for routing: `/<bucket>/` is the
/// same bucket with an empty key.
fn normalize_sigv2_bucket_path(req: &mut Request<s3s::Body>) {
    let is_sigv2_header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes().starts_with(b"AWS "));
    let is_sigv2_query = req
        .uri()
        .query()
        .is_some_and(|q| q.contains("AWSAccessKeyId=") && q.contains("Signature="));
    let path = req.uri().path();
    let is_bucket_path = path.len() > 1 && !path[1..].contains('/');
    if !(is_sigv2_header || is_sigv2_query) || !is_bucket_path {
        return;
    }
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{path}/?{q}"),
        None => format!("{path}/"),
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}

/// Counts request body bytes for the access log, and notes whether the body was read at all.
struct CountingBody {
    inner: Incoming,
    count: Arc<AtomicU64>,
    polled: Arc<AtomicBool>,
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

/// What the access-log event needs besides the gateway's fields.
struct AccessRecord {
    ctx: RequestContext,
    method: http::Method,
    status: StatusCode,
    started: Instant,
    bytes_in: Arc<AtomicU64>,
    remote: SocketAddr,
}

impl AccessRecord {
    fn emit(self, bytes_out: u64, completed: bool) {
        let f = self.ctx.fields();
        tracing::info!(
            target: "s3ferry::access",
            request_id = %self.ctx.request_id,
            method = %self.method,
            operation = f.operation,
            bucket = f.bucket.as_deref().unwrap_or("-"),
            client_key_id = f.client_key_id.as_deref().unwrap_or("-"),
            status = self.status.as_u16(),
            bytes_in = self.bytes_in.load(Ordering::Relaxed),
            bytes_out,
            duration_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            upstream = f.upstream.as_deref().unwrap_or("-"),
            remote = %self.remote,
            completed,
            "request"
        );
    }
}

/// The response body as sent to the client; logs the request once, when the body has been
/// sent completely or dropped (client gone, HEAD).
pub struct EdgeBody {
    inner: s3s::Body,
    bytes_out: u64,
    record: Option<AccessRecord>,
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
                    record.emit(self.bytes_out, true);
                }
            }
            Poll::Ready(Some(Err(e))) => {
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
            record.emit(self.bytes_out, completed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalized(uri: &str, authorization: Option<&str>) -> String {
        let mut builder = Request::builder().uri(uri);
        if let Some(a) = authorization {
            builder = builder.header("authorization", a);
        }
        let mut req = builder.body(s3s::Body::empty()).expect("request");
        normalize_sigv2_bucket_path(&mut req);
        req.uri().to_string()
    }

    #[test]
    fn sigv2_bucket_requests_get_the_trailing_slash_aws_signs() {
        assert_eq!(
            normalized("/demo?list-type=2", Some("AWS key:sig")),
            "/demo/?list-type=2"
        );
        assert_eq!(normalized("/demo", Some("AWS key:sig")), "/demo/");
        assert_eq!(
            normalized("/demo?AWSAccessKeyId=k&Signature=s&Expires=1", None),
            "/demo/?AWSAccessKeyId=k&Signature=s&Expires=1"
        );
    }

    #[test]
    fn other_requests_keep_their_path() {
        assert_eq!(normalized("/demo/key", Some("AWS key:sig")), "/demo/key");
        assert_eq!(normalized("/", Some("AWS key:sig")), "/");
        assert_eq!(normalized("/demo", Some("AWS4-HMAC-SHA256 Credential=x")), "/demo");
    }
}
