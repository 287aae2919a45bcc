//! The config as users write it: every example in the repository parses, and every mistake
//! is refused with the file, the key and the reason.

use super::*;
use crate::access::{AnonymousAccess, Grant, Level};
use crate::dialect::{ConditionalWrites, EtagCase, UnsupportedAcl};
use crate::s3::addressing::Addressing;
use crate::s3::bucket_name::WILDCARD_BUCKET;

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "test.toml", Path::new("/etc/s3ferry"), &no_env)
}

const MINIMAL: &str = r#"
        [[credentials]]
        access_key_id = "client"
        secret_access_key = "client-secret"
        grants = "all"
        [providers.up]
        endpoint = "http://127.0.0.1:9000"
        access_key_id = "up"
        secret_access_key = "up-secret"
        [[buckets]]
        name = "*"
        provider = "up"
    "#;

#[test]
fn example_config_parses_and_routes_every_bucket() {
    let text = include_str!("../../config.example.toml");
    let cfg = Config::parse(text, "config.example.toml", Path::new("."), &no_env).expect("example parses");
    assert_eq!(cfg.server.listen.to_string(), "127.0.0.1:8333");
    assert_eq!(cfg.server.domain.as_deref(), Some("s3.localhost"));
    assert!(cfg.buckets.iter().any(|b| b.name == WILDCARD_BUCKET));
    assert!(
        cfg.buckets
            .iter()
            .any(|b| b.upstream_bucket.as_deref() == Some("photos-2017"))
    );
    assert!(matches!(cfg.providers["local"].kind, ProviderKind::Local { .. }));
    let grants_of = |key: &str| {
        cfg.credentials
            .iter()
            .find(|c| c.access_key_id == key)
            .map(|c| c.grants.clone())
            .expect("key in the example")
    };
    assert_eq!(grants_of("s3ferry-demo"), [Grant::all()]);
    assert!(grants_of("s3ferry-reports").iter().all(|g| g.access == Level::Read));
    assert_eq!(
        grants_of("s3ferry-partner"),
        [Grant {
            buckets: vec!["demo".into()],
            prefix: "incoming/".into(),
            access: Level::Upload
        }]
    );
}

#[test]
fn example_config_documents_the_server_defaults() {
    let text = include_str!("../../config.example.toml");
    let example = Config::parse(text, "config.example.toml", Path::new("."), &no_env).expect("example parses");
    let defaults = parse(MINIMAL).expect("parses");
    assert_eq!(example.server.admin_listen, defaults.server.admin_listen);
    assert_eq!(example.server.shutdown_grace, defaults.server.shutdown_grace);
    assert_eq!(example.server.readiness_timeout, defaults.server.readiness_timeout);
    assert_eq!(example.server.readiness_cache, defaults.server.readiness_cache);
    assert_eq!(example.server.limits, defaults.server.limits);
    assert_eq!(example.post_upload, defaults.post_upload);
    assert_eq!(example.migration.status_refresh, defaults.migration.status_refresh);
    for provider in example.providers.values() {
        assert_eq!(provider.retry, RetryPolicy::default(), "{}", provider.name);
    }
}

#[test]
fn minimal_config_gets_defaults() {
    let cfg = parse(MINIMAL).expect("parses");
    let up = &cfg.providers["up"];
    assert_eq!(up.addressing, Addressing::Path);
    assert_eq!(up.dialect, "aws");
    assert_eq!(up.region, "us-east-1");
    assert_eq!(cfg.server.region, "us-east-1");
}

#[test]
fn provider_retries_have_defaults_and_bounds() {
    let cfg = parse(MINIMAL).expect("parses");
    assert_eq!(cfg.providers["up"].retry, RetryPolicy::default());
    let set = parse(&MINIMAL.replace(
        "secret_access_key = \"up-secret\"",
        "secret_access_key = \"up-secret\"\nretries = 0\nretry_backoff_ms = 50\nretry_after_max_secs = 1",
    ))
    .expect("parses");
    assert_eq!(
        set.providers["up"].retry,
        RetryPolicy {
            retries: 0,
            backoff: Duration::from_millis(50),
            retry_after_max: Duration::from_secs(1),
        }
    );
    for (extra, key) in [
        ("retries = 11", "providers.up.retries"),
        ("retry_backoff_ms = 6000", "providers.up.retry_backoff_ms"),
    ] {
        let text = MINIMAL.replace(
            "secret_access_key = \"up-secret\"",
            &format!("secret_access_key = \"up-secret\"\n{extra}"),
        );
        let err = parse(&text).expect_err(extra);
        assert_eq!(err.key, key, "{err}");
    }
}

#[test]
fn the_commented_cors_example_parses_and_bad_rules_name_their_key() {
    let example = include_str!("../../config.example.toml");
    let rule: String = example
        .lines()
        .skip_while(|l| !l.starts_with("# [[buckets.cors]]"))
        .take_while(|l| l.starts_with("# "))
        .map(|l| format!("{}\n", &l[2..]))
        .collect();
    assert!(rule.contains("allowed_origins"), "the example's CORS rule: {rule}");
    let cfg = parse(&format!("{MINIMAL}{rule}")).expect("the CORS example parses");
    assert_eq!(cfg.buckets[0].cors.len(), 1);
    assert!(
        parse(MINIMAL).expect("parses").buckets[0].cors.is_empty(),
        "no rules by default"
    );
    for (bad, key) in [
        (
            "allowed_origins = [\"https://*.*.example\"]\nallowed_methods = [\"GET\"]",
            "allowed_origins",
        ),
        (
            "allowed_origins = [\"*\"]\nallowed_methods = [\"PATCH\"]",
            "allowed_methods",
        ),
        ("allowed_origins = [\"*\"]", "allowed_methods"),
        (
            "allowed_origins = [\"*\"]\nallowed_methods = [\"GET\"]\nmax_age = 1",
            "max_age",
        ),
    ] {
        let err = parse(&format!("{MINIMAL}[[buckets.cors]]\n{bad}\n")).expect_err(bad);
        assert!(err.key.contains(key) || err.reason.contains(key), "{bad}: {err}");
    }
    let err = parse(&format!(
        "{MINIMAL}[[buckets.cors]]\nallowed_origins = [\"*\"]\nallowed_methods = [\"get\"]\n"
    ))
    .expect_err("lowercase method");
    assert_eq!(err.key, "buckets[0].cors[0].allowed_methods", "{err}");
}

#[test]
fn unknown_key_is_rejected_with_its_name() {
    let err = parse(&MINIMAL.replace("[[buckets]]", "[[buckets]]\nrenamed = 1")).unwrap_err();
    assert!(err.reason.contains("unknown field `renamed`"), "{err}");
    assert_eq!(err.file, "test.toml");
}

#[test]
fn route_to_missing_provider_is_rejected() {
    let err = parse(&MINIMAL.replace("provider = \"up\"", "provider = \"nope\"")).unwrap_err();
    assert_eq!(err.key, "buckets[0].provider");
    assert!(err.reason.contains("'nope'"), "{err}");
}

#[test]
fn duplicate_routes_and_keys_are_rejected() {
    let dup_route = format!("{MINIMAL}\n[[buckets]]\nname = \"*\"\nprovider = \"up\"\n");
    assert!(parse(&dup_route).unwrap_err().reason.contains("duplicate bucket route"));
    let dup_key = format!("{MINIMAL}\n[[credentials]]\naccess_key_id = \"client\"\nsecret_access_key = \"x\"\n");
    assert!(parse(&dup_key).unwrap_err().reason.contains("duplicate access key"));
}

#[test]
fn unreadable_secret_file_is_rejected_with_path() {
    let text = MINIMAL.replace(
        "secret_access_key = \"up-secret\"",
        "secret_access_key_file = \"missing/secret\"",
    );
    let err = parse(&text).unwrap_err();
    assert_eq!(err.key, "providers.up.secret_access_key_file");
    assert!(err.reason.contains("/etc/s3ferry/missing/secret"), "{err}");
}

#[test]
fn secret_from_env_is_read_and_never_printed() {
    let text = MINIMAL.replace(
        "secret_access_key = \"up-secret\"",
        "secret_access_key_env = \"UP_SECRET\"",
    );
    let env = |name: &str| (name == "UP_SECRET").then(|| "from-env".to_string());
    let cfg = Config::parse(&text, "t.toml", Path::new("."), &env).expect("parses");
    let ProviderKind::Remote(remote) = &cfg.providers["up"].kind else {
        panic!("remote")
    };
    assert_eq!(remote.secret_access_key.expose(), "from-env");
    let printed = format!("{cfg:?}");
    assert!(
        !printed.contains("from-env") && !printed.contains("client-secret"),
        "{printed}"
    );
}

#[test]
fn server_defaults_suit_a_bare_binary() {
    let cfg = parse(MINIMAL).expect("parses");
    assert_eq!(cfg.server.admin_listen.to_string(), "127.0.0.1:9333");
    assert_eq!(cfg.server.shutdown_grace, Duration::from_secs(30));
    assert_eq!(cfg.server.readiness_timeout, Duration::from_secs(2));
    assert_eq!(
        cfg.server.limits,
        ConnectionLimits {
            max_connections: 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_buffered_body_bytes: 64 * 1024 * 1024,
            admin_max_connections: 32,
            request_head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    );
    assert_eq!(cfg.server.readiness_cache, Duration::from_secs(1));
}

#[test]
fn durations_are_seconds_or_a_number_with_a_unit() {
    let with = |line: &str| parse(&format!("[server]\n{line}\n{MINIMAL}"));
    let grace = |line: &str| with(line).expect("parses").server.shutdown_grace;
    assert_eq!(grace("shutdown_grace = 45"), Duration::from_secs(45));
    assert_eq!(grace("shutdown_grace = \"45s\""), Duration::from_secs(45));
    assert_eq!(grace("shutdown_grace = \"1500ms\""), Duration::from_millis(1500));
    assert_eq!(grace("shutdown_grace = \"2m\""), Duration::from_secs(120));
    assert_eq!(grace("shutdown_grace = \"0s\""), Duration::ZERO);
    let err = with("shutdown_grace = \"soon\"").unwrap_err();
    assert_eq!(err.key, "server.shutdown_grace");
    assert!(err.reason.contains("'soon'"), "{err}");
    assert_eq!(
        with("readiness_timeout = 0").unwrap_err().key,
        "server.readiness_timeout"
    );
}

#[test]
fn limits_too_small_to_serve_are_rejected() {
    let with = |line: &str| parse(&format!("[server]\n{line}\n{MINIMAL}"));
    assert_eq!(with("max_connections = 0").unwrap_err().key, "server.max_connections");
    assert_eq!(
        with("max_header_bytes = 1024").unwrap_err().key,
        "server.max_header_bytes"
    );
    assert_eq!(with("max_headers = 0").unwrap_err().key, "server.max_headers");
    for too_small_or_large in ["max_buffered_body_bytes = 1000", "max_buffered_body_bytes = 5000000000"] {
        assert_eq!(
            with(too_small_or_large).unwrap_err().key,
            "server.max_buffered_body_bytes"
        );
    }
    assert_eq!(
        with("admin_max_connections = 0").unwrap_err().key,
        "server.admin_max_connections"
    );
    assert_eq!(
        with("request_head_timeout = 0").unwrap_err().key,
        "server.request_head_timeout"
    );
    assert_eq!(with("idle_timeout = \"0s\"").unwrap_err().key, "server.idle_timeout");
    assert_eq!(
        with("readiness_cache = \"2m\"").unwrap_err().key,
        "server.readiness_cache"
    );
    let cfg = with(
        "max_connections = 5\nmax_header_bytes = 16384\nmax_headers = 20\nadmin_max_connections = 2\n\
             request_head_timeout = \"500ms\"\nidle_timeout = \"2s\"\nreadiness_cache = 0\n\
             max_buffered_body_bytes = 65536",
    )
    .expect("parses");
    assert_eq!(
        cfg.server.limits,
        ConnectionLimits {
            max_connections: 5,
            max_header_bytes: 16384,
            max_headers: 20,
            max_buffered_body_bytes: 65536,
            admin_max_connections: 2,
            request_head_timeout: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(2),
        }
    );
    assert_eq!(cfg.server.readiness_cache, Duration::ZERO);
}

#[test]
fn admin_endpoints_need_their_own_port() {
    let text = format!("[server]\nlisten = \"127.0.0.1:8333\"\nadmin_listen = \"127.0.0.1:8333\"\n{MINIMAL}");
    assert_eq!(parse(&text).unwrap_err().key, "server.admin_listen");
    let env = |name: &str| (name == ADMIN_LISTEN_ENV).then(|| "0.0.0.0:9444".to_string());
    let cfg = Config::parse(MINIMAL, "t.toml", Path::new("."), &env).expect("parses");
    assert_eq!(cfg.server.admin_listen.to_string(), "0.0.0.0:9444");
}

#[test]
fn listen_env_overrides_the_file() {
    let env = |name: &str| (name == LISTEN_ENV).then(|| "0.0.0.0:9999".to_string());
    let cfg = Config::parse(MINIMAL, "t.toml", Path::new("."), &env).expect("parses");
    assert_eq!(cfg.server.listen.to_string(), "0.0.0.0:9999");
}

#[test]
fn bad_bucket_names_and_endpoints_are_rejected() {
    let text = MINIMAL.replace("name = \"*\"", "name = \"Bad_Bucket\"");
    assert_eq!(parse(&text).unwrap_err().key, "buckets[0].name");
    let text = MINIMAL.replace("http://127.0.0.1:9000", "ftp://x");
    assert_eq!(parse(&text).unwrap_err().key, "providers.up.endpoint");
    let text = MINIMAL.replace("http://127.0.0.1:9000", "http://x/base");
    assert!(parse(&text).unwrap_err().reason.contains("path"));
}

/// The commented `[providers.oss]` example of config.example.toml, uncommented.
fn example_oss_block() -> String {
    let text = include_str!("../../config.example.toml");
    let start = text.find("# [providers.oss]\n").expect("oss example");
    text[start..]
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#').trim_start())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn example_dialect_overrides_parse_into_the_profile() {
    let text = format!(
        "{}\n[[buckets]]\nname = \"ossb\"\nprovider = \"oss\"\n{}",
        MINIMAL,
        example_oss_block()
    );
    let cfg = Config::parse(&text, "t.toml", Path::new("."), &|name| {
        (name == "OSS_SECRET").then(|| "secret".into())
    })
    .expect("parses");
    let oss = &cfg.providers["oss"];
    assert_eq!(
        oss.addressing,
        Addressing::Virtual,
        "the oss profile's default addressing"
    );
    let p = &oss.profile;
    assert_eq!(p.etag_case, EtagCase::Upper);
    assert_eq!(p.canned_acls, ["private", "public-read", "public-read-write"]);
    assert_eq!(p.drop_headers, ["x-amz-request-payer"]);
    assert_eq!(p.drop_params, ["x-id"]);
    assert_eq!(p.unsupported_acl, UnsupportedAcl::Map);
    assert!(p.checksum_algorithms.is_empty() && p.content_md5_required && p.acl_api);
    assert_eq!(p.conditional_writes, ConditionalWrites::OssForbidOverwrite);
    assert_eq!(p.native_storage_class_header.as_deref(), Some("x-oss-storage-class"));
    assert_eq!(p.provider_storage_class("STANDARD_IA"), "IA");
    assert_eq!(
        p.provider_storage_class("DEEP_ARCHIVE"),
        "ColdArchive",
        "built-in entries stay"
    );
}

#[test]
fn storage_class_and_acl_tables_override_the_profile() {
    let text = MINIMAL.replace(
            "secret_access_key = \"up-secret\"",
            "secret_access_key = \"up-secret\"\ndialect = \"r2\"\n[providers.up.storage_classes]\nGLACIER = \"STANDARD_IA\"\nONEZONE_IA = \"STANDARD\"\n[providers.up.acl]\nunsupported = \"drop\"",
        );
    let cfg = parse(&text).expect("parses");
    let p = &cfg.providers["up"].profile;
    assert_eq!(p.provider_storage_class("GLACIER"), "STANDARD_IA");
    assert_eq!(p.provider_storage_class("ONEZONE_IA"), "STANDARD");
    assert_eq!(p.provider_storage_class("GLACIER_IR"), "STANDARD_IA");
    assert_eq!(p.unsupported_acl, UnsupportedAcl::Drop);
    assert_eq!(cfg.providers["up"].addressing, Addressing::Path);
}

#[test]
fn list_objects_v2_can_be_switched_on_for_a_ceph_that_serves_it() {
    let ceph = |overrides: &str| {
        let text = MINIMAL.replace(
            "secret_access_key = \"up-secret\"",
            &format!("secret_access_key = \"up-secret\"\ndialect = \"ceph\"\n{overrides}"),
        );
        parse(&text).expect("parses").providers["up"].profile.list_objects_v2
    };
    assert!(!ceph(""));
    assert!(ceph("[providers.up.dialect_overrides]\nlist_objects_v2 = true"));
}

#[test]
fn every_toml_example_in_the_readme_parses() {
    let readme = include_str!("../../README.md");
    let secret_file = tempfile::NamedTempFile::new().expect("secret file");
    std::fs::write(secret_file.path(), "secret").expect("write");
    let mut blocks = 0;
    for block in readme.split("```toml\n").skip(1) {
        let text = block.split("```").next().unwrap_or_default();
        // Secret files named in the examples are a real file here.
        let text = &text.replace("/run/secrets/oss", &secret_file.path().display().to_string());
        let full = if text.contains("[server]") {
            text.to_string()
        } else {
            // A fragment: completed with the minimal config so it parses on its own.
            format!("{MINIMAL}\n{text}")
        };
        Config::parse(&full, "README.md", Path::new("."), &|name| {
            name.ends_with("SECRET").then(|| "secret".into())
        })
        .unwrap_or_else(|e| panic!("README example does not parse: {e}\n{text}"));
        blocks += 1;
    }
    assert!(blocks >= 2, "the README shows its examples as ```toml blocks");
}

#[test]
fn error_code_tables_add_to_and_replace_the_profiles() {
    let text = MINIMAL.replace(
            "secret_access_key = \"up-secret\"",
            "secret_access_key = \"up-secret\"\ndialect = \"gcs\"\n[providers.up.error_codes]\nQuotaExceeded = \"SlowDown\"\nBucketNameUnavailable = { code = \"BucketAlreadyOwnedByYou\", status = 409, hint = \"check the project\" }",
        );
    let cfg = parse(&text).expect("parses");
    let p = &cfg.providers["up"].profile;
    let quota = p.error_mapping("QuotaExceeded").expect("added");
    assert_eq!((quota.aws_code.as_str(), quota.status), ("SlowDown", None));
    let taken = p.error_mapping("BucketNameUnavailable").expect("replaced");
    assert_eq!(
        (taken.aws_code.as_str(), taken.status, taken.hint.as_deref()),
        ("BucketAlreadyOwnedByYou", Some(409), Some("check the project"))
    );
    assert_eq!(
        p.error_codes.len(),
        5,
        "3 built for every dialect, gcs's own, and the new one"
    );
}

#[test]
fn unsigned_trailer_can_be_switched_per_provider() {
    let unsigned_trailer = |dialect: &str, overrides: &str| {
        let text = MINIMAL.replace(
            "secret_access_key = \"up-secret\"",
            &format!("secret_access_key = \"up-secret\"\ndialect = \"{dialect}\"\n{overrides}"),
        );
        parse(&text).expect("parses").providers["up"].profile.unsigned_trailer
    };
    assert!(unsigned_trailer("aws", ""));
    assert!(!unsigned_trailer(
        "aws",
        "[providers.up.dialect_overrides]\nunsigned_trailer = false"
    ));
    assert!(!unsigned_trailer("ceph", ""));
    assert!(unsigned_trailer(
        "ceph",
        "[providers.up.dialect_overrides]\nunsigned_trailer = true"
    ));
}

#[test]
fn bad_dialect_overrides_are_rejected_with_their_key() {
    for (extra, key) in [
        (
            "[providers.up.dialect_overrides]\netag_cse = \"upper\"",
            "unknown field",
        ),
        (
            "[providers.up.dialect_overrides]\netag_case = \"mixed\"",
            "dialect_overrides.etag_case",
        ),
        (
            "[providers.up.dialect_overrides]\ncanned_acls = [\"world\"]",
            "dialect_overrides.canned_acls",
        ),
        (
            "[providers.up.dialect_overrides]\nchecksum_algorithms = [\"md5\"]",
            "dialect_overrides.checksum_algorithms",
        ),
        (
            "[providers.up.dialect_overrides]\nconditional_writes = \"maybe\"",
            "dialect_overrides.conditional_writes",
        ),
        ("[providers.up.acl]\nunsupported = \"ignore\"", "acl.unsupported"),
        (
            "[providers.up.error_codes]\nQuotaExceeded = { code = \"SlowDown\", status = 200 }",
            "error_codes.QuotaExceeded",
        ),
        ("[providers.up.acl]\npolicy = \"map\"", "unknown field"),
    ] {
        let text = MINIMAL.replace(
            "secret_access_key = \"up-secret\"",
            &format!("secret_access_key = \"up-secret\"\n{extra}"),
        );
        let err = parse(&text).expect_err(extra);
        assert!(err.to_string().contains(key), "{extra}: {err}");
    }
}

#[test]
fn post_upload_caps_have_defaults_and_bounds() {
    let p = parse(MINIMAL).expect("parses").post_upload;
    assert_eq!(
        (p.max_file_bytes, p.max_spool_bytes),
        (MAX_PART_SIZE, 4 * MAX_PART_SIZE)
    );
    assert_eq!(p.spool_dir, std::env::temp_dir());
    let with = |extra: &str| parse(&format!("{MINIMAL}\n[post_upload]\n{extra}"));
    let set = with("spool_dir = \"/srv/spool\"\nmax_file_bytes = 1000\nmax_spool_bytes = 1000").expect("valid");
    assert_eq!(set.post_upload.spool_dir, std::path::PathBuf::from("/srv/spool"));
    for (extra, key) in [
        ("max_file_bytes = 0", "post_upload.max_file_bytes"),
        ("max_file_bytes = 5368709121", "post_upload.max_file_bytes"),
        (
            "max_file_bytes = 1000\nmax_spool_bytes = 999",
            "post_upload.max_spool_bytes",
        ),
        ("spool = \"/tmp\"", "spool"),
    ] {
        let err = with(extra).expect_err(extra);
        assert!(err.to_string().contains(key), "{extra}: {err}");
    }
}

#[test]
fn multipart_copy_sizes_default_to_s3s_limits_and_are_bounded() {
    let m = parse(MINIMAL).expect("parses").migration;
    assert_eq!(m.multipart_copy_threshold, 5 * 1024 * 1024 * 1024);
    assert_eq!(m.multipart_copy_part_size, 64 * 1024 * 1024);
    let with = |extra: &str| parse(&format!("{MINIMAL}\n[migration]\n{extra}"));
    let set = with("multipart_copy_threshold = 6291456\nmultipart_copy_part_size = 5242880").expect("in range");
    assert_eq!(
        (
            set.migration.multipart_copy_threshold,
            set.migration.multipart_copy_part_size
        ),
        (6_291_456, 5_242_880)
    );
    for (extra, key) in [
        (
            "multipart_copy_threshold = 5368709121",
            "migration.multipart_copy_threshold",
        ),
        ("multipart_copy_threshold = 1024", "migration.multipart_copy_threshold"),
        (
            "multipart_copy_part_size = 5242879",
            "migration.multipart_copy_part_size",
        ),
        (
            "multipart_copy_part_size = 5368709121",
            "migration.multipart_copy_part_size",
        ),
    ] {
        let err = with(extra).expect_err(extra);
        assert!(err.to_string().contains(key), "{extra}: {err}");
    }
}

#[test]
fn signature_defaults_to_v4_and_accepts_v2() {
    let remote_signature = |text: &str| match &parse(text).expect("parses").providers["up"].kind {
        ProviderKind::Remote(remote) => remote.signature,
        ProviderKind::Local { .. } => panic!("up is remote"),
    };
    assert_eq!(remote_signature(MINIMAL), SignatureVersion::V4);
    let v2 = MINIMAL.replace("access_key_id = \"up\"", "access_key_id = \"up\"\nsignature = \"v2\"");
    assert_eq!(remote_signature(&v2), SignatureVersion::V2);
}

#[test]
fn unknown_signature_version_is_rejected_with_its_key_and_the_choices() {
    let text = MINIMAL.replace("access_key_id = \"up\"", "access_key_id = \"up\"\nsignature = \"v3\"");
    let err = parse(&text).unwrap_err();
    assert_eq!(err.key, "providers.up.signature");
    assert!(err.reason.contains("\"v4\"") && err.reason.contains("\"v2\""), "{err}");
}

#[test]
fn local_provider_rejects_a_signature_version() {
    let text = r#"
            [[credentials]]
            access_key_id = "client"
            secret_access_key = "client-secret"
            grants = "all"
            [providers.disk]
            kind = "local"
            root = "data"
            signature = "v2"
            [[buckets]]
            name = "*"
            provider = "disk"
        "#;
    let err = parse(text).unwrap_err();
    assert_eq!(err.key, "providers.disk.signature");
}

#[test]
fn a_key_must_say_what_it_may_reach() {
    let text = MINIMAL.replace("grants = \"all\"\n", "");
    let err = parse(&text).expect_err("a key without grants is refused");
    assert_eq!(err.key, "credentials[0].grants");
    assert!(err.reason.contains("grants = \"all\""), "says what to write: {err}");
    let all = parse(MINIMAL).expect("parses");
    assert_eq!(all.credentials[0].grants, [Grant::all()]);
}

#[test]
fn grants_parse_into_levels_and_prefixes_and_typos_are_refused() {
    let with = |grants: &str| parse(&MINIMAL.replace("grants = \"all\"", &format!("grants = {grants}")));
    let cfg = with(r#"[{ buckets = ["photos", "docs"], prefix = "in/", access = "upload" }, { buckets = ["*"], access = "read" }]"#)
            .expect("parses");
    assert_eq!(
        cfg.credentials[0].grants,
        [
            Grant {
                buckets: vec!["photos".into(), "docs".into()],
                prefix: "in/".into(),
                access: Level::Upload
            },
            Grant {
                buckets: vec!["*".into()],
                prefix: String::new(),
                access: Level::Read
            }
        ]
    );
    assert!(
        with("[]").expect("no grants: a key that can do nothing").credentials[0]
            .grants
            .is_empty()
    );
    for (grants, key) in [
        (r#""everything""#, "credentials[0].grants"),
        (
            r#"[{ buckets = ["photos"], access = "readwrite" }]"#,
            "credentials[0].grants[0].access",
        ),
        (
            r#"[{ buckets = [], access = "read" }]"#,
            "credentials[0].grants[0].buckets",
        ),
        (
            r#"[{ buckets = ["Bad_Name"], access = "read" }]"#,
            "credentials[0].grants[0].buckets",
        ),
    ] {
        assert_eq!(with(grants).expect_err(grants).key, key, "{grants}");
    }
    let err = with(r#"[{ buckets = ["photos"], acess = "read" }]"#).expect_err("typo in a field");
    assert!(
        err.to_string().contains("grants") || err.key.starts_with("line"),
        "{err}"
    );
}

#[test]
fn a_grant_on_a_bucket_no_route_exposes_is_refused() {
    let text = MINIMAL.replace("name = \"*\"", "name = \"photos\"").replace(
        "grants = \"all\"",
        r#"grants = [{ buckets = ["fotos"], access = "read" }]"#,
    );
    assert_eq!(parse(&text).unwrap_err().key, "credentials[0].grants[0].buckets");
}

#[test]
fn anonymous_access_is_per_named_bucket_and_off_by_default() {
    let route = |extra: &str| {
        parse(&format!(
            "{MINIMAL}\n[[buckets]]\nname = \"public\"\nprovider = \"up\"\n{extra}"
        ))
    };
    let cfg = route("").expect("parses");
    assert!(cfg.buckets.iter().all(|b| b.anonymous.is_none()));
    let read = route("anonymous = \"read\"").expect("parses");
    assert_eq!(read.buckets[1].anonymous, Some(AnonymousAccess::Read { list: false }));
    let listed = route("anonymous = \"read\"\nanonymous_list = true").expect("parses");
    assert_eq!(listed.buckets[1].anonymous, Some(AnonymousAccess::Read { list: true }));
    let native = route("anonymous = \"provider\"").expect("parses");
    assert_eq!(native.buckets[1].anonymous, Some(AnonymousAccess::Provider));
    for (extra, key) in [
        ("anonymous = \"public\"", "buckets[1].anonymous"),
        ("anonymous_list = true", "buckets[1].anonymous_list"),
        (
            "anonymous = \"provider\"\nanonymous_list = true",
            "buckets[1].anonymous_list",
        ),
        (
            "anonymous = \"provider\"\nfallback = \"up\"\nfallback_bucket = \"old\"",
            "buckets[1].anonymous",
        ),
    ] {
        assert_eq!(route(extra).expect_err(extra).key, key, "{extra}");
    }
    let wildcard = format!("{MINIMAL}anonymous = \"read\"\n");
    assert_eq!(parse(&wildcard).unwrap_err().key, "buckets[0].anonymous");
}

#[test]
fn config_check_warns_about_keys_that_reach_everything_and_open_buckets() {
    let text = format!(
        "{MINIMAL}\n[[credentials]]\naccess_key_id = \"narrow\"\nsecret_access_key = \"s\"\n\
             grants = [{{ buckets = [\"photos\"], access = \"read\" }}]\n\
             [[buckets]]\nname = \"public\"\nprovider = \"up\"\nanonymous = \"read\""
    );
    let warnings = parse(&text).expect("parses").broad_access_warnings();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("'client' can reach every bucket"), "{warnings:?}");
    assert!(
        warnings[1].contains("'public' is readable without a signature"),
        "{warnings:?}"
    );
}

#[test]
fn unknown_dialect_is_rejected() {
    let text = MINIMAL.replace("access_key_id = \"up\"", "access_key_id = \"up\"\ndialect = \"azure\"");
    assert!(parse(&text).unwrap_err().reason.contains("unknown dialect 'azure'"));
}

#[test]
fn migration_status_refresh_defaults_to_30s_and_is_at_least_a_second() {
    let m = parse(MINIMAL).expect("parses").migration;
    assert_eq!(m.status_refresh, Duration::from_secs(30));
    let with = |extra: &str| parse(&format!("{MINIMAL}\n[migration]\n{extra}"));
    let set = with("status_refresh = \"5s\"").expect("valid");
    assert_eq!(set.migration.status_refresh, Duration::from_secs(5));
    for extra in [
        "status_refresh = \"500ms\"",
        "status_refresh = 0",
        "status_refresh = \"soon\"",
    ] {
        let err = with(extra).expect_err(extra);
        assert!(err.to_string().contains("migration.status_refresh"), "{extra}: {err}");
    }
}
