//! DeleteObjects: the client's request body (`<Delete><Object><Key>..</Key></Object>..`) and the
//! provider's answer (`<DeleteResult><Deleted>..</Deleted><Error>..</Error>..`).
//!
//! Keys are XML text: entities (`&amp;`, `&#38;`) and CDATA sections (`<![CDATA[a&b]]>`) are
//! decoded, and a key may be written in several pieces (`a<![CDATA[&]]>b`). This is the only
//! parser of either document, so the keys s3ferry checks and tombstones are the keys the
//! provider deletes.

use quick_xml::Reader;
use quick_xml::events::Event;

use super::RewriteError;

/// The most objects one DeleteObjects request may name. AWS documents the limit ("The request
/// can contain a list of up to 1,000 keys") and answers a longer list with 400 `MalformedXML`;
/// see README, Known limits, for the sources.
pub const MAX_DELETE_OBJECTS: usize = 1000;

/// One `<Object>` of a DeleteObjects body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteEntry {
    pub key: String,
    /// An entry that names a version deletes only that version (of the new provider).
    pub version_id: Option<String>,
}

/// A DeleteObjects request body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteRequest {
    pub entries: Vec<DeleteEntry>,
    /// `<Quiet>true</Quiet>`: the answer lists only the keys that failed.
    pub quiet: bool,
    /// Some text came as CDATA, which not every S3 store reads (s3s skips it): such a body is
    /// sent on as [`render_delete_body`] writes it.
    pub has_cdata: bool,
}

impl DeleteRequest {
    /// The keys of the entries that name no version: the ones that delete the current object.
    pub fn unversioned_keys(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(|e| e.version_id.is_none())
            .map(|e| e.key.as_str())
    }
}

/// Why a DeleteObjects body is refused. Each is AWS's 400 `MalformedXML`. The texts name no
/// part of the body: the XML reader's detail can quote a key, and refusals are logged.
#[derive(Debug, thiserror::Error)]
pub enum DeleteBodyError {
    #[error("the body is not well-formed XML")]
    Xml(#[from] RewriteError),
    #[error("the request names more than {MAX_DELETE_OBJECTS} objects, the most one request may delete")]
    TooManyObjects,
    #[error("an <Object> has no <Key>")]
    ObjectWithoutKey,
}

impl From<quick_xml::Error> for DeleteBodyError {
    fn from(e: quick_xml::Error) -> Self {
        Self::Xml(e.into())
    }
}

/// Text or CDATA inside an element, decoded, appended to `into`.
fn append_text(event: &Event<'_>, into: &mut String) -> Result<(), quick_xml::Error> {
    match event {
        Event::Text(t) => into.push_str(&t.unescape()?),
        Event::CData(c) => into.push_str(&String::from_utf8_lossy(c)),
        _ => {}
    }
    Ok(())
}

/// Reads `xml` element by element, calling `on` with the path of local names and each event.
fn walk<E: From<quick_xml::Error>>(
    xml: &[u8],
    mut on: impl FnMut(&[Vec<u8>], &Event<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut path: Vec<Vec<u8>> = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf)?;
        match &event {
            Event::Eof => return Ok(()),
            Event::Start(e) => {
                path.push(e.local_name().as_ref().to_vec());
                on(&path, &event)?;
            }
            Event::Empty(e) => {
                path.push(e.local_name().as_ref().to_vec());
                on(&path, &event)?;
                path.pop();
            }
            Event::End(_) => {
                on(&path, &event)?;
                path.pop();
            }
            _ => on(&path, &event)?,
        }
        buf.clear();
    }
}

fn is_path(path: &[Vec<u8>], expected: &[&str]) -> bool {
    path.len() == expected.len() && path.iter().zip(expected).all(|(a, b)| a.as_slice() == b.as_bytes())
}

/// The entries of a DeleteObjects body, refused as AWS refuses it: not XML, more than
/// [`MAX_DELETE_OBJECTS`] objects, or an object without a key.
pub fn parse_delete_keys(xml: &[u8]) -> Result<DeleteRequest, DeleteBodyError> {
    let mut request = DeleteRequest::default();
    let mut objects = 0usize;
    let (mut key, mut version, mut quiet) = (None::<String>, None::<String>, String::new());
    walk(xml, |path, event| {
        let in_object = |field: &str| is_path(path, &["Delete", "Object", field]);
        match event {
            Event::Start(_) | Event::Empty(_) if is_path(path, &["Delete", "Object"]) => {
                objects += 1;
                if objects > MAX_DELETE_OBJECTS {
                    return Err(DeleteBodyError::TooManyObjects);
                }
                (key, version) = (None, None);
                if matches!(event, Event::Empty(_)) {
                    return Err(DeleteBodyError::ObjectWithoutKey);
                }
            }
            Event::Start(_) | Event::Empty(_) if in_object("Key") => key = Some(String::new()),
            Event::Start(_) | Event::Empty(_) if in_object("VersionId") => version = Some(String::new()),
            Event::CData(_) if path.first().is_some_and(|root| root.as_slice() == b"Delete") => {
                request.has_cdata = true;
                if in_object("Key") {
                    append_text(event, key.get_or_insert_with(String::new))?;
                } else if in_object("VersionId") {
                    append_text(event, version.get_or_insert_with(String::new))?;
                } else if is_path(path, &["Delete", "Quiet"]) {
                    append_text(event, &mut quiet)?;
                }
            }
            Event::Text(_) if is_path(path, &["Delete", "Quiet"]) => append_text(event, &mut quiet)?,
            Event::Text(_) | Event::CData(_) if in_object("Key") => {
                append_text(event, key.get_or_insert_with(String::new))?;
            }
            Event::Text(_) | Event::CData(_) if in_object("VersionId") => {
                append_text(event, version.get_or_insert_with(String::new))?;
            }
            Event::End(_) if is_path(path, &["Delete", "Object"]) => {
                let key = key.take().ok_or(DeleteBodyError::ObjectWithoutKey)?;
                let version_id = version.take();
                request.entries.push(DeleteEntry { key, version_id });
            }
            _ => {}
        }
        Ok(())
    })?;
    request.quiet = quiet.trim().eq_ignore_ascii_case("true");
    Ok(request)
}

/// `request` as a DeleteObjects body in plain XML text (no CDATA), for a provider that must
/// delete exactly the keys s3ferry read.
pub fn render_delete_body(request: &DeleteRequest) -> Vec<u8> {
    use quick_xml::escape::escape;
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
    );
    if request.quiet {
        xml.push_str("<Quiet>true</Quiet>");
    }
    for entry in &request.entries {
        xml.push_str("<Object><Key>");
        xml.push_str(&escape(entry.key.as_str()));
        xml.push_str("</Key>");
        if let Some(version) = &entry.version_id {
            xml.push_str("<VersionId>");
            xml.push_str(&escape(version.as_str()));
            xml.push_str("</VersionId>");
        }
        xml.push_str("</Object>");
    }
    xml.push_str("</Delete>");
    xml.into_bytes()
}

/// What a provider's DeleteObjects answer says about the keys that named no version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteResult {
    /// Keys reported as `<Deleted>`.
    pub deleted: Vec<String>,
    /// Keys reported as `<Error>`.
    pub failed: Vec<String>,
}

/// Reads a provider's `<DeleteResult>`; entries that name a version are left out.
pub fn parse_delete_result(xml: &[u8]) -> Result<DeleteResult, RewriteError> {
    let mut result = DeleteResult::default();
    let (mut key, mut versioned) = (String::new(), false);
    let mut saw_root = false;
    walk(xml, |path, event| {
        let entry = |name: &str| is_path(path, &["DeleteResult", name]);
        let field = |name: &str, field: &str| is_path(path, &["DeleteResult", name, field]);
        match event {
            Event::Start(_) | Event::Empty(_) if is_path(path, &["DeleteResult"]) => saw_root = true,
            Event::Start(_) if entry("Deleted") || entry("Error") => (key, versioned) = (String::new(), false),
            Event::Text(_) | Event::CData(_) if field("Deleted", "Key") || field("Error", "Key") => {
                append_text(event, &mut key)?;
            }
            Event::Start(_) | Event::Empty(_) if field("Deleted", "VersionId") || field("Error", "VersionId") => {
                versioned = true;
            }
            Event::End(_) if entry("Deleted") && !versioned => result.deleted.push(std::mem::take(&mut key)),
            Event::End(_) if entry("Error") && !versioned => result.failed.push(std::mem::take(&mut key)),
            _ => {}
        }
        Ok::<(), RewriteError>(())
    })?;
    if !saw_root {
        return Err(RewriteError("the answer is not a <DeleteResult>".into()));
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(xml: &str) -> Vec<String> {
        parse_delete_keys(xml.as_bytes())
            .expect("parses")
            .unversioned_keys()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn keys_are_read_and_versioned_entries_kept_apart() {
        let xml = "<Delete><Quiet>true</Quiet><Object><Key>a&amp;b</Key></Object><Object><Key>v</Key><VersionId>1</VersionId></Object><Object><Key>c/d</Key></Object></Delete>";
        let parsed = parse_delete_keys(xml.as_bytes()).expect("parses");
        assert!(parsed.quiet && !parsed.has_cdata);
        assert_eq!(parsed.entries.len(), 3);
        assert_eq!(parsed.entries[1].version_id.as_deref(), Some("1"));
        assert_eq!(keys(xml), vec!["a&b".to_string(), "c/d".to_string()]);
    }

    #[test]
    fn keys_are_xml_text_with_cdata_entities_and_pieces() {
        let xml = "<?xml version=\"1.0\"?><Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n  <Object><Key><![CDATA[cdata&<key>]]></Key></Object>\n  <Object><Key>a<![CDATA[&]]>b&#38;c&#x41;</Key></Object>\n  <Object><Key> spaced </Key></Object></Delete>";
        assert_eq!(
            keys(xml),
            vec!["cdata&<key>".to_string(), "a&b&cA".to_string(), " spaced ".to_string()]
        );
    }

    #[test]
    fn a_body_with_cdata_is_rendered_again_as_plain_text_with_the_same_entries() {
        let xml = "<Delete><Quiet><![CDATA[true]]></Quiet><Object><Key><![CDATA[a&<b>]]>'\"</Key></Object><Object><Key>v</Key><VersionId><![CDATA[x&y]]></VersionId></Object></Delete>";
        let parsed = parse_delete_keys(xml.as_bytes()).expect("parses");
        assert!(parsed.has_cdata && parsed.quiet);
        let rendered = render_delete_body(&parsed);
        assert!(!String::from_utf8_lossy(&rendered).contains("CDATA"));
        let again = parse_delete_keys(&rendered).expect("parses");
        assert_eq!(again.entries, parsed.entries);
        assert!(again.quiet && !again.has_cdata);
        assert_eq!(again.entries[0].key, "a&<b>'\"");
    }

    #[test]
    fn more_than_1000_objects_or_an_object_without_key_is_refused() {
        let body = |n: usize| {
            let objects: String = (0..n).map(|i| format!("<Object><Key>k{i}</Key></Object>")).collect();
            format!("<Delete>{objects}</Delete>")
        };
        assert_eq!(keys(&body(1000)).len(), 1000);
        assert!(matches!(
            parse_delete_keys(body(1001).as_bytes()),
            Err(DeleteBodyError::TooManyObjects)
        ));
        for xml in ["<Delete><Object></Object></Delete>", "<Delete><Object/></Delete>"] {
            assert!(matches!(
                parse_delete_keys(xml.as_bytes()),
                Err(DeleteBodyError::ObjectWithoutKey)
            ));
        }
        assert!(parse_delete_keys(b"<Delete><Object><Key>a</Object></Delete>").is_err());
    }

    #[test]
    fn the_answer_says_which_keys_were_deleted_and_which_failed() {
        let xml = "<?xml version=\"1.0\"?><DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Deleted><Key>a&amp;b</Key></Deleted><Deleted><Key><![CDATA[c]]></Key><DeleteMarker>true</DeleteMarker></Deleted><Deleted><Key>v</Key><VersionId>3</VersionId></Deleted><Error><Key>d</Key><Code>AccessDenied</Code><Message>no</Message></Error></DeleteResult>";
        let result = parse_delete_result(xml.as_bytes()).expect("parses");
        assert_eq!(result.deleted, vec!["a&b".to_string(), "c".to_string()]);
        assert_eq!(result.failed, vec!["d".to_string()]);
        assert!(parse_delete_result(b"<Error><Code>MalformedXML</Code></Error>").is_err());
        assert_eq!(
            parse_delete_result(b"<DeleteResult/>").expect("empty"),
            DeleteResult::default()
        );
    }
}
