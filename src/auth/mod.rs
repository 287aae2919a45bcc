//! Client credentials and the trust boundary at the edge.
//!
//! s3s verifies every signature form (SigV4 header and presigned, aws-chunked, trailers,
//! SigV2) against the key pairs of [`ClientAuth`]. Before it runs, [`boundary`] makes sure that
//! what s3ferry will forward is exactly what the signature covers: every `x-amz-*` header the
//! request carries is signed (or the request is refused, as AWS refuses it), unsigned headers
//! that are not plain HTTP/S3 request headers are dropped, signed headers cannot be removed
//! through `Connection`, and the time rules AWS applies (presigned URLs live at most a week,
//! SigV2 dates are within 15 minutes, `host` is signed) hold. [`sig_v2`] checks SigV2
//! signatures in constant time before s3s compares them.

pub mod boundary;
pub mod sig_v2;

use std::collections::HashMap;
use std::sync::Arc;

use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};

use crate::config::ClientCredential;
use crate::error::GatewayError;
use crate::s3::encoding::parse_query;
use crate::target::virtual_host_bucket;

/// Who verifies an admitted request's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verifier {
    /// s3s, from the request's headers or query.
    S3s,
    /// `post_upload`, from the policy in the form's fields: s3s would read the whole form
    /// (from anyone: its policy's signature is checked after) before checking it.
    FormPolicy,
}

/// The trust boundary, before s3s verifies the signature: the signature form, AWS's time and
/// `host` rules, SigV2's query coverage and constant-time signature check, and the request's
/// headers cut down to what the signature covers (see [`boundary`]). `domain` is the gateway's
/// virtual-host domain. A browser form upload goes to `post_upload` instead, none of its
/// headers forwarded.
pub fn admit(
    req: &mut http::Request<s3s::Body>,
    domain: Option<&str>,
    keys: &ClientAuth,
    now: time::OffsetDateTime,
) -> Result<Verifier, GatewayError> {
    let query = parse_query(req.uri().query().unwrap_or(""));
    let form = boundary::auth_form(req.method(), &query, req.headers())?;
    if form == boundary::AuthForm::PostForm {
        return Ok(Verifier::FormPolicy);
    }
    boundary::check_time_and_host(&form, req.headers(), now)?;
    boundary::check_v2_query(&form, &query)?;
    boundary::restrict_to_signed(&form, req.headers_mut())?;
    // The edge has put an HTTP/2 `:authority` into `Host` already (`target::host_from_authority`).
    let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok());
    let vh_bucket = match (domain, host) {
        (Some(domain), Some(host)) => virtual_host_bucket(host, domain),
        _ => None,
    };
    let signed = sig_v2::SignedV2 {
        method: req.method(),
        raw_path: req.uri().path(),
        query: &query,
        headers: req.headers(),
        virtual_host_bucket: vh_bucket.as_deref(),
    };
    sig_v2::verify(&form, &signed, keys)?;
    Ok(Verifier::S3s)
}

/// The configured client key pairs. Cloning is cheap (one shared map).
#[derive(Clone)]
pub struct ClientAuth {
    keys: Arc<HashMap<String, SecretKey>>,
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuth").field("keys", &self.keys.len()).finish()
    }
}

impl ClientAuth {
    pub fn new(credentials: &[ClientCredential]) -> Self {
        let keys = credentials
            .iter()
            .map(|c| (c.access_key_id.clone(), SecretKey::from(c.secret_access_key.expose())))
            .collect();
        Self { keys: Arc::new(keys) }
    }

    /// Key pairs given directly (tests).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        let keys = pairs
            .iter()
            .map(|(key, secret)| ((*key).to_string(), SecretKey::from(*secret)))
            .collect();
        Self { keys: Arc::new(keys) }
    }

    /// The secret of `access_key`, if it is one of s3ferry's client keys.
    pub fn secret(&self, access_key: &str) -> Option<&SecretKey> {
        self.keys.get(access_key)
    }
}

#[async_trait::async_trait]
impl S3Auth for ClientAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.keys.get(access_key) {
            Some(secret) => Ok(secret.clone()),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records (it is not in s3ferry's [[credentials]])."
            )),
        }
    }
}
