//! The migration status records in the new provider's bucket (see [`super::status`]): written
//! by `migrate` runs and surveys, read by `migrate --status` and the gateway's `/migration`.
//!
//! Reading is bounded whatever the bucket holds: one listing page of the status prefix (at most
//! [`MAX_RECORDS`] names, one per kind, prefix and shard) and a GET of each, every record
//! capped at [`MAX_RECORD_BYTES`].

use futures_util::StreamExt as _;
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::pages::{ListRequest, list_page};
use super::status::{STATUS_PREFIX, StatusRecord};
use crate::error::GatewayError;
use crate::route::Route;
use crate::upstream::exchange::Exchange;

/// The most records read per bucket: one listing page (a split of up to 1,000 shards).
pub const MAX_RECORDS: usize = 1000;
/// A record holds at most 20 failures (keys of up to 1 KiB, reasons of up to 512 bytes) and 20
/// left-behind keys: about 55 KiB at the very most.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Records read at once.
const READS_AT_ONCE: usize = 8;

/// Stores `record` under its name in `route`'s new bucket (overwriting the one it replaces).
pub async fn write_record(route: &Route, record: &StatusRecord) -> Result<(), GatewayError> {
    let body = serde_json::to_vec(record).map_err(|e| GatewayError::Internal(e.to_string()))?;
    let length = body.len() as u64;
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let bucket = &route.upstream_bucket;
    let response = route
        .provider
        .put_object(bucket, &record.name(), headers, crate::body::full(body.into()), length)
        .await?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(route.provider.failed(
            &format!("PUT of a migration status record in '{bucket}'"),
            response.status(),
            response.body(),
        ))
    }
}

/// The record called `name`, if there is one (a run reads the one it resumes).
pub async fn read_record(route: &Route, name: &str) -> Result<Option<StatusRecord>, GatewayError> {
    let provider = &route.provider;
    let bucket = &route.upstream_bucket;
    let response = Exchange::new(provider.request(Method::GET, bucket, name, Vec::new()))
        .send_collect(provider, MAX_RECORD_BYTES)
        .await?;
    match response.status() {
        StatusCode::NOT_FOUND => Ok(None),
        s if s.is_success() => {
            serde_json::from_slice(response.body())
                .map(Some)
                .map_err(|e| GatewayError::UpstreamProtocol {
                    provider: provider.settings.name.clone(),
                    cause: format!("the migration status record '{name}' in '{bucket}' is not one: {e}"),
                })
        }
        s => Err(provider.failed(
            &format!("GET of a migration status record in '{bucket}'"),
            s,
            response.body(),
        )),
    }
}

/// Every record of `route`'s new bucket (at most [`MAX_RECORDS`]). A record that cannot be read
/// or parsed is left out with a warning: one broken object must not hide the others.
pub async fn read_records(route: &Route) -> Result<Vec<StatusRecord>, GatewayError> {
    let page = list_page(
        &route.provider,
        &route.upstream_bucket,
        &ListRequest {
            prefix: STATUS_PREFIX.to_string(),
            max_keys: MAX_RECORDS,
            ..ListRequest::default()
        },
    )
    .await?;
    if page.is_truncated {
        tracing::warn!(
            bucket = %route.client_bucket,
            "more than {MAX_RECORDS} migration status records: the status shows the first {MAX_RECORDS}"
        );
    }
    let reads = page.objects.into_iter().take(MAX_RECORDS).map(|object| async move {
        let read = read_record(route, &object.key).await;
        (object.key, read)
    });
    let results: Vec<_> = futures_util::stream::iter(reads)
        .buffer_unordered(READS_AT_ONCE)
        .collect()
        .await;
    let mut records = Vec::with_capacity(results.len());
    for (name, read) in results {
        match read {
            Ok(Some(record)) => records.push(record),
            // Listed, then replaced or removed: nothing to show.
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(bucket = %route.client_bucket, record = %name, error = %e, "cannot read a migration status record")
            }
        }
    }
    Ok(records)
}
