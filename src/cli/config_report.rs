//! `s3ferry config check`: validates a config file and prints what it resolved to.

use std::path::Path;
use std::process::ExitCode;

use s3ferry::config::ProviderKind;
use s3ferry::s3::bucket_name::WILDCARD_BUCKET;

use super::{Outcome, load};

/// `s3ferry config check`: the config as s3ferry resolved it, secrets masked, and warnings
/// about access wider than it may look.
pub(super) fn check_config(path: &Path) -> Outcome {
    let config = load(path)?;
    println!("{}: OK", path.display());
    println!(
        "listen: {}{}",
        config.server.listen,
        if config.server.tls.is_some() { " (TLS)" } else { "" }
    );
    println!("admin (/healthz, /readyz, /metrics): {}", config.server.admin_listen);
    let limits = &config.server.limits;
    println!(
        "limits: {} connections, {} header bytes, {} headers; shutdown grace {} ms",
        limits.max_connections,
        limits.max_header_bytes,
        limits.max_headers,
        config.server.shutdown_grace.as_millis()
    );
    if let Some(domain) = &config.server.domain {
        println!("virtual-hosted style: <bucket>.{domain}");
    }
    println!("client region: {}", config.server.region);
    println!("client credentials:");
    for c in &config.credentials {
        let grants: Vec<String> = c.grants.iter().map(s3ferry::access::describe).collect();
        let grants = if grants.is_empty() {
            "nothing".to_string()
        } else {
            grants.join("; ")
        };
        println!("  {} (secret {}): {grants}", c.access_key_id, c.secret_access_key);
    }
    println!("providers:");
    for (name, p) in &config.providers {
        match &p.kind {
            ProviderKind::Local { root } => {
                println!("  {name}: local directory {}", root.display())
            }
            ProviderKind::Remote(r) => println!(
                "  {name}: {} region {} addressing {} dialect {} key {} (secret {})",
                r.endpoint,
                p.region,
                p.addressing.as_str(),
                p.dialect,
                r.access_key_id,
                r.secret_access_key
            ),
        }
    }
    println!("routes:");
    for b in &config.buckets {
        let client = if b.name == WILDCARD_BUCKET {
            "* (any other bucket)"
        } else {
            b.name.as_str()
        };
        let upstream = b.upstream_bucket.as_deref().unwrap_or(if b.name == WILDCARD_BUCKET {
            "<same name>"
        } else {
            &b.name
        });
        let fallback = b.fallback.as_ref().map_or(String::new(), |f| {
            format!(
                " (falls back to {}:{}{}{})",
                f.provider,
                f.bucket.as_deref().unwrap_or(if b.name == WILDCARD_BUCKET {
                    "<same name>"
                } else {
                    &b.name
                }),
                if f.copy_on_read { ", copy on read" } else { "" },
                if f.delete_from_fallback {
                    ", deletes there too"
                } else {
                    ", deletes leave tombstones"
                }
            )
        });
        let anonymous = match b.anonymous {
            Some(s3ferry::access::AnonymousAccess::Read { list: false }) => ", anonymous reads",
            Some(s3ferry::access::AnonymousAccess::Read { list: true }) => ", anonymous reads and listings",
            Some(s3ferry::access::AnonymousAccess::Provider) => ", anonymous requests unsigned to the provider",
            None => "",
        };
        println!("  {client} -> {}:{upstream}{fallback}{anonymous}", b.provider);
    }
    for warning in config.broad_access_warnings() {
        eprintln!("warning: {warning}");
    }
    Ok(ExitCode::SUCCESS)
}
