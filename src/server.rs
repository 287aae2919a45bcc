//! The edge: start-up and reload (providers, routes, the s3s front door), the listener with
//! connection and header limits and optional TLS, one hyper connection per client with
//! `TCP_NODELAY`, the per-request envelope (request id, one access-log event and its metrics,
//! errors rendered in the gateway's shape), and graceful shutdown.
//!
//! Everything built from one config file is a [`Generation`]. A reload (SIGHUP) builds a new
//! generation and swaps it in; each request reads the current one when it starts and keeps it
//! to the end, so open connections and in-flight requests are never cut. The listener, the
//! admin listener and the connection limits belong to the process and change only on restart.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::access::AccessPolicy;
use crate::access_log::{HandledByGateway, RequestContext};
use crate::auth::{ClientAuth, Verifier};
use crate::config::{
    Addressing, Config, ConfigError, ConnectionLimits, ProviderKind, SignatureVersion, WILDCARD_BUCKET,
};
use crate::connection::{InFlight, WatchedIo, accept_with_slot, http_builder};
use crate::error::{new_request_id, render_error};
use crate::gateway::Gateway;
use crate::local::{LocalServer, ensure_local_bucket, start_local_provider};
use crate::metrics::{Metrics, RequestObservation};
use crate::migration::MigrationStats;
use crate::migration::copy::Copier;
use crate::migration::serve::Migration;
use crate::post_upload::spool::SpoolBudget;
use crate::post_upload::{FormUploadContext, KeyGrants, upload_form};
use crate::route::RouteTable;
use crate::small_body::{BUDGET_WAIT, BodyBudget, ReadError, ReadLimits, read_capped};
use crate::target::{host_from_authority, parse_client_target, virtual_host_bucket};
use crate::upstream::{KeyStore, Upstream, UpstreamSettings};

/// Why the gateway could not start, or a new config could not be put in place.
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

/// Why a reload was refused. The previous config keeps serving either way.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Start(#[from] StartError),
}

/// A running gateway. Dropping it does not stop it; call [`RunningGateway::shutdown`].
pub struct RunningGateway {
    addr: SocketAddr,
    admin_addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    admin_task: JoinHandle<()>,
}

impl RunningGateway {
    /// The address the S3 endpoint listens on (with the real port when configured as 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of `/healthz`, `/readyz` and `/metrics`.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// This gateway's metrics (the ones `/metrics` renders).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// What lazy migration did since start-up (across reloads).
    pub fn migration_stats(&self) -> &MigrationStats {
        &self.shared.migration_stats
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
        self.admin_task.abort();
    }

    /// Runs until the accept loop ends: after a stop (see [`RunningGateway::stopper`]) and the
    /// drain of in-flight requests, which lasts at most `server.shutdown_grace`.
    pub async fn wait(self) {
        let _ = self.task.await;
        self.admin_task.abort();
    }

    /// A handle that stops the gateway when sent `true`.
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }

    /// The shutdown grace of the config in force now.
    pub fn shutdown_grace(&self) -> Duration {
        self.shared.current().config.server.shutdown_grace
    }

    /// Reads `path` again and puts the new config in place: routes, credentials, providers,
    /// TLS files, domain, grace and readiness timeout. A config that does not load or whose
    /// providers cannot be set up is refused and the previous one keeps serving.
    pub async fn reload_from(&self, path: &Path) -> Result<(), ReloadError> {
        let result = match Config::load(path) {
            Ok(config) => self.reload(&config).await.map_err(ReloadError::from),
            Err(e) => Err(ReloadError::from(e)),
        };
        self.shared.metrics.config_reload(result.is_ok());
        result
    }

    /// Puts `config` in place (see [`RunningGateway::reload_from`]). Requests already running
    /// finish on the config they started with.
    pub async fn reload(&self, config: &Config) -> Result<(), StartError> {
        let previous = self.shared.current();
        warn_about_restart_only_changes(&previous.config, config);
        let shared = &self.shared;
        let next = Generation::build(
            config,
            &shared.metrics,
            &shared.migration_stats,
            &shared.body_budget,
            Some(&previous),
        )
        .await?;
        self.shared.replace(next);
        Ok(())
    }
}

/// Settings bound to the sockets: they keep their start-up value until the process restarts.
fn warn_about_restart_only_changes(running: &Config, next: &Config) {
    let (old, new) = (&running.server, &next.server);
    let changed = [
        ("server.listen", old.listen != new.listen),
        ("server.admin_listen", old.admin_listen != new.admin_listen),
        (
            "server.max_connections",
            old.limits.max_connections != new.limits.max_connections,
        ),
        (
            "server.max_header_bytes",
            old.limits.max_header_bytes != new.limits.max_header_bytes,
        ),
        ("server.max_headers", old.limits.max_headers != new.limits.max_headers),
        (
            "server.max_buffered_body_bytes",
            old.limits.max_buffered_body_bytes != new.limits.max_buffered_body_bytes,
        ),
        (
            "server.admin_max_connections",
            old.limits.admin_max_connections != new.limits.admin_max_connections,
        ),
        (
            "server.request_head_timeout",
            old.limits.request_head_timeout != new.limits.request_head_timeout,
        ),
        (
            "server.idle_timeout",
            old.limits.idle_timeout != new.limits.idle_timeout,
        ),
        (
            "post_upload.max_spool_bytes",
            running.post_upload.max_spool_bytes != next.post_upload.max_spool_bytes,
        ),
    ];
    for (key, _) in changed.iter().filter(|(_, changed)| *changed) {
        tracing::warn!(key, "changed in the new config; it takes effect at the next restart");
    }
}

/// What the listener, every request and the admin endpoints share.
pub(crate) struct Shared {
    generation: RwLock<Arc<Generation>>,
    pub(crate) metrics: Arc<Metrics>,
    migration_stats: Arc<MigrationStats>,
    /// The bytes all bodies read whole may hold (`server.max_buffered_body_bytes`); one for the
    /// process's life, so a reload does not reset what in-flight requests hold.
    body_budget: BodyBudget,
    /// The bytes all form-upload spool files may hold (`post_upload.max_spool_bytes`); one
    /// for the process's life, like `body_budget`.
    spool_budget: SpoolBudget,
    /// Set when the listener has closed and in-flight requests are draining.
    draining: AtomicBool,
    /// The S3 listener's address.
    pub(crate) listen: SocketAddr,
    /// The last readiness probe's answers, shared by `/readyz` calls.
    pub(crate) probes: crate::admin::ProbeCache,
}

impl Shared {
    /// The generation new requests use.
    pub(crate) fn current(&self) -> Arc<Generation> {
        // The lock only guards a pointer swap, which cannot panic; a poisoned lock still holds
        // a whole generation.
        match self.generation.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, next: Generation) {
        let next = Arc::new(next);
        match self.generation.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// Everything built from one config file.
pub(crate) struct Generation {
    pub(crate) config: Config,
    s3: S3Service,
    /// The gateway behind `s3`, also reached directly by form uploads (`post_upload`).
    gateway: Arc<Gateway>,
    /// The client key pairs (also inside `s3`), for the checks made before s3s runs.
    client_auth: ClientAuth,
    /// Every provider by name (the readiness probe asks each one).
    pub(crate) upstreams: BTreeMap<String, Arc<Upstream>>,
    /// `kind = "local"` servers by root directory. A reload keeps a server whose root is
    /// unchanged (same port, same key), so requests that are streaming from it are not cut
    /// and the directory is never served twice.
    local_providers: BTreeMap<PathBuf, Arc<LocalServer>>,
    /// The copy-on-read queue. A reload that leaves `[migration]` as it is keeps it, so copies
    /// queued or running carry on and a key is still copied once at a time.
    copier: Arc<Copier>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// The routes (also inside `s3`), for what the edge answers before s3s runs: CORS.
    routes: RouteTable,
}

impl Generation {
    /// Starts (or reuses from `previous`) every provider and the copy queue, builds the routes
    /// and the front door.
    async fn build(
        config: &Config,
        metrics: &Arc<Metrics>,
        migration_stats: &Arc<MigrationStats>,
        body_budget: &BodyBudget,
        previous: Option<&Generation>,
    ) -> Result<Self, StartError> {
        let (upstreams, local_providers) =
            build_providers(config, previous.map(|p| &p.local_providers), body_budget, Some(metrics)).await?;
        let routes = RouteTable::new(&config.buckets, &upstreams).map_err(StartError::Setup)?;
        warn_of_copies_without_conditional_writes(config, &upstreams);
        let copier = match previous {
            Some(p) if p.config.migration == config.migration => p.copier.clone(),
            // Copies of the old queue may still run: the new one sees their claims and leases.
            Some(p) => Copier::start(&config.migration, migration_stats.clone(), p.copier.claims()),
            None => Copier::start(&config.migration, migration_stats.clone(), Arc::default()),
        };
        let migration = Migration {
            copier: copier.clone(),
            stats: migration_stats.clone(),
        };
        let access = Arc::new(AccessPolicy::from_config(config));
        let gateway = Arc::new(Gateway::new(routes.clone(), access, migration));

        let client_auth = ClientAuth::new(&config.credentials);
        let mut builder = S3ServiceBuilder::new(ProxyOnly);
        builder.set_auth(client_auth.clone());
        builder.set_host(GatewayHost {
            domain: config.server.domain.clone(),
        });
        builder.set_route(GatewayRoute(gateway.clone()));

        let tls = match &config.server.tls {
            Some(files) => Some(tls_acceptor(&files.cert, &files.key)?),
            None => None,
        };
        Ok(Self {
            config: config.clone(),
            s3: builder.build(),
            gateway,
            client_auth,
            upstreams,
            local_providers,
            copier,
            tls,
            routes,
        })
    }
}

/// Copy on read into a provider without any atomic conditional write (`conditional_writes =
/// "none"`) is safe against this process's clients only (`migration::claim`): said once per
/// route when the config is loaded, with what the user can do about it.
fn warn_of_copies_without_conditional_writes(config: &Config, upstreams: &BTreeMap<String, Arc<Upstream>>) {
    for route in &config.buckets {
        let Some(fallback) = route.fallback.as_ref().filter(|f| f.copy_on_read) else {
            continue;
        };
        let Some(new) = upstreams.get(&route.provider) else {
            continue;
        };
        if new.settings.profile.conditional_writes == crate::dialect::ConditionalWrites::Unsupported {
            tracing::warn!(
                bucket = %route.name,
                provider = %new.settings.name,
                fallback = %fallback.provider,
                "copy on read into a provider without conditional writes: a copy never replaces a write or delete \
                 made through this s3ferry process, but it can replace one made at the same moment through another \
                 process (a replica, `s3ferry migrate`); run one gateway for this bucket while it migrates, or set \
                 copy_on_read = false and use `s3ferry migrate` while clients are stopped"
            );
        }
    }
}

/// Every provider's client, with the in-process servers of the local ones by root (keep them
/// alive).
pub type Providers = (BTreeMap<String, Arc<Upstream>>, BTreeMap<PathBuf, Arc<LocalServer>>);

/// Starts local providers and builds a client for every provider.
pub async fn start_providers(config: &Config) -> Result<Providers, StartError> {
    let budget = BodyBudget::new(config.server.limits.max_buffered_body_bytes, BUDGET_WAIT, None);
    build_providers(config, None, &budget, None).await
}

/// [`start_providers`], keeping the servers in `running` whose root is still configured.
async fn build_providers(
    config: &Config,
    running: Option<&BTreeMap<PathBuf, Arc<LocalServer>>>,
    budget: &BodyBudget,
    metrics: Option<&Metrics>,
) -> Result<Providers, StartError> {
    let mut local_providers = BTreeMap::new();
    let mut upstreams = BTreeMap::new();
    for (name, provider) in &config.providers {
        let provider_error = |reason: String| StartError::Provider {
            provider: name.clone(),
            reason,
        };
        let settings = match &provider.kind {
            ProviderKind::Local { root } => {
                let local = match running.and_then(|r| r.get(root)) {
                    Some(local) => local.clone(),
                    None => Arc::new(start_local_provider(root).await.map_err(provider_error)?),
                };
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
                    signature: SignatureVersion::V4,
                    profile: std::sync::Arc::new(provider.profile.clone()),
                    ca_file: None,
                    connect_timeout: provider.connect_timeout,
                    read_timeout: provider.read_timeout,
                    key_store: KeyStore::LocalFiles,
                    retry: provider.retry,
                };
                local_providers.insert(root.clone(), local);
                settings
            }
            ProviderKind::Remote(remote) => UpstreamSettings {
                name: name.clone(),
                endpoint: remote.endpoint.clone(),
                region: provider.region.clone(),
                access_key_id: remote.access_key_id.clone(),
                secret_access_key: remote.secret_access_key.clone(),
                addressing: provider.addressing,
                signature: remote.signature,
                profile: std::sync::Arc::new(provider.profile.clone()),
                ca_file: remote.ca_file.clone(),
                connect_timeout: provider.connect_timeout,
                read_timeout: provider.read_timeout,
                key_store: KeyStore::S3,
                retry: provider.retry,
            },
        };
        let upstream_metrics = metrics.map(Metrics::upstream);
        let upstream = Upstream::new(settings, budget.clone(), upstream_metrics).map_err(provider_error)?;
        upstreams.insert(name.clone(), upstream);
    }
    Ok((upstreams, local_providers))
}

/// The buckets explicit routes keep on provider `name`, as route target or as fallback.
fn local_buckets(config: &Config, name: &str) -> Vec<String> {
    let mut buckets = Vec::new();
    for route in config.buckets.iter().filter(|b| b.name != WILDCARD_BUCKET) {
        if route.provider == name {
            buckets.push(route.upstream_bucket.clone().unwrap_or_else(|| route.name.clone()));
        }
        if let Some(f) = route.fallback.as_ref().filter(|f| f.provider == name) {
            buckets.push(f.bucket.clone().unwrap_or_else(|| route.name.clone()));
        }
    }
    buckets
}

/// Starts every provider, builds the routes and the front door, and listens on the S3 and the
/// admin addresses.
pub async fn start(config: &Config) -> Result<RunningGateway, StartError> {
    let metrics = Arc::new(Metrics::new());
    let migration_stats = Arc::new(MigrationStats::with_metrics(metrics.clone()));
    let body_budget = BodyBudget::new(
        config.server.limits.max_buffered_body_bytes,
        BUDGET_WAIT,
        Some(metrics.buffered_body_budget_free()),
    );
    let generation = Generation::build(config, &metrics, &migration_stats, &body_budget, None).await?;
    let bind = |addr: SocketAddr| async move {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Listen { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| StartError::Listen { addr, source })?;
        Ok::<_, StartError>((listener, local))
    };
    let (listener, addr) = bind(config.server.listen).await?;
    let (admin_listener, admin_addr) = bind(config.server.admin_listen).await?;
    let shared = Arc::new(Shared {
        generation: RwLock::new(Arc::new(generation)),
        metrics,
        migration_stats,
        body_budget,
        spool_budget: SpoolBudget::new(config.post_upload.max_spool_bytes),
        draining: AtomicBool::new(false),
        listen: addr,
        probes: crate::admin::ProbeCache::default(),
    });
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, shared.clone(), config.server.limits, stop_rx));
    let admin_task = tokio::spawn(crate::admin::serve_admin(
        admin_listener,
        shared.clone(),
        config.server.limits,
    ));
    tracing::info!(
        %addr,
        %admin_addr,
        tls = config.server.tls.is_some(),
        providers = config.providers.len(),
        "s3ferry listening"
    );
    Ok(RunningGateway {
        addr,
        admin_addr,
        shared,
        stop,
        task,
        admin_task,
    })
}

/// The gateway as s3s's catch-all route; the generation keeps it too, for form uploads.
/// Every method is the gateway's own (`impl S3Route for Gateway`), `check_access` included:
/// unsigned requests reach the gateway, which decides them by the bucket's anonymous access.
struct GatewayRoute(Arc<Gateway>);

#[async_trait::async_trait]
impl s3s::route::S3Route for GatewayRoute {
    fn is_match(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        extensions: &mut http::Extensions,
    ) -> bool {
        s3s::route::S3Route::is_match(&*self.0, method, uri, headers, extensions)
    }

    async fn check_access(&self, req: &mut s3s::S3Request<s3s::Body>) -> s3s::S3Result<()> {
        s3s::route::S3Route::check_access(&*self.0, req).await
    }

    async fn call(&self, req: s3s::S3Request<s3s::Body>) -> s3s::S3Result<s3s::S3Response<s3s::Body>> {
        s3s::route::S3Route::call(&*self.0, req).await
    }
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

async fn accept_loop(
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
        let service_shared = shared.clone();
        let service =
            hyper::service::service_fn(move |req| handle_edge(service_shared.clone(), req, remote, activity.begin()));
        match tls {
            None => {
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(socket), service)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, %remote, "client connection ended with an error");
                    }
                    drop(slot);
                });
            }
            Some(acceptor) => {
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let handshake_timeout = limits.request_head_timeout;
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(handshake_timeout, acceptor.accept(socket)).await {
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
                    drop(slot);
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

/// One request at the edge: give it an id, run it through s3s (verification) and the gateway,
/// make sure any error is in the gateway's shape, and log it once when its body is done.
async fn handle_edge(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    remote: SocketAddr,
    in_flight: InFlight,
) -> Result<Response<EdgeBody>, Infallible> {
    let started = Instant::now();
    let generation = shared.current();
    let s3 = generation.s3.clone();
    let ctx = RequestContext::new(new_request_id());
    let method = req.method().clone();
    let expects_continue = req
        .headers()
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let bytes_in = Arc::new(AtomicU64::new(0));
    let body_polled = Arc::new(AtomicBool::new(false));
    // What hyper knows of the body's length as it arrived; s3s replaces the body later.
    let client_body = HttpBody::size_hint(req.body());
    let mut req = req.map(|b| {
        s3s::Body::http_body_unsync(CountingBody {
            inner: b,
            count: bytes_in.clone(),
            polled: body_polled.clone(),
        })
    });
    host_from_authority(&mut req);
    normalize_sigv2_bucket_path(&mut req);
    req.extensions_mut().insert(ctx.clone());

    let domain = generation.config.server.domain.as_deref();
    let target = parse_client_target(req.uri(), req.headers(), domain);
    // Read before the trust boundary drops what no signature covers (`Origin` included).
    let cors = crate::cors::EdgeCors::of(&method, req.headers(), target.as_ref().ok(), &generation.routes);
    let admitted = if method == http::Method::OPTIONS {
        // A CORS preflight carries no credentials: answered here, never by s3s (`cors`).
        target.map(Admitted::Preflight)
    } else {
        crate::auth::admit(
            &mut req,
            domain,
            &generation.client_auth,
            time::OffsetDateTime::now_utc(),
        )
        .and_then(|verifier| {
            crate::body::require_stated_length(req.headers(), &client_body)?;
            Ok(Admitted::Verified(verifier, target?))
        })
    };
    let path = match &admitted {
        Ok(Admitted::Verified(_, target) | Admitted::Preflight(target)) => path_template(target),
        Err(_) => "-",
    };
    let mut response = match admitted {
        Ok(Admitted::Preflight(target)) => {
            crate::cors::answer_options(req.headers(), &target, &generation.routes, &ctx).await
        }
        Err(refused) => refusal_response(&refused, &ctx),
        Ok(Admitted::Verified(Verifier::FormPolicy, target)) => {
            let scheme = if generation.tls.is_some() { "https" } else { "http" };
            let grants = KeyGrants(generation.gateway.access_policy());
            let upload = FormUploadContext {
                gateway: &generation.gateway,
                keys: &generation.client_auth,
                grant: &grants,
                config: &generation.config.post_upload,
                spool: &shared.spool_budget,
                scheme,
            };
            match upload_form(req, target, upload, &ctx).await {
                Ok(response) => response,
                Err(refused) => refusal_response(&refused, &ctx),
            }
        }
        Ok(Admitted::Verified(Verifier::S3s, target)) => {
            // The one parse of the target: the gateway routes exactly this value.
            req.extensions_mut().insert(target);
            verify_and_handle(&s3, req, &ctx.request_id, &shared.body_budget).await
        }
    };
    cors.apply(response.headers_mut());
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        response.headers_mut().insert("x-amz-request-id", v);
    }
    // hyper sends `100 Continue` when a body with bytes to come is first read: never for an
    // empty one, even when s3ferry reads it (to verify a checksum of the empty upload).
    let continue_sent = body_polled.load(Ordering::Relaxed) && client_body.exact() != Some(0);
    if expects_continue && !continue_sent {
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
        path,
        status,
        started,
        bytes_in,
        remote,
        metrics: shared.metrics.clone(),
    };
    Ok(response.map(|body| EdgeBody {
        inner: body,
        bytes_out: 0,
        body_failed: false,
        record: Some(record),
        _in_flight: in_flight,
    }))
}

/// A request the edge lets through, with the one parse of its target.
enum Admitted {
    /// Past the trust boundary: verified next by `Verifier` (s3s, or the form's policy).
    Verified(Verifier, crate::target::ClientTarget),
    /// An `OPTIONS` request: answered by [`crate::cors::answer_options`].
    Preflight(crate::target::ClientTarget),
}

/// A request refused before s3s or the gateway ran, in the gateway's error shape.
fn refusal_response(refused: &crate::error::GatewayError, ctx: &RequestContext) -> Response<s3s::Body> {
    match refused.origin() {
        crate::error::Origin::Client => {
            tracing::debug!(request_id = %ctx.request_id, error = %refused, "request refused at the edge");
        }
        _ => tracing::warn!(request_id = %ctx.request_id, error = %refused, "request failed at the edge"),
    }
    let (parts, bytes) = refused.to_response(&ctx.request_id).into_parts();
    Response::from_parts(parts, s3s::Body::from(bytes))
}

/// s3s verifies the signature and hands the request to the gateway; its own errors are
/// re-rendered in the gateway's shape.
async fn verify_and_handle(
    s3: &S3Service,
    req: Request<s3s::Body>,
    request_id: &str,
    budget: &BodyBudget,
) -> Response<s3s::Body> {
    let response = match s3.call(req).await {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(request_id, error = ?e, "front door failed");
            let (parts, bytes) = render_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "the request could not be processed",
                None,
                request_id,
            )
            .into_parts();
            Response::from_parts(parts, s3s::Body::from(bytes))
        }
    };
    if response.extensions().get::<HandledByGateway>().is_none() && !response.status().is_success() {
        rerender_front_door_error(response, request_id, budget).await
    } else {
        response
    }
}

/// The shape of the resource a request addresses, for the access log: bucket and key names
/// are the client's data and stay out of the log line (the bucket has its own field).
fn path_template(target: &crate::target::ClientTarget) -> &'static str {
    match (&target.bucket, target.key.is_empty()) {
        (None, _) => "/",
        (Some(_), true) => "/{bucket}",
        (Some(_), false) => "/{bucket}/{key}",
    }
}

/// s3s renders its own verification errors without a request id; re-render them through the
/// gateway's one error renderer so every error a client sees has the same shape. Reading s3s's
/// answer draws from the body budget like every other body read whole.
async fn rerender_front_door_error(
    response: Response<s3s::Body>,
    request_id: &str,
    budget: &BodyBudget,
) -> Response<s3s::Body> {
    let (parts, body) = response.into_parts();
    let limits = ReadLimits {
        max: 64 * 1024,
        idle: Duration::from_secs(5),
    };
    let read = match read_capped(body, None, limits, budget).await {
        Ok(read) => Some(read),
        Err(ReadError::Overloaded) => {
            let (parts, bytes) = crate::error::GatewayError::SlowDown
                .to_response(request_id)
                .into_parts();
            return Response::from_parts(parts, s3s::Body::from(bytes));
        }
        Err(_) => None,
    };
    let (code, message) = crate::error::parse_error_code(read.as_deref().unwrap_or_default()).unwrap_or_else(|| {
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

/// What the access-log event and the request metrics need besides the gateway's fields.
struct AccessRecord {
    ctx: RequestContext,
    method: http::Method,
    path: &'static str,
    status: StatusCode,
    started: Instant,
    bytes_in: Arc<AtomicU64>,
    remote: SocketAddr,
    metrics: Arc<Metrics>,
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
