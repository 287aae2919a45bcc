//! Keeping a verified trailing checksum the provider cannot take (`trailing_checksums_by_copy`):
//! once the upload is answered, the object is copied onto itself with the checksum in its
//! metadata, so reads with `x-amz-checksum-mode` can report it.

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::body;
use crate::checksum::ChecksumAlgorithm;
use crate::migration::copy::preserved_headers;
use crate::route::Route;
use crate::small_body::MAX_XML_BODY;
use crate::upstream::OutgoingRequest;
use crate::upstream::exchange::Exchange;
use crate::upstream::sign::EMPTY_PAYLOAD_SHA256;

/// A PutObject whose verified trailing checksum the provider cannot take, kept afterwards by a
/// metadata copy (`trailing_checksums_by_copy`).
pub(super) struct TrailerKeeping {
    verified: body::VerifiedSlot,
    encoded_key: String,
    sent: HeaderMap,
}

impl TrailerKeeping {
    /// For the upload of `encoded_key` (the plan says when: `keep_trailer_by_copy`).
    pub(super) fn new(encoded_key: &str) -> Self {
        Self {
            verified: body::VerifiedSlot::default(),
            encoded_key: encoded_key.to_string(),
            sent: HeaderMap::new(),
        }
    }

    /// Where the body reports the checksum that matched.
    pub(super) fn slot(&self) -> body::VerifiedSlot {
        self.verified.clone()
    }

    /// The headers the upload went with: the copy sends them again.
    pub(super) fn remember_sent(&mut self, headers: &HeaderMap) {
        self.sent = headers.clone();
    }

    /// After a successful upload whose trailer was verified but not forwarded: the copy.
    pub(super) async fn keep_after(self, route: &Route, response: &http::Response<hyper::body::Incoming>) {
        let checksum = self.verified.lock().ok().and_then(|mut g| g.take());
        if let Some(checksum) = checksum
            && response.status().is_success()
        {
            keep_trailing_checksum_by_copy(route, &self.encoded_key, &self.sent, response.headers(), checksum).await;
        }
    }
}

/// Keeps a verified trailing checksum the provider could not take: the object just uploaded
/// is copied onto itself, only if it is still the same object (`x-amz-copy-source-if-match`),
/// with the checksum in its metadata. The upload stands either way; a failed copy only means
/// the checksum is not kept, which is logged.
async fn keep_trailing_checksum_by_copy(
    route: &Route,
    encoded_key: &str,
    sent: &HeaderMap,
    response: &HeaderMap,
    (algorithm, value): (ChecksumAlgorithm, String),
) {
    let settings = &route.provider.settings;
    let Some(etag) = response.get(http::header::ETAG).cloned() else {
        return;
    };
    if sent.contains_key("x-amz-server-side-encryption-customer-key") {
        return; // a copy would need the customer key for both sides; not worth the risk
    }
    // x-amz-metadata-directive: REPLACE replaces all of these: they are sent again.
    let mut headers = preserved_headers(sent);
    let native_class = settings.profile.native_storage_class_header.as_deref();
    for (name, value) in sent {
        let n = name.as_str();
        let also_sent = n == "x-amz-acl"
            || n.starts_with("x-amz-grant-")
            || n.starts_with("x-amz-server-side-encryption")
            || native_class == Some(n);
        if also_sent {
            headers.append(name.clone(), value.clone());
        }
    }
    let (Ok(name), Ok(stored), Ok(source)) = (
        HeaderName::from_bytes(algorithm.stored_header_name().as_bytes()),
        HeaderValue::from_str(&value),
        HeaderValue::from_str(&format!("/{}/{encoded_key}", route.upstream_bucket)),
    ) else {
        return;
    };
    headers.insert(name, stored);
    headers.insert("x-amz-metadata-directive", HeaderValue::from_static("REPLACE"));
    headers.insert("x-amz-copy-source", source);
    headers.insert("x-amz-copy-source-if-match", etag);
    let copy = OutgoingRequest {
        method: Method::PUT,
        bucket: Some(route.upstream_bucket.clone()),
        encoded_key: encoded_key.to_string(),
        query: Vec::new(),
        headers,
        body: body::empty(),
        payload_hash: EMPTY_PAYLOAD_SHA256.to_string(),
    };
    match Exchange::new(copy).send_collect(&route.provider, MAX_XML_BODY).await {
        // S3 may answer a copy with 200 and an <Error> document.
        Ok(r) if r.status().is_success() && crate::error::parse_error_code(r.body()).is_none() => {}
        Ok(r) => tracing::warn!(
            provider = %settings.name,
            status = %r.status(),
            "the upload stands, but its trailing checksum could not be kept (metadata copy refused)"
        ),
        Err(e) => {
            tracing::warn!(provider = %settings.name, error = %e, "the upload stands, but its trailing checksum could not be kept")
        }
    }
}
