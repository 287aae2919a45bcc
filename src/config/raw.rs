//! The file as written: one struct per table, each refusing keys it does not know
//! (`deny_unknown_fields`), so that a typo is an error that names it rather than a setting
//! silently ignored. Values are checked and given their meaning in [`super::resolve`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) credentials: Vec<RawCredential>,
    #[serde(default)]
    pub(super) providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    pub(super) buckets: Vec<RawBucket>,
    #[serde(default)]
    pub(super) migration: RawMigration,
    #[serde(default)]
    pub(super) post_upload: RawPostUpload,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPostUpload {
    pub(super) spool_dir: Option<PathBuf>,
    pub(super) max_file_bytes: Option<u64>,
    pub(super) max_spool_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<String>,
    pub(super) admin_listen: Option<String>,
    pub(super) domain: Option<String>,
    pub(super) region: Option<String>,
    pub(super) tls_cert: Option<PathBuf>,
    pub(super) tls_key: Option<PathBuf>,
    pub(super) shutdown_grace: Option<RawDuration>,
    pub(super) readiness_timeout: Option<RawDuration>,
    pub(super) readiness_cache: Option<RawDuration>,
    pub(super) max_connections: Option<usize>,
    pub(super) admin_max_connections: Option<usize>,
    pub(super) request_head_timeout: Option<RawDuration>,
    pub(super) idle_timeout: Option<RawDuration>,
    pub(super) max_header_bytes: Option<usize>,
    pub(super) max_headers: Option<usize>,
    pub(super) max_buffered_body_bytes: Option<usize>,
}

/// A duration as written: a number of seconds (`30`) or a number with a unit (`"30s"`,
/// `"500ms"`, `"2m"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawDuration {
    Seconds(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCredential {
    pub(super) access_key_id: String,
    pub(super) secret_access_key: Option<String>,
    pub(super) secret_access_key_env: Option<String>,
    pub(super) secret_access_key_file: Option<PathBuf>,
    pub(super) grants: Option<RawGrants>,
}

/// `grants = "all"` or `grants = [{ buckets = [...], prefix = "...", access = "read" }, ...]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawGrants {
    Word(String),
    List(Vec<RawGrant>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGrant {
    pub(super) buckets: Vec<String>,
    pub(super) prefix: Option<String>,
    pub(super) access: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub(super) kind: Option<String>,
    pub(super) endpoint: Option<String>,
    pub(super) region: Option<String>,
    pub(super) access_key_id: Option<String>,
    pub(super) secret_access_key: Option<String>,
    pub(super) secret_access_key_env: Option<String>,
    pub(super) secret_access_key_file: Option<PathBuf>,
    pub(super) addressing: Option<String>,
    pub(super) signature: Option<String>,
    pub(super) dialect: Option<String>,
    pub(super) dialect_overrides: Option<RawDialectOverrides>,
    pub(super) storage_classes: Option<BTreeMap<String, String>>,
    pub(super) error_codes: Option<BTreeMap<String, RawErrorMapping>>,
    pub(super) acl: Option<RawAcl>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) root: Option<PathBuf>,
    pub(super) connect_timeout_secs: Option<u64>,
    pub(super) read_timeout_secs: Option<u64>,
    pub(super) retries: Option<u32>,
    pub(super) retry_backoff_ms: Option<u64>,
    pub(super) retry_after_max_secs: Option<u64>,
}

/// `[providers.X.dialect_overrides]`: any field of the dialect profile, replacing the built-in value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDialectOverrides {
    pub(super) etag_case: Option<String>,
    pub(super) acl_headers: Option<bool>,
    pub(super) canned_acls: Option<Vec<String>>,
    pub(super) grants: Option<bool>,
    pub(super) drop_headers: Option<Vec<String>>,
    pub(super) drop_params: Option<Vec<String>>,
    pub(super) url_encoded_listings: Option<bool>,
    pub(super) checksum_algorithms: Option<Vec<String>>,
    pub(super) content_md5_required: Option<bool>,
    pub(super) conditional_writes: Option<String>,
    pub(super) native_storage_class_header: Option<String>,
    pub(super) acl_api: Option<bool>,
    pub(super) list_objects_v2: Option<bool>,
    pub(super) unsupported_operations: Option<Vec<crate::s3::operation::Operation>>,
    pub(super) upload_part_copy: Option<bool>,
    pub(super) trailing_checksums_by_copy: Option<bool>,
    pub(super) unsigned_trailer: Option<bool>,
    pub(super) literal_dot_segments: Option<bool>,
    pub(super) verifies_before_storing: Option<bool>,
    pub(super) tag_count_in_reads: Option<bool>,
    pub(super) conditional_copy: Option<bool>,
}

/// `[providers.X.error_codes]`: provider code -> the AWS code clients get, either as a plain
/// string or as `{ code = "...", status = 409, hint = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawErrorMapping {
    Code(String),
    Full {
        code: String,
        status: Option<u16>,
        hint: Option<String>,
    },
}

/// `[providers.X.acl]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAcl {
    pub(super) unsupported: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBucket {
    pub(super) name: String,
    pub(super) provider: String,
    pub(super) upstream_bucket: Option<String>,
    pub(super) fallback: Option<String>,
    pub(super) fallback_bucket: Option<String>,
    pub(super) copy_on_read: Option<bool>,
    pub(super) delete_from_fallback: Option<bool>,
    #[serde(default)]
    pub(super) cors: Vec<crate::cors::CorsRuleConfig>,
    pub(super) anonymous: Option<String>,
    pub(super) anonymous_list: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMigration {
    pub(super) copy_workers: Option<usize>,
    pub(super) copy_queue: Option<usize>,
    pub(super) copy_on_read_max_bytes: Option<u64>,
    pub(super) copy_retries: Option<u32>,
    pub(super) multipart_copy_threshold: Option<u64>,
    pub(super) multipart_copy_part_size: Option<u64>,
    pub(super) status_refresh: Option<RawDuration>,
}
