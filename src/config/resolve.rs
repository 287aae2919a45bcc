//! The file as written ([`super::raw`]) checked and given its meaning: defaults filled in,
//! paths anchored at the config's directory, secrets read, names cross-checked (routes to
//! providers, grants to routes). Every refusal names the file, the key and the reason.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{DeserializeOwned, IntoDeserializer as _};

use super::raw::{RawBucket, RawConfig, RawDuration, RawGrants, RawMigration, RawPostUpload, RawProvider, RawServer};
use super::*;
use crate::access::Level;
use crate::s3::bucket_name::WILDCARD_BUCKET;

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

pub(super) struct Resolver<'a> {
    pub(super) file: &'a str,
    pub(super) base_dir: &'a Path,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
}

impl Resolver<'_> {
    pub(super) fn error(&self, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// A word of the file (`etag_case = "upper"`) as its enum, through the names the enum
    /// gives itself for serde, so that each word is written once, on its enum. A word that is
    /// none of them is refused with its key and the choices.
    pub(super) fn word<T: DeserializeOwned>(&self, key: String, word: &str) -> Result<T, ConfigError> {
        T::deserialize(word.into_deserializer()).map_err(|e: serde::de::value::Error| {
            // serde quotes words with backticks; the rest of s3ferry's messages, like TOML, use ".
            self.error(key, e.to_string().replace('`', "\""))
        })
    }

    fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    pub(super) fn resolve(&self, raw: RawConfig) -> Result<Config, ConfigError> {
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
            status_refresh: self.duration("migration.status_refresh", m.status_refresh, d.status_refresh)?,
        };
        if config.status_refresh < MIN_STATUS_REFRESH {
            return Err(self.error(
                "migration.status_refresh",
                "must be at least 1s: every refresh reads each migrated bucket's status records",
            ));
        }
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
            Some(word) => self.word(format!("{key}.addressing"), word)?,
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
                    None => SignatureVersion::V4,
                    Some(word) => self.word(format!("{key}.signature"), word)?,
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
