//! Everything one config file describes, built as a [`Generation`]: every provider's client
//! (and the in-process servers of `kind = "local"` ones), the routes, the copy-on-read queue
//! and the s3s front door; and [`Shared`], what outlives a generation (metrics, budgets, the
//! draining flag) and hands the current one to each request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use s3s::service::{S3Service, S3ServiceBuilder};

use super::StartError;
use super::front_door::{GatewayHost, GatewayRoute, ProxyOnly};
use super::tls::tls_acceptor;
use crate::admin::{AdminView, MigratedBuckets, ProbeCache, ProviderSet, StatusCache};
use crate::auth::ClientAuth;
use crate::config::{Config, MigrationConfig, ProviderConfig, ProviderKind, Secret, SignatureVersion};
use crate::gateway::Gateway;
use crate::local::{LocalServer, ensure_local_bucket, start_local_provider};
use crate::metrics::Metrics;
use crate::migration::MigrationStats;
use crate::migration::copy::Copier;
use crate::migration::serve::Migration;
use crate::post_upload::spool::SpoolBudget;
use crate::route::RouteTable;
use crate::s3::addressing::Addressing;
use crate::s3::bucket_name::WILDCARD_BUCKET;
use crate::small_body::{BUDGET_WAIT, BodyBudget};
use crate::upstream::{KeyStore, Upstream, UpstreamSettings};

/// What the listener, every request and the admin endpoints share.
pub(super) struct Shared {
    pub(super) generation: RwLock<Arc<Generation>>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) migration_stats: Arc<MigrationStats>,
    /// The bytes all bodies read whole may hold (`server.max_buffered_body_bytes`); one for the
    /// process's life, so a reload does not reset what in-flight requests hold.
    pub(super) body_budget: BodyBudget,
    /// The bytes all form-upload spool files may hold (`post_upload.max_spool_bytes`); one
    /// for the process's life, like `body_budget`.
    pub(super) spool_budget: SpoolBudget,
    /// Set when the listener has closed and in-flight requests are draining.
    pub(super) draining: AtomicBool,
    /// The S3 listener's address.
    pub(super) listen: SocketAddr,
    /// The last readiness probe's answers, shared by `/readyz` calls.
    pub(super) probes: ProbeCache<Generation>,
    /// The migration status records last read for `/migration` and the gauges.
    pub(super) migration_status: StatusCache<Generation>,
}

impl Shared {
    /// The generation new requests use.
    pub(super) fn current(&self) -> Arc<Generation> {
        // The lock only guards a pointer swap, which cannot panic; a poisoned lock still holds
        // a whole generation.
        match self.generation.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(super) fn replace(&self, next: Generation) {
        let next = Arc::new(next);
        match self.generation.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}

/// Everything built from one config file.
pub(super) struct Generation {
    pub(super) config: Config,
    pub(super) s3: S3Service,
    /// The gateway behind `s3`, also reached directly by form uploads (`post_upload`).
    pub(super) gateway: Arc<Gateway>,
    /// The client key pairs (also inside `s3`), for the checks made before s3s runs.
    pub(super) client_auth: ClientAuth,
    /// Every provider by name (the readiness probe asks each one).
    upstreams: BTreeMap<String, Arc<Upstream>>,
    /// `kind = "local"` servers by root directory. A reload keeps a server whose root is
    /// unchanged (same port, same key), so requests that are streaming from it are not cut
    /// and the directory is never served twice.
    local_providers: BTreeMap<PathBuf, Arc<LocalServer>>,
    /// The copy-on-read queue. A reload that leaves `[migration]` as it is (but for
    /// `status_refresh`) keeps it, so copies queued or running carry on and a key is still
    /// copied once at a time.
    copier: Arc<Copier>,
    pub(super) tls: Option<tokio_rustls::TlsAcceptor>,
    /// The routes (also inside `s3`), for what the edge answers before s3s runs: CORS.
    pub(super) routes: RouteTable,
}

impl Generation {
    /// Starts (or reuses from `previous`) every provider and the copy queue, builds the routes
    /// and the front door.
    pub(super) async fn build(
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
            Some(p) if same_copier_settings(&p.config.migration, &config.migration) => p.copier.clone(),
            // Copies of the old queue may still run: the new one sees their claims and leases.
            Some(p) => Copier::start(&config.migration, migration_stats.clone(), p.copier.claims()),
            None => Copier::start(&config.migration, migration_stats.clone(), Arc::default()),
        };
        let migration = Migration {
            copier: copier.clone(),
            stats: migration_stats.clone(),
        };
        let access = Arc::new(config.access_policy());
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

/// Whether two `[migration]` sections make the same copy-on-read queue (`status_refresh` is the
/// admin page's, not the queue's).
fn same_copier_settings(running: &MigrationConfig, next: &MigrationConfig) -> bool {
    let next_queue = MigrationConfig {
        status_refresh: running.status_refresh,
        ..next.clone()
    };
    *running == next_queue
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
        let access = match &provider.kind {
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
                let access = ProviderAccess {
                    endpoint,
                    access_key_id: local.access_key_id.clone(),
                    secret_access_key: local.secret_access_key.clone(),
                    addressing: Addressing::Path,
                    signature: SignatureVersion::V4,
                    ca_file: None,
                    key_store: KeyStore::LocalFiles,
                };
                local_providers.insert(root.clone(), local);
                access
            }
            ProviderKind::Remote(remote) => ProviderAccess {
                endpoint: remote.endpoint.clone(),
                access_key_id: remote.access_key_id.clone(),
                secret_access_key: remote.secret_access_key.clone(),
                addressing: provider.addressing,
                signature: remote.signature,
                ca_file: remote.ca_file.clone(),
                key_store: KeyStore::S3,
            },
        };
        let settings = access.into_settings(name, provider);
        let upstream_metrics = metrics.map(Metrics::upstream);
        let upstream = Upstream::new(settings, budget.clone(), upstream_metrics).map_err(provider_error)?;
        upstreams.insert(name.clone(), upstream);
    }
    Ok((upstreams, local_providers))
}

/// What differs between reaching a `kind = "local"` provider (the in-process server, path
/// style, SigV4, keys kept in file names) and a remote one; the rest of a provider's upstream
/// settings come from its config either way.
struct ProviderAccess {
    endpoint: http::Uri,
    access_key_id: String,
    secret_access_key: Secret,
    addressing: Addressing,
    signature: SignatureVersion,
    ca_file: Option<PathBuf>,
    key_store: KeyStore,
}

impl ProviderAccess {
    fn into_settings(self, name: &str, provider: &ProviderConfig) -> UpstreamSettings {
        UpstreamSettings {
            name: name.to_owned(),
            endpoint: self.endpoint,
            region: provider.region.clone(),
            access_key_id: self.access_key_id,
            secret_access_key: self.secret_access_key,
            addressing: self.addressing,
            signature: self.signature,
            profile: Arc::new(provider.profile.clone()),
            ca_file: self.ca_file,
            connect_timeout: provider.connect_timeout,
            read_timeout: provider.read_timeout,
            key_store: self.key_store,
            retry: provider.retry,
        }
    }
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

/// What the admin endpoints read: they are started by the server, so they see it through
/// [`AdminView`] rather than naming these types.
impl AdminView for Shared {
    type Generation = Generation;

    fn current(&self) -> Arc<Generation> {
        Shared::current(self)
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn listen(&self) -> SocketAddr {
        self.listen
    }

    fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    fn probes(&self) -> &ProbeCache<Generation> {
        &self.probes
    }

    fn migration_status(&self) -> &StatusCache<Generation> {
        &self.migration_status
    }

    fn migration_stats(&self) -> &MigrationStats {
        &self.migration_stats
    }
}

impl MigratedBuckets for Generation {
    fn migrated_routes(&self) -> Vec<crate::route::Route> {
        self.config
            .buckets
            .iter()
            .filter(|b| b.fallback.is_some() && b.name != WILDCARD_BUCKET)
            .filter_map(|b| self.routes.resolve(&b.name).ok())
            .collect()
    }

    fn status_refresh(&self) -> std::time::Duration {
        self.config.migration.status_refresh
    }
}

impl ProviderSet for Generation {
    fn config(&self) -> &Config {
        &self.config
    }

    fn upstreams(&self) -> &BTreeMap<String, Arc<Upstream>> {
        &self.upstreams
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_status_refresh_keeps_the_copy_queue_and_a_new_queue_setting_does_not() {
        let running = MigrationConfig::default();
        let refreshed = MigrationConfig {
            status_refresh: std::time::Duration::from_secs(5),
            ..MigrationConfig::default()
        };
        assert!(same_copier_settings(&running, &refreshed));
        let more_workers = MigrationConfig {
            copy_workers: running.copy_workers + 1,
            ..refreshed
        };
        assert!(!same_copier_settings(&running, &more_workers));
    }
}
