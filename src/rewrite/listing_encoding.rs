//! `encoding-type=url` for providers that accept the parameter but return keys raw.
//!
//! botocore asks for `encoding-type=url` on every listing and URL-decodes what comes back, so a
//! raw `+` in a key turns into a space on the client. When the provider does not encode, s3ferry
//! encodes the fields S3 encodes: `Key`, `Prefix`, `Delimiter`, `StartAfter`, `Marker`,
//! `NextMarker` (ListObjects v1/v2, ListObjectVersions also `KeyMarker`/`NextKeyMarker`).

use super::RewriteError;
use super::client_view::{ClientView, EncodeKeys, rewrite_for_client};

/// URL-encodes the key-bearing fields of a listing response. With `declare`, an
/// `<EncodingType>url</EncodingType>` is added when the provider did not write one (it was not
/// asked to encode), because clients decode only what is declared encoded.
pub fn encode_listing_keys(xml: &[u8], declare: bool) -> Result<Vec<u8>, RewriteError> {
    let view = ClientView {
        encode_keys: Some(EncodeKeys { declare }),
        ..ClientView::default()
    };
    rewrite_for_client(xml, &view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_encoding_type_is_declared_once() {
        let xml = b"<ListBucketResult><Name>b</Name><Contents><Key>a b</Key></Contents></ListBucketResult>";
        let out = String::from_utf8(encode_listing_keys(xml, true).expect("rewrites")).expect("utf8");
        assert_eq!(
            out,
            "<ListBucketResult><Name>b</Name><Contents><Key>a%20b</Key></Contents><EncodingType>url</EncodingType></ListBucketResult>"
        );
        let undeclared = String::from_utf8(encode_listing_keys(xml, false).expect("rewrites")).expect("utf8");
        assert!(!undeclared.contains("EncodingType"));
    }

    #[test]
    fn keys_prefixes_and_markers_are_encoded_and_the_rest_is_not() {
        let xml = b"<ListBucketResult><Name>b</Name><Prefix>a b/</Prefix><Contents><Key>a b/x+y&amp;z.txt</Key><ETag>\"e\"</ETag></Contents><CommonPrefixes><Prefix>a b/c d/</Prefix></CommonPrefixes><EncodingType>url</EncodingType></ListBucketResult>";
        let out = String::from_utf8(encode_listing_keys(xml, true).expect("rewrites")).expect("utf8");
        assert_eq!(
            out,
            "<ListBucketResult><Name>b</Name><Prefix>a%20b/</Prefix><Contents><Key>a%20b/x%2By%26z.txt</Key><ETag>\"e\"</ETag></Contents><CommonPrefixes><Prefix>a%20b/c%20d/</Prefix></CommonPrefixes><EncodingType>url</EncodingType></ListBucketResult>"
        );
    }
}
