//! The keys of a DeleteObjects request body (`<Delete><Object><Key>..</Key></Object>..`).

use quick_xml::Reader;
use quick_xml::events::Event;

use super::RewriteError;

/// The keys to delete, skipping entries that name a version (those only touch the new provider).
pub fn parse_delete_keys(xml: &[u8]) -> Result<Vec<String>, RewriteError> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut current = Vec::new();
    let mut keys = Vec::new();
    let (mut key, mut versioned) = (None, false);
    loop {
        match reader.read_event_into(&mut buf)? {
            Event::Eof => break,
            Event::Start(e) => {
                current = e.local_name().as_ref().to_vec();
                if current == b"Object" {
                    key = None;
                    versioned = false;
                }
            }
            Event::End(e) => {
                if e.local_name().as_ref() == b"Object"
                    && let Some(k) = key.take()
                    && !versioned
                {
                    keys.push(k);
                }
                current.clear();
            }
            Event::Text(t) => match current.as_slice() {
                b"Key" => key = Some(t.unescape()?.into_owned()),
                b"VersionId" => versioned = true,
                _ => {}
            },
            _ => {}
        }
        buf.clear();
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_and_versioned_entries_skipped() {
        let xml = b"<Delete><Quiet>true</Quiet><Object><Key>a&amp;b</Key></Object><Object><Key>v</Key><VersionId>1</VersionId></Object><Object><Key>c/d</Key></Object></Delete>";
        assert_eq!(
            parse_delete_keys(xml).expect("parses"),
            vec!["a&b".to_string(), "c/d".to_string()]
        );
    }
}
