//! Which provider and upstream bucket a client bucket goes to, and where reads fall back to
//! while the bucket is being migrated.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::config::{BucketRoute, FallbackConfig};
use crate::cors::CorsRule;
use crate::error::GatewayError;
use crate::s3::bucket_name::WILDCARD_BUCKET;
use crate::upstream::Upstream;

/// The old provider of a bucket under lazy migration.
#[derive(Debug, Clone)]
pub struct FallbackRoute {
    pub provider: Arc<Upstream>,
    pub bucket: String,
    pub copy_on_read: bool,
    pub delete_from_fallback: bool,
}

/// A client bucket resolved to where it lives.
#[derive(Debug, Clone)]
pub struct Route {
    /// The name the client uses.
    pub client_bucket: String,
    /// The name at the provider.
    pub upstream_bucket: String,
    pub provider: Arc<Upstream>,
    /// Set while the bucket is migrated lazily from an old provider.
    pub fallback: Option<FallbackRoute>,
    /// The route's CORS rules (`[[buckets.cors]]`); empty: the provider's own CORS answers.
    pub cors: Arc<[CorsRule]>,
}

impl Route {
    /// True when the provider knows the bucket under another name, so bucket names in
    /// responses must be mapped back.
    pub fn is_renamed(&self) -> bool {
        self.client_bucket != self.upstream_bucket
    }
}

#[derive(Debug, Clone)]
struct Entry {
    provider: Arc<Upstream>,
    /// `None` on the wildcard entry: the client's name is used.
    upstream_bucket: Option<String>,
    fallback: Option<(Arc<Upstream>, Option<String>, FallbackConfig)>,
    cors: Arc<[CorsRule]>,
}

/// The routing table: explicit routes by client bucket, plus an optional `*` route.
#[derive(Debug, Clone)]
pub struct RouteTable {
    explicit: BTreeMap<String, Entry>,
    wildcard: Option<Entry>,
    /// Every bucket name an explicit route uses at a provider (renamed targets, a migration's
    /// old and new buckets). The `*` route never reaches these names, on any provider: a
    /// client reaches them only through the route that owns them, under its name.
    claimed_upstream: BTreeSet<String>,
}

impl RouteTable {
    /// Builds the table; `providers` must hold every provider a route names (validated config).
    pub fn new(routes: &[BucketRoute], providers: &BTreeMap<String, Arc<Upstream>>) -> Result<Self, String> {
        let provider = |route: &str, name: &str| {
            providers
                .get(name)
                .cloned()
                .ok_or_else(|| format!("route '{route}': no provider '{name}'"))
        };
        let mut explicit = BTreeMap::new();
        let mut wildcard = None;
        let mut claimed_upstream = BTreeSet::new();
        for r in routes {
            let fallback = match &r.fallback {
                Some(f) => Some((provider(&r.name, &f.provider)?, f.bucket.clone(), f.clone())),
                None => None,
            };
            let entry = Entry {
                provider: provider(&r.name, &r.provider)?,
                upstream_bucket: None,
                fallback,
                cors: Arc::from(r.cors.clone()),
            };
            if r.name == WILDCARD_BUCKET {
                wildcard = Some(entry);
            } else {
                let upstream = r.upstream_bucket.clone().unwrap_or_else(|| r.name.clone());
                claimed_upstream.insert(upstream.clone());
                if let Some(f) = &r.fallback {
                    claimed_upstream.insert(f.bucket.clone().unwrap_or_else(|| r.name.clone()));
                }
                explicit.insert(
                    r.name.clone(),
                    Entry {
                        upstream_bucket: Some(upstream),
                        ..entry
                    },
                );
            }
        }
        Ok(Self {
            explicit,
            wildcard,
            claimed_upstream,
        })
    }

    /// Where `bucket` lives, or `NoSuchBucket` when no route matches (the `*` route matches
    /// only the names [`RouteTable::wildcard_exposes`]).
    pub fn resolve(&self, bucket: &str) -> Result<Route, GatewayError> {
        let wildcard = self.wildcard.as_ref().filter(|_| self.wildcard_exposes(bucket));
        let entry = self
            .explicit
            .get(bucket)
            .or(wildcard)
            .ok_or_else(|| GatewayError::NoSuchBucket {
                bucket: bucket.to_string(),
            })?;
        let fallback = entry.fallback.as_ref().map(|(provider, old_bucket, f)| FallbackRoute {
            provider: provider.clone(),
            bucket: old_bucket.clone().unwrap_or_else(|| bucket.to_string()),
            copy_on_read: f.copy_on_read,
            delete_from_fallback: f.delete_from_fallback,
        });
        Ok(Route {
            client_bucket: bucket.to_string(),
            upstream_bucket: entry.upstream_bucket.clone().unwrap_or_else(|| bucket.to_string()),
            provider: entry.provider.clone(),
            fallback,
            cors: entry.cors.clone(),
        })
    }

    /// The client names of the explicit routes with their provider and upstream bucket, sorted.
    pub fn explicit_buckets(&self) -> impl Iterator<Item = (&str, &Arc<Upstream>, &str)> {
        self.explicit.iter().map(|(name, e)| {
            (
                name.as_str(),
                &e.provider,
                e.upstream_bucket.as_deref().unwrap_or(name.as_str()),
            )
        })
    }

    pub fn wildcard(&self) -> Option<&Arc<Upstream>> {
        self.wildcard.as_ref().map(|e| &e.provider)
    }

    /// Whether a bucket name is reachable through the `*` route: not when an explicit route
    /// claims the name, and not when an explicit route uses it at a provider (as its renamed
    /// target, or as a migration's old or new bucket); clients see those under the route's
    /// name only.
    pub fn wildcard_exposes(&self, bucket: &str) -> bool {
        self.wildcard.is_some() && !self.explicit.contains_key(bucket) && !self.claimed_upstream.contains(bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    async fn table(toml: &str) -> RouteTable {
        let config = Config::parse(toml, "routes.toml", std::path::Path::new("."), &|_| None).expect("config");
        let (upstreams, _) = crate::server::start_providers(&config).await.expect("providers");
        RouteTable::new(&config.buckets, &upstreams).expect("routes")
    }

    const PROVIDERS: &str = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[[credentials]]
access_key_id = "k"
secret_access_key = "s"
grants = "all"
[providers.new]
endpoint = "http://127.0.0.1:1"
access_key_id = "k"
secret_access_key = "s"
[providers.old]
endpoint = "http://127.0.0.1:2"
access_key_id = "k"
secret_access_key = "s"
"#;

    #[tokio::test]
    async fn the_wildcard_never_reaches_a_name_an_explicit_route_uses_upstream() {
        let routes = table(&format!(
            r#"{PROVIDERS}
[[buckets]]
name = "photos"
provider = "new"
upstream_bucket = "photos-2017"
[[buckets]]
name = "media"
provider = "new"
upstream_bucket = "media-new"
fallback = "old"
fallback_bucket = "media-2017"
[[buckets]]
name = "*"
provider = "new"
"#
        ))
        .await;
        for hidden in ["photos-2017", "media-new", "media-2017"] {
            assert!(!routes.wildcard_exposes(hidden), "{hidden}");
            let err = routes.resolve(hidden).expect_err(hidden);
            assert_eq!(err.code_and_status().0, "NoSuchBucket", "{hidden}");
        }
        let photos = routes.resolve("photos").expect("explicit");
        assert_eq!(photos.upstream_bucket, "photos-2017");
        let media = routes.resolve("media").expect("explicit");
        assert_eq!(media.fallback.map(|f| f.bucket).as_deref(), Some("media-2017"));
        let other = routes.resolve("anything-else").expect("wildcard");
        assert_eq!(other.upstream_bucket, "anything-else");
    }

    #[tokio::test]
    async fn without_a_wildcard_only_explicit_routes_resolve() {
        let routes = table(&format!(
            r#"{PROVIDERS}
[[buckets]]
name = "photos"
provider = "old"
"#
        ))
        .await;
        assert!(routes.resolve("photos").is_ok());
        assert!(!routes.wildcard_exposes("other"));
        assert!(routes.resolve("other").is_err());
    }
}
