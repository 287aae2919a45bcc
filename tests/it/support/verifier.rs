//! s3s's verifier in-process, with no storage behind it: an `S3Service` with one key pair and
//! a catch-all route (like the gateway's front door) that records each request that reached
//! it, with its body as s3s handed it over (de-chunked and verified while read). For property
//! tests that run hundreds of requests without a socket.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::BodyExt as _;
use s3ferry::body::{ChecksumCheck, ExpectedChecksum, FailureSlot, HoldBackLast, recorded_failure};
use s3ferry::checksum::ChecksumAlgorithm;
use s3s::auth::SimpleAuth;
use s3s::route::S3Route;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{Body, S3Request, S3Response, S3Result};

/// A request that passed verification and reached the route.
#[derive(Debug, Clone)]
pub struct Reached {
    pub method: Method,
    pub uri: Uri,
    /// The body as read through s3s (and, with a CRC32 trailer, through s3ferry's
    /// [`HoldBackLast`] checking it), or why reading it failed.
    pub body: Result<Vec<u8>, String>,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Reached>>>);

struct NoOperations;

#[async_trait::async_trait]
impl s3s::S3 for NoOperations {}

#[async_trait::async_trait]
impl S3Route for Recorder {
    fn is_match(&self, _: &Method, _: &Uri, _: &HeaderMap, _: &mut http::Extensions) -> bool {
        true
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let trailer = req.headers.get("x-amz-trailer").is_some();
        let decoded_length = req
            .headers
            .get("x-amz-decoded-content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let body = match (trailer, req.trailing_headers) {
            // As the gateway does: the client's trailing CRC32 checked, and the body held to its
            // announced length, by HoldBackLast.
            (true, Some(trailers)) => {
                let slot = FailureSlot::default();
                let check = ChecksumCheck::new(ChecksumAlgorithm::Crc32, ExpectedChecksum::Trailer(trailers));
                let mut held = HoldBackLast::new(req.input, Some(check), slot.clone());
                if let Some(length) = decoded_length {
                    held = held.expecting_length(length);
                }
                let read = held.into_upstream_body().collect().await;
                match (read, recorded_failure(&slot)) {
                    (Ok(collected), None) => Ok(collected.to_bytes().to_vec()),
                    (Ok(_), Some(failure)) => Err(format!("{failure:?}")),
                    (Err(e), failure) => Err(format!("{e} ({failure:?})")),
                }
            }
            (true, None) => Err("a trailer was announced but s3s gave no trailer handle".into()),
            (false, _) => req
                .input
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .map_err(|e| e.to_string()),
        };
        let refused = body.is_err();
        if let Ok(mut reached) = self.0.lock() {
            reached.push(Reached {
                method: req.method,
                uri: req.uri,
                body,
            });
        }
        if refused {
            return Err(s3s::s3_error!(SignatureDoesNotMatch, "the body did not verify"));
        }
        Ok(S3Response::new(Body::empty()))
    }
}

/// s3s verifying requests signed with `key`/`secret`, recording what it lets through.
pub struct Verifier {
    service: S3Service,
    reached: Recorder,
}

impl Verifier {
    pub fn new(key: &str, secret: &str) -> Self {
        let reached = Recorder::default();
        let mut builder = S3ServiceBuilder::new(NoOperations);
        builder.set_auth(SimpleAuth::from_single(key, secret));
        builder.set_route(reached.clone());
        Self {
            service: builder.build(),
            reached,
        }
    }

    /// Sends `request` through s3s: its status, and the requests that reached the route so far.
    pub async fn call(&self, request: Request<Bytes>) -> (u16, Vec<Reached>) {
        let status = match self.service.call(request.map(Body::from)).await {
            Ok(response) => response.status().as_u16(),
            Err(e) => panic!("s3s failed internally: {e:?}"),
        };
        (status, self.reached.0.lock().map(|r| r.clone()).unwrap_or_default())
    }

    /// Like [`Verifier::call`], with the body arriving in the given transport frames.
    pub async fn call_in_frames(&self, request: Request<()>, frames: Vec<Bytes>) -> (u16, Vec<Reached>) {
        let stream = futures::stream::iter(
            frames
                .into_iter()
                .map(|f| Ok::<_, std::io::Error>(http_body::Frame::data(f))),
        );
        let body = Body::http_body(http_body_util::StreamBody::new(stream));
        let status = match self.service.call(request.map(|()| body)).await {
            Ok(response) => response.status().as_u16(),
            Err(e) => panic!("s3s failed internally: {e:?}"),
        };
        (status, self.reached.0.lock().map(|r| r.clone()).unwrap_or_default())
    }
}
