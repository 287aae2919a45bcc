//! A provider's profile: the built-in one of its dialect with the provider's own tables
//! applied: `[providers.X.dialect_overrides]` (any field of the profile), `storage_classes`,
//! `error_codes` and `acl.unsupported`. Names and words are checked before they are used, and
//! every refusal names its key.

use super::ConfigError;
use super::raw::{RawDialectOverrides, RawErrorMapping, RawProvider};
use super::resolve::Resolver;
use crate::checksum::ChecksumAlgorithm;
use crate::dialect::{self, DialectProfile};

impl Resolver<'_> {
    /// The built-in profile of `dialect` with `dialect_overrides`, `storage_classes`,
    /// `error_codes` and `acl` of the provider applied.
    pub(super) fn resolve_profile(
        &self,
        key: &str,
        dialect: &str,
        p: &RawProvider,
    ) -> Result<DialectProfile, ConfigError> {
        let mut profile = dialect::builtin(dialect)
            .ok_or_else(|| self.error(format!("{key}.dialect"), format!("no profile for dialect '{dialect}'")))?;
        if let Some(overrides) = &p.dialect_overrides {
            self.apply_dialect_overrides(&format!("{key}.dialect_overrides"), overrides, &mut profile)?;
        }
        if let Some(table) = &p.storage_classes {
            let mut merged: Vec<(String, String)> = Vec::new();
            for (client, provider) in table {
                if client.is_empty() || provider.is_empty() {
                    return Err(self.error(
                        format!("{key}.storage_classes"),
                        "class names must not be empty".to_string(),
                    ));
                }
                merged.push((client.clone(), provider.clone()));
            }
            // The provider's own entries win; built-in ones for other classes stay.
            merged.extend(
                profile
                    .storage_classes
                    .into_iter()
                    .filter(|(c, _)| !table.contains_key(c)),
            );
            profile.storage_classes = merged;
        }
        if let Some(table) = &p.error_codes {
            for (provider_code, raw) in table {
                let (aws_code, status, hint) = match raw {
                    RawErrorMapping::Code(code) => (code.clone(), None, None),
                    RawErrorMapping::Full { code, status, hint } => (code.clone(), *status, hint.clone()),
                };
                if aws_code.is_empty() || status.is_some_and(|s| !(400..=599).contains(&s)) {
                    return Err(self.error(
                        format!("{key}.error_codes.{provider_code}"),
                        "needs a non-empty AWS code and, if given, an error status 400-599",
                    ));
                }
                profile.error_codes.retain(|m| &m.provider_code != provider_code);
                profile.error_codes.push(dialect::ErrorMapping {
                    provider_code: provider_code.clone(),
                    aws_code,
                    status,
                    hint,
                });
            }
        }
        if let Some(acl) = &p.acl
            && let Some(policy) = acl.unsupported.as_deref()
        {
            profile.unsupported_acl = self.word(format!("{key}.acl.unsupported"), policy)?;
        }
        Ok(profile)
    }

    /// Each override that is set replaces the profile's value. Values with a vocabulary
    /// (words, ACL and algorithm names) are checked first, in the order of the table, and
    /// refused with their key (`key` is `providers.X.dialect_overrides`).
    fn apply_dialect_overrides(
        &self,
        key: &str,
        o: &RawDialectOverrides,
        profile: &mut DialectProfile,
    ) -> Result<(), ConfigError> {
        let field = |name: &str| format!("{key}.{name}");
        if let Some(case) = &o.etag_case {
            profile.etag_case = self.word(field("etag_case"), case)?;
        }
        if let Some(acls) = &o.canned_acls {
            if let Some(bad) = acls.iter().find(|a| !dialect::AWS_CANNED_ACLS.contains(&a.as_str())) {
                return Err(self.error(
                    field("canned_acls"),
                    format!(
                        "'{bad}' is not an S3 canned ACL (known: {})",
                        dialect::AWS_CANNED_ACLS.join(", ")
                    ),
                ));
            }
            profile.canned_acls.clone_from(acls);
        }
        if let Some(names) = &o.checksum_algorithms {
            profile.checksum_algorithms = names
                .iter()
                .map(|name| {
                    ChecksumAlgorithm::from_name(name).ok_or_else(|| {
                        self.error(
                            field("checksum_algorithms"),
                            format!(
                                "'{name}' is not a checksum algorithm (known: crc32, crc32c, crc64nvme, sha1, sha256)"
                            ),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        if let Some(form) = &o.conditional_writes {
            profile.conditional_writes = self.word(field("conditional_writes"), form)?;
        }
        if let Some(headers) = &o.drop_headers {
            profile.drop_headers = headers.iter().map(|h| h.to_ascii_lowercase()).collect();
        }
        if let Some(header) = &o.native_storage_class_header {
            // An empty name switches the profile's header off.
            profile.native_storage_class_header = (!header.is_empty()).then(|| header.to_ascii_lowercase());
        }
        // The rest are taken as written.
        replace(&mut profile.acl_headers, o.acl_headers);
        replace(&mut profile.grants, o.grants);
        replace(&mut profile.drop_params, o.drop_params.clone());
        replace(&mut profile.url_encoded_listings, o.url_encoded_listings);
        replace(&mut profile.content_md5_required, o.content_md5_required);
        replace(&mut profile.acl_api, o.acl_api);
        replace(&mut profile.list_objects_v2, o.list_objects_v2);
        replace(&mut profile.unsupported_operations, o.unsupported_operations.clone());
        replace(&mut profile.upload_part_copy, o.upload_part_copy);
        replace(&mut profile.trailing_checksums_by_copy, o.trailing_checksums_by_copy);
        replace(&mut profile.unsigned_trailer, o.unsigned_trailer);
        replace(&mut profile.literal_dot_segments, o.literal_dot_segments);
        replace(&mut profile.verifies_before_storing, o.verifies_before_storing);
        replace(&mut profile.tag_count_in_reads, o.tag_count_in_reads);
        replace(&mut profile.conditional_copy, o.conditional_copy);
        Ok(())
    }
}

/// An override that is set replaces the profile's value; one that is not leaves it.
fn replace<T>(value: &mut T, with: Option<T>) {
    if let Some(new) = with {
        *value = new;
    }
}
