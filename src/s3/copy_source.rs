//! `x-amz-copy-source`: the one parser of the header CopyObject and UploadPartCopy name their
//! source with, and its one encoder for the provider.

use crate::error::GatewayError;
use crate::s3::bucket_name::check_bucket_name;
use crate::s3::encoding::{percent_decode, uri_encode};

/// The parts of `x-amz-copy-source`: `[/]<bucket>/<key>[?versionId=<id>]`, URL-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySourceRef {
    /// The client's bucket name, checked by S3's rules.
    pub bucket: String,
    /// The decoded key.
    pub key: String,
    pub version_id: Option<String>,
}

impl CopySourceRef {
    /// `x-amz-copy-source` for the source's upstream bucket, every part encoded.
    pub fn header_value(&self, upstream_bucket: &str) -> String {
        let key = uri_encode(self.key.as_bytes(), true);
        match &self.version_id {
            Some(v) => format!("/{upstream_bucket}/{key}?versionId={}", uri_encode(v.as_bytes(), false)),
            None => format!("/{upstream_bucket}/{key}"),
        }
    }
}

/// Parses `x-amz-copy-source` once; the bucket is checked like a request's.
///
/// The value is decoded before it is split at the first `/`: clients encode the separator too
/// (JavaScript's `encodeURIComponent(bucket + "/" + key)` sends `bucket%2Fkey`, and of
/// `"/bucket/key"` sends `%2Fbucket%2Fkey`), and AWS reads both as `bucket/key`
/// (aws/aws-sdk-js#1821). A `?versionId=` is only ever the raw `?`: an encoded `%3F` is part of
/// the key.
pub fn parse_copy_source(value: &str) -> Result<CopySourceRef, GatewayError> {
    let invalid = || GatewayError::InvalidArgument("x-amz-copy-source must be <bucket>/<key>[?versionId=<id>]".into());
    let (path, version_id) = match value.split_once('?') {
        Some((p, query)) => {
            let version = query.strip_prefix("versionId=").ok_or_else(invalid)?;
            let version = String::from_utf8(percent_decode(version)).map_err(|_| invalid())?;
            (p, Some(version))
        }
        None => (value, None),
    };
    let decoded = String::from_utf8(percent_decode(path)).map_err(|_| invalid())?;
    let decoded = decoded.strip_prefix('/').unwrap_or(&decoded);
    let (bucket, key) = decoded.split_once('/').ok_or_else(invalid)?;
    if key.is_empty() {
        return Err(invalid());
    }
    check_bucket_name(bucket)?;
    Ok(CopySourceRef {
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parts(value: &str) -> (String, String, Option<String>) {
        let s = parse_copy_source(value).expect("parses");
        (s.bucket, s.key, s.version_id)
    }

    #[test]
    fn copy_sources_parse_once_and_encode_on_the_way_out() {
        let s = parse_copy_source("/photos/a%20b/c%2Bd.jpg?versionId=v1").expect("parses");
        assert_eq!(
            (s.bucket.as_str(), s.key.as_str(), s.version_id.as_deref()),
            ("photos", "a b/c+d.jpg", Some("v1"))
        );
        assert_eq!(s.header_value("up"), "/up/a%20b/c%2Bd.jpg?versionId=v1");
        assert_eq!(parts("photos/x"), ("photos".into(), "x".into(), None));
        // An encoded slash is a slash: the bucket is the first segment of the decoded value.
        assert_eq!(parts("abc%2F..%2Fother/k"), ("abc".into(), "../other/k".into(), None));
        for bad in ["nokey", "photos/", "BAD/k", "photos/k?acl", "%2E%2E/k", "%2F", "/"] {
            assert!(parse_copy_source(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_source_encoded_whole_with_its_separators_reads_as_bucket_and_key() {
        // encodeURIComponent("photos/dir/a b.txt") and of "/photos/dir/a b.txt".
        let expected = ("photos".to_string(), "dir/a b.txt".to_string(), None);
        assert_eq!(parts("photos%2Fdir%2Fa%20b.txt"), expected);
        assert_eq!(parts("%2Fphotos%2Fdir%2Fa%20b.txt"), expected);
        // A `?` in the key travels encoded and stays in the key.
        assert_eq!(
            parts("photos%2Fwhat%3F.txt"),
            ("photos".into(), "what?.txt".into(), None)
        );
        assert_eq!(
            parts("photos%2Fk?versionId=3%2B4"),
            ("photos".into(), "k".into(), Some("3+4".into()))
        );
    }

    proptest! {
        #[test]
        fn copy_sources_round_trip_through_their_header_value(
            bucket in "[a-z0-9][a-z0-9-]{1,20}[a-z0-9]",
            key in "[a-zA-Z0-9 /.+%?#&=~é-]{1,30}",
            version in prop::option::of("[a-zA-Z0-9.=_-]{1,12}"),
        ) {
            let source = CopySourceRef { bucket: bucket.clone(), key, version_id: version };
            let again = parse_copy_source(&source.header_value(&bucket)).expect("parses");
            prop_assert_eq!(again, source);
        }
    }
}
