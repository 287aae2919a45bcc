//! `s3ferry probe` against the provider stand-ins of this suite (s3s-fs, B2-like, R2-like,
//! GCS-like, SigV2-only, OSS-like, V1-only, moto): what it finds, and that the settings it
//! prints, added to a plain `aws` provider, make s3ferry work with that provider where the
//! plain `aws` profile fails.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::StorageClass;
use s3ferry::checksum::ChecksumAlgorithm;
use s3ferry::config::{Config, SignatureVersion};
use s3ferry::dialect::{ConditionalWrites, EtagCase};
use s3ferry::probe::report::{Suggestion, differences, overrides_toml, suggest};
use s3ferry::probe::{Answer, Findings, ProbeOptions, probe};
use s3ferry::s3::addressing::Addressing;

use crate::support::oss::OssLike;
use crate::support::v1_only::V1Only;
use crate::support::{
    TestUpstream, UPSTREAM_KEY, UPSTREAM_SECRET, config_preamble, error_code, single_provider_config,
    single_provider_gateway,
};

/// What `s3ferry probe --write` finds at the provider (`dialect` as configured now), the
/// settings that fit, and those settings as the TOML it prints.
async fn probe_provider(
    endpoint: &str,
    key: &str,
    secret: &str,
    bucket: &str,
    extra: &str,
) -> (Findings, Suggestion, String) {
    let config = single_provider_config(endpoint, key, secret, "aws", extra);
    let (providers, _local) = s3ferry::server::start_providers(&config).await.expect("providers");
    let settings = &providers["up"].settings;
    let options = ProbeOptions {
        bucket: Some(bucket.to_string()),
        write: true,
        timeout: Duration::from_secs(20),
    };
    let findings = probe(settings, &options).await.expect("probe");
    let suggestion = suggest(&findings, settings.addressing);
    let toml = overrides_toml("up", &suggestion);
    (findings, suggestion, toml)
}

/// The printed TOML merged into a provider table (its `[providers.up]` lines join the table the
/// test config already has).
fn as_extra(toml: &str) -> String {
    toml.replacen("[providers.up]\n", "", 1)
}

/// The printed settings, on a plain `aws` provider, read back by the config as they were meant.
fn assert_applies(endpoint: &str, key: &str, secret: &str, s: &Suggestion, toml: &str) {
    let config: Config = single_provider_config(endpoint, key, secret, "aws", &as_extra(toml));
    let p = config.providers.get("up").expect("provider up");
    let signature = match &p.kind {
        s3ferry::config::ProviderKind::Remote(r) => r.signature,
        other => panic!("not remote: {other:?}"),
    };
    let (addressing, profile) = (p.addressing, &p.profile);
    assert_eq!(
        differences(s, addressing, signature, profile),
        Vec::new(),
        "the printed settings, applied, say what the probe found:\n{toml}"
    );
}

fn accepted(a: &Answer) -> bool {
    a.accepted() == Some(true)
}

#[tokio::test]
async fn probe_finds_what_s3s_fs_takes_and_cleans_up_after_itself() {
    let up = TestUpstream::path_style().await;
    up.create_bucket("probed");
    let (f, s, toml) = probe_provider(&up.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "probed", "").await;
    assert!(accepted(&f.path_style) && accepted(&f.sigv4), "{f:?}");
    assert_eq!(f.missing_key_code.as_deref(), Some("NoSuchKey"));
    // s3s-fs answers a GET of a key in a missing bucket with NoSuchKey (S3 says NoSuchBucket):
    // the probe reports what the store says.
    assert_eq!(f.missing_bucket_code.as_deref(), Some("NoSuchKey"));
    assert_eq!(s.etag_case, Some(EtagCase::Lower));
    assert_eq!(s.list_objects_v2, Some(true));
    assert_eq!(
        s.checksum_algorithms.as_ref().map(Vec::len),
        Some(ChecksumAlgorithm::ALL.len())
    );
    // s3s-fs returns keys raw under encoding-type=url and has no ACL API (test-environment notes).
    assert_eq!(s.url_encoded_listings, Some(false), "{toml}");
    assert_eq!((s.acl_api, s.acl_headers), (Some(false), Some(false)), "{toml}");
    assert_applies(&up.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, &s, &toml);
    // Nothing of the probe is left.
    let listed = up
        .direct_client()
        .list_objects_v2()
        .bucket("probed")
        .send()
        .await
        .expect("list");
    assert_eq!(listed.key_count(), Some(0), "{:?}", listed.contents());
}

#[tokio::test]
async fn probe_of_a_b2_like_store_prints_settings_that_make_it_work_through_s3ferry() {
    let b2 = TestUpstream::path_style().await;
    b2.create_bucket("b2probe");
    b2.quirks.b2_checksums.store(true, Ordering::Relaxed);
    b2.quirks.b2_standard_only.store(true, Ordering::Relaxed);
    let (f, s, toml) = probe_provider(&b2.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "b2probe", "").await;
    assert!(f.checksums.iter().all(|(_, a)| !accepted(a)), "{:?}", f.checksums);
    assert_eq!(s.checksum_algorithms, Some(Vec::new()));
    assert_eq!(s.content_md5_required, Some(true));
    assert_eq!(s.unsigned_trailer, Some(false));
    assert_eq!(s.storage_classes, Some(vec![("*".into(), "STANDARD".into())]), "{toml}");
    assert_applies(&b2.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, &s, &toml);

    // A plain `aws` provider fails there: the SDK's default CRC32 is refused.
    let (_plain, plain) = single_provider_gateway(&b2.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "aws", "").await;
    let refused = plain
        .put_object()
        .bucket("b2probe")
        .key("k")
        .body(ByteStream::from_static(b"data"))
        .send()
        .await
        .expect_err("B2 refuses the checksum header");
    assert_eq!(error_code(&refused), "InvalidArgument");
    // With the printed settings it works: checksums, DeleteObjects, storage classes.
    let (_g, client) =
        single_provider_gateway(&b2.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "aws", &as_extra(&toml)).await;
    client
        .put_object()
        .bucket("b2probe")
        .key("k")
        .storage_class(StorageClass::StandardIa)
        .body(ByteStream::from_static(b"data"))
        .send()
        .await
        .expect("put with a checksum and a class B2 lacks");
    let delete = aws_sdk_s3::types::Delete::builder()
        .objects(
            aws_sdk_s3::types::ObjectIdentifier::builder()
                .key("k")
                .build()
                .expect("id"),
        )
        .build()
        .expect("delete");
    client
        .delete_objects()
        .bucket("b2probe")
        .delete(delete)
        .send()
        .await
        .expect("DeleteObjects gets Content-MD5");
}

#[tokio::test]
async fn probe_finds_r2_gcs_and_sigv2_only_quirks() {
    // R2-like: no ACL headers, CRC64NVME only as a full-object checksum.
    let r2 = TestUpstream::path_style().await;
    r2.create_bucket("r2probe");
    r2.quirks.reject_acl_headers.store(true, Ordering::Relaxed);
    r2.quirks.r2_no_composite_crc64nvme.store(true, Ordering::Relaxed);
    let (_, s, toml) = probe_provider(&r2.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "r2probe", "").await;
    let algorithms = s.checksum_algorithms.clone().expect("probed");
    assert!(
        !algorithms.contains(&ChecksumAlgorithm::Crc64Nvme) && algorithms.len() == 4,
        "{toml}"
    );
    assert_eq!((s.acl_headers, s.grants), (Some(false), Some(false)), "{toml}");
    assert_applies(&r2.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, &s, &toml);
    // The R2 dialect test's CRC64NVME multipart upload passes on a plain `aws` provider with
    // the printed settings.
    let (_g, client) =
        single_provider_gateway(&r2.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "aws", &as_extra(&toml)).await;
    crate::dialects::crc64nvme_multipart_round_trip(&client, "r2probe").await;

    // GCS-like: no UploadPartCopy.
    let gcs = TestUpstream::path_style().await;
    gcs.create_bucket("gcsprobe");
    gcs.quirks.no_upload_part_copy.store(true, Ordering::Relaxed);
    let (_, s, toml) = probe_provider(&gcs.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "gcsprobe", "").await;
    assert_eq!(s.upload_part_copy, Some(false), "{toml}");

    // SigV2-only: SigV4 refused, SigV2 taken.
    let old = TestUpstream::path_style().await;
    old.create_bucket("v2probe");
    old.quirks.sigv2_only.store(true, Ordering::Relaxed);
    let (f, s, toml) = probe_provider(&old.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "v2probe", "").await;
    assert!(!accepted(&f.sigv4) && accepted(&f.sigv2), "{f:?}");
    assert_eq!(s.signature, Some(SignatureVersion::V2), "{toml}");
    assert_applies(&old.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, &s, &toml);
    let (_g, client) =
        single_provider_gateway(&old.endpoint(), UPSTREAM_KEY, UPSTREAM_SECRET, "aws", &as_extra(&toml)).await;
    client
        .put_object()
        .bucket("v2probe")
        .key("k")
        .body(ByteStream::from_static(b"signed with v2"))
        .send()
        .await
        .expect("put re-signed with SigV2");
}

#[tokio::test]
async fn probe_finds_oss_and_v1_only_quirks_over_moto() {
    // OSS-like: virtual-hosted only, uppercase ETags, its own conditional form, three ACLs.
    let oss = OssLike::start(&["ossprobe"]).await;
    let (f, s, toml) = probe_provider(&oss.endpoint(), "oss", "oss", "ossprobe", "addressing = \"virtual\"").await;
    assert!(!accepted(&f.path_style) && accepted(&f.virtual_style), "{f:?}");
    assert_eq!(s.addressing, Some(Addressing::Virtual));
    assert_eq!(s.etag_case, Some(EtagCase::Upper), "{toml}");
    assert_eq!(
        s.conditional_writes,
        Some(ConditionalWrites::OssForbidOverwrite),
        "{toml}"
    );
    assert_eq!(s.checksum_algorithms, Some(Vec::new()), "{toml}");
    assert_applies(&oss.endpoint(), "oss", "oss", &s, &toml);
    // With the printed settings on a plain `aws` provider, ETags reach the client lowercase.
    let (_g, client) = single_provider_gateway(&oss.endpoint(), "oss", "oss", "aws", &as_extra(&toml)).await;
    let put = client
        .put_object()
        .bucket("ossprobe")
        .key("k")
        .body(ByteStream::from_static(b"etag case"))
        .send()
        .await
        .expect("put through s3ferry");
    let etag = put.e_tag().unwrap_or_default().to_string();
    assert_eq!(etag, etag.to_ascii_lowercase());
    assert!(etag.len() > 2);

    // V1-only: `list-type=2` answered as V1.
    let v1 = V1Only::start(&["v1probe"]).await;
    let (f, s, toml) = probe_provider(&v1.endpoint(), "v1", "v1", "v1probe", "").await;
    assert_eq!(f.list_objects_v2, Answer::Ignored);
    assert_eq!(s.list_objects_v2, Some(false), "{toml}");
    assert_applies(&v1.endpoint(), "v1", "v1", &s, &toml);

    // moto as it is: AWS's behaviour, and the `aws` profile's settings.
    let moto = crate::support::moto::Moto::start().await;
    moto.direct()
        .create_bucket()
        .bucket("motoprobe")
        .send()
        .await
        .expect("bucket");
    let (f, s, toml) = probe_provider(&moto.endpoint(), "moto", "moto", "motoprobe", "").await;
    assert!(
        accepted(&f.sigv4) && f.checksums.iter().all(|(_, a)| accepted(a)),
        "{f:?}"
    );
    assert_eq!(s.etag_case, Some(EtagCase::Lower));
    assert_eq!(s.list_objects_v2, Some(true), "{toml}");
    assert_applies(&moto.endpoint(), "moto", "moto", &s, &toml);
}

/// The command line: a read-only probe as JSON, a refusal for an unknown provider.
#[tokio::test]
async fn probe_command_prints_json_and_names_unknown_providers() {
    let up = TestUpstream::path_style().await;
    up.create_bucket("cli");
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("probe.toml");
    let text = format!(
        "{}\n[[buckets]]\nname = \"*\"\nprovider = \"up\"\n{}",
        config_preamble(),
        crate::support::s3_provider_table("up", &up.endpoint())
    );
    std::fs::write(&path, &text).expect("write config");
    Config::parse(&text, "probe.toml", Path::new("."), &|_| None).expect("valid");
    let run_path = path.clone();
    let run = move |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"))
            .arg("probe")
            .arg("--config")
            .arg(&run_path)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("s3ferry probe runs")
    };
    let args = ["--provider", "up", "--bucket", "cli", "--json"];
    let out = tokio::task::spawn_blocking(move || run(&args)).await.expect("join");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["findings"]["list_objects_v2"]["outcome"], "accepted");
    assert_eq!(
        report["findings"]["unsigned_trailer"]["outcome"], "not_probed",
        "read-only by default"
    );
    assert!(
        report["toml"]
            .as_str()
            .is_some_and(|t| t.contains("list_objects_v2 = true"))
    );
    let path2 = path.clone();
    let unknown = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"))
            .args(["probe", "--provider", "nowhere", "--config"])
            .arg(&path2)
            .output()
            .expect("runs")
    })
    .await
    .expect("join");
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no provider 'nowhere'"));
}
