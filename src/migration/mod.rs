//! Lazy migration: a bucket served by its new provider that falls back to its old provider on
//! a definite miss, with deletes, listings and copies that stay correct while both hold data.
//!
//! - [`policy`]    when a read may fall back (a pure table)
//! - [`tombstone`] deletes remembered in the new provider, so the old copy never comes back
//! - [`copy`]      one object old -> new, verified and written conditionally; the copy-on-read queue
//! - [`serve`]     the gateway's migration-aware handling of reads, deletes, copies and writes
//! - [`listing`]   merged, paginated listings of both providers
//! - [`bulk`]      the `migrate` and `check` commands

pub mod bulk;
pub mod copy;
pub mod listing;
pub mod policy;
pub mod serve;
pub mod tombstone;

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of what lazy migration did since start-up (also logged per event).
#[derive(Debug, Default)]
pub struct MigrationStats {
    pub new_hits: AtomicU64,
    pub fallbacks: AtomicU64,
    pub copies_done: AtomicU64,
    pub copies_failed: AtomicU64,
    pub copies_skipped: AtomicU64,
    pub copy_bytes: AtomicU64,
    pub tombstones: AtomicU64,
}

impl MigrationStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
