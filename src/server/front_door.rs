//! The s3s verification front door of a generation: the gateway as s3s's catch-all route, and
//! the rule s3s uses to tell virtual-hosted from path-style requests.

use std::sync::Arc;

use crate::gateway::Gateway;
use crate::target::virtual_host_bucket;

/// The gateway as s3s's catch-all route; the generation keeps it too, for form uploads.
/// Every method is the gateway's own (`impl S3Route for Gateway`), `check_access` included:
/// unsigned requests reach the gateway, which decides them by the bucket's anonymous access.
pub(super) struct GatewayRoute(pub(super) Arc<Gateway>);

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
pub(super) struct ProxyOnly;

#[async_trait::async_trait]
impl s3s::S3 for ProxyOnly {}

/// Tells s3s which requests are virtual-hosted style, with the same rule the gateway uses
/// (`<bucket>.<domain>[:port]`); any other Host means path style.
pub(super) struct GatewayHost {
    pub(super) domain: Option<String>,
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
