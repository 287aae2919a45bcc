//! The admin listener (`server.admin_listen`): `/healthz`, `/readyz` and `/metrics` for
//! orchestrators and Prometheus, `/migration` for people watching a migration ([`migration`]),
//! and the client side of `s3ferry health`.
//!
//! These live on their own address so that they never shadow a bucket called `healthz` or
//! `metrics` on the S3 port, and so that the S3 port can stay on loopback in a sidecar while
//! probes from the node reach the admin port.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

mod migration;

pub(crate) use migration::{MigratedBuckets, StatusCache};

use crate::config::{Config, ConnectionLimits};
use crate::connection::{WatchedIo, accept_with_slot, http_builder};
use crate::metrics::Metrics;
use crate::migration::MigrationStats;
use crate::upstream::Upstream;

/// The paths the admin listener serves (the deployment examples probe these).
pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";

/// How long a `/metrics` scrape waits for the migration status to be read again (when its
/// cache is due) before it answers with the gauges as they stand.
const METRICS_WAITS_FOR_MIGRATION_STATUS: Duration = Duration::from_secs(2);
pub const MIGRATION: &str = "/migration";

/// What the admin endpoints read of the running gateway. The server starts this listener and
/// implements the view, so this module never names the server's types (no import cycle).
pub(crate) trait AdminView: Send + Sync + 'static {
    /// What one config built; a reload replaces it, and readiness is probed per generation.
    type Generation: ProviderSet + MigratedBuckets;

    /// The generation new requests use.
    fn current(&self) -> Arc<Self::Generation>;
    fn metrics(&self) -> &Metrics;
    /// The S3 listener's address.
    fn listen(&self) -> SocketAddr;
    /// Whether the S3 listener has closed and in-flight requests are draining.
    fn is_draining(&self) -> bool;
    /// The last readiness probe's answers, shared by `/readyz` calls.
    fn probes(&self) -> &ProbeCache<Self::Generation>;
    /// The status records last read for `/migration` and the migration gauges.
    fn migration_status(&self) -> &StatusCache<Self::Generation>;
    /// What this process's copies on read did, per bucket.
    fn migration_stats(&self) -> &MigrationStats;
}

/// One generation as readiness sees it: the config it was built from and every provider.
pub(crate) trait ProviderSet: Send + Sync + 'static {
    fn config(&self) -> &Config;
    fn upstreams(&self) -> &BTreeMap<String, Arc<Upstream>>;
}

/// Serves the admin endpoints until the task is aborted (after the S3 listener has drained,
/// so that probes keep answering — unready — while requests drain). At most
/// `server.admin_max_connections` at once, with the S3 listener's request-head and idle
/// deadlines: the port is unauthenticated, and probes must still get through a flood.
pub(crate) async fn serve_admin<V: AdminView>(listener: TcpListener, shared: Arc<V>, limits: ConnectionLimits) {
    let builder = http_builder(&limits);
    let slots = Arc::new(Semaphore::new(limits.admin_max_connections));
    let on_full = || {
        tracing::debug!(
            admin_max_connections = limits.admin_max_connections,
            "admin connection limit reached: new clients wait until a connection closes"
        );
    };
    while let Some((socket, remote, permit)) = accept_with_slot(&listener, &slots, &on_full).await {
        let (socket, activity) = WatchedIo::new(socket, &limits);
        let shared = shared.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let in_flight = activity.begin();
                let shared = shared.clone();
                async move {
                    let response = answer(shared, req).await;
                    drop(in_flight);
                    response
                }
            });
            if let Err(e) = builder.serve_connection(TokioIo::new(socket), service).await {
                tracing::debug!(error = %e, %remote, "admin connection ended with an error");
            }
            drop(permit);
        });
    }
}

async fn answer<V: AdminView>(shared: Arc<V>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".into()));
    }
    Ok(match req.uri().path() {
        HEALTHZ => text(StatusCode::OK, "ok\n".into()),
        READYZ => {
            let report = readiness(&*shared).await;
            let status = if report.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(status, report.text)
        }
        MIGRATION => {
            let page = migration_page(&*shared).await;
            let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
            if migration::wants_json(req.uri().query(), accept) {
                match serde_json::to_string_pretty(&page) {
                    Ok(body) => with_type(text(StatusCode::OK, body + "\n"), "application/json"),
                    Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot render JSON: {e}\n")),
                }
            } else {
                let mut response = with_type(
                    text(StatusCode::OK, migration::render_html(&page)),
                    "text/html; charset=utf-8",
                );
                // Keys on the page are client data: nothing on it may load or run anything.
                response.headers_mut().insert(
                    header::CONTENT_SECURITY_POLICY,
                    http::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
                );
                response
            }
        }
        METRICS => {
            // The migration gauges are set from the same (cached) numbers as the page. A
            // refresh asks the providers (up to 10 s per bucket): it runs in its own task, and
            // the scrape waits for it only briefly, then answers with the gauges as they
            // stand, so a slow provider never costs Prometheus every other metric.
            let refresh = shared.clone();
            let refreshed = tokio::spawn(async move {
                migration_page(&*refresh).await;
            });
            let _ = tokio::time::timeout(METRICS_WAITS_FOR_MIGRATION_STATUS, refreshed).await;
            metrics_answer(&*shared)
        }
        _ => text(
            StatusCode::NOT_FOUND,
            format!("not found: the admin endpoints are {HEALTHZ}, {READYZ}, {METRICS} and {MIGRATION}\n"),
        ),
    })
}

async fn migration_page<V: AdminView>(shared: &V) -> migration::MigrationPage {
    migration::current_page(
        shared.migration_status(),
        &shared.current(),
        shared.migration_stats(),
        shared.metrics(),
    )
    .await
}

fn with_type(mut response: Response<Full<Bytes>>, content_type: &'static str) -> Response<Full<Bytes>> {
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    response
}

fn metrics_answer<V: AdminView>(shared: &V) -> Response<Full<Bytes>> {
    match shared.metrics().render() {
        Ok(body) => {
            let mut response = text(StatusCode::OK, body);
            if let Ok(v) = http::HeaderValue::from_str(&shared.metrics().content_type()) {
                response.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            response
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot render metrics");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot render metrics: {e}\n"),
            )
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The answer of `/readyz`: ready or not, and one line per check so that `kubectl describe`
/// and `curl` show which provider is the problem.
struct Readiness {
    ready: bool,
    text: String,
}

/// Ready when a config is loaded, the S3 listener accepts (not draining), and every provider
/// answered within `server.readiness_timeout` (see [`RoundCache`] for how recent the answer is).
async fn readiness<V: AdminView>(shared: &V) -> Readiness {
    let generation = shared.current();
    let draining = shared.is_draining();
    let ttl = generation.config().server.readiness_cache;
    let round = shared
        .probes()
        .latest(&generation, ttl, probe_providers(&*generation))
        .await;

    let mut ready = !draining;
    let mut lines = String::new();
    let _ = writeln!(lines, "config {}: loaded", generation.config().source);
    if draining {
        let _ = writeln!(
            lines,
            "listener {}: closed, draining in-flight requests",
            shared.listen()
        );
    } else {
        let _ = writeln!(lines, "listener {}: accepting", shared.listen());
    }
    for probe in &round.answers {
        match &probe.outcome {
            Ok(status) => {
                let _ = writeln!(
                    lines,
                    "provider {}: ok (HTTP {} in {} ms)",
                    probe.provider,
                    status.as_u16(),
                    probe.elapsed.as_millis()
                );
            }
            Err(reason) => {
                ready = false;
                let _ = writeln!(lines, "provider {}: FAILED: {reason}", probe.provider);
            }
        }
    }
    let verdict = if ready { "ready" } else { "not ready" };
    Readiness {
        ready,
        text: format!("{verdict}\n{lines}"),
    }
}

/// The providers' answers to the last readiness probe, shared by every `/readyz` call for
/// `server.readiness_cache` (see [`RoundCache`]): each round sends a signed request to every
/// provider.
pub(crate) type ProbeCache<G> = RoundCache<G, Vec<ProviderProbe>>;

/// The last answers of something the unauthenticated admin port asks the providers (readiness
/// probes, migration status records), shared by every caller: a flood of callers must not
/// become a flood of provider requests. One round runs at a time (callers that arrive meanwhile
/// wait for it and take its answers), and a round is reused until it is older than the cache
/// time or the config it was made for has been replaced.
pub(crate) struct RoundCache<G, T> {
    last: tokio::sync::Mutex<Option<Arc<Round<G, T>>>>,
}

// Not derived: a derive would ask `G: Default`, and no generation is.
impl<G, T> Default for RoundCache<G, T> {
    fn default() -> Self {
        Self {
            last: tokio::sync::Mutex::default(),
        }
    }
}

/// One round's answers.
pub(crate) struct Round<G, T> {
    /// Which config the round was made for (compared by address, never dereferenced).
    generation: std::sync::Weak<G>,
    started: Instant,
    pub(crate) answers: T,
}

impl<G, T> RoundCache<G, T> {
    /// A round for `generation` younger than `ttl`, or a new one made by `ask`.
    pub(crate) async fn latest<F>(&self, generation: &Arc<G>, ttl: Duration, ask: F) -> Arc<Round<G, T>>
    where
        F: Future<Output = T>,
    {
        let asked = Instant::now();
        // Held across the asking: that is the single flight.
        let mut last = self.last.lock().await;
        if let Some(round) = last.as_ref()
            && std::ptr::eq(round.generation.as_ptr(), Arc::as_ptr(generation))
            // Started after this caller asked: as fresh as a round it would start itself.
            && (round.started >= asked || round.started.elapsed() < ttl)
        {
            return round.clone();
        }
        let started = Instant::now();
        let round = Arc::new(Round {
            generation: Arc::downgrade(generation),
            started,
            answers: ask.await,
        });
        *last = Some(round.clone());
        round
    }
}

pub(crate) struct ProviderProbe {
    provider: String,
    outcome: Result<StatusCode, String>,
    elapsed: Duration,
}

/// Asks every provider at once, so a round takes at most one `server.readiness_timeout`
/// however many there are.
async fn probe_providers<G: ProviderSet>(generation: &G) -> Vec<ProviderProbe> {
    let timeout = generation.config().server.readiness_timeout;
    let probes = generation.upstreams().iter().map(|(name, upstream)| async move {
        let started = Instant::now();
        let outcome = upstream.probe(timeout).await;
        ProviderProbe {
            provider: name.clone(),
            outcome,
            elapsed: started.elapsed(),
        }
    });
    futures_util::future::join_all(probes).await
}

/// `s3ferry health`: GETs an admin URL (plain HTTP) and returns its status and body. For
/// container HEALTHCHECKs in images without a shell or curl.
pub async fn check_health(url: &str, timeout: Duration) -> Result<(StatusCode, String), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("'{url}' is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(format!(
            "'{url}' must be an http:// URL with a host (the admin listener speaks plain HTTP)"
        ));
    }
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let request = Request::get(uri)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| crate::upstream::error_chain(&e))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no answer from {url} within {} ms", timeout.as_millis()))?
}
