//! The provider's XML answer in the client's view, in one reader -> writer pass: the renamed
//! bucket mapped back ([`super::bucket_names`]), the provider's values in AWS form
//! ([`super::provider_values`]) and listing keys URL-encoded ([`super::listing_encoding`]).
//!
//! The three edits touch disjoint elements, so one pass that applies whichever are asked for
//! writes what the three passes in turn wrote, byte for byte (`property_tests` checks that),
//! at the cost of one parse instead of three: a 1,000-key listing of a renamed bucket on OSS,
//! asked for `encoding-type=url`, was read and written three times before (docs/performance.md).

use quick_xml::events::{BytesText, Event};
use quick_xml::{Reader, Writer};

use super::RewriteError;
use crate::dialect::DialectProfile;
use crate::s3::encoding::uri_encode;

/// Elements whose whole text is a bucket name.
const BUCKET_ELEMENTS: &[&[u8]] = &[b"Name", b"Bucket", b"BucketName"];

/// The key-bearing fields S3 URL-encodes under `encoding-type=url`: `Key`, `Prefix`,
/// `Delimiter`, `StartAfter`, `Marker`, `NextMarker` (ListObjects v1/v2), and for
/// ListObjectVersions also `KeyMarker`/`NextKeyMarker`.
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

/// Which edits a provider's answer needs before it reaches the client.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientView<'a> {
    /// The bucket renamed: (the provider's name, the client's name).
    pub rename: Option<(&'a str, &'a str)>,
    /// The provider's dialect: `<ETag>`, `<StorageClass>` and error `<Code>` in AWS form.
    pub values: Option<&'a DialectProfile>,
    /// Listing keys to URL-encode, and whether to declare `<EncodingType>url</EncodingType>`
    /// when the provider did not (clients decode only what is declared encoded).
    pub encode_keys: Option<EncodeKeys>,
}

/// How listing keys are encoded.
#[derive(Debug, Clone, Copy)]
pub struct EncodeKeys {
    pub declare: bool,
}

/// What one element's text becomes.
enum Edit {
    /// Written as it came (its escaping kept).
    Keep,
    /// Written as this text, escaped again.
    Replace(String),
}

impl ClientView<'_> {
    fn edit(&self, element: &[u8], text: &str) -> Edit {
        if let Some((upstream, client)) = self.rename {
            if BUCKET_ELEMENTS.contains(&element) {
                return if text == upstream {
                    Edit::Replace(client.to_string())
                } else {
                    Edit::Keep
                };
            }
            if element == b"Location" {
                return Edit::Replace(super::bucket_names::replace_bucket_segment(text, upstream, client));
            }
        }
        if let Some(profile) = self.values {
            let mapped = match element {
                b"ETag" => Some(profile.client_etag(text)),
                b"StorageClass" => Some(profile.client_storage_class(text).to_string()),
                b"Code" => profile.error_mapping(text).map(|m| m.aws_code.clone()),
                _ => None,
            };
            if let Some(mapped) = mapped {
                return if mapped == text {
                    Edit::Keep
                } else {
                    Edit::Replace(mapped)
                };
            }
        }
        if self.encode_keys.is_some() && ENCODED_ELEMENTS.contains(&element) {
            return Edit::Replace(uri_encode(text.as_bytes(), true));
        }
        Edit::Keep
    }

    /// Whether an element's text may be edited at all: only those texts are unescaped.
    fn edits(&self, element: &[u8]) -> bool {
        (self.rename.is_some() && (BUCKET_ELEMENTS.contains(&element) || element == b"Location"))
            || (self.values.is_some() && matches!(element, b"ETag" | b"StorageClass" | b"Code"))
            || (self.encode_keys.is_some() && ENCODED_ELEMENTS.contains(&element))
    }
}

/// Rewrites `xml` as `view` says. Everything else is copied as it came.
pub fn rewrite_for_client(xml: &[u8], view: &ClientView<'_>) -> Result<Vec<u8>, RewriteError> {
    let mut reader = Reader::from_reader(xml);
    let grows = if view.encode_keys.is_some() { xml.len() / 8 } else { 0 };
    let mut writer = Writer::new(Vec::with_capacity(xml.len() + grows + 64));
    let mut buf = Vec::new();
    // The local name of the element whose text comes next; reused, not reallocated per element.
    let mut current: Vec<u8> = Vec::new();
    let mut depth = 0usize;
    let mut declared = false;
    let write_error = |e: std::io::Error| RewriteError(e.to_string());
    loop {
        let event = reader.read_event_into(&mut buf)?;
        match event {
            Event::Eof => break,
            Event::Start(ref e) => {
                depth += 1;
                current.clear();
                current.extend_from_slice(e.local_name().as_ref());
                declared |= current.as_slice() == b"EncodingType";
                writer.write_event(event.borrow()).map_err(write_error)?;
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                current.clear();
                if depth == 0
                    && !declared
                    && let Some(EncodeKeys { declare: true }) = view.encode_keys
                {
                    writer
                        .create_element("EncodingType")
                        .write_text_content(BytesText::new("url"))
                        .map_err(write_error)?;
                }
                writer.write_event(event.borrow()).map_err(write_error)?;
            }
            Event::Text(ref t) if view.edits(&current) => {
                let text = t.unescape()?;
                match view.edit(&current, &text) {
                    Edit::Replace(new_text) => writer.write_event(Event::Text(BytesText::new(&new_text))),
                    Edit::Keep => writer.write_event(event.borrow()),
                }
                .map_err(write_error)?;
            }
            _ => writer.write_event(event.borrow()).map_err(write_error)?,
        }
        buf.clear();
    }
    Ok(writer.into_inner())
}
