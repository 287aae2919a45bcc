//! The listing of a bucket under lazy migration: both providers' listings merged in key order,
//! the new provider winning on duplicates, keys deleted through s3ferry (tombstoned) hidden,
//! s3ferry's reserved prefix hidden, common prefixes merged (an old-only prefix is shown only
//! if it still holds a live key), paginated with a continuation token that is the last entry
//! returned, so both providers resume from the same point.
//!
//! What a page costs does not grow with the number of tombstones: the new provider's listing
//! jumps over the reserved prefix in one request ([`AFTER_RESERVED`]) instead of paging through
//! the tombstones stored there, and old keys are checked against the tombstones near them
//! ([`TombstoneLookup`]), not against every tombstone that sorts before them.
//!
//! The providers are listed without `encoding-type=url` (raw keys, whatever their dialect says
//! about encoding), and the client's answer is encoded by [`render_list_objects`] when asked.
//!
//! [`render_list_objects`]: crate::rewrite::list_objects::render_list_objects

use std::collections::VecDeque;

use crate::error::GatewayError;
use crate::rewrite::list_objects::{ListEntry, ListQuery, ListVersion, decode_token};
use crate::rewrite::provider_values::translate_listed_object;
use crate::upstream::Upstream;

use super::pages::{ListRequest, list_page};
use super::tombstone::{RESERVED_PREFIX, TombstoneLookup};

/// Sorts after every name s3ferry writes under the reserved prefix (each goes on with an ASCII
/// letter: `tombstones/`, `long-tombstones/`), so a listing that starts after it has passed them
/// all in one request.
const AFTER_RESERVED: &str = ".s3ferry/\u{10FFFF}";

/// One provider's listing as a sorted stream of entries, fetched a page at a time (V2, or V1
/// where the provider's profile says so), with ETags and storage classes in the client's form.
pub(crate) struct Cursor<'a> {
    upstream: &'a Upstream,
    bucket: &'a str,
    request: ListRequest,
    /// A page that ends inside the reserved prefix is followed by one that starts after it.
    skip_reserved: bool,
    buffer: VecDeque<ListEntry>,
    exhausted: bool,
}

impl<'a> Cursor<'a> {
    /// A cursor that lists everything, s3ferry's reserved keys included.
    pub(crate) fn new(upstream: &'a Upstream, bucket: &'a str, request: ListRequest) -> Self {
        Self {
            upstream,
            bucket,
            request,
            skip_reserved: false,
            buffer: VecDeque::new(),
            exhausted: false,
        }
    }

    /// A cursor that passes over the reserved prefix in one jump (its names still come in the
    /// page where the jump is decided; callers drop them).
    pub(crate) fn skipping_reserved(upstream: &'a Upstream, bucket: &'a str, request: ListRequest) -> Self {
        Self {
            skip_reserved: true,
            ..Self::new(upstream, bucket, request)
        }
    }

    async fn fill(&mut self) -> Result<(), GatewayError> {
        while self.buffer.is_empty() && !self.exhausted {
            let page = list_page(self.upstream, self.bucket, &self.request).await?;
            let profile = &self.upstream.settings.profile;
            let mut entries: Vec<ListEntry> = page
                .objects
                .into_iter()
                .map(|mut o| {
                    translate_listed_object(&mut o, profile);
                    ListEntry::Object(o)
                })
                .chain(page.common_prefixes.into_iter().map(ListEntry::Prefix))
                .collect();
            entries.sort_by(|a, b| a.name().cmp(b.name()));
            let ends_in_reserved = entries.last().is_some_and(|e| e.name().starts_with(RESERVED_PREFIX));
            self.buffer.extend(entries);
            match page.next_continuation_token.filter(|_| page.is_truncated) {
                Some(_) if self.skip_reserved && ends_in_reserved => {
                    self.request.continuation_token = None;
                    self.request.start_after = Some(AFTER_RESERVED.to_string());
                }
                Some(token) => {
                    self.request.continuation_token = Some(token);
                    self.request.start_after = None;
                }
                None => self.exhausted = true,
            }
        }
        Ok(())
    }

    pub(crate) async fn peek(&mut self) -> Result<Option<&ListEntry>, GatewayError> {
        self.fill().await?;
        Ok(self.buffer.front())
    }

    pub(crate) async fn next(&mut self) -> Result<Option<ListEntry>, GatewayError> {
        self.fill().await?;
        Ok(self.buffer.pop_front())
    }
}

/// Both sides of a bucket under migration.
pub struct MergeSources<'a> {
    pub new: &'a Upstream,
    pub new_bucket: &'a str,
    pub old: &'a Upstream,
    pub old_bucket: &'a str,
}

/// Reads the client's ListObjects (v1) / ListObjectsV2 parameters.
pub fn parse_list_query(
    bucket: &str,
    query: &[(String, String)],
    v2: bool,
) -> Result<(ListQuery, Option<String>), GatewayError> {
    let get = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let max_keys = match get("max-keys") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| GatewayError::InvalidArgument(format!("max-keys '{v}' is not a number")))?
            .min(1000),
        None => 1000,
    };
    let version = if v2 {
        ListVersion::V2 {
            continuation_token: get("continuation-token"),
            start_after: get("start-after"),
        }
    } else {
        ListVersion::V1 { marker: get("marker") }
    };
    let resume = match &version {
        ListVersion::V2 {
            continuation_token: Some(t),
            ..
        } => Some(
            decode_token(t)
                .ok_or_else(|| GatewayError::InvalidArgument("The continuation token provided is incorrect".into()))?,
        ),
        ListVersion::V2 { start_after, .. } => start_after.clone().filter(|s| !s.is_empty()),
        ListVersion::V1 { marker } => marker.clone().filter(|m| !m.is_empty()),
    };
    let list = ListQuery {
        bucket: bucket.to_string(),
        prefix: get("prefix").unwrap_or_default(),
        delimiter: get("delimiter").filter(|d| !d.is_empty()),
        max_keys,
        url_encode: get("encoding-type").as_deref() == Some("url"),
        version,
    };
    Ok((list, resume))
}

/// One page of the merged listing: the entries and, when truncated, the continuation point.
pub async fn merged_page(
    sources: &MergeSources<'_>,
    query: &ListQuery,
    resume: Option<&str>,
) -> Result<(Vec<ListEntry>, Option<String>), GatewayError> {
    let side_request = ListRequest {
        prefix: query.prefix.clone(),
        delimiter: query.delimiter.clone(),
        start_after: resume.map(str::to_string),
        continuation_token: None,
        max_keys: 1000,
    };
    let mut new = Cursor::skipping_reserved(sources.new, sources.new_bucket, side_request.clone());
    let mut old = Cursor::skipping_reserved(sources.old, sources.old_bucket, side_request);
    let mut tombstones = TombstoneLookup::new(sources.new, sources.new_bucket);
    // Resuming after a common prefix: everything under it was already returned.
    let resumed_prefix = resume.filter(|r| query.delimiter.as_deref().is_some_and(|d| r.ends_with(d)));

    let mut entries = Vec::new();
    loop {
        let next_new = new.peek().await?.map(|e| e.name().to_string());
        let next_old = old.peek().await?.map(|e| e.name().to_string());
        let entry = match (next_new, next_old) {
            (None, None) => break,
            (Some(n), Some(o)) if n == o => {
                old.next().await?;
                new.next().await?
            }
            (Some(n), Some(o)) if n < o => new.next().await?,
            (Some(_), None) => new.next().await?,
            (_, Some(o)) => {
                let Some(entry) = old.next().await? else { break };
                // Checked before the tombstones are asked: those entries are never shown.
                let hidden = o.starts_with(RESERVED_PREFIX) || resumed_prefix.is_some_and(|p| o.starts_with(p));
                if hidden || !old_entry_is_live(sources, &entry, &mut tombstones).await? {
                    continue;
                }
                Some(entry)
            }
        };
        let Some(entry) = entry else { break };
        let name = entry.name();
        if name.starts_with(RESERVED_PREFIX)
            || resume.is_some_and(|r| name <= r)
            || resumed_prefix.is_some_and(|p| name.starts_with(p))
        {
            continue;
        }
        if entries.len() == query.max_keys {
            let last = entries.last().map(|e: &ListEntry| e.name().to_string());
            return Ok((entries, last));
        }
        entries.push(entry);
    }
    Ok((entries, None))
}

/// An old-side entry is shown unless it was deleted through s3ferry; an old-side common prefix
/// is shown only if at least one key under it is not.
async fn old_entry_is_live(
    sources: &MergeSources<'_>,
    entry: &ListEntry,
    tombstones: &mut TombstoneLookup<'_>,
) -> Result<bool, GatewayError> {
    match entry {
        ListEntry::Object(o) => Ok(!tombstones.contains(&o.key).await?),
        ListEntry::Prefix(p) => {
            let request = ListRequest {
                prefix: p.clone(),
                delimiter: None,
                start_after: None,
                continuation_token: None,
                max_keys: 1000,
            };
            let mut keys = Cursor::skipping_reserved(sources.old, sources.old_bucket, request);
            while let Some(k) = keys.next().await? {
                if !k.name().starts_with(RESERVED_PREFIX) && !tombstones.contains(k.name()).await? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
    }
}
