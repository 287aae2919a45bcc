//! Which provider and upstream bucket a client bucket goes to.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{BucketRoute, WILDCARD_BUCKET};
use crate::error::GatewayError;
use crate::upstream::Upstream;

/// A client bucket resolved to where it lives.
#[derive(Debug, Clone)]
pub struct Route {
    /// The name the client uses.
    pub client_bucket: String,
    /// The name at the provider.
    pub upstream_bucket: String,
    pub provider: Arc<Upstream>,
}

impl Route {
    /// True when the provider knows the bucket under another name, so bucket names in
    /// responses must be mapped back.
    pub fn is_renamed(&self) -> bool {
        self.client_bucket != self.upstream_bucket
    }
}

/// The routing table: explicit routes by client bucket, plus an optional `*` route.
#[derive(Debug, Clone)]
pub struct RouteTable {
    explicit: BTreeMap<String, (Arc<Upstream>, String)>,
    wildcard: Option<Arc<Upstream>>,
}

impl RouteTable {
    /// Builds the table; `providers` must hold every provider a route names (validated config).
    pub fn new(routes: &[BucketRoute], providers: &BTreeMap<String, Arc<Upstream>>) -> Result<Self, String> {
        let mut explicit = BTreeMap::new();
        let mut wildcard = None;
        for r in routes {
            let provider = providers
                .get(&r.provider)
                .cloned()
                .ok_or_else(|| format!("route '{}': no provider '{}'", r.name, r.provider))?;
            if r.name == WILDCARD_BUCKET {
                wildcard = Some(provider);
            } else {
                let upstream = r.upstream_bucket.clone().unwrap_or_else(|| r.name.clone());
                explicit.insert(r.name.clone(), (provider, upstream));
            }
        }
        Ok(Self { explicit, wildcard })
    }

    /// Where `bucket` lives, or `NoSuchBucket` when no route matches.
    pub fn resolve(&self, bucket: &str) -> Result<Route, GatewayError> {
        if let Some((provider, upstream)) = self.explicit.get(bucket) {
            return Ok(Route {
                client_bucket: bucket.to_string(),
                upstream_bucket: upstream.clone(),
                provider: provider.clone(),
            });
        }
        match &self.wildcard {
            Some(provider) => Ok(Route {
                client_bucket: bucket.to_string(),
                upstream_bucket: bucket.to_string(),
                provider: provider.clone(),
            }),
            None => Err(GatewayError::NoSuchBucket {
                bucket: bucket.to_string(),
            }),
        }
    }

    /// The client names of the explicit routes, sorted.
    pub fn explicit_buckets(&self) -> impl Iterator<Item = (&str, &Arc<Upstream>, &str)> {
        self.explicit
            .iter()
            .map(|(name, (p, up))| (name.as_str(), p, up.as_str()))
    }

    pub fn wildcard(&self) -> Option<&Arc<Upstream>> {
        self.wildcard.as_ref()
    }

    /// Whether a bucket the wildcard provider lists is reachable by clients under its own name:
    /// not when an explicit route claims the name, and not when it is the renamed target of an
    /// explicit route on the same provider (clients see it under the route's name).
    pub fn wildcard_exposes(&self, upstream_bucket: &str) -> bool {
        let Some(wild) = &self.wildcard else {
            return false;
        };
        if self.explicit.contains_key(upstream_bucket) {
            return false;
        }
        !self
            .explicit
            .values()
            .any(|(p, up)| Arc::ptr_eq(p, wild) && up == upstream_bucket)
    }
}
