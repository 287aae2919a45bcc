//! `<Tagging><TagSet><Tag><Key/><Value/></Tag>...` read into pairs (copies keep an object's tags).

use quick_xml::Reader;
use quick_xml::events::Event;

use super::RewriteError;

pub fn parse_tag_set(xml: &[u8]) -> Result<Vec<(String, String)>, RewriteError> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut current = Vec::new();
    let mut tags = Vec::new();
    let (mut key, mut value) = (String::new(), String::new());
    loop {
        match reader.read_event_into(&mut buf)? {
            Event::Eof => break,
            Event::Start(e) => current = e.local_name().as_ref().to_vec(),
            Event::End(e) => {
                if e.local_name().as_ref() == b"Tag" {
                    tags.push((std::mem::take(&mut key), std::mem::take(&mut value)));
                }
                current.clear();
            }
            Event::Text(t) => match current.as_slice() {
                b"Key" => key = t.unescape()?.into_owned(),
                b"Value" => value = t.unescape()?.into_owned(),
                _ => {}
            },
            _ => {}
        }
        buf.clear();
    }
    Ok(tags)
}

/// Tags as an `x-amz-tagging` header value (`k=v&k2=v2`, URL-encoded); `None` for no tags.
pub fn tagging_header_value(tags: &[(String, String)]) -> Option<String> {
    if tags.is_empty() {
        return None;
    }
    let enc = |s: &str| crate::s3::encoding::uri_encode(s.as_bytes(), false);
    Some(
        tags.iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_in_order() {
        let xml = b"<Tagging><TagSet><Tag><Key>a</Key><Value>1</Value></Tag><Tag><Key>b&amp;c</Key><Value></Value></Tag></TagSet></Tagging>";
        assert_eq!(
            parse_tag_set(xml).expect("parses"),
            vec![("a".to_string(), "1".to_string()), ("b&c".to_string(), String::new())]
        );
    }

    #[test]
    fn tags_become_an_encoded_header_value() {
        let tags = [("a b".to_string(), "1&2".to_string()), ("c".to_string(), String::new())];
        assert_eq!(tagging_header_value(&tags).as_deref(), Some("a%20b=1%262&c="));
        assert_eq!(tagging_header_value(&[]), None);
    }
}
