//! Lazy migration under faults: the old provider (a real s3s-fs behind the fault-injecting
//! stand-in) failing or stalling while copies on read are in flight, the s3ferry binary killed
//! mid-copy and started again, and a client writing a key while it is being copied. Afterwards
//! `s3ferry check --download` finds no difference, no partial object exists, and no key holds
//! older data than its newest write.

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use http::Method;
use s3ferry::server::RunningGateway;

use crate::sidecar::{metric, metrics_when, start_in_process};
use crate::support::binary::{GatewayProcess, write_config};
use crate::support::faults::{AnswerBody, Ending, Fault, FaultProxy, Match};
use crate::support::{
    TestUpstream, config_preamble, error_code, error_status, gateway_client, pattern, s3_provider_table,
};

const NEW_BUCKET: &str = "media-new";
const OLD_BUCKET: &str = "media-old";
const WITHIN: Duration = Duration::from_secs(20);

/// The new provider (direct), the old one behind the stand-in; bucket `media` migrates from
/// old to new with copy on read. `copy_retries` as given; the old provider times out after 1 s.
struct MigratingUnderFaults {
    new: TestUpstream,
    old: TestUpstream,
    proxy: FaultProxy,
}

impl MigratingUnderFaults {
    async fn start() -> Self {
        let new = TestUpstream::path_style().await;
        let old = TestUpstream::path_style().await;
        new.create_bucket(NEW_BUCKET);
        old.create_bucket(OLD_BUCKET);
        let proxy = FaultProxy::start(old.addr).await;
        Self { new, old, proxy }
    }

    fn config(&self, copy_retries: u32) -> String {
        format!(
            r#"{preamble}
{new}read_timeout_secs = 5
{old}connect_timeout_secs = 1
read_timeout_secs = 1
retry_backoff_ms = 20
[[buckets]]
name = "media"
provider = "new"
upstream_bucket = "{NEW_BUCKET}"
fallback = "old"
fallback_bucket = "{OLD_BUCKET}"
copy_on_read = true
[migration]
copy_workers = 2
copy_retries = {copy_retries}
"#,
            preamble = config_preamble(),
            new = s3_provider_table("new", &self.new.endpoint()),
            old = s3_provider_table("old", &self.proxy.endpoint()),
        )
    }

    async fn gateway(&self, copy_retries: u32) -> RunningGateway {
        start_in_process(&self.config(copy_retries)).await
    }

    fn seed_old(&self, key: &str, data: &[u8]) {
        std::fs::write(self.old.bucket_dir(OLD_BUCKET).join(key), data).expect("seed old");
    }

    fn in_new(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.new.bucket_dir(NEW_BUCKET).join(key)).ok()
    }

    /// Whether a PUT of `key` reached the new provider (a copy was writing it).
    fn copy_reached_new(&self, key: &str) -> bool {
        self.new
            .quirks
            .received
            .lock()
            .expect("not poisoned")
            .iter()
            .any(|r| r.method == Method::PUT && r.target.contains(key))
    }

    /// `s3ferry <args> --config <config> --bucket media --json`: exit code and JSON report.
    async fn command(&self, config: &Path, args: &[&str]) -> (Option<i32>, serde_json::Value) {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"))
            .args(args)
            .arg("--config")
            .arg(config)
            .args(["--bucket", "media", "--json"])
            .env("RUST_LOG", "warn")
            .output()
            .await
            .expect("run s3ferry");
        let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
            panic!(
                "a JSON report from {args:?}: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (output.status.code(), report)
    }

    /// `check --download` finds every object of the old provider, whole, in the new one.
    async fn assert_check_download_clean(&self, config: &Path, objects: u64) {
        let (code, report) = self.command(config, &["check", "--download"]).await;
        assert_eq!(code, Some(0), "{report:#}");
        assert_eq!(report["matching"].as_u64(), Some(objects), "{report:#}");
        assert_eq!(report["differ"].as_array().map(Vec::len), Some(0), "{report:#}");
    }
}

async fn read(client: &aws_sdk_s3::Client, key: &str) -> Result<Vec<u8>, (u16, String)> {
    match client.get_object().bucket("media").key(key).send().await {
        Ok(out) => Ok(out.body.collect().await.expect("body").into_bytes().to_vec()),
        Err(e) => Err((error_status(&e), error_code(&e))),
    }
}

fn no_sdk_retries(client: &aws_sdk_s3::Client) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        client
            .config()
            .to_builder()
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build(),
    )
}

#[tokio::test]
async fn copies_the_old_provider_fails_or_stalls_leave_no_partial_object_and_migrate_finishes_them() {
    let m = MigratingUnderFaults::start().await;
    let stalls = pattern(1024 * 1024, 11);
    let fails = pattern(64 * 1024, 12);
    m.seed_old("stalls", &stalls);
    m.seed_old("fails", &fails);
    // The reader's GET goes through; the copy's GET (the second) stalls mid-body or fails.
    m.proxy.inject(
        Match::method(Method::GET).path("/stalls").after(1).times(1),
        Fault::StallAfterResponseBytes(128 * 1024),
    );
    m.proxy.inject(
        Match::method(Method::GET).path("/fails").after(1),
        Fault::Answer {
            status: 503,
            retry_after: None,
            body: AnswerBody::S3Error("ServiceUnavailable"),
        },
    );
    let g = m.gateway(0).await;
    let c = no_sdk_retries(&gateway_client(g.addr()));
    assert_eq!(read(&c, "stalls").await.expect("the reader is served"), stalls);
    assert_eq!(read(&c, "fails").await.expect("the reader is served"), fails);
    metrics_when(g.admin_addr(), "both copies failed", |t| {
        metric(
            t,
            "s3ferry_migration_copies_total",
            &[("bucket", "media"), ("outcome", "failed")],
        ) == Some(2.0)
    })
    .await;
    // The stalled copy had started writing into the new provider and was aborted there.
    assert!(m.copy_reached_new("stalls"), "the copy was in flight");
    assert_eq!(m.in_new("stalls"), None, "no partial object");
    assert_eq!(m.in_new("fails"), None);
    // The failing GETs were retried (two retries each), never more.
    assert_eq!(
        m.proxy
            .exchanges()
            .iter()
            .filter(|e| e.target.contains("/fails") && !e.target.contains("tagging"))
            .count(),
        1 + 3
    );

    // While the old provider refuses connections, a read of what only it holds is an S3 error.
    m.proxy.refuse_connections();
    let refused = read(&c, "stalls").await.expect_err("the old provider is down");
    assert_eq!(refused, (503, "ServiceUnavailable".to_string()));
    m.proxy.accept_connections().await;
    m.proxy.heal();

    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), &m.config(0));
    let (code, report) = m.command(&config, &["migrate"]).await;
    assert_eq!(
        (code, report["copied_objects"].as_u64()),
        (Some(0), Some(2)),
        "{report:#}"
    );
    m.assert_check_download_clean(&config, 2).await;
    assert_eq!(m.in_new("stalls").as_deref(), Some(&stalls[..]));
    g.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn s3ferry_killed_mid_copy_and_restarted_leaves_no_partial_object_and_check_agrees() {
    let m = MigratingUnderFaults::start().await;
    let big = pattern(4 * 1024 * 1024, 13);
    m.seed_old("big", &big);
    m.seed_old("small", b"small and whole");
    // The copy's GET trickles (about 10 s for 4 MiB), so the copy is in flight for a while.
    m.proxy.inject(
        Match::method(Method::GET).path("/big").after(1).times(1),
        Fault::Trickle {
            bytes: 32 * 1024,
            every: Duration::from_millis(80),
        },
    );
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(dir.path(), &m.config(1));
    let mut first = GatewayProcess::start(&config).await;
    let c = no_sdk_retries(&gateway_client(first.addr));
    assert_eq!(read(&c, "big").await.expect("served from old"), big);
    assert_eq!(read(&c, "small").await.expect("served from old"), b"small and whole");
    // Wait until the copy of `big` is writing into the new provider, then kill s3ferry.
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !m.copy_reached_new("big") {
        assert!(tokio::time::Instant::now() < deadline, "the copy never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.signal("KILL");
    first.wait_exit().await;
    let copy_get = m
        .proxy
        .wait_for("the killed copy's GET to end", |e| {
            e.iter()
                .find(|x| x.fault.is_some())
                .is_some_and(|x| x.ending != Ending::InProgress)
        })
        .await
        .into_iter()
        .find(|x| x.fault.is_some())
        .expect("the copy's GET");
    assert_eq!(copy_get.ending, Ending::GatewayClosed, "killed mid-copy: {copy_get:?}");
    assert_eq!(m.in_new("big"), None, "no partial object after the kill");

    // Started again: a read copies what is missing, `migrate` the rest, and check agrees.
    let second = GatewayProcess::start(&config).await;
    let c = no_sdk_retries(&gateway_client(second.addr));
    assert_eq!(read(&c, "big").await.expect("served"), big);
    let deadline = tokio::time::Instant::now() + WITHIN;
    while m.in_new("big").as_deref() != Some(&big[..]) {
        assert!(tokio::time::Instant::now() < deadline, "the second copy never landed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, report) = m.command(&config, &["migrate"]).await;
    assert_eq!(code, Some(0), "{report:#}");
    m.assert_check_download_clean(&config, 2).await;
    drop(second);
}

#[tokio::test]
async fn a_client_write_during_a_copy_is_never_overwritten_by_the_older_data() {
    let m = MigratingUnderFaults::start().await;
    let old_data = pattern(2 * 1024 * 1024, 14);
    m.seed_old("contested", &old_data);
    m.proxy.inject(
        Match::method(Method::GET).path("/contested").after(1).times(1),
        Fault::Trickle {
            bytes: 64 * 1024,
            every: Duration::from_millis(50),
        },
    );
    let g = m.gateway(0).await;
    let c = no_sdk_retries(&gateway_client(g.addr()));
    assert_eq!(read(&c, "contested").await.expect("served from old"), old_data);
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !m.copy_reached_new("contested") {
        assert!(tokio::time::Instant::now() < deadline, "the copy never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The copy is streaming the old bytes into the new provider; the client writes newer ones.
    c.put_object()
        .bucket("media")
        .key("contested")
        .body(ByteStream::from_static(b"the client's newest write"))
        .send()
        .await
        .expect("the client's write");
    m.proxy
        .wait_for("the copy's GET to end", |e| {
            e.iter()
                .find(|x| x.fault.is_some())
                .is_some_and(|x| x.ending != Ending::InProgress)
        })
        .await;
    metrics_when(g.admin_addr(), "the copy finished", |t| {
        ["done", "failed", "skipped"].iter().any(|outcome| {
            metric(
                t,
                "s3ferry_migration_copies_total",
                &[("bucket", "media"), ("outcome", outcome)],
            )
            .is_some()
        })
    })
    .await;
    let now = read(&c, "contested").await.expect("read");
    assert!(
        now == b"the client's newest write",
        "the copy of older data won over the client's write ({} bytes, the old object is {})",
        now.len(),
        old_data.len()
    );
    g.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_merged_listing_whose_old_provider_answers_cut_xml_or_fails_is_an_error_not_a_short_listing() {
    let m = MigratingUnderFaults::start().await;
    for i in 0..20 {
        m.seed_old(&format!("listed-{i:02}"), b"x");
    }
    let g = m.gateway(0).await;
    let c = no_sdk_retries(&gateway_client(g.addr()));
    let list = || c.list_objects_v2().bucket("media").send();
    assert_eq!(list().await.expect("listed").key_count(), Some(20));
    m.proxy.inject(
        Match::method(Method::GET).path("list-type").times(1),
        Fault::Answer {
            status: 200,
            retry_after: None,
            body: AnswerBody::TruncatedXml,
        },
    );
    let cut = list().await.expect_err("a cut listing is not passed on");
    assert_eq!((error_status(&cut), error_code(&cut).as_str()), (502, "BadGateway"));
    m.proxy.inject(
        Match::method(Method::GET).path("list-type"),
        Fault::Answer {
            status: 500,
            retry_after: None,
            body: AnswerBody::Garbage,
        },
    );
    let before = m.proxy.exchanges().len();
    let failed = list().await.expect_err("the old provider fails");
    assert_eq!(
        (error_status(&failed), error_code(&failed).as_str()),
        (502, "BadGateway")
    );
    assert_eq!(m.proxy.exchanges().len() - before, 3, "a listing is retried twice");
    g.shutdown(Duration::from_secs(2)).await;
}
