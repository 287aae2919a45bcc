//! `migrate --shard I/N` and `check --shard I/N`: N processes (a Kubernetes Indexed Job, or N
//! shells) share one migration, each owning one contiguous range of the key space.
//!
//! How the key space is divided, and why this way:
//! - A shard owns the keys `k` with `after < k <= through`: contiguous key ranges, so each
//!   shard lists only its own range of both providers (`start-after` its lower bound, stopping
//!   at its upper bound) and no shard lists the whole bucket. A split by a hash of each key
//!   would be even without any planning, but every shard would have to list every key to find
//!   its own: N whole listings of both providers, and the tombstone look-ups near every key.
//! - The N-1 bounds are cut from one listing of the old bucket's names (the *plan*), at equal
//!   object counts, so shards are even whatever the prefixes are (one prefix holding most keys
//!   is cut inside it). Keys that appear later fall in whichever range holds them: the ranges
//!   cover every possible key, so nothing is missed and nothing is owned twice.
//! - The plan is made once, by shard 0, and stored in the new provider's bucket under
//!   s3ferry's reserved prefix (`.s3ferry/shard-plans/`), where every shard, and every later
//!   run (a resumed or restarted shard, `check --shard`), reads the same one: the split is
//!   deterministic even though the bucket may change between runs. The other shards wait for
//!   it (bounded). Making it costs one listing of the old bucket's names, about one LIST per
//!   1,000 objects; it is written with the provider's create-if-absent where it has one.
//! - The plan keeps a sample of the listing, not every name (at most [`SAMPLE_CAP`] names,
//!   every `stride`-th key), so memory stays bounded for any bucket; a bound is then at most
//!   `stride` objects from the exact cut.

use std::str::FromStr;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::listing::Cursor;
use super::pages::ListRequest;
use crate::dialect::ConditionalWrites;
use crate::error::GatewayError;
use crate::route::{FallbackRoute, Route};

/// The environment variable Kubernetes sets to a pod's index in an Indexed Job.
pub const JOB_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// The Job's number of completions; Kubernetes does not set it, so the manifest does
/// (docs/deploy.md), from the same value as `spec.completions`.
pub const JOB_COUNT_ENV: &str = "JOB_COMPLETION_COUNT";
/// Where plans live in the new provider's bucket (under the reserved prefix: never listed,
/// served or copied).
pub const PLAN_PREFIX: &str = ".s3ferry/shard-plans/";
/// The most names a plan samples; bounds are exact for buckets up to this size.
pub const SAMPLE_CAP: usize = 65_536;
/// The most shards one migration may be split into.
pub const MAX_SHARDS: u32 = 10_000;

/// Why a shard cannot be worked on.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("'{0}' is not a shard: write INDEX/COUNT with 0 <= INDEX < COUNT <= {MAX_SHARDS}, e.g. 0/4")]
    BadSpec(String),
    #[error(
        "{JOB_INDEX_ENV} is set but {JOB_COUNT_ENV} is not: set it to the Job's spec.completions (see docs/deploy.md), or pass --shard INDEX/COUNT"
    )]
    CountMissing,
    #[error("{name}='{value}' is not a number")]
    BadEnv { name: &'static str, value: String },
    #[error(
        "shard 0 has not stored the plan of this {count}-way split within {waited_secs} s: start shard 0 (it lists the old bucket once and cuts the key space), or wait longer (--shard-plan-wait-secs)"
    )]
    PlanNotMade { count: u32, waited_secs: u64 },
    #[error("the stored shard plan at '{key}' cannot be read: {cause}")]
    PlanUnreadable { key: String, cause: String },
    #[error(transparent)]
    Provider(#[from] GatewayError),
}

/// One shard of N, numbered from 0 (as Kubernetes numbers an Indexed Job's pods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSpec {
    pub index: u32,
    pub count: u32,
}

impl FromStr for ShardSpec {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || ShardError::BadSpec(text.to_string());
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index: u32 = index.trim().parse().map_err(|_| bad())?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        if count == 0 || count > MAX_SHARDS || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

impl std::fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl ShardSpec {
    /// The shard of a Kubernetes Indexed Job's pod, from [`JOB_INDEX_ENV`] and
    /// [`JOB_COUNT_ENV`] as `lookup` reads them; `None` outside such a Job.
    pub fn from_job_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ShardError> {
        let Some(index) = lookup(JOB_INDEX_ENV) else {
            return Ok(None);
        };
        let count = lookup(JOB_COUNT_ENV).ok_or(ShardError::CountMissing)?;
        let number = |name: &'static str, value: &str| {
            value.trim().parse::<u32>().map_err(|_| ShardError::BadEnv {
                name,
                value: value.to_string(),
            })
        };
        let (index, count) = (number(JOB_INDEX_ENV, &index)?, number(JOB_COUNT_ENV, &count)?);
        format!("{index}/{count}").parse().map(Some)
    }
}

/// The keys `k` with `after < k <= through` (an absent bound is open).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRange {
    pub after: Option<String>,
    pub through: Option<String>,
}

impl KeyRange {
    /// Every key.
    pub fn all() -> Self {
        Self::default()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.after.as_deref().is_none_or(|a| key > a) && !self.is_past(key)
    }

    /// Whether `key` sorts after the range's end (a sorted walk may stop there).
    pub fn is_past(&self, key: &str) -> bool {
        self.through.as_deref().is_some_and(|t| key > t)
    }

    /// This range cut at `bounds`: `(after, b1], (b1, b2], ..., (bn, through]`, each key of the
    /// range in exactly one part. Bounds outside the range, or not above the previous one, are
    /// left out.
    pub fn split_at(&self, bounds: &[String]) -> Vec<KeyRange> {
        let mut parts = Vec::with_capacity(bounds.len() + 1);
        let mut after = self.after.clone();
        for bound in bounds {
            let above_last = after.as_deref().is_none_or(|a| bound.as_str() > a);
            if above_last && self.contains(bound) && self.through.as_deref() != Some(bound.as_str()) {
                parts.push(KeyRange {
                    after: after.replace(bound.clone()),
                    through: Some(bound.clone()),
                });
            }
        }
        parts.push(KeyRange {
            after,
            through: self.through.clone(),
        });
        parts
    }
}

/// `count` of `sorted`, spread evenly over it (all of them when there are fewer).
pub fn spread<T: Clone>(sorted: &[T], count: usize) -> Vec<T> {
    if sorted.len() <= count {
        return sorted.to_vec();
    }
    (1..=count)
        .map(|i| sorted[i * sorted.len() / (count + 1)].clone())
        .collect()
}

/// How the key space under a prefix is cut into shards: stored as JSON in the new provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPlan {
    pub prefix: String,
    pub shards: u32,
    /// Objects the old bucket listed under the prefix when the plan was made.
    pub objects: u64,
    /// `shards - 1` keys, non-decreasing: shard `i` owns `(bounds[i-1], bounds[i]]`.
    pub bounds: Vec<String>,
    /// When the plan was made (RFC 3339), for people reading it.
    pub made_at: String,
}

impl ShardPlan {
    /// The range shard `index` owns.
    pub fn range(&self, index: u32) -> KeyRange {
        let i = index as usize;
        KeyRange {
            after: i.checked_sub(1).and_then(|j| self.bounds.get(j).cloned()),
            through: self.bounds.get(i).cloned(),
        }
    }

    /// A short name of the plan's bounds: reports of shards of one plan carry the same one, so
    /// `check --merge` can refuse reports of different splits.
    pub fn id(&self) -> String {
        let mut hasher = sha2::Sha256::new();
        hasher.update(self.prefix.as_bytes());
        hasher.update(self.shards.to_be_bytes());
        for bound in &self.bounds {
            hasher.update((bound.len() as u64).to_be_bytes());
            hasher.update(bound.as_bytes());
        }
        hex::encode(&hasher.finalize()[..8])
    }
}

/// Every `stride`-th name of a sorted listing, the stride doubling whenever the sample would
/// pass [`SAMPLE_CAP`] (so memory stays bounded): a pure, deterministic cut of the key space.
#[derive(Debug, Clone)]
pub struct KeySample {
    cap: usize,
    stride: u64,
    seen: u64,
    names: Vec<String>,
}

impl Default for KeySample {
    fn default() -> Self {
        Self::with_cap(SAMPLE_CAP)
    }
}

impl KeySample {
    pub fn with_cap(cap: usize) -> Self {
        Self {
            cap: cap.max(2),
            stride: 1,
            seen: 0,
            names: Vec::new(),
        }
    }

    /// The next name of the listing (names come in ascending order).
    pub fn push(&mut self, name: &str) {
        if self.seen.is_multiple_of(self.stride) {
            if self.names.len() == self.cap {
                // Keep positions 0, 2s, 4s, ...: the sample stays every (2s)-th name.
                let mut i = 0;
                self.names.retain(|_| {
                    i += 1;
                    i % 2 == 1
                });
                self.stride *= 2;
            }
            if self.seen.is_multiple_of(self.stride) {
                self.names.push(name.to_string());
            }
        }
        self.seen += 1;
    }

    /// The plan cutting what was pushed into `shards` ranges of (nearly) equal object counts.
    pub fn into_plan(self, prefix: &str, shards: u32, made_at: String) -> ShardPlan {
        let total = self.seen;
        let bounds = (1..u64::from(shards))
            .map(|j| {
                // The last key of shard j-1 is at position ceil(total * j / shards) - 1.
                let position = (total * j).div_ceil(u64::from(shards));
                let Some(last) = position.checked_sub(1) else {
                    // Nothing before it: an empty bound owns no key (no key is empty).
                    return String::new();
                };
                let at = usize::try_from(last / self.stride).unwrap_or(usize::MAX);
                self.names.get(at).or(self.names.last()).cloned().unwrap_or_default()
            })
            .collect();
        ShardPlan {
            prefix: prefix.to_string(),
            shards,
            objects: total,
            bounds,
            made_at,
        }
    }
}

/// The name of the plan of an `shards`-way split of the keys under `prefix`.
pub fn plan_key(prefix: &str, shards: u32) -> String {
    let digest = sha2::Sha256::digest(prefix.as_bytes());
    format!("{PLAN_PREFIX}{shards}-{}.json", hex::encode(&digest[..8]))
}

/// The range `shard` owns under `prefix`, with the plan it was cut from (`None` for one shard:
/// it owns everything). Shard 0 makes the plan when there is none; the others wait for it up
/// to `wait`.
pub async fn shard_range(
    route: &Route,
    fallback: &FallbackRoute,
    prefix: &str,
    shard: ShardSpec,
    wait: Duration,
) -> Result<(KeyRange, Option<ShardPlan>), ShardError> {
    if shard.count == 1 {
        return Ok((KeyRange::all(), None));
    }
    let key = plan_key(prefix, shard.count);
    let plan = if shard.index == 0 {
        match read_plan(route, &key).await? {
            Some(plan) => plan,
            None => make_plan(route, fallback, prefix, shard.count, &key).await?,
        }
    } else {
        wait_for_plan(route, &key, shard.count, wait).await?
    };
    Ok((plan.range(shard.index), Some(plan)))
}

async fn read_plan(route: &Route, key: &str) -> Result<Option<ShardPlan>, ShardError> {
    use http_body_util::BodyExt as _;
    let response = route
        .provider
        .get_object(&route.upstream_bucket, key, HeaderMap::new())
        .await?;
    let unreadable = |cause: String| ShardError::PlanUnreadable {
        key: key.to_string(),
        cause,
    };
    match response.status() {
        StatusCode::NOT_FOUND => return Ok(None),
        s if !s.is_success() => return Err(unreadable(format!("GET answered {s}"))),
        _ => {}
    }
    // A plan is a few bounds of at most 1,024 bytes each; the cap keeps a broken object out.
    let limit = http_body_util::Limited::new(response.into_body(), 16 * 1024 * 1024);
    let body = limit.collect().await.map_err(|e| unreadable(e.to_string()))?.to_bytes();
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| unreadable(e.to_string()))
}

/// Lists the old bucket's names under `prefix` once, cuts the plan and stores it; where the
/// new provider's create-if-absent says a plan is already there, that one is used.
async fn make_plan(
    route: &Route,
    fallback: &FallbackRoute,
    prefix: &str,
    shards: u32,
    key: &str,
) -> Result<ShardPlan, ShardError> {
    let mut names = Cursor::new(
        &fallback.provider,
        &fallback.bucket,
        ListRequest {
            prefix: prefix.to_string(),
            max_keys: 1000,
            ..ListRequest::default()
        },
    );
    let mut sample = KeySample::default();
    while let Some(entry) = names.next().await? {
        sample.push(entry.name());
    }
    let made_at = crate::s3::timestamp::s3_timestamp(time::OffsetDateTime::now_utc());
    let plan = sample.into_plan(prefix, shards, made_at);
    let body = serde_json::to_vec_pretty(&plan).map_err(|e| GatewayError::Internal(e.to_string()))?;
    let length = body.len() as u64;
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if route.provider.settings.profile.conditional_writes != ConditionalWrites::Unsupported {
        headers.insert(http::header::IF_NONE_MATCH, HeaderValue::from_static("*"));
    }
    let written = route
        .provider
        .put_object(
            &route.upstream_bucket,
            key,
            headers,
            crate::body::full(body.into()),
            length,
        )
        .await?;
    match written.status() {
        // Another shard 0 (a restarted pod) stored one first: everyone uses that one.
        StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => {
            read_plan(route, key).await?.ok_or_else(|| ShardError::PlanUnreadable {
                key: key.to_string(),
                cause: "refused as already there, then not found".into(),
            })
        }
        s if s.is_success() => Ok(plan),
        s => Err(route
            .provider
            .failed(
                &format!("PUT of the shard plan in '{}'", route.upstream_bucket),
                s,
                written.body(),
            )
            .into()),
    }
}

/// Polls for shard 0's plan: every second at first, then every 10 s, until `wait` has passed.
async fn wait_for_plan(route: &Route, key: &str, count: u32, wait: Duration) -> Result<ShardPlan, ShardError> {
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        if let Some(plan) = read_plan(route, key).await? {
            return Ok(plan);
        }
        if started.elapsed() >= wait {
            return Err(ShardError::PlanNotMade {
                count,
                waited_secs: wait.as_secs(),
            });
        }
        tracing::info!(plan = key, "waiting for shard 0 to store the shard plan");
        tokio::time::sleep(pause.min(wait.saturating_sub(started.elapsed()))).await;
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_split_at_prefixes_holds_each_of_its_keys_once() {
        let keys = ["", "a", "a/", "a/x", "a0", "b", "b/", "b/y", "c", "c/z", "d/", "zz"];
        let bounds: Vec<String> = ["0", "b/", "a/", "c/", "c/", "d/", "zz", "zzz"]
            .map(String::from)
            .to_vec();
        for range in [
            KeyRange::all(),
            KeyRange {
                after: Some("a".into()),
                through: Some("c/z".into()),
            },
            KeyRange {
                after: None,
                through: Some("b/".into()),
            },
        ] {
            let parts = range.split_at(&bounds);
            assert!(parts.len() > 1, "{range:?} is cut");
            for key in keys {
                let holders = parts.iter().filter(|p| p.contains(key)).count();
                assert_eq!(
                    holders,
                    usize::from(range.contains(key)),
                    "{key:?} in {range:?}: {parts:?}"
                );
            }
        }
    }

    #[test]
    fn spread_picks_evenly_and_never_more_than_there_are() {
        let items: Vec<u32> = (0..10).collect();
        assert_eq!(spread(&items, 3), vec![2, 5, 7]);
        assert_eq!(spread(&items[..2], 3), vec![0, 1]);
        assert!(spread(&items, 0).is_empty());
    }

    #[test]
    fn shard_specs_are_index_slash_count() {
        assert_eq!("2/5".parse::<ShardSpec>().ok(), Some(ShardSpec { index: 2, count: 5 }));
        assert_eq!("0/1".parse::<ShardSpec>().ok(), Some(ShardSpec { index: 0, count: 1 }));
        for bad in ["5/5", "1/0", "-1/3", "1", "a/b", "1/3/4", "0/10001"] {
            assert!(bad.parse::<ShardSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_indexed_job_names_the_shard_in_its_environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_string())
        };
        assert_eq!(ShardSpec::from_job_env(env(&[])).ok(), Some(None));
        assert_eq!(
            ShardSpec::from_job_env(env(&[(JOB_INDEX_ENV, "3"), (JOB_COUNT_ENV, "8")])).ok(),
            Some(Some(ShardSpec { index: 3, count: 8 }))
        );
        assert!(matches!(
            ShardSpec::from_job_env(env(&[(JOB_INDEX_ENV, "3")])),
            Err(ShardError::CountMissing)
        ));
        assert!(matches!(
            ShardSpec::from_job_env(env(&[(JOB_INDEX_ENV, "x"), (JOB_COUNT_ENV, "8")])),
            Err(ShardError::BadEnv { .. })
        ));
        assert!(ShardSpec::from_job_env(env(&[(JOB_INDEX_ENV, "8"), (JOB_COUNT_ENV, "8")])).is_err());
    }

    fn plan_of(names: &[String], shards: u32, cap: usize) -> ShardPlan {
        let mut sample = KeySample::with_cap(cap);
        for n in names {
            sample.push(n);
        }
        sample.into_plan("", shards, String::new())
    }

    /// Every name in exactly one shard's range, and how many each shard got.
    fn counts(plan: &ShardPlan, names: &[String]) -> Vec<usize> {
        let ranges: Vec<KeyRange> = (0..plan.shards).map(|i| plan.range(i)).collect();
        let mut counts = vec![0; ranges.len()];
        for n in names {
            let owners: Vec<usize> = (0..ranges.len()).filter(|&i| ranges[i].contains(n)).collect();
            assert_eq!(owners.len(), 1, "{n} owned by {owners:?}");
            counts[owners[0]] += 1;
        }
        counts
    }

    #[test]
    fn shards_are_even_whatever_the_prefixes() {
        // One prefix holds almost everything; a few loose keys around it.
        let mut names: Vec<String> = (0..970).map(|i| format!("a/deep/x/{i:05}")).collect();
        names.extend(["0", "b", "b+c d", "zz/é"].iter().map(|s| (*s).to_string()));
        names.extend((0..26).map(|i| format!("m/{i}")));
        names.sort();
        let plan = plan_of(&names, 3, SAMPLE_CAP);
        assert_eq!(counts(&plan, &names), vec![334, 333, 333]);
        // Sampled (stride 16 here): each bound within one stride of the exact cut.
        let sampled = plan_of(&names, 3, 100);
        let c = counts(&sampled, &names);
        assert!(c.iter().all(|&n| (333 - 16..=334 + 16).contains(&n)), "{c:?}");
    }

    #[test]
    fn more_shards_than_keys_leaves_some_empty_and_none_shared() {
        let names: Vec<String> = ["a", "b"].iter().map(|s| (*s).to_string()).collect();
        let plan = plan_of(&names, 4, SAMPLE_CAP);
        assert_eq!(counts(&plan, &names).iter().sum::<usize>(), 2);
        let empty = plan_of(&[], 3, SAMPLE_CAP);
        assert_eq!(empty.bounds, vec![String::new(), String::new()]);
        assert!(empty.range(2).contains("anything"), "later keys land in the last shard");
    }

    #[test]
    fn the_last_shard_is_open_ended_and_the_first_open_below() {
        let names: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
        let plan = plan_of(&names, 2, SAMPLE_CAP);
        assert_eq!(
            plan.range(0),
            KeyRange {
                after: None,
                through: Some("k4".into())
            }
        );
        assert_eq!(
            plan.range(1),
            KeyRange {
                after: Some("k4".into()),
                through: None
            }
        );
        assert!(plan.range(1).contains("zzz") && plan.range(0).contains("!"));
        assert!(plan.range(0).is_past("k5"));
    }
}
