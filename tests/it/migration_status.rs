//! Cut-over readiness: `migrate --status` over every migrated bucket, the status records a
//! `migrate` run keeps in the new provider, and the admin listener's `/migration` page (JSON and
//! HTML) and `s3ferry_migration_*` gauges that read them. Real s3s-fs upstreams, the old one
//! behind the fault-injecting stand-in so one copy fails on purpose; the real binary for
//! `migrate`, the gateway in-process.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{Method, Request};
use s3ferry::server::RunningGateway;

use crate::sidecar::{admin_get, metric, start_in_process};
use crate::support::faults::{AnswerBody, Fault, FaultProxy, Match};
use crate::support::raw::{self, RawResponse, full_body};
use crate::support::{TestUpstream, config_preamble, gateway_client, pattern, s3_provider_table};

const EVENTUALLY: Duration = Duration::from_secs(20);

/// Two migrated buckets: `photos` (new `photos-new`, old `photos-old`, copy on read) and `logs`
/// (new `logs-new`, old `logs-old`), and one plain bucket; the old provider behind the stand-in.
struct TwoMigrations {
    new: TestUpstream,
    old: TestUpstream,
    proxy: FaultProxy,
    dir: tempfile::TempDir,
}

impl TwoMigrations {
    async fn start() -> Self {
        let new = TestUpstream::path_style().await;
        let old = TestUpstream::path_style().await;
        for bucket in ["photos-new", "logs-new", "plain"] {
            new.create_bucket(bucket);
        }
        for bucket in ["photos-old", "logs-old"] {
            old.create_bucket(bucket);
        }
        let proxy = FaultProxy::start(old.addr).await;
        let dir = tempfile::tempdir().expect("dir");
        let m = Self { new, old, proxy, dir };
        std::fs::write(m.config_path(), m.config_text()).expect("config");
        m
    }

    fn config_text(&self) -> String {
        format!(
            r#"{preamble}
{new}read_timeout_secs = 5
{old}connect_timeout_secs = 1
read_timeout_secs = 30
retry_backoff_ms = 20
[[buckets]]
name = "photos"
provider = "new"
upstream_bucket = "photos-new"
fallback = "old"
fallback_bucket = "photos-old"
copy_on_read = true
[[buckets]]
name = "logs"
provider = "new"
upstream_bucket = "logs-new"
fallback = "old"
fallback_bucket = "logs-old"
[[buckets]]
name = "plain"
provider = "new"
[migration]
copy_retries = 0
status_refresh = "1s"
"#,
            preamble = config_preamble(),
            new = s3_provider_table("new", &self.new.endpoint()),
            old = s3_provider_table("old", &self.proxy.endpoint()),
        )
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    async fn gateway(&self) -> RunningGateway {
        start_in_process(&self.config_text()).await
    }

    fn put(upstream: &TestUpstream, bucket: &str, key: &str, data: &[u8]) {
        let path = upstream.bucket_dir(bucket).join(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("dirs");
        }
        std::fs::write(path, data).expect("seed");
    }

    /// Puts `objects` (key, size) into the old `photos` bucket; `fault` meets every GET of the
    /// last one.
    fn seed_photos_with_a_fault(&self, objects: &[(&str, usize)], fault: Fault) {
        for (i, (key, size)) in objects.iter().enumerate() {
            Self::put(&self.old, "photos-old", key, &pattern(*size, i as u8));
        }
        if let Some((last, _)) = objects.last() {
            self.proxy
                .inject(Match::method(Method::GET).path(&format!("/photos-old/{last}")), fault);
        }
    }

    /// `s3ferry <args> --config <config>`: exit code, stdout, stderr.
    async fn command(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"))
            .args(args)
            .arg("--config")
            .arg(self.config_path())
            .env("RUST_LOG", "warn")
            .output()
            .await
            .expect("run s3ferry");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// The same with `--json`, its stdout parsed.
    async fn command_json(&self, args: &[&str]) -> (Option<i32>, serde_json::Value) {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let (code, stdout, stderr) = self.command(&with_json).await;
        let report = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{args:?}: no JSON report ({e}): {stdout}{stderr}"));
        (code, report)
    }
}

/// The status of `bucket` in a `{"buckets": [...]}` answer.
fn bucket<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["buckets"]
        .as_array()
        .and_then(|all| all.iter().find(|b| b["bucket"] == name))
        .unwrap_or_else(|| panic!("no bucket {name} in {report:#}"))
}

async fn admin_get_with(admin: std::net::SocketAddr, path: &str, accept: &str) -> RawResponse {
    raw::send(
        Request::builder()
            .method(Method::GET)
            .uri(format!("http://{admin}{path}"))
            .header(http::header::ACCEPT, accept)
            .body(full_body(""))
            .expect("request"),
    )
    .await
}

async fn page_json(admin: std::net::SocketAddr) -> serde_json::Value {
    let page = admin_get(admin, "/migration?format=json").await;
    assert_eq!(page.status, 200, "{}", page.body);
    serde_json::from_str(&page.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", page.body))
}

/// Polls `/migration` until `done` holds (records are re-read at most once per second here).
async fn page_when(
    admin: std::net::SocketAddr,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    loop {
        let page = page_json(admin).await;
        if done(&page) {
            return page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/migration never showed {what}:\n{page:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn migrate_status_without_a_bucket_surveys_every_migrated_bucket() {
    let m = TwoMigrations::start().await;
    // photos: `a` is in both (same size), `bb` and `ccc` only in the old provider.
    TwoMigrations::put(&m.old, "photos-old", "a", b"1");
    TwoMigrations::put(&m.old, "photos-old", "bb", b"22");
    TwoMigrations::put(&m.old, "photos-old", "ccc", b"333");
    TwoMigrations::put(&m.new, "photos-new", "a", b"1");
    // logs: `x` only in the old provider; `y` too, but deleted through s3ferry (tombstoned);
    // `.s3ferry/state` (the old provider's own reserved name) can never reach the new one.
    TwoMigrations::put(&m.old, "logs-old", "x", &pattern(1000, 1));
    TwoMigrations::put(&m.old, "logs-old", "y", &pattern(20, 2));
    TwoMigrations::put(&m.new, "logs-new", ".s3ferry/tombstones/y", b"");
    TwoMigrations::put(&m.old, "logs-old", ".s3ferry/state", b"old's own");

    let (code, report) = m.command_json(&["migrate", "--status"]).await;
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(
        report["buckets"].as_array().map(Vec::len),
        Some(2),
        "plain is not migrated: {report:#}"
    );
    let photos = bucket(&report, "photos");
    assert_eq!(photos["only_in_old"]["objects"], 2, "{photos:#}");
    assert_eq!(photos["only_in_old"]["bytes"], 5, "{photos:#}");
    assert_eq!(photos["only_in_old"]["measured_by"], "survey", "{photos:#}");
    assert_eq!(photos["already_in_new"], 1, "{photos:#}");
    assert_eq!(photos["tombstoned"], 0, "{photos:#}");
    assert_eq!(photos["left_behind"], 0, "{photos:#}");
    assert_eq!(photos["copied"]["objects"], 0, "{photos:#}");
    assert_eq!(photos["failed_objects"], 0, "{photos:#}");
    assert!(
        photos["copy_rate"].is_null() && photos["eta_seconds"].is_null(),
        "{photos:#}"
    );
    let logs = bucket(&report, "logs");
    assert_eq!(logs["only_in_old"]["objects"], 1, "{logs:#}");
    assert_eq!(logs["only_in_old"]["bytes"], 1000, "{logs:#}");
    assert_eq!(logs["tombstoned"], 1, "{logs:#}");
    assert_eq!(logs["already_in_new"], 0, "{logs:#}");
    assert_eq!(logs["left_behind"], 1, "{logs:#}");
    assert_eq!(logs["left_behind_keys"][0]["key"], ".s3ferry/state", "{logs:#}");

    // The survey is stored where the gateway reads it: in each new bucket's reserved prefix.
    for bucket in ["photos-new", "logs-new"] {
        let records = std::fs::read_dir(m.new.bucket_dir(bucket).join(".s3ferry/migration-status"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(records, 1, "one survey record in {bucket}");
    }

    // For people: one block per bucket; --bucket narrows it to one.
    let (code, text, stderr) = m.command(&["migrate", "--status"]).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        text.contains("bucket photos\n") && text.contains("bucket logs\n"),
        "{text}"
    );
    assert!(text.contains("only in the old provider: 2 objects (5 bytes)"), "{text}");
    assert!(text.contains("LEFT BEHIND"), "{text}");
    let (code, report) = m.command_json(&["migrate", "--status", "--bucket", "logs"]).await;
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["buckets"].as_array().map(Vec::len), Some(1), "{report:#}");
    assert_eq!(bucket(&report, "logs")["only_in_old"]["objects"], 1, "{report:#}");
    let (code, _, stderr) = m.command(&["migrate", "--status", "--bucket", "plain"]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("not under lazy migration"), "{stderr}");
}

#[tokio::test]
async fn the_admin_page_and_gauges_show_a_runs_copies_failures_and_the_survey_after_it() {
    let m = TwoMigrations::start().await;
    // The old provider fails every read of `broken`: its copy fails, with the provider's reason.
    m.seed_photos_with_a_fault(
        &[("ok1", 100), ("ok2", 200), ("broken", 50)],
        Fault::Answer {
            status: 503,
            retry_after: None,
            body: AnswerBody::S3Error("ServiceUnavailable"),
        },
    );
    let g = m.gateway().await;
    // Before anything ran: the buckets are there, nothing is measured.
    let before = page_json(g.admin_addr()).await;
    assert!(bucket(&before, "photos")["only_in_old"].is_null(), "{before:#}");

    let (code, report) = m.command_json(&["migrate", "--bucket", "photos"]).await;
    assert_eq!(code, Some(1), "one copy failed: {report:#}");
    assert_eq!(report["copied_objects"], 2, "{report:#}");

    let page = page_when(g.admin_addr(), "the run's record", |p| {
        bucket(p, "photos")["runs"]["finished"] == 1
    })
    .await;
    let photos = bucket(&page, "photos");
    assert_eq!(photos["copied"]["objects"], 2, "{photos:#}");
    assert_eq!(photos["copied"]["bytes"], 300, "{photos:#}");
    assert_eq!(photos["copied_on_read"]["objects"], 0, "{photos:#}");
    assert_eq!(photos["failed_objects"], 1, "{photos:#}");
    assert_eq!(photos["failed"][0]["key"], "broken", "{photos:#}");
    let reason = photos["failed"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("503"), "the provider's answer is the reason: {reason}");
    // No survey yet: what the run planned less what it copied.
    assert_eq!(photos["only_in_old"]["objects"], 1, "{photos:#}");
    assert_eq!(photos["only_in_old"]["bytes"], 50, "{photos:#}");
    assert_eq!(photos["only_in_old"]["measured_by"], "runs", "{photos:#}");
    assert!(
        photos["copy_rate"].is_null() && photos["eta_seconds"].is_null(),
        "the run ended: {photos:#}"
    );
    let logs = bucket(&page, "logs");
    assert!(
        logs["only_in_old"].is_null() && logs["copied"]["objects"] == 0,
        "{logs:#}"
    );

    // A survey after the run: the page takes it up at its next refresh.
    let (code, report) = m.command_json(&["migrate", "--status", "--bucket", "photos"]).await;
    assert_eq!(code, Some(0), "{report:#}");
    let page = page_when(g.admin_addr(), "the survey", |p| {
        bucket(p, "photos")["only_in_old"]["measured_by"] == "survey"
    })
    .await;
    let photos = bucket(&page, "photos");
    assert_eq!(photos["only_in_old"]["objects"], 1, "{photos:#}");
    assert_eq!(photos["only_in_old"]["bytes"], 50, "{photos:#}");
    assert_eq!(photos["already_in_new"], 2, "{photos:#}");
    assert_eq!(
        photos["failed_objects"], 1,
        "the run's failure stays until a run copies it: {photos:#}"
    );

    // JSON by Accept too; HTML otherwise, with the same numbers.
    let by_accept = admin_get_with(g.admin_addr(), "/migration", "application/json").await;
    assert_eq!(
        by_accept.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    assert!(by_accept.body.contains("\"photos\""), "{}", by_accept.body);
    let html = admin_get_with(g.admin_addr(), "/migration", "text/html").await;
    assert_eq!(html.status, 200);
    assert_eq!(
        html.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/html; charset=utf-8")
    );
    assert!(html.headers.contains_key("content-security-policy"));
    for text in [
        "<h2>photos</h2>",
        "<h2>logs</h2>",
        "1 objects (50 bytes)",
        "2 objects (300 bytes)",
        "<code>broken</code>",
        "503",
    ] {
        assert!(html.body.contains(text), "{text:?} not in:\n{}", html.body);
    }

    // The gauges carry the same numbers; what was never measured has no series.
    let metrics = admin_get(g.admin_addr(), "/metrics").await.body;
    let photos = [("bucket", "photos")];
    for (name, value) in [
        ("s3ferry_migration_copied_objects", 2.0),
        ("s3ferry_migration_copied_bytes", 300.0),
        ("s3ferry_migration_failed_objects", 1.0),
        ("s3ferry_migration_only_in_old_objects", 1.0),
        ("s3ferry_migration_only_in_old_bytes", 50.0),
        ("s3ferry_migration_tombstoned_objects", 0.0),
        ("s3ferry_migration_left_behind_objects", 0.0),
    ] {
        assert_eq!(metric(&metrics, name, &photos), Some(value), "{name} in:\n{metrics}");
    }
    assert_eq!(
        metric(&metrics, "s3ferry_migration_copied_objects", &[("bucket", "logs")]),
        Some(0.0)
    );
    assert_eq!(
        metric(&metrics, "s3ferry_migration_only_in_old_objects", &[("bucket", "logs")]),
        None
    );
    assert_eq!(
        metric(&metrics, "s3ferry_migration_eta_seconds", &photos),
        None,
        "no run is copying"
    );
    g.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_running_migrate_shows_its_copy_rate_and_time_left() {
    let m = TwoMigrations::start().await;
    // The copy of the last object waits for an answer that does not come (within the 30 s read
    // timeout), so the run is still copying when it next writes its record (every 5 s).
    m.seed_photos_with_a_fault(
        &[("ok1", 1000), ("ok2", 2000), ("slow", 500)],
        Fault::StallBeforeResponse,
    );
    let g = m.gateway().await;
    let mut run = tokio::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"))
        .args(["migrate", "--bucket", "photos", "--config"])
        .arg(m.config_path())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("run s3ferry");

    let page = page_when(g.admin_addr(), "a run copying with a rate", |p| {
        let photos = bucket(p, "photos");
        photos["runs"]["active"] == 1 && photos["copied"]["objects"] == 2 && !photos["copy_rate"].is_null()
    })
    .await;
    let photos = bucket(&page, "photos");
    let bytes_per_second = photos["copy_rate"]["bytes_per_second"].as_f64().unwrap_or(0.0);
    let objects_per_second = photos["copy_rate"]["objects_per_second"].as_f64().unwrap_or(0.0);
    assert!(bytes_per_second > 0.0 && objects_per_second > 0.0, "{photos:#}");
    // 3,000 of 3,500 bytes copied: the 500 left at the measured rate, rounded up.
    assert!(
        (bytes_per_second / objects_per_second - 1500.0).abs() < 1e-6,
        "both rates over the same time: {photos:#}"
    );
    let expected_eta = (500.0 / bytes_per_second).ceil() as u64;
    assert_eq!(photos["eta_seconds"].as_u64(), Some(expected_eta), "{photos:#}");
    assert_eq!(photos["only_in_old"]["measured_by"], "runs", "{photos:#}");
    assert_eq!(photos["only_in_old"]["bytes"], 500, "{photos:#}");

    // The gauges agree with each other (the records may have been read again meanwhile, with
    // a later rate).
    let metrics = admin_get(g.admin_addr(), "/metrics").await.body;
    let photos = [("bucket", "photos")];
    let gauge_rate = metric(&metrics, "s3ferry_migration_copy_rate_bytes_per_second", &photos).unwrap_or(0.0);
    assert!(gauge_rate > 0.0, "{metrics}");
    assert_eq!(
        metric(&metrics, "s3ferry_migration_eta_seconds", &photos),
        Some((500.0 / gauge_rate).ceil()),
        "{metrics}"
    );
    run.kill().await.expect("stop the run");
    g.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_failed_copy_on_read_shows_its_hostile_key_escaped_on_the_page() {
    let m = TwoMigrations::start().await;
    let key = "<script>alert(1)</script>";
    TwoMigrations::put(&m.old, "photos-old", key, b"still readable");
    // The new provider refuses writes: the copy on read fails (no retries in this config).
    m.new.quirks.read_only.store(true, Ordering::Relaxed);
    let g = m.gateway().await;
    let client = gateway_client(g.addr());
    let read = client
        .get_object()
        .bucket("photos")
        .key(key)
        .send()
        .await
        .expect("served from the old provider");
    assert_eq!(
        read.body.collect().await.expect("body").into_bytes().as_ref(),
        b"still readable"
    );

    let page = page_when(g.admin_addr(), "the failed copy", |p| {
        bucket(p, "photos")["failed_objects"] == 1
    })
    .await;
    let photos = bucket(&page, "photos");
    assert_eq!(photos["failed"][0]["key"], key, "{photos:#}");
    assert!(
        photos["failed"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("403")),
        "the new provider's refusal: {photos:#}"
    );

    let html = admin_get(g.admin_addr(), "/migration").await;
    assert_eq!(html.status, 200);
    assert!(
        html.body.contains("<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>"),
        "{}",
        html.body
    );
    assert!(
        !html.body.contains("<script"),
        "nothing on the page runs: {}",
        html.body
    );
    g.shutdown(Duration::from_secs(1)).await;
}

/// The binary's `--status` refuses to run without any migrated bucket in the config.
#[tokio::test]
async fn migrate_status_says_when_no_bucket_is_migrated() {
    let new = TestUpstream::path_style().await;
    let dir = tempfile::tempdir().expect("dir");
    let config: &Path = &dir.path().join("config.toml");
    let text = format!(
        "{}\n{}\n[[buckets]]\nname = \"plain\"\nprovider = \"new\"\n",
        config_preamble(),
        s3_provider_table("new", &new.endpoint())
    );
    std::fs::write(config, text).expect("config");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"))
        .args(["migrate", "--status", "--config"])
        .arg(config)
        .output()
        .await
        .expect("run s3ferry");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no bucket is under lazy migration"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_scrape_is_answered_while_the_status_records_cannot_be_read() {
    // The new provider, where the records are, holds back its answer to their listing.
    let new = TestUpstream::path_style().await;
    let old = TestUpstream::path_style().await;
    new.create_bucket("photos-new");
    old.create_bucket("photos-old");
    let proxy = FaultProxy::start(new.addr).await;
    proxy.inject(
        Match::method(Method::GET).path("migration-status"),
        Fault::StallBeforeResponse,
    );
    let config = format!(
        r#"{preamble}
{new}read_timeout_secs = 30
{old}[[buckets]]
name = "photos"
provider = "new"
upstream_bucket = "photos-new"
fallback = "old"
fallback_bucket = "photos-old"
[migration]
status_refresh = "1s"
"#,
        preamble = config_preamble(),
        new = s3_provider_table("new", &proxy.endpoint()),
        old = s3_provider_table("old", &old.endpoint()),
    );
    let g = start_in_process(&config).await;
    // The records' read waits on the stalled listing (10 s per bucket); the scrape does not.
    let scrape = tokio::time::timeout(Duration::from_secs(8), admin_get(g.admin_addr(), "/metrics")).await;
    let metrics = scrape.expect("/metrics answers while the status read is stalled");
    assert!(metrics.body.contains("s3ferry_active_connections"), "{}", metrics.body);
    assert_eq!(
        proxy.count(&Method::GET, "migration-status"),
        1,
        "the scrape did start a read"
    );
}
