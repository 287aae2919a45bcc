//! A store that serves only ListObjects v1, like the older Ceph RGW releases rclone lists with
//! `list_version: 1` (docs/dialects.md §A.7, rule 22): a thin wrapper in front of a real moto server
//! that drops the ListObjectsV2 parameters before moto sees them, so a V2 request is answered
//! with a V1 page (`Marker`/`NextMarker`, no `KeyCount`, no continuation token). Nothing else
//! changes. It records the query of every GET so tests can see what the store was asked.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::moto::{MotoClient, Wrapped, forward};
use super::sdk_client;

/// What a V1-only store does not understand: it ignores these, as it ignores any unknown
/// parameter.
const V2_ONLY_PARAMS: &[&str] = &["list-type", "continuation-token", "start-after", "fetch-owner"];

/// moto behind the V1-only wrapper, addressed path-style at `http://localhost:PORT`.
pub struct V1Only {
    wrapped: Wrapped,
    received: Arc<Mutex<Vec<String>>>,
}

impl V1Only {
    pub async fn start(buckets: &[&str]) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let wrapped = Wrapped::start(buckets, move |client, moto_addr, req| {
            answer(client, moto_addr, log.clone(), req)
        })
        .await;
        Self { wrapped, received }
    }

    pub fn endpoint(&self) -> String {
        self.wrapped.endpoint()
    }

    /// The current aws-sdk-s3 client talking to the store directly.
    pub fn direct(&self) -> aws_sdk_s3::Client {
        sdk_client(&self.endpoint(), "v1", "v1", true)
    }

    /// The raw query strings of the GET requests the store received, in order.
    pub fn received_get_queries(&self) -> Vec<String> {
        self.received.lock().expect("lock").clone()
    }
}

async fn answer(
    client: MotoClient,
    moto_addr: String,
    received: Arc<Mutex<Vec<String>>>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (mut parts, body) = req.into_parts();
    let query = parts.uri.query().unwrap_or("").to_string();
    if parts.method == http::Method::GET {
        received.lock().expect("lock").push(query.clone());
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            !pair.is_empty() && !V2_ONLY_PARAMS.contains(&name)
        })
        .collect();
    let path = parts.uri.path();
    let uri = if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    parts.uri = uri.parse().expect("uri");
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    match forward(&client, &moto_addr, parts, body).await {
        Ok((parts, body)) => Response::from_parts(parts, Full::new(body)),
        Err(e) => {
            let mut resp = Response::new(Full::new(Bytes::from(e)));
            *resp.status_mut() = StatusCode::BAD_GATEWAY;
            resp
        }
    }
}
