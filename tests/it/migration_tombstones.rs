//! Deletes, tombstones and what a migration leaves behind, through the real listener against
//! real upstreams: s3s-fs (both sides, on disk where thousands of objects are seeded), moto
//! where keys must reach S3's 1,024 bytes or keep `..` segments (s3s-fs and the local provider
//! keep each key in one file name, about 135 bytes at most), and a thin wrapper for what a
//! test server does not do itself (AWS's 1,024-byte key limit, an IAM policy that denies
//! deletes, B2's demand for Content-MD5).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use md5::Digest as _;
use s3ferry::config::Config;
use s3ferry::migration::MigrationStats;

use crate::migration::{Migrating, read, wait_for};
use crate::support::moto::{Moto, MotoClient, Wrapped, forward};
use crate::support::raw::{self, RawResponse, Signer, full_body, sha256_hex};
use crate::support::{CLIENT_KEY, CLIENT_SECRET, TestUpstream, UPSTREAM_KEY, UPSTREAM_SECRET, sdk_client};

fn signer(addr: SocketAddr) -> Signer<'static> {
    Signer {
        addr,
        key: CLIENT_KEY,
        secret: CLIENT_SECRET,
        time: time::OffsetDateTime::now_utc(),
    }
}

/// A DeleteObjects body naming `keys`, written as they are (entities or CDATA included).
fn delete_body(keys: &[String]) -> String {
    let objects: String = keys
        .iter()
        .map(|k| format!("<Object><Key>{k}</Key></Object>"))
        .collect();
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete>{objects}</Delete>")
}

/// POST `/<bucket>?delete` through the gateway at `addr`, raw, with `Content-MD5` when
/// `with_md5`.
async fn delete_objects(addr: SocketAddr, bucket: &str, body: &str, with_md5: bool) -> RawResponse {
    let mut headers = HeaderMap::new();
    if with_md5 {
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()));
        headers.insert("content-md5", HeaderValue::from_str(&md5).expect("md5"));
    }
    let (req, _) = signer(addr).sign(
        Method::POST,
        &format!("/{bucket}?delete"),
        headers,
        &sha256_hex(body.as_bytes()),
    );
    raw::send(req.body(full_body(body.to_string())).expect("request")).await
}

/// `DELETE /<bucket>/<key>` through the gateway, raw (no SDK retries).
async fn delete_object(addr: SocketAddr, bucket: &str, key: &str) -> RawResponse {
    let (req, _) = signer(addr).sign(
        Method::DELETE,
        &format!("/{bucket}/{key}"),
        HeaderMap::new(),
        &sha256_hex(b""),
    );
    raw::send(req.body(full_body("")).expect("request")).await
}

async fn listed_keys(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let listed = client.list_objects_v2().bucket(bucket).send().await.expect("list");
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn delete_objects_keys_written_as_cdata_or_entities_are_tombstoned() {
    // moto on both sides: it reads CDATA in a DeleteObjects body as AWS does (s3s skips it).
    let moto = Moto::start().await;
    let direct = moto.direct();
    for b in ["files-new", "files-old"] {
        direct.create_bucket().bucket(b).send().await.expect("bucket");
    }
    for key in ["a&b.txt", "c<d>.txt", "plain.txt", "kept.txt"] {
        direct
            .put_object()
            .bucket("files-old")
            .key(key)
            .body(ByteStream::from_static(b"old"))
            .send()
            .await
            .expect("seed old");
    }
    let toml = moto_migration_config(&moto.endpoint(), "aws", &moto.endpoint());
    let config = Config::parse(&toml, "cdata.toml", Path::new("."), &|_| None).expect("config");
    let g = s3ferry::server::start(&config).await.expect("gateway");
    let keys = [
        "<![CDATA[a&b.txt]]>".to_string(),
        "c&lt;d&#62;.txt".to_string(),
        // One key in three pieces: text, CDATA, text.
        "pla<![CDATA[in]]>.txt".to_string(),
    ];
    let response = delete_objects(g.addr(), "files", &delete_body(&keys), true).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let c = crate::support::gateway_client(g.addr());
    for key in ["a&b.txt", "c<d>.txt", "plain.txt"] {
        assert_eq!(
            read(&c, "files", key).await,
            Err("NoSuchKey".to_string()),
            "{key} stays deleted"
        );
    }
    assert_eq!(listed_keys(&c, "files").await, vec!["kept.txt".to_string()]);
    assert_eq!(MigrationStats::get(&g.migration_stats().tombstones), 3);
    g.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn delete_objects_over_1000_keys_is_malformed_xml_and_reaches_no_provider() {
    let m = Migrating::start().await;
    m.seed_old("lazy", &[("k0000", b"old")]).await;
    let (new_before, old_before) = (m.new.quirks.received_count(), m.old.quirks.received_count());
    let keys: Vec<String> = (0..1001).map(|i| format!("k{i:04}")).collect();
    let response = delete_objects(m.gateway().addr(), "lazy", &delete_body(&keys), true).await;
    assert_eq!(
        (response.status, response.code().as_str()),
        (400, "MalformedXML"),
        "{}",
        response.body
    );
    assert_eq!(m.new.quirks.received_count(), new_before, "no tombstone, no delete");
    assert_eq!(m.old.quirks.received_count(), old_before);
    assert_eq!(read(&m.client(), "lazy", "k0000").await.expect("still there"), b"old");
    // 1,000 is allowed.
    let response = delete_objects(m.gateway().addr(), "lazy", &delete_body(&keys[..1000]), true).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(read(&m.client(), "lazy", "k0000").await, Err("NoSuchKey".to_string()));
    m.stop().await;
}

#[tokio::test]
async fn a_delete_objects_the_provider_refuses_hides_nothing() {
    let m = Migrating::start().await;
    m.seed_old("lazy", &[("doc.txt", b"old doc")]).await;
    // The new provider demands Content-MD5 on DeleteObjects (as AWS demands a checksum); the
    // client sends none, so the provider refuses the whole request.
    m.new.quirks.b2_checksums.store(true, Ordering::Relaxed);
    let body = delete_body(&["doc.txt".to_string()]);
    let response = delete_objects(m.gateway().addr(), "lazy", &body, false).await;
    assert_eq!(
        (response.status, response.code().as_str()),
        (400, "InvalidRequest"),
        "{}",
        response.body
    );
    m.new.quirks.b2_checksums.store(false, Ordering::Relaxed);
    let c = m.client();
    assert_eq!(
        read(&c, "lazy", "doc.txt")
            .await
            .expect("the client was told it failed"),
        b"old doc"
    );
    assert_eq!(listed_keys(&c, "lazy").await, vec!["doc.txt".to_string()]);
    assert!(
        !m.new.has_object("lazy", ".s3ferry/tombstones/doc.txt").await,
        "no tombstone left"
    );
    assert_eq!(MigrationStats::get(&m.stats().tombstones), 0);
    // The same request with its checksum deletes.
    let response = delete_objects(m.gateway().addr(), "lazy", &body, true).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(read(&c, "lazy", "doc.txt").await, Err("NoSuchKey".to_string()));
    m.stop().await;
}

#[tokio::test]
async fn a_delete_object_the_provider_refuses_hides_nothing() {
    let m = Migrating::start().await;
    m.seed_old("lazy", &[("protected/contract.pdf", b"signed"), ("free.txt", b"f")])
        .await;
    *m.new.quirks.deny_deletes_under.lock().expect("lock") = Some("/lazy/protected/".into());
    let response = delete_object(m.gateway().addr(), "lazy", "protected/contract.pdf").await;
    assert_eq!(
        (response.status, response.code().as_str()),
        (403, "AccessDenied"),
        "{}",
        response.body
    );
    let c = m.client();
    assert_eq!(
        read(&c, "lazy", "protected/contract.pdf")
            .await
            .expect("still readable"),
        b"signed"
    );
    assert!(
        !m.new
            .has_object("lazy", ".s3ferry/tombstones/protected/contract.pdf")
            .await
    );
    // A delete the provider accepts keeps its tombstone.
    assert_eq!(delete_object(m.gateway().addr(), "lazy", "free.txt").await.status, 204);
    assert_eq!(read(&c, "lazy", "free.txt").await, Err("NoSuchKey".to_string()));
    assert_eq!(
        listed_keys(&c, "lazy").await,
        vec!["protected/contract.pdf".to_string()]
    );
    assert_eq!(MigrationStats::get(&m.stats().tombstones), 1);
    m.stop().await;
}

/// The LISTs (V2 or V1) that reached `upstream` after the first `since` requests.
fn lists_since(upstream: &TestUpstream, since: usize) -> usize {
    upstream
        .quirks
        .received_since(since)
        .iter()
        .filter(|r| r.method == Method::GET && r.target.starts_with("/lazy?"))
        .count()
}

#[tokio::test]
async fn listing_pages_cost_a_few_provider_lists_whatever_the_number_of_tombstones() {
    let m = Migrating::start().await;
    // 200 old keys and 100 new ones, seeded on disk (s3s-fs serves its directory).
    for i in 0..200 {
        let dir = m.old.bucket_dir("lazy").join("live");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join(format!("{i:04}")), b"old").expect("seed old");
    }
    for i in 0..100 {
        let dir = m.new.bucket_dir("lazy").join("new");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join(format!("{i:04}")), b"new").expect("seed new");
    }
    // 6,000 tombstones written by six DeleteObjects of keys that were never there: 3,000 that
    // sort before every live key, and 3,000 between two live keys.
    for batch in 0..6 {
        let keys: Vec<String> = (0..1000)
            .map(|i| match batch {
                0..3 => format!("gone/{batch}{i:03}"),
                _ => format!("live/0100/gone-{batch}{i:03}"),
            })
            .collect();
        let response = delete_objects(m.gateway().addr(), "lazy", &delete_body(&keys), true).await;
        assert_eq!(response.status, 200, "{}", response.body);
    }
    assert_eq!(MigrationStats::get(&m.stats().tombstones), 6000);

    let c = m.client();
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    let mut costs = Vec::new();
    loop {
        let (new_before, old_before) = (m.new.quirks.received_count(), m.old.quirks.received_count());
        let page = c
            .list_objects_v2()
            .bucket("lazy")
            .max_keys(100)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("page");
        costs.push(lists_since(&m.new, new_before) + lists_since(&m.old, old_before));
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    let mut expected: Vec<String> = (0..200).map(|i| format!("live/{i:04}")).collect();
    expected.extend((0..100).map(|i| format!("new/{i:04}")));
    assert_eq!(keys, expected, "every live key once, no tombstone");
    // Per page: the new provider (one jump over the reserved prefix at most), the old one, and
    // a window of tombstones near the old keys shown (one more where 3,000 lie between two).
    assert!(
        costs.iter().all(|&lists| lists <= 4),
        "provider LISTs per page: {costs:?}"
    );
    m.stop().await;
}

/// moto behind a wrapper that refuses keys over 1,024 bytes as AWS does (400 KeyTooLongError;
/// moto itself has no limit). Keys are path-style: `/<bucket>/<key>`.
async fn with_aws_key_limit(client: MotoClient, moto: String, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().trim_start_matches('/');
    let key_len = path
        .split_once('/')
        .map_or(0, |(_, key)| s3ferry::s3::encoding::percent_decode(key).len());
    if key_len > 1024 {
        let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>KeyTooLongError</Code><Message>Your key is too long</Message></Error>";
        let mut response = Response::new(Full::new(Bytes::from(xml)));
        *response.status_mut() = http::StatusCode::BAD_REQUEST;
        return response;
    }
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    match forward(&client, &moto, parts, body).await {
        Ok((parts, body)) => Response::from_parts(parts, Full::new(body)),
        Err(e) => {
            let mut response = Response::new(Full::new(Bytes::from(e)));
            *response.status_mut() = http::StatusCode::BAD_GATEWAY;
            response
        }
    }
}

fn moto_migration_config(new_endpoint: &str, new_dialect: &str, old_endpoint: &str) -> String {
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
endpoint = "{new_endpoint}"
access_key_id = "{UPSTREAM_KEY}"
secret_access_key = "{UPSTREAM_SECRET}"
addressing = "path"
dialect = "{new_dialect}"
read_timeout_secs = 20
[providers.old]
endpoint = "{old_endpoint}"
access_key_id = "moto"
secret_access_key = "moto"
addressing = "path"
read_timeout_secs = 20
[[buckets]]
name = "files"
provider = "new"
upstream_bucket = "files-new"
fallback = "old"
fallback_bucket = "files-old"
copy_on_read = true
"#
    )
}

/// `s3ferry <args> --config <config> --bucket files --json`: exit code and JSON report.
async fn run_cli(config: &Path, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"))
        .args(args)
        .arg("--config")
        .arg(config)
        .args(["--bucket", "files", "--json"])
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("run s3ferry");
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.code(), report)
}

#[tokio::test]
async fn keys_of_up_to_1024_bytes_work_in_a_migrating_bucket() {
    let wrapped = Wrapped::start(&["files-new", "files-old"], with_aws_key_limit).await;
    let toml = moto_migration_config(&wrapped.endpoint(), "aws", &wrapped.endpoint());
    let dir = tempfile::tempdir().expect("dir");
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, &toml).expect("config");
    let config = Config::parse(&toml, "long.toml", Path::new("."), &|_| None).expect("config");
    let g = s3ferry::server::start(&config).await.expect("gateway");
    let c = sdk_client(
        &format!("http://127.0.0.1:{}", g.addr().port()),
        CLIENT_KEY,
        CLIENT_SECRET,
        true,
    );
    let long = |c: char| format!("{c}/{}", c.to_string().repeat(1022));
    let (read_me, delete_me, batch_me, migrate_me, put_me) = (long('r'), long('d'), long('b'), long('m'), long('p'));
    assert_eq!(read_me.len(), 1024);
    // Straight to moto (through the key-limit wrapper), bypassing the gateway.
    let direct = sdk_client(&wrapped.endpoint(), "moto", "moto", true);
    for key in [&read_me, &delete_me, &batch_me, &migrate_me] {
        direct
            .put_object()
            .bucket("files-old")
            .key(key)
            .body(ByteStream::from(key.clone().into_bytes()))
            .send()
            .await
            .expect("seed old");
    }
    // A fallback read (then a copy on read), HEAD, a write and a read of the new copy.
    assert_eq!(
        read(&c, "files", &read_me).await.expect("fallback GET"),
        read_me.as_bytes()
    );
    let head = c
        .head_object()
        .bucket("files")
        .key(&delete_me)
        .send()
        .await
        .expect("HEAD");
    assert_eq!(head.content_length(), Some(1024));
    wait_for("copied on read", || {
        MigrationStats::get(&g.migration_stats().copies_done) == 1
    })
    .await;
    let copied = direct
        .head_object()
        .bucket("files-new")
        .key(&read_me)
        .send()
        .await
        .expect("the copy");
    assert_eq!(copied.content_length(), Some(1024));
    c.put_object()
        .bucket("files")
        .key(&put_me)
        .body(ByteStream::from_static(b"written"))
        .send()
        .await
        .expect("PUT");
    assert_eq!(read(&c, "files", &put_me).await.expect("GET"), b"written");
    // DELETE and DeleteObjects leave tombstones that fit, and the keys stay deleted.
    c.delete_object()
        .bucket("files")
        .key(&delete_me)
        .send()
        .await
        .expect("DELETE");
    let ids = aws_sdk_s3::types::ObjectIdentifier::builder()
        .key(&batch_me)
        .build()
        .expect("id");
    let deleted = c
        .delete_objects()
        .bucket("files")
        .delete(
            aws_sdk_s3::types::Delete::builder()
                .objects(ids)
                .build()
                .expect("delete"),
        )
        .send()
        .await
        .expect("DeleteObjects");
    assert!(deleted.errors().is_empty(), "{:?}", deleted.errors());
    for key in [&delete_me, &batch_me] {
        assert_eq!(read(&c, "files", key).await, Err("NoSuchKey".to_string()));
    }
    let mut expected = vec![migrate_me.clone(), put_me.clone(), read_me.clone()];
    expected.sort();
    assert_eq!(
        listed_keys(&c, "files").await,
        expected,
        "tombstoned long keys are hidden"
    );
    // `migrate` copies what is left; `check` agrees and counts the deletes.
    let (status, report) = run_cli(&config_path, &["migrate"]).await;
    assert_eq!(status, Some(0), "{report}");
    assert_eq!(report["copied_objects"].as_u64(), Some(1), "{report}");
    assert_eq!(report["deleted_through_s3ferry"].as_u64(), Some(2), "{report}");
    let (status, report) = run_cli(&config_path, &["check"]).await;
    assert_eq!(status, Some(0), "{report}");
    assert_eq!(report["deleted_through_s3ferry"].as_u64(), Some(2), "{report}");
    g.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn check_and_migrate_status_report_old_objects_that_cannot_reach_the_new_provider() {
    // The old provider (moto) keeps `..` segments literally; the new one's dialect (minio) is
    // one that may resolve them. The old bucket also holds an object under `.s3ferry/`.
    let moto = Moto::start().await;
    let direct = moto.direct();
    direct.create_bucket().bucket("files-old").send().await.expect("bucket");
    for key in [".s3ferry/state.json", "a/../b.txt", "keep.txt"] {
        direct
            .put_object()
            .bucket("files-old")
            .key(key)
            .body(ByteStream::from_static(b"data"))
            .send()
            .await
            .expect("seed old");
    }
    let new = TestUpstream::path_style().await;
    new.create_bucket("files-new");
    let toml = moto_migration_config(&new.endpoint(), "minio", &moto.endpoint());
    let dir = tempfile::tempdir().expect("dir");
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, &toml).expect("config");
    let left_behind = |report: &serde_json::Value| {
        report["left_behind"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|i| {
                        format!(
                            "{} {}",
                            i["key"].as_str().unwrap_or(""),
                            i["reason"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let expected = vec![
        ".s3ferry/state.json reserved_prefix".to_string(),
        "a/../b.txt dot_segments".to_string(),
    ];

    let (status, report) = run_cli(&config_path, &["check"]).await;
    assert_eq!(status, Some(1), "{report}");
    assert_eq!(left_behind(&report), expected, "{report}");
    let (status, report) = run_cli(&config_path, &["migrate", "--status"]).await;
    assert_eq!(status, Some(0), "{report}");
    let surveyed = &report["buckets"][0];
    assert_eq!(surveyed["only_in_old"]["objects"].as_u64(), Some(1), "{report}");
    assert_eq!(surveyed["left_behind"].as_u64(), Some(2), "{report}");
    let listed = serde_json::json!({ "left_behind": surveyed["left_behind_keys"] });
    assert_eq!(left_behind(&listed), expected, "{report}");
    // The migration copies what it can and fails while objects are left behind.
    let (status, report) = run_cli(&config_path, &["migrate"]).await;
    assert_eq!(status, Some(1), "{report}");
    assert_eq!(report["copied_objects"].as_u64(), Some(1), "{report}");
    assert_eq!(left_behind(&report), expected, "{report}");
    let (status, report) = run_cli(&config_path, &["check"]).await;
    assert_eq!(
        status,
        Some(1),
        "switching the old provider off would lose them: {report}"
    );
    assert_eq!(report["missing_in_new"].as_array().map(Vec::len), Some(0), "{report}");
    assert_eq!(left_behind(&report), expected, "{report}");
    // The text report says so too.
    let text = tokio::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"))
        .args(["check", "--config"])
        .arg(&config_path)
        .args(["--bucket", "files"])
        .output()
        .await
        .expect("run s3ferry");
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("LEFT BEHIND") && stdout.contains(".s3ferry/state.json"),
        "{stdout}"
    );
    assert!(!stdout.contains("OK:"), "{stdout}");
}

#[tokio::test]
async fn a_local_new_provider_tombstones_keys_near_its_length_limit_and_reports_what_it_cannot_store() {
    // A local provider keeps keys of at most 130 bytes in a bucket named `files` (the bucket
    // and key name one metadata file); the old provider (s3s-fs) holds a key of 120 bytes,
    // whose tombstone would need 140 as `.s3ferry/tombstones/<key>`, and one of 150.
    let old = TestUpstream::path_style().await;
    old.create_bucket("files-old");
    let near_limit = format!("k/{}", "x".repeat(118));
    let too_long = format!("l/{}", "y".repeat(148));
    for key in [&near_limit, &too_long, &"short".to_string()] {
        old.direct_client()
            .put_object()
            .bucket("files-old")
            .key(key)
            .body(ByteStream::from_static(b"old"))
            .send()
            .await
            .expect("seed old");
    }
    let root = tempfile::tempdir().expect("dir");
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
kind = "local"
root = "{root}"
[providers.old]
endpoint = "{old}"
access_key_id = "{UPSTREAM_KEY}"
secret_access_key = "{UPSTREAM_SECRET}"
read_timeout_secs = 20
[[buckets]]
name = "files"
provider = "new"
fallback = "old"
fallback_bucket = "files-old"
"#,
        root = root.path().display(),
        old = old.endpoint(),
    );
    let dir = tempfile::tempdir().expect("dir");
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, &toml).expect("config");
    let config = Config::parse(&toml, "local.toml", Path::new("."), &|_| None).expect("config");
    let g = s3ferry::server::start(&config).await.expect("gateway");
    let c = crate::support::gateway_client(g.addr());
    assert_eq!(read(&c, "files", &near_limit).await.expect("fallback GET"), b"old");
    c.delete_object()
        .bucket("files")
        .key(&near_limit)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(read(&c, "files", &near_limit).await, Err("NoSuchKey".to_string()));
    assert_eq!(
        listed_keys(&c, "files").await,
        vec![too_long.clone(), "short".to_string()],
        "the tombstoned key is hidden"
    );
    g.shutdown(Duration::from_secs(2)).await;
    let (status, report) = run_cli(&config_path, &["check"]).await;
    assert_eq!(status, Some(1), "{report}");
    assert_eq!(report["deleted_through_s3ferry"].as_u64(), Some(1), "{report}");
    assert_eq!(
        report["left_behind"],
        serde_json::json!([{ "key": too_long, "reason": "unstorable_in_new" }]),
        "{report}"
    );
    assert_eq!(report["missing_in_new"], serde_json::json!(["short"]), "{report}");
}

#[tokio::test]
async fn a_delete_objects_body_cannot_name_a_tombstone_in_cdata_or_with_a_version() {
    let m = Migrating::start().await;
    m.seed_old("lazy", &[("gone", b"old")]).await;
    assert_eq!(delete_object(m.gateway().addr(), "lazy", "gone").await.status, 204);
    let before = m.new.quirks.received_count();
    for entry in [
        "<Object><Key><![CDATA[.s3ferry/tombstones/gone]]></Key></Object>",
        "<Object><Key>.s3ferry/tombstones/gone</Key><VersionId>null</VersionId></Object>",
        "<Object><Key>x/../.s3ferry/tombstones/gone</Key><VersionId>null</VersionId></Object>",
    ] {
        let body = format!("<Delete><Object><Key>fine</Key></Object>{entry}</Delete>");
        let response = delete_objects(m.gateway().addr(), "lazy", &body, true).await;
        assert_eq!(
            (response.status, response.code().as_str()),
            (403, "AccessDenied"),
            "{entry}"
        );
    }
    assert_eq!(
        m.new.quirks.received_count(),
        before,
        "nothing reached the new provider"
    );
    assert_eq!(read(&m.client(), "lazy", "gone").await, Err("NoSuchKey".to_string()));
    m.stop().await;
}

#[tokio::test]
async fn cdata_keys_reach_a_provider_that_skips_cdata_as_plain_text() {
    // s3s-fs skips CDATA in a DeleteObjects body; s3ferry sends the keys it read as text.
    let m = Migrating::start().await;
    m.seed_old("lazy", &[("a&b.txt", b"old"), ("plain.txt", b"old")]).await;
    let c = m.client();
    for key in ["a&b.txt", "plain.txt"] {
        c.put_object()
            .bucket("lazy")
            .key(key)
            .body(ByteStream::from_static(b"new"))
            .send()
            .await
            .expect("put");
    }
    let body = delete_body(&["<![CDATA[a&b.txt]]>".to_string(), "pla<![CDATA[in]]>.txt".to_string()]);
    // A Content-MD5 that does not match what the client sent is refused before any provider.
    let mut wrong = HeaderMap::new();
    wrong.insert("content-md5", HeaderValue::from_static("1B2M2Y8AsgTpgAmY7PhCfg=="));
    let (req, _) = signer(m.gateway().addr()).sign(Method::POST, "/lazy?delete", wrong, &sha256_hex(body.as_bytes()));
    let before = m.new.quirks.received_count();
    let refused = raw::send(req.body(full_body(body.clone())).expect("request")).await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (400, "BadDigest"),
        "{}",
        refused.body
    );
    assert_eq!(m.new.quirks.received_count(), before);
    assert_eq!(read(&c, "lazy", "a&b.txt").await.expect("untouched"), b"new");

    let response = delete_objects(m.gateway().addr(), "lazy", &body, true).await;
    assert_eq!(response.status, 200, "{}", response.body);
    for key in ["a&b.txt", "plain.txt"] {
        assert!(
            !m.new.has_object("lazy", key).await,
            "{key} deleted at the new provider"
        );
        assert_eq!(read(&c, "lazy", key).await, Err("NoSuchKey".to_string()), "{key}");
    }
    m.stop().await;
}
