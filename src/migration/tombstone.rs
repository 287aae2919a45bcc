//! Tombstones: a DELETE through s3ferry of a key the old provider may still hold is remembered
//! as an empty object under a reserved prefix in the new provider's bucket. Every s3ferry
//! instance behind a load balancer reads the same bucket, so they all agree that the key is
//! gone. The prefix is hidden from clients (listings skip it, requests into it are refused).

use http::HeaderMap;

use crate::body;
use crate::error::GatewayError;
use crate::upstream::Upstream;

pub use crate::target::RESERVED_PREFIX;
/// Tombstones: `<TOMBSTONE_PREFIX><key>`.
pub const TOMBSTONE_PREFIX: &str = ".s3ferry/tombstones/";

pub fn tombstone_key(key: &str) -> String {
    format!("{TOMBSTONE_PREFIX}{key}")
}

/// Whether `key` was deleted through s3ferry (and not written again since).
pub async fn is_tombstoned(new: &Upstream, bucket: &str, key: &str) -> Result<bool, GatewayError> {
    Ok(new.head_object(bucket, &tombstone_key(key)).await?.is_some())
}

/// Records that `key` was deleted.
pub async fn write_tombstone(new: &Upstream, bucket: &str, key: &str) -> Result<(), GatewayError> {
    let response = new
        .put_object(bucket, &tombstone_key(key), HeaderMap::new(), body::empty(), 0)
        .await?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(GatewayError::UpstreamProtocol {
            provider: new.settings.name.clone(),
            // The key stays out: this text is logged (see `error`).
            cause: format!("writing a tombstone in '{bucket}' answered {}", response.status()),
        })
    }
}

/// Forgets that `key` was deleted, after a client wrote it again: "deleted" means "deleted and
/// not written since", so nothing that trusts a tombstone (a copy's re-check, a read's
/// fallback) acts on a key that holds newer data.
pub async fn clear_tombstone(new: &Upstream, bucket: &str, key: &str) -> Result<(), GatewayError> {
    new.delete_object(bucket, &tombstone_key(key)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_live_under_the_reserved_prefix() {
        assert_eq!(tombstone_key("a/b"), ".s3ferry/tombstones/a/b");
        assert!(crate::target::is_reserved(&tombstone_key("x")));
    }
}
