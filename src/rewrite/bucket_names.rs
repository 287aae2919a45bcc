//! Maps a renamed bucket back to the client's name inside XML responses: `<Name>`
//! (ListObjects, ListObjectVersions), `<Bucket>` (multipart results, ListParts,
//! ListMultipartUploads), `<BucketName>` (errors) and the bucket segment of `<Location>`
//! (CompleteMultipartUpload).

use super::RewriteError;
use super::client_view::{ClientView, rewrite_for_client};

/// Rewrites `xml`, replacing the bucket `upstream` with `client`.
pub fn rewrite_bucket_names(xml: &[u8], upstream: &str, client: &str) -> Result<Vec<u8>, RewriteError> {
    let view = ClientView {
        rename: Some((upstream, client)),
        ..ClientView::default()
    };
    rewrite_for_client(xml, &view)
}

/// Replaces the bucket in a URL or path: `/<upstream>/...` (path style) and
/// `://<upstream>.` (virtual-hosted style).
pub(super) fn replace_bucket_segment(location: &str, upstream: &str, client: &str) -> String {
    location
        .replacen(&format!("/{upstream}/"), &format!("/{client}/"), 1)
        .replacen(&format!("://{upstream}."), &format!("://{client}."), 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::xml_fixture;

    fn golden(case: &str) {
        let upstream = xml_fixture(&format!("{case}.upstream.xml"));
        let expected = String::from_utf8(xml_fixture(&format!("{case}.client.xml"))).expect("utf8");
        let out = rewrite_bucket_names(&upstream, "photos-2017", "photos").expect("rewrites");
        assert_eq!(String::from_utf8(out).expect("utf8"), expected, "case {case}");
    }

    #[test]
    fn list_objects_v2_name_is_mapped_back() {
        golden("list-objects-v2");
    }

    #[test]
    fn complete_multipart_bucket_and_location_are_mapped_back() {
        golden("complete-multipart");
    }

    #[test]
    fn keys_that_equal_the_bucket_name_are_left_alone() {
        let xml =
            b"<ListBucketResult><Name>photos-2017</Name><Contents><Key>photos-2017</Key></Contents></ListBucketResult>";
        let out = rewrite_bucket_names(xml, "photos-2017", "photos").expect("rewrites");
        assert_eq!(
            std::str::from_utf8(&out).expect("utf8"),
            "<ListBucketResult><Name>photos</Name><Contents><Key>photos-2017</Key></Contents></ListBucketResult>"
        );
    }

    #[test]
    fn escaped_text_is_copied_unchanged() {
        let xml = b"<R><Name>photos-2017</Name><Key>a&amp;b &lt;c&gt;</Key></R>";
        let out = rewrite_bucket_names(xml, "photos-2017", "photos").expect("rewrites");
        assert_eq!(
            std::str::from_utf8(&out).expect("utf8"),
            "<R><Name>photos</Name><Key>a&amp;b &lt;c&gt;</Key></R>"
        );
    }
}
