//! A copy on read held open (the old provider is slow to send the object) while clients write
//! and delete the same key: the client's write or delete always wins, on every kind of new
//! provider (s3s-fs speaking the `aws` dialect, the embedded `local` provider, and a provider
//! without conditional writes).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use s3ferry::config::Config;
use s3ferry::migration::MigrationStats;
use s3ferry::server::RunningGateway;

use crate::migration::wait_for;
use crate::support::{
    CLIENT_KEY, CLIENT_SECRET, TestUpstream, UPSTREAM_KEY, UPSTREAM_SECRET, config_preamble, error_code,
    gateway_client, s3_provider_table,
};

/// What the new provider of the migrating buckets is.
#[derive(Debug, Clone, Copy)]
enum NewKind {
    /// s3s-fs with the default (`aws`) dialect: `If-None-Match: *` is sent with every copy.
    S3sFsAws,
    /// The embedded `kind = "local"` provider.
    Local,
    /// s3s-fs declared as having no conditional write at all (as the wasabi and garage profiles).
    NoConditionalWrites,
}

/// `race` copies on read; `race-purge` also deletes at the old provider. Both old buckets
/// stay writable, so `delete_from_fallback` really deletes there.
struct Racing {
    gateway: Option<RunningGateway>,
    old: TestUpstream,
    new: Option<TestUpstream>,
    _local_root: Option<tempfile::TempDir>,
}

const BUCKETS: &[&str] = &["race", "race-purge"];

impl Racing {
    async fn start(kind: NewKind) -> Self {
        let old = TestUpstream::path_style().await;
        for b in BUCKETS {
            old.create_bucket(b);
        }
        let (new, local_root, new_provider) = match kind {
            NewKind::Local => {
                let root = tempfile::tempdir().expect("temp dir");
                let text = format!("kind = \"local\"\nroot = \"{}\"\n", root.path().display());
                (None, Some(root), text)
            }
            NewKind::S3sFsAws | NewKind::NoConditionalWrites => {
                let new = TestUpstream::path_style().await;
                for b in BUCKETS {
                    new.create_bucket(b);
                }
                let mut text = format!(
                    "endpoint = \"{}\"\naccess_key_id = \"{UPSTREAM_KEY}\"\nsecret_access_key = \"{UPSTREAM_SECRET}\"\nread_timeout_secs = 20\n",
                    new.endpoint()
                );
                if matches!(kind, NewKind::NoConditionalWrites) {
                    text.push_str("[providers.new.dialect_overrides]\nconditional_writes = \"none\"\n");
                }
                (Some(new), None, text)
            }
        };
        let toml = format!(
            r#"{preamble}
[[buckets]]
name = "race"
provider = "new"
fallback = "old"
copy_on_read = true
[[buckets]]
name = "race-purge"
provider = "new"
fallback = "old"
copy_on_read = true
delete_from_fallback = true
[migration]
copy_workers = 2
copy_retries = 0
{old}read_timeout_secs = 20
[providers.new]
{new_provider}
"#,
            preamble = config_preamble(),
            old = s3_provider_table("old", &old.endpoint()),
        );
        let config = Config::parse(&toml, "races.toml", Path::new("."), &|_| None).expect("config");
        let gateway = s3ferry::server::start(&config).await.expect("gateway");
        Self {
            gateway: Some(gateway),
            old,
            new,
            _local_root: local_root,
        }
    }

    fn client(&self) -> aws_sdk_s3::Client {
        gateway_client(self.gateway.as_ref().expect("running").addr())
    }

    fn stats(&self) -> &MigrationStats {
        self.gateway.as_ref().expect("running").migration_stats()
    }

    /// Copies that ended, whatever their outcome.
    fn copies_ended(&self) -> u64 {
        let s = self.stats();
        MigrationStats::get(&s.copies_done)
            + MigrationStats::get(&s.copies_failed)
            + MigrationStats::get(&s.copies_skipped)
    }

    async fn seed_old(&self, bucket: &str, key: &str, body: &[u8]) {
        self.old
            .direct_client()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .expect("seed old");
    }

    /// A ranged read through the gateway falls back and schedules a copy of the whole object,
    /// whose read of the old provider is then held open. Returns the copies ended before.
    async fn open_copy(&self, bucket: &str, key: &str) -> u64 {
        let ended = self.copies_ended();
        let held = self.old.quirks.full_gets_held.load(Ordering::SeqCst);
        self.old.quirks.hold_full_gets();
        let first = self
            .client()
            .get_object()
            .bucket(bucket)
            .key(key)
            .range("bytes=0-0")
            .send()
            .await
            .expect("ranged read falls back");
        assert_eq!(first.content_length(), Some(1));
        wait_for("the copy on read to be reading the old provider", || {
            self.old.quirks.full_gets_held.load(Ordering::SeqCst) > held
        })
        .await;
        ended
    }

    /// Lets the held copy go on, and waits for it to end (it may have ended already).
    async fn finish_copy(&self, ended_before: u64) {
        self.old.quirks.release_full_gets();
        wait_for("the copy on read to end", || self.copies_ended() > ended_before).await;
    }

    async fn put(&self, bucket: &str, key: &str, body: &'static [u8]) {
        let put = self
            .client()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from_static(body));
        tokio::time::timeout(Duration::from_secs(20), put.send())
            .await
            .expect("the PUT ends")
            .expect("PUT during the copy");
    }

    async fn delete(&self, bucket: &str, key: &str) {
        let delete = self.client().delete_object().bucket(bucket).key(key);
        tokio::time::timeout(Duration::from_secs(20), delete.send())
            .await
            .expect("the DELETE ends")
            .expect("DELETE during the copy");
    }

    async fn read(&self, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
        match self.client().get_object().bucket(bucket).key(key).send().await {
            Ok(out) => Ok(out.body.collect().await.expect("body").into_bytes().to_vec()),
            Err(e) => Err(error_code(&e)),
        }
    }

    async fn stop(mut self) {
        self.old.quirks.release_full_gets();
        if let Some(g) = self.gateway.take() {
            g.shutdown(Duration::from_secs(5)).await;
        }
    }
}

const OLD_CONTENT: &[u8] = b"the old provider's content, copied on read";

/// A PUT made while the copy of the same key is open survives the copy.
async fn put_during_copy_survives(m: &Racing) {
    m.seed_old("race", "put-during-copy", OLD_CONTENT).await;
    let ended = m.open_copy("race", "put-during-copy").await;
    m.put("race", "put-during-copy", b"the client's write").await;
    m.finish_copy(ended).await;
    assert_eq!(
        m.read("race", "put-during-copy").await.as_deref(),
        Ok(&b"the client's write"[..]),
        "the copy on read replaced a client's newer write"
    );
}

/// A DELETE made while the copy is open stays a delete (tombstone, or deleted at the old
/// provider too with `delete_from_fallback`).
async fn delete_during_copy_stays_deleted(m: &Racing, bucket: &str) {
    m.seed_old(bucket, "delete-during-copy", OLD_CONTENT).await;
    let ended = m.open_copy(bucket, "delete-during-copy").await;
    m.delete(bucket, "delete-during-copy").await;
    m.finish_copy(ended).await;
    assert_eq!(
        m.read(bucket, "delete-during-copy").await,
        Err("NoSuchKey".to_string()),
        "the copy on read brought a deleted key back ({bucket})"
    );
}

/// A DELETE and then a PUT while the copy is open: the PUT is what stays.
async fn delete_then_put_during_copy_keeps_the_put(m: &Racing) {
    m.seed_old("race", "delete-then-put", OLD_CONTENT).await;
    let ended = m.open_copy("race", "delete-then-put").await;
    m.delete("race", "delete-then-put").await;
    m.put("race", "delete-then-put", b"written after the delete").await;
    m.finish_copy(ended).await;
    assert_eq!(
        m.read("race", "delete-then-put").await.as_deref(),
        Ok(&b"written after the delete"[..]),
        "the copy on read (or its tombstone re-check) undid a write made after a delete"
    );
    // A later delete and read still agree: the key is gone.
    m.delete("race", "delete-then-put").await;
    assert_eq!(m.read("race", "delete-then-put").await, Err("NoSuchKey".to_string()));
}

/// One test per (new provider kind, race), each on its own gateway.
macro_rules! race_tests {
    ($($kind:ident => $put:ident, $delete:ident, $purge:ident, $delete_put:ident;)*) => {$(
        #[tokio::test]
        async fn $put() {
            let m = Racing::start(NewKind::$kind).await;
            put_during_copy_survives(&m).await;
            m.stop().await;
        }

        #[tokio::test]
        async fn $delete() {
            let m = Racing::start(NewKind::$kind).await;
            delete_during_copy_stays_deleted(&m, "race").await;
            m.stop().await;
        }

        #[tokio::test]
        async fn $purge() {
            let m = Racing::start(NewKind::$kind).await;
            delete_during_copy_stays_deleted(&m, "race-purge").await;
            m.stop().await;
        }

        #[tokio::test]
        async fn $delete_put() {
            let m = Racing::start(NewKind::$kind).await;
            delete_then_put_during_copy_keeps_the_put(&m).await;
            m.stop().await;
        }
    )*};
}

race_tests! {
    S3sFsAws => put_during_copy_survives_on_s3s_fs_aws,
        delete_during_copy_stays_deleted_on_s3s_fs_aws,
        delete_from_fallback_during_copy_stays_deleted_on_s3s_fs_aws,
        delete_then_put_during_copy_keeps_the_put_on_s3s_fs_aws;
    Local => put_during_copy_survives_on_local,
        delete_during_copy_stays_deleted_on_local,
        delete_from_fallback_during_copy_stays_deleted_on_local,
        delete_then_put_during_copy_keeps_the_put_on_local;
    NoConditionalWrites => put_during_copy_survives_without_conditional_writes,
        delete_during_copy_stays_deleted_without_conditional_writes,
        delete_from_fallback_during_copy_stays_deleted_without_conditional_writes,
        delete_then_put_during_copy_keeps_the_put_without_conditional_writes;
}

/// An uncopied key that was deleted and written again reads as the new write, and its old
/// copy never comes back after a second delete: the write cleared the tombstone, the second
/// delete left a new one.
#[tokio::test]
async fn a_write_after_a_delete_clears_the_tombstone() {
    let m = Racing::start(NewKind::S3sFsAws).await;
    m.seed_old("race", "rewritten", OLD_CONTENT).await;
    m.delete("race", "rewritten").await;
    assert_eq!(m.read("race", "rewritten").await, Err("NoSuchKey".to_string()));
    m.put("race", "rewritten", b"again").await;
    let new = m.new.as_ref().expect("s3s-fs new provider");
    assert!(
        !new.has_object("race", &s3ferry::migration::tombstone::tombstone_key("rewritten"))
            .await,
        "a successful write clears the key's tombstone"
    );
    assert_eq!(m.read("race", "rewritten").await.as_deref(), Ok(&b"again"[..]));
    m.delete("race", "rewritten").await;
    assert_eq!(m.read("race", "rewritten").await, Err("NoSuchKey".to_string()));
    m.stop().await;
}

/// A route that copies on read into a provider without conditional writes is named in a
/// warning at start-up (what the guarantee is, and what to do); one with them is not.
#[tokio::test]
async fn copy_on_read_into_a_provider_without_conditional_writes_is_warned_at_start_up() {
    use crate::support::binary::{GatewayProcess, write_config};
    let up = TestUpstream::path_style().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let provider = |name: &str, conditional: &str| {
        format!(
            "[providers.{name}]\nendpoint = \"{}\"\naccess_key_id = \"{UPSTREAM_KEY}\"\nsecret_access_key = \"{UPSTREAM_SECRET}\"\n\
             [providers.{name}.dialect_overrides]\nconditional_writes = \"{conditional}\"\n",
            up.endpoint()
        )
    };
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[[credentials]]
access_key_id = "{CLIENT_KEY}"
secret_access_key = "{CLIENT_SECRET}"
grants = "all"
[[buckets]]
name = "unguarded"
provider = "plain"
fallback = "old"
copy_on_read = true
[[buckets]]
name = "guarded"
provider = "atomic"
fallback = "old"
copy_on_read = true
{}{}{}"#,
        provider("plain", "none"),
        provider("atomic", "aws"),
        provider("old", "aws"),
    );
    let mut gw = GatewayProcess::start(&write_config(dir.path(), &toml)).await;
    let warning = gw
        .wait_for(0, "the warning about copies without conditional writes", |e| {
            e["level"] == "WARN"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("provider without conditional writes"))
        })
        .await;
    assert_eq!(warning["bucket"], "unguarded", "{warning}");
    let warned_buckets: Vec<String> = gw
        .lines()
        .iter()
        .filter(|line| line.contains("provider without conditional writes"))
        .map(|line| line.to_string())
        .collect();
    assert_eq!(warned_buckets.len(), 1, "only the unguarded route: {warned_buckets:?}");
    gw.signal("TERM");
    gw.wait_exit().await;
}

/// A copy whose whole body went (the new provider has written it and its answer is on the
/// way) cannot be stopped any more: a DELETE of the key waits for the copy to end, then
/// deletes what it wrote.
#[tokio::test]
async fn a_delete_waits_for_a_copy_that_already_committed_then_wins() {
    let m = Racing::start(NewKind::S3sFsAws).await;
    let new = m.new.as_ref().expect("s3s-fs new provider");
    m.seed_old("race-purge", "committed", OLD_CONTENT).await;
    new.quirks.hold_put_answers();
    let ended = m.copies_ended();
    let probe = m
        .client()
        .get_object()
        .bucket("race-purge")
        .key("committed")
        .range("bytes=0-0")
        .send()
        .await
        .expect("ranged read falls back");
    assert_eq!(probe.content_length(), Some(1));
    wait_for("the copy's PUT to be written and its answer held", || {
        new.quirks.put_answers_held.load(Ordering::SeqCst) > 0
    })
    .await;
    let client = m.client();
    let mut delete = tokio::spawn(async move {
        client
            .delete_object()
            .bucket("race-purge")
            .key("committed")
            .send()
            .await
    });
    // Bounded, and only ever long enough: a DELETE that overtook the copy would be done.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut delete)
            .await
            .is_err(),
        "the DELETE waits while the committed copy has no answer"
    );
    new.quirks.release_put_answers();
    tokio::time::timeout(Duration::from_secs(20), delete)
        .await
        .expect("the DELETE ends")
        .expect("task")
        .expect("DELETE after the copy");
    wait_for("the copy to end", || m.copies_ended() > ended).await;
    assert_eq!(
        MigrationStats::get(&m.stats().copies_done),
        1,
        "the committed copy was not stopped"
    );
    assert_eq!(m.read("race-purge", "committed").await, Err("NoSuchKey".to_string()));
    assert!(!new.has_object("race-purge", "committed").await);
    m.stop().await;
}

/// Two clients racing on one key: a PUT whose answer is slow, and a DELETE sent meanwhile.
/// Had the DELETE gone ahead, its tombstone would be written, then cleared by the PUT's
/// success, and then the DELETE would land: no object, no tombstone, and the old provider's
/// copy back. Client writes and deletes of one key take turns, so the DELETE starts only once
/// the PUT is answered, and the key stays deleted.
#[tokio::test]
async fn a_delete_racing_a_put_of_the_same_key_never_lets_the_old_copy_back() {
    let m = Racing::start(NewKind::S3sFsAws).await;
    let new = m.new.as_ref().expect("s3s-fs new provider");
    m.seed_old("race", "raced", OLD_CONTENT).await;
    new.quirks.hold_put_answers();
    let writer = m.client();
    let put = tokio::spawn(async move {
        writer
            .put_object()
            .bucket("race")
            .key("raced")
            .body(ByteStream::from_static(b"client one"))
            .send()
            .await
    });
    wait_for("the client's PUT to be written and its answer held", || {
        new.quirks.put_answers_held.load(Ordering::SeqCst) >= 1
    })
    .await;
    let deleter = m.client();
    let delete = tokio::spawn(async move { deleter.delete_object().bucket("race").key("raced").send().await });
    // Long enough for a DELETE that does not wait its turn to write its tombstone (whose
    // answer the gate then holds too).
    tokio::time::sleep(Duration::from_millis(500)).await;
    new.quirks.release_one_put_answer();
    tokio::time::timeout(Duration::from_secs(20), put)
        .await
        .expect("the PUT ends")
        .expect("task")
        .expect("PUT");
    new.quirks.release_put_answers();
    tokio::time::timeout(Duration::from_secs(20), delete)
        .await
        .expect("the DELETE ends")
        .expect("task")
        .expect("DELETE");
    assert_eq!(
        m.read("race", "raced").await,
        Err("NoSuchKey".to_string()),
        "the DELETE came last: neither the PUT's data nor the old copy may be served"
    );
    m.stop().await;
}
