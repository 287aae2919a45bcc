//! `encoding-type=url` for providers that accept the parameter but return keys raw.
//!
//! botocore asks for `encoding-type=url` on every listing and URL-decodes what comes back, so a
//! raw `+` in a key turns into a space on the client. When the provider does not encode, s3ferry
//! encodes the fields S3 encodes: `Key`, `Prefix`, `Delimiter`, `StartAfter`, `Marker`,
//! `NextMarker` (ListObjects v1/v2, ListObjectVersions also `KeyMarker`/`NextKeyMarker`).

use quick_xml::events::{BytesText, Event};
use quick_xml::{Reader, Writer};

use super::RewriteError;
use crate::s3::encoding::uri_encode;

const ENCODED_ELEMENTS: &[&[u8]] = &[
    b"Key",
    b"Prefix",
    b"Delimiter",
    b"StartAfter",
    b"Marker",
    b"NextMarker",
    b"KeyMarker",
    b"NextKeyMarker",
];

/// URL-encodes the key-bearing fields of a listing response. With `declare`, an
/// `<EncodingType>url</EncodingType>` is added when the provider did not write one (it was not
/// asked to encode), because clients decode only what is declared encoded.
pub fn encode_listing_keys(xml: &[u8], declare: bool) -> Result<Vec<u8>, RewriteError> {
    let mut reader = Reader::from_reader(xml);
    let mut writer = Writer::new(Vec::with_capacity(xml.len() + xml.len() / 8));
    let mut buf = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut depth = 0usize;
    let mut declared = false;
    loop {
        let event = reader.read_event_into(&mut buf)?;
        let written = match event {
            Event::Eof => break,
            Event::Start(ref e) => {
                depth += 1;
                current = e.local_name().as_ref().to_vec();
                declared |= current.as_slice() == b"EncodingType";
                writer.write_event(event.borrow())
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                current.clear();
                if depth == 0 && declare && !declared {
                    writer
                        .create_element("EncodingType")
                        .write_text_content(BytesText::new("url"))
                        .map_err(|e| RewriteError(e.to_string()))?;
                }
                writer.write_event(event.borrow())
            }
            Event::Text(ref t) if ENCODED_ELEMENTS.contains(&current.as_slice()) => {
                let raw = t.unescape()?;
                writer.write_event(Event::Text(BytesText::new(&uri_encode(raw.as_bytes(), true))))
            }
            _ => writer.write_event(event.borrow()),
        };
        written.map_err(|e| RewriteError(e.to_string()))?;
        buf.clear();
    }
    Ok(writer.into_inner())
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
