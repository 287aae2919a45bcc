//! Requests s3ferry makes on its own behalf (lazy migration, bulk copy, check): HEAD, GET, PUT
//! and DELETE on one provider, with keys given decoded; answers come back as they are (their
//! callers parse them). Answers carry the provider's
//! values (ETag case, storage class names); callers translate them with the dialect profile.

use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;

use super::exchange::Exchange;
use super::sign::{EMPTY_PAYLOAD_SHA256, UNSIGNED_PAYLOAD};
use super::{OutgoingRequest, Upstream};
use crate::body::{self, UpstreamBody};
use crate::error::GatewayError;
use crate::s3::encoding::uri_encode;
use crate::s3::headers::content_length;
use crate::small_body::Buffered;
use crate::small_body::MAX_SMALL_ANSWER;
use crate::small_body::MAX_XML_BODY;

/// What a HEAD says about an object.
#[derive(Debug, Clone)]
pub struct ObjectHead {
    pub size: u64,
    /// As the provider writes it, quotes included.
    pub etag: String,
    pub headers: HeaderMap,
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
        let response = Exchange::new(self.request(Method::HEAD, bucket, key, Vec::new()))
            .send_collect(self, 0)
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
        let response = Exchange::new(self.request(Method::HEAD, bucket, "", Vec::new()))
            .send_collect(self, 0)
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
        Exchange::new(request).send(self).await
    }

    /// GET a sub-resource of an object (`?tagging`, `?acl`); the (small) response as it is.
    pub async fn get_subresource(
        &self,
        bucket: &str,
        key: &str,
        name: &str,
    ) -> Result<Response<Buffered>, GatewayError> {
        let request = self.request(Method::GET, bucket, key, vec![(name.to_string(), String::new())]);
        Exchange::new(request).send_collect(self, MAX_XML_BODY).await
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
        Exchange::new(request).send_collect(self, MAX_SMALL_ANSWER).await
    }

    /// DELETE an object; 204 and 404 both mean it is gone.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), GatewayError> {
        let response = Exchange::new(self.request(Method::DELETE, bucket, key, Vec::new()))
            .send_collect(self, MAX_SMALL_ANSWER)
            .await?;
        match response.status() {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            s => Err(self.failed(&format!("DELETE of an object in '{bucket}'"), s, response.body())),
        }
    }
}
