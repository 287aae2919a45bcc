//! Lazy migration through the gateway: two real s3s-fs upstreams (the new provider, and the old
//! one behind a read-only key), moto where conditional reads must be honoured, and the real
//! aws-sdk-s3 client.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier, Tag, Tagging};
use futures::StreamExt as _;
use s3ferry::config::Config;
use s3ferry::migration::MigrationStats;
use s3ferry::migration::bulk::{self, CopyLimits, MigrateOptions, Progress};
use s3ferry::migration::copy_task::PartSizes;
use s3ferry::route::RouteTable;
use s3ferry::server::RunningGateway;

use crate::support::moto::Moto;
use crate::support::{
    CLIENT_KEY, CLIENT_SECRET, TestUpstream, UPSTREAM_KEY, UPSTREAM_SECRET, error_code, error_status, list_keys_v1,
    pattern, put_objects, sdk_client,
};

/// New and old provider, routes under migration, the gateway.
///
/// `media` -> new:`media-new`, falls back to old:`source-of-files`, copy on read.
/// `lazy`  -> new:`lazy`, falls back to old:`lazy`, no copy on read.
/// `purge` -> new:`purge`, falls back to old:`purge`, deletes also delete in old.
pub(crate) struct Migrating {
    gateway: Option<RunningGateway>,
    pub(crate) new: TestUpstream,
    pub(crate) old: TestUpstream,
    pub(crate) config: Config,
}

const BUCKETS_NEW: &[&str] = &["media-new", "lazy", "purge"];
const BUCKETS_OLD: &[&str] = &["source-of-files", "lazy", "purge"];

fn config_for(new: &str, old: &str) -> Config {
    Config::parse(&config_text(new, old), "migration.toml", Path::new("."), &|_| None).expect("config")
}

pub(crate) fn config_text(new: &str, old: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[[credentials]]
access_key_id = "{CLIENT_KEY}"
secret_access_key = "{CLIENT_SECRET}"
grants = "all"
[providers.new]
endpoint = "{new}"
access_key_id = "{UPSTREAM_KEY}"
secret_access_key = "{UPSTREAM_SECRET}"
read_timeout_secs = 20
[providers.old]
endpoint = "{old}"
access_key_id = "{UPSTREAM_KEY}"
secret_access_key = "{UPSTREAM_SECRET}"
read_timeout_secs = 20
[[buckets]]
name = "media"
provider = "new"
upstream_bucket = "media-new"
fallback = "old"
fallback_bucket = "source-of-files"
copy_on_read = true
[[buckets]]
name = "lazy"
provider = "new"
fallback = "old"
[[buckets]]
name = "purge"
provider = "new"
fallback = "old"
delete_from_fallback = true
[migration]
copy_workers = 2
copy_queue = 64
copy_retries = 1
"#
    )
}

impl Migrating {
    pub(crate) async fn start() -> Self {
        let new = TestUpstream::path_style().await;
        let old = TestUpstream::path_style().await;
        for b in BUCKETS_NEW {
            new.create_bucket(b);
        }
        for b in BUCKETS_OLD {
            old.create_bucket(b);
        }
        let config = config_for(&new.endpoint(), &old.endpoint());
        let gateway = s3ferry::server::start(&config).await.expect("gateway");
        Self {
            gateway: Some(gateway),
            new,
            old,
            config,
        }
    }

    pub(crate) fn gateway(&self) -> &RunningGateway {
        self.gateway.as_ref().expect("running")
    }

    pub(crate) fn client(&self) -> aws_sdk_s3::Client {
        sdk_client(
            &format!("http://127.0.0.1:{}", self.gateway().addr().port()),
            CLIENT_KEY,
            CLIENT_SECRET,
            true,
        )
    }

    pub(crate) fn stats(&self) -> &MigrationStats {
        self.gateway().migration_stats()
    }

    /// Puts objects straight into the old provider, then makes its key read-only.
    pub(crate) async fn seed_old(&self, bucket: &str, objects: &[(&str, &[u8])]) {
        let direct = self.old.direct_client();
        for (key, body) in objects {
            direct
                .put_object()
                .bucket(bucket)
                .key(*key)
                .body(ByteStream::from(body.to_vec()))
                .send()
                .await
                .expect("seed old");
        }
        self.old.quirks.read_only.store(true, Ordering::Relaxed);
    }

    pub(crate) async fn stop(mut self) {
        if let Some(g) = self.gateway.take() {
            g.shutdown(Duration::from_secs(5)).await;
        }
    }
}

pub(crate) async fn read(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    match client.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => Ok(out.body.collect().await.expect("body").into_bytes().to_vec()),
        Err(e) => Err(error_code(&e)),
    }
}

/// A client's work through the gateway before a bulk run: `newer` gets the body `newer`, and
/// `deleted` is deleted (tombstoned).
pub(crate) async fn rewrite_and_delete(client: &aws_sdk_s3::Client, bucket: &str, newer: &str, deleted: &str) {
    client
        .put_object()
        .bucket(bucket)
        .key(newer)
        .body(ByteStream::from_static(b"newer"))
        .send()
        .await
        .expect("newer write");
    client
        .delete_object()
        .bucket(bucket)
        .key(deleted)
        .send()
        .await
        .expect("delete");
}

/// Waits (bounded) for the background copier to reach a state.
pub(crate) async fn wait_for(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out after 10 s waiting for: {what}");
}

#[tokio::test]
async fn get_missing_on_new_is_served_from_old_with_head_and_range() {
    let m = Migrating::start().await;
    let data = pattern(10_000, 1);
    m.seed_old("lazy", &[("only-old.bin", &data)]).await;
    let c = m.client();
    assert_eq!(read(&c, "lazy", "only-old.bin").await.expect("fallback GET"), data);
    let head = c
        .head_object()
        .bucket("lazy")
        .key("only-old.bin")
        .send()
        .await
        .expect("fallback HEAD");
    assert_eq!(head.content_length(), Some(10_000));
    let range = c
        .get_object()
        .bucket("lazy")
        .key("only-old.bin")
        .range("bytes=100-199")
        .send()
        .await
        .expect("range");
    assert_eq!(
        range.body.collect().await.expect("body").into_bytes().as_ref(),
        &data[100..200]
    );
    assert_eq!(read(&c, "lazy", "nowhere").await, Err("NoSuchKey".to_string()));
    // Objects in the new provider are served from there (and counted as hits).
    c.put_object()
        .bucket("lazy")
        .key("fresh")
        .body(ByteStream::from_static(b"new"))
        .send()
        .await
        .expect("put");
    assert_eq!(read(&c, "lazy", "fresh").await.expect("hit"), b"new");
    assert!(m.new.has_object("lazy", "fresh").await && !m.old.has_object("lazy", "fresh").await);
    assert!(MigrationStats::get(&m.stats().fallbacks) >= 3);
    assert!(MigrationStats::get(&m.stats().new_hits) >= 1);
    // No copy on read for this bucket.
    assert!(!m.new.has_object("lazy", "only-old.bin").await);
    // The same numbers reach /metrics, by the client's bucket.
    let text = m.gateway().metrics().render().expect("metrics");
    let fallbacks = MigrationStats::get(&m.stats().fallbacks);
    assert!(
        text.contains(&format!(
            "s3ferry_migration_fallbacks_total{{bucket=\"lazy\"}} {fallbacks}"
        )),
        "{text}"
    );
    assert!(
        text.contains("s3ferry_migration_new_hits_total{bucket=\"lazy\"} 1"),
        "{text}"
    );
    m.stop().await;
}

/// Every request s3ferry sends passes one exchange, so a bucket under migration shows all of
/// its traffic in the upstream metrics: the new provider's miss, the old provider's answer and
/// the copy on read, not only the client's own forwarded requests.
#[tokio::test]
async fn fallback_reads_and_copies_are_counted_as_upstream_traffic() {
    use crate::sidecar::metric;
    let m = Migrating::start().await;
    let data = pattern(5_000, 7);
    m.seed_old("source-of-files", &[("counted.bin", &data)]).await;
    let c = m.client();
    assert_eq!(read(&c, "media", "counted.bin").await.expect("fallback GET"), data);
    wait_for("the copy on read", || MigrationStats::get(&m.stats().copies_done) == 1).await;
    let text = m.gateway().metrics().render().expect("metrics");
    let count = |provider: &str| {
        metric(
            &text,
            "s3ferry_upstream_duration_seconds_count",
            &[("provider", provider)],
        )
        .unwrap_or(0.0)
    };
    // The old provider answered the fallback GET and the copy's reads of the source.
    assert!(count("old") >= 2.0, "old: {}\n{text}", count("old"));
    // The new provider answered the miss, the tombstone check and the copy's writes.
    assert!(count("new") >= 3.0, "new: {}\n{text}", count("new"));
    m.stop().await;
}

#[tokio::test]
async fn copy_on_read_copies_once_with_metadata_and_verifies_it() {
    let m = Migrating::start().await;
    let direct = m.old.direct_client();
    let data = pattern(70_000, 2);
    direct
        .put_object()
        .bucket("source-of-files")
        .key("photo.jpg")
        .body(ByteStream::from(data.clone()))
        .content_type("image/jpeg")
        .cache_control("max-age=3600")
        .content_disposition("inline")
        .metadata("camera", "x100")
        .send()
        .await
        .expect("seed");
    m.old.quirks.read_only.store(true, Ordering::Relaxed);

    let c = m.client();
    // Concurrent misses: many readers, one copy.
    let reads: Vec<_> = futures::stream::iter(0..12)
        .map(|_| {
            let c = c.clone();
            async move { read(&c, "media", "photo.jpg").await }
        })
        .buffer_unordered(12)
        .collect()
        .await;
    assert!(
        reads.iter().all(|r| r.as_deref() == Ok(data.as_slice())),
        "every reader got the object"
    );
    wait_for("one copy done", || MigrationStats::get(&m.stats().copies_done) == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // let any duplicate copy show itself
    assert_eq!(
        MigrationStats::get(&m.stats().copies_done),
        1,
        "concurrent misses copy once"
    );
    assert_eq!(MigrationStats::get(&m.stats().copy_bytes), 70_000);
    let text = m.gateway().metrics().render().expect("metrics");
    assert!(
        text.contains("s3ferry_migration_copies_total{bucket=\"media\",outcome=\"done\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("s3ferry_migration_copy_bytes_total{bucket=\"media\"} 70000"),
        "{text}"
    );

    let copy = m
        .new
        .direct_client()
        .head_object()
        .bucket("media-new")
        .key("photo.jpg")
        .send()
        .await
        .expect("copied");
    assert_eq!(copy.content_type(), Some("image/jpeg"));
    assert_eq!(copy.cache_control(), Some("max-age=3600"));
    assert_eq!(copy.content_disposition(), Some("inline"));
    assert_eq!(
        copy.metadata().and_then(|m| m.get("camera")).map(String::as_str),
        Some("x100")
    );
    let original = direct
        .head_object()
        .bucket("source-of-files")
        .key("photo.jpg")
        .send()
        .await
        .expect("source");
    assert_eq!(copy.e_tag(), original.e_tag(), "the verified copy has the source's MD5");
    // Later reads hit the new provider.
    let before = MigrationStats::get(&m.stats().fallbacks);
    assert_eq!(read(&c, "media", "photo.jpg").await.expect("hit"), data);
    assert_eq!(MigrationStats::get(&m.stats().fallbacks), before);
    m.stop().await;
}

#[tokio::test]
async fn range_get_on_the_fallback_path_schedules_a_whole_object_copy() {
    let m = Migrating::start().await;
    let data = pattern(50_000, 3);
    m.seed_old("source-of-files", &[("ranged", &data)]).await;
    let c = m.client();
    let part = c
        .get_object()
        .bucket("media")
        .key("ranged")
        .range("bytes=0-9")
        .send()
        .await
        .expect("range");
    assert_eq!(
        part.body.collect().await.expect("body").into_bytes().as_ref(),
        &data[..10]
    );
    wait_for("the whole object copied", || {
        MigrationStats::get(&m.stats().copies_done) == 1
    })
    .await;
    let got = m
        .new
        .direct_client()
        .get_object()
        .bucket("media-new")
        .key("ranged")
        .send()
        .await
        .expect("copy");
    assert_eq!(
        got.body.collect().await.expect("body").into_bytes().as_ref(),
        data.as_slice()
    );
    m.stop().await;
}

#[tokio::test]
async fn deleted_key_is_not_resurrected_from_old_and_read_only_old_key_is_enough() {
    let m = Migrating::start().await;
    m.seed_old(
        "lazy",
        &[
            ("gone", b"old data"),
            ("batch/1", b"1"),
            ("batch/2", b"2"),
            ("keep", b"k"),
        ],
    )
    .await;
    let c = m.client();
    assert_eq!(
        read(&c, "lazy", "gone").await.expect("visible before delete"),
        b"old data"
    );
    c.delete_object()
        .bucket("lazy")
        .key("gone")
        .send()
        .await
        .expect("delete with a read-only old key");
    assert_eq!(read(&c, "lazy", "gone").await, Err("NoSuchKey".to_string()));
    let err = c
        .head_object()
        .bucket("lazy")
        .key("gone")
        .send()
        .await
        .expect_err("HEAD after delete");
    assert_eq!(error_status(&err), 404);
    assert!(
        m.old.has_object("lazy", "gone").await,
        "the read-only old provider still holds it"
    );

    let ids = ["batch/1", "batch/2"].map(|k| ObjectIdentifier::builder().key(k).build().expect("id"));
    c.delete_objects()
        .bucket("lazy")
        .delete(
            Delete::builder()
                .set_objects(Some(ids.to_vec()))
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .expect("delete objects");
    for key in ["batch/1", "batch/2"] {
        assert_eq!(read(&c, "lazy", key).await, Err("NoSuchKey".to_string()), "{key}");
    }
    let listed = c.list_objects_v2().bucket("lazy").send().await.expect("list");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, vec!["keep"], "deleted keys and tombstones are not listed");
    assert_eq!(MigrationStats::get(&m.stats().tombstones), 3);

    // Writing a deleted key again makes it visible again (from the new provider).
    c.put_object()
        .bucket("lazy")
        .key("gone")
        .body(ByteStream::from_static(b"again"))
        .send()
        .await
        .expect("put");
    assert_eq!(read(&c, "lazy", "gone").await.expect("rewritten"), b"again");
    m.stop().await;
}

#[tokio::test]
async fn delete_from_fallback_deletes_in_the_old_provider_too() {
    let m = Migrating::start().await;
    m.old
        .direct_client()
        .put_object()
        .bucket("purge")
        .key("p")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("seed");
    let c = m.client();
    c.delete_object().bucket("purge").key("p").send().await.expect("delete");
    assert!(!m.old.has_object("purge", "p").await, "deleted at the old provider");
    assert_eq!(read(&c, "purge", "p").await, Err("NoSuchKey".to_string()));
    m.stop().await;
}

#[tokio::test]
async fn reserved_prefix_is_hidden_and_refused() {
    let m = Migrating::start().await;
    m.seed_old("lazy", &[("x", b"1")]).await;
    let c = m.client();
    c.delete_object()
        .bucket("lazy")
        .key("x")
        .send()
        .await
        .expect("delete leaves a tombstone");
    let err = c
        .get_object()
        .bucket("lazy")
        .key(".s3ferry/tombstones/x")
        .send()
        .await
        .expect_err("reserved");
    assert_eq!((error_status(&err), error_code(&err).as_str()), (403, "AccessDenied"));
    let listed = c
        .list_objects_v2()
        .bucket("lazy")
        .delimiter("/")
        .send()
        .await
        .expect("list");
    assert!(
        listed.contents().is_empty() && listed.common_prefixes().is_empty(),
        "{listed:?}"
    );
    m.stop().await;
}

#[tokio::test]
async fn errors_of_either_provider_are_errors_not_misses() {
    let m = Migrating::start().await;
    m.seed_old("lazy", &[("k", b"old")]).await;
    let c = m.client();
    let config = c
        .config()
        .to_builder()
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    let c = aws_sdk_s3::Client::from_conf(config);
    // The new provider failing is not a miss: the old copy must not be served instead.
    m.new.quirks.fail_reads_with.store(503, Ordering::Relaxed);
    let err = c
        .get_object()
        .bucket("lazy")
        .key("k")
        .send()
        .await
        .expect_err("new provider down");
    assert_eq!(error_status(&err), 503);
    m.new.quirks.fail_reads_with.store(0, Ordering::Relaxed);
    // old_provider_5xx_is_an_error_not_a_miss: a failing old provider is reported as such.
    m.old.quirks.fail_reads_with.store(500, Ordering::Relaxed);
    let err = c
        .get_object()
        .bucket("lazy")
        .key("k")
        .send()
        .await
        .expect_err("old provider down");
    assert_eq!(error_status(&err), 500);
    m.old.quirks.fail_reads_with.store(0, Ordering::Relaxed);
    assert_eq!(read(&c, "lazy", "k").await.expect("recovered"), b"old");
    m.stop().await;
}

#[tokio::test]
async fn listing_merges_both_providers_across_pages() {
    let m = Migrating::start().await;
    // 6,000 keys in the old provider, 4,000 in the new one, 1,000 of them in both (the new
    // copy wins), 200 old ones deleted through s3ferry: 8,800 distinct live keys. Seeded on
    // disk: s3s-fs serves whatever its directory holds.
    let old_dir = m.old.bucket_dir("lazy");
    let new_dir = m.new.bucket_dir("lazy");
    for i in 0..6000 {
        let dir = old_dir.join(format!("d{:02}", i % 50));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join(format!("k{i:05}")), b"old").expect("seed old");
    }
    for i in 5000..9000 {
        let dir = new_dir.join(format!("d{:02}", i % 50));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join(format!("k{i:05}")), b"new!").expect("seed new");
    }
    m.old.quirks.read_only.store(true, Ordering::Relaxed);
    let c = m.client();
    let deleted: Vec<String> = (0..200)
        .map(|i| format!("d{:02}/k{:05}", (i * 7) % 50, i * 7))
        .collect();
    let ids: Vec<ObjectIdentifier> = deleted
        .iter()
        .map(|k| ObjectIdentifier::builder().key(k).build().expect("id"))
        .collect();
    c.delete_objects()
        .bucket("lazy")
        .delete(Delete::builder().set_objects(Some(ids)).build().expect("delete"))
        .send()
        .await
        .expect("delete 200");

    let mut expected: Vec<String> = (0..9000).map(|i| format!("d{:02}/k{i:05}", i % 50)).collect();
    expected.retain(|k| !deleted.contains(k));
    expected.sort();

    let mut v2 = Vec::new();
    let mut pages = c
        .list_objects_v2()
        .bucket("lazy")
        .max_keys(1000)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.expect("page");
        assert!(page.key_count().unwrap_or(0) <= 1000);
        for o in page.contents() {
            let key = o.key().expect("key").to_string();
            let i: usize = key[5..].parse().expect("index");
            assert_eq!(
                o.size(),
                Some(if i >= 5000 { 4 } else { 3 }),
                "{key}: the new provider wins on duplicates"
            );
            v2.push(key);
        }
    }
    assert_eq!(v2.len(), 8800);
    assert_eq!(v2, expected, "v2: every live key exactly once, in order");

    let v1 = list_keys_v1(&c, "lazy", 1000).await;
    assert_eq!(v1, expected, "v1: every live key exactly once, in order");

    // start-after and prefix narrow the merged listing the same way on both providers.
    let after = c
        .list_objects_v2()
        .bucket("lazy")
        .prefix("d07/")
        .start_after("d07/k04000")
        .send()
        .await
        .expect("start-after");
    let keys: Vec<String> = after
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    let want: Vec<String> = expected
        .iter()
        .filter(|k| k.starts_with("d07/") && k.as_str() > "d07/k04000")
        .cloned()
        .collect();
    assert!(!want.is_empty());
    assert_eq!(keys, want);

    // Delimiter: common prefixes merged across both providers and pages.
    let mut prefixes = Vec::new();
    let mut pages = c
        .list_objects_v2()
        .bucket("lazy")
        .delimiter("/")
        .max_keys(7)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        prefixes.extend(
            page.expect("page")
                .common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_string)),
        );
    }
    let expected_prefixes: Vec<String> = (0..50).map(|i| format!("d{i:02}/")).collect();
    assert_eq!(prefixes, expected_prefixes);
    m.stop().await;
}

#[tokio::test]
async fn copy_object_and_upload_part_copy_read_sources_that_are_only_in_old() {
    let m = Migrating::start().await;
    let data = pattern(5 * 1024 * 1024 + 17, 4);
    m.seed_old("lazy", &[("src.bin", &data)]).await;
    let c = m.client();
    c.copy_object()
        .bucket("lazy")
        .key("dst.bin")
        .copy_source("lazy/src.bin")
        .send()
        .await
        .expect("copy from old");
    assert!(m.new.has_object("lazy", "dst.bin").await);
    assert_eq!(read(&c, "lazy", "dst.bin").await.expect("copied"), data);

    let up = c
        .create_multipart_upload()
        .bucket("media")
        .key("assembled")
        .send()
        .await
        .expect("create");
    let id = up.upload_id().expect("id").to_string();
    let mut parts = Vec::new();
    for (n, range) in [(1, "bytes=0-5242879"), (2, "bytes=5242880-5242896")] {
        let part = c
            .upload_part_copy()
            .bucket("media")
            .key("assembled")
            .upload_id(&id)
            .part_number(n)
            .copy_source("lazy/src.bin")
            .copy_source_range(range)
            .send()
            .await
            .expect("upload part copy from old");
        let etag = part.copy_part_result().and_then(|r| r.e_tag()).map(str::to_string);
        parts.push(CompletedPart::builder().part_number(n).set_e_tag(etag).build());
    }
    c.complete_multipart_upload()
        .bucket("media")
        .key("assembled")
        .upload_id(&id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .expect("complete");
    assert_eq!(read(&c, "media", "assembled").await.expect("assembled"), data);
    m.stop().await;
}

#[tokio::test]
async fn conditional_writes_see_objects_that_live_only_in_old() {
    let m = Migrating::start().await;
    m.seed_old("lazy", &[("taken", b"old")]).await;
    let c = m.client();
    let err = c
        .put_object()
        .bucket("lazy")
        .key("taken")
        .if_none_match("*")
        .body(ByteStream::from_static(b"mine"))
        .send()
        .await
        .expect_err("exists in old");
    assert_eq!(error_status(&err), 412);
    let old_etag = m
        .old
        .direct_client()
        .head_object()
        .bucket("lazy")
        .key("taken")
        .send()
        .await
        .expect("head")
        .e_tag;
    c.put_object()
        .bucket("lazy")
        .key("taken")
        .if_match(old_etag.expect("etag"))
        .body(ByteStream::from_static(b"updated"))
        .send()
        .await
        .expect("If-Match against the old copy");
    assert_eq!(read(&c, "lazy", "taken").await.expect("updated"), b"updated");
    let err = c
        .put_object()
        .bucket("lazy")
        .key("nowhere")
        .if_match("\"0123\"")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect_err("nothing to match");
    assert_eq!(error_status(&err), 412);
    c.put_object()
        .bucket("lazy")
        .key("free")
        .if_none_match("*")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .expect("free key");
    m.stop().await;
}

#[tokio::test]
async fn conditional_and_range_reads_work_on_the_fallback_path() {
    let moto = Moto::start().await;
    moto.direct()
        .create_bucket()
        .bucket("old-bucket")
        .send()
        .await
        .expect("bucket");
    let put = moto
        .direct()
        .put_object()
        .bucket("old-bucket")
        .key("c")
        .body(ByteStream::from_static(b"0123456789"))
        .send()
        .await
        .expect("seed");
    let etag = put.e_tag().expect("etag").to_string();
    let new = TestUpstream::path_style().await;
    new.create_bucket("fresh");
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[[credentials]]
access_key_id = "{CLIENT_KEY}"
secret_access_key = "{CLIENT_SECRET}"
grants = "all"
[providers.new]
endpoint = "{}"
access_key_id = "{UPSTREAM_KEY}"
secret_access_key = "{UPSTREAM_SECRET}"
[providers.old]
endpoint = "{}"
access_key_id = "moto"
secret_access_key = "moto"
[[buckets]]
name = "fresh"
provider = "new"
fallback = "old"
fallback_bucket = "old-bucket"
"#,
        new.endpoint(),
        moto.endpoint()
    );
    let config = Config::parse(&toml, "t.toml", Path::new("."), &|_| None).expect("config");
    let g = s3ferry::server::start(&config).await.expect("gateway");
    let c = sdk_client(
        &format!("http://127.0.0.1:{}", g.addr().port()),
        CLIENT_KEY,
        CLIENT_SECRET,
        true,
    );
    let err = c
        .get_object()
        .bucket("fresh")
        .key("c")
        .if_none_match(&etag)
        .send()
        .await
        .expect_err("304");
    assert_eq!(error_status(&err), 304);
    let err = c
        .get_object()
        .bucket("fresh")
        .key("c")
        .if_match("\"nope\"")
        .send()
        .await
        .expect_err("412");
    assert_eq!(error_status(&err), 412);
    let r = c
        .get_object()
        .bucket("fresh")
        .key("c")
        .range("bytes=2-4")
        .if_match(&etag)
        .send()
        .await
        .expect("range");
    assert_eq!(r.body.collect().await.expect("body").into_bytes().as_ref(), b"234");
    g.shutdown(Duration::from_secs(2)).await;
}

/// Counts copies for the interruption test and stops after `stop_after`.
struct StopAfter<'a> {
    copied: AtomicU64,
    stop_after: u64,
    stop: &'a AtomicBool,
}

impl Progress for StopAfter<'_> {
    fn planned(&self, _objects: u64, _bytes: u64) {}

    fn done(&self, _key: &str, _bytes: u64) {
        if self.copied.fetch_add(1, Ordering::Relaxed) + 1 >= self.stop_after {
            self.stop.store(true, Ordering::Relaxed);
        }
    }
}

#[tokio::test]
async fn migrate_copies_2000_objects_resumes_after_interruption_and_check_agrees() {
    let m = Migrating::start().await;
    // 1,990 small objects and 10 multipart objects in the old provider.
    let direct = m.old.direct_client();
    put_objects(
        &direct,
        "lazy",
        (0..1990).map(|i| (format!("bulk/{i:04}"), format!("object {i}").into_bytes())),
        32,
    )
    .await;
    for i in 0..10 {
        let key = format!("bulk/multipart-{i}");
        let up = direct
            .create_multipart_upload()
            .bucket("lazy")
            .key(&key)
            .send()
            .await
            .expect("create");
        let id = up.upload_id().expect("id").to_string();
        let mut parts = Vec::new();
        for n in 1..=2 {
            let body = pattern(if n == 1 { 5 * 1024 * 1024 } else { 1000 }, (i * 2 + n) as u8);
            let part = direct
                .upload_part()
                .bucket("lazy")
                .key(&key)
                .upload_id(&id)
                .part_number(n)
                .body(ByteStream::from(body))
                .send()
                .await
                .expect("part");
            parts.push(
                CompletedPart::builder()
                    .part_number(n)
                    .set_e_tag(part.e_tag().map(str::to_string))
                    .build(),
            );
        }
        direct
            .complete_multipart_upload()
            .bucket("lazy")
            .key(&key)
            .upload_id(&id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .expect("complete");
    }
    m.old.quirks.read_only.store(true, Ordering::Relaxed);
    let c = m.client();
    // A client writes a newer version of one key and deletes another before the bulk run.
    rewrite_and_delete(&c, "lazy", "bulk/0001", "bulk/0002").await;

    let upstreams: std::collections::BTreeMap<_, _> = {
        let (u, _locals) = s3ferry::server::start_providers(&m.config).await.expect("providers");
        u
    };
    let table = RouteTable::new(&m.config.buckets, &upstreams).expect("routes");
    let route = table.resolve("lazy").expect("route");
    let fallback = route.fallback.clone().expect("fallback");
    let options = MigrateOptions {
        prefix: "bulk/".into(),
        limits: CopyLimits::default(),
        shard: None,
        concurrency: 8,
        list_parallelism: 1,
        dry_run: false,
        parts: PartSizes::default(),
    };

    let status = bulk::migrate(
        &route,
        &fallback,
        &MigrateOptions {
            dry_run: true,
            ..options.clone()
        },
        &StopAfter {
            copied: AtomicU64::new(0),
            stop_after: u64::MAX,
            stop: &AtomicBool::new(false),
        },
        &AtomicBool::new(false),
    )
    .await
    .expect("status");
    assert_eq!(
        (
            status.planned_objects,
            status.newer_in_new,
            status.deleted_through_s3ferry
        ),
        (1998, 1, 1)
    );

    let stop = AtomicBool::new(false);
    let first = bulk::migrate(
        &route,
        &fallback,
        &options,
        &StopAfter {
            copied: AtomicU64::new(0),
            stop_after: 500,
            stop: &stop,
        },
        &stop,
    )
    .await
    .expect("first run");
    assert!(first.interrupted, "the first run was stopped");
    assert!(
        first.copied_objects >= 500 && first.copied_objects < 1998,
        "copied {}",
        first.copied_objects
    );
    let report = bulk::check(&route, &fallback, "bulk/", false).await.expect("check");
    assert!(!report.missing_in_new.is_empty(), "check sees what is left");

    let never = AtomicBool::new(false);
    let second = bulk::migrate(
        &route,
        &fallback,
        &options,
        &StopAfter {
            copied: AtomicU64::new(0),
            stop_after: u64::MAX,
            stop: &never,
        },
        &never,
    )
    .await
    .expect("second run");
    assert!(!second.interrupted && second.failed.is_empty(), "{:?}", second.failed);
    assert_eq!(
        first.copied_objects + second.copied_objects,
        1998,
        "every object copied exactly once"
    );
    assert_eq!(second.newer_in_new, 1, "the newer write was not overwritten");
    assert_eq!(read(&c, "lazy", "bulk/0001").await.expect("newer"), b"newer");
    assert_eq!(
        read(&c, "lazy", "bulk/0002").await,
        Err("NoSuchKey".to_string()),
        "the deleted key stays deleted"
    );

    let report = bulk::check(&route, &fallback, "bulk/", true)
        .await
        .expect("check --download");
    assert!(report.missing_in_new.is_empty(), "{:?}", report.missing_in_new);
    assert_eq!(
        report.differ,
        vec!["bulk/0001".to_string()],
        "only the client's newer write differs"
    );
    assert_eq!(report.deleted_through_s3ferry, 1);
    assert_eq!(report.matching, 1998);
    m.stop().await;
}

/// moto (it stores tags and storage classes) with the buckets `<name>-old` and `<name>-new`,
/// and a config whose bucket `name` lives in `<name>-new` and falls back to `<name>-old`, with
/// `route` as more lines of its `[[buckets]]` table. The old provider is the new one, or (with
/// `two_accounts`) another provider entry for the same moto with another key, so that copies
/// go through s3ferry rather than by CopyObject.
pub(crate) async fn moto_migration(name: &str, route: &str, two_accounts: bool) -> (Moto, Config) {
    let moto = Moto::start().await;
    for side in ["old", "new"] {
        let bucket = format!("{name}-{side}");
        moto.direct()
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("bucket");
    }
    let toml = format!(
        r#"{preamble}
[providers.moto]
endpoint = "{endpoint}"
access_key_id = "moto"
secret_access_key = "moto"
[providers.moto-old]
endpoint = "{endpoint}"
access_key_id = "moto-old"
secret_access_key = "moto-old"
[[buckets]]
name = "{name}"
provider = "moto"
upstream_bucket = "{name}-new"
fallback = "{old}"
fallback_bucket = "{name}-old"
{route}
"#,
        preamble = crate::support::config_preamble(),
        endpoint = moto.endpoint(),
        old = if two_accounts { "moto-old" } else { "moto" },
    );
    let config = Config::parse(&toml, "moto-migration.toml", Path::new("."), &|_| None).expect("config");
    (moto, config)
}

/// Tags `key` of `bucket` with `album = 2017`.
pub(crate) async fn tag_album(client: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    let tagging = Tagging::builder()
        .tag_set(Tag::builder().key("album").value("2017").build().expect("tag"))
        .build()
        .expect("tags");
    client
        .put_object_tagging()
        .bucket(bucket)
        .key(key)
        .tagging(tagging)
        .send()
        .await
        .expect("tag");
}

/// Puts `key` (body `tagged`) in `bucket` as STANDARD_IA, tagged `album = 2017`.
pub(crate) async fn seed_tagged_infrequent(client: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(b"tagged"))
        .storage_class(aws_sdk_s3::types::StorageClass::StandardIa)
        .send()
        .await
        .expect("seed");
    tag_album(client, bucket, key).await;
}

/// `key` of `bucket` has the tag and the class [`seed_tagged_infrequent`] gave its source.
pub(crate) async fn assert_tagged_infrequent(client: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    let tags = client
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("tags of the copy");
    assert_eq!(
        tags.tag_set().first().map(|t| (t.key(), t.value())),
        Some(("album", "2017"))
    );
    let head = client.head_object().bucket(bucket).key(key).send().await.expect("head");
    assert_eq!(head.storage_class(), Some(&aws_sdk_s3::types::StorageClass::StandardIa));
}

#[tokio::test]
async fn copy_on_read_keeps_tags_and_storage_class_where_the_provider_stores_them() {
    let (moto, config) = moto_migration("tags", "copy_on_read = true", true).await;
    let direct = moto.direct();
    seed_tagged_infrequent(&direct, "tags-old", "t").await;
    let g = s3ferry::server::start(&config).await.expect("gateway");
    let c = sdk_client(
        &format!("http://127.0.0.1:{}", g.addr().port()),
        CLIENT_KEY,
        CLIENT_SECRET,
        true,
    );
    assert_eq!(read(&c, "tags", "t").await.expect("fallback"), b"tagged");
    wait_for("copied", || MigrationStats::get(&g.migration_stats().copies_done) == 1).await;
    assert_tagged_infrequent(&direct, "tags-new", "t").await;
    g.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn copy_never_overwrites_a_newer_write() {
    use s3ferry::migration::copy::copy_object;
    use s3ferry::migration::copy_task::{CopyOutcome, CopyTask};
    let m = Migrating::start().await;
    m.seed_old("lazy", &[("contested", b"old version")]).await;
    m.client()
        .put_object()
        .bucket("lazy")
        .key("contested")
        .body(ByteStream::from_static(b"client's newer write"))
        .send()
        .await
        .expect("put");
    let (upstreams, _locals) = s3ferry::server::start_providers(&m.config).await.expect("providers");
    let task = CopyTask {
        client_bucket: "lazy".into(),
        old: upstreams["old"].clone(),
        old_bucket: "lazy".into(),
        new: upstreams["new"].clone(),
        new_bucket: "lazy".into(),
        key: "contested".into(),
        parts: PartSizes::default(),
    };
    assert_eq!(copy_object(&task).await.expect("copy"), CopyOutcome::AlreadyInNew);
    assert_eq!(
        read(&m.client(), "lazy", "contested").await.expect("read"),
        b"client's newer write"
    );
    m.stop().await;
}

#[tokio::test]
async fn migrate_and_check_commands_report_and_exit_with_the_right_status() {
    let m = Migrating::start().await;
    m.seed_old("lazy", &[("a", b"1"), ("b", b"22"), ("c/d", b"333")]).await;
    let dir = tempfile::tempdir().expect("dir");
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, config_text(&m.new.endpoint(), &m.old.endpoint())).expect("config");
    // tokio's Command: the upstreams run on this test's runtime, so it must not block.
    let run = |args: &'static [&'static str]| {
        let config_path = config_path.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"))
                .args(args)
                .arg("--config")
                .arg(&config_path)
                .args(["--bucket", "lazy", "--json"])
                .env("RUST_LOG", "warn")
                .output()
                .await
                .expect("run s3ferry")
        }
    };
    let before = run(&["check"]).await;
    assert_eq!(
        before.status.code(),
        Some(1),
        "differences before the migration: {}",
        String::from_utf8_lossy(&before.stderr)
    );
    assert!(
        !before.stdout.is_empty(),
        "a report, not an error: {}",
        String::from_utf8_lossy(&before.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&before.stdout).expect("JSON report");
    assert_eq!(report["missing_in_new"].as_array().map(Vec::len), Some(3));

    let status = run(&["migrate", "--status"]).await;
    assert_eq!(status.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).expect("JSON report");
    let only_in_old = &report["buckets"][0]["only_in_old"];
    assert_eq!(
        (only_in_old["objects"].as_u64(), only_in_old["bytes"].as_u64()),
        (Some(3), Some(6)),
        "{report}"
    );

    let migrated = run(&["migrate"]).await;
    assert_eq!(
        migrated.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&migrated.stdout).expect("JSON report");
    assert_eq!(report["copied_objects"].as_u64(), Some(3));

    // s3s-fs lists no ETags, so without --download the copies are "unverified", not "matching".
    let after = run(&["check"]).await;
    assert_eq!(
        after.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&after.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&after.stdout).expect("JSON report");
    assert_eq!(
        (report["matching"].as_u64(), report["unverified"].as_u64()),
        (Some(0), Some(3))
    );
    let downloaded = run(&["check", "--download"]).await;
    assert_eq!(downloaded.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&downloaded.stdout).expect("JSON report");
    assert_eq!(report["matching"].as_u64(), Some(3));

    let not_migrating = tokio::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"))
        .args(["check", "--config"])
        .arg(&config_path)
        .args(["--bucket", "unrouted"])
        .output()
        .await
        .expect("run");
    assert_eq!(not_migrating.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&not_migrating.stderr).contains("error: bucket 'unrouted'"));
    m.stop().await;
}

#[tokio::test]
async fn failed_copies_are_retried_counted_and_never_reach_the_reader() {
    let m = Migrating::start().await;
    m.seed_old("source-of-files", &[("unlucky", b"still readable")]).await;
    // The new provider refuses writes: every copy attempt fails.
    m.new.quirks.read_only.store(true, Ordering::Relaxed);
    let c = m.client();
    assert_eq!(
        read(&c, "media", "unlucky").await.expect("the reader is served"),
        b"still readable"
    );
    // copy_retries = 1: one retry after 2 s, then the failure is counted.
    for _ in 0..300 {
        if MigrationStats::get(&m.stats().copies_failed) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(MigrationStats::get(&m.stats().copies_failed), 1);
    assert_eq!(MigrationStats::get(&m.stats().copies_done), 0);
    m.new.quirks.read_only.store(false, Ordering::Relaxed);
    // A later read schedules the copy again, and now it lands.
    assert_eq!(
        read(&c, "media", "unlucky").await.expect("served again"),
        b"still readable"
    );
    wait_for("copied on a later read", || {
        MigrationStats::get(&m.stats().copies_done) == 1
    })
    .await;
    assert!(m.new.has_object("media-new", "unlucky").await);
    m.stop().await;
}

#[tokio::test]
async fn replicas_behind_a_load_balancer_agree_on_deletes_and_listings() {
    let m = Migrating::start().await;
    m.seed_old("lazy", &[("shared/a", b"a"), ("shared/b+c d", b"b")]).await;
    let other = s3ferry::server::start(&m.config).await.expect("second replica");
    let c2 = sdk_client(
        &format!("http://127.0.0.1:{}", other.addr().port()),
        CLIENT_KEY,
        CLIENT_SECRET,
        true,
    );
    m.client()
        .delete_object()
        .bucket("lazy")
        .key("shared/a")
        .send()
        .await
        .expect("delete on replica 1");
    assert_eq!(
        read(&c2, "lazy", "shared/a").await,
        Err("NoSuchKey".to_string()),
        "replica 2 sees the tombstone"
    );
    let listed = c2
        .list_objects_v2()
        .bucket("lazy")
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .send()
        .await
        .expect("list on replica 2");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        keys,
        vec!["shared/b%2Bc%20d"],
        "merged listing honours tombstones and encoding-type=url"
    );
    other.shutdown(Duration::from_secs(2)).await;
    m.stop().await;
}

#[tokio::test]
async fn migration_errors_name_neither_tombstones_nor_upstream_buckets() {
    let m = Migrating::start().await;
    m.seed_old("source-of-files", &[("secret/plan.txt", b"old")]).await;
    // The new provider refuses writes, so the tombstone a delete needs cannot be written.
    m.new.quirks.read_only.store(true, Ordering::Relaxed);
    let signer = crate::support::raw::Signer {
        addr: m.gateway().addr(),
        key: CLIENT_KEY,
        secret: CLIENT_SECRET,
        time: time::OffsetDateTime::now_utc(),
    };
    let empty = crate::support::raw::sha256_hex(b"");
    let (req, _) = signer.sign(
        http::Method::DELETE,
        "/media/secret/plan.txt",
        http::HeaderMap::new(),
        &empty,
    );
    let deleted = crate::support::raw::send(req.body(crate::support::raw::full_body("")).expect("request")).await;
    assert_eq!(deleted.status, 502, "{}", deleted.body);
    // The reserved prefix itself, asked for directly.
    let reserved =
        crate::support::raw::signed_get(m.gateway().addr(), "/media/.s3ferry/tombstones/secret/plan.txt").await;
    assert_eq!((reserved.status, reserved.code().as_str()), (403, "AccessDenied"));
    for resp in [&deleted, &reserved] {
        for hidden in ["media-new", "source-of-files", ".s3ferry", "tombstone", "plan.txt"] {
            assert!(!resp.body.contains(hidden), "{hidden} in {}", resp.body);
        }
    }
    assert!(m.old.has_object("source-of-files", "secret/plan.txt").await);
    m.stop().await;
}
