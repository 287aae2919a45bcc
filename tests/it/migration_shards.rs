//! `migrate --shard I/N` and `check --shard I/N` / `check --merge`: the built binary, N
//! processes at once against two real s3s-fs upstreams, as a Kubernetes Indexed Job runs them.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use crate::migration::{Migrating, config_text, read, rewrite_and_delete};
use crate::support::put_objects;

/// `s3ferry <args> --config <config> --bucket lazy --json`.
async fn run(config: &Path, args: &[String]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"))
        .args(args)
        .arg("--config")
        .arg(config)
        .args(["--bucket", "lazy", "--json"])
        .env("RUST_LOG", "warn")
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("JOB_COMPLETION_COUNT")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run s3ferry")
}

/// Runs `s3ferry <command> --shard i/N` for every i at once and returns each one's JSON report.
async fn every_shard(config: &Path, command: &[&str], shards: u32) -> Vec<serde_json::Value> {
    let runs = (0..shards).map(|i| {
        let mut args: Vec<String> = command.iter().map(|a| (*a).to_string()).collect();
        args.extend(["--shard".to_string(), format!("{i}/{shards}")]);
        async move { run(config, &args).await }
    });
    let outputs = tokio::time::timeout(Duration::from_secs(120), futures::future::join_all(runs))
        .await
        .expect("the shards finish");
    outputs
        .iter()
        .enumerate()
        .map(|(i, out)| {
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                panic!(
                    "shard {i} of {command:?}: {e}: {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
        })
        .collect()
}

/// Keys that cluster in one deep prefix, sort around it, and need escaping (none is also a
/// "directory" of another: s3s-fs keeps keys as file paths).
fn awkward_keys() -> Vec<String> {
    let mut keys: Vec<String> = (0..240).map(|i| format!("a/deep/x/{i:04}")).collect();
    keys.extend((0..50).map(|i| format!("m/{i}")));
    keys.extend(
        [
            "0",
            "A",
            "b+c d",
            "z/é/ü",
            "zz",
            "~tilde",
            "a/deep-end",
            "a/deep.x",
            "a/deep/y",
        ]
        .iter()
        .map(|k| (*k).to_string()),
    );
    keys
}

#[tokio::test]
async fn sharded_migration_copies_every_key_exactly_once_and_merged_checks_agree() {
    let m = Migrating::start().await;
    let keys = awkward_keys();
    put_objects(
        &m.old.direct_client(),
        "lazy",
        keys.iter().map(|k| (k.clone(), format!("old {k}").into_bytes())),
        16,
    )
    .await;
    m.old.quirks.read_only.store(true, std::sync::atomic::Ordering::Relaxed);
    // A client rewrites one key and deletes another before the migration.
    let c = m.client();
    rewrite_and_delete(&c, "lazy", "m/7", "a/deep/x/0100").await;
    let dir = tempfile::tempdir().expect("dir");
    let config: PathBuf = dir.path().join("config.toml");
    std::fs::write(&config, config_text(&m.new.endpoint(), &m.old.endpoint())).expect("config");
    let puts_before = m.new.quirks.received_count();

    let reports = every_shard(&config, &["migrate"], 3).await;
    let to_copy = keys.len() as u64 - 2;
    let mut copied = 0;
    let mut bounds = Vec::new();
    for (i, report) in reports.iter().enumerate() {
        assert_eq!(
            report["failed"].as_array().map(Vec::len),
            Some(0),
            "shard {i}: {report}"
        );
        assert_eq!(
            report["already_in_new"].as_u64(),
            Some(0),
            "shard {i} copied no key twice"
        );
        let planned = report["planned_objects"].as_u64().expect("planned");
        assert!((97..=100).contains(&planned), "shard {i} has a third: {planned}");
        copied += report["copied_objects"].as_u64().expect("copied");
        let range = &report["shard"]["range"];
        bounds.push((range["after"].clone(), range["through"].clone()));
    }
    assert_eq!(copied, to_copy, "every key copied");
    // The ranges follow each other: each starts where the one before ends.
    assert!(bounds[0].0.is_null() && bounds[2].1.is_null(), "{bounds:?}");
    assert_eq!(bounds[0].1, bounds[1].0);
    assert_eq!(bounds[1].1, bounds[2].0);
    // Exactly once: one PUT per copied key reached the new provider.
    let mut put_keys: Vec<String> = m
        .new
        .quirks
        .received_since(puts_before)
        .iter()
        .filter(|r| r.method == http::Method::PUT && !r.target.contains(".s3ferry"))
        .map(|r| r.target.clone())
        .collect();
    put_keys.sort();
    let total = put_keys.len();
    put_keys.dedup();
    assert_eq!(
        (total, put_keys.len() as u64),
        (put_keys.len(), to_copy),
        "one PUT per key"
    );
    assert_eq!(read(&c, "lazy", "m/7").await.expect("newer"), b"newer");
    assert_eq!(read(&c, "lazy", "a/deep/x/0100").await, Err("NoSuchKey".to_string()));

    // Each shard checks its range; the merged reports are the whole bucket's check.
    let checks = every_shard(&config, &["check", "--download"], 3).await;
    let files: Vec<PathBuf> = checks
        .iter()
        .enumerate()
        .map(|(i, report)| {
            let path = dir.path().join(format!("check-{i}.json"));
            std::fs::write(&path, report.to_string()).expect("report");
            path
        })
        .collect();
    let merge = |files: &[PathBuf]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"));
        command.args(["check", "--json", "--merge"]).args(files);
        async move { command.output().await.expect("run check --merge") }
    };
    let merged = merge(&files).await;
    let report: serde_json::Value = serde_json::from_slice(&merged.stdout).expect("merged report");
    let whole = run(&config, &["check".to_string(), "--download".to_string()]).await;
    let whole: serde_json::Value = serde_json::from_slice(&whole.stdout).expect("whole report");
    for field in [
        "matching",
        "unverified",
        "only_in_new",
        "deleted_through_s3ferry",
        "missing_in_new",
        "differ",
        "left_behind",
    ] {
        assert_eq!(report[field], whole[field], "{field}: merged {report} whole {whole}");
    }
    assert_eq!(report["matching"].as_u64(), Some(to_copy));
    assert_eq!(
        report["differ"],
        serde_json::json!(["m/7"]),
        "only the client's newer write"
    );
    assert_eq!(
        merged.status.code(),
        Some(1),
        "a difference fails the merged check as it fails a check"
    );
    // A merge without every shard says which is missing, rather than an "OK".
    let partial = merge(&files[..2]).await;
    assert_eq!(partial.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&partial.stderr).contains("shards [2] have no report"),
        "{}",
        String::from_utf8_lossy(&partial.stderr)
    );
    m.stop().await;
}

#[tokio::test]
async fn migrate_keeps_to_its_bandwidth_and_request_rate() {
    let m = Migrating::start().await;
    // Two sets of 24 objects of 10 kB: 240 kB each, and at least 3 provider requests per copy
    // (the GET, the PUT, the tombstone check after it).
    put_objects(
        &m.old.direct_client(),
        "lazy",
        ["bytes", "requests"]
            .iter()
            .flat_map(|set| (0..24).map(move |i| (format!("{set}/{i:02}"), vec![b'x'; 10_000]))),
        8,
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, config_text(&m.new.endpoint(), &m.old.endpoint())).expect("config");
    let timed_migrate = |limit: [&'static str; 4]| {
        let config = config.clone();
        async move {
            let mut args = vec!["migrate".to_string()];
            args.extend(limit.iter().map(|a| (*a).to_string()));
            let started = std::time::Instant::now();
            let out = run(&config, &args).await;
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("report");
            assert_eq!(report["copied_objects"].as_u64(), Some(24), "{report}");
            started.elapsed()
        }
    };
    // 50 kB/s after a burst of 50 kB: the first six objects go at once, each later one waits
    // a fifth of a second for the one before (18 x 0.2 s).
    let took = timed_migrate(["--prefix", "bytes/", "--bandwidth", "50kB"]).await;
    assert!(took >= Duration::from_millis(3400), "240 kB at 50 kB/s took {took:?}");
    // 20 requests/s after a burst of 20: at least 72 requests (and the listings) take at
    // least 2.6 s.
    let took = timed_migrate(["--prefix", "requests/", "--max-requests-per-second", "20"]).await;
    assert!(
        took >= Duration::from_millis(2600),
        "over 72 requests at 20/s took {took:?}"
    );
    m.stop().await;
}
