//! The edge: start-up and reload (providers, routes, the s3s front door), the listener with
//! connection and header limits and optional TLS, one hyper connection per client with
//! `TCP_NODELAY`, the per-request envelope (request id, one access-log event and its metrics,
//! errors rendered in the gateway's shape), and graceful shutdown.
//!
//! Everything built from one config file is a [`Generation`]. A reload (SIGHUP) builds a new
//! generation and swaps it in; each request reads the current one when it starts and keeps it
//! to the end, so open connections and in-flight requests are never cut. The listener, the
//! admin listener and the connection limits belong to the process and change only on restart.
//!
//! The files, in the order a process meets them: this one starts, reloads and stops the
//! gateway; [`generation`] builds everything one config file describes (providers, routes,
//! the s3s front door); [`listener`] accepts connections (limits, TLS, graceful drain); and
//! [`edge`] is the envelope around each request.

mod cors;
mod edge;
mod front_door;
mod generation;
mod listener;
mod tls;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::migration::MigrationStats;
use crate::post_upload::spool::SpoolBudget;
use crate::small_body::{BUDGET_WAIT, BodyBudget};

use generation::{Generation, Shared};
pub use generation::{Providers, start_providers};

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
        migration_status: crate::admin::StatusCache::default(),
    });
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(listener::accept_loop(
        listener,
        shared.clone(),
        config.server.limits,
        stop_rx,
    ));
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
