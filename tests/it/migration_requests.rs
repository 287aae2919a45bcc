//! What `s3ferry migrate` sends per object, counted at two real s3s-fs upstreams, and the races
//! its fewer checks must still win: a key written or deleted through the gateway between the
//! walk that listed it and the copy's write.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use s3ferry::config::Config;
use s3ferry::migration::bulk::{self, CopyLimits, MigrateOptions, MigrateReport, Progress};
use s3ferry::migration::copy_task::PartSizes;
use s3ferry::route::RouteTable;

use crate::migration::{
    Migrating, assert_tagged_infrequent, config_text, moto_migration, read, seed_tagged_infrequent, tag_album, wait_for,
};
use crate::support::{ReceivedRequest, TestUpstream, config_preamble, put_objects, s3_provider_table};

struct Quiet;

impl Progress for Quiet {
    fn planned(&self, _objects: u64, _bytes: u64) {}
    fn done(&self, _key: &str, _bytes: u64) {}
}

/// `migrate` of `bucket`'s keys under `prefix`, as the command runs it, `concurrency` at once.
async fn migrate(config: &Config, bucket: &str, prefix: &str, concurrency: usize) -> MigrateReport {
    migrate_walking(config, bucket, prefix, concurrency, 1).await
}

/// [`migrate`] with `walks` listings at once (`--list-parallelism`).
async fn migrate_walking(
    config: &Config,
    bucket: &str,
    prefix: &str,
    concurrency: usize,
    walks: usize,
) -> MigrateReport {
    let (upstreams, _locals) = s3ferry::server::start_providers(config).await.expect("providers");
    let table = RouteTable::new(&config.buckets, &upstreams).expect("routes");
    let route = table.resolve(bucket).expect("route");
    let fallback = route.fallback.clone().expect("fallback");
    let options = MigrateOptions {
        prefix: prefix.into(),
        limits: CopyLimits::default(),
        shard: None,
        concurrency,
        list_parallelism: walks,
        dry_run: false,
        parts: PartSizes::default(),
    };
    let never = AtomicBool::new(false);
    let run = bulk::migrate(&route, &fallback, &options, &Quiet, &never);
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("migrate ends")
        .expect("migrate")
}

/// The requests that named `key` of `bucket` (the object itself or its tombstone), as
/// `METHOD what` with `what` one of `key`, `key?<query>`, `tombstone`.
fn requests_for(received: &[ReceivedRequest], bucket: &str, key: &str) -> Vec<String> {
    let object = format!("/{bucket}/{key}");
    let tombstone = format!("/{bucket}/.s3ferry/tombstones/{key}");
    received
        .iter()
        .filter_map(|r| {
            let (path, query) = r.target.split_once('?').unwrap_or((&r.target, ""));
            let what = if path == object && query.is_empty() {
                "key".to_string()
            } else if path == object {
                format!("key?{query}")
            } else if path == tombstone {
                "tombstone".to_string()
            } else {
                return None;
            };
            Some(format!("{} {what}", r.method))
        })
        .collect()
}

/// Puts `keys` into the old bucket `lazy` (each holding "content of <key>"); returns how many
/// requests each upstream had received by then.
async fn seed_contents(m: &Migrating, keys: &[String]) -> (usize, usize) {
    put_objects(
        &m.old.direct_client(),
        "lazy",
        keys.iter().map(|k| (k.clone(), format!("content of {k}").into_bytes())),
        8,
    )
    .await;
    (m.old.quirks.received_count(), m.new.quirks.received_count())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

#[tokio::test]
async fn parallel_walks_cut_at_prefixes_copy_every_key_exactly_once() {
    let m = Migrating::start().await;
    let mut keys: Vec<String> = ["fan/top", "fan/zz-last", "fan/a0"].map(String::from).to_vec();
    for prefix in ["a", "b", "c", "d", "e", "f", "g", "h"] {
        keys.extend((0..5).map(|i| format!("fan/{prefix}/{i}")));
    }
    let (old_before, new_before) = seed_contents(&m, &keys).await;

    let report = migrate_walking(&m.config, "lazy", "fan/", 8, 4).await;
    assert_eq!(
        (report.copied_objects, report.planned_objects, report.failed_objects),
        (keys.len() as u64, keys.len() as u64, 0),
        "{report:?}"
    );
    let (old_seen, new_seen) = (
        m.old.quirks.received_since(old_before),
        m.new.quirks.received_since(new_before),
    );
    for key in &keys {
        let puts = requests_for(&new_seen, "lazy", key)
            .iter()
            .filter(|r| r.starts_with("PUT "))
            .count();
        assert_eq!(puts, 1, "{key} is written once: {new_seen:?}");
    }
    // One delimiter listing to find the prefixes, then a walk of the old bucket per part.
    let listings = |delimited: bool| {
        old_seen
            .iter()
            .filter(|r| {
                r.method == http::Method::GET
                    && r.target.contains("list-type=2")
                    && r.target.contains("delimiter=") == delimited
            })
            .count()
    };
    assert_eq!(listings(true), 1, "{old_seen:?}");
    assert_eq!(listings(false), 4, "four walks: {old_seen:?}");
    for key in &keys {
        let content = read(&m.new.direct_client(), "lazy", key).await;
        assert_eq!(content, Ok(format!("content of {key}").into_bytes()), "{key}");
    }
}

#[tokio::test]
async fn migrate_sends_a_get_a_conditional_put_and_a_tombstone_check_per_small_object() {
    let m = Migrating::start().await;
    let keys: Vec<String> = (0..40).map(|i| format!("few/{i:02}")).collect();
    let (old_before, new_before) = seed_contents(&m, &keys).await;

    let report = migrate(&m.config, "lazy", "few/", 8).await;
    assert_eq!((report.copied_objects, report.failed.len()), (40, 0), "{report:?}");

    let (old_seen, new_seen) = (
        m.old.quirks.received_since(old_before),
        m.new.quirks.received_since(new_before),
    );
    for key in &keys {
        // No `?tagging`: s3s-fs speaks the `aws` dialect, whose GETs carry a tag count.
        assert_eq!(requests_for(&old_seen, "lazy", key), strings(&["GET key"]), "{key}");
        assert_eq!(
            requests_for(&new_seen, "lazy", key),
            strings(&["PUT key", "HEAD tombstone"]),
            "{key}: no HEAD of the key or its tombstone before the write"
        );
    }
    let put = new_seen
        .iter()
        .find(|r| r.method == http::Method::PUT && r.target == "/lazy/few/00")
        .expect("the copy's PUT");
    assert_eq!(
        put.headers.get("if-none-match").map(|v| v.as_bytes()),
        Some(&b"*"[..]),
        "the write is create-if-absent"
    );
    // Everything else is one walk: a page of each side, and the tombstones near the keys.
    let others = old_seen.len() + new_seen.len() - 3 * keys.len();
    assert_eq!(others, 3, "listing requests");
    m.stop().await;
}

#[tokio::test]
async fn migrate_into_a_provider_without_conditional_writes_still_heads_the_key_first() {
    let m = Migrating::start().await;
    m.seed_old("lazy", &[("plain/a", b"a"), ("plain/b", b"b")]).await;
    let text = format!(
        "{}\n[providers.new.dialect_overrides]\nconditional_writes = \"none\"\n",
        config_text(&m.new.endpoint(), &m.old.endpoint())
    );
    let config = Config::parse(&text, "no-conditional.toml", Path::new("."), &|_| None).expect("config");
    let new_before = m.new.quirks.received_count();

    let report = migrate(&config, "lazy", "plain/", 2).await;
    assert_eq!(report.copied_objects, 2, "{report:?}");
    let new_seen = m.new.quirks.received_since(new_before);
    for key in ["plain/a", "plain/b"] {
        assert_eq!(
            requests_for(&new_seen, "lazy", key),
            strings(&["HEAD key", "PUT key", "HEAD tombstone"]),
            "{key}"
        );
    }
    m.stop().await;
}

#[tokio::test]
async fn a_write_or_delete_between_the_walk_and_the_copy_wins_over_migrate() {
    let m = Migrating::start().await;
    // One copy at a time: while the first one's source is held, the walk has already listed
    // the other two keys as only in the old provider and not deleted.
    m.seed_old(
        "lazy",
        &[
            ("race/a-held", b"old a"),
            ("race/b-written", b"old b"),
            ("race/c-deleted", b"old c"),
        ],
    )
    .await;
    let new_before = m.new.quirks.received_count();
    let tombstone_lists = |since: usize| {
        m.new
            .quirks
            .received_since(since)
            .iter()
            .filter(|r| {
                r.method == http::Method::GET && r.target.contains("list-type=2") && r.target.contains("tombstones")
            })
            .count()
    };
    m.old.quirks.hold_full_gets();
    let config = m.config.clone();
    let run = tokio::spawn(async move { migrate(&config, "lazy", "race/", 1).await });
    wait_for("the first copy to be reading the old provider", || {
        m.old.quirks.full_gets_held.load(Ordering::SeqCst) > 0
    })
    .await;
    wait_for("the walk to have read the tombstones near the keys", || {
        tombstone_lists(new_before) >= 1
    })
    .await;

    let c = m.client();
    c.put_object()
        .bucket("lazy")
        .key("race/b-written")
        .body(ByteStream::from_static(b"client's b"))
        .send()
        .await
        .expect("write during the migration");
    c.delete_object()
        .bucket("lazy")
        .key("race/c-deleted")
        .send()
        .await
        .expect("delete during the migration");
    m.old.quirks.release_full_gets();
    let report = run.await.expect("the migration task");

    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.copied_objects, 1, "only the untouched key is copied: {report:?}");
    assert_eq!(
        report.already_in_new, 1,
        "the conditional write found the client's object"
    );
    assert_eq!(report.deleted_through_s3ferry, 1, "the tombstone check after the write");
    assert_eq!(read(&c, "lazy", "race/a-held").await.expect("copied"), b"old a");
    assert_eq!(read(&c, "lazy", "race/b-written").await.expect("kept"), b"client's b");
    assert_eq!(
        read(&c, "lazy", "race/c-deleted").await,
        Err("NoSuchKey".to_string()),
        "the delete is not undone"
    );
    assert!(
        !m.new.has_object("lazy", "race/c-deleted").await,
        "the copy was removed"
    );
    // The deleted key really raced: its copy was written, then removed again.
    let new_seen = m.new.quirks.received_since(new_before);
    let c_requests = requests_for(&new_seen, "lazy", "race/c-deleted");
    let written_then_removed = strings(&["PUT key", "HEAD tombstone", "HEAD key", "DELETE key"]);
    assert!(
        c_requests.windows(4).any(|w| w == written_then_removed.as_slice()),
        "{c_requests:?}"
    );
    m.stop().await;
}

#[tokio::test]
async fn migrate_copies_the_tags_that_the_tag_count_announces() {
    // moto stores tags and sends `x-amz-tagging-count`; old and new are two buckets on it.
    let (moto, config) = moto_migration("bulk-tags", "", true).await;
    let direct = moto.direct();
    for key in ["tagged", "untagged"] {
        direct
            .put_object()
            .bucket("bulk-tags-old")
            .key(key)
            .body(ByteStream::from_static(b"body"))
            .send()
            .await
            .expect("seed");
    }
    tag_album(&direct, "bulk-tags-old", "tagged").await;
    let report = migrate(&config, "bulk-tags", "", 2).await;
    assert_eq!((report.copied_objects, report.failed.len()), (2, 0), "{report:?}");
    for (key, expected) in [("tagged", Some(("album", "2017"))), ("untagged", None)] {
        let tags = direct
            .get_object_tagging()
            .bucket("bulk-tags-new")
            .key(key)
            .send()
            .await
            .expect("tags of the copy");
        assert_eq!(tags.tag_set().first().map(|t| (t.key(), t.value())), expected, "{key}");
    }
}

/// One s3s-fs holding both buckets of a migration (`before` -> `after`), as one provider, and
/// the config of bucket `renamed` on it with `overrides` as the provider's dialect overrides.
fn one_provider_config(up: &TestUpstream, overrides: &str) -> Config {
    let toml = format!(
        r#"{preamble}
{provider}[providers.one.dialect_overrides]
{overrides}
[[buckets]]
name = "renamed"
provider = "one"
upstream_bucket = "after"
fallback = "one"
fallback_bucket = "before"
"#,
        preamble = config_preamble(),
        provider = s3_provider_table("one", &up.endpoint()),
    );
    Config::parse(&toml, "one-provider.toml", Path::new("."), &|_| None).expect("config")
}

#[tokio::test]
async fn migrate_between_two_buckets_of_one_provider_lets_it_copy_by_copy_object() {
    let up = TestUpstream::path_style().await;
    for b in ["before", "after"] {
        up.create_bucket(b);
    }
    let direct = up.direct_client();
    for key in ["guarded/a", "conditional/a"] {
        direct
            .put_object()
            .bucket("before")
            .key(key)
            .body(ByteStream::from_static(b"moved by the provider"))
            .content_type("text/plain")
            .metadata("owner", "me")
            .send()
            .await
            .expect("seed");
    }

    // s3s-fs ignores `If-None-Match` on CopyObject: said so, the key is looked up first.
    let before = up.quirks.received_count();
    let guarded = one_provider_config(&up, "conditional_copy = false");
    let report = migrate(&guarded, "renamed", "guarded/", 2).await;
    assert_eq!((report.copied_objects, report.failed.len()), (1, 0), "{report:?}");
    let seen = up.quirks.received_since(before);
    assert_eq!(
        requests_for(&seen, "before", "guarded/a"),
        strings(&["HEAD key"]),
        "no GET"
    );
    assert_eq!(
        requests_for(&seen, "after", "guarded/a"),
        strings(&["HEAD key", "PUT key", "HEAD tombstone"])
    );

    // The `aws` profile's CopyObject is conditional: no HEAD before it.
    let before = up.quirks.received_count();
    let report = migrate(&one_provider_config(&up, ""), "renamed", "conditional/", 2).await;
    assert_eq!((report.copied_objects, report.failed.len()), (1, 0), "{report:?}");
    let seen = up.quirks.received_since(before);
    assert_eq!(
        requests_for(&seen, "after", "conditional/a"),
        strings(&["PUT key", "HEAD tombstone"])
    );
    let copy = seen
        .iter()
        .find(|r| r.method == http::Method::PUT && r.target == "/after/conditional/a")
        .expect("the CopyObject");
    let header = |name: &str| copy.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("x-amz-copy-source"), Some("/before/conditional/a"));
    assert_eq!(header("if-none-match"), Some("*"));
    assert!(
        header("x-amz-copy-source-if-match").is_some(),
        "pinned to the HEAD's ETag"
    );

    for key in ["guarded/a", "conditional/a"] {
        let copied = direct.get_object().bucket("after").key(key).send().await.expect("copy");
        assert_eq!(copied.content_type(), Some("text/plain"), "{key}");
        assert_eq!(
            copied.metadata().and_then(|m| m.get("owner")).map(String::as_str),
            Some("me")
        );
        let body = copied.body.collect().await.expect("body").into_bytes();
        assert_eq!(&body[..], b"moved by the provider");
    }
}

#[tokio::test]
async fn a_copy_by_the_provider_never_overwrites_a_newer_object() {
    use s3ferry::migration::copy::copy_walked_object;
    use s3ferry::migration::copy_task::{CopyOutcome, CopyTask};
    let up = TestUpstream::path_style().await;
    for b in ["before", "after"] {
        up.create_bucket(b);
    }
    let direct = up.direct_client();
    for (bucket, body) in [("before", &b"older"[..]), ("after", &b"newer"[..])] {
        direct
            .put_object()
            .bucket(bucket)
            .key("contested")
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .expect("seed");
    }
    // As if a walk had listed the key only in `before`: the HEAD before the CopyObject finds it.
    let config = one_provider_config(&up, "conditional_copy = false");
    let (upstreams, _locals) = s3ferry::server::start_providers(&config).await.expect("providers");
    let task = CopyTask {
        client_bucket: "renamed".into(),
        old: upstreams["one"].clone(),
        old_bucket: "before".into(),
        new: upstreams["one"].clone(),
        new_bucket: "after".into(),
        key: "contested".into(),
        parts: PartSizes::default(),
    };
    assert_eq!(
        copy_walked_object(&task).await.expect("copy"),
        CopyOutcome::AlreadyInNew
    );
    let kept = direct
        .get_object()
        .bucket("after")
        .key("contested")
        .send()
        .await
        .expect("get");
    assert_eq!(&kept.body.collect().await.expect("body").into_bytes()[..], b"newer");
}

#[tokio::test]
async fn a_copy_by_moto_between_its_buckets_keeps_tags_and_storage_class() {
    // One moto, one provider: the copy is moto's own CopyObject.
    let (moto, config) = moto_migration("same", "", false).await;
    let direct = moto.direct();
    seed_tagged_infrequent(&direct, "same-old", "t").await;
    let report = migrate(&config, "same", "", 1).await;
    assert_eq!((report.copied_objects, report.failed.len()), (1, 0), "{report:?}");
    assert_tagged_infrequent(&direct, "same-new", "t").await;
}
