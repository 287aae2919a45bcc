//! Three s3ferry processes (the built binary) behind one round-robin balancer, sharing nothing
//! but the providers, with clients reading, writing, deleting and listing across them at once
//! (issue #14 part 1). Tombstones live in the new provider, so every replica agrees on
//! deletes; copy on read is single-flight per process only, so two replicas may copy one key:
//! the second finds it there (or its create-if-absent write is refused) and is counted.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use futures::StreamExt as _;

use crate::migration::{Migrating, config_text, read};
use crate::support::balancer::RoundRobin;
use crate::support::binary::GatewayProcess;
use crate::support::{CLIENT_KEY, CLIENT_SECRET, put_objects, sdk_client};

const OLD_KEYS: usize = 120;

fn old_key(i: usize) -> String {
    format!("obj/{i:03}")
}

fn old_body(i: usize) -> Vec<u8> {
    format!("old object {i} ").repeat(40 + i).into_bytes()
}

/// Every 10th old key, deleted by a client during the run.
fn is_deleted(i: usize) -> bool {
    i % 10 == 3
}

/// Every key of the bucket through `client`, paged by `page` keys.
async fn list_all(client: &aws_sdk_s3::Client, page: i32) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .list_objects_v2()
            .bucket("media")
            .max_keys(page)
            .set_continuation_token(token)
            .send()
            .await
            .expect("list");
        keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        token = out.next_continuation_token().map(str::to_string);
        if token.is_none() {
            return keys;
        }
    }
}

/// The value of one sample (`name{labels}`) on a replica's `/metrics`, 0 when absent.
async fn metric(replica: &GatewayProcess, sample: &str) -> u64 {
    let url = format!("http://{}/metrics", replica.admin_addr);
    let (_, text) = s3ferry::admin::check_health(&url, Duration::from_secs(5))
        .await
        .expect("metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

async fn run_bulk(config: &Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"))
        .args(args)
        .arg("--config")
        .arg(config)
        .args(["--bucket", "media", "--json"])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run s3ferry")
}

#[tokio::test]
async fn three_replicas_behind_a_round_robin_balancer_agree_under_concurrent_clients() {
    let m = Migrating::start().await;
    put_objects(
        &m.old.direct_client(),
        "source-of-files",
        (0..OLD_KEYS).map(|i| (old_key(i), old_body(i))),
        16,
    )
    .await;
    m.old.quirks.read_only.store(true, Ordering::Relaxed);
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(&m.new.endpoint(), &m.old.endpoint())).expect("config");
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(GatewayProcess::start(&config).await);
    }
    let balancer = RoundRobin::start(replicas.iter().map(|r| r.addr).collect()).await;
    let endpoint = format!("http://{}", balancer.addr);
    // Several clients, each with its own connection pool, so connections spread over replicas.
    let clients: Vec<aws_sdk_s3::Client> = (0..6)
        .map(|_| sdk_client(&endpoint, CLIENT_KEY, CLIENT_SECRET, true))
        .collect();

    // Readers read every old key (each through several replicas, so several may copy it);
    // a writer adds new keys; a deleter deletes every 10th old key; a lister pages through.
    let readers = futures::future::join_all(clients[..4].iter().enumerate().map(|(n, c)| async move {
        futures::stream::iter(0..OLD_KEYS)
            .map(|j| {
                let i = (j + n * 29) % OLD_KEYS;
                async move {
                    match read(c, "media", &old_key(i)).await {
                        Ok(body) => assert_eq!(body, old_body(i), "{}", old_key(i)),
                        Err(code) => assert!(is_deleted(i) && code == "NoSuchKey", "{}: {code}", old_key(i)),
                    }
                }
            })
            .buffer_unordered(6)
            .collect::<Vec<()>>()
            .await;
    }));
    let writer = async {
        for i in 0..30 {
            clients[4]
                .put_object()
                .bucket("media")
                .key(format!("fresh/{i:02}"))
                .body(ByteStream::from(format!("fresh {i}").into_bytes()))
                .send()
                .await
                .expect("write");
        }
    };
    let deleter = async {
        for i in (0..OLD_KEYS).filter(|&i| is_deleted(i)) {
            clients[5]
                .delete_object()
                .bucket("media")
                .key(old_key(i))
                .send()
                .await
                .expect("delete");
        }
    };
    let lister = async {
        for _ in 0..4 {
            let keys = list_all(&clients[5], 17).await;
            let sorted: BTreeSet<&String> = keys.iter().collect();
            assert_eq!(sorted.len(), keys.len(), "no key listed twice");
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "listed in key order");
        }
    };
    tokio::time::timeout(
        Duration::from_secs(120),
        futures::future::join4(readers, writer, deleter, lister),
    )
    .await
    .expect("the clients finish");
    let spread: Vec<usize> = balancer.connections.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert!(
        spread.iter().all(|&n| n > 0),
        "every replica served clients: {spread:?}"
    );

    // The copies on read settle: every live old key reaches the new provider.
    let live: Vec<usize> = (0..OLD_KEYS).filter(|&i| !is_deleted(i)).collect();
    for _ in 0..500 {
        let mut missing = 0;
        for &i in &live {
            if !m.new.has_object("media-new", &old_key(i)).await {
                missing += 1;
            }
        }
        if missing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // No deleted key came back, through any replica, in the provider or in a listing.
    let listed = list_all(&clients[0], 1000).await;
    for i in (0..OLD_KEYS).filter(|&i| is_deleted(i)) {
        assert!(
            !m.new.has_object("media-new", &old_key(i)).await,
            "{} copied back",
            old_key(i)
        );
        assert!(!listed.contains(&old_key(i)), "{} listed", old_key(i));
        for replica in &replicas {
            let direct = sdk_client(&format!("http://{}", replica.addr), CLIENT_KEY, CLIENT_SECRET, true);
            assert_eq!(read(&direct, "media", &old_key(i)).await, Err("NoSuchKey".to_string()));
        }
    }
    assert_eq!(listed.len(), live.len() + 30, "every live key listed once");

    // Copies: at least one per live key; any other replica that copied it was refused or
    // found it there, and says so in its metrics.
    let (mut done, mut already) = (0, 0);
    for replica in &replicas {
        done += metric(
            replica,
            "s3ferry_migration_copies_total{bucket=\"media\",outcome=\"done\"}",
        )
        .await;
        already += metric(
            replica,
            "s3ferry_migration_copies_already_in_new_total{bucket=\"media\"}",
        )
        .await;
    }
    assert!(
        done >= live.len() as u64,
        "copies done {done}, live keys {}",
        live.len()
    );
    eprintln!("copies on read: {done} done, {already} found the key already copied by another replica");

    // `migrate` has nothing left, and `check --download` finds no difference.
    let migrated = run_bulk(&config, &["migrate"]).await;
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&migrated.stdout).expect("report");
    assert_eq!(report["copied_objects"].as_u64(), Some(0), "{report}");
    let checked = run_bulk(&config, &["check", "--download"]).await;
    let report: serde_json::Value = serde_json::from_slice(&checked.stdout).expect("report");
    assert_eq!(checked.status.code(), Some(0), "{report}");
    assert_eq!(report["matching"].as_u64(), Some(live.len() as u64));
    assert_eq!(report["deleted_through_s3ferry"].as_u64(), Some(12));
    assert_eq!(report["only_in_new"].as_u64(), Some(30));

    for replica in &mut replicas {
        replica.signal("TERM");
        assert!(replica.wait_exit().await.success());
    }
    m.stop().await;
}
