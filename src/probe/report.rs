//! What the probe's findings mean for the config: the provider settings and dialect overrides
//! that fit ([`suggest`]), how they differ from the profile configured now ([`differences`]),
//! and the printed report. Pure: findings in, text out.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Answer, Findings, describe};
use crate::checksum::ChecksumAlgorithm;
use crate::config::SignatureVersion;
use crate::dialect::{ANY_STORAGE_CLASS, ConditionalWrites, DialectProfile, EtagCase};
use crate::s3::addressing::Addressing;

/// The canned ACLs that keep a provider without ACL headers usable: `private` (and the
/// bucket owner's full control) is what it enforces anyway, so s3ferry lets them through as
/// no-ops.
const NO_OP_ACLS: &[&str] = &["private", "bucket-owner-full-control"];

/// Settings that fit what the provider answered; `None`: not probed, nothing to say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    pub addressing: Option<Addressing>,
    pub signature: Option<SignatureVersion>,
    pub etag_case: Option<EtagCase>,
    pub checksum_algorithms: Option<Vec<ChecksumAlgorithm>>,
    pub content_md5_required: Option<bool>,
    pub unsigned_trailer: Option<bool>,
    pub conditional_writes: Option<ConditionalWrites>,
    pub acl_headers: Option<bool>,
    pub canned_acls: Option<Vec<String>>,
    pub grants: Option<bool>,
    pub acl_api: Option<bool>,
    pub url_encoded_listings: Option<bool>,
    pub list_objects_v2: Option<bool>,
    pub upload_part_copy: Option<bool>,
    pub literal_dot_segments: Option<bool>,
    /// `[providers.NAME.storage_classes]`: client class -> the class to send instead.
    pub storage_classes: Option<Vec<(String, String)>>,
}

/// The settings the findings call for.
pub fn suggest(f: &Findings, configured: Addressing) -> Suggestion {
    let accepted = |a: &Answer| a.accepted();
    let addressing = match (accepted(&f.path_style), accepted(&f.virtual_style)) {
        (Some(true), Some(true)) => Some(configured),
        (Some(true), _) => Some(Addressing::Path),
        (_, Some(true)) => Some(Addressing::Virtual),
        _ => None,
    };
    let signature = match (accepted(&f.sigv4), accepted(&f.sigv2)) {
        (Some(true), _) => Some(SignatureVersion::V4),
        (_, Some(true)) => Some(SignatureVersion::V2),
        _ => None,
    };
    // An algorithm goes on to the provider only where it takes it on both kinds of upload:
    // the profile has one list for both.
    let probed_checksums = f.checksums.iter().any(|(_, a)| a.accepted().is_some());
    let checksum_algorithms = probed_checksums.then(|| {
        f.checksums
            .iter()
            .filter(|(algorithm, single)| {
                let multipart = f
                    .multipart_checksums
                    .iter()
                    .find(|(a, _)| a == algorithm)
                    .map(|(_, m)| m);
                single.accepted() == Some(true) && multipart.is_none_or(|m| m.accepted() != Some(false))
            })
            .map(|(algorithm, _)| *algorithm)
            .collect()
    });
    let conditional_writes = match (
        accepted(&f.if_none_match),
        accepted(&f.if_match),
        accepted(&f.oss_forbid_overwrite),
        accepted(&f.gcs_generation_match),
    ) {
        (None, ..) => None,
        (Some(true), Some(true), ..) => Some(ConditionalWrites::Aws),
        (_, _, Some(true), _) => Some(ConditionalWrites::OssForbidOverwrite),
        (_, _, _, Some(true)) => Some(ConditionalWrites::GcsGenerationMatch),
        _ => Some(ConditionalWrites::Unsupported),
    };
    let acl_answers: Vec<(&str, bool)> = f
        .canned_acls
        .iter()
        .filter_map(|(acl, a)| Some((acl.as_str(), a.accepted()?)))
        .collect();
    let private_taken = acl_answers.iter().find(|(acl, _)| *acl == "private").map(|(_, ok)| *ok);
    // A provider without the `?acl` API cannot show that it applied an ACL header it took: it
    // is treated as one without ACL headers, so s3ferry refuses public ACLs instead of sending
    // headers that may be silently ignored.
    let acls_unverifiable = accepted(&f.acl_api) == Some(false);
    let private_taken = private_taken.map(|ok| ok && !acls_unverifiable);
    let (acl_headers, canned_acls) = match private_taken {
        None => (None, None),
        // No ACL header at all: the ones it enforces anyway pass as no-ops.
        Some(false) => (Some(false), Some(NO_OP_ACLS.iter().map(|a| (*a).to_string()).collect())),
        Some(true) => (
            Some(true),
            Some(
                acl_answers
                    .iter()
                    .filter(|(_, ok)| *ok)
                    .map(|(acl, _)| (*acl).to_string())
                    .collect(),
            ),
        ),
    };
    Suggestion {
        addressing,
        signature,
        etag_case: f.etag_case,
        checksum_algorithms,
        content_md5_required: accepted(&f.delete_objects_without_md5).map(|ok| !ok),
        unsigned_trailer: accepted(&f.unsigned_trailer),
        conditional_writes,
        acl_headers,
        canned_acls,
        grants: accepted(&f.grants).map(|ok| ok && private_taken == Some(true)),
        acl_api: accepted(&f.acl_api),
        url_encoded_listings: accepted(&f.url_encoded_listings),
        list_objects_v2: accepted(&f.list_objects_v2),
        upload_part_copy: accepted(&f.upload_part_copy),
        literal_dot_segments: accepted(&f.literal_dot_segments),
        storage_classes: storage_classes(&f.storage_classes),
    }
}

/// Classes the provider refuses are sent as STANDARD (when it takes that); a provider that
/// takes only STANDARD gets `"*" = "STANDARD"`. Classes it accepts but does not apply are left
/// alone: the upload works, and the provider reports what it keeps.
fn storage_classes(answers: &[(String, Answer)]) -> Option<Vec<(String, String)>> {
    let probed: Vec<(&str, bool)> = answers
        .iter()
        .filter(|(_, a)| a.accepted().is_some())
        .map(|(class, a)| (class.as_str(), !matches!(a, Answer::Refused { .. })))
        .collect();
    if probed.is_empty() {
        return None;
    }
    let standard = probed.iter().any(|(c, taken)| *c == "STANDARD" && *taken);
    if !standard {
        return Some(Vec::new());
    }
    let refused: Vec<&str> = probed.iter().filter(|(_, taken)| !taken).map(|(c, _)| *c).collect();
    let others_taken = probed.iter().any(|(c, taken)| *c != "STANDARD" && *taken);
    if !others_taken {
        return Some(vec![(ANY_STORAGE_CLASS.to_string(), "STANDARD".to_string())]);
    }
    Some(
        refused
            .into_iter()
            .map(|c| (c.to_string(), "STANDARD".to_string()))
            .collect(),
    )
}

/// One setting whose configured value differs from what the provider answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub setting: &'static str,
    pub configured: String,
    pub probed: String,
}

/// How `suggestion` differs from the provider's configured `addressing`, `signature` and
/// profile.
pub fn differences(
    suggestion: &Suggestion,
    addressing: Addressing,
    signature: SignatureVersion,
    profile: &DialectProfile,
) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut compare = |setting: &'static str, configured: String, probed: Option<String>| {
        if let Some(probed) = probed
            && probed != configured
        {
            out.push(Difference {
                setting,
                configured,
                probed,
            });
        }
    };
    compare(
        "addressing",
        toml_addressing(addressing),
        suggestion.addressing.map(toml_addressing),
    );
    compare(
        "signature",
        toml_signature(signature),
        suggestion.signature.map(toml_signature),
    );
    compare(
        "etag_case",
        toml_etag(profile.etag_case),
        suggestion.etag_case.map(toml_etag),
    );
    compare(
        "checksum_algorithms",
        toml_algorithms(&profile.checksum_algorithms),
        suggestion.checksum_algorithms.as_deref().map(toml_algorithms),
    );
    let flag = |b: bool| b.to_string();
    compare(
        "content_md5_required",
        flag(profile.content_md5_required),
        suggestion.content_md5_required.map(flag),
    );
    compare(
        "unsigned_trailer",
        flag(profile.unsigned_trailer),
        suggestion.unsigned_trailer.map(flag),
    );
    compare(
        "conditional_writes",
        toml_conditional(profile.conditional_writes),
        suggestion.conditional_writes.map(toml_conditional),
    );
    compare(
        "acl_headers",
        flag(profile.acl_headers),
        suggestion.acl_headers.map(flag),
    );
    compare(
        "canned_acls",
        toml_strings(&profile.canned_acls),
        suggestion.canned_acls.as_deref().map(toml_strings),
    );
    compare("grants", flag(profile.grants), suggestion.grants.map(flag));
    compare("acl_api", flag(profile.acl_api), suggestion.acl_api.map(flag));
    compare(
        "url_encoded_listings",
        flag(profile.url_encoded_listings),
        suggestion.url_encoded_listings.map(flag),
    );
    compare(
        "list_objects_v2",
        flag(profile.list_objects_v2),
        suggestion.list_objects_v2.map(flag),
    );
    compare(
        "upload_part_copy",
        flag(profile.upload_part_copy),
        suggestion.upload_part_copy.map(flag),
    );
    compare(
        "literal_dot_segments",
        flag(profile.literal_dot_segments),
        suggestion.literal_dot_segments.map(flag),
    );
    out
}

/// The `[providers.NAME]` settings and `dialect_overrides` that fit, as TOML to paste.
pub fn overrides_toml(provider: &str, s: &Suggestion) -> String {
    let mut out = String::new();
    let mut provider_lines = Vec::new();
    if let Some(a) = s.addressing {
        provider_lines.push(format!("addressing = {}", toml_addressing(a)));
    }
    if let Some(v) = s.signature {
        provider_lines.push(format!("signature = {}", toml_signature(v)));
    }
    if !provider_lines.is_empty() {
        let _ = writeln!(out, "[providers.{provider}]");
        for line in provider_lines {
            let _ = writeln!(out, "{line}");
        }
        out.push('\n');
    }
    let mut lines = Vec::new();
    let mut add = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            lines.push(format!("{name} = {v}"));
        }
    };
    add("etag_case", s.etag_case.map(toml_etag));
    add(
        "checksum_algorithms",
        s.checksum_algorithms.as_deref().map(toml_algorithms),
    );
    add("content_md5_required", s.content_md5_required.map(|b| b.to_string()));
    add("unsigned_trailer", s.unsigned_trailer.map(|b| b.to_string()));
    add("conditional_writes", s.conditional_writes.map(toml_conditional));
    add("acl_headers", s.acl_headers.map(|b| b.to_string()));
    add("canned_acls", s.canned_acls.as_deref().map(toml_strings));
    add("grants", s.grants.map(|b| b.to_string()));
    add("acl_api", s.acl_api.map(|b| b.to_string()));
    add("url_encoded_listings", s.url_encoded_listings.map(|b| b.to_string()));
    add("list_objects_v2", s.list_objects_v2.map(|b| b.to_string()));
    add("upload_part_copy", s.upload_part_copy.map(|b| b.to_string()));
    add("literal_dot_segments", s.literal_dot_segments.map(|b| b.to_string()));
    if !lines.is_empty() {
        let _ = writeln!(out, "[providers.{provider}.dialect_overrides]");
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
    }
    if let Some(classes) = s.storage_classes.as_ref().filter(|c| !c.is_empty()) {
        let _ = writeln!(out, "\n[providers.{provider}.storage_classes]");
        for (client, provider_class) in classes {
            let _ = writeln!(out, "{} = {}", toml_string(client), toml_string(provider_class));
        }
    }
    out
}

/// The whole report a person reads: each finding, then the differences, then the TOML.
pub fn render_text(f: &Findings, s: &Suggestion, differences: &[Difference]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "s3ferry probe: provider '{}'", f.provider);
    if let Some(b) = &f.bucket {
        let _ = writeln!(out, "bucket: {b}");
    }
    let mut line = |what: &str, answer: String| {
        let _ = writeln!(out, "  {what:<44} {answer}");
    };
    line("path-style addressing", describe(&f.path_style));
    line("virtual-hosted-style addressing", describe(&f.virtual_style));
    line("SigV4", describe(&f.sigv4));
    line("SigV2", describe(&f.sigv2));
    line(
        "missing key answers",
        f.missing_key_code.clone().unwrap_or_else(|| "-".into()),
    );
    line(
        "missing bucket answers",
        f.missing_bucket_code.clone().unwrap_or_else(|| "-".into()),
    );
    line("ListObjectsV2 (list-type=2)", describe(&f.list_objects_v2));
    line(
        "ETag case",
        f.etag_case
            .map_or_else(|| "not probed".into(), |c| toml_etag(c).trim_matches('"').to_string()),
    );
    for (a, answer) in &f.checksums {
        line(&format!("{} header on PutObject", a.header_name()), describe(answer));
    }
    for (a, answer) in &f.multipart_checksums {
        line(&format!("{} on a multipart upload", a.name()), describe(answer));
    }
    line(
        "unsigned aws-chunked upload, CRC32 trailer",
        describe(&f.unsigned_trailer),
    );
    line(
        "DeleteObjects without Content-MD5",
        describe(&f.delete_objects_without_md5),
    );
    line("If-None-Match: * on an existing key", describe(&f.if_none_match));
    line("If-Match with another ETag", describe(&f.if_match));
    line("x-oss-forbid-overwrite (OSS form)", describe(&f.oss_forbid_overwrite));
    line(
        "x-goog-if-generation-match: 0 (GCS form)",
        describe(&f.gcs_generation_match),
    );
    for (acl, answer) in &f.canned_acls {
        line(&format!("x-amz-acl: {acl}"), describe(answer));
    }
    line("x-amz-grant-read", describe(&f.grants));
    line("GetObjectAcl (?acl)", describe(&f.acl_api));
    for (class, answer) in &f.storage_classes {
        line(&format!("storage class {class}"), describe(answer));
    }
    line("encoding-type=url encodes keys", describe(&f.url_encoded_listings));
    line("UploadPartCopy", describe(&f.upload_part_copy));
    line("'..' key segments stored literally", describe(&f.literal_dot_segments));
    for note in &f.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out.push('\n');
    if differences.is_empty() {
        let _ = writeln!(out, "The configured settings match what the provider answered.");
    } else {
        let _ = writeln!(out, "Differences from the configured settings:");
        for d in differences {
            let _ = writeln!(
                out,
                "  {:<24} configured {}, provider {}",
                d.setting, d.configured, d.probed
            );
        }
    }
    let toml = overrides_toml(&f.provider, s);
    if !toml.is_empty() {
        let _ = writeln!(out, "\nSettings that fit (add to the config):\n");
        out.push_str(&toml);
    }
    out
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn toml_strings(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
    format!("[{}]", quoted.join(", "))
}

fn toml_algorithms(items: &[ChecksumAlgorithm]) -> String {
    let names: Vec<String> = items.iter().map(|a| a.name().to_string()).collect();
    toml_strings(&names)
}

fn toml_addressing(a: Addressing) -> String {
    toml_string(a.as_str())
}

fn toml_signature(v: SignatureVersion) -> String {
    toml_string(match v {
        SignatureVersion::V4 => "v4",
        SignatureVersion::V2 => "v2",
    })
}

fn toml_etag(c: EtagCase) -> String {
    toml_string(match c {
        EtagCase::Lower => "lower",
        EtagCase::Upper => "upper",
    })
}

fn toml_conditional(c: ConditionalWrites) -> String {
    toml_string(match c {
        ConditionalWrites::Aws => "aws",
        ConditionalWrites::OssForbidOverwrite => "oss",
        ConditionalWrites::GcsGenerationMatch => "gcs",
        ConditionalWrites::Unsupported => "none",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Answer {
        Answer::Refused {
            status: 400,
            code: "InvalidArgument".into(),
        }
    }

    fn findings(configure: impl FnOnce(&mut Findings)) -> Findings {
        let yes = || Answer::Accepted;
        let mut f = Findings {
            provider: "p".into(),
            bucket: Some("b".into()),
            path_style: yes(),
            virtual_style: yes(),
            sigv4: yes(),
            sigv2: refused(),
            missing_key_code: Some("NoSuchKey".into()),
            missing_bucket_code: Some("NoSuchBucket".into()),
            list_objects_v2: yes(),
            etag_case: Some(EtagCase::Lower),
            checksums: ChecksumAlgorithm::ALL.iter().map(|a| (*a, yes())).collect(),
            multipart_checksums: ChecksumAlgorithm::ALL.iter().map(|a| (*a, yes())).collect(),
            unsigned_trailer: yes(),
            delete_objects_without_md5: yes(),
            if_none_match: yes(),
            if_match: yes(),
            oss_forbid_overwrite: Answer::Ignored,
            gcs_generation_match: Answer::Ignored,
            canned_acls: crate::dialect::AWS_CANNED_ACLS
                .iter()
                .map(|a| ((*a).to_string(), yes()))
                .collect(),
            grants: yes(),
            acl_api: yes(),
            storage_classes: crate::dialect::AWS_STORAGE_CLASSES
                .iter()
                .map(|c| ((*c).to_string(), yes()))
                .collect(),
            url_encoded_listings: yes(),
            upload_part_copy: yes(),
            literal_dot_segments: yes(),
            notes: Vec::new(),
        };
        configure(&mut f);
        f
    }

    #[test]
    fn an_aws_like_provider_matches_the_aws_profile() {
        let aws = crate::dialect::builtin("aws").expect("aws");
        let s = suggest(&findings(|_| {}), Addressing::Path);
        assert_eq!(s.storage_classes, Some(Vec::new()));
        assert_eq!(
            differences(&s, Addressing::Path, SignatureVersion::V4, &aws),
            Vec::new()
        );
    }

    #[test]
    fn findings_become_the_settings_that_fit() {
        // A B2-like provider: no flexible checksums, MD5 on DeleteObjects, STANDARD only.
        let b2 = findings(|f| {
            for (_, a) in f.checksums.iter_mut().chain(f.multipart_checksums.iter_mut()) {
                *a = refused();
            }
            f.unsigned_trailer = refused();
            f.delete_objects_without_md5 = refused();
            for (class, a) in &mut f.storage_classes {
                if class != "STANDARD" {
                    *a = Answer::Refused {
                        status: 501,
                        code: "NotImplemented".into(),
                    };
                }
            }
        });
        let s = suggest(&b2, Addressing::Path);
        assert_eq!(s.checksum_algorithms, Some(Vec::new()));
        assert_eq!((s.content_md5_required, s.unsigned_trailer), (Some(true), Some(false)));
        assert_eq!(s.storage_classes, Some(vec![("*".into(), "STANDARD".into())]));
        // An R2-like provider: CRC64NVME single but not on multipart; no ACL headers at all.
        let r2 = findings(|f| {
            for (a, answer) in &mut f.multipart_checksums {
                if *a == ChecksumAlgorithm::Crc64Nvme {
                    *answer = refused();
                }
            }
            for (_, a) in &mut f.canned_acls {
                *a = Answer::Refused {
                    status: 501,
                    code: "NotImplemented".into(),
                };
            }
            f.grants = refused();
        });
        let s = suggest(&r2, Addressing::Path);
        let algorithms = s.checksum_algorithms.expect("probed");
        assert!(!algorithms.contains(&ChecksumAlgorithm::Crc64Nvme) && algorithms.len() == 4);
        assert_eq!(s.acl_headers, Some(false));
        assert_eq!(
            s.canned_acls,
            Some(vec!["private".into(), "bucket-owner-full-control".into()])
        );
        assert_eq!(s.grants, Some(false));
        // ACL headers taken by a provider without the ?acl API (s3s-fs): unverifiable, so none.
        let no_api = findings(|f| {
            f.acl_api = Answer::Refused {
                status: 501,
                code: "NotImplemented".into(),
            };
        });
        let s = suggest(&no_api, Addressing::Path);
        assert_eq!((s.acl_headers, s.grants), (Some(false), Some(false)));
        // OSS-like: virtual-hosted only, uppercase ETags, its own conditional form.
        let oss = findings(|f| {
            f.path_style = Answer::Refused {
                status: 403,
                code: "SecondLevelDomainForbidden".into(),
            };
            f.etag_case = Some(EtagCase::Upper);
            f.if_none_match = Answer::Ignored;
            f.if_match = Answer::Ignored;
            f.oss_forbid_overwrite = Answer::Accepted;
        });
        let s = suggest(&oss, Addressing::Path);
        assert_eq!(s.addressing, Some(Addressing::Virtual));
        assert_eq!(s.etag_case, Some(EtagCase::Upper));
        assert_eq!(s.conditional_writes, Some(ConditionalWrites::OssForbidOverwrite));
        // SigV2-only, V1-only listings, raw keys under encoding-type=url, normalised paths.
        let old = findings(|f| {
            f.sigv4 = refused();
            f.sigv2 = Answer::Accepted;
            f.list_objects_v2 = Answer::Ignored;
            f.url_encoded_listings = Answer::Ignored;
            f.literal_dot_segments = Answer::Ignored;
            f.if_none_match = Answer::Ignored;
        });
        let s = suggest(&old, Addressing::Path);
        assert_eq!(s.signature, Some(SignatureVersion::V2));
        assert_eq!(
            (s.list_objects_v2, s.url_encoded_listings, s.literal_dot_segments),
            (Some(false), Some(false), Some(false))
        );
        assert_eq!(s.conditional_writes, Some(ConditionalWrites::Unsupported));
    }

    #[test]
    fn a_read_only_run_suggests_only_what_it_asked() {
        let f = findings(|f| {
            let not = || Answer::NotProbed {
                reason: "read-only".into(),
            };
            f.etag_case = None;
            for (_, a) in f.checksums.iter_mut().chain(f.multipart_checksums.iter_mut()) {
                *a = not();
            }
            for (_, a) in f.canned_acls.iter_mut().chain(f.storage_classes.iter_mut()) {
                *a = not();
            }
            for a in [
                &mut f.unsigned_trailer,
                &mut f.delete_objects_without_md5,
                &mut f.if_none_match,
                &mut f.if_match,
                &mut f.oss_forbid_overwrite,
                &mut f.gcs_generation_match,
                &mut f.grants,
                &mut f.acl_api,
                &mut f.url_encoded_listings,
                &mut f.upload_part_copy,
                &mut f.literal_dot_segments,
            ] {
                *a = not();
            }
        });
        let s = suggest(&f, Addressing::Path);
        let toml = overrides_toml("p", &s);
        assert_eq!(
            toml,
            "[providers.p]\naddressing = \"path\"\nsignature = \"v4\"\n\n[providers.p.dialect_overrides]\nlist_objects_v2 = true\n"
        );
    }
}
