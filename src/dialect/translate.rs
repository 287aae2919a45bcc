//! Request and response headers translated between the client's (AWS) dialect and a
//! provider's, driven only by a [`DialectProfile`]. Pure: header maps in, header maps out.

use http::{HeaderMap, HeaderValue};

use super::{AWS_CANNED_ACLS, ConditionalWrites, DialectProfile, UnsupportedAcl};
use crate::checksum::{ChecksumAlgorithm, take_stored_checksums};
use crate::error::GatewayError;
use crate::s3::operation::Operation;

/// Request headers that carry an ETag the client saw.
const ETAG_CONDITION_HEADERS: &[&str] = &[
    "if-match",
    "if-none-match",
    "x-amz-copy-source-if-match",
    "x-amz-copy-source-if-none-match",
];

/// Request header naming the storage class (PutObject, CopyObject, CreateMultipartUpload).
const STORAGE_CLASS: &str = "x-amz-storage-class";
const CANNED_ACL: &str = "x-amz-acl";
const GRANT_PREFIX: &str = "x-amz-grant-";

/// A request the provider's dialect cannot express and the profile says to refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untranslatable {
    #[error("provider '{provider}' does not support the canned ACL '{acl}' (its dialect accepts: {accepted})")]
    CannedAcl {
        provider: String,
        acl: String,
        accepted: String,
    },
    #[error("provider '{provider}' does not support ACL grants ({header})")]
    Grant { provider: String, header: String },
    #[error(
        "provider '{provider}' has no way to make a write conditional on {header}; s3ferry refuses it rather than overwrite unconditionally"
    )]
    ConditionalWrite { provider: String, header: String },
}

/// Request headers of the flexible-checksum protocol that are not the checksum value itself.
const CHECKSUM_ALGORITHM_HEADERS: &[&str] = &["x-amz-sdk-checksum-algorithm", "x-amz-checksum-algorithm"];
const CHECKSUM_TYPE: &str = "x-amz-checksum-type";
const CHECKSUM_MODE: &str = "x-amz-checksum-mode";

/// A client checksum header the provider will not get: s3ferry verifies it against the body
/// (where it describes the body) and may keep it in object metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithheldChecksum {
    pub algorithm: ChecksumAlgorithm,
    /// The base64 value the client sent.
    pub value: String,
}

/// A request the provider's dialect cannot express: a conditional write without an equivalent
/// is not implemented there; an ACL the profile refuses is the client's.
impl From<Untranslatable> for GatewayError {
    fn from(e: Untranslatable) -> Self {
        match e {
            Untranslatable::ConditionalWrite { .. } => GatewayError::NotImplemented(e.to_string()),
            Untranslatable::CannedAcl { .. } | Untranslatable::Grant { .. } => {
                GatewayError::AclNotSupported(e.to_string())
            }
        }
    }
}

/// The ACL the provider gets for a canned ACL it does not accept, under `map`: the closest
/// one that grants no more than the client asked for, or `None` for "no ACL header" (the
/// provider's default, private).
fn nearest_canned_acl(profile: &DialectProfile, acl: &str) -> Option<&'static str> {
    // docs/dialects.md rule 26: public-read-write -> public-read where that exists; everything
    // else (authenticated-read, bucket-owner-*, log-delivery-write, aws-exec-read) -> private.
    let candidates: &[&'static str] = match acl {
        "public-read-write" => &["public-read", "private"],
        _ => &["private"],
    };
    candidates.iter().copied().find(|c| profile.accepts_canned_acl(c))
}

/// Rewrites the client's request headers and query for the provider: ACLs per the profile's
/// policy, storage class names, ETag case in conditionals, conditional writes, checksum headers
/// the provider does not take, and headers/params the provider rejects. `provider` names the
/// provider in errors.
pub fn translate_request(
    profile: &DialectProfile,
    provider: &str,
    operation: Operation,
    headers: &mut HeaderMap,
    query: &mut Vec<(String, String)>,
) -> Result<Option<WithheldChecksum>, Untranslatable> {
    translate_acl(profile, provider, headers)?;
    if let Some(class) = headers.get(STORAGE_CLASS).and_then(|v| v.to_str().ok()) {
        let mapped = profile.provider_storage_class(class).to_string();
        if let Ok(v) = HeaderValue::from_str(&mapped) {
            if let Some(native) = &profile.native_storage_class_header
                && let Ok(name) = http::HeaderName::from_bytes(native.as_bytes())
            {
                headers.insert(name, v.clone());
            }
            headers.insert(STORAGE_CLASS, v);
        }
    }
    if operation.is_conditional_write() {
        translate_conditional_write(profile, provider, headers)?;
    }
    for name in ETAG_CONDITION_HEADERS {
        if let Some(value) = headers.get(*name).and_then(|v| v.to_str().ok()) {
            let provider_form = profile.provider_etag(value);
            if provider_form != value
                && let Ok(v) = HeaderValue::from_str(&provider_form)
            {
                headers.insert(*name, v);
            }
        }
    }
    for name in &profile.drop_headers {
        headers.remove(name.as_str());
    }
    query.retain(|(name, _)| !profile.drop_params.contains(name));
    Ok(withhold_unsupported_checksums(profile, headers))
}

/// `If-None-Match: *` / `If-Match` on a write in the provider's form (docs/dialects.md rule 25).
fn translate_conditional_write(
    profile: &DialectProfile,
    provider: &str,
    headers: &mut HeaderMap,
) -> Result<(), Untranslatable> {
    let refuse = |header: &str| Untranslatable::ConditionalWrite {
        provider: provider.to_string(),
        header: header.to_string(),
    };
    let if_none_match = headers
        .get(http::header::IF_NONE_MATCH)
        .map(|v| v.as_bytes().trim_ascii().to_vec());
    let if_match = headers.contains_key(http::header::IF_MATCH);
    let native = match profile.conditional_writes {
        ConditionalWrites::Aws => return Ok(()),
        ConditionalWrites::Unsupported => None,
        ConditionalWrites::OssForbidOverwrite => Some(("x-oss-forbid-overwrite", "true")),
        ConditionalWrites::GcsGenerationMatch => Some(("x-goog-if-generation-match", "0")),
    };
    if if_match {
        return Err(refuse("If-Match"));
    }
    let Some(value) = if_none_match else {
        return Ok(());
    };
    match native {
        Some((name, flag)) if value == b"*" => {
            headers.remove(http::header::IF_NONE_MATCH);
            headers.insert(name, HeaderValue::from_static(flag));
            Ok(())
        }
        _ => Err(refuse("If-None-Match")),
    }
}

/// Takes the checksum headers the provider does not accept off the request (and s3ferry's own
/// metadata names, which clients may not set). Returns the withheld checksum value.
fn withhold_unsupported_checksums(profile: &DialectProfile, headers: &mut HeaderMap) -> Option<WithheldChecksum> {
    take_stored_checksums(headers);
    let accepts = |a: ChecksumAlgorithm| profile.checksum_algorithms.contains(&a);
    let mut withheld = None;
    let values: Vec<(http::HeaderName, ChecksumAlgorithm)> = headers
        .keys()
        .filter_map(|n| ChecksumAlgorithm::from_header_name(n.as_str()).map(|a| (n.clone(), a)))
        .collect();
    for (name, algorithm) in values {
        if accepts(algorithm) {
            continue;
        }
        if let Some(value) = headers.remove(&name).and_then(|v| v.to_str().ok().map(str::to_owned)) {
            withheld.get_or_insert(WithheldChecksum { algorithm, value });
        }
    }
    for name in CHECKSUM_ALGORITHM_HEADERS {
        let unsupported = headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| ChecksumAlgorithm::from_name(v).is_none_or(|a| !accepts(a)));
        if unsupported {
            headers.remove(*name);
        }
    }
    if profile.checksum_algorithms.is_empty() {
        headers.remove(CHECKSUM_TYPE);
        headers.remove(CHECKSUM_MODE);
    }
    withheld
}

fn translate_acl(profile: &DialectProfile, provider: &str, headers: &mut HeaderMap) -> Result<(), Untranslatable> {
    let grant_headers: Vec<http::HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with(GRANT_PREFIX))
        .cloned()
        .collect();
    if !(profile.acl_headers && profile.grants) {
        for header in grant_headers {
            match profile.unsupported_acl {
                UnsupportedAcl::Map | UnsupportedAcl::Drop => {
                    headers.remove(&header);
                }
                UnsupportedAcl::Reject => {
                    return Err(Untranslatable::Grant {
                        provider: provider.to_string(),
                        header: header.as_str().to_string(),
                    });
                }
            }
        }
    }
    let Some(acl) = headers
        .get(CANNED_ACL)
        .map(|v| v.to_str().unwrap_or_default().trim().to_ascii_lowercase())
    else {
        return Ok(());
    };
    if profile.accepts_canned_acl(&acl) {
        return Ok(());
    }
    // A provider without ACLs treats what the profile lists as its default (private) as a no-op.
    let is_default = !profile.acl_headers && profile.canned_acls.contains(&acl);
    let replacement = match profile.unsupported_acl {
        _ if is_default => None,
        UnsupportedAcl::Drop => None,
        UnsupportedAcl::Map if AWS_CANNED_ACLS.contains(&acl.as_str()) => nearest_canned_acl(profile, &acl),
        UnsupportedAcl::Map | UnsupportedAcl::Reject => {
            let accepted: Vec<&str> = if profile.acl_headers {
                profile.canned_acls.iter().map(String::as_str).collect()
            } else {
                Vec::new()
            };
            return Err(Untranslatable::CannedAcl {
                provider: provider.to_string(),
                acl,
                accepted: if accepted.is_empty() {
                    "none".into()
                } else {
                    accepted.join(", ")
                },
            });
        }
    };
    match replacement {
        Some(new_acl) => {
            headers.insert(CANNED_ACL, HeaderValue::from_static(new_acl));
        }
        None => {
            headers.remove(CANNED_ACL);
        }
    }
    Ok(())
}

/// Rewrites the provider's response headers for the client: the `ETag` in AWS case and the
/// storage class in AWS names.
pub fn translate_response_headers(profile: &DialectProfile, headers: &mut HeaderMap) {
    if let Some(etag) = headers.get(http::header::ETAG).and_then(|v| v.to_str().ok()) {
        let client = profile.client_etag(etag);
        if client != etag
            && let Ok(v) = HeaderValue::from_str(&client)
        {
            headers.insert(http::header::ETAG, v);
        }
    }
    if let Some(class) = headers.get(STORAGE_CLASS).and_then(|v| v.to_str().ok()) {
        let client = profile.client_storage_class(class);
        if client != class
            && let Ok(v) = HeaderValue::from_str(client)
        {
            headers.insert(STORAGE_CLASS, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::builtin;
    use crate::test_support::header_map as headers;

    fn profile(name: &str) -> DialectProfile {
        builtin(name).expect("dialect")
    }

    fn acl_after(profile: &DialectProfile, acl: &'static str) -> Result<Option<String>, Untranslatable> {
        let mut h = headers(&[(CANNED_ACL, acl)]);
        translate_request(profile, "p", Operation::PutObject, &mut h, &mut Vec::new())?;
        Ok(h.get(CANNED_ACL).map(|v| v.to_str().expect("text").to_string()))
    }

    #[test]
    fn oss_maps_the_five_other_canned_acls_to_safe_ones() {
        let oss = profile("oss");
        for (client, provider) in [
            ("private", Some("private")),
            ("public-read", Some("public-read")),
            ("public-read-write", Some("public-read-write")),
            ("authenticated-read", Some("private")),
            ("bucket-owner-read", Some("private")),
            ("bucket-owner-full-control", Some("private")),
            ("aws-exec-read", Some("private")),
            ("log-delivery-write", Some("private")),
        ] {
            assert_eq!(
                acl_after(&oss, client).expect("mapped").as_deref(),
                provider,
                "{client}"
            );
        }
    }

    #[test]
    fn public_read_write_maps_to_public_read_where_that_is_the_widest() {
        let b2 = profile("b2");
        assert_eq!(
            acl_after(&b2, "public-read-write").expect("mapped").as_deref(),
            Some("public-read")
        );
        assert_eq!(
            acl_after(&b2, "authenticated-read").expect("mapped").as_deref(),
            Some("private")
        );
    }

    #[test]
    fn providers_without_acls_get_no_acl_header_and_refuse_public_ones() {
        for name in ["r2", "minio", "garage", "local"] {
            let p = profile(name);
            assert_eq!(acl_after(&p, "private").expect("no-op"), None, "{name}");
            assert_eq!(
                acl_after(&p, "bucket-owner-full-control").expect("no-op"),
                None,
                "{name}"
            );
            let err = acl_after(&p, "public-read").expect_err("refused");
            assert!(err.to_string().contains("'public-read'"), "{name}: {err}");
        }
    }

    #[test]
    fn the_unsupported_policy_decides_between_map_drop_and_reject() {
        let mut oss = profile("oss");
        oss.unsupported_acl = UnsupportedAcl::Drop;
        assert_eq!(acl_after(&oss, "authenticated-read").expect("dropped"), None);
        assert_eq!(
            acl_after(&oss, "public-read").expect("kept").as_deref(),
            Some("public-read")
        );
        oss.unsupported_acl = UnsupportedAcl::Reject;
        let err = acl_after(&oss, "authenticated-read").expect_err("rejected");
        assert_eq!(
            err,
            Untranslatable::CannedAcl {
                provider: "p".into(),
                acl: "authenticated-read".into(),
                accepted: "private, public-read, public-read-write".into()
            }
        );
        let mut r2 = profile("r2");
        r2.unsupported_acl = UnsupportedAcl::Map;
        assert_eq!(acl_after(&r2, "public-read").expect("mapped to no header"), None);
    }

    #[test]
    fn unknown_canned_acls_are_refused_even_under_map() {
        assert!(acl_after(&profile("oss"), "everyone-writes").is_err());
        assert_eq!(
            acl_after(&profile("aws"), "public-read").expect("aws").as_deref(),
            Some("public-read")
        );
    }

    #[test]
    fn grants_pass_where_supported_and_follow_the_policy_elsewhere() {
        let grant = [(
            "x-amz-grant-read",
            "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"",
        )];
        let mut h = headers(&grant);
        translate_request(&profile("ceph"), "p", Operation::PutObject, &mut h, &mut Vec::new()).expect("ceph");
        assert!(h.contains_key("x-amz-grant-read"));
        let mut h = headers(&grant);
        translate_request(&profile("oss"), "p", Operation::PutObject, &mut h, &mut Vec::new()).expect("oss maps");
        assert!(!h.contains_key("x-amz-grant-read"));
        let mut h = headers(&grant);
        let err = translate_request(&profile("r2"), "r2", Operation::PutObject, &mut h, &mut Vec::new())
            .expect_err("r2 rejects");
        assert_eq!(
            err,
            Untranslatable::Grant {
                provider: "r2".into(),
                header: "x-amz-grant-read".into()
            }
        );
    }

    #[test]
    fn storage_class_header_is_renamed_for_the_provider_and_back() {
        let oss = profile("oss");
        let mut h = headers(&[(STORAGE_CLASS, "STANDARD_IA")]);
        translate_request(&oss, "p", Operation::PutObject, &mut h, &mut Vec::new()).expect("ok");
        assert_eq!(h.get(STORAGE_CLASS).expect("class"), "IA");
        let mut h = headers(&[(STORAGE_CLASS, "Archive"), ("etag", "\"ABC123\"")]);
        translate_response_headers(&oss, &mut h);
        assert_eq!(h.get(STORAGE_CLASS).expect("class"), "GLACIER");
        assert_eq!(h.get("etag").expect("etag"), "\"abc123\"");
    }

    #[test]
    fn conditional_etags_take_the_providers_case() {
        let mut h = headers(&[
            ("if-match", "\"abc\""),
            ("if-none-match", "W/\"def\""),
            ("x-amz-copy-source-if-match", "\"0a1b\""),
            ("x-amz-copy-source-if-none-match", "*"),
        ]);
        translate_request(&profile("oss"), "p", Operation::GetObject, &mut h, &mut Vec::new()).expect("ok");
        assert_eq!(h.get("if-match").expect("h"), "\"ABC\"");
        assert_eq!(h.get("if-none-match").expect("h"), "W/\"DEF\"");
        assert_eq!(h.get("x-amz-copy-source-if-match").expect("h"), "\"0A1B\"");
        assert_eq!(h.get("x-amz-copy-source-if-none-match").expect("h"), "*");
        let mut h = headers(&[("if-match", "\"abc\"")]);
        translate_request(&profile("aws"), "p", Operation::GetObject, &mut h, &mut Vec::new()).expect("ok");
        assert_eq!(h.get("if-match").expect("h"), "\"abc\"");
    }

    #[test]
    fn rejected_headers_and_params_are_not_forwarded() {
        let mut h = headers(&[
            ("x-amz-request-payer", "requester"),
            ("x-amz-expected-bucket-owner", "123"),
            ("x-amz-meta-a", "b"),
        ]);
        let mut q = vec![("x-id".to_string(), "PutObject".to_string())];
        translate_request(&profile("r2"), "p", Operation::GetObject, &mut h, &mut q).expect("ok");
        assert_eq!(h.len(), 1);
        assert_eq!(q.len(), 1, "r2 keeps x-id");
        translate_request(&profile("gcs"), "p", Operation::GetObject, &mut h, &mut q).expect("ok");
        assert!(q.is_empty(), "gcs drops x-id");
    }

    fn write_with(
        profile: &DialectProfile,
        pairs: &[(&'static str, &'static str)],
    ) -> Result<HeaderMap, Untranslatable> {
        let mut h = headers(pairs);
        translate_request(profile, "p", Operation::PutObject, &mut h, &mut Vec::new())?;
        Ok(h)
    }

    #[test]
    fn conditional_writes_take_each_providers_form_or_are_refused() {
        let h = write_with(&profile("oss"), &[("if-none-match", "*")]).expect("oss");
        assert_eq!(h.get("x-oss-forbid-overwrite").expect("native"), "true");
        assert!(!h.contains_key("if-none-match"));
        let h = write_with(&profile("gcs"), &[("if-none-match", "*")]).expect("gcs");
        assert_eq!(h.get("x-goog-if-generation-match").expect("native"), "0");
        assert!(!h.contains_key("if-none-match"));
        let h = write_with(&profile("aws"), &[("if-none-match", "*"), ("if-match", "\"a\"")]).expect("aws");
        assert_eq!(h.len(), 2, "AWS takes both as they are");
        for (dialect, pairs) in [
            ("oss", &[("if-match", "\"abc\"")][..]),
            ("gcs", &[("if-match", "\"abc\"")][..]),
            ("oss", &[("if-none-match", "\"abc\"")][..]),
            ("wasabi", &[("if-none-match", "*")][..]),
            ("garage", &[("if-match", "\"abc\"")][..]),
        ] {
            let err = write_with(&profile(dialect), pairs).expect_err(dialect);
            assert!(
                matches!(err, Untranslatable::ConditionalWrite { .. }),
                "{dialect}: {err}"
            );
        }
        // Reads keep their conditionals everywhere.
        let mut h = headers(&[("if-none-match", "*")]);
        translate_request(&profile("wasabi"), "p", Operation::GetObject, &mut h, &mut Vec::new()).expect("read");
        assert!(h.contains_key("if-none-match"));
    }

    #[test]
    fn checksums_the_provider_does_not_take_are_withheld() {
        let pairs = [
            ("x-amz-checksum-crc32", "i9aeUg=="),
            ("x-amz-sdk-checksum-algorithm", "CRC32"),
            ("x-amz-meta-s3ferry-checksum-sha1", "forged"),
            ("x-amz-meta-color", "blue"),
        ];
        let mut h = headers(&pairs);
        let withheld =
            translate_request(&profile("b2"), "p", Operation::PutObject, &mut h, &mut Vec::new()).expect("b2");
        assert_eq!(
            withheld,
            Some(WithheldChecksum {
                algorithm: ChecksumAlgorithm::Crc32,
                value: "i9aeUg==".into()
            })
        );
        assert_eq!(h.len(), 1, "only the client's own metadata stays: {h:?}");
        let mut h = headers(&pairs);
        let withheld =
            translate_request(&profile("aws"), "p", Operation::PutObject, &mut h, &mut Vec::new()).expect("aws");
        assert_eq!(withheld, None);
        assert!(h.contains_key("x-amz-checksum-crc32") && h.contains_key("x-amz-sdk-checksum-algorithm"));
        assert!(
            !h.contains_key("x-amz-meta-s3ferry-checksum-sha1"),
            "s3ferry's metadata names are its own"
        );
        // Garage takes CRC32 but not CRC64NVME (docs/dialects.md A.9).
        let mut h = headers(&[
            ("x-amz-checksum-crc64nvme", "AAAAAAAAAAA="),
            ("x-amz-checksum-algorithm", "CRC64NVME"),
        ]);
        let withheld =
            translate_request(&profile("garage"), "p", Operation::PutObject, &mut h, &mut Vec::new()).expect("garage");
        assert_eq!(withheld.map(|w| w.algorithm), Some(ChecksumAlgorithm::Crc64Nvme));
        assert!(h.is_empty());
        let mut h = headers(&[("x-amz-checksum-mode", "ENABLED")]);
        translate_request(&profile("b2"), "p", Operation::GetObject, &mut h, &mut Vec::new()).expect("b2 get");
        assert!(h.is_empty(), "B2 refuses x-amz-checksum-mode");
    }

    #[test]
    fn oss_gets_the_storage_class_in_its_native_header_too() {
        let h = write_with(&profile("oss"), &[(STORAGE_CLASS, "GLACIER")]).expect("oss");
        assert_eq!(h.get(STORAGE_CLASS).expect("aws header"), "Archive");
        assert_eq!(h.get("x-oss-storage-class").expect("native header"), "Archive");
        let h = write_with(&profile("gcs"), &[(STORAGE_CLASS, "GLACIER")]).expect("gcs");
        assert_eq!(h.len(), 1);
    }
}
