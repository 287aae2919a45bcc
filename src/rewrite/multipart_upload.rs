//! The XML of the multipart upload s3ferry makes itself (a copy in parts under lazy migration):
//! the upload id a CreateMultipartUpload answers, the ETag a CopyPartResult or a
//! CompleteMultipartUploadResult carries, and the CompleteMultipartUpload request body.

use quick_xml::events::Event;

/// The text of the first element named `name` (local name) anywhere in `xml`, unescaped.
fn first_element_text(xml: &[u8], name: &[u8]) -> Option<String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut inside = false;
    loop {
        match reader.read_event_into(&mut buf).ok()? {
            Event::Eof => return None,
            Event::Start(e) => inside = e.local_name().as_ref() == name,
            Event::End(_) => inside = false,
            Event::Text(t) if inside => return Some(t.unescape().ok()?.into_owned()),
            _ => {}
        }
        buf.clear();
    }
}

/// The `<UploadId>` of an InitiateMultipartUploadResult.
pub fn parse_upload_id(xml: &[u8]) -> Option<String> {
    first_element_text(xml, b"UploadId").filter(|id| !id.is_empty())
}

/// The `<ETag>` of a CopyPartResult or CompleteMultipartUploadResult, as written (quotes kept).
pub fn parse_result_etag(xml: &[u8]) -> Option<String> {
    first_element_text(xml, b"ETag")
}

/// A CompleteMultipartUpload body listing `etags` as parts 1, 2, ...
pub fn render_complete_multipart_upload(etags: &[String]) -> String {
    let mut xml = String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (index, etag) in etags.iter().enumerate() {
        xml.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
            index + 1,
            quick_xml::escape::escape(etag.as_str())
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_and_etags_are_read_from_results() {
        let initiated = br#"<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2FkIElE</UploadId></InitiateMultipartUploadResult>"#;
        assert_eq!(parse_upload_id(initiated).as_deref(), Some("VXBsb2FkIElE"));
        assert_eq!(
            parse_upload_id(b"<InitiateMultipartUploadResult><UploadId></UploadId></InitiateMultipartUploadResult>"),
            None
        );
        let completed = br#"<CompleteMultipartUploadResult><Location>l</Location><ETag>&quot;3858f62230ac3c915f300c664312c11f-2&quot;</ETag></CompleteMultipartUploadResult>"#;
        assert_eq!(
            parse_result_etag(completed).as_deref(),
            Some("\"3858f62230ac3c915f300c664312c11f-2\"")
        );
        assert_eq!(parse_result_etag(b"<Error><Code>InternalError</Code></Error>"), None);
        assert_eq!(parse_result_etag(b"<not xml"), None);
    }

    #[test]
    fn the_completion_lists_parts_in_order_with_escaped_etags() {
        assert_eq!(
            render_complete_multipart_upload(&["\"a\"".into(), "\"b\"".into()]),
            "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag></Part>\
             <Part><PartNumber>2</PartNumber><ETag>&quot;b&quot;</ETag></Part></CompleteMultipartUpload>"
        );
    }
}
