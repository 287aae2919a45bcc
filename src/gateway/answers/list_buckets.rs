//! ListBuckets, answered by s3ferry: every route the signer has a grant on, plus the buckets the
//! `*` provider lists.

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use s3s::{Body, S3Response};

use crate::access::{self, Identity};
use crate::body;
use crate::error::GatewayError;
use crate::gateway::Gateway;
use crate::gateway::relay::xml_response;
use crate::rewrite::list_buckets::{ListedBucket, parse_list_buckets, render_list_buckets};
use crate::small_body::MAX_XML_BODY;
use crate::upstream::OutgoingRequest;
use crate::upstream::exchange::Exchange;
use crate::upstream::sign::EMPTY_PAYLOAD_SHA256;

impl Gateway {
    /// Requests without a bucket: only ListBuckets exists. It lists the buckets `who` has a
    /// grant on; an unsigned one is refused, as AWS refuses it.
    pub(in crate::gateway) async fn answer_service_request(
        &self,
        method: &Method,
        who: Identity<'_>,
    ) -> Result<S3Response<Body>, GatewayError> {
        if who == Identity::Anonymous {
            return Err(access::Denied.into());
        }
        if *method != Method::GET {
            return Err(GatewayError::NotImplemented(format!(
                "{method} on the service root is not an S3 operation s3ferry can route (no bucket given)"
            )));
        }
        let mut buckets = self.list_buckets().await?;
        buckets.retain(|b| self.access.lists_bucket(who, &b.name));
        let xml = render_list_buckets(&buckets, "s3ferry");
        Ok(xml_response(StatusCode::OK, Bytes::from(xml)))
    }

    /// The client-visible buckets: every explicit route, plus what the `*` provider lists.
    async fn list_buckets(&self) -> Result<Vec<ListedBucket>, GatewayError> {
        let mut listed: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
        let mut wildcard_dates = std::collections::BTreeMap::new();
        if let Some(wild) = self.routes.wildcard() {
            let request = OutgoingRequest {
                method: Method::GET,
                bucket: None,
                encoded_key: String::new(),
                query: Vec::new(),
                headers: HeaderMap::new(),
                body: body::empty(),
                payload_hash: EMPTY_PAYLOAD_SHA256.into(),
            };
            let response = Exchange::new(request).send_collect(wild, MAX_XML_BODY).await?;
            if !response.status().is_success() {
                return Err(GatewayError::UpstreamProtocol {
                    provider: wild.settings.name.clone(),
                    cause: format!("ListBuckets answered {}", response.status()),
                });
            }
            let buckets = parse_list_buckets(response.body()).map_err(|e| GatewayError::UpstreamProtocol {
                provider: wild.settings.name.clone(),
                cause: e.to_string(),
            })?;
            for b in buckets {
                if self.routes.wildcard_exposes(&b.name) {
                    listed.insert(b.name.clone(), b.creation_date.clone());
                }
                wildcard_dates.insert(b.name, b.creation_date);
            }
        }
        for (name, provider, upstream_bucket) in self.routes.explicit_buckets() {
            let on_wildcard = self
                .routes
                .wildcard()
                .is_some_and(|w| std::sync::Arc::ptr_eq(w, provider));
            let date = on_wildcard
                .then(|| wildcard_dates.get(upstream_bucket).cloned())
                .flatten();
            listed.insert(name.to_string(), date.unwrap_or_else(|| self.started.clone()));
        }
        Ok(listed
            .into_iter()
            .map(|(name, creation_date)| ListedBucket { name, creation_date })
            .collect())
    }
}
