//! DeleteObjects: its (small) body is read to learn the keys before anything reaches a provider.

use bytes::Bytes;
use s3s::{Body, S3Request, S3Response};

use crate::access::{self, Action, Forwarding, Object};
use crate::error::GatewayError;
use crate::gateway::plan::RequestPlan;
use crate::gateway::request::ClientRequest;
use crate::gateway::{Gateway, check_key, relay, signed_as, upload};
use crate::migration::serve::DeleteAnswer;
use crate::rewrite::delete_objects::{parse_delete_keys, parse_delete_result, render_delete_body};
use crate::route::Route;
use crate::s3::operation::Operation;
use crate::small_body::MAX_XML_BODY;

impl Gateway {
    /// DeleteObjects: the request body is read to learn the keys, and refused as AWS refuses it
    /// (not XML, more than 1,000 objects) before anything reaches a provider. Each key must be
    /// one a client may name (not s3ferry's own, no dot segments a provider would resolve). A
    /// body with CDATA goes on written again as plain text, so the provider deletes the keys
    /// s3ferry checked and tombstones. On a bucket under migration each key that names no
    /// version is tombstoned first, the same body goes to the provider, and its answer says
    /// which tombstones stay (see `migration::serve::DeleteAnswer`).
    pub(in crate::gateway) async fn delete_objects(
        &self,
        req: &mut S3Request<Body>,
        request: &ClientRequest,
        route: &Route,
        forwarding: Forwarding,
    ) -> Result<S3Response<Body>, GatewayError> {
        let settings = &route.provider.settings;
        let mut plan = RequestPlan::new(settings, request, &req.headers, None, false)?;
        // The body is read here, after the exchange is built: its Content-MD5 too.
        let content_md5 = std::mem::take(&mut plan.content_md5);
        let encoded_key = request.target.encoded_key();
        let (mut exchange, _) = upload::exchange_for(req, route, encoded_key, &mut plan).await?;
        let bytes = upload::read_small_body(&mut exchange, route, Operation::DeleteObjects).await?;
        let keys = parse_delete_keys(&bytes).map_err(|e| GatewayError::MalformedXml(e.to_string()))?;
        for entry in &keys.entries {
            check_key(route, &entry.key)?;
        }
        // Every key must be one the signer may delete, or nothing is: AWS would answer each
        // refused key with its own `<Error>` entry and delete the others, but a request refused
        // whole never reaches the provider, which is simpler to reason about (README, "Who may
        // do what").
        for entry in &keys.entries {
            access::decide(
                &self.access,
                request.identity(),
                Action::ObjectChange,
                &route.client_bucket,
                Object::Key(&entry.key),
            )?;
        }
        let tombstoned: Vec<String> = match &route.fallback {
            Some(_) => {
                let unique: std::collections::BTreeSet<&str> =
                    keys.unversioned_keys().filter(|k| !k.is_empty()).collect();
                unique.into_iter().map(str::to_string).collect()
            }
            None => Vec::new(),
        };
        // Held until the answer is relayed, as in `handle`.
        let _claims = match &route.fallback {
            Some(_) => {
                self.migration
                    .copier
                    .claim_all(&route.upstream_bucket, &tombstoned)
                    .await
            }
            None => Vec::new(),
        };
        let outgoing = &mut exchange.request;
        if keys.has_cdata {
            // Not every store reads CDATA (s3s skips it): the provider gets the keys s3ferry read.
            let plain = render_delete_body(&keys);
            upload::replace_small_body(outgoing, bytes, Bytes::from(plain))?;
        } else if content_md5 && !outgoing.headers.contains_key("content-md5") {
            upload::set_content_md5(outgoing, bytes)?;
        } else {
            outgoing.body = bytes.into_upstream_body();
        }
        let exchange = signed_as(exchange, forwarding);
        let Some(fallback) = route.fallback.as_ref().filter(|_| !tombstoned.is_empty()) else {
            let response = exchange.send(&route.provider).await?;
            return relay::relay_response(response, route, plan.response).await;
        };
        self.migration.tombstone_before_delete(route, &tombstoned).await?;
        let response = match exchange.send(&route.provider).await {
            Ok(response) => response,
            Err(e) => {
                let answer = DeleteAnswer::of_exchange(Err(&e));
                self.migration.after_delete(route, fallback, &tombstoned, answer).await;
                return Err(e);
            }
        };
        let (parts, incoming) = response.into_parts();
        // Unread, the answer leaves the tombstones in place: the provider may have deleted.
        let answer = route.provider.read_answer(incoming, MAX_XML_BODY).await?;
        let result = if parts.status.is_success() {
            let parsed = parse_delete_result(&answer);
            if parsed.is_err() {
                // The reader's detail stays out: it can quote a key.
                tracing::warn!(bucket = %route.client_bucket, provider = %settings.name, "the provider's DeleteObjects answer cannot be read; the tombstones stay");
            }
            parsed.ok()
        } else {
            None
        };
        let outcome = DeleteAnswer::Batch {
            status: parts.status,
            result: result.as_ref(),
        };
        self.migration.after_delete(route, fallback, &tombstoned, outcome).await;
        relay::relay_read_response(http::Response::from_parts(parts, answer), route, plan.response).await
    }
}
