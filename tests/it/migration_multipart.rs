//! Copies above `[migration] multipart_copy_threshold` go as multipart uploads, in `migrate`
//! and in copy on read: plain and multipart sources, the source's part layout kept where the
//! old provider tells it (moto answers HEAD `?partNumber=`; s3s-fs does not), and a copy that
//! fails midway leaves no upload behind. The threshold is set low (6 MiB, parts of 5 MiB, S3's
//! smallest part) so the objects stay small.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use s3ferry::config::Config;
use s3ferry::migration::MigrationStats;
use s3ferry::migration::bulk::{self, CopyLimits, MigrateOptions, MigrateReport, Progress};
use s3ferry::migration::copy_task::PartSizes;
use s3ferry::route::RouteTable;

use crate::migration::wait_for;
use crate::support::moto::Moto;
use crate::support::{
    CLIENT_KEY, CLIENT_SECRET, TestUpstream, UPSTREAM_KEY, UPSTREAM_SECRET, config_preamble, gateway_client, pattern,
    s3_provider_table,
};

const MIB: usize = 1024 * 1024;
const THRESHOLD: u64 = 6 * MIB as u64;
const PART_SIZE: u64 = 5 * MIB as u64;

/// The old provider: s3s-fs, or moto (which tells part sizes).
enum Old {
    S3sFs(TestUpstream),
    Moto(Moto),
}

impl Old {
    fn client(&self) -> aws_sdk_s3::Client {
        match self {
            Old::S3sFs(up) => up.direct_client(),
            Old::Moto(moto) => moto.direct(),
        }
    }

    fn provider_toml(&self) -> String {
        match self {
            Old::S3sFs(up) => format!(
                "endpoint = \"{}\"\naccess_key_id = \"{UPSTREAM_KEY}\"\nsecret_access_key = \"{UPSTREAM_SECRET}\"",
                up.endpoint()
            ),
            Old::Moto(moto) => format!(
                "endpoint = \"{}\"\naccess_key_id = \"moto\"\nsecret_access_key = \"moto\"",
                moto.endpoint()
            ),
        }
    }
}

/// `big` -> new:`big`, falls back to old:`big`, copies on read.
struct LargeCopies {
    old: Old,
    new: TestUpstream,
    config: Config,
}

impl LargeCopies {
    async fn start(old: Old) -> Self {
        match &old {
            Old::S3sFs(up) => up.create_bucket("big"),
            Old::Moto(moto) => {
                moto.direct()
                    .create_bucket()
                    .bucket("big")
                    .send()
                    .await
                    .expect("bucket on moto");
            }
        }
        let new = TestUpstream::path_style().await;
        new.create_bucket("big");
        let toml = format!(
            r#"{preamble}
{new}read_timeout_secs = 20
[providers.old]
{old}
read_timeout_secs = 20
[[buckets]]
name = "big"
provider = "new"
fallback = "old"
copy_on_read = true
[migration]
copy_retries = 0
multipart_copy_threshold = {THRESHOLD}
multipart_copy_part_size = {PART_SIZE}
"#,
            preamble = config_preamble(),
            new = s3_provider_table("new", &new.endpoint()),
            old = old.provider_toml(),
        );
        let config = Config::parse(&toml, "large.toml", Path::new("."), &|_| None).expect("config");
        Self { old, new, config }
    }

    async fn seed(&self, key: &str, data: &[u8]) -> String {
        let put = self
            .old
            .client()
            .put_object()
            .bucket("big")
            .key(key)
            .body(ByteStream::from(data.to_vec()))
            .send()
            .await
            .expect("seed");
        put.e_tag().expect("etag").to_string()
    }

    /// Seeds `key` as a multipart upload of `parts`; returns its ETag (`"...-N"`).
    async fn seed_in_parts(&self, key: &str, parts: &[Vec<u8>]) -> String {
        let client = self.old.client();
        let upload = client
            .create_multipart_upload()
            .bucket("big")
            .key(key)
            .send()
            .await
            .expect("create upload");
        let id = upload.upload_id().expect("upload id");
        let mut done = Vec::new();
        for (i, data) in parts.iter().enumerate() {
            let number = i32::try_from(i + 1).expect("part number");
            let part = client
                .upload_part()
                .bucket("big")
                .key(key)
                .upload_id(id)
                .part_number(number)
                .body(ByteStream::from(data.clone()))
                .send()
                .await
                .expect("part");
            done.push(
                CompletedPart::builder()
                    .part_number(number)
                    .e_tag(part.e_tag().expect("part etag"))
                    .build(),
            );
        }
        let completed = client
            .complete_multipart_upload()
            .bucket("big")
            .key(key)
            .upload_id(id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(done)).build())
            .send()
            .await;
        // moto answers 200 with a root element the SDK does not take: the upload completed.
        if let Err(e) = completed {
            assert_eq!(
                e.raw_response().map(|r| r.status().as_u16()),
                Some(200),
                "complete: {e:?}"
            );
        }
        let head = client.head_object().bucket("big").key(key).send().await.expect("head");
        head.e_tag().expect("etag").to_string()
    }

    async fn migrate(&self) -> MigrateReport {
        let (upstreams, _locals) = s3ferry::server::start_providers(&self.config).await.expect("providers");
        let table = RouteTable::new(&self.config.buckets, &upstreams).expect("routes");
        let route = table.resolve("big").expect("route");
        let fallback = route.fallback.clone().expect("fallback");
        let options = MigrateOptions {
            prefix: String::new(),
            limits: CopyLimits::default(),
            shard: None,
            concurrency: 2,
            list_parallelism: 1,
            dry_run: false,
            parts: PartSizes::from(&self.config.migration),
        };
        bulk::migrate(&route, &fallback, &options, &Quiet, &AtomicBool::new(false))
            .await
            .expect("migrate")
    }

    /// The new provider's copy of `key`: its bytes and ETag.
    async fn in_new(&self, key: &str) -> (Vec<u8>, String) {
        let got = self
            .new
            .direct_client()
            .get_object()
            .bucket("big")
            .key(key)
            .send()
            .await
            .expect("copied");
        let etag = got.e_tag().expect("etag").to_string();
        (got.body.collect().await.expect("body").into_bytes().to_vec(), etag)
    }

    /// Multipart uploads the new provider was asked to start, and whole-object PUTs it got.
    fn new_writes(&self) -> (usize, usize) {
        let received = self.new.quirks.received_since(0);
        let creates = received
            .iter()
            .filter(|r| r.method == http::Method::POST && r.target.contains("?uploads"))
            .count();
        let whole_puts = received
            .iter()
            .filter(|r| {
                r.method == http::Method::PUT && !r.target.contains("uploadId=") && !r.target.contains(".s3ferry/")
            })
            .count();
        (creates, whole_puts)
    }

    /// Upload state s3s-fs keeps in the new provider's directory (parts, upload records).
    fn leftover_uploads(&self) -> Vec<String> {
        std::fs::read_dir(self.new.root.path())
            .expect("root")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.contains("upload"))
            .collect()
    }
}

struct Quiet;

impl Progress for Quiet {
    fn planned(&self, _objects: u64, _bytes: u64) {}
    fn done(&self, _key: &str, _bytes: u64) {}
}

#[tokio::test]
async fn migrate_copies_objects_above_the_threshold_in_parts() {
    let m = LargeCopies::start(Old::S3sFs(TestUpstream::path_style().await)).await;
    let plain = pattern(11 * MIB, 1);
    let plain_etag = m.seed("plain", &plain).await;
    let parts = vec![pattern(5 * MIB, 2), pattern(5 * MIB, 3), pattern(MIB, 4)];
    let multipart_etag = m.seed_in_parts("multipart", &parts).await;
    assert!(multipart_etag.ends_with("-3\""), "{multipart_etag}");
    let small = pattern(MIB, 5);
    m.seed("small", &small).await;

    let report = m.migrate().await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.copied_objects, 3);
    assert_eq!(
        m.new_writes(),
        (2, 1),
        "two copies in parts, one single PUT (the small object)"
    );

    let (bytes, etag) = m.in_new("plain").await;
    assert!(bytes == plain, "plain source copied whole");
    assert_ne!(
        etag, plain_etag,
        "a copy in parts has a multipart ETag (checked by MD5 instead)"
    );
    let (bytes, etag) = m.in_new("multipart").await;
    assert!(bytes == parts.concat(), "multipart source copied whole");
    assert_eq!(etag, multipart_etag, "same layout (5 MiB parts), same ETag");
    assert_eq!(m.in_new("small").await.0, small);
    assert!(m.leftover_uploads().is_empty(), "{:?}", m.leftover_uploads());
}

#[tokio::test]
async fn copy_on_read_of_an_object_above_the_threshold_goes_in_parts() {
    let m = LargeCopies::start(Old::S3sFs(TestUpstream::path_style().await)).await;
    let data = pattern(8 * MIB, 6);
    m.seed("read-me", &data).await;
    let g = s3ferry::server::start(&m.config).await.expect("gateway");
    let c = gateway_client(g.addr());
    let read = c
        .get_object()
        .bucket("big")
        .key("read-me")
        .send()
        .await
        .expect("fallback read");
    assert!(read.body.collect().await.expect("body").into_bytes() == data);
    wait_for("the copy on read", || {
        MigrationStats::get(&g.migration_stats().copies_done) == 1
    })
    .await;
    assert_eq!(m.new_writes(), (1, 0), "one copy in parts, no single PUT");
    assert!(m.in_new("read-me").await.0 == data);
    g.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_copy_in_parts_keeps_the_source_layout_where_the_old_provider_tells_it() {
    let m = LargeCopies::start(Old::Moto(Moto::start().await)).await;
    // 6 MiB + 5 MiB: cut in 5 MiB parts it would be three parts with another ETag.
    let parts = vec![pattern(6 * MIB, 7), pattern(5 * MIB, 8)];
    let source_etag = m.seed_in_parts("layout", &parts).await;
    assert!(source_etag.ends_with("-2\""), "{source_etag}");
    let report = m.migrate().await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let (bytes, etag) = m.in_new("layout").await;
    assert!(bytes == parts.concat());
    assert_eq!(etag, source_etag, "the copy has the source's parts, so its ETag");
}

#[tokio::test]
async fn parts_of_a_copy_whose_etag_is_compared_go_at_once() {
    let m = LargeCopies::start(Old::Moto(Moto::start().await)).await;
    let parts = vec![pattern(5 * MIB, 10), pattern(5 * MIB, 11), pattern(MIB, 12)];
    let source_etag = m.seed_in_parts("parallel", &parts).await;
    // Every UploadPart's answer is held until two of them are in the new provider at once.
    m.new.quirks.hold_put_answers();
    let release = async {
        wait_for("two parts written at once", || {
            m.new.quirks.put_answers_held.load(Ordering::SeqCst) >= 2
        })
        .await;
        m.new.quirks.release_put_answers();
    };
    let (report, ()) = tokio::join!(m.migrate(), release);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let (bytes, etag) = m.in_new("parallel").await;
    assert!(bytes == parts.concat(), "the parts are in their order");
    assert_eq!(etag, source_etag);
}

#[tokio::test]
async fn a_copy_in_parts_that_fails_midway_aborts_its_upload() {
    let old = TestUpstream::path_style().await;
    // The second part's ranged read fails.
    old.quirks.fail_ranged_gets_from.store(2, Ordering::SeqCst);
    let m = LargeCopies::start(Old::S3sFs(old)).await;
    m.seed("fails", &pattern(11 * MIB, 9)).await;
    let report = m.migrate().await;
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(m.new_writes().0, 1, "the copy went in parts");
    assert!(!m.new.has_object("big", "fails").await, "nothing was completed");
    assert!(
        m.leftover_uploads().is_empty(),
        "the upload was aborted: {:?}",
        m.leftover_uploads()
    );
}

/// A client's PUT while a copy in parts is reading its first part: the copy stops before its
/// CompleteMultipartUpload, its upload is aborted, and the client's object is what stays.
#[tokio::test]
async fn a_put_during_a_copy_in_parts_stops_it_and_leaves_no_upload() {
    let old = TestUpstream::path_style().await;
    let quirks = old.quirks.clone();
    let m = LargeCopies::start(Old::S3sFs(old)).await;
    m.seed("contested", &pattern(11 * MIB, 10)).await;
    let g = s3ferry::server::start(&m.config).await.expect("gateway");
    let c = gateway_client(g.addr());
    quirks.hold_full_gets();
    let probe = c
        .get_object()
        .bucket("big")
        .key("contested")
        .range("bytes=0-0")
        .send()
        .await
        .expect("the probe falls back");
    assert_eq!(probe.content_length(), Some(1));
    wait_for("the copy to be reading its first part", || {
        quirks.full_gets_held.load(Ordering::SeqCst) > 0 && m.new_writes().0 == 1
    })
    .await;
    tokio::time::timeout(
        Duration::from_secs(20),
        c.put_object()
            .bucket("big")
            .key("contested")
            .body(ByteStream::from_static(b"the client's write"))
            .send(),
    )
    .await
    .expect("the PUT ends")
    .expect("PUT during the copy");
    quirks.release_full_gets();
    let stats = g.migration_stats();
    wait_for("the copy to end", || {
        MigrationStats::get(&stats.copies_skipped) + MigrationStats::get(&stats.copies_done) > 0
    })
    .await;
    assert_eq!(MigrationStats::get(&stats.copies_done), 0, "the copy stopped");
    let got = c
        .get_object()
        .bucket("big")
        .key("contested")
        .send()
        .await
        .expect("read");
    assert_eq!(
        got.body.collect().await.expect("body").into_bytes().as_ref(),
        b"the client's write"
    );
    for _ in 0..500 {
        if m.leftover_uploads().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        m.leftover_uploads().is_empty(),
        "the stopped copy's upload is aborted: {:?}",
        m.leftover_uploads()
    );
    g.shutdown(Duration::from_secs(5)).await;
}

/// Old and new buckets on one provider: the parts are copied by the provider (UploadPartCopy),
/// nothing streams through s3ferry.
#[tokio::test]
async fn a_copy_in_parts_within_one_provider_uses_upload_part_copy() {
    let up = TestUpstream::path_style().await;
    up.create_bucket("big");
    up.create_bucket("big-old");
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[[credentials]]
access_key_id = "{CLIENT_KEY}"
secret_access_key = "{CLIENT_SECRET}"
grants = "all"
[providers.one]
endpoint = "{}"
access_key_id = "{UPSTREAM_KEY}"
secret_access_key = "{UPSTREAM_SECRET}"
[[buckets]]
name = "big"
provider = "one"
fallback = "one"
fallback_bucket = "big-old"
[migration]
multipart_copy_threshold = {THRESHOLD}
multipart_copy_part_size = {PART_SIZE}
"#,
        up.endpoint()
    );
    let config = Config::parse(&toml, "one.toml", Path::new("."), &|_| None).expect("config");
    let data = pattern(11 * MIB, 11);
    up.direct_client()
        .put_object()
        .bucket("big-old")
        .key("moved")
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .expect("seed");
    let seen = up.quirks.received_count();
    let (upstreams, _locals) = s3ferry::server::start_providers(&config).await.expect("providers");
    let table = RouteTable::new(&config.buckets, &upstreams).expect("routes");
    let route = table.resolve("big").expect("route");
    let fallback = route.fallback.clone().expect("fallback");
    let options = MigrateOptions {
        prefix: String::new(),
        limits: CopyLimits::default(),
        shard: None,
        concurrency: 1,
        list_parallelism: 1,
        dry_run: false,
        parts: PartSizes::from(&config.migration),
    };
    let report = bulk::migrate(&route, &fallback, &options, &Quiet, &AtomicBool::new(false))
        .await
        .expect("migrate");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.copied_objects, 1);
    let received = up.quirks.received_since(seen);
    let part_copies = received
        .iter()
        .filter(|r| r.method == http::Method::PUT && r.headers.contains_key("x-amz-copy-source-range"))
        .count();
    let ranged_reads = received
        .iter()
        .filter(|r| r.method == http::Method::GET && r.headers.contains_key(http::header::RANGE))
        .count();
    assert_eq!(
        (part_copies, ranged_reads),
        (3, 0),
        "5 + 5 + 1 MiB, copied by the provider"
    );
    let got = up
        .direct_client()
        .get_object()
        .bucket("big")
        .key("moved")
        .send()
        .await
        .expect("copied");
    assert!(got.body.collect().await.expect("body").into_bytes() == data);
}

/// A client's PUT while the copy's CreateMultipartUpload is on its way: the provider creates
/// the upload, but the stopped copy never saw its id. The create is carried to its answer and
/// the upload aborted anyway, so nothing is left behind.
#[tokio::test]
async fn a_copy_stopped_while_creating_its_upload_still_aborts_it() {
    let old = TestUpstream::path_style().await;
    let m = LargeCopies::start(Old::S3sFs(old)).await;
    m.seed("creating", &pattern(11 * MIB, 11)).await;
    let g = s3ferry::server::start(&m.config).await.expect("gateway");
    let c = gateway_client(g.addr());
    let new = &m.new.quirks;
    new.hold_create_upload_answers.store(true, Ordering::SeqCst);
    new.hold_put_answers();
    let probe = c
        .get_object()
        .bucket("big")
        .key("creating")
        .range("bytes=0-0")
        .send()
        .await
        .expect("the probe falls back");
    assert_eq!(probe.content_length(), Some(1));
    wait_for(
        "the copy's CreateMultipartUpload to be carried out, its answer held",
        || new.put_answers_held.load(Ordering::SeqCst) == 1,
    )
    .await;
    let writer = c.clone();
    let put = tokio::spawn(async move {
        writer
            .put_object()
            .bucket("big")
            .key("creating")
            .body(ByteStream::from_static(b"the client's write"))
            .send()
            .await
    });
    wait_for(
        "the client's PUT to be carried out (the copy was stopped first)",
        || new.put_answers_held.load(Ordering::SeqCst) == 2,
    )
    .await;
    new.release_put_answers();
    tokio::time::timeout(Duration::from_secs(20), put)
        .await
        .expect("the PUT ends")
        .expect("task")
        .expect("PUT");
    for _ in 0..500 {
        if m.leftover_uploads().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        m.leftover_uploads().is_empty(),
        "the upload the stopped copy created is aborted: {:?}",
        m.leftover_uploads()
    );
    let got = c.get_object().bucket("big").key("creating").send().await.expect("read");
    assert_eq!(
        got.body.collect().await.expect("body").into_bytes().as_ref(),
        b"the client's write"
    );
    g.shutdown(Duration::from_secs(5)).await;
}
