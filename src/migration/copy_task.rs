//! What one copy from the old provider to the new one is, and how it ended: shared by the copy on
//! read, `migrate`, and the copy in parts of large objects.

use std::sync::Arc;

use super::tombstone;
use crate::config::MigrationConfig;
use crate::error::GatewayError;
use crate::s3::encoding::uri_encode;
use crate::upstream::Upstream;

/// Where one object comes from and goes to.
#[derive(Debug, Clone)]
pub struct CopyTask {
    /// The bucket's name for clients (labels the counters).
    pub client_bucket: String,
    pub old: Arc<Upstream>,
    pub old_bucket: String,
    pub new: Arc<Upstream>,
    pub new_bucket: String,
    pub key: String,
    /// Above which size the copy goes in parts, and how large they are.
    pub parts: PartSizes,
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyOutcome {
    Copied {
        bytes: u64,
    },
    /// The new provider already has the key (copied before, or written by a client).
    AlreadyInNew,
    /// The key was deleted through s3ferry.
    Tombstoned,
    /// The old provider no longer has the key.
    GoneFromOld,
    /// A client wrote or deleted the key meanwhile (in this process): the copy stopped before
    /// its write could take effect, or never started.
    Superseded,
}

/// When a copy goes in parts, how large they are (`[migration]`), and how many go at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSizes {
    pub threshold: u64,
    pub part_size: u64,
    /// Parts of one copy in flight at once (see [`PartSizes::within`]).
    pub parallel: usize,
}

/// Parts of one copy in flight at once, at most.
pub const MAX_PARALLEL_PARTS: usize = 8;

impl PartSizes {
    /// These sizes with no more parts at once than `bytes` hold (`--max-bytes-in-flight`),
    /// and at least one.
    pub fn within(self, bytes: u64) -> Self {
        let fit = usize::try_from(bytes / self.part_size.max(1)).unwrap_or(usize::MAX);
        Self {
            parallel: fit.clamp(1, self.parallel.max(1)),
            ..self
        }
    }
}

impl Default for PartSizes {
    fn default() -> Self {
        Self::from(&MigrationConfig::default())
    }
}

impl From<&MigrationConfig> for PartSizes {
    fn from(config: &MigrationConfig) -> Self {
        Self {
            threshold: config.multipart_copy_threshold,
            part_size: config.multipart_copy_part_size,
            parallel: MAX_PARALLEL_PARTS,
        }
    }
}

/// The `x-amz-copy-source` naming `task`'s object in the old bucket (CopyObject and
/// UploadPartCopy, where one provider holds both buckets).
pub fn copy_source(task: &CopyTask) -> Result<http::HeaderValue, GatewayError> {
    let source = format!("/{}/{}", task.old_bucket, uri_encode(task.key.as_bytes(), true));
    http::HeaderValue::from_str(&source)
        .map_err(|_| GatewayError::Internal("the copy source of a copy is not a header value".into()))
}

/// True for an ETag that is the MD5 of the content (not multipart, not encrypted with KMS).
pub fn is_plain_md5_etag(etag: &str) -> bool {
    let e = etag.trim_matches('"');
    e.len() == 32 && e.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether two ETags name the same content: quotes aside, hex compared without regard to case
/// (docs/dialects.md rule 18). Both should already be in the client's form (`client_etag`).
pub fn same_etag(a: &str, b: &str) -> bool {
    a.trim_matches('"').eq_ignore_ascii_case(b.trim_matches('"'))
}

/// The end of a copy that wrote `copy_etag` (client form) of `bytes`: a DELETE in another
/// process that raced with it wins (in this process, deletes wait for the copy). Only the
/// copy's own object is removed: a client may have written the key again after its delete.
pub(super) async fn keep_unless_deleted_meanwhile(
    task: &CopyTask,
    copy_etag: &str,
    bytes: u64,
) -> Result<CopyOutcome, GatewayError> {
    let CopyTask {
        new, new_bucket, key, ..
    } = task;
    if tombstone::is_tombstoned(new, new_bucket, key).await? {
        let still_the_copy = new
            .head_object(new_bucket, key)
            .await?
            .is_some_and(|now| same_etag(&new.settings.profile.client_etag(&now.etag), copy_etag));
        if still_the_copy {
            new.delete_object(new_bucket, key).await?;
        }
        return Ok(CopyOutcome::Tombstoned);
    }
    Ok(CopyOutcome::Copied { bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_at_once_fit_the_bytes_in_flight() {
        let sizes = PartSizes {
            threshold: 100,
            part_size: 64,
            parallel: MAX_PARALLEL_PARTS,
        };
        assert_eq!(sizes.within(512 * 64).parallel, MAX_PARALLEL_PARTS);
        assert_eq!(sizes.within(3 * 64 + 63).parallel, 3);
        assert_eq!(sizes.within(10).parallel, 1, "one part even over the budget");
    }

    #[test]
    fn same_etag_ignores_quotes_and_hex_case() {
        assert!(same_etag("\"9B2CF535\"", "9b2cf535"));
        assert!(!same_etag("\"9b2cf535\"", "\"9b2cf536\""));
    }
}
