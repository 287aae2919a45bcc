//! Typed configuration: the TOML file as written, validation, and the resolved form the gateway runs on.
//!
//! The keys of the file are a contract with external tooling (see `config.example.toml`), so the
//! raw structs deny unknown fields and every error names the file, the key and the reason.
//! Secrets are read from the file itself, from an environment variable (`*_env`) or from a file
//! (`*_file`) and are kept in [`Secret`], which never prints its value.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::access::{AnonymousAccess, Grant, Level};
use crate::checksum::ChecksumAlgorithm;
use crate::dialect::{self, ConditionalWrites, DialectProfile, EtagCase, UnsupportedAcl};

/// Environment variable that names the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "S3FERRY_CONFIG";
/// Environment variable that overrides `server.listen`.
pub const LISTEN_ENV: &str = "S3FERRY_LISTEN";
/// Environment variable that overrides `server.admin_listen`.
pub const ADMIN_LISTEN_ENV: &str = "S3FERRY_ADMIN_LISTEN";

/// Provider dialect names s3ferry knows. The profiles behind them live in the dialect work;
/// the core only validates the name so a typo is caught at start-up.
pub const KNOWN_DIALECTS: &[&str] = &[
    "aws", "oss", "spaces", "r2", "b2", "gcs", "wasabi", "minio", "garage", "ceph", "local",
];

/// A configuration error: which file, which key, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {reason}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub reason: String,
}

/// A secret value (secret access key). `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for signing. Never log or format the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

// ---------------------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    credentials: Vec<RawCredential>,
    #[serde(default)]
    providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    buckets: Vec<RawBucket>,
    #[serde(default)]
    migration: RawMigration,
    #[serde(default)]
    post_upload: RawPostUpload,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPostUpload {
    spool_dir: Option<PathBuf>,
    max_file_bytes: Option<u64>,
    max_spool_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    admin_listen: Option<String>,
    domain: Option<String>,
    region: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    shutdown_grace: Option<RawDuration>,
    readiness_timeout: Option<RawDuration>,
    readiness_cache: Option<RawDuration>,
    max_connections: Option<usize>,
    admin_max_connections: Option<usize>,
    request_head_timeout: Option<RawDuration>,
    idle_timeout: Option<RawDuration>,
    max_header_bytes: Option<usize>,
    max_headers: Option<usize>,
    max_buffered_body_bytes: Option<usize>,
}

/// A duration as written: a number of seconds (`30`) or a number with a unit (`"30s"`,
/// `"500ms"`, `"2m"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Seconds(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredential {
    access_key_id: String,
    secret_access_key: Option<String>,
    secret_access_key_env: Option<String>,
    secret_access_key_file: Option<PathBuf>,
    grants: Option<RawGrants>,
}

/// `grants = "all"` or `grants = [{ buckets = [...], prefix = "...", access = "read" }, ...]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawGrants {
    Word(String),
    List(Vec<RawGrant>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    buckets: Vec<String>,
    prefix: Option<String>,
    access: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    kind: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    secret_access_key_env: Option<String>,
    secret_access_key_file: Option<PathBuf>,
    addressing: Option<String>,
    signature: Option<String>,
    dialect: Option<String>,
    dialect_overrides: Option<RawDialectOverrides>,
    storage_classes: Option<BTreeMap<String, String>>,
    error_codes: Option<BTreeMap<String, RawErrorMapping>>,
    acl: Option<RawAcl>,
    ca_file: Option<PathBuf>,
    root: Option<PathBuf>,
    connect_timeout_secs: Option<u64>,
    read_timeout_secs: Option<u64>,
    retries: Option<u32>,
    retry_backoff_ms: Option<u64>,
    retry_after_max_secs: Option<u64>,
}

/// `[providers.X.dialect_overrides]`: any field of the dialect profile, replacing the built-in value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDialectOverrides {
    etag_case: Option<String>,
    acl_headers: Option<bool>,
    canned_acls: Option<Vec<String>>,
    grants: Option<bool>,
    drop_headers: Option<Vec<String>>,
    drop_params: Option<Vec<String>>,
    url_encoded_listings: Option<bool>,
    checksum_algorithms: Option<Vec<String>>,
    content_md5_required: Option<bool>,
    conditional_writes: Option<String>,
    native_storage_class_header: Option<String>,
    acl_api: Option<bool>,
    list_objects_v2: Option<bool>,
    unsupported_operations: Option<Vec<crate::s3::operation::Operation>>,
    upload_part_copy: Option<bool>,
    trailing_checksums_by_copy: Option<bool>,
    unsigned_trailer: Option<bool>,
    literal_dot_segments: Option<bool>,
    verifies_before_storing: Option<bool>,
}

/// `[providers.X.error_codes]`: provider code -> the AWS code clients get, either as a plain
/// string or as `{ code = "...", status = 409, hint = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawErrorMapping {
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
struct RawAcl {
    unsupported: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBucket {
    name: String,
    provider: String,
    upstream_bucket: Option<String>,
    fallback: Option<String>,
    fallback_bucket: Option<String>,
    copy_on_read: Option<bool>,
    delete_from_fallback: Option<bool>,
    #[serde(default)]
    cors: Vec<crate::cors::CorsRuleConfig>,
    anonymous: Option<String>,
    anonymous_list: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMigration {
    copy_workers: Option<usize>,
    copy_queue: Option<usize>,
    copy_on_read_max_bytes: Option<u64>,
    copy_retries: Option<u32>,
    multipart_copy_threshold: Option<u64>,
    multipart_copy_part_size: Option<u64>,
}

// ---------------------------------------------------------------------------------------------
// The resolved configuration.

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages).
    pub source: String,
    pub server: ServerConfig,
    pub credentials: Vec<ClientCredential>,
    pub providers: BTreeMap<String, ProviderConfig>,
    pub buckets: Vec<BucketRoute>,
    pub migration: MigrationConfig,
    pub post_upload: PostUploadConfig,
}

/// Browser form uploads (POST Object): the file part is written to a spool file before it is
/// sent on, because a provider needs its length before the first byte (`post_upload`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostUploadConfig {
    /// Where spool files are made; each is unlinked as it is created, so none outlives its request.
    pub spool_dir: PathBuf,
    /// The largest file one form may upload, whatever its policy allows (AWS's limit: 5 GiB).
    pub max_file_bytes: u64,
    /// The bytes all spool files may hold at once; a form that would need more is refused with
    /// SlowDown.
    pub max_spool_bytes: u64,
}

impl Default for PostUploadConfig {
    fn default() -> Self {
        Self {
            spool_dir: std::env::temp_dir(),
            max_file_bytes: MAX_PART_SIZE,
            max_spool_bytes: 4 * MAX_PART_SIZE,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` are served (never on the S3 port, where
    /// they would shadow buckets of the same name).
    pub admin_listen: SocketAddr,
    pub domain: Option<String>,
    pub region: String,
    pub tls: Option<TlsFiles>,
    /// How long in-flight requests may run after a stop signal.
    pub shutdown_grace: Duration,
    /// How long `/readyz` waits for each provider to answer.
    pub readiness_timeout: Duration,
    /// How long `/readyz` reuses the providers' answers, so that a flood of probes (the
    /// endpoint is unauthenticated) is not a flood of signed provider requests.
    pub readiness_cache: Duration,
    pub limits: ConnectionLimits,
}

/// What protects the process from too many or too large requests. Applied when the listener
/// starts; a reload that changes them is logged and takes effect at the next restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Client connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// The largest request head (request line and headers) in bytes; larger gets 431.
    pub max_header_bytes: usize,
    /// The most header fields in one request; more gets 431.
    pub max_headers: usize,
    /// The bytes all bodies read whole (control XML, provider answers to rewrite) may hold at
    /// once; a request that finds no room gets 503 SlowDown (see `small_body`).
    pub max_buffered_body_bytes: usize,
    /// Admin connections (`/healthz`, `/readyz`, `/metrics`) served at once.
    pub admin_max_connections: usize,
    /// From accept to the first request's complete head, TLS handshake included: a peer that
    /// connects and says nothing gives its slot back after this long.
    pub request_head_timeout: Duration,
    /// How long a connection may stay open with no request in flight (HTTP/1 keep-alive, an
    /// HTTP/2 connection with no open stream), and the HTTP/2 keep-alive ping interval.
    pub idle_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A key pair clients sign with, and what it may reach (see `access`).
#[derive(Debug, Clone)]
pub struct ClientCredential {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// `grants = "all"` is one grant of `admin` on `*`.
    pub grants: Vec<Grant>,
}

/// How bucket names travel to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addressing {
    /// `https://bucket.host/key`
    Virtual,
    /// `https://host/bucket/key`
    Path,
}

impl Addressing {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Virtual => "virtual",
            Self::Path => "path",
        }
    }
}

/// How s3ferry signs the requests it sends to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    /// AWS Signature Version 4 (`AWS4-HMAC-SHA256`), what every current provider speaks.
    V4,
    /// AWS Signature Version 2 (`AWS key:signature`), for older S3 clones that know nothing else.
    V2,
}

/// Where a provider's objects live.
#[derive(Debug, Clone)]
pub enum ProviderKind {
    /// A remote S3 endpoint.
    Remote(RemoteProvider),
    /// A directory served in-process as S3 (s3s-fs) on a loopback port.
    Local { root: PathBuf },
}

#[derive(Debug, Clone)]
pub struct RemoteProvider {
    pub endpoint: http::Uri,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub ca_file: Option<PathBuf>,
    pub signature: SignatureVersion,
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    pub region: String,
    pub addressing: Addressing,
    pub dialect: String,
    /// The dialect's built-in profile with this provider's overrides applied.
    pub profile: DialectProfile,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// How failed exchanges that are safe to repeat are retried.
    pub retry: RetryPolicy,
}

/// How a provider's failed exchanges are retried (`[providers.NAME]` `retries`,
/// `retry_backoff_ms`, `retry_after_max_secs`); the rule is `upstream::retry`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first; 0 turns retries off.
    pub retries: u32,
    /// The wait before the first retry; each later one doubles it.
    pub backoff: Duration,
    /// The longest wait before a retry, and the longest `Retry-After` honoured.
    pub retry_after_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 2,
            backoff: Duration::from_millis(100),
            retry_after_max: Duration::from_secs(5),
        }
    }
}

/// A client bucket routed to a provider. `name == "*"` matches any bucket not routed otherwise.
#[derive(Debug, Clone)]
pub struct BucketRoute {
    pub name: String,
    pub provider: String,
    /// The bucket name at the provider; `None` means the same as the client's.
    pub upstream_bucket: Option<String>,
    /// Lazy migration: where reads fall back to on a miss.
    pub fallback: Option<FallbackConfig>,
    /// CORS rules answered by s3ferry (`[[buckets.cors]]`), in order; empty: none.
    pub cors: Vec<crate::cors::CorsRule>,
    /// What unsigned requests may do here; `None`: nothing (403).
    pub anonymous: Option<AnonymousAccess>,
}

/// The old provider of a bucket being migrated lazily.
#[derive(Debug, Clone)]
pub struct FallbackConfig {
    pub provider: String,
    /// The bucket at the old provider; `None` means the same as the client's.
    pub bucket: Option<String>,
    /// Copy an object into the new provider after serving it from the old one.
    pub copy_on_read: bool,
    /// DELETE also deletes at the old provider (needs a write key there); otherwise a tombstone.
    pub delete_from_fallback: bool,
}

/// Settings for background copies (copy on read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationConfig {
    /// Copies running at once.
    pub copy_workers: usize,
    /// Copies waiting; when full, a miss is served without scheduling a copy (counted as skipped).
    pub copy_queue: usize,
    /// Objects larger than this are not copied on read (left to `s3ferry migrate`).
    pub copy_on_read_max_bytes: u64,
    /// Attempts after the first failed copy, with growing delays.
    pub copy_retries: u32,
    /// Objects larger than this are copied (copy on read and `migrate`) as a multipart upload.
    pub multipart_copy_threshold: u64,
    /// The part size of such copies when the source's own part layout is not known.
    pub multipart_copy_part_size: u64,
}

/// S3's bounds on one part (and one PUT): at least 5 MiB (except a last part), at most 5 GiB.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;

impl Default for MigrationConfig {
    fn default() -> Self {
        Self {
            copy_workers: 4,
            copy_queue: 1024,
            copy_on_read_max_bytes: 5 * 1024 * 1024 * 1024,
            copy_retries: 3,
            multipart_copy_threshold: MAX_PART_SIZE,
            multipart_copy_part_size: 64 * 1024 * 1024,
        }
    }
}

/// The route name that matches every bucket without a route of its own.
pub const WILDCARD_BUCKET: &str = "*";

const DEFAULT_LISTEN: &str = "127.0.0.1:8333";
const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9333";
const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
const DEFAULT_READINESS_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_READINESS_CACHE: Duration = Duration::from_secs(60);
/// Conservative for the common `ulimit -n` of 1024: each client connection can hold a second
/// descriptor for its upstream connection.
const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Probes and scrapes are a handful of clients; the cap only has to stop a flood.
const DEFAULT_ADMIN_MAX_CONNECTIONS: usize = 32;
/// Long enough for a slow client on a bad link to send a request head (and a TLS handshake),
/// short enough that idle sockets cannot hold `max_connections` for long.
const DEFAULT_REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Above the idle time of common client pools (botocore and the AWS SDKs keep connections for
/// about 20-60 s after the last request), so the gateway is rarely the side that closes.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Shorter than any sensible probe period, long enough to absorb a burst.
const DEFAULT_READINESS_CACHE: Duration = Duration::from_secs(1);
/// AWS itself accepts 8 KiB of request headers on uploads; 64 KiB leaves room for long
/// presigned URLs and metadata while bounding what one connection can make the process hold.
const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// The smallest head buffer hyper accepts (it panics below this).
const MIN_MAX_HEADER_BYTES: usize = 8192;
const DEFAULT_MAX_HEADERS: usize = 100;
/// Four of the largest provider answers s3ferry rewrites (16 MiB listings) at once, or sixteen
/// 4 MiB control bodies: far below what a gateway host has, far above what normal traffic holds.
const DEFAULT_MAX_BUFFERED_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Below this even one provider error body (read up to 64 KiB) would not fit.
const MIN_MAX_BUFFERED_BODY_BYTES: usize = 64 * 1024;
/// The budget is a semaphore counted in `u32` bytes per acquisition.
const MAX_MAX_BUFFERED_BODY_BYTES: usize = u32::MAX as usize;
const DEFAULT_REGION: &str = "us-east-1";
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(300);
/// A provider down for longer than a few retries is better reported than waited for.
const MAX_RETRIES: u32 = 10;

impl Config {
    /// Reads, parses and validates a config file; applies environment overrides.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: "(file)".into(),
            reason: format!("cannot read the config file: {e}"),
        })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let env = |name: &str| std::env::var(name).ok();
        Self::parse(&text, &file, &base_dir, &env)
    }

    /// Parses and validates config text. `base_dir` anchors relative paths; `env` reads the
    /// environment (a parameter so tests need no global state).
    pub fn parse(
        text: &str,
        file: &str,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: file.to_string(),
            key: toml_error_location(text, &e),
            reason: e.message().to_string(),
        })?;
        Resolver { file, base_dir, env }.resolve(raw)
    }

    /// The provider a route points at (validated to exist).
    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.get(name)
    }
}

/// Turns toml's byte span into "line N" so the message points at the offending key.
fn toml_error_location(text: &str, e: &toml::de::Error) -> String {
    e.span().map_or_else(
        || "(syntax)".to_string(),
        |span| format!("line {}", text[..span.start.min(text.len())].matches('\n').count() + 1),
    )
}

struct Resolver<'a> {
    file: &'a str,
    base_dir: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Resolver<'_> {
    fn error(&self, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    fn resolve(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let server = self.resolve_server(raw.server)?;

        if raw.credentials.is_empty() {
            return Err(self.error(
                "credentials",
                "no [[credentials]] given: add at least one access_key_id / secret_access_key pair clients sign with",
            ));
        }
        let mut seen_keys = HashSet::new();
        let mut credentials = Vec::new();
        for (i, c) in raw.credentials.into_iter().enumerate() {
            let key = format!("credentials[{i}]");
            if c.access_key_id.trim().is_empty() {
                return Err(self.error(format!("{key}.access_key_id"), "must not be empty"));
            }
            if !seen_keys.insert(c.access_key_id.clone()) {
                return Err(self.error(
                    format!("{key}.access_key_id"),
                    format!("duplicate access key id '{}'", c.access_key_id),
                ));
            }
            let secret = self.resolve_secret(
                &key,
                c.secret_access_key,
                c.secret_access_key_env,
                c.secret_access_key_file,
            )?;
            let grants = self.resolve_grants(&key, c.grants)?;
            credentials.push(ClientCredential {
                access_key_id: c.access_key_id,
                secret_access_key: secret,
                grants,
            });
        }

        let mut providers = BTreeMap::new();
        for (name, p) in raw.providers {
            let provider = self.resolve_provider(&name, p)?;
            providers.insert(name, provider);
        }

        let mut seen_buckets = HashSet::new();
        let mut buckets = Vec::new();
        for (i, b) in raw.buckets.into_iter().enumerate() {
            let key = format!("buckets[{i}]");
            if b.name != WILDCARD_BUCKET {
                validate_bucket_name(&b.name).map_err(|r| self.error(format!("{key}.name"), r))?;
            }
            if !seen_buckets.insert(b.name.clone()) {
                return Err(self.error(format!("{key}.name"), format!("duplicate bucket route '{}'", b.name)));
            }
            if !providers.contains_key(&b.provider) {
                let known: Vec<_> = providers.keys().map(String::as_str).collect();
                return Err(self.error(
                    format!("{key}.provider"),
                    format!(
                        "route '{}' points to provider '{}', which is not defined (defined: {})",
                        b.name,
                        b.provider,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
            if let Some(up) = &b.upstream_bucket {
                if b.name == WILDCARD_BUCKET {
                    return Err(self.error(
                        format!("{key}.upstream_bucket"),
                        "the \"*\" route keeps each bucket's own name; it cannot rename",
                    ));
                }
                validate_bucket_name(up).map_err(|r| self.error(format!("{key}.upstream_bucket"), r))?;
            }
            let fallback = self.resolve_fallback(&key, &b, &providers)?;
            let anonymous = self.resolve_anonymous(&key, &b)?;
            let cors = b
                .cors
                .into_iter()
                .enumerate()
                .map(|(j, rule)| {
                    crate::cors::CorsRule::new(rule)
                        .map_err(|(field, reason)| self.error(format!("{key}.cors[{j}].{field}"), reason))
                })
                .collect::<Result<Vec<_>, _>>()?;
            buckets.push(BucketRoute {
                name: b.name,
                provider: b.provider,
                upstream_bucket: b.upstream_bucket,
                fallback,
                cors,
                anonymous,
            });
        }
        if buckets.is_empty() {
            return Err(self.error(
                "buckets",
                "no [[buckets]] routes given: add one per client bucket, or name = \"*\" for all",
            ));
        }

        self.check_granted_buckets_are_routed(&credentials, &buckets)?;
        let migration = self.resolve_migration(raw.migration)?;
        let post_upload = self.resolve_post_upload(raw.post_upload)?;
        Ok(Config {
            source: self.file.to_string(),
            server,
            credentials,
            providers,
            buckets,
            migration,
            post_upload,
        })
    }

    /// A key's grants. A missing `grants` is refused rather than read as "everything" or
    /// "nothing": full access must be asked for (`grants = "all"`), and a key that silently
    /// could do nothing would only look broken.
    fn resolve_grants(&self, key: &str, raw: Option<RawGrants>) -> Result<Vec<Grant>, ConfigError> {
        let field = format!("{key}.grants");
        match raw {
            None => Err(self.error(
                field,
                "missing: say what this key may reach, e.g. grants = [{ buckets = [\"photos\"], access = \"read\" }] \
                 (access: read, upload, write or admin; optional prefix = \"dir/\"), or grants = \"all\" for every \
                 bucket with full access (what keys could do before grants existed)",
            )),
            Some(RawGrants::Word(word)) if word == "all" => Ok(vec![Grant::all()]),
            Some(RawGrants::Word(word)) => Err(self.error(
                field,
                format!("'{word}' is not a grant: write \"all\" or a list of {{ buckets, prefix, access }} tables"),
            )),
            Some(RawGrants::List(list)) => list
                .into_iter()
                .enumerate()
                .map(|(i, g)| {
                    let field = format!("{field}[{i}]");
                    if g.buckets.is_empty() {
                        return Err(self.error(format!("{field}.buckets"), "names no bucket"));
                    }
                    for name in &g.buckets {
                        if name != WILDCARD_BUCKET {
                            validate_bucket_name(name).map_err(|r| self.error(format!("{field}.buckets"), r))?;
                        }
                    }
                    let access = match g.access.as_str() {
                        "read" => Level::Read,
                        "upload" => Level::Upload,
                        "write" => Level::Write,
                        "admin" => Level::Admin,
                        other => {
                            return Err(self.error(
                                format!("{field}.access"),
                                format!("'{other}' is not an access level: read, upload, write or admin"),
                            ));
                        }
                    };
                    Ok(Grant {
                        buckets: g.buckets,
                        prefix: g.prefix.unwrap_or_default(),
                        access,
                    })
                })
                .collect(),
        }
    }

    /// A grant that names a bucket no route exposes is a typo (or a route removed): refused.
    fn check_granted_buckets_are_routed(
        &self,
        credentials: &[ClientCredential],
        buckets: &[BucketRoute],
    ) -> Result<(), ConfigError> {
        if buckets.iter().any(|b| b.name == WILDCARD_BUCKET) {
            return Ok(());
        }
        for (i, c) in credentials.iter().enumerate() {
            for (j, g) in c.grants.iter().enumerate() {
                let unrouted = g
                    .buckets
                    .iter()
                    .find(|name| *name != WILDCARD_BUCKET && !buckets.iter().any(|b| &b.name == *name));
                if let Some(name) = unrouted {
                    return Err(self.error(
                        format!("credentials[{i}].grants[{j}].buckets"),
                        format!("bucket '{name}' has no [[buckets]] route (and there is no \"*\" route)"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `anonymous = "read" | "provider"` (and `anonymous_list`) of a route.
    fn resolve_anonymous(&self, key: &str, b: &RawBucket) -> Result<Option<AnonymousAccess>, ConfigError> {
        let Some(mode) = &b.anonymous else {
            if b.anonymous_list.is_some() {
                return Err(self.error(
                    format!("{key}.anonymous_list"),
                    "only meaningful with `anonymous = \"read\"`",
                ));
            }
            return Ok(None);
        };
        if b.name == WILDCARD_BUCKET {
            return Err(self.error(
                format!("{key}.anonymous"),
                "the \"*\" route cannot be anonymous: it would open every bucket; give each public bucket a route of its own",
            ));
        }
        match mode.as_str() {
            "read" => Ok(Some(AnonymousAccess::Read {
                list: b.anonymous_list.unwrap_or(false),
            })),
            "provider" => {
                if b.anonymous_list.is_some() {
                    return Err(self.error(
                        format!("{key}.anonymous_list"),
                        "with anonymous = \"provider\" the provider decides what unsigned requests may list",
                    ));
                }
                if b.fallback.is_some() {
                    return Err(self.error(
                        format!("{key}.anonymous"),
                        "anonymous = \"provider\" cannot be combined with fallback: reading through to the old \
                         provider and tombstones need s3ferry's keys; use anonymous = \"read\" while the bucket migrates",
                    ));
                }
                Ok(Some(AnonymousAccess::Provider))
            }
            other => Err(self.error(
                format!("{key}.anonymous"),
                format!("'{other}' is not an anonymous mode: \"read\" or \"provider\" (leave it out for none)"),
            )),
        }
    }

    fn resolve_fallback(
        &self,
        key: &str,
        b: &RawBucket,
        providers: &BTreeMap<String, ProviderConfig>,
    ) -> Result<Option<FallbackConfig>, ConfigError> {
        let Some(provider) = &b.fallback else {
            for (field, set) in [
                ("fallback_bucket", b.fallback_bucket.is_some()),
                ("copy_on_read", b.copy_on_read.is_some()),
                ("delete_from_fallback", b.delete_from_fallback.is_some()),
            ] {
                if set {
                    return Err(self.error(
                        format!("{key}.{field}"),
                        "only meaningful with `fallback = \"<old provider>\"`",
                    ));
                }
            }
            return Ok(None);
        };
        if !providers.contains_key(provider) {
            return Err(self.error(
                format!("{key}.fallback"),
                format!(
                    "route '{}' falls back to provider '{provider}', which is not defined",
                    b.name
                ),
            ));
        }
        if let Some(fb) = &b.fallback_bucket {
            if b.name == WILDCARD_BUCKET {
                return Err(self.error(
                    format!("{key}.fallback_bucket"),
                    "the \"*\" route falls back to each bucket's own name; it cannot rename",
                ));
            }
            validate_bucket_name(fb).map_err(|r| self.error(format!("{key}.fallback_bucket"), r))?;
        }
        let upstream = b.upstream_bucket.as_deref().unwrap_or(&b.name);
        let old_bucket = b.fallback_bucket.as_deref().unwrap_or(&b.name);
        if provider == &b.provider && upstream == old_bucket {
            return Err(self.error(
                format!("{key}.fallback"),
                "the fallback is the same bucket on the same provider",
            ));
        }
        Ok(Some(FallbackConfig {
            provider: provider.clone(),
            bucket: b.fallback_bucket.clone(),
            copy_on_read: b.copy_on_read.unwrap_or(false),
            delete_from_fallback: b.delete_from_fallback.unwrap_or(false),
        }))
    }

    fn resolve_post_upload(&self, p: RawPostUpload) -> Result<PostUploadConfig, ConfigError> {
        let d = PostUploadConfig::default();
        let config = PostUploadConfig {
            spool_dir: p.spool_dir.map_or(d.spool_dir, |dir| self.path(&dir)),
            max_file_bytes: p.max_file_bytes.unwrap_or(d.max_file_bytes),
            max_spool_bytes: p.max_spool_bytes.unwrap_or(d.max_spool_bytes),
        };
        // AWS takes at most 5 GiB in one POST, as in one PUT.
        if !(1..=MAX_PART_SIZE).contains(&config.max_file_bytes) {
            return Err(self.error(
                "post_upload.max_file_bytes",
                format!(
                    "{} is out of range: between 1 and {MAX_PART_SIZE} (5 GiB) bytes",
                    config.max_file_bytes
                ),
            ));
        }
        if config.max_spool_bytes < config.max_file_bytes {
            return Err(self.error(
                "post_upload.max_spool_bytes",
                "must be at least post_upload.max_file_bytes, or no form could be spooled",
            ));
        }
        Ok(config)
    }

    fn resolve_migration(&self, m: RawMigration) -> Result<MigrationConfig, ConfigError> {
        let d = MigrationConfig::default();
        let config = MigrationConfig {
            copy_workers: m.copy_workers.unwrap_or(d.copy_workers),
            copy_queue: m.copy_queue.unwrap_or(d.copy_queue),
            copy_on_read_max_bytes: m.copy_on_read_max_bytes.unwrap_or(d.copy_on_read_max_bytes),
            copy_retries: m.copy_retries.unwrap_or(d.copy_retries),
            multipart_copy_threshold: m.multipart_copy_threshold.unwrap_or(d.multipart_copy_threshold),
            multipart_copy_part_size: m.multipart_copy_part_size.unwrap_or(d.multipart_copy_part_size),
        };
        if config.copy_workers == 0 || config.copy_queue == 0 {
            return Err(self.error(
                "migration.copy_workers",
                "copy_workers and copy_queue must be at least 1",
            ));
        }
        // A single PUT takes at most 5 GiB, and below 5 MiB a part is too small to be one.
        for (key, value) in [
            ("migration.multipart_copy_threshold", config.multipart_copy_threshold),
            ("migration.multipart_copy_part_size", config.multipart_copy_part_size),
        ] {
            if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&value) {
                return Err(self.error(
                    key,
                    format!(
                        "{value} is out of range: between {MIN_PART_SIZE} (5 MiB) and {MAX_PART_SIZE} (5 GiB) bytes"
                    ),
                ));
            }
        }
        Ok(config)
    }

    /// An address from the environment override, else the file, else the default.
    fn address(&self, env: &str, key: &str, written: Option<String>, default: &str) -> Result<SocketAddr, ConfigError> {
        let (text, source) = match (self.env)(env) {
            Some(v) => (v, env.to_string()),
            None => (written.unwrap_or_else(|| default.into()), key.to_string()),
        };
        text.parse::<SocketAddr>()
            .map_err(|_| self.error(source, format!("'{text}' is not an address:port such as {default}")))
    }

    fn duration(&self, key: &str, written: Option<RawDuration>, default: Duration) -> Result<Duration, ConfigError> {
        match written {
            None => Ok(default),
            Some(RawDuration::Seconds(secs)) => Ok(Duration::from_secs(secs)),
            Some(RawDuration::Text(text)) => parse_duration(&text).ok_or_else(|| {
                self.error(
                    key,
                    format!("'{text}' is not a duration: give seconds (30) or a number with ms, s, m or h (\"30s\")"),
                )
            }),
        }
    }

    fn resolve_server(&self, s: RawServer) -> Result<ServerConfig, ConfigError> {
        let listen = self.address(LISTEN_ENV, "server.listen", s.listen, DEFAULT_LISTEN)?;
        let admin_listen = self.address(
            ADMIN_LISTEN_ENV,
            "server.admin_listen",
            s.admin_listen,
            DEFAULT_ADMIN_LISTEN,
        )?;
        if admin_listen == listen && listen.port() != 0 {
            return Err(self.error(
                "server.admin_listen",
                format!("{admin_listen} is also server.listen: the admin endpoints need their own port"),
            ));
        }
        let domain = match s.domain {
            Some(d) => {
                let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
                if d.is_empty() || d.contains(['/', ':', ' ']) {
                    return Err(self.error(
                        "server.domain",
                        "must be a bare host name such as s3.localhost (no scheme, port or path)",
                    ));
                }
                Some(d)
            }
            None => None,
        };
        let region = s.region.unwrap_or_else(|| DEFAULT_REGION.into());
        if region.is_empty() {
            return Err(self.error("server.region", "must not be empty"));
        }
        let tls = match (s.tls_cert, s.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let cert = self.path(&cert);
                let key_path = self.path(&key);
                for (k, p) in [("server.tls_cert", &cert), ("server.tls_key", &key_path)] {
                    std::fs::metadata(p).map_err(|e| self.error(k, format!("cannot read {}: {e}", p.display())))?;
                }
                Some(TlsFiles { cert, key: key_path })
            }
            _ => {
                return Err(self.error("server.tls_cert", "tls_cert and tls_key must be given together"));
            }
        };
        let shutdown_grace = self.duration("server.shutdown_grace", s.shutdown_grace, DEFAULT_SHUTDOWN_GRACE)?;
        let readiness_timeout = self.duration(
            "server.readiness_timeout",
            s.readiness_timeout,
            DEFAULT_READINESS_TIMEOUT,
        )?;
        if readiness_timeout.is_zero() {
            return Err(self.error("server.readiness_timeout", "must be more than 0"));
        }
        let readiness_cache = self.duration("server.readiness_cache", s.readiness_cache, DEFAULT_READINESS_CACHE)?;
        if readiness_cache > MAX_READINESS_CACHE {
            return Err(self.error(
                "server.readiness_cache",
                "must be at most 60s: a longer cache hides an outage from the orchestrator",
            ));
        }
        let limits = ConnectionLimits {
            max_connections: s.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            max_header_bytes: s.max_header_bytes.unwrap_or(DEFAULT_MAX_HEADER_BYTES),
            max_headers: s.max_headers.unwrap_or(DEFAULT_MAX_HEADERS),
            max_buffered_body_bytes: s.max_buffered_body_bytes.unwrap_or(DEFAULT_MAX_BUFFERED_BODY_BYTES),
            admin_max_connections: s.admin_max_connections.unwrap_or(DEFAULT_ADMIN_MAX_CONNECTIONS),
            request_head_timeout: self.duration(
                "server.request_head_timeout",
                s.request_head_timeout,
                DEFAULT_REQUEST_HEAD_TIMEOUT,
            )?,
            idle_timeout: self.duration("server.idle_timeout", s.idle_timeout, DEFAULT_IDLE_TIMEOUT)?,
        };
        if limits.max_connections == 0 {
            return Err(self.error("server.max_connections", "must be at least 1"));
        }
        if limits.admin_max_connections == 0 {
            return Err(self.error("server.admin_max_connections", "must be at least 1"));
        }
        // Zero would mean "never": exactly the unbounded wait these settings exist to end.
        if limits.request_head_timeout.is_zero() {
            return Err(self.error("server.request_head_timeout", "must be more than 0"));
        }
        if limits.idle_timeout.is_zero() {
            return Err(self.error("server.idle_timeout", "must be more than 0"));
        }
        if limits.max_header_bytes < MIN_MAX_HEADER_BYTES {
            return Err(self.error(
                "server.max_header_bytes",
                format!("must be at least {MIN_MAX_HEADER_BYTES}"),
            ));
        }
        if limits.max_headers == 0 {
            return Err(self.error("server.max_headers", "must be at least 1"));
        }
        if !(MIN_MAX_BUFFERED_BODY_BYTES..=MAX_MAX_BUFFERED_BODY_BYTES).contains(&limits.max_buffered_body_bytes) {
            return Err(self.error(
                "server.max_buffered_body_bytes",
                format!("must be between {MIN_MAX_BUFFERED_BODY_BYTES} and {MAX_MAX_BUFFERED_BODY_BYTES}"),
            ));
        }
        Ok(ServerConfig {
            listen,
            admin_listen,
            domain,
            region,
            tls,
            shutdown_grace,
            readiness_timeout,
            readiness_cache,
            limits,
        })
    }

    fn resolve_secret(
        &self,
        key: &str,
        inline: Option<String>,
        env: Option<String>,
        file: Option<PathBuf>,
    ) -> Result<Secret, ConfigError> {
        match (inline, env, file) {
            (Some(v), None, None) => {
                if v.is_empty() {
                    return Err(self.error(format!("{key}.secret_access_key"), "must not be empty"));
                }
                Ok(Secret(v))
            }
            (None, Some(var), None) => match (self.env)(&var) {
                Some(v) if !v.is_empty() => Ok(Secret(v)),
                _ => Err(self.error(
                    format!("{key}.secret_access_key_env"),
                    format!("environment variable {var} is not set or empty"),
                )),
            },
            (None, None, Some(path)) => {
                let path = self.path(&path);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    self.error(
                        format!("{key}.secret_access_key_file"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let v = text.trim_end_matches(['\r', '\n']).to_string();
                if v.is_empty() {
                    return Err(self.error(
                        format!("{key}.secret_access_key_file"),
                        format!("{} is empty", path.display()),
                    ));
                }
                Ok(Secret(v))
            }
            (None, None, None) => Err(self.error(
                format!("{key}.secret_access_key"),
                "missing: give secret_access_key, secret_access_key_env or secret_access_key_file",
            )),
            _ => Err(self.error(
                format!("{key}.secret_access_key"),
                "give only one of secret_access_key, secret_access_key_env, secret_access_key_file",
            )),
        }
    }

    fn resolve_provider(&self, name: &str, p: RawProvider) -> Result<ProviderConfig, ConfigError> {
        let key = format!("providers.{name}");
        let kind_name = p.kind.as_deref().unwrap_or("s3");
        let dialect = p
            .dialect
            .clone()
            .unwrap_or_else(|| if kind_name == "local" { "local" } else { "aws" }.into());
        if !KNOWN_DIALECTS.contains(&dialect.as_str()) {
            return Err(self.error(
                format!("{key}.dialect"),
                format!("unknown dialect '{dialect}' (known: {})", KNOWN_DIALECTS.join(", ")),
            ));
        }
        let profile = self.resolve_profile(&key, &dialect, &p)?;
        let addressing = match p.addressing.as_deref() {
            None => profile.addressing,
            Some("path") => Addressing::Path,
            Some("virtual") => Addressing::Virtual,
            Some(other) => {
                return Err(self.error(
                    format!("{key}.addressing"),
                    format!("'{other}' is neither \"virtual\" nor \"path\""),
                ));
            }
        };
        let connect_timeout = p
            .connect_timeout_secs
            .map_or(DEFAULT_CONNECT_TIMEOUT, Duration::from_secs);
        let read_timeout = p.read_timeout_secs.map_or(DEFAULT_READ_TIMEOUT, Duration::from_secs);
        if connect_timeout.is_zero() || read_timeout.is_zero() {
            return Err(self.error(
                format!("{key}.connect_timeout_secs"),
                "timeouts must be at least 1 second",
            ));
        }

        let retry = self.resolve_retry(&key, &p)?;

        let kind = match kind_name {
            "local" => {
                let remote_only = [
                    ("endpoint", p.endpoint.is_some()),
                    ("access_key_id", p.access_key_id.is_some()),
                    ("secret_access_key", p.secret_access_key.is_some()),
                    ("secret_access_key_env", p.secret_access_key_env.is_some()),
                    ("secret_access_key_file", p.secret_access_key_file.is_some()),
                    ("ca_file", p.ca_file.is_some()),
                    ("addressing", p.addressing.is_some()),
                    ("signature", p.signature.is_some()),
                ];
                if let Some((field, _)) = remote_only.iter().find(|(_, set)| *set) {
                    return Err(self.error(
                        format!("{key}.{field}"),
                        "a kind = \"local\" provider is served in-process from `root`; remove this key",
                    ));
                }
                let root = p.root.ok_or_else(|| {
                    self.error(
                        format!("{key}.root"),
                        "missing: a local provider needs the directory to serve",
                    )
                })?;
                ProviderKind::Local { root: self.path(&root) }
            }
            "s3" => {
                if p.root.is_some() {
                    return Err(self.error(format!("{key}.root"), "only kind = \"local\" providers have a root"));
                }
                let endpoint_text = p.endpoint.ok_or_else(|| {
                    self.error(
                        format!("{key}.endpoint"),
                        "missing: e.g. endpoint = \"https://s3.us-east-1.amazonaws.com\"",
                    )
                })?;
                let endpoint = parse_endpoint(&endpoint_text).map_err(|r| self.error(format!("{key}.endpoint"), r))?;
                let access_key_id = p.access_key_id.filter(|k| !k.is_empty()).ok_or_else(|| {
                    self.error(format!("{key}.access_key_id"), "missing: the provider's access key id")
                })?;
                let secret_access_key = self.resolve_secret(
                    &key,
                    p.secret_access_key,
                    p.secret_access_key_env,
                    p.secret_access_key_file,
                )?;
                let ca_file = match p.ca_file {
                    Some(f) => {
                        let f = self.path(&f);
                        std::fs::metadata(&f).map_err(|e| {
                            self.error(format!("{key}.ca_file"), format!("cannot read {}: {e}", f.display()))
                        })?;
                        Some(f)
                    }
                    None => None,
                };
                let signature = match p.signature.as_deref() {
                    None | Some("v4") => SignatureVersion::V4,
                    Some("v2") => SignatureVersion::V2,
                    Some(other) => {
                        return Err(self.error(
                            format!("{key}.signature"),
                            format!("'{other}' is neither \"v4\" nor \"v2\""),
                        ));
                    }
                };
                ProviderKind::Remote(RemoteProvider {
                    endpoint,
                    access_key_id,
                    secret_access_key,
                    ca_file,
                    signature,
                })
            }
            other => {
                return Err(self.error(
                    format!("{key}.kind"),
                    format!("unknown kind '{other}': use \"s3\" (a remote endpoint, the default) or \"local\""),
                ));
            }
        };
        let region = p.region.unwrap_or_else(|| DEFAULT_REGION.into());
        Ok(ProviderConfig {
            name: name.to_string(),
            kind,
            region,
            addressing,
            dialect,
            profile,
            connect_timeout,
            read_timeout,
            retry,
        })
    }

    /// `retries`, `retry_backoff_ms`, `retry_after_max_secs` of a provider.
    fn resolve_retry(&self, key: &str, p: &RawProvider) -> Result<RetryPolicy, ConfigError> {
        let defaults = RetryPolicy::default();
        let retries = p.retries.unwrap_or(defaults.retries);
        if retries > MAX_RETRIES {
            return Err(self.error(
                format!("{key}.retries"),
                format!("at most {MAX_RETRIES}: each retry holds the client's request open"),
            ));
        }
        let backoff = p.retry_backoff_ms.map_or(defaults.backoff, Duration::from_millis);
        let retry_after_max = p
            .retry_after_max_secs
            .map_or(defaults.retry_after_max, Duration::from_secs);
        if backoff > retry_after_max {
            return Err(self.error(
                format!("{key}.retry_backoff_ms"),
                "must not be longer than retry_after_max_secs, which caps every wait",
            ));
        }
        Ok(RetryPolicy {
            retries,
            backoff,
            retry_after_max,
        })
    }
}

/// `"30s"`, `"500ms"`, `"2m"`, `"1h"`, or bare seconds (`"30"`).
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let n: u64 = number.parse().ok()?;
    match unit.trim() {
        "" | "s" => Some(Duration::from_secs(n)),
        "ms" => Some(Duration::from_millis(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
    }
}

impl Resolver<'_> {
    /// The built-in profile of `dialect` with `dialect_overrides`, `storage_classes` and `acl`
    /// of the provider applied.
    fn resolve_profile(&self, key: &str, dialect: &str, p: &RawProvider) -> Result<DialectProfile, ConfigError> {
        let mut profile = dialect::builtin(dialect)
            .ok_or_else(|| self.error(format!("{key}.dialect"), format!("no profile for dialect '{dialect}'")))?;
        if let Some(o) = &p.dialect_overrides {
            if let Some(case) = o.etag_case.as_deref() {
                profile.etag_case = match case {
                    "lower" => EtagCase::Lower,
                    "upper" => EtagCase::Upper,
                    other => {
                        return Err(self.error(
                            format!("{key}.dialect_overrides.etag_case"),
                            format!("'{other}' is neither \"lower\" nor \"upper\""),
                        ));
                    }
                };
            }
            if let Some(v) = o.acl_headers {
                profile.acl_headers = v;
            }
            if let Some(v) = &o.canned_acls {
                if let Some(bad) = v.iter().find(|a| !dialect::AWS_CANNED_ACLS.contains(&a.as_str())) {
                    return Err(self.error(
                        format!("{key}.dialect_overrides.canned_acls"),
                        format!(
                            "'{bad}' is not an S3 canned ACL (known: {})",
                            dialect::AWS_CANNED_ACLS.join(", ")
                        ),
                    ));
                }
                profile.canned_acls.clone_from(v);
            }
            if let Some(v) = o.grants {
                profile.grants = v;
            }
            if let Some(v) = &o.drop_headers {
                profile.drop_headers = v.iter().map(|h| h.to_ascii_lowercase()).collect();
            }
            if let Some(v) = &o.drop_params {
                profile.drop_params.clone_from(v);
            }
            if let Some(v) = o.url_encoded_listings {
                profile.url_encoded_listings = v;
            }
            if let Some(names) = &o.checksum_algorithms {
                let mut algorithms = Vec::with_capacity(names.len());
                for name in names {
                    algorithms.push(ChecksumAlgorithm::from_name(name).ok_or_else(|| {
                        self.error(
                            format!("{key}.dialect_overrides.checksum_algorithms"),
                            format!(
                                "'{name}' is not a checksum algorithm (known: crc32, crc32c, crc64nvme, sha1, sha256)"
                            ),
                        )
                    })?);
                }
                profile.checksum_algorithms = algorithms;
            }
            if let Some(v) = o.content_md5_required {
                profile.content_md5_required = v;
            }
            if let Some(form) = o.conditional_writes.as_deref() {
                profile.conditional_writes = ConditionalWrites::parse(form).ok_or_else(|| {
                    self.error(
                        format!("{key}.dialect_overrides.conditional_writes"),
                        format!("'{form}' is not one of \"aws\", \"oss\", \"gcs\", \"none\""),
                    )
                })?;
            }
            if let Some(header) = &o.native_storage_class_header {
                profile.native_storage_class_header = (!header.is_empty()).then(|| header.to_ascii_lowercase());
            }
            if let Some(v) = o.acl_api {
                profile.acl_api = v;
            }
            if let Some(v) = o.list_objects_v2 {
                profile.list_objects_v2 = v;
            }
            if let Some(v) = &o.unsupported_operations {
                profile.unsupported_operations.clone_from(v);
            }
            if let Some(v) = o.upload_part_copy {
                profile.upload_part_copy = v;
            }
            if let Some(v) = o.trailing_checksums_by_copy {
                profile.trailing_checksums_by_copy = v;
            }
            if let Some(v) = o.unsigned_trailer {
                profile.unsigned_trailer = v;
            }
            if let Some(v) = o.literal_dot_segments {
                profile.literal_dot_segments = v;
            }
            if let Some(v) = o.verifies_before_storing {
                profile.verifies_before_storing = v;
            }
        }
        if let Some(table) = &p.storage_classes {
            let mut merged: Vec<(String, String)> = Vec::new();
            for (client, provider) in table {
                if client.is_empty() || provider.is_empty() {
                    return Err(self.error(
                        format!("{key}.storage_classes"),
                        "class names must not be empty".to_string(),
                    ));
                }
                merged.push((client.clone(), provider.clone()));
            }
            // The provider's own entries win; built-in ones for other classes stay.
            merged.extend(
                profile
                    .storage_classes
                    .into_iter()
                    .filter(|(c, _)| !table.contains_key(c)),
            );
            profile.storage_classes = merged;
        }
        if let Some(table) = &p.error_codes {
            for (provider_code, raw) in table {
                let (aws_code, status, hint) = match raw {
                    RawErrorMapping::Code(code) => (code.clone(), None, None),
                    RawErrorMapping::Full { code, status, hint } => (code.clone(), *status, hint.clone()),
                };
                if aws_code.is_empty() || status.is_some_and(|s| !(400..=599).contains(&s)) {
                    return Err(self.error(
                        format!("{key}.error_codes.{provider_code}"),
                        "needs a non-empty AWS code and, if given, an error status 400-599",
                    ));
                }
                profile.error_codes.retain(|m| &m.provider_code != provider_code);
                profile.error_codes.push(dialect::ErrorMapping {
                    provider_code: provider_code.clone(),
                    aws_code,
                    status,
                    hint,
                });
            }
        }
        if let Some(acl) = &p.acl
            && let Some(policy) = acl.unsupported.as_deref()
        {
            profile.unsupported_acl = UnsupportedAcl::parse(policy).ok_or_else(|| {
                self.error(
                    format!("{key}.acl.unsupported"),
                    format!("'{policy}' is not one of \"map\", \"drop\", \"reject\""),
                )
            })?;
        }
        Ok(profile)
    }
}

fn parse_endpoint(text: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = text.parse().map_err(|e| format!("'{text}' is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("'{text}' must start with http:// or https://")),
    }
    if uri.host().is_none() {
        return Err(format!("'{text}' has no host"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "'{text}' must not have a path or query: give only scheme, host and port"
        ));
    }
    Ok(uri)
}

/// S3 bucket naming rules (one rule for config and requests: `s3::bucket_name::bucket_name_problem`).
pub fn validate_bucket_name(name: &str) -> Result<(), String> {
    match crate::s3::bucket_name::bucket_name_problem(name) {
        None => Ok(()),
        Some(rule) => Err(format!("'{name}' is not a valid bucket name ({rule})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{AnonymousAccess, Grant, Level};

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml", Path::new("/etc/s3ferry"), &no_env)
    }

    const MINIMAL: &str = r#"
        [[credentials]]
        access_key_id = "client"
        secret_access_key = "client-secret"
        grants = "all"
        [providers.up]
        endpoint = "http://127.0.0.1:9000"
        access_key_id = "up"
        secret_access_key = "up-secret"
        [[buckets]]
        name = "*"
        provider = "up"
    "#;

    #[test]
    fn example_config_parses_and_routes_every_bucket() {
        let text = include_str!("../config.example.toml");
        let cfg = Config::parse(text, "config.example.toml", Path::new("."), &no_env).expect("example parses");
        assert_eq!(cfg.server.listen.to_string(), "127.0.0.1:8333");
        assert_eq!(cfg.server.domain.as_deref(), Some("s3.localhost"));
        assert!(cfg.buckets.iter().any(|b| b.name == WILDCARD_BUCKET));
        assert!(
            cfg.buckets
                .iter()
                .any(|b| b.upstream_bucket.as_deref() == Some("photos-2017"))
        );
        assert!(matches!(cfg.providers["local"].kind, ProviderKind::Local { .. }));
        let grants_of = |key: &str| {
            cfg.credentials
                .iter()
                .find(|c| c.access_key_id == key)
                .map(|c| c.grants.clone())
                .expect("key in the example")
        };
        assert_eq!(grants_of("s3ferry-demo"), [Grant::all()]);
        assert!(grants_of("s3ferry-reports").iter().all(|g| g.access == Level::Read));
        assert_eq!(
            grants_of("s3ferry-partner"),
            [Grant {
                buckets: vec!["demo".into()],
                prefix: "incoming/".into(),
                access: Level::Upload
            }]
        );
    }

    #[test]
    fn example_config_documents_the_server_defaults() {
        let text = include_str!("../config.example.toml");
        let example = Config::parse(text, "config.example.toml", Path::new("."), &no_env).expect("example parses");
        let defaults = parse(MINIMAL).expect("parses");
        assert_eq!(example.server.admin_listen, defaults.server.admin_listen);
        assert_eq!(example.server.shutdown_grace, defaults.server.shutdown_grace);
        assert_eq!(example.server.readiness_timeout, defaults.server.readiness_timeout);
        assert_eq!(example.server.readiness_cache, defaults.server.readiness_cache);
        assert_eq!(example.server.limits, defaults.server.limits);
        assert_eq!(example.post_upload, defaults.post_upload);
        for provider in example.providers.values() {
            assert_eq!(provider.retry, RetryPolicy::default(), "{}", provider.name);
        }
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let cfg = parse(MINIMAL).expect("parses");
        let up = &cfg.providers["up"];
        assert_eq!(up.addressing, Addressing::Path);
        assert_eq!(up.dialect, "aws");
        assert_eq!(up.region, "us-east-1");
        assert_eq!(cfg.server.region, "us-east-1");
    }

    #[test]
    fn provider_retries_have_defaults_and_bounds() {
        let cfg = parse(MINIMAL).expect("parses");
        assert_eq!(cfg.providers["up"].retry, RetryPolicy::default());
        let set = parse(&MINIMAL.replace(
            "secret_access_key = \"up-secret\"",
            "secret_access_key = \"up-secret\"\nretries = 0\nretry_backoff_ms = 50\nretry_after_max_secs = 1",
        ))
        .expect("parses");
        assert_eq!(
            set.providers["up"].retry,
            RetryPolicy {
                retries: 0,
                backoff: Duration::from_millis(50),
                retry_after_max: Duration::from_secs(1),
            }
        );
        for (extra, key) in [
            ("retries = 11", "providers.up.retries"),
            ("retry_backoff_ms = 6000", "providers.up.retry_backoff_ms"),
        ] {
            let text = MINIMAL.replace(
                "secret_access_key = \"up-secret\"",
                &format!("secret_access_key = \"up-secret\"\n{extra}"),
            );
            let err = parse(&text).expect_err(extra);
            assert_eq!(err.key, key, "{err}");
        }
    }

    #[test]
    fn the_commented_cors_example_parses_and_bad_rules_name_their_key() {
        let example = include_str!("../config.example.toml");
        let rule: String = example
            .lines()
            .skip_while(|l| !l.starts_with("# [[buckets.cors]]"))
            .take_while(|l| l.starts_with("# "))
            .map(|l| format!("{}\n", &l[2..]))
            .collect();
        assert!(rule.contains("allowed_origins"), "the example's CORS rule: {rule}");
        let cfg = parse(&format!("{MINIMAL}{rule}")).expect("the CORS example parses");
        assert_eq!(cfg.buckets[0].cors.len(), 1);
        assert!(
            parse(MINIMAL).expect("parses").buckets[0].cors.is_empty(),
            "no rules by default"
        );
        for (bad, key) in [
            (
                "allowed_origins = [\"https://*.*.example\"]\nallowed_methods = [\"GET\"]",
                "allowed_origins",
            ),
            (
                "allowed_origins = [\"*\"]\nallowed_methods = [\"PATCH\"]",
                "allowed_methods",
            ),
            ("allowed_origins = [\"*\"]", "allowed_methods"),
            (
                "allowed_origins = [\"*\"]\nallowed_methods = [\"GET\"]\nmax_age = 1",
                "max_age",
            ),
        ] {
            let err = parse(&format!("{MINIMAL}[[buckets.cors]]\n{bad}\n")).expect_err(bad);
            assert!(err.key.contains(key) || err.reason.contains(key), "{bad}: {err}");
        }
        let err = parse(&format!(
            "{MINIMAL}[[buckets.cors]]\nallowed_origins = [\"*\"]\nallowed_methods = [\"get\"]\n"
        ))
        .expect_err("lowercase method");
        assert_eq!(err.key, "buckets[0].cors[0].allowed_methods", "{err}");
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let err = parse(&MINIMAL.replace("[[buckets]]", "[[buckets]]\nrenamed = 1")).unwrap_err();
        assert!(err.reason.contains("unknown field `renamed`"), "{err}");
        assert_eq!(err.file, "test.toml");
    }

    #[test]
    fn route_to_missing_provider_is_rejected() {
        let err = parse(&MINIMAL.replace("provider = \"up\"", "provider = \"nope\"")).unwrap_err();
        assert_eq!(err.key, "buckets[0].provider");
        assert!(err.reason.contains("'nope'"), "{err}");
    }

    #[test]
    fn duplicate_routes_and_keys_are_rejected() {
        let dup_route = format!("{MINIMAL}\n[[buckets]]\nname = \"*\"\nprovider = \"up\"\n");
        assert!(parse(&dup_route).unwrap_err().reason.contains("duplicate bucket route"));
        let dup_key = format!("{MINIMAL}\n[[credentials]]\naccess_key_id = \"client\"\nsecret_access_key = \"x\"\n");
        assert!(parse(&dup_key).unwrap_err().reason.contains("duplicate access key"));
    }

    #[test]
    fn unreadable_secret_file_is_rejected_with_path() {
        let text = MINIMAL.replace(
            "secret_access_key = \"up-secret\"",
            "secret_access_key_file = \"missing/secret\"",
        );
        let err = parse(&text).unwrap_err();
        assert_eq!(err.key, "providers.up.secret_access_key_file");
        assert!(err.reason.contains("/etc/s3ferry/missing/secret"), "{err}");
    }

    #[test]
    fn secret_from_env_is_read_and_never_printed() {
        let text = MINIMAL.replace(
            "secret_access_key = \"up-secret\"",
            "secret_access_key_env = \"UP_SECRET\"",
        );
        let env = |name: &str| (name == "UP_SECRET").then(|| "from-env".to_string());
        let cfg = Config::parse(&text, "t.toml", Path::new("."), &env).expect("parses");
        let ProviderKind::Remote(remote) = &cfg.providers["up"].kind else {
            panic!("remote")
        };
        assert_eq!(remote.secret_access_key.expose(), "from-env");
        let printed = format!("{cfg:?}");
        assert!(
            !printed.contains("from-env") && !printed.contains("client-secret"),
            "{printed}"
        );
    }

    #[test]
    fn server_defaults_suit_a_bare_binary() {
        let cfg = parse(MINIMAL).expect("parses");
        assert_eq!(cfg.server.admin_listen.to_string(), "127.0.0.1:9333");
        assert_eq!(cfg.server.shutdown_grace, Duration::from_secs(30));
        assert_eq!(cfg.server.readiness_timeout, Duration::from_secs(2));
        assert_eq!(
            cfg.server.limits,
            ConnectionLimits {
                max_connections: 1024,
                max_header_bytes: 64 * 1024,
                max_headers: 100,
                max_buffered_body_bytes: 64 * 1024 * 1024,
                admin_max_connections: 32,
                request_head_timeout: Duration::from_secs(10),
                idle_timeout: Duration::from_secs(60),
            }
        );
        assert_eq!(cfg.server.readiness_cache, Duration::from_secs(1));
    }

    #[test]
    fn durations_are_seconds_or_a_number_with_a_unit() {
        let with = |line: &str| parse(&format!("[server]\n{line}\n{MINIMAL}"));
        let grace = |line: &str| with(line).expect("parses").server.shutdown_grace;
        assert_eq!(grace("shutdown_grace = 45"), Duration::from_secs(45));
        assert_eq!(grace("shutdown_grace = \"45s\""), Duration::from_secs(45));
        assert_eq!(grace("shutdown_grace = \"1500ms\""), Duration::from_millis(1500));
        assert_eq!(grace("shutdown_grace = \"2m\""), Duration::from_secs(120));
        assert_eq!(grace("shutdown_grace = \"0s\""), Duration::ZERO);
        let err = with("shutdown_grace = \"soon\"").unwrap_err();
        assert_eq!(err.key, "server.shutdown_grace");
        assert!(err.reason.contains("'soon'"), "{err}");
        assert_eq!(
            with("readiness_timeout = 0").unwrap_err().key,
            "server.readiness_timeout"
        );
    }

    #[test]
    fn limits_too_small_to_serve_are_rejected() {
        let with = |line: &str| parse(&format!("[server]\n{line}\n{MINIMAL}"));
        assert_eq!(with("max_connections = 0").unwrap_err().key, "server.max_connections");
        assert_eq!(
            with("max_header_bytes = 1024").unwrap_err().key,
            "server.max_header_bytes"
        );
        assert_eq!(with("max_headers = 0").unwrap_err().key, "server.max_headers");
        for too_small_or_large in ["max_buffered_body_bytes = 1000", "max_buffered_body_bytes = 5000000000"] {
            assert_eq!(
                with(too_small_or_large).unwrap_err().key,
                "server.max_buffered_body_bytes"
            );
        }
        assert_eq!(
            with("admin_max_connections = 0").unwrap_err().key,
            "server.admin_max_connections"
        );
        assert_eq!(
            with("request_head_timeout = 0").unwrap_err().key,
            "server.request_head_timeout"
        );
        assert_eq!(with("idle_timeout = \"0s\"").unwrap_err().key, "server.idle_timeout");
        assert_eq!(
            with("readiness_cache = \"2m\"").unwrap_err().key,
            "server.readiness_cache"
        );
        let cfg = with(
            "max_connections = 5\nmax_header_bytes = 16384\nmax_headers = 20\nadmin_max_connections = 2\n\
             request_head_timeout = \"500ms\"\nidle_timeout = \"2s\"\nreadiness_cache = 0\n\
             max_buffered_body_bytes = 65536",
        )
        .expect("parses");
        assert_eq!(
            cfg.server.limits,
            ConnectionLimits {
                max_connections: 5,
                max_header_bytes: 16384,
                max_headers: 20,
                max_buffered_body_bytes: 65536,
                admin_max_connections: 2,
                request_head_timeout: Duration::from_millis(500),
                idle_timeout: Duration::from_secs(2),
            }
        );
        assert_eq!(cfg.server.readiness_cache, Duration::ZERO);
    }

    #[test]
    fn admin_endpoints_need_their_own_port() {
        let text = format!("[server]\nlisten = \"127.0.0.1:8333\"\nadmin_listen = \"127.0.0.1:8333\"\n{MINIMAL}");
        assert_eq!(parse(&text).unwrap_err().key, "server.admin_listen");
        let env = |name: &str| (name == ADMIN_LISTEN_ENV).then(|| "0.0.0.0:9444".to_string());
        let cfg = Config::parse(MINIMAL, "t.toml", Path::new("."), &env).expect("parses");
        assert_eq!(cfg.server.admin_listen.to_string(), "0.0.0.0:9444");
    }

    #[test]
    fn listen_env_overrides_the_file() {
        let env = |name: &str| (name == LISTEN_ENV).then(|| "0.0.0.0:9999".to_string());
        let cfg = Config::parse(MINIMAL, "t.toml", Path::new("."), &env).expect("parses");
        assert_eq!(cfg.server.listen.to_string(), "0.0.0.0:9999");
    }

    #[test]
    fn bad_bucket_names_and_endpoints_are_rejected() {
        let text = MINIMAL.replace("name = \"*\"", "name = \"Bad_Bucket\"");
        assert_eq!(parse(&text).unwrap_err().key, "buckets[0].name");
        let text = MINIMAL.replace("http://127.0.0.1:9000", "ftp://x");
        assert_eq!(parse(&text).unwrap_err().key, "providers.up.endpoint");
        let text = MINIMAL.replace("http://127.0.0.1:9000", "http://x/base");
        assert!(parse(&text).unwrap_err().reason.contains("path"));
    }

    /// The commented `[providers.oss]` example of config.example.toml, uncommented.
    fn example_oss_block() -> String {
        let text = include_str!("../config.example.toml");
        let start = text.find("# [providers.oss]\n").expect("oss example");
        text[start..]
            .lines()
            .take_while(|l| l.starts_with('#'))
            .map(|l| l.trim_start_matches('#').trim_start())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn example_dialect_overrides_parse_into_the_profile() {
        let text = format!(
            "{}\n[[buckets]]\nname = \"ossb\"\nprovider = \"oss\"\n{}",
            MINIMAL,
            example_oss_block()
        );
        let cfg = Config::parse(&text, "t.toml", Path::new("."), &|name| {
            (name == "OSS_SECRET").then(|| "secret".into())
        })
        .expect("parses");
        let oss = &cfg.providers["oss"];
        assert_eq!(
            oss.addressing,
            Addressing::Virtual,
            "the oss profile's default addressing"
        );
        let p = &oss.profile;
        assert_eq!(p.etag_case, EtagCase::Upper);
        assert_eq!(p.canned_acls, ["private", "public-read", "public-read-write"]);
        assert_eq!(p.drop_headers, ["x-amz-request-payer"]);
        assert_eq!(p.drop_params, ["x-id"]);
        assert_eq!(p.unsupported_acl, UnsupportedAcl::Map);
        assert!(p.checksum_algorithms.is_empty() && p.content_md5_required && p.acl_api);
        assert_eq!(p.conditional_writes, ConditionalWrites::OssForbidOverwrite);
        assert_eq!(p.native_storage_class_header.as_deref(), Some("x-oss-storage-class"));
        assert_eq!(p.provider_storage_class("STANDARD_IA"), "IA");
        assert_eq!(
            p.provider_storage_class("DEEP_ARCHIVE"),
            "ColdArchive",
            "built-in entries stay"
        );
    }

    #[test]
    fn storage_class_and_acl_tables_override_the_profile() {
        let text = MINIMAL.replace(
            "secret_access_key = \"up-secret\"",
            "secret_access_key = \"up-secret\"\ndialect = \"r2\"\n[providers.up.storage_classes]\nGLACIER = \"STANDARD_IA\"\nONEZONE_IA = \"STANDARD\"\n[providers.up.acl]\nunsupported = \"drop\"",
        );
        let cfg = parse(&text).expect("parses");
        let p = &cfg.providers["up"].profile;
        assert_eq!(p.provider_storage_class("GLACIER"), "STANDARD_IA");
        assert_eq!(p.provider_storage_class("ONEZONE_IA"), "STANDARD");
        assert_eq!(p.provider_storage_class("GLACIER_IR"), "STANDARD_IA");
        assert_eq!(p.unsupported_acl, UnsupportedAcl::Drop);
        assert_eq!(cfg.providers["up"].addressing, Addressing::Path);
    }

    #[test]
    fn list_objects_v2_can_be_switched_on_for_a_ceph_that_serves_it() {
        let ceph = |overrides: &str| {
            let text = MINIMAL.replace(
                "secret_access_key = \"up-secret\"",
                &format!("secret_access_key = \"up-secret\"\ndialect = \"ceph\"\n{overrides}"),
            );
            parse(&text).expect("parses").providers["up"].profile.list_objects_v2
        };
        assert!(!ceph(""));
        assert!(ceph("[providers.up.dialect_overrides]\nlist_objects_v2 = true"));
    }

    #[test]
    fn every_toml_example_in_the_readme_parses() {
        let readme = include_str!("../README.md");
        let secret_file = tempfile::NamedTempFile::new().expect("secret file");
        std::fs::write(secret_file.path(), "secret").expect("write");
        let mut blocks = 0;
        for block in readme.split("```toml\n").skip(1) {
            let text = block.split("```").next().unwrap_or_default();
            // Secret files named in the examples are a real file here.
            let text = &text.replace("/run/secrets/oss", &secret_file.path().display().to_string());
            let full = if text.contains("[server]") {
                text.to_string()
            } else {
                // A fragment: completed with the minimal config so it parses on its own.
                format!("{MINIMAL}\n{text}")
            };
            Config::parse(&full, "README.md", Path::new("."), &|name| {
                name.ends_with("SECRET").then(|| "secret".into())
            })
            .unwrap_or_else(|e| panic!("README example does not parse: {e}\n{text}"));
            blocks += 1;
        }
        assert!(blocks >= 2, "the README shows its examples as ```toml blocks");
    }

    #[test]
    fn error_code_tables_add_to_and_replace_the_profiles() {
        let text = MINIMAL.replace(
            "secret_access_key = \"up-secret\"",
            "secret_access_key = \"up-secret\"\ndialect = \"gcs\"\n[providers.up.error_codes]\nQuotaExceeded = \"SlowDown\"\nBucketNameUnavailable = { code = \"BucketAlreadyOwnedByYou\", status = 409, hint = \"check the project\" }",
        );
        let cfg = parse(&text).expect("parses");
        let p = &cfg.providers["up"].profile;
        let quota = p.error_mapping("QuotaExceeded").expect("added");
        assert_eq!((quota.aws_code.as_str(), quota.status), ("SlowDown", None));
        let taken = p.error_mapping("BucketNameUnavailable").expect("replaced");
        assert_eq!(
            (taken.aws_code.as_str(), taken.status, taken.hint.as_deref()),
            ("BucketAlreadyOwnedByYou", Some(409), Some("check the project"))
        );
        assert_eq!(
            p.error_codes.len(),
            5,
            "3 built for every dialect, gcs's own, and the new one"
        );
    }

    #[test]
    fn unsigned_trailer_can_be_switched_per_provider() {
        let unsigned_trailer = |dialect: &str, overrides: &str| {
            let text = MINIMAL.replace(
                "secret_access_key = \"up-secret\"",
                &format!("secret_access_key = \"up-secret\"\ndialect = \"{dialect}\"\n{overrides}"),
            );
            parse(&text).expect("parses").providers["up"].profile.unsigned_trailer
        };
        assert!(unsigned_trailer("aws", ""));
        assert!(!unsigned_trailer(
            "aws",
            "[providers.up.dialect_overrides]\nunsigned_trailer = false"
        ));
        assert!(!unsigned_trailer("ceph", ""));
        assert!(unsigned_trailer(
            "ceph",
            "[providers.up.dialect_overrides]\nunsigned_trailer = true"
        ));
    }

    #[test]
    fn bad_dialect_overrides_are_rejected_with_their_key() {
        for (extra, key) in [
            (
                "[providers.up.dialect_overrides]\netag_cse = \"upper\"",
                "unknown field",
            ),
            (
                "[providers.up.dialect_overrides]\netag_case = \"mixed\"",
                "dialect_overrides.etag_case",
            ),
            (
                "[providers.up.dialect_overrides]\ncanned_acls = [\"world\"]",
                "dialect_overrides.canned_acls",
            ),
            (
                "[providers.up.dialect_overrides]\nchecksum_algorithms = [\"md5\"]",
                "dialect_overrides.checksum_algorithms",
            ),
            (
                "[providers.up.dialect_overrides]\nconditional_writes = \"maybe\"",
                "dialect_overrides.conditional_writes",
            ),
            ("[providers.up.acl]\nunsupported = \"ignore\"", "acl.unsupported"),
            (
                "[providers.up.error_codes]\nQuotaExceeded = { code = \"SlowDown\", status = 200 }",
                "error_codes.QuotaExceeded",
            ),
            ("[providers.up.acl]\npolicy = \"map\"", "unknown field"),
        ] {
            let text = MINIMAL.replace(
                "secret_access_key = \"up-secret\"",
                &format!("secret_access_key = \"up-secret\"\n{extra}"),
            );
            let err = parse(&text).expect_err(extra);
            assert!(err.to_string().contains(key), "{extra}: {err}");
        }
    }

    #[test]
    fn post_upload_caps_have_defaults_and_bounds() {
        let p = parse(MINIMAL).expect("parses").post_upload;
        assert_eq!(
            (p.max_file_bytes, p.max_spool_bytes),
            (MAX_PART_SIZE, 4 * MAX_PART_SIZE)
        );
        assert_eq!(p.spool_dir, std::env::temp_dir());
        let with = |extra: &str| parse(&format!("{MINIMAL}\n[post_upload]\n{extra}"));
        let set = with("spool_dir = \"/srv/spool\"\nmax_file_bytes = 1000\nmax_spool_bytes = 1000").expect("valid");
        assert_eq!(set.post_upload.spool_dir, std::path::PathBuf::from("/srv/spool"));
        for (extra, key) in [
            ("max_file_bytes = 0", "post_upload.max_file_bytes"),
            ("max_file_bytes = 5368709121", "post_upload.max_file_bytes"),
            (
                "max_file_bytes = 1000\nmax_spool_bytes = 999",
                "post_upload.max_spool_bytes",
            ),
            ("spool = \"/tmp\"", "spool"),
        ] {
            let err = with(extra).expect_err(extra);
            assert!(err.to_string().contains(key), "{extra}: {err}");
        }
    }

    #[test]
    fn multipart_copy_sizes_default_to_s3s_limits_and_are_bounded() {
        let m = parse(MINIMAL).expect("parses").migration;
        assert_eq!(m.multipart_copy_threshold, 5 * 1024 * 1024 * 1024);
        assert_eq!(m.multipart_copy_part_size, 64 * 1024 * 1024);
        let with = |extra: &str| parse(&format!("{MINIMAL}\n[migration]\n{extra}"));
        let set = with("multipart_copy_threshold = 6291456\nmultipart_copy_part_size = 5242880").expect("in range");
        assert_eq!(
            (
                set.migration.multipart_copy_threshold,
                set.migration.multipart_copy_part_size
            ),
            (6_291_456, 5_242_880)
        );
        for (extra, key) in [
            (
                "multipart_copy_threshold = 5368709121",
                "migration.multipart_copy_threshold",
            ),
            ("multipart_copy_threshold = 1024", "migration.multipart_copy_threshold"),
            (
                "multipart_copy_part_size = 5242879",
                "migration.multipart_copy_part_size",
            ),
            (
                "multipart_copy_part_size = 5368709121",
                "migration.multipart_copy_part_size",
            ),
        ] {
            let err = with(extra).expect_err(extra);
            assert!(err.to_string().contains(key), "{extra}: {err}");
        }
    }

    #[test]
    fn signature_defaults_to_v4_and_accepts_v2() {
        let remote_signature = |text: &str| match &parse(text).expect("parses").providers["up"].kind {
            ProviderKind::Remote(remote) => remote.signature,
            ProviderKind::Local { .. } => panic!("up is remote"),
        };
        assert_eq!(remote_signature(MINIMAL), SignatureVersion::V4);
        let v2 = MINIMAL.replace("access_key_id = \"up\"", "access_key_id = \"up\"\nsignature = \"v2\"");
        assert_eq!(remote_signature(&v2), SignatureVersion::V2);
    }

    #[test]
    fn unknown_signature_version_is_rejected_with_its_key_and_the_choices() {
        let text = MINIMAL.replace("access_key_id = \"up\"", "access_key_id = \"up\"\nsignature = \"v3\"");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.key, "providers.up.signature");
        assert!(err.reason.contains("\"v4\"") && err.reason.contains("\"v2\""), "{err}");
    }

    #[test]
    fn local_provider_rejects_a_signature_version() {
        let text = r#"
            [[credentials]]
            access_key_id = "client"
            secret_access_key = "client-secret"
            grants = "all"
            [providers.disk]
            kind = "local"
            root = "data"
            signature = "v2"
            [[buckets]]
            name = "*"
            provider = "disk"
        "#;
        let err = parse(text).unwrap_err();
        assert_eq!(err.key, "providers.disk.signature");
    }

    #[test]
    fn a_key_must_say_what_it_may_reach() {
        let text = MINIMAL.replace("grants = \"all\"\n", "");
        let err = parse(&text).expect_err("a key without grants is refused");
        assert_eq!(err.key, "credentials[0].grants");
        assert!(err.reason.contains("grants = \"all\""), "says what to write: {err}");
        let all = parse(MINIMAL).expect("parses");
        assert_eq!(all.credentials[0].grants, [Grant::all()]);
    }

    #[test]
    fn grants_parse_into_levels_and_prefixes_and_typos_are_refused() {
        let with = |grants: &str| parse(&MINIMAL.replace("grants = \"all\"", &format!("grants = {grants}")));
        let cfg = with(r#"[{ buckets = ["photos", "docs"], prefix = "in/", access = "upload" }, { buckets = ["*"], access = "read" }]"#)
            .expect("parses");
        assert_eq!(
            cfg.credentials[0].grants,
            [
                Grant {
                    buckets: vec!["photos".into(), "docs".into()],
                    prefix: "in/".into(),
                    access: Level::Upload
                },
                Grant {
                    buckets: vec!["*".into()],
                    prefix: String::new(),
                    access: Level::Read
                }
            ]
        );
        assert!(
            with("[]").expect("no grants: a key that can do nothing").credentials[0]
                .grants
                .is_empty()
        );
        for (grants, key) in [
            (r#""everything""#, "credentials[0].grants"),
            (
                r#"[{ buckets = ["photos"], access = "readwrite" }]"#,
                "credentials[0].grants[0].access",
            ),
            (
                r#"[{ buckets = [], access = "read" }]"#,
                "credentials[0].grants[0].buckets",
            ),
            (
                r#"[{ buckets = ["Bad_Name"], access = "read" }]"#,
                "credentials[0].grants[0].buckets",
            ),
        ] {
            assert_eq!(with(grants).expect_err(grants).key, key, "{grants}");
        }
        let err = with(r#"[{ buckets = ["photos"], acess = "read" }]"#).expect_err("typo in a field");
        assert!(
            err.to_string().contains("grants") || err.key.starts_with("line"),
            "{err}"
        );
    }

    #[test]
    fn a_grant_on_a_bucket_no_route_exposes_is_refused() {
        let text = MINIMAL.replace("name = \"*\"", "name = \"photos\"").replace(
            "grants = \"all\"",
            r#"grants = [{ buckets = ["fotos"], access = "read" }]"#,
        );
        assert_eq!(parse(&text).unwrap_err().key, "credentials[0].grants[0].buckets");
    }

    #[test]
    fn anonymous_access_is_per_named_bucket_and_off_by_default() {
        let route = |extra: &str| {
            parse(&format!(
                "{MINIMAL}\n[[buckets]]\nname = \"public\"\nprovider = \"up\"\n{extra}"
            ))
        };
        let cfg = route("").expect("parses");
        assert!(cfg.buckets.iter().all(|b| b.anonymous.is_none()));
        let read = route("anonymous = \"read\"").expect("parses");
        assert_eq!(read.buckets[1].anonymous, Some(AnonymousAccess::Read { list: false }));
        let listed = route("anonymous = \"read\"\nanonymous_list = true").expect("parses");
        assert_eq!(listed.buckets[1].anonymous, Some(AnonymousAccess::Read { list: true }));
        let native = route("anonymous = \"provider\"").expect("parses");
        assert_eq!(native.buckets[1].anonymous, Some(AnonymousAccess::Provider));
        for (extra, key) in [
            ("anonymous = \"public\"", "buckets[1].anonymous"),
            ("anonymous_list = true", "buckets[1].anonymous_list"),
            (
                "anonymous = \"provider\"\nanonymous_list = true",
                "buckets[1].anonymous_list",
            ),
            (
                "anonymous = \"provider\"\nfallback = \"up\"\nfallback_bucket = \"old\"",
                "buckets[1].anonymous",
            ),
        ] {
            assert_eq!(route(extra).expect_err(extra).key, key, "{extra}");
        }
        let wildcard = format!("{MINIMAL}anonymous = \"read\"\n");
        assert_eq!(parse(&wildcard).unwrap_err().key, "buckets[0].anonymous");
    }

    #[test]
    fn config_check_warns_about_keys_that_reach_everything_and_open_buckets() {
        let text = format!(
            "{MINIMAL}\n[[credentials]]\naccess_key_id = \"narrow\"\nsecret_access_key = \"s\"\n\
             grants = [{{ buckets = [\"photos\"], access = \"read\" }}]\n\
             [[buckets]]\nname = \"public\"\nprovider = \"up\"\nanonymous = \"read\""
        );
        let warnings = crate::access::broad_access_warnings(&parse(&text).expect("parses"));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("'client' can reach every bucket"), "{warnings:?}");
        assert!(
            warnings[1].contains("'public' is readable without a signature"),
            "{warnings:?}"
        );
    }

    #[test]
    fn unknown_dialect_is_rejected() {
        let text = MINIMAL.replace("access_key_id = \"up\"", "access_key_id = \"up\"\ndialect = \"azure\"");
        assert!(parse(&text).unwrap_err().reason.contains("unknown dialect 'azure'"));
    }
}
