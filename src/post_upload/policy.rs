//! The checks of a form upload before any of its file is read, as pure functions over the
//! form's fields: whose signature the policy carries (SigV4 or SigV2, compared in constant
//! time), whether the policy has expired, and whether every field meets the policy's conditions
//! and every field is covered by one.
//!
//! The rules are AWS's:
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html> (the
//! policy document, its conditions and which fields need none),
//! <https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-authentication-HTTPPOST.html> (the
//! SigV4 signature: HMAC-SHA256 of the base64 policy with the signing key), and
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/HTTPPOSTForms.html> (SigV2: base64
//! HMAC-SHA1 of the base64 policy with the secret key).

use base64::Engine as _;
use serde_json::Value;
use time::OffsetDateTime;

use crate::auth::{ClientAuth, sig_v2};
use crate::error::GatewayError;
use crate::upstream::sign::{hmac_sha256, signing_key};

/// The form's fields before the file, names in lower case (AWS matches them case-insensitively).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FormFields {
    fields: Vec<(String, String)>,
}

impl FormFields {
    /// Adds a field; a name given twice is refused, since a condition could check one value
    /// and the upload use the other.
    pub fn add(&mut self, name: &str, value: String) -> Result<(), GatewayError> {
        let name = name.to_ascii_lowercase();
        if self.get(&name).is_some() {
            return Err(GatewayError::InvalidArgument(format!(
                "the form gives the field '{name}' more than once"
            )));
        }
        self.fields.push((name, value));
        Ok(())
    }

    /// The value of the field `name` (lower case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// The key a policy is signed with: s3ferry's client key id, for the grants and the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySigner {
    pub access_key: String,
}

/// A field the form must carry, refused as AWS refuses its absence.
fn required<'a>(fields: &'a FormFields, name: &str) -> Result<&'a str, GatewayError> {
    fields.get(name).ok_or_else(|| {
        GatewayError::InvalidArgument(format!(
            "Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the fields."
        ))
    })
}

/// Who signed the form's policy. A form without any signature field is anonymous (`None`);
/// one with a signature must carry the policy and verify against a configured key.
pub fn verify_signature(fields: &FormFields, keys: &ClientAuth) -> Result<Option<PolicySigner>, GatewayError> {
    if let Some(signature) = fields.get("x-amz-signature") {
        let policy = required(fields, "policy")?;
        let algorithm = required(fields, "x-amz-algorithm")?;
        if algorithm != "AWS4-HMAC-SHA256" {
            return Err(GatewayError::InvalidArgument(
                "x-amz-algorithm must be AWS4-HMAC-SHA256".into(),
            ));
        }
        let credential = required(fields, "x-amz-credential")?;
        required(fields, "x-amz-date")?;
        let scope: Vec<&str> = credential.split('/').collect();
        let [access_key, date, region, service, "aws4_request"] = scope.as_slice() else {
            return Err(GatewayError::InvalidArgument(
                "x-amz-credential must be <key>/<date>/<region>/<service>/aws4_request".into(),
            ));
        };
        let secret = keys.secret(access_key).ok_or(GatewayError::InvalidAccessKeyId)?;
        let signing_key = signing_key(secret.expose(), date, region, service);
        let expected = hex::encode(hmac_sha256(&signing_key, policy.as_bytes()));
        return crate::auth::sig_v2::check_signature(expected.as_bytes(), signature.to_ascii_lowercase().as_bytes())
            .map(|()| {
                Some(PolicySigner {
                    access_key: (*access_key).to_string(),
                })
            });
    }
    if let Some(signature) = fields.get("signature") {
        let policy = required(fields, "policy")?;
        let access_key = required(fields, "awsaccesskeyid")?;
        let secret = keys.secret(access_key).ok_or(GatewayError::InvalidAccessKeyId)?;
        // SigV2 signs the base64 policy as its string to sign.
        let expected = sig_v2::signature_of(policy, secret.expose());
        return crate::auth::sig_v2::check_signature(expected.as_bytes(), signature.as_bytes()).map(|()| {
            Some(PolicySigner {
                access_key: access_key.to_string(),
            })
        });
    }
    if fields.get("policy").is_some() || fields.get("awsaccesskeyid").is_some() {
        // A policy nobody signed: AWS asks for the signature field.
        return Err(GatewayError::InvalidArgument(
            "Bucket POST must contain a field named 'x-amz-signature' (or 'signature' with SigV2).  If it is specified, please check the order of the fields.".into(),
        ));
    }
    Ok(None)
}

/// One condition of the policy, as AWS writes them (operators are case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `{"field": "value"}` or `["eq", "$field", "value"]`; `field` in lower case.
    Eq { field: String, value: String },
    /// `["starts-with", "$field", "prefix"]`; an empty prefix allows any value.
    StartsWith { field: String, prefix: String },
    /// `["content-length-range", min, max]`, in bytes, inclusive.
    ContentLengthRange { min: u64, max: u64 },
}

impl std::fmt::Display for Condition {
    /// The condition in the policy's own notation, for AWS's "Policy Condition failed" message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Eq { field, value } => write!(f, "[\"eq\", \"${field}\", {}]", Value::from(value.as_str())),
            Self::StartsWith { field, prefix } => {
                write!(f, "[\"starts-with\", \"${field}\", {}]", Value::from(prefix.as_str()))
            }
            Self::ContentLengthRange { min, max } => write!(f, "[\"content-length-range\", {min}, {max}]"),
        }
    }
}

/// The decoded policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub expiration: OffsetDateTime,
    pub conditions: Vec<Condition>,
}

fn invalid_policy(reason: &str) -> GatewayError {
    GatewayError::InvalidPolicyDocument(reason.to_string())
}

/// Decodes the form's `policy` field: base64 of a JSON document with `expiration` and
/// `conditions`.
pub fn parse_policy(encoded: &str) -> Result<Policy, GatewayError> {
    let json = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| invalid_policy("the policy is not base64"))?;
    let doc: Value = serde_json::from_slice(&json).map_err(|_| invalid_policy("the policy is not JSON"))?;
    let doc = doc
        .as_object()
        .ok_or_else(|| invalid_policy("the policy is not a JSON object"))?;
    let expiration = doc
        .get("expiration")
        .ok_or_else(|| invalid_policy("Policy missing expiration."))?
        .as_str()
        .and_then(|text| OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok())
        .ok_or_else(|| invalid_policy("Invalid 'expiration' value"))?;
    let conditions = doc
        .get("conditions")
        .ok_or_else(|| invalid_policy("Policy missing conditions."))?
        .as_array()
        .ok_or_else(|| invalid_policy("'conditions' is not a list"))?
        .iter()
        .map(parse_condition)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Policy { expiration, conditions })
}

fn parse_condition(value: &Value) -> Result<Condition, GatewayError> {
    let invalid = || invalid_policy(&format!("Invalid Condition: {value}"));
    if let Some(object) = value.as_object() {
        let mut entries = object.iter();
        let (Some((field, expected)), None) = (entries.next(), entries.next()) else {
            return Err(invalid());
        };
        return Ok(Condition::Eq {
            field: field.to_ascii_lowercase(),
            value: expected.as_str().ok_or_else(invalid)?.to_string(),
        });
    }
    let items = value.as_array().ok_or_else(invalid)?;
    let [operator, first, second] = items.as_slice() else {
        return Err(invalid());
    };
    let field = || -> Result<String, GatewayError> {
        let name = first.as_str().and_then(|f| f.strip_prefix('$')).ok_or_else(invalid)?;
        Ok(name.to_ascii_lowercase())
    };
    match operator.as_str() {
        Some("eq") => Ok(Condition::Eq {
            field: field()?,
            value: second.as_str().ok_or_else(invalid)?.to_string(),
        }),
        Some("starts-with") => Ok(Condition::StartsWith {
            field: field()?,
            prefix: second.as_str().ok_or_else(invalid)?.to_string(),
        }),
        Some("content-length-range") => {
            let bound = |v: &Value| v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
            let (Some(min), Some(max)) = (bound(first), bound(second)) else {
                return Err(invalid());
            };
            if min > max {
                return Err(invalid());
            }
            Ok(Condition::ContentLengthRange { min, max })
        }
        _ => Err(invalid()),
    }
}

/// Fields that need no condition: the signature itself, the policy, the file, SigV2's key id,
/// and `x-ignore-*` fields (AWS's list, in the pages cited in the module documentation).
fn exempt_from_conditions(name: &str) -> bool {
    matches!(
        name,
        "x-amz-signature" | "signature" | "file" | "policy" | "awsaccesskeyid"
    ) || name.starts_with("x-ignore-")
}

/// What a form that meets its policy uploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The key, `${filename}` replaced by the file's name.
    pub key: String,
    /// `content-length-range`, if the policy has one (the tightest, if several).
    pub length_range: Option<(u64, u64)>,
}

/// Checks `policy` against the form: not expired at `now`, every condition met, every field
/// but the exempt ones covered by a condition. `bucket` is the routed bucket (the one the form
/// was posted to), `filename` the file part's name.
pub fn check_policy(
    policy: &Policy,
    fields: &FormFields,
    bucket: &str,
    filename: &str,
    now: OffsetDateTime,
) -> Result<Checked, GatewayError> {
    if now > policy.expiration {
        return Err(GatewayError::AccessDenied(
            "Invalid according to Policy: Policy expired.".into(),
        ));
    }
    let key = upload_key(fields, filename)?;
    let value_of = |field: &str| -> Option<String> {
        match field {
            "bucket" => Some(bucket.to_string()),
            "key" => Some(key.clone()),
            other => fields.get(other).map(str::to_string),
        }
    };
    let failed = |c: &Condition| {
        GatewayError::AccessDenied(format!("Invalid according to Policy: Policy Condition failed: {c}"))
    };
    let mut length_range: Option<(u64, u64)> = None;
    for condition in &policy.conditions {
        match condition {
            Condition::Eq { field, value } => {
                if value_of(field).as_deref() != Some(value.as_str()) {
                    return Err(failed(condition));
                }
            }
            Condition::StartsWith { field, prefix } => {
                let Some(actual) = value_of(field) else {
                    return Err(failed(condition));
                };
                // Content-Type may list several types, each of which must match (AWS).
                let matches = if field == "content-type" {
                    actual.split(',').all(|t| t.trim_start().starts_with(prefix.as_str()))
                } else {
                    actual.starts_with(prefix.as_str())
                };
                if !matches {
                    return Err(failed(condition));
                }
            }
            Condition::ContentLengthRange { min, max } => {
                length_range = Some(match length_range {
                    Some((lo, hi)) => (lo.max(*min), hi.min(*max)),
                    None => (*min, *max),
                });
            }
        }
    }
    let covered = |name: &str| {
        policy.conditions.iter().any(|c| match c {
            Condition::Eq { field, .. } | Condition::StartsWith { field, .. } => field == name,
            Condition::ContentLengthRange { .. } => false,
        })
    };
    if !covered("bucket") {
        return Err(GatewayError::AccessDenied(
            "Invalid according to Policy: Policy Condition failed: [\"eq\", \"$bucket\", ...] (the policy names no bucket)"
                .into(),
        ));
    }
    let mut extra = fields
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !exempt_from_conditions(n) && !covered(n));
    if let Some(name) = extra.next() {
        return Err(GatewayError::AccessDenied(format!(
            "Invalid according to Policy: Extra input fields: {name}"
        )));
    }
    Ok(Checked { key, length_range })
}

/// The form's `key` with `${filename}` replaced by the file's name (AWS replaces it wherever it
/// appears in the key).
pub fn upload_key(fields: &FormFields, filename: &str) -> Result<String, GatewayError> {
    let key = required(fields, "key")?.replace("${filename}", filename);
    if key.is_empty() {
        return Err(GatewayError::InvalidArgument(
            "User key must have a length greater than 0.".into(),
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-30 12:00 UTC);

    fn encode(json: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(json)
    }

    fn fields(pairs: &[(&str, &str)]) -> FormFields {
        let mut f = FormFields::default();
        for (n, v) in pairs {
            f.add(n, (*v).to_string()).unwrap();
        }
        f
    }

    fn policy(conditions: &str) -> Policy {
        parse_policy(&encode(&format!(
            r#"{{"expiration": "2026-12-01T00:00:00.000Z", "conditions": {conditions}}}"#
        )))
        .unwrap()
    }

    fn code(result: Result<Checked, GatewayError>) -> &'static str {
        result.err().map_or("ok", |e| e.code_and_status().0)
    }

    /// Each condition kind, met and not met, as a table.
    #[test]
    fn conditions_are_checked_as_aws_checks_them() {
        let base = r#"{"bucket": "demo"}, ["starts-with", "$key", "up/"]"#;
        // (conditions added to `base`, the form's fields, the error code or "ok")
        type Row<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let rows: &[Row<'_>] = &[
            ("", &[("key", "up/a")], "ok"),
            ("", &[("key", "down/a")], "AccessDenied"),
            (r#", {"acl": "private"}"#, &[("key", "up/a"), ("acl", "private")], "ok"),
            (
                r#", ["eq", "$acl", "private"]"#,
                &[("key", "up/a"), ("ACL", "public-read")],
                "AccessDenied",
            ),
            (r#", ["eq", "$x-amz-meta-a", "1"]"#, &[("key", "up/a")], "AccessDenied"),
            (
                r#", ["starts-with", "$Content-Type", ""]"#,
                &[("key", "up/a"), ("content-type", "x/y")],
                "ok",
            ),
            (
                r#", ["starts-with", "$Content-Type", "image/"]"#,
                &[("key", "up/a"), ("content-type", "image/png, image/gif")],
                "ok",
            ),
            (
                r#", ["starts-with", "$Content-Type", "image/"]"#,
                &[("key", "up/a"), ("content-type", "image/png, text/x")],
                "AccessDenied",
            ),
            ("", &[("key", "up/a"), ("x-amz-meta-uncovered", "1")], "AccessDenied"),
            (
                "",
                &[
                    ("key", "up/a"),
                    ("x-ignore-anything", "1"),
                    ("policy", "p"),
                    ("signature", "s"),
                ],
                "ok",
            ),
            ("", &[("key", "up/${filename}")], "ok"),
        ];
        for (extra, form, expected) in rows {
            let p = policy(&format!("[{base}{extra}]"));
            let got = code(check_policy(&p, &fields(form), "demo", "f.txt", NOW));
            assert_eq!(got, *expected, "conditions {extra} with {form:?}");
        }
    }

    #[test]
    fn the_bucket_is_the_routed_one_and_must_be_named() {
        let p = policy(r#"[{"bucket": "other"}, ["starts-with", "$key", ""]]"#);
        assert_eq!(
            code(check_policy(&p, &fields(&[("key", "a")]), "demo", "", NOW)),
            "AccessDenied"
        );
        let p = policy(r#"[["starts-with", "$key", ""]]"#);
        assert_eq!(
            code(check_policy(&p, &fields(&[("key", "a")]), "demo", "", NOW)),
            "AccessDenied"
        );
    }

    #[test]
    fn filename_is_substituted_into_the_key() {
        let p = policy(r#"[{"bucket": "demo"}, ["eq", "$key", "up/f.txt"]]"#);
        let checked = check_policy(&p, &fields(&[("key", "up/${filename}")]), "demo", "f.txt", NOW).unwrap();
        assert_eq!(checked.key, "up/f.txt");
        assert_eq!(
            code(check_policy(&p, &fields(&[]), "demo", "f.txt", NOW)),
            "InvalidArgument"
        );
    }

    #[test]
    fn an_expired_policy_is_refused() {
        let p = policy(r#"[{"bucket": "demo"}, ["starts-with", "$key", ""]]"#);
        let later = datetime!(2026-12-01 00:00:01 UTC);
        let err = check_policy(&p, &fields(&[("key", "a")]), "demo", "", later).unwrap_err();
        assert_eq!(err.client_message(), "Invalid according to Policy: Policy expired.");
    }

    #[test]
    fn content_length_ranges_are_intersected() {
        let p = policy(
            r#"[{"bucket": "demo"}, ["starts-with", "$key", ""], ["content-length-range", 1, 100], ["content-length-range", "10", "1000"]]"#,
        );
        let checked = check_policy(&p, &fields(&[("key", "a")]), "demo", "", NOW).unwrap();
        assert_eq!(checked.length_range, Some((10, 100)));
    }

    #[test]
    fn malformed_policies_are_refused_with_aws_codes() {
        for doc in [
            r#"{"conditions": []}"#,
            r#"{"Expiration": "2026-12-01T00:00:00Z", "conditions": []}"#,
            r#"{"expiration": "tomorrow", "conditions": []}"#,
            r#"{"expiration": "2026-12-01T00:00:00Z"}"#,
            r#"{"expiration": "2026-12-01T00:00:00Z", "conditions": [["StArts-WiTh", "$key", ""]]}"#,
            r#"{"expiration": "2026-12-01T00:00:00Z", "conditions": [["content-length-range", -1, 0]]}"#,
            r#"{"expiration": "2026-12-01T00:00:00Z", "conditions": [["content-length-range", 10, 1]]}"#,
            r#"{"expiration": "2026-12-01T00:00:00Z", "conditions": [{"a": "1", "b": "2"}]}"#,
            "not json",
        ] {
            let err = parse_policy(&encode(doc)).unwrap_err();
            assert_eq!(err.code_and_status().0, "InvalidPolicyDocument", "{doc}");
        }
        assert!(parse_policy("***").is_err());
    }

    #[test]
    fn sigv4_and_sigv2_signatures_verify_in_constant_time() {
        let keys = ClientAuth::from_pairs(&[("AKID", "secret")]);
        let policy = encode(r#"{"expiration": "2026-12-01T00:00:00Z", "conditions": []}"#);
        let key = signing_key("secret", "20261130", "us-east-1", "s3");
        let v4 = hex::encode(hmac_sha256(&key, policy.as_bytes()));
        let v4_form = |sig: &str, cred: &str| {
            fields(&[
                ("policy", &policy),
                ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
                ("x-amz-credential", cred),
                ("x-amz-date", "20261130T000000Z"),
                ("x-amz-signature", sig),
            ])
        };
        let signer = verify_signature(&v4_form(&v4, "AKID/20261130/us-east-1/s3/aws4_request"), &keys).unwrap();
        assert_eq!(signer.unwrap().access_key, "AKID");
        let wrong = verify_signature(
            &v4_form(&"0".repeat(64), "AKID/20261130/us-east-1/s3/aws4_request"),
            &keys,
        );
        assert!(matches!(wrong, Err(GatewayError::SignatureDoesNotMatch)));
        let unknown = verify_signature(&v4_form(&v4, "NOPE/20261130/us-east-1/s3/aws4_request"), &keys);
        assert!(matches!(unknown, Err(GatewayError::InvalidAccessKeyId)));

        let v2 = sig_v2::signature_of(&policy, "secret");
        let v2_form = |sig: &str| fields(&[("policy", &policy), ("awsaccesskeyid", "AKID"), ("signature", sig)]);
        assert!(verify_signature(&v2_form(&v2), &keys).unwrap().is_some());
        assert!(matches!(
            verify_signature(&v2_form("AAAA"), &keys),
            Err(GatewayError::SignatureDoesNotMatch)
        ));

        assert_eq!(verify_signature(&fields(&[("key", "a")]), &keys).unwrap(), None);
        let unsigned = verify_signature(&fields(&[("policy", &policy)]), &keys);
        assert!(matches!(unsigned, Err(GatewayError::InvalidArgument(_))));
    }
}
