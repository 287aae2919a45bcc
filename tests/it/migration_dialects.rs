//! Lazy migration between providers of different dialects: an OSS-like old provider (moto
//! behind a wrapper: uppercase ETags, IA/Archive class names) and a V1-only old provider (moto
//! behind a wrapper that ignores the ListObjectsV2 parameters, like older Ceph RGW), with
//! s3s-fs or moto as the new provider. What s3ferry lists, copies, migrates and checks itself
//! must come out in the client's (AWS) form and see every key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumMode, StorageClass};
use s3ferry::checksum::ChecksumAlgorithm;
use s3ferry::config::Config;
use s3ferry::migration::MigrationStats;
use s3ferry::server::RunningGateway;

use crate::dialects::md5_etag;
use crate::migration::wait_for;
use crate::support::moto::Moto;
use crate::support::oss::OssLike;
use crate::support::v1_only::V1Only;
use crate::support::{
    CLIENT_KEY, CLIENT_SECRET, TestUpstream, UPSTREAM_KEY, UPSTREAM_SECRET, list_keys_v1, put_objects, sdk_client,
};

/// The two providers of bucket `photos`: `new` (bucket `photos`) and `old` (bucket
/// `photos-old`), each with its dialect, key and extra provider settings.
struct Sides<'a> {
    new_endpoint: &'a str,
    new_key: (&'a str, &'a str),
    new_extra: &'a str,
    old_endpoint: &'a str,
    old_dialect: &'a str,
    old_key: &'a str,
}

fn config_text(sides: &Sides<'_>) -> String {
    let Sides {
        new_endpoint,
        new_key: (new_key, new_secret),
        new_extra,
        old_endpoint,
        old_dialect,
        old_key,
    } = sides;
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[[credentials]]
access_key_id = "{CLIENT_KEY}"
secret_access_key = "{CLIENT_SECRET}"
grants = "all"
[providers.old]
endpoint = "{old_endpoint}"
access_key_id = "{old_key}"
secret_access_key = "{old_key}"
dialect = "{old_dialect}"
read_timeout_secs = 20
[providers.new]
endpoint = "{new_endpoint}"
access_key_id = "{new_key}"
secret_access_key = "{new_secret}"
read_timeout_secs = 20
{new_extra}
[[buckets]]
name = "photos"
provider = "new"
fallback = "old"
fallback_bucket = "photos-old"
copy_on_read = true
[migration]
copy_workers = 2
copy_retries = 0
"#
    )
}

/// The gateway for `sides`, its config file (for the CLI) and a client.
async fn start(sides: &Sides<'_>) -> (RunningGateway, tempfile::TempDir, aws_sdk_s3::Client) {
    let text = config_text(sides);
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("config.toml"), &text).expect("config file");
    let config = Config::parse(&text, "migration-dialects.toml", Path::new("."), &|_| None).expect("config");
    let gateway = s3ferry::server::start(&config).await.expect("gateway");
    let client = sdk_client(
        &format!("http://127.0.0.1:{}", gateway.addr().port()),
        CLIENT_KEY,
        CLIENT_SECRET,
        true,
    );
    (gateway, dir, client)
}

/// Runs `s3ferry <args> --bucket photos --json`; the exit code and the JSON report.
async fn run_cli(config_dir: &Path, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let config: PathBuf = config_dir.join("config.toml");
    // tokio's Command: the upstreams run on this test's runtime, so it must not block.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"))
        .args(args)
        .arg("--config")
        .arg(&config)
        .args(["--bucket", "photos", "--json"])
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run s3ferry");
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: no JSON report ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), report)
}

/// Puts `data` into the OSS-like store directly; `oss_class` goes in OSS's native header
/// (the emulator ignores `x-amz-storage-class` on upload, as OSS does).
async fn put_oss(oss: &OssLike, key: &str, data: &[u8], oss_class: Option<&'static str>, meta: Option<(&str, &str)>) {
    let mut put = oss
        .direct_without_checksums()
        .put_object()
        .bucket("photos-old")
        .key(key)
        .body(ByteStream::from(data.to_vec()));
    if let Some((name, value)) = meta {
        put = put.metadata(name, value);
    }
    put.customize()
        .mutate_request(move |req| {
            if let Some(class) = oss_class {
                req.headers_mut().insert("x-oss-storage-class", class);
            }
        })
        .send()
        .await
        .expect("seed the OSS-like store");
}

#[tokio::test]
async fn migration_from_oss_lists_reads_copies_migrates_and_checks_in_the_clients_dialect() {
    let oss = OssLike::start(&["photos-old"]).await;
    let new = TestUpstream::path_style().await;
    new.create_bucket("photos");
    let sum_data = b"checksummed by s3ferry";
    let crc32 = ChecksumAlgorithm::Crc32.of(sum_data);
    let objects: &[(&str, &[u8], Option<&'static str>)] = &[
        ("a.txt", b"alpha", None),
        ("b.txt", b"bravo, infrequently", Some("IA")),
        ("c/d.txt", b"charlie delta", None),
        ("cond.txt", b"conditional", None),
        ("ia.txt", b"infrequent access", Some("IA")),
    ];
    for (key, data, class) in objects {
        put_oss(&oss, key, data, *class, None).await;
    }
    // What s3ferry stores for a checksum the OSS dialect cannot keep (src/checksum.rs).
    put_oss(
        &oss,
        "sum.txt",
        sum_data,
        None,
        Some(("s3ferry-checksum-crc32", &crc32)),
    )
    .await;
    // s3s-fs stores no class but STANDARD / REDUCED_REDUNDANCY: a provider table says so.
    let sides = Sides {
        new_endpoint: &new.endpoint(),
        new_key: (UPSTREAM_KEY, UPSTREAM_SECRET),
        new_extra: "[providers.new.storage_classes]\nSTANDARD_IA = \"STANDARD\"",
        old_endpoint: &oss.endpoint(),
        old_dialect: "oss",
        old_key: "oss",
    };
    let (g, config_dir, c) = start(&sides).await;
    c.put_object()
        .bucket("photos")
        .key("n.txt")
        .body(ByteStream::from_static(b"new"))
        .send()
        .await
        .expect("put to new");

    // The merged listing: the old side's ETags lowercase, its classes in AWS names.
    let v2 = c.list_objects_v2().bucket("photos").send().await.expect("merged v2");
    let v1 = c.list_objects().bucket("photos").send().await.expect("merged v1");
    let v2_objects: Vec<_> = v2
        .contents()
        .iter()
        .map(|o| (o.key(), o.e_tag(), o.storage_class().cloned()))
        .collect();
    let v1_objects: Vec<_> = v1
        .contents()
        .iter()
        .map(|o| (o.key(), o.e_tag(), o.storage_class().cloned()))
        .collect();
    assert_eq!(v2_objects, v1_objects);
    let mut expected: Vec<(&str, String, &str)> = objects
        .iter()
        .map(|(key, data, class)| {
            (
                *key,
                md5_etag(data),
                if class.is_some() { "STANDARD_IA" } else { "STANDARD" },
            )
        })
        .collect();
    expected.push(("n.txt", String::new(), "STANDARD")); // s3s-fs lists no ETag
    expected.push(("sum.txt", md5_etag(sum_data), "STANDARD"));
    expected.sort();
    let listed: Vec<(&str, String, &str)> = v2_objects
        .iter()
        .map(|(k, e, s)| {
            (
                k.expect("key"),
                e.unwrap_or_default().to_string(),
                s.as_ref().map_or("", |c| c.as_str()),
            )
        })
        .collect();
    assert_eq!(listed, expected);

    // If-Match with the ETag the client saw (lowercase) matches the old copy (OSS: uppercase).
    c.put_object()
        .bucket("photos")
        .key("cond.txt")
        .if_match(md5_etag(b"conditional"))
        .body(ByteStream::from_static(b"conditional"))
        .send()
        .await
        .expect("If-Match in the client's form matches the old provider's object");

    // Fallback reads; copies land in the new provider (IA mapped old -> AWS -> new).
    for (key, data) in [
        ("a.txt", &b"alpha"[..]),
        ("ia.txt", b"infrequent access"),
        ("sum.txt", sum_data),
    ] {
        let got = c
            .get_object()
            .bucket("photos")
            .key(key)
            .send()
            .await
            .expect("fallback GET");
        assert_eq!(got.e_tag(), Some(md5_etag(data).as_str()), "{key}");
        assert_eq!(got.body.collect().await.expect("body").into_bytes().as_ref(), data);
    }
    let stats = g.migration_stats();
    wait_for("three copies on read", || MigrationStats::get(&stats.copies_done) == 3).await;
    assert_eq!(MigrationStats::get(&stats.copies_failed), 0);
    for key in ["a.txt", "ia.txt", "sum.txt"] {
        assert!(new.has_object("photos", key).await, "{key} copied");
    }
    // s3ferry's stored checksum travelled with the copy, and still answers checksum mode.
    let head = new
        .direct_client()
        .head_object()
        .bucket("photos")
        .key("sum.txt")
        .send()
        .await
        .expect("head of the copy");
    assert_eq!(
        head.metadata().and_then(|m| m.get("s3ferry-checksum-crc32")),
        Some(&crc32)
    );
    let got = c
        .get_object()
        .bucket("photos")
        .key("sum.txt")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .expect("GET from new");
    assert_eq!(got.checksum_crc32(), Some(crc32.as_str()));
    assert!(got.metadata().is_none_or(|m| !m.contains_key("s3ferry-checksum-crc32")));

    // migrate copies what is left (b.txt in IA, c/d.txt); check finds both sides consistent.
    let (code, report) = run_cli(config_dir.path(), &["migrate"]).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["copied_objects"].as_u64(), Some(2), "{report}");
    assert_eq!(report["failed"].as_array().map(Vec::len), Some(0), "{report}");
    let (code, report) = run_cli(config_dir.path(), &["check"]).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["missing_in_new"].as_array().map(Vec::len), Some(0), "{report}");
    assert_eq!(report["differ"].as_array().map(Vec::len), Some(0), "{report}");
    let (code, report) = run_cli(config_dir.path(), &["check", "--download"]).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["matching"].as_u64(), Some(6), "{report}");
    assert_eq!(report["only_in_new"].as_u64(), Some(1), "{report}");
    g.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn migration_from_oss_to_aws_keeps_storage_classes_and_check_matches_etags_across_case() {
    let oss = OssLike::start(&["photos-old"]).await;
    let moto = Moto::start().await;
    moto.direct()
        .create_bucket()
        .bucket("photos")
        .send()
        .await
        .expect("bucket");
    put_oss(&oss, "ia.txt", b"infrequent access", Some("IA"), None).await;
    put_oss(&oss, "s.txt", b"standard", None, None).await;
    let sides = Sides {
        new_endpoint: &moto.endpoint(),
        new_key: ("moto", "moto"),
        new_extra: "",
        old_endpoint: &oss.endpoint(),
        old_dialect: "oss",
        old_key: "oss",
    };
    let (g, config_dir, c) = start(&sides).await;

    let got = c
        .get_object()
        .bucket("photos")
        .key("ia.txt")
        .send()
        .await
        .expect("fallback GET");
    assert_eq!(got.storage_class(), Some(&StorageClass::StandardIa));
    let stats = g.migration_stats();
    wait_for("the copy on read", || MigrationStats::get(&stats.copies_done) == 1).await;
    let head = moto
        .direct()
        .head_object()
        .bucket("photos")
        .key("ia.txt")
        .send()
        .await
        .expect("head of the copy");
    assert_eq!(
        head.storage_class(),
        Some(&StorageClass::StandardIa),
        "OSS IA lands as AWS STANDARD_IA"
    );

    let (code, report) = run_cli(config_dir.path(), &["migrate"]).await;
    assert_eq!(
        (code, report["copied_objects"].as_u64()),
        (Some(0), Some(1)),
        "{report}"
    );
    // Both list ETags: OSS uppercase, moto lowercase; compared in the client's form they match.
    let (code, report) = run_cli(config_dir.path(), &["check"]).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(
        (report["matching"].as_u64(), report["unverified"].as_u64()),
        (Some(2), Some(0)),
        "{report}"
    );
    g.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn migration_from_a_v1_only_provider_lists_and_migrates_every_key() {
    // More keys than one provider page (1,000), so every side is paginated.
    const OLD_KEYS: usize = 1050;
    let store = V1Only::start(&["photos-old"]).await;
    put_objects(
        &store.direct(),
        "photos-old",
        (0..OLD_KEYS).map(|i| (format!("k{i:05}"), format!("old {i}").into_bytes())),
        16,
    )
    .await;
    let new = TestUpstream::path_style().await;
    new.create_bucket("photos");
    // 100 keys only in the new provider, interleaved with the old ones.
    for i in 0..100 {
        std::fs::write(new.bucket_dir("photos").join(format!("k{:05}n", i * 10)), b"new").expect("seed new");
    }
    let sides = Sides {
        new_endpoint: &new.endpoint(),
        new_key: (UPSTREAM_KEY, UPSTREAM_SECRET),
        new_extra: "",
        old_endpoint: &store.endpoint(),
        old_dialect: "ceph",
        old_key: "v1",
    };
    let (g, config_dir, c) = start(&sides).await;
    let mut expected: Vec<String> = (0..OLD_KEYS).map(|i| format!("k{i:05}")).collect();
    expected.extend((0..100).map(|i| format!("k{:05}n", i * 10)));
    expected.sort();

    let mut v2 = Vec::new();
    let mut pages = c
        .list_objects_v2()
        .bucket("photos")
        .max_keys(1000)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        v2.extend(
            page.expect("page")
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
    }
    assert_eq!(v2.len(), expected.len());
    assert_eq!(v2, expected, "every key of both providers once, in order");
    let v1 = list_keys_v1(&c, "photos", 1000).await;
    assert_eq!(v1, expected);
    let asked = store.received_get_queries();
    assert!(
        asked.iter().all(|q| !q.contains("list-type=2")),
        "the store is only ever asked for V1: {asked:?}"
    );
    assert!(asked.iter().any(|q| q.contains("marker=")), "{asked:?}");

    let (code, report) = run_cli(config_dir.path(), &["migrate"]).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["copied_objects"].as_u64(), Some(OLD_KEYS as u64), "{report}");
    let (code, report) = run_cli(config_dir.path(), &["check"]).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["missing_in_new"].as_array().map(Vec::len), Some(0), "{report}");
    // s3s-fs lists no ETags: without --download the copies count as unverified.
    assert_eq!(report["unverified"].as_u64(), Some(OLD_KEYS as u64), "{report}");
    assert_eq!(report["only_in_new"].as_u64(), Some(100), "{report}");
    assert_eq!(
        std::fs::read(new.bucket_dir("photos").join("k01049")).expect("the last old key was copied"),
        b"old 1049"
    );
    g.shutdown(Duration::from_secs(2)).await;
}
