//! Lazy migration: a bucket served by its new provider that falls back to its old provider on
//! a definite miss, with deletes, listings and copies that stay correct while both hold data.
//!
//! - [`policy`]    when a read may fall back (a pure table)
//! - [`tombstone`] deletes remembered in the new provider, so the old copy never comes back
//! - [`claim`]     client writes and deletes of a key against background copies of it
//! - [`copy`]      one object old -> new, verified and written conditionally; the copy-on-read queue
//! - [`multipart_copy`] copies above `multipart_copy_threshold`, in parts
//! - [`provider_copy`] copies the provider makes itself (CopyObject), where it holds both buckets
//! - [`serve`]     the gateway's migration-aware handling of reads, deletes, copies and writes
//! - [`listing`]   merged, paginated listings of both providers
//! - [`bulk`]      the `migrate` and `check` commands
//! - [`shard`]     `--shard I/N`: the key space cut into contiguous ranges, one per process
//! - [`status`]    cut-over readiness: status records, and a bucket's status with rate and ETA (pure)
//! - [`status_store`] the status records in the new provider's bucket

pub mod bulk;
pub mod claim;
pub mod copy;
pub mod copy_task;
pub mod listing;
pub mod multipart_copy;
pub mod pages;
pub mod policy;
pub mod provider_copy;
pub mod serve;
pub mod shard;
pub mod status;
pub mod status_store;
pub mod tombstone;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::metrics::Metrics;
use status::{CopyFailure, OnReadCopies};

/// Counters of what lazy migration did since start-up: kept here (for tests and the process
/// itself) and reported to the Prometheus metrics, labelled by the client's bucket.
#[derive(Debug, Default)]
pub struct MigrationStats {
    pub new_hits: AtomicU64,
    pub fallbacks: AtomicU64,
    pub copies_done: AtomicU64,
    pub copies_failed: AtomicU64,
    pub copies_skipped: AtomicU64,
    /// Of the skipped copies, those that found the key already in the new provider: with
    /// several replicas, each may copy a key on read, and all but one end here.
    pub copies_already_in_new: AtomicU64,
    pub copy_bytes: AtomicU64,
    pub tombstones: AtomicU64,
    /// Copies on read by client bucket, with the newest failures and their reasons, for
    /// `/migration` (bounded: the buckets are the routed ones, the failures capped).
    on_read: Mutex<BTreeMap<String, OnReadCopies>>,
    metrics: Option<Arc<Metrics>>,
}

/// How a copy ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyResult {
    Done,
    Failed,
    Skipped,
}

impl MigrationStats {
    /// Counters that also feed `metrics`.
    pub fn with_metrics(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics: Some(metrics),
            ..Self::default()
        }
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub fn new_hit(&self, bucket: &str) {
        self.new_hits.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.migration_new_hit(bucket);
        }
    }

    pub fn fallback(&self, bucket: &str) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.migration_fallback(bucket);
        }
    }

    pub fn tombstone(&self, bucket: &str) {
        self.tombstones.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.migration_tombstone(bucket);
        }
    }

    /// A copy that found its key already in the new provider (counted as skipped too).
    pub fn copy_already_in_new(&self, bucket: &str) {
        self.copy(bucket, CopyResult::Skipped, 0);
        self.copies_already_in_new.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.migration_copy_already_in_new(bucket);
        }
    }

    /// A copy on read that failed for good, with the key and why: shown on `/migration`.
    pub fn copy_failed(&self, bucket: &str, key: &str, reason: &str) {
        self.copy(bucket, CopyResult::Failed, 0);
        self.with_on_read(bucket, |counts| {
            counts.failed(CopyFailure {
                key: key.to_string(),
                reason: reason.to_string(),
                at_ms: status::now_ms(),
            });
        });
    }

    /// What copies on read did in `bucket` since start-up.
    pub fn on_read(&self, bucket: &str) -> OnReadCopies {
        let map = self.on_read.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(bucket).cloned().unwrap_or_default()
    }

    fn with_on_read(&self, bucket: &str, change: impl FnOnce(&mut OnReadCopies)) {
        // A panic elsewhere while holding the lock leaves whole counts behind: keep counting.
        let mut map = self.on_read.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        change(map.entry(bucket.to_string()).or_default());
    }

    pub fn copy(&self, bucket: &str, result: CopyResult, bytes: u64) {
        let (counter, outcome) = match result {
            CopyResult::Done => (&self.copies_done, "done"),
            CopyResult::Failed => (&self.copies_failed, "failed"),
            CopyResult::Skipped => (&self.copies_skipped, "skipped"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if result == CopyResult::Done {
            self.copy_bytes.fetch_add(bytes, Ordering::Relaxed);
            self.with_on_read(bucket, |counts| counts.copied(bytes));
        }
        if let Some(m) = &self.metrics {
            m.migration_copy(bucket, outcome, bytes);
        }
    }
}
