//! ListObjects (v1 and v2): read a provider's `<ListBucketResult>` page, and write the client's
//! (used by the merged listing of a bucket under lazy migration).

use quick_xml::Reader;
use quick_xml::events::Event;

use super::RewriteError;
use crate::s3::encoding::uri_encode;

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListedObject {
    pub key: String,
    pub last_modified: String,
    pub etag: String,
    pub size: u64,
    pub storage_class: String,
}

/// One page of a provider's ListObjectsV2 (or ListObjects v1) answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPage {
    pub objects: Vec<ListedObject>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_continuation_token: Option<String>,
    /// V1 only, and only with a delimiter on AWS (some providers always send it).
    pub next_marker: Option<String>,
}

/// Reads a ListObjectsV2 or V1 page; text is unescaped but not URL-decoded (s3ferry's own
/// listings never ask for `encoding-type=url`).
pub fn parse_list_page(xml: &[u8]) -> Result<ListPage, RewriteError> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut page = ListPage::default();
    let mut object = ListedObject::default();
    // A page cut short (a connection or a proxy that ended it early) would read as a shorter
    // listing, and a short listing hides objects: only a closed <ListBucketResult> counts.
    let mut whole = false;
    loop {
        match reader.read_event_into(&mut buf)? {
            Event::Eof if whole => break,
            Event::Eof => return Err(RewriteError("the listing ends before </ListBucketResult>".into())),
            Event::Empty(e) if path.is_empty() && e.local_name().as_ref() == b"ListBucketResult" => whole = true,
            Event::Start(e) | Event::Empty(e) if path.is_empty() && e.local_name().as_ref() != b"ListBucketResult" => {
                return Err(RewriteError(
                    "the answer is not a listing (no <ListBucketResult>)".into(),
                ));
            }
            Event::Start(e) => {
                if whole {
                    return Err(RewriteError("more after </ListBucketResult>".into()));
                }
                if e.local_name().as_ref() == b"Contents" {
                    object = ListedObject::default();
                }
                path.push(e.local_name().as_ref().to_vec());
            }
            Event::End(e) => {
                if e.local_name().as_ref() == b"Contents" {
                    page.objects.push(std::mem::take(&mut object));
                }
                path.pop();
                whole = path.is_empty();
            }
            Event::Text(t) => {
                let text = t.unescape()?.into_owned();
                let parent = path.len().checked_sub(2).map(|i| path[i].as_slice());
                match (parent, path.last().map(Vec::as_slice)) {
                    (Some(b"Contents"), Some(b"Key")) => object.key = text,
                    (Some(b"Contents"), Some(b"LastModified")) => object.last_modified = text,
                    (Some(b"Contents"), Some(b"ETag")) => object.etag = text,
                    (Some(b"Contents"), Some(b"Size")) => object.size = text.trim().parse().unwrap_or(0),
                    (Some(b"Contents"), Some(b"StorageClass")) => object.storage_class = text,
                    (Some(b"CommonPrefixes"), Some(b"Prefix")) => page.common_prefixes.push(text),
                    (Some(b"ListBucketResult"), Some(b"IsTruncated")) => page.is_truncated = text.trim() == "true",
                    (Some(b"ListBucketResult"), Some(b"NextContinuationToken")) => {
                        page.next_continuation_token = Some(text);
                    }
                    (Some(b"ListBucketResult"), Some(b"NextMarker")) => page.next_marker = Some(text),
                    _ => {}
                }
            }
            _ => {}
        }
        buf.clear();
    }
    Ok(page)
}

/// An entry of a merged listing: an object or a common prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEntry {
    Object(ListedObject),
    Prefix(String),
}

impl ListEntry {
    /// The name the entry sorts by.
    pub fn name(&self) -> &str {
        match self {
            Self::Object(o) => &o.key,
            Self::Prefix(p) => p,
        }
    }
}

/// Which ListObjects version the client called, with its own pagination fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListVersion {
    V1 {
        marker: Option<String>,
    },
    V2 {
        continuation_token: Option<String>,
        start_after: Option<String>,
    },
}

/// What the client asked for, echoed in the answer.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub bucket: String,
    pub prefix: String,
    pub delimiter: Option<String>,
    pub max_keys: usize,
    pub url_encode: bool,
    pub version: ListVersion,
}

/// Writes the client's `<ListBucketResult>` for a merged page.
/// `next` is the continuation point when the listing is truncated.
pub fn render_list_objects(query: &ListQuery, entries: &[ListEntry], next: Option<&str>) -> String {
    let esc = |s: &str| quick_xml::escape::escape(s).into_owned();
    let enc = |s: &str| {
        if query.url_encode {
            uri_encode(s.as_bytes(), true)
        } else {
            esc(s)
        }
    };
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    let mut field = |name: &str, value: &str| x.push_str(&format!("<{name}>{value}</{name}>"));
    field("Name", &esc(&query.bucket));
    field("Prefix", &enc(&query.prefix));
    match &query.version {
        ListVersion::V1 { marker } => {
            field("Marker", &enc(marker.as_deref().unwrap_or("")));
            if let (Some(n), Some(_)) = (next, &query.delimiter) {
                field("NextMarker", &enc(n));
            }
        }
        ListVersion::V2 {
            continuation_token,
            start_after,
        } => {
            if let Some(t) = continuation_token {
                field("ContinuationToken", &esc(t));
            }
            if let Some(s) = start_after {
                field("StartAfter", &enc(s));
            }
            field("KeyCount", &entries.len().to_string());
            if let Some(n) = next {
                field("NextContinuationToken", &esc(&encode_token(n)));
            }
        }
    }
    field("MaxKeys", &query.max_keys.to_string());
    if let Some(d) = &query.delimiter {
        field("Delimiter", &enc(d));
    }
    field("IsTruncated", if next.is_some() { "true" } else { "false" });
    if query.url_encode {
        field("EncodingType", "url");
    }
    for entry in entries {
        match entry {
            ListEntry::Object(o) => {
                x.push_str("<Contents>");
                x.push_str(&format!("<Key>{}</Key>", enc(&o.key)));
                x.push_str(&format!("<LastModified>{}</LastModified>", esc(&o.last_modified)));
                x.push_str(&format!("<ETag>{}</ETag>", esc(&o.etag)));
                x.push_str(&format!("<Size>{}</Size>", o.size));
                let class = if o.storage_class.is_empty() {
                    "STANDARD"
                } else {
                    &o.storage_class
                };
                x.push_str(&format!("<StorageClass>{}</StorageClass>", esc(class)));
                x.push_str("</Contents>");
            }
            ListEntry::Prefix(p) => {
                x.push_str(&format!("<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>", enc(p)))
            }
        }
    }
    x.push_str("</ListBucketResult>");
    x
}

const TOKEN_PREFIX: &str = "s3ferry1:";

/// A continuation token: the last entry returned, so both providers resume after it.
pub fn encode_token(last: &str) -> String {
    use base64::Engine as _;
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last)
    )
}

/// Reads a token written by [`encode_token`].
pub fn decode_token(token: &str) -> Option<String> {
    use base64::Engine as _;
    let raw = token.strip_prefix(TOKEN_PREFIX)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_page_is_read() {
        let xml = br#"<?xml version="1.0"?><ListBucketResult><Name>b</Name><IsTruncated>true</IsTruncated><NextContinuationToken>tok</NextContinuationToken><Contents><Key>a&amp;b</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><ETag>"e1"</ETag><Size>3</Size><StorageClass>STANDARD</StorageClass></Contents><CommonPrefixes><Prefix>d/</Prefix></CommonPrefixes></ListBucketResult>"#;
        let page = parse_list_page(xml).expect("parses");
        assert_eq!(page.objects.len(), 1);
        assert_eq!(page.objects[0].key, "a&b");
        assert_eq!(page.objects[0].etag, "\"e1\"");
        assert_eq!(page.objects[0].size, 3);
        assert_eq!(page.common_prefixes, vec!["d/".to_string()]);
        assert!(page.is_truncated);
        assert_eq!(page.next_continuation_token.as_deref(), Some("tok"));
    }

    #[test]
    fn a_page_cut_short_or_not_a_listing_is_refused() {
        let whole = br#"<?xml version="1.0"?><ListBucketResult><Name>b</Name><Contents><Key>a</Key></Contents><Contents><Key>b</Key></Contents></ListBucketResult>"#;
        assert_eq!(parse_list_page(whole).expect("whole").objects.len(), 2);
        let cut_after_an_object = &whole[..whole.len() - "<Contents><Key>b</Key></Contents></ListBucketResult>".len()];
        assert!(
            parse_list_page(cut_after_an_object).is_err(),
            "a short page is not a short listing"
        );
        for broken in [
            &b""[..],
            b"<?xml version=\"1.0\"?>\n<Error><Code>Internal",
            b"<Error><Code>InternalError</Code></Error>",
            b"<ListBucketResult><Name>b</Name></ListBucketResult><ListBucketResult>",
        ] {
            assert!(parse_list_page(broken).is_err(), "{}", String::from_utf8_lossy(broken));
        }
        assert!(parse_list_page(b"<ListBucketResult/>").is_ok(), "an empty listing");
    }

    #[test]
    fn rendered_pages_read_back_and_tokens_round_trip() {
        let query = ListQuery {
            bucket: "b".into(),
            prefix: String::new(),
            delimiter: Some("/".into()),
            max_keys: 2,
            url_encode: false,
            version: ListVersion::V2 {
                continuation_token: None,
                start_after: None,
            },
        };
        let entries = vec![
            ListEntry::Object(ListedObject {
                key: "a<b".into(),
                size: 1,
                ..Default::default()
            }),
            ListEntry::Prefix("d/".into()),
        ];
        let xml = render_list_objects(&query, &entries, Some("d/"));
        let page = parse_list_page(xml.as_bytes()).expect("parses");
        assert_eq!(page.objects[0].key, "a<b");
        assert_eq!(page.common_prefixes, vec!["d/".to_string()]);
        assert!(page.is_truncated);
        let token = page.next_continuation_token.expect("token");
        assert_eq!(decode_token(&token).as_deref(), Some("d/"));
        assert_eq!(decode_token("garbage"), None);
    }

    #[test]
    fn url_encoding_applies_to_keys_and_prefixes() {
        let query = ListQuery {
            bucket: "b".into(),
            prefix: "a b/".into(),
            delimiter: None,
            max_keys: 1000,
            url_encode: true,
            version: ListVersion::V1 { marker: None },
        };
        let entries = vec![ListEntry::Object(ListedObject {
            key: "a b/c+d".into(),
            ..Default::default()
        })];
        let xml = render_list_objects(&query, &entries, None);
        assert!(
            xml.contains("<Key>a%20b/c%2Bd</Key>") && xml.contains("<Prefix>a%20b/</Prefix>"),
            "{xml}"
        );
        assert!(xml.contains("<EncodingType>url</EncodingType>"));
    }
}
