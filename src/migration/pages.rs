//! One provider's listing, a page at a time: ListObjectsV2, or ListObjects (v1) for a provider
//! whose profile says it serves only V1, with the V1 page continued as a V2 one.

use http::Method;

use crate::error::GatewayError;
use crate::rewrite::list_objects::{ListPage, parse_list_page};
use crate::rewrite::list_v2_via_v1;
use crate::s3::operation::Operation;
use crate::small_body::MAX_XML_BODY;
use crate::upstream::Upstream;
use crate::upstream::exchange::Exchange;

/// Parameters of one listing call (ListObjectsV2, or V1 for a provider without it).
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub start_after: Option<String>,
    pub continuation_token: Option<String>,
    pub max_keys: usize,
}

/// One listing page: ListObjectsV2, or ListObjects (v1) for a provider whose profile says
/// it does not serve V2 (docs/dialects.md rule 22). Either way the page's
/// `next_continuation_token` is what the next request's `continuation_token` takes, and
/// the values (ETags, storage classes) are the provider's.
pub(crate) async fn list_page(upstream: &Upstream, bucket: &str, list: &ListRequest) -> Result<ListPage, GatewayError> {
    let mut query = vec![
        ("list-type".to_string(), "2".to_string()),
        ("prefix".to_string(), list.prefix.clone()),
    ];
    query.push(("max-keys".to_string(), list.max_keys.clamp(1, 1000).to_string()));
    if let Some(d) = &list.delimiter {
        query.push(("delimiter".to_string(), d.clone()));
    }
    if let Some(s) = &list.start_after {
        query.push(("start-after".to_string(), s.clone()));
    }
    if let Some(t) = &list.continuation_token {
        query.push(("continuation-token".to_string(), t.clone()));
    }
    let protocol_error = |cause: String| GatewayError::UpstreamProtocol {
        provider: upstream.settings.name.clone(),
        cause,
    };
    let v1 = !upstream.settings.profile.list_objects_v2;
    if v1 {
        // The token came from `continue_v1_page` below, so it always decodes.
        list_v2_via_v1::into_v1_query(&mut query).map_err(|e| protocol_error(e.to_string()))?;
    }
    let response = Exchange::new(upstream.request(Method::GET, bucket, "", query))
        .send_collect(upstream, MAX_XML_BODY)
        .await?;
    let operation = if v1 {
        Operation::ListObjects
    } else {
        Operation::ListObjectsV2
    };
    if !response.status().is_success() {
        return Err(upstream.failed(&format!("{operation} {bucket}"), response.status(), response.body()));
    }
    let mut page = parse_list_page(response.body()).map_err(|e| protocol_error(e.to_string()))?;
    if v1 {
        list_v2_via_v1::continue_v1_page(&mut page).map_err(|e| protocol_error(e.to_string()))?;
    }
    Ok(page)
}
