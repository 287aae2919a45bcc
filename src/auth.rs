//! Client credentials: the key pairs s3ferry accepts, looked up by s3s while it verifies
//! each request (SigV4 header and presigned, aws-chunked, trailers, SigV2).

use std::collections::HashMap;

use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Result, s3_error};

use crate::config::ClientCredential;

/// The configured client key pairs.
pub struct ClientAuth {
    keys: HashMap<String, SecretKey>,
}

impl ClientAuth {
    pub fn new(credentials: &[ClientCredential]) -> Self {
        let keys = credentials
            .iter()
            .map(|c| (c.access_key_id.clone(), SecretKey::from(c.secret_access_key.expose())))
            .collect();
        Self { keys }
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
