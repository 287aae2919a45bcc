//! ListBuckets: read a provider's `<ListAllMyBucketsResult>` and write the client's.

use quick_xml::Reader;
use quick_xml::events::Event;

use super::RewriteError;

/// One bucket in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBucket {
    pub name: String,
    /// ISO 8601, as S3 writes it (`2024-01-01T00:00:00.000Z`).
    pub creation_date: String,
}

/// Reads the buckets of a provider's ListBuckets response.
pub fn parse_list_buckets(xml: &[u8]) -> Result<Vec<ListedBucket>, RewriteError> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut buckets = Vec::new();
    let mut name = String::new();
    let mut date = String::new();
    loop {
        match reader.read_event_into(&mut buf)? {
            Event::Eof => break,
            Event::Start(e) => path.push(e.local_name().as_ref().to_vec()),
            Event::End(e) => {
                if e.local_name().as_ref() == b"Bucket" && !name.is_empty() {
                    buckets.push(ListedBucket {
                        name: std::mem::take(&mut name),
                        creation_date: std::mem::take(&mut date),
                    });
                }
                path.pop();
            }
            Event::Text(t) => {
                let in_bucket = path.len() >= 2 && path[path.len() - 2] == b"Bucket";
                match path.last().map(Vec::as_slice) {
                    Some(b"Name") if in_bucket => name = t.unescape()?.into_owned(),
                    Some(b"CreationDate") if in_bucket => date = t.unescape()?.into_owned(),
                    _ => {}
                }
            }
            _ => {}
        }
        buf.clear();
    }
    Ok(buckets)
}

/// Writes the client's ListBuckets response.
pub fn render_list_buckets(buckets: &[ListedBucket], owner: &str) -> String {
    let esc = |s: &str| quick_xml::escape::escape(s).into_owned();
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListAllMyBucketsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    xml.push_str(&format!(
        "<Owner><ID>{0}</ID><DisplayName>{0}</DisplayName></Owner><Buckets>",
        esc(owner)
    ));
    for b in buckets {
        xml.push_str(&format!(
            "<Bucket><Name>{}</Name><CreationDate>{}</CreationDate></Bucket>",
            esc(&b.name),
            esc(&b.creation_date)
        ));
    }
    xml.push_str("</Buckets></ListAllMyBucketsResult>");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_renders() {
        let buckets = vec![
            ListedBucket {
                name: "a".into(),
                creation_date: "2024-01-01T00:00:00.000Z".into(),
            },
            ListedBucket {
                name: "b&c".into(),
                creation_date: "2025-01-01T00:00:00.000Z".into(),
            },
        ];
        let xml = render_list_buckets(&buckets, "s3ferry");
        assert_eq!(parse_list_buckets(xml.as_bytes()).expect("parses"), buckets);
    }

    #[test]
    fn owner_name_is_not_taken_for_a_bucket() {
        let xml = b"<ListAllMyBucketsResult><Owner><ID>x</ID><DisplayName>Name</DisplayName></Owner><Buckets><Bucket><Name>b1</Name><CreationDate>d</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>";
        let parsed = parse_list_buckets(xml).expect("parses");
        assert_eq!(
            parsed,
            vec![ListedBucket {
                name: "b1".into(),
                creation_date: "d".into()
            }]
        );
    }
}
