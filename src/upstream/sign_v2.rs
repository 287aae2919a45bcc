//! AWS Signature Version 2 (header authentication) for providers that know nothing newer
//! (older Ceph RGW, some appliances): pure functions, no network.
//!
//! `Authorization: AWS <key>:<base64(HMAC-SHA1(secret, StringToSign))>`, where StringToSign is
//! `VERB\nContent-MD5\nContent-Type\nDate\n` + the canonical `x-amz-*` headers + the
//! canonical resource. The body is not signed, so a v2 provider never sees a payload hash.
//! Checked against the examples in the S3 REST authentication documentation (tests below),
//! and end to end against s3s's SigV2 verifier (`tests/it/sigv2_upstream.rs`).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, Method};
use sha1::Sha1;

use super::sign::SigningParams;
use crate::s3::addressing::Addressing;

/// Query parameters that are part of the canonical resource, sorted. Every other parameter
/// (prefix, max-keys, list-type...) is not signed. This is the list of s3s's verifier, a
/// superset of the one in the S3 documentation (acl ... website, cors, delete, restore,
/// tagging and the `response-*` overrides) and of rclone's; the additions are newer
/// sub-resources that an old v2-only store does not serve anyway.
pub const SIGNED_SUB_RESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// The path part of the canonical resource: `/bucket/key` whichever addressing carries the
/// bucket, `/` for service-level requests. `path` is the encoded path as it goes on the wire.
pub fn resource_path(addressing: Addressing, bucket: Option<&str>, path: &str) -> String {
    match (bucket, addressing) {
        (Some(bucket), Addressing::Virtual) => format!("/{bucket}{path}"),
        _ => path.to_string(),
    }
}

/// Adds `date` and `authorization` to `headers`. `resource_path` comes from [`resource_path`];
/// `query` holds the decoded pairs that go on the wire. `params.region` is not used: SigV2
/// has no scope.
pub fn sign_v2(
    method: &Method,
    resource_path: &str,
    query: &[(String, String)],
    headers: &mut HeaderMap,
    params: &SigningParams<'_>,
) {
    let date = httpdate::fmt_http_date(params.time.into());
    if let Ok(v) = HeaderValue::from_str(&date) {
        headers.insert(http::header::DATE, v);
    }
    let string_to_sign = string_to_sign(method, resource_path, query, headers);
    let signature = base64::engine::general_purpose::STANDARD.encode(hmac_sha1(
        params.secret_access_key.as_bytes(),
        string_to_sign.as_bytes(),
    ));
    let authorization = format!("AWS {}:{signature}", params.access_key_id);
    if let Ok(v) = HeaderValue::from_str(&authorization) {
        headers.insert(http::header::AUTHORIZATION, v);
    }
}

fn string_to_sign(method: &Method, resource_path: &str, query: &[(String, String)], headers: &HeaderMap) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default()
    };
    // "If you include the x-amz-date header, use the empty string for the Date": the date then
    // travels in the canonical x-amz-* headers instead.
    let date = if headers.contains_key("x-amz-date") {
        String::new()
    } else {
        header("date")
    };
    format!(
        "{method}\n{}\n{}\n{date}\n{}{}",
        header("content-md5"),
        header("content-type"),
        canonical_amz_headers(headers),
        canonical_resource(resource_path, query)
    )
}

/// `name:value\n` for every `x-amz-*` header: lowercase names, sorted, values trimmed,
/// repeated headers joined by `,`.
fn canonical_amz_headers(headers: &HeaderMap) -> String {
    let mut names: Vec<&str> = headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|n| n.starts_with("x-amz-"))
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut block = String::new();
    for name in names {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string())
            .collect();
        block.push_str(name);
        block.push(':');
        block.push_str(&values.join(","));
        block.push('\n');
    }
    block
}

/// The resource path plus the signed sub-resources, sorted, as `?name` or `?name=value` with
/// the value not encoded (the verifier decodes the query before it compares).
fn canonical_resource(resource_path: &str, query: &[(String, String)]) -> String {
    let mut sub_resources: Vec<(&str, &str)> = query
        .iter()
        .filter(|(name, _)| SIGNED_SUB_RESOURCES.contains(&name.as_str()))
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    sub_resources.sort_unstable();
    let mut resource = resource_path.to_string();
    for (i, (name, value)) in sub_resources.iter().enumerate() {
        resource.push(if i == 0 { '?' } else { '&' });
        resource.push_str(name);
        if !value.is_empty() {
            resource.push('=');
            resource.push_str(value);
        }
    }
    resource
}

pub(crate) fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    let mut mac =
        <Hmac<Sha1> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::header_map as headers;
    use time::macros::datetime;

    // The examples of https://docs.aws.amazon.com/AmazonS3/latest/userguide/RESTAuthentication.html
    // (the same ones s3s checks its verifier against, in `sig_v2/methods.rs`). The documentation
    // writes the Date header as `+0000`; s3ferry sends `GMT`, so these tests sign the
    // string-to-sign with the documentation's Date directly.
    const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn signature_of(string_to_sign: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(hmac_sha1(SECRET.as_bytes(), string_to_sign.as_bytes()))
    }

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn object_get_example_matches_aws_documentation() {
        let h = headers(&[("date", "Tue, 27 Mar 2007 19:36:42 +0000")]);
        let resource = resource_path(Addressing::Virtual, Some("awsexamplebucket1"), "/photos/puppy.jpg");
        let sts = string_to_sign(&Method::GET, &resource, &[], &h);
        assert_eq!(
            sts,
            "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/awsexamplebucket1/photos/puppy.jpg"
        );
        assert_eq!(signature_of(&sts), "qgk2+6Sv9/oM7G3qLEjTH1a1l1g=");
    }

    #[test]
    fn object_put_example_matches_aws_documentation() {
        let h = headers(&[
            ("content-type", "image/jpeg"),
            ("date", "Tue, 27 Mar 2007 21:15:45 +0000"),
        ]);
        let resource = resource_path(Addressing::Virtual, Some("awsexamplebucket1"), "/photos/puppy.jpg");
        let sts = string_to_sign(&Method::PUT, &resource, &[], &h);
        assert_eq!(signature_of(&sts), "iqRzw+ileNPu1fhspnRs8nOjjIA=");
    }

    #[test]
    fn list_and_acl_examples_match_aws_documentation() {
        let list = headers(&[("date", "Tue, 27 Mar 2007 19:42:41 +0000")]);
        let resource = resource_path(Addressing::Virtual, Some("awsexamplebucket1"), "/");
        // prefix and max-keys are not sub-resources: they stay out of the signature.
        let q = query(&[("prefix", "photos"), ("max-keys", "50"), ("marker", "puppy")]);
        let sts = string_to_sign(&Method::GET, &resource, &q, &list);
        assert!(sts.ends_with("\n/awsexamplebucket1/"), "{sts}");
        assert_eq!(signature_of(&sts), "m0WP8eCtspQl5Ahe6L1SozdX9YA=");

        let acl = headers(&[("date", "Tue, 27 Mar 2007 19:44:46 +0000")]);
        let sts = string_to_sign(&Method::GET, &resource, &query(&[("acl", "")]), &acl);
        assert!(sts.ends_with("\n/awsexamplebucket1/?acl"), "{sts}");
        assert_eq!(signature_of(&sts), "82ZHiFIjc+WbcwFKGUVEQspPn+0=");
    }

    #[test]
    fn service_and_encoded_path_examples_match_aws_documentation() {
        let buckets = headers(&[("date", "Wed, 28 Mar 2007 01:29:59 +0000")]);
        let sts = string_to_sign(
            &Method::GET,
            &resource_path(Addressing::Virtual, None, "/"),
            &[],
            &buckets,
        );
        assert_eq!(signature_of(&sts), "qGdzdERIC03wnaRNKh6OqZehG9s=");

        // Path style: the path is signed exactly as sent, escapes and their case included.
        let unicode = headers(&[("date", "Wed, 28 Mar 2007 01:49:49 +0000")]);
        let path = "/dictionary/fran%C3%A7ais/pr%c3%a9f%c3%a8re";
        let sts = string_to_sign(
            &Method::GET,
            &resource_path(Addressing::Path, Some("dictionary"), path),
            &[],
            &unicode,
        );
        assert_eq!(signature_of(&sts), "DNEZGsoieTZ92F3bUfSPQcbGmlM=");
    }

    #[test]
    fn amz_headers_are_sorted_trimmed_and_joined() {
        // The documentation's upload example; its printed signature does not match its own
        // string-to-sign (s3s notes the same), so only the string-to-sign is compared.
        let h = headers(&[
            ("date", "Tue, 27 Mar 2007 21:06:08 +0000"),
            ("x-amz-acl", "public-read"),
            ("content-type", "application/x-download"),
            ("content-md5", "4gJE4saaMU4BqNR0kLY+lw=="),
            ("x-amz-meta-reviewedby", "joe@example.com"),
            ("x-amz-meta-reviewedby", "jane@example.com"),
            ("x-amz-meta-filechecksum", " 0x02661779 "),
            ("x-amz-meta-checksumalgorithm", "crc32"),
            ("content-disposition", "attachment; filename=database.dat"),
            ("content-encoding", "gzip"),
            ("content-length", "5913339"),
        ]);
        let resource = resource_path(Addressing::Virtual, Some("static.example.com"), "/db-backup.dat.gz");
        assert_eq!(
            string_to_sign(&Method::PUT, &resource, &[], &h),
            concat!(
                "PUT\n",
                "4gJE4saaMU4BqNR0kLY+lw==\n",
                "application/x-download\n",
                "Tue, 27 Mar 2007 21:06:08 +0000\n",
                "x-amz-acl:public-read\n",
                "x-amz-meta-checksumalgorithm:crc32\n",
                "x-amz-meta-filechecksum:0x02661779\n",
                "x-amz-meta-reviewedby:joe@example.com,jane@example.com\n",
                "/static.example.com/db-backup.dat.gz",
            )
        );
    }

    #[test]
    fn x_amz_date_empties_the_date_line() {
        let h = headers(&[
            ("date", "Tue, 27 Mar 2007 21:20:27 +0000"),
            ("x-amz-date", "Tue, 27 Mar 2007 21:20:26 +0000"),
        ]);
        let resource = resource_path(
            Addressing::Path,
            Some("awsexamplebucket1"),
            "/awsexamplebucket1/photos/puppy.jpg",
        );
        assert_eq!(
            string_to_sign(&Method::DELETE, &resource, &[], &h),
            "DELETE\n\n\n\nx-amz-date:Tue, 27 Mar 2007 21:20:26 +0000\n/awsexamplebucket1/photos/puppy.jpg"
        );
    }

    #[test]
    fn sub_resources_are_sorted_and_their_values_stay_unencoded() {
        let q = query(&[
            ("uploadId", "a/b+c d"),
            ("partNumber", "2"),
            ("list-type", "2"),
            ("response-content-disposition", "attachment; filename=\"x y\""),
            ("versionId", ""),
        ]);
        assert_eq!(
            canonical_resource("/b/k", &q),
            "/b/k?partNumber=2&response-content-disposition=attachment; filename=\"x y\"&uploadId=a/b+c d&versionId"
        );
        assert_eq!(
            canonical_resource("/b", &query(&[("uploads", ""), ("delete", "")])),
            "/b?delete&uploads"
        );
    }

    #[test]
    fn sub_resource_list_is_sorted() {
        assert!(SIGNED_SUB_RESOURCES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn signing_sets_an_http_date_and_the_v2_authorization() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("awsexamplebucket1.s3.amazonaws.com"));
        let params = SigningParams {
            access_key_id: KEY_ID,
            secret_access_key: SECRET,
            region: "us-east-1",
            time: datetime!(2007-03-27 19:36:42 UTC),
        };
        let resource = resource_path(Addressing::Virtual, Some("awsexamplebucket1"), "/photos/puppy.jpg");
        sign_v2(&Method::GET, &resource, &[], &mut h, &params);
        assert_eq!(h["date"], "Tue, 27 Mar 2007 19:36:42 GMT");
        let expected = signature_of("GET\n\n\nTue, 27 Mar 2007 19:36:42 GMT\n/awsexamplebucket1/photos/puppy.jpg");
        assert_eq!(h["authorization"], format!("AWS {KEY_ID}:{expected}").as_str());
        assert!(!h.contains_key("x-amz-content-sha256") && !h.contains_key("x-amz-date"));
    }
}
