//! What s3ferry answers itself, or takes over from the plain forward: ACLs a provider lacks
//! ([`acl`]), DeleteObjects, whose keys are read first ([`delete_objects`]), ListBuckets
//! ([`list_buckets`]), reads and listings of a bucket under migration (`migration::serve`), and
//! copies whose source the destination provider cannot reach ([`copy_through`]).

pub(super) mod acl;
pub(super) mod copy_through;
mod delete_objects;
mod list_buckets;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use s3s::{Body, S3Request, S3Response};

use super::plan::{ResponsePlan, forwarded_headers};
use super::relay::{relay_response, xml_response};
use super::request::ClientRequest;
use super::{Gateway, ResolvedCopySource};
use crate::access::Forwarding;
use crate::error::GatewayError;
use crate::migration::serve::ReadRequest;
use crate::route::Route;
use crate::s3::operation::Operation;
use copy_through::CopySource;

impl Gateway {
    /// `Some(answer)` when s3ferry answers the request itself (or sends it its own way);
    /// `None` when it goes on to the provider as planned.
    pub(super) async fn answer_itself(
        &self,
        req: &mut S3Request<Body>,
        request: &ClientRequest,
        route: &Route,
        copy_source: Option<&ResolvedCopySource>,
        forwarding: Forwarding,
    ) -> Result<Option<S3Response<Body>>, GatewayError> {
        let operation = request.operation;
        let key = &request.target.key;
        if let Some(answer) = acl::answer_or_rewrite(req, route, operation, key).await? {
            return Ok(Some(answer));
        }
        if operation == Operation::DeleteObjects {
            return self.delete_objects(req, request, route, forwarding).await.map(Some);
        }
        if let Some(fallback) = &route.fallback {
            if operation.reads_object() {
                let read = ReadRequest {
                    method: req.method.clone(),
                    encoded_key: request.target.encoded_key(),
                    query: request.query.clone(),
                    headers: headers_with_copy_source(&req.headers, copy_source)?,
                };
                let (response, answered_by) = self.migration.read_through(route, fallback, key, read).await?;
                let plan = ResponsePlan::relayed(operation, &req.headers);
                return relay_response(response, &answered_by, plan).await.map(Some);
            }
            if matches!(operation, Operation::ListObjects | Operation::ListObjectsV2) {
                let v2 = operation == Operation::ListObjectsV2;
                let xml = self.migration.list(route, fallback, &request.query, v2).await?;
                return Ok(Some(xml_response(StatusCode::OK, xml)));
            }
        }
        if operation.is_copy()
            && let Some(source) = copy_source
            && let Some(xml) = self
                .copy_from_another_provider(source, &req.headers, route, request)
                .await?
        {
            if route.fallback.is_some() && operation == Operation::CopyObject {
                self.migration.after_write(route, key, operation).await;
            }
            return Ok(Some(xml_response(StatusCode::OK, Bytes::from(xml))));
        }
        Ok(None)
    }

    /// CopyObject / UploadPartCopy whose source the destination provider cannot reach: on
    /// another provider, or only in the old provider of a bucket under migration. s3ferry
    /// streams the source through. `None`: a server-side copy at the provider does it.
    async fn copy_from_another_provider(
        &self,
        copy_source: &ResolvedCopySource,
        client_headers: &HeaderMap,
        route: &Route,
        request: &ClientRequest,
    ) -> Result<Option<String>, GatewayError> {
        let ResolvedCopySource {
            source,
            route: source_route,
        } = copy_source;
        let key = &source.key;
        let encoded_key = request.target.encoded_key();
        let upload = request.upload_part();
        if let Some(fallback) = &source_route.fallback
            && source.version_id.is_none()
            && self.migration.source_only_in_old(source_route, fallback, key).await?
        {
            let from = CopySource {
                provider: &fallback.provider,
                bucket: &fallback.bucket,
                key,
                version_id: None,
            };
            return copy_through::copy_through(from, route, &encoded_key, client_headers, upload)
                .await
                .map(Some);
        }
        let part_copy_by_provider = upload.is_none() || route.provider.settings.profile.upload_part_copy;
        if std::sync::Arc::ptr_eq(&source_route.provider, &route.provider) && part_copy_by_provider {
            return Ok(None);
        }
        let from = CopySource {
            provider: &source_route.provider,
            bucket: &source_route.upstream_bucket,
            key,
            version_id: source.version_id.as_deref(),
        };
        copy_through::copy_through(from, route, &encoded_key, client_headers, upload)
            .await
            .map(Some)
    }
}

/// The forwarded headers, with `x-amz-copy-source` pointing at the source's upstream bucket
/// (a header the client signed goes on, in the provider's terms).
fn headers_with_copy_source(
    client: &HeaderMap,
    copy_source: Option<&ResolvedCopySource>,
) -> Result<HeaderMap, GatewayError> {
    let mut headers = forwarded_headers(client);
    if let Some(source) = copy_source {
        headers.insert("x-amz-copy-source", source.upstream_header()?);
    }
    Ok(headers)
}
