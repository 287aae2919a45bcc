//! Provider values inside S3 XML, translated by the provider's dialect profile:
//! `<ETag>` (ListObjects v1/v2, ListObjectVersions, ListParts, CompleteMultipartUpload,
//! CopyObjectResult, CopyPartResult), `<StorageClass>` (listings, ListParts) and the `<Code>`
//! of error documents on the way back to the client; the `<Part><ETag>` list of a
//! CompleteMultipartUpload request on the way to the provider; and the same values of the
//! listings s3ferry reads itself ([`translate_listed_object`]).

use quick_xml::events::{BytesText, Event};
use quick_xml::{Reader, Writer};

use super::RewriteError;
use super::client_view::{ClientView, rewrite_for_client};
use super::list_objects::ListedObject;
use crate::checksum::ChecksumAlgorithm;
use crate::dialect::DialectProfile;

/// Rewrites a response body from `profile`'s provider into the client's (AWS) values.
pub fn rewrite_response(xml: &[u8], profile: &DialectProfile) -> Result<Vec<u8>, RewriteError> {
    let view = ClientView {
        values: Some(profile),
        ..ClientView::default()
    };
    rewrite_for_client(xml, &view)
}

/// A listed object's ETag and storage class from `profile`'s provider in the client's (AWS)
/// form, for the listings s3ferry reads itself (lazy migration's merged listing, `migrate`,
/// `check`), so entries of two providers are rendered and compared alike.
pub fn translate_listed_object(object: &mut ListedObject, profile: &DialectProfile) {
    object.etag = profile.client_etag(&object.etag);
    object.storage_class = profile.client_storage_class(&object.storage_class).to_string();
}

/// Rewrites a CompleteMultipartUpload request body: each part's ETag in the provider's form,
/// and no part checksum (`<ChecksumCRC32>`...) in an algorithm the provider does not take
/// (s3ferry withheld those headers from the parts, so the provider has nothing to match).
pub fn rewrite_complete_multipart_request(xml: &[u8], profile: &DialectProfile) -> Result<Vec<u8>, RewriteError> {
    let rewritten = rewrite_texts(xml, |element, text| {
        (element == b"ETag").then(|| profile.provider_etag(text))
    })?;
    let unsupported: Vec<String> = ChecksumAlgorithm::ALL
        .into_iter()
        .filter(|a| !profile.checksum_algorithms.contains(a))
        .map(|a| format!("Checksum{}", a.name().to_ascii_uppercase()))
        .collect();
    if unsupported.is_empty() {
        return Ok(rewritten);
    }
    drop_elements(&rewritten, &unsupported)
}

/// Copies `xml` without the elements (and their content) whose local name is in `names`.
fn drop_elements(xml: &[u8], names: &[String]) -> Result<Vec<u8>, RewriteError> {
    let mut reader = Reader::from_reader(xml);
    let mut writer = Writer::new(Vec::with_capacity(xml.len()));
    let mut buf = Vec::new();
    let mut skipping = 0usize;
    let dropped = |name: &[u8]| names.iter().any(|n| n.as_bytes() == name);
    loop {
        let event = reader.read_event_into(&mut buf)?;
        match event {
            Event::Eof => break,
            Event::Start(ref e) if skipping > 0 || dropped(e.local_name().as_ref()) => skipping += 1,
            Event::End(_) if skipping > 0 => skipping -= 1,
            Event::Empty(ref e) if dropped(e.local_name().as_ref()) => {}
            _ if skipping > 0 => {}
            _ => writer
                .write_event(event.borrow())
                .map_err(|e| RewriteError(e.to_string()))?,
        }
        buf.clear();
    }
    Ok(writer.into_inner())
}

/// Copies `xml`, replacing the text of elements for which `map(local name, text)` answers.
fn rewrite_texts(xml: &[u8], map: impl Fn(&[u8], &str) -> Option<String>) -> Result<Vec<u8>, RewriteError> {
    let mut reader = Reader::from_reader(xml);
    let mut writer = Writer::new(Vec::with_capacity(xml.len()));
    let mut buf = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf)?;
        let write = match event {
            Event::Eof => break,
            Event::Start(ref e) => {
                current = e.local_name().as_ref().to_vec();
                writer.write_event(event.borrow())
            }
            Event::End(_) => {
                current.clear();
                writer.write_event(event.borrow())
            }
            Event::Text(ref t) => {
                let text = t.unescape()?;
                match map(&current, &text) {
                    Some(new_text) if new_text != text => writer.write_event(Event::Text(BytesText::new(&new_text))),
                    _ => writer.write_event(event.borrow()),
                }
            }
            _ => writer.write_event(event.borrow()),
        };
        write.map_err(|e| RewriteError(e.to_string()))?;
        buf.clear();
    }
    Ok(writer.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::builtin;
    use crate::test_support::xml_fixture as fixture;

    /// `<case>.upstream.xml` rewritten for the client equals `<case>.client.xml`.
    fn golden_response(case: &str, dialect: &str) {
        let out = rewrite_response(
            &fixture(&format!("{case}.upstream.xml")),
            &builtin(dialect).expect("dialect"),
        )
        .expect("rewrites");
        let expected = String::from_utf8(fixture(&format!("{case}.client.xml"))).expect("utf8");
        assert_eq!(String::from_utf8(out).expect("utf8"), expected, "case {case}");
    }

    #[test]
    fn oss_listing_etags_are_lowercased_and_classes_named_as_aws() {
        golden_response("oss-list-objects-v2", "oss");
    }

    #[test]
    fn oss_list_object_versions_etags_and_classes_are_translated() {
        golden_response("oss-list-object-versions", "oss");
    }

    #[test]
    fn oss_list_parts_etags_are_lowercased() {
        golden_response("oss-list-parts", "oss");
    }

    #[test]
    fn oss_complete_multipart_result_etag_is_lowercased() {
        golden_response("oss-complete-multipart-result", "oss");
    }

    #[test]
    fn oss_copy_results_etags_are_lowercased() {
        golden_response("oss-copy-object-result", "oss");
        golden_response("oss-copy-part-result", "oss");
    }

    #[test]
    fn listed_objects_read_by_s3ferry_get_client_values() {
        let mut object = ListedObject {
            etag: "\"9BB58F26192E4BA00F01E2E7B136BBD8\"".into(),
            storage_class: "IA".into(),
            ..ListedObject::default()
        };
        translate_listed_object(&mut object, &builtin("oss").expect("oss"));
        assert_eq!(object.etag, "\"9bb58f26192e4ba00f01e2e7b136bbd8\"");
        assert_eq!(object.storage_class, "STANDARD_IA");
        let before = object.clone();
        translate_listed_object(&mut object, &builtin("aws").expect("aws"));
        assert_eq!(object, before, "AWS values stay as they are");
    }

    #[test]
    fn gcs_error_codes_become_aws_codes() {
        golden_response("gcs-bucket-name-unavailable", "gcs");
    }

    #[test]
    fn oss_complete_multipart_request_part_etags_take_the_providers_case() {
        let out = rewrite_complete_multipart_request(
            &fixture("oss-complete-multipart-request.client.xml"),
            &builtin("oss").expect("oss"),
        )
        .expect("rewrites");
        let expected = String::from_utf8(fixture("oss-complete-multipart-request.upstream.xml")).expect("utf8");
        assert_eq!(String::from_utf8(out).expect("utf8"), expected);
    }

    #[test]
    fn part_checksums_the_provider_does_not_take_are_dropped() {
        let client = fixture("oss-complete-multipart-request.client.xml");
        let out = rewrite_complete_multipart_request(&client, &builtin("garage").expect("garage")).expect("rewrites");
        let expected = String::from_utf8(fixture("garage-complete-multipart-request.upstream.xml")).expect("utf8");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            expected,
            "garage keeps CRC32, not CRC64NVME"
        );
        let out = rewrite_complete_multipart_request(&client, &builtin("aws").expect("aws")).expect("rewrites");
        assert_eq!(out, client, "AWS takes every algorithm");
    }

    #[test]
    fn aws_values_are_copied_byte_for_byte() {
        let xml = fixture("oss-list-objects-v2.client.xml");
        let out = rewrite_response(&xml, &builtin("aws").expect("aws")).expect("rewrites");
        assert_eq!(out, xml);
    }

    #[test]
    fn keys_and_other_elements_are_never_touched() {
        let xml = b"<R><Key>ABCDEF</Key><Code>NoSuchKey</Code><ETag>&quot;ABC&quot;</ETag></R>";
        let out = rewrite_response(xml, &builtin("oss").expect("oss")).expect("rewrites");
        assert_eq!(
            std::str::from_utf8(&out).expect("utf8"),
            "<R><Key>ABCDEF</Key><Code>NoSuchKey</Code><ETag>&quot;abc&quot;</ETag></R>"
        );
    }
}
