//! Tombstones: a DELETE through s3ferry of a key the old provider may still hold is remembered
//! as an empty object under a reserved prefix in the new provider's bucket. Every s3ferry
//! instance behind a load balancer reads the same bucket, so they all agree that the key is
//! gone. The prefix is hidden from clients (listings skip it, requests into it are refused).
//!
//! A tombstone's name is `.s3ferry/tombstones/<key>` when that fits the longest key the new
//! provider stores (S3: 1,024 bytes, so keys of up to 1,004 bytes; a local provider: far less,
//! see `local::longest_local_key`). A longer key gets `.s3ferry/long-tombstones/<start of the
//! key><first 128 bits of its SHA-256, hex>`: within the limit, still one name per key (the hash
//! ends every such name), and sorted by the start of the key, so the tombstones of neighbouring
//! long keys are neighbours too.
//!
//! [`TombstoneLookup`] answers "is this key tombstoned?" for the many keys of a listing or a
//! bulk walk: one LIST of up to 1,000 tombstone names from just below the asked key's own name
//! answers every later key whose name falls in that window. The cost of a listing page is then
//! bounded by the keys it shows, never by how many tombstones lie between them.

use http::HeaderMap;
use sha2::Digest as _;

use super::pages::ListRequest;
use crate::body;
use crate::error::GatewayError;
use crate::upstream::{MAX_S3_KEY_BYTES, Upstream};

pub use crate::target::RESERVED_PREFIX;
/// Tombstones: `<TOMBSTONE_PREFIX><key>`.
pub const TOMBSTONE_PREFIX: &str = ".s3ferry/tombstones/";
/// Tombstones of keys too long for [`TOMBSTONE_PREFIX`]: `<LONG_TOMBSTONE_PREFIX><start of the
/// key><first 16 bytes of the key's SHA-256, 32 hex digits>`.
pub const LONG_TOMBSTONE_PREFIX: &str = ".s3ferry/long-tombstones/";
/// 128 bits: no two keys share a name, and a local provider's short names still fit.
const HASH_HEX_LEN: usize = 32;

/// The tombstone name of `key` on a provider that stores S3's 1,024-byte keys.
pub fn tombstone_key(key: &str) -> String {
    tombstone_name(key, MAX_S3_KEY_BYTES)
}

/// The tombstone name of `key` on a provider whose longest key is `longest` bytes.
pub fn tombstone_name(key: &str, longest: usize) -> String {
    if TOMBSTONE_PREFIX.len() + key.len() <= longest {
        return format!("{TOMBSTONE_PREFIX}{key}");
    }
    let mut kept = longest
        .saturating_sub(LONG_TOMBSTONE_PREFIX.len() + HASH_HEX_LEN)
        .min(key.len());
    while !key.is_char_boundary(kept) {
        kept -= 1;
    }
    let digest = sha2::Sha256::digest(key.as_bytes());
    format!(
        "{LONG_TOMBSTONE_PREFIX}{}{}",
        &key[..kept],
        hex::encode(&digest[..HASH_HEX_LEN / 2])
    )
}

/// The tombstone name of `key` in `bucket` of the new provider.
fn name_at(new: &Upstream, bucket: &str, key: &str) -> String {
    tombstone_name(key, new.settings.longest_key(bucket))
}

/// Whether `key` was deleted through s3ferry (and not written again since).
pub async fn is_tombstoned(new: &Upstream, bucket: &str, key: &str) -> Result<bool, GatewayError> {
    Ok(new.head_object(bucket, &name_at(new, bucket, key)).await?.is_some())
}

/// Records that `key` was deleted.
pub async fn write_tombstone(new: &Upstream, bucket: &str, key: &str) -> Result<(), GatewayError> {
    let response = new
        .put_object(bucket, &name_at(new, bucket, key), HeaderMap::new(), body::empty(), 0)
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
    new.delete_object(bucket, &name_at(new, bucket, key)).await
}

/// Tombstone lookups for many keys, mostly asked in ascending order (see the module docs).
pub struct TombstoneLookup<'a> {
    new: &'a Upstream,
    bucket: &'a str,
    window: Option<Window>,
}

/// The tombstone names of one namespace in `(after, through]` (`through`: `None` is the end).
#[derive(Debug, Default)]
struct Window {
    namespace: &'static str,
    after: String,
    through: Option<String>,
    names: Vec<String>,
}

impl Window {
    fn covers(&self, name: &str) -> bool {
        name.starts_with(self.namespace)
            && name > self.after.as_str()
            && self.through.as_deref().is_none_or(|t| name <= t)
    }
}

impl<'a> TombstoneLookup<'a> {
    pub fn new(new: &'a Upstream, bucket: &'a str) -> Self {
        Self {
            new,
            bucket,
            window: None,
        }
    }

    /// Whether `key` is tombstoned: from the window in memory, or after one LIST (more only
    /// when names just below this key's own fill a whole page).
    pub async fn contains(&mut self, key: &str) -> Result<bool, GatewayError> {
        let name = name_at(self.new, self.bucket, key);
        let window = match self.window.take() {
            Some(window) if window.covers(&name) => window,
            _ => self.read_window(&name).await?,
        };
        let found = window.names.binary_search(&name).is_ok();
        self.window = Some(window);
        Ok(found)
    }

    async fn read_window(&self, name: &str) -> Result<Window, GatewayError> {
        let namespace = if name.starts_with(LONG_TOMBSTONE_PREFIX) {
            LONG_TOMBSTONE_PREFIX
        } else {
            TOMBSTONE_PREFIX
        };
        let mut window = Window {
            namespace,
            after: start_after_for(name),
            ..Window::default()
        };
        let mut request = ListRequest {
            prefix: namespace.to_string(),
            delimiter: None,
            start_after: Some(window.after.clone()),
            continuation_token: None,
            max_keys: 1000,
        };
        loop {
            let page = super::pages::list_page(self.new, self.bucket, &request).await?;
            let mut names: Vec<String> = page.objects.into_iter().map(|o| o.key).collect();
            names.sort();
            let next = page.next_continuation_token.filter(|_| page.is_truncated);
            window.through = match (&next, names.last()) {
                (None, _) => None,
                (Some(_), Some(last)) => Some(last.clone()),
                (Some(_), None) => {
                    return Err(GatewayError::UpstreamProtocol {
                        provider: self.new.settings.name.clone(),
                        cause: format!(
                            "listing tombstones in '{}' gave an empty page that is truncated",
                            self.bucket
                        ),
                    });
                }
            };
            window.names = names;
            match (next, &window.through) {
                // The page ended below `name` (names between `after` and `name`): read on.
                (Some(token), Some(through)) if through.as_str() < name => {
                    window.after = through.clone();
                    request.start_after = None;
                    request.continuation_token = Some(token);
                }
                _ => return Ok(window),
            }
        }
    }
}

/// A name that sorts just below `name`, for a listing's `start-after` (S3 has no inclusive
/// start): `name` with its last character lowered by one and followed by the highest one, so
/// (almost) nothing sorts between the two. Whatever does only costs room in the window.
fn start_after_for(name: &str) -> String {
    let mut below = name.to_string();
    let Some(last) = below.pop() else {
        return below;
    };
    let lower = match last as u32 {
        0 => None,
        0xE000 => Some('\u{D7FF}'),
        v => char::from_u32(v - 1),
    };
    if let Some(lower) = lower {
        below.push(lower);
        if below.len() + char::MAX.len_utf8() <= MAX_S3_KEY_BYTES {
            below.push(char::MAX);
        }
    }
    below
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_live_under_the_reserved_prefix() {
        assert_eq!(tombstone_key("a/b"), ".s3ferry/tombstones/a/b");
        assert!(crate::target::is_reserved(&tombstone_key("x")));
        assert!(crate::target::is_reserved(&tombstone_key(&"y".repeat(1024))));
    }

    #[test]
    fn a_key_too_long_for_its_tombstone_name_gets_a_hashed_one_within_the_limit() {
        let longest_plain = "k".repeat(MAX_S3_KEY_BYTES - TOMBSTONE_PREFIX.len());
        assert_eq!(tombstone_key(&longest_plain).len(), MAX_S3_KEY_BYTES);
        assert!(tombstone_key(&longest_plain).starts_with(TOMBSTONE_PREFIX));
        let mut seen = std::collections::BTreeSet::new();
        for key in [
            format!("{longest_plain}k"),
            format!("{longest_plain}l"),
            "é".repeat(512),
            format!("{}x", "é".repeat(511)),
        ] {
            let name = tombstone_key(&key);
            assert!(name.starts_with(LONG_TOMBSTONE_PREFIX), "{name}");
            assert!(name.len() <= MAX_S3_KEY_BYTES, "{}", name.len());
            assert_eq!(tombstone_key(&key), name, "the same key, the same name");
            assert!(seen.insert(name), "one name per key");
        }
        // A local provider's bucket of 63 characters keeps keys of at most 72 bytes.
        let longest = crate::local::longest_local_key(&"b".repeat(63));
        for key in ["k".repeat(52), "k".repeat(53), "é".repeat(60)] {
            let name = tombstone_name(&key, longest);
            assert!(name.len() <= longest, "{name}");
            assert!(
                crate::local::unstorable_key_problem(&"b".repeat(63), &name).is_none(),
                "{name}"
            );
        }
    }

    #[test]
    fn start_after_sorts_just_below_the_name() {
        for name in [
            "a",
            ".s3ferry/tombstones/d07/k04000",
            "x\u{E000}",
            "é",
            &"z".repeat(1024),
        ] {
            let below = start_after_for(name);
            assert!(below.as_str() < name, "{below:?} < {name:?}");
            assert!(below.len() <= MAX_S3_KEY_BYTES);
        }
        // What sorts between is only what begins with the lowered name and the highest character.
        let below = start_after_for(".s3ferry/tombstones/d07/k04000");
        assert!(".s3ferry/tombstones/d07/k0400/sub" < below.as_str());
    }
}
