//! Typed configuration: the TOML file as written, validation, and the resolved form the gateway runs on.
//!
//! The keys of the file are a contract with external tooling (see `config.example.toml`), so the
//! raw structs deny unknown fields and every error names the file, the key and the reason.
//! Secrets are read from the file itself, from an environment variable (`*_env`) or from a file
//! (`*_file`) and are kept in [`Secret`], which never prints its value.
//!
//! This file holds the resolved types the rest of s3ferry reads; [`raw`] is the file as
//! written, [`resolve`] checks it and gives it meaning, and [`overrides`] applies a
//! provider's dialect overrides to its built-in profile.

mod overrides;
mod raw;
mod resolve;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::access::{AccessPolicy, AnonymousAccess, Grant};
use crate::dialect::DialectProfile;
use crate::s3::addressing::Addressing;
use raw::RawConfig;
use resolve::Resolver;

/// Environment variable that names the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "S3FERRY_CONFIG";
/// Environment variable that overrides `server.listen`.
pub const LISTEN_ENV: &str = "S3FERRY_LISTEN";
/// Environment variable that overrides `server.admin_listen`.
pub const ADMIN_LISTEN_ENV: &str = "S3FERRY_ADMIN_LISTEN";

/// Provider dialect names s3ferry knows: those with a built-in profile (`dialect::builtin`),
/// checked at start-up so that a typo is refused.
pub const KNOWN_DIALECTS: &[&str] = crate::dialect::BUILTIN_DIALECTS;

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

/// How s3ferry signs the requests it sends to a provider (`signature = "v4"` or `"v2"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
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
    /// How long the gateway's `/migration` page and migration gauges reuse the status records
    /// they read from the new providers before reading them again.
    pub status_refresh: Duration,
}

/// `migration.status_refresh` unless set.
pub const DEFAULT_STATUS_REFRESH: Duration = Duration::from_secs(30);
/// The shortest `migration.status_refresh`: the admin port is unauthenticated, and each read
/// costs a LIST and a GET per record and migrated bucket.
pub const MIN_STATUS_REFRESH: Duration = Duration::from_secs(1);

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
            status_refresh: DEFAULT_STATUS_REFRESH,
        }
    }
}

impl Config {
    /// Who may do what under this config (see `access`).
    pub fn access_policy(&self) -> AccessPolicy {
        let grants = self
            .credentials
            .iter()
            .map(|c| (c.access_key_id.clone(), c.grants.clone()))
            .collect();
        let anonymous = self
            .buckets
            .iter()
            .filter_map(|b| Some((b.name.clone(), b.anonymous?)))
            .collect();
        AccessPolicy::new(grants, anonymous)
    }

    /// What `s3ferry config check` warns about: keys that reach every bucket (a grant on `*`
    /// without a prefix, which `grants = "all"` is), and buckets open to unsigned requests.
    pub fn broad_access_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for c in &self.credentials {
            if let Some(g) = c.grants.iter().find(|g| g.reaches_every_bucket()) {
                warnings.push(format!(
                    "key '{}' can reach every bucket ({} access on \"*\"); list the buckets it needs instead",
                    c.access_key_id,
                    g.access.as_str()
                ));
            }
        }
        for b in &self.buckets {
            match b.anonymous {
                Some(AnonymousAccess::Read { list }) => warnings.push(format!(
                    "bucket '{}' is readable without a signature{}, with the provider's key",
                    b.name,
                    if list { " and listable" } else { "" }
                )),
                Some(AnonymousAccess::Provider) => warnings.push(format!(
                    "bucket '{}' forwards unsigned requests to the provider unsigned: its own public-access rules decide",
                    b.name
                )),
                None => {}
            }
        }
        warnings
    }

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

/// S3 bucket naming rules (one rule for config and requests: `s3::bucket_name::bucket_name_problem`).
pub fn validate_bucket_name(name: &str) -> Result<(), String> {
    match crate::s3::bucket_name::bucket_name_problem(name) {
        None => Ok(()),
        Some(rule) => Err(format!("'{name}' is not a valid bucket name ({rule})")),
    }
}
