//! Requests s3ferry makes on its own behalf (lazy migration, bulk copy, check): HEAD, GET, PUT,
//! DELETE and listings on one provider, with keys given decoded. Answers carry the provider's
//! values (ETag case, storage class names); callers translate them with the dialect profile.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;

use super::sign::{EMPTY_PAYLOAD_SHA256, UNSIGNED_PAYLOAD};
use super::url::uri_encode;
use super::{OutgoingRequest, Upstream};
use crate::body::{self, UpstreamBody};
use crate::error::GatewayError;
use crate::rewrite::MAX_XML_BODY;
use crate::rewrite::list_objects::{ListPage, parse_list_page};
use crate::rewrite::list_v2_via_v1;
use crate::small_body::Buffered;

/// A message's `Content-Length`, if it has a valid one.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The length of a request body once any `aws-chunked` framing is removed: the decoded length
/// of a streamed body, else its `Content-Length`.
pub fn decoded_length(headers: &HeaderMap) -> Option<u64> {
    let streamed = headers
        .get("x-amz-content-sha256")
        .is_some_and(|v| v.as_bytes().starts_with(b"STREAMING-"));
    if streamed {
        return headers
            .get("x-amz-decoded-content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
    }
    content_length(headers)
}

/// What a HEAD says about an object.
#[derive(Debug, Clone)]
pub struct ObjectHead {
    pub size: u64,
    /// As the provider writes it, quotes included.
    pub etag: String,
    pub headers: HeaderMap,
}

/// Parameters of one listing call (ListObjectsV2, or V1 for a provider without it).
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub start_after: Option<String>,
    pub continuation_token: Option<String>,
    pub max_keys: usize,
}

impl Upstream {
    pub(crate) fn request(
        &self,
        method: Method,
        bucket: &str,
        key: &str,
        query: Vec<(String, String)>,
    ) -> OutgoingRequest {
        let has_body = method == Method::PUT || method == Method::POST;
        OutgoingRequest {
            method,
            bucket: Some(bucket.to_string()),
            encoded_key: uri_encode(key.as_bytes(), true),
            query,
            headers: HeaderMap::new(),
            body: body::empty(),
            payload_hash: if has_body {
                UNSIGNED_PAYLOAD
            } else {
                EMPTY_PAYLOAD_SHA256
            }
            .to_string(),
        }
    }

    /// An unexpected answer, for the log: `what` names the operation and the upstream bucket,
    /// never the key (see `error`).
    pub(crate) fn failed(&self, what: &str, status: StatusCode, body: &[u8]) -> GatewayError {
        let code = crate::error::parse_error_code(body).map(|(c, _)| c).unwrap_or_default();
        GatewayError::UpstreamProtocol {
            provider: self.settings.name.clone(),
            cause: format!("{what} answered {status} {code}"),
        }
    }

    /// HEAD an object: `None` on 404, an error on anything else that is not 2xx.
    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<Option<ObjectHead>, GatewayError> {
        let response = self
            .send_collect(self.request(Method::HEAD, bucket, key, Vec::new()), 0)
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let headers = response.headers().clone();
                let size = content_length(&headers).unwrap_or(0);
                let etag = headers
                    .get(http::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                Ok(Some(ObjectHead { size, etag, headers }))
            }
            s => Err(self.failed(&format!("HEAD of an object in '{bucket}'"), s, &[])),
        }
    }

    /// HEAD a bucket: `false` on 404, an error on anything else that is not 2xx.
    pub async fn bucket_exists(&self, bucket: &str) -> Result<bool, GatewayError> {
        let response = self
            .send_collect(self.request(Method::HEAD, bucket, "", Vec::new()), 0)
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            s => Err(self.failed(&format!("HEAD of bucket '{bucket}'"), s, &[])),
        }
    }

    /// GET an object (or a range of it, via `headers`); the response is returned as it is.
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        headers: HeaderMap,
    ) -> Result<Response<Incoming>, GatewayError> {
        let mut request = self.request(Method::GET, bucket, key, Vec::new());
        request.headers = headers;
        self.send(request)
            .await
            .map_err(|e| e.into_gateway_error(&self.settings))
    }

    /// GET a sub-resource of an object (`?tagging`, `?acl`); the (small) response as it is.
    pub async fn get_subresource(
        &self,
        bucket: &str,
        key: &str,
        name: &str,
    ) -> Result<Response<Buffered>, GatewayError> {
        let request = self.request(Method::GET, bucket, key, vec![(name.to_string(), String::new())]);
        self.send_collect(request, MAX_XML_BODY).await
    }

    /// PUT an object with a streamed body of `length` bytes; returns the (small) response.
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        mut headers: HeaderMap,
        body: UpstreamBody,
        length: u64,
    ) -> Result<Response<Buffered>, GatewayError> {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(length));
        let mut request = self.request(Method::PUT, bucket, key, Vec::new());
        request.headers = headers;
        request.body = body;
        self.send_collect(request, 64 * 1024).await
    }

    /// DELETE an object; 204 and 404 both mean it is gone.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), GatewayError> {
        let response = self
            .send_collect(self.request(Method::DELETE, bucket, key, Vec::new()), 64 * 1024)
            .await?;
        match response.status() {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            s => Err(self.failed(&format!("DELETE of an object in '{bucket}'"), s, response.body())),
        }
    }

    /// One listing page: ListObjectsV2, or ListObjects (v1) for a provider whose profile says
    /// it does not serve V2 (docs/dialects.md rule 22). Either way the page's
    /// `next_continuation_token` is what the next request's `continuation_token` takes, and
    /// the values (ETags, storage classes) are the provider's.
    pub async fn list_objects(&self, bucket: &str, list: &ListRequest) -> Result<ListPage, GatewayError> {
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
            provider: self.settings.name.clone(),
            cause,
        };
        let v1 = !self.settings.profile.list_objects_v2;
        if v1 {
            // The token came from `continue_v1_page` below, so it always decodes.
            list_v2_via_v1::into_v1_query(&mut query).map_err(|e| protocol_error(e.to_string()))?;
        }
        let response = self
            .send_collect(self.request(Method::GET, bucket, "", query), MAX_XML_BODY)
            .await?;
        let operation = if v1 { "ListObjects" } else { "ListObjectsV2" };
        if !response.status().is_success() {
            return Err(self.failed(&format!("{operation} {bucket}"), response.status(), response.body()));
        }
        let mut page = parse_list_page(response.body()).map_err(|e| protocol_error(e.to_string()))?;
        if v1 {
            list_v2_via_v1::continue_v1_page(&mut page).map_err(|e| protocol_error(e.to_string()))?;
        }
        Ok(page)
    }
}
