//! What the provider gets and what the client gets back, decided before anything is sent: a
//! pure function of the provider's settings and the client's request, like
//! `migration::policy`. The plan holds every provider decision for one request: the refusals,
//! the headers and query the provider gets (in its dialect), what s3ferry checks in the body
//! itself, whether the body is rewritten (part list, `Content-MD5`), whether the trailing
//! checksum is kept by a copy, and how the answer is turned back into the client's
//! ([`ResponsePlan`]).
//!
//! How the body is framed on its way (unchanged, de-chunked, re-framed with its trailer) is
//! decided from the client's framing headers in `upload`, where the body is.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::request::ClientRequest;
use crate::auth::boundary::connection_tokens;
use crate::dialect::translate::{self, WithheldChecksum};
use crate::error::GatewayError;
use crate::rewrite::list_v2_via_v1::{self, V2Request};
use crate::s3::operation::Operation;
use crate::upstream::UpstreamSettings;

/// Request headers that are not forwarded: hop-by-hop headers, the client's signature, and
/// framing that s3ferry sets itself.
const DROPPED_REQUEST_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
];

/// The request as the provider gets it, and its answer as the client will.
#[derive(Debug)]
pub(super) struct RequestPlan {
    /// The headers the provider gets, in its dialect (framing is set when the body is built).
    pub headers: HeaderMap,
    /// The query the provider gets.
    pub query: Vec<(String, String)>,
    /// What s3ferry checks in the client's body itself.
    pub body: BodyPlan,
    /// A CompleteMultipartUpload part list written again: part ETags in the provider's case,
    /// part checksums it does not take left out.
    pub rewrite_part_list: bool,
    /// The provider wants a `Content-MD5` that s3ferry adds when the client sent none.
    pub content_md5: bool,
    /// A verified trailing checksum the provider cannot take is kept by copying the object onto
    /// itself with it in its metadata (`keep_checksum`).
    pub keep_trailer_by_copy: bool,
    /// How the provider's answer becomes the client's.
    pub response: ResponsePlan,
}

/// What s3ferry checks in the client's body, besides what s3s verifies.
#[derive(Debug, Clone, Default)]
pub(super) struct BodyPlan {
    /// A client checksum header the provider does not get, checked against the body by s3ferry.
    pub withheld: Option<WithheldChecksum>,
    /// The body is the object's data (PutObject, UploadPart).
    pub object_data: bool,
}

/// What the client asked that decides how the provider's answer is turned into its answer.
#[derive(Debug, Clone)]
pub(super) struct ResponsePlan {
    pub operation: Operation,
    /// s3ferry URL-encodes the listing's keys itself.
    pub encode_listing: bool,
    /// The client sent `x-amz-checksum-mode: ENABLED`.
    pub checksum_mode: bool,
    /// The client asked for a byte range.
    pub ranged: bool,
    /// The answer is a V1 listing that becomes the client's ListObjectsV2 answer.
    pub v2_via_v1: Option<V2Request>,
}

impl ResponsePlan {
    /// The answer to `operation` relayed as it comes, but for what the client's headers ask.
    pub fn relayed(operation: Operation, client_headers: &HeaderMap) -> Self {
        Self {
            operation,
            encode_listing: false,
            checksum_mode: client_headers
                .get("x-amz-checksum-mode")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"enabled")),
            ranged: client_headers.contains_key(http::header::RANGE),
            v2_via_v1: None,
        }
    }
}

impl RequestPlan {
    /// The plan for sending `request` to the provider of `settings`. `copy_source` is the
    /// `x-amz-copy-source` for the provider (its upstream bucket), `satisfied_by_old` says an
    /// `If-Match` was already met by the old provider of a bucket under migration.
    pub fn new(
        settings: &UpstreamSettings,
        request: &ClientRequest,
        client_headers: &HeaderMap,
        copy_source: Option<HeaderValue>,
        satisfied_by_old: bool,
    ) -> Result<Self, GatewayError> {
        let profile = &settings.profile;
        let operation = request.operation;
        let mut headers = forwarded_headers(client_headers);
        if let Some(value) = copy_source {
            headers.insert("x-amz-copy-source", value);
        }
        for (name, value) in &request.checksum_params {
            headers.entry(name).or_insert_with(|| value.clone());
        }
        if satisfied_by_old {
            // The old copy matched If-Match; the new provider has no copy to match against.
            headers.remove(http::header::IF_MATCH);
        }
        let mut query = request.query.clone();
        let withheld = translate::translate_request(profile, &settings.name, operation, &mut headers, &mut query)?;
        let withheld = withheld.filter(|_| operation.checksum_describes_body());
        if operation == Operation::PutObject
            && let Some(w) = &withheld
        {
            // Kept in the object's metadata, so reads with `x-amz-checksum-mode` can report it
            // although the provider cannot.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(w.algorithm.stored_header_name().as_bytes()),
                HeaderValue::from_str(&w.value),
            ) {
                headers.insert(name, value);
            }
        }
        let encode_listing = encodes_listing_itself(settings, operation, &mut query);
        let v2_via_v1 = lists_v2_via_v1(settings, operation, &mut query)?;
        Ok(Self {
            headers,
            query,
            body: BodyPlan {
                withheld,
                object_data: operation.carries_object_data(),
            },
            rewrite_part_list: operation == Operation::CompleteMultipartUpload && profile.rewrites_part_list(),
            content_md5: profile.content_md5_required && operation.requires_checksum(),
            keep_trailer_by_copy: operation == Operation::PutObject && profile.trailing_checksums_by_copy,
            response: ResponsePlan {
                encode_listing,
                v2_via_v1,
                ..ResponsePlan::relayed(operation, client_headers)
            },
        })
    }
}

/// An operation the provider's dialect says it does not implement: a clear 501 naming the
/// provider, and the override that lifts it if the provider has gained it.
pub(super) fn refuse_unsupported(settings: &UpstreamSettings, operation: Operation) -> Result<(), GatewayError> {
    if settings.profile.unsupported_operations.contains(&operation) {
        return Err(GatewayError::NotImplemented(format!(
            "{operation} is not supported by provider '{}' (dialect {}); if it is now, remove it from \
             dialect_overrides.unsupported_operations",
            settings.name, settings.profile.name
        )));
    }
    Ok(())
}

/// The client's headers minus what must not travel. The edge has already kept only what the
/// client signed (`auth::boundary`); what is left to drop here is this hop's framing and
/// signature, and what `Connection` names as hop-by-hop.
pub(super) fn forwarded_headers(client: &HeaderMap) -> HeaderMap {
    let hop_by_hop = connection_tokens(client);
    let mut headers = HeaderMap::with_capacity(client.len());
    for (name, value) in client {
        let n = name.as_str();
        if DROPPED_REQUEST_HEADERS.contains(&n) || hop_by_hop.iter().any(|t| t == n) {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    headers
}

/// For a listing asked with `encoding-type=url` on a provider whose profile says it does not
/// encode reliably: the parameter is not forwarded (raw keys come back) and s3ferry encodes.
fn encodes_listing_itself(
    settings: &UpstreamSettings,
    operation: Operation,
    query: &mut Vec<(String, String)>,
) -> bool {
    let asked = query.iter().any(|(n, v)| n == "encoding-type" && v == "url");
    if !(operation.is_listing() && asked) || settings.profile.url_encoded_listings {
        return false;
    }
    query.retain(|(n, _)| n != "encoding-type");
    true
}

/// For a ListObjectsV2 on a provider whose profile says it serves only V1: the query becomes V1,
/// and the returned request says how to turn the V1 answer into V2.
fn lists_v2_via_v1(
    settings: &UpstreamSettings,
    operation: Operation,
    query: &mut Vec<(String, String)>,
) -> Result<Option<V2Request>, GatewayError> {
    if operation != Operation::ListObjectsV2 || settings.profile.list_objects_v2 {
        return Ok(None);
    }
    list_v2_via_v1::into_v1_query(query)
        .map(Some)
        .map_err(|e| GatewayError::InvalidArgument(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::config::{RetryPolicy, Secret, SignatureVersion};
    use crate::dialect::builtin;
    use crate::s3::addressing::Addressing;
    use crate::target::ClientTarget;
    use crate::test_support::header_map;
    use crate::upstream::KeyStore;

    /// A provider of a built-in dialect; `r2-keeping-trailers` is R2 with
    /// `trailing_checksums_by_copy` on, which no built-in profile has.
    fn settings(dialect: &str) -> UpstreamSettings {
        let profile = match dialect {
            "r2-keeping-trailers" => crate::dialect::DialectProfile {
                trailing_checksums_by_copy: true,
                ..builtin("r2").expect("r2")
            },
            name => builtin(name).expect("a built-in dialect"),
        };
        UpstreamSettings {
            name: "p".into(),
            endpoint: "http://127.0.0.1:9".parse().expect("uri"),
            region: "us-east-1".into(),
            access_key_id: "k".into(),
            secret_access_key: Secret::new("s"),
            addressing: Addressing::Path,
            signature: SignatureVersion::V4,
            profile: Arc::new(profile),
            ca_file: None,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            key_store: KeyStore::S3,
            retry: RetryPolicy::default(),
        }
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    fn request(operation: Operation, query: &[(&str, &str)], checksum_params: &[(&str, &str)]) -> ClientRequest {
        ClientRequest {
            // The plan never reads the key (the exchange encodes it): one target serves every row.
            target: ClientTarget {
                bucket: Some("b".into()),
                key: "k".into(),
            },
            operation,
            query: pairs(query),
            checksum_params: header_map(checksum_params),
            client_key: Some("client".into()),
            copy_source: None,
        }
    }

    /// What a row expects of the plan.
    #[derive(Debug, Default)]
    struct Expect {
        present: &'static [&'static str],
        absent: &'static [&'static str],
        query: Option<&'static [(&'static str, &'static str)]>,
        withheld: bool,
        rewrite_part_list: bool,
        content_md5: bool,
        keep_trailer: bool,
        encode_listing: bool,
        v2_via_v1: bool,
    }

    const CRC: (&str, &str) = ("x-amz-checksum-crc32", "AAAAAA==");

    #[test]
    fn provider_decisions_follow_the_table() {
        use Operation as Op;
        // (dialect, operation, client headers, query, checksum parameters, If-Match met on old, expected)
        type Row = (
            &'static str,
            Operation,
            &'static [(&'static str, &'static str)],
            &'static [(&'static str, &'static str)],
            &'static [(&'static str, &'static str)],
            bool,
            Expect,
        );
        let rows: Vec<Row> = vec![
            // AWS takes the checksum itself: nothing withheld, nothing rewritten.
            (
                "aws",
                Op::PutObject,
                &[CRC],
                &[],
                &[],
                false,
                Expect {
                    present: &["x-amz-checksum-crc32"],
                    ..Expect::default()
                },
            ),
            // B2 takes no flexible checksum: s3ferry checks it and keeps it in the metadata.
            (
                "b2",
                Op::PutObject,
                &[CRC],
                &[],
                &[],
                false,
                Expect {
                    present: &["x-amz-meta-s3ferry-checksum-crc32"],
                    absent: &["x-amz-checksum-crc32"],
                    withheld: true,
                    ..Expect::default()
                },
            ),
            // A checksum in a presigned URL's query travels as the header it stands for.
            (
                "aws",
                Op::PutObject,
                &[],
                &[],
                &[CRC],
                false,
                Expect {
                    present: &["x-amz-checksum-crc32"],
                    ..Expect::default()
                },
            ),
            // A withheld checksum of a CompleteMultipartUpload describes the object, not the body.
            (
                "b2",
                Op::CompleteMultipartUpload,
                &[CRC],
                &[("uploadId", "u")],
                &[],
                false,
                Expect {
                    absent: &["x-amz-checksum-crc32"],
                    rewrite_part_list: true,
                    ..Expect::default()
                },
            ),
            (
                "aws",
                Op::CompleteMultipartUpload,
                &[],
                &[("uploadId", "u")],
                &[],
                false,
                Expect::default(),
            ),
            (
                "oss",
                Op::CompleteMultipartUpload,
                &[],
                &[("uploadId", "u")],
                &[],
                false,
                Expect {
                    rewrite_part_list: true,
                    ..Expect::default()
                },
            ),
            // Operations that require a checksum get Content-MD5 where the provider wants it.
            (
                "gcs",
                Op::DeleteObjects,
                &[],
                &[("delete", "")],
                &[],
                false,
                Expect {
                    content_md5: true,
                    ..Expect::default()
                },
            ),
            (
                "aws",
                Op::DeleteObjects,
                &[],
                &[("delete", "")],
                &[],
                false,
                Expect::default(),
            ),
            ("gcs", Op::PutObject, &[], &[], &[], false, Expect::default()),
            // Listings: s3ferry encodes keys for a provider that does not, and lists V2 via V1.
            (
                "spaces",
                Op::ListObjects,
                &[],
                &[("encoding-type", "url")],
                &[],
                false,
                Expect {
                    query: Some(&[]),
                    encode_listing: true,
                    ..Expect::default()
                },
            ),
            (
                "aws",
                Op::ListObjects,
                &[],
                &[("encoding-type", "url")],
                &[],
                false,
                Expect {
                    query: Some(&[("encoding-type", "url")]),
                    ..Expect::default()
                },
            ),
            (
                "ceph",
                Op::ListObjectsV2,
                &[],
                &[("list-type", "2"), ("max-keys", "5")],
                &[],
                false,
                Expect {
                    query: Some(&[("max-keys", "5")]),
                    v2_via_v1: true,
                    ..Expect::default()
                },
            ),
            // This hop's signature and framing, and what Connection names, never travel.
            (
                "aws",
                Op::GetObject,
                &[
                    ("authorization", "AWS4 x"),
                    ("connection", "x-secret"),
                    ("x-secret", "1"),
                    ("range", "bytes=0-1"),
                ],
                &[],
                &[],
                false,
                Expect {
                    present: &["range"],
                    absent: &["authorization", "x-secret", "connection"],
                    ..Expect::default()
                },
            ),
            // An If-Match the old provider of a bucket under migration met is not sent on.
            (
                "aws",
                Op::PutObject,
                &[("if-match", "\"e\"")],
                &[],
                &[],
                true,
                Expect {
                    absent: &["if-match"],
                    ..Expect::default()
                },
            ),
            (
                "aws",
                Op::PutObject,
                &[("if-match", "\"e\"")],
                &[],
                &[],
                false,
                Expect {
                    present: &["if-match"],
                    ..Expect::default()
                },
            ),
            // A provider that cannot take a trailer keeps it by a copy after the upload.
            (
                "r2-keeping-trailers",
                Op::PutObject,
                &[],
                &[],
                &[],
                false,
                Expect {
                    keep_trailer: true,
                    ..Expect::default()
                },
            ),
            (
                "r2-keeping-trailers",
                Op::UploadPart,
                &[],
                &[("partNumber", "1"), ("uploadId", "u")],
                &[],
                false,
                Expect::default(),
            ),
        ];
        for (dialect, operation, headers, query, params, satisfied_by_old, expect) in rows {
            let row = format!("{dialect} {operation} {headers:?} {query:?}");
            let settings = settings(dialect);
            let request = request(operation, query, params);
            let plan = RequestPlan::new(&settings, &request, &header_map(headers), None, satisfied_by_old)
                .unwrap_or_else(|e| panic!("{row}: {e}"));
            for name in expect.present {
                assert!(plan.headers.contains_key(*name), "{row}: {name} missing");
            }
            for name in expect.absent {
                assert!(!plan.headers.contains_key(*name), "{row}: {name} sent");
            }
            if let Some(q) = expect.query {
                assert_eq!(plan.query, pairs(q), "{row}");
            }
            assert_eq!(plan.body.withheld.is_some(), expect.withheld, "{row}: withheld");
            assert_eq!(plan.body.object_data, operation.carries_object_data(), "{row}");
            assert_eq!(plan.rewrite_part_list, expect.rewrite_part_list, "{row}: part list");
            assert_eq!(plan.content_md5, expect.content_md5, "{row}: Content-MD5");
            assert_eq!(plan.keep_trailer_by_copy, expect.keep_trailer, "{row}: trailer");
            assert_eq!(plan.response.encode_listing, expect.encode_listing, "{row}: encoding");
            assert_eq!(plan.response.v2_via_v1.is_some(), expect.v2_via_v1, "{row}: V2 via V1");
            assert_eq!(plan.response.operation, operation);
        }
    }

    #[test]
    fn refusals_name_the_provider_and_the_override() {
        let oss = settings("oss");
        let refused = refuse_unsupported(&oss, Operation::ListMultipartUploads).expect_err("OSS lacks it");
        let text = refused.to_string();
        assert!(
            text.contains("'p'") && text.contains("unsupported_operations"),
            "{text}"
        );
        assert!(refuse_unsupported(&settings("aws"), Operation::ListMultipartUploads).is_ok());
        // What a provider cannot express is refused by the plan, before anything is sent.
        let r2 = settings("r2");
        let headers = header_map(&[("x-amz-grant-read", "id=\"someone\"")]);
        let request = request(Operation::PutObject, &[], &[]);
        assert!(RequestPlan::new(&r2, &request, &headers, None, false).is_err());
    }

    #[test]
    fn the_copy_source_goes_on_as_the_upstream_bucket_names_it() {
        let request = request(Operation::CopyObject, &[], &[]);
        let client = header_map(&[("x-amz-copy-source", "/client-bucket/k")]);
        let upstream = HeaderValue::from_static("/upstream-bucket/k");
        let plan = RequestPlan::new(&settings("aws"), &request, &client, Some(upstream.clone()), false).expect("plan");
        assert_eq!(plan.headers.get("x-amz-copy-source"), Some(&upstream));
    }
}
