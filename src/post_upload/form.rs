//! `multipart/form-data` ([RFC 7578](https://www.rfc-editor.org/rfc/rfc7578)) read as a stream:
//! a pure parser that is pushed the body's bytes and hands out the form's fields, then the
//! `file` part's bytes as they come, never holding more than the fields before the file (capped)
//! and one piece of the file.
//!
//! AWS reads the form the same way: the fields before the file may take at most 20 KB
//! (`MaxPostPreDataLengthExceeded`, <https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html>),
//! and "the file or text content must be the last field in the form": fields after it are
//! ignored (<https://docs.aws.amazon.com/AmazonS3/latest/API/RESTObjectPOST.html>).

use bytes::{Bytes, BytesMut};

/// The most the form may hold before the file's first byte (part headers, field values and
/// boundaries included): AWS's 20 KB (its error answers give `MaxPostPreDataLengthBytes` 20480).
pub const MAX_PRE_FILE_BYTES: usize = 20 * 1024;

/// What the parser found next in the form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormEvent {
    /// A field before the file; `name` as the form wrote it.
    Field {
        name: String,
        value: String,
    },
    /// The `file` part begins; its bytes follow as [`FormEvent::FileData`].
    FileStart {
        filename: String,
        content_type: Option<String>,
    },
    FileData(Bytes),
    /// The file part ended at its closing boundary: the upload is complete.
    FileEnd,
}

/// Why a form cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the form's fields before the file exceed {MAX_PRE_FILE_BYTES} bytes")]
    PreFileTooLarge,
    #[error("{0}")]
    Malformed(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Before the first boundary (a preamble is allowed and ignored).
    Preamble,
    /// Just after a boundary: `--` (the form's end) or the line end before part headers.
    AfterBoundary,
    Headers,
    FieldValue {
        name: String,
    },
    FileData,
    /// The file ended, or the form ended without one; the rest is ignored.
    Done {
        file_seen: bool,
    },
}

/// The parser. Push bytes with [`FormParser::push`], then take events with
/// [`FormParser::next_event`] until it answers `Ok(None)` (needs more bytes); at the end of the
/// body, [`FormParser::finish`] says whether the form was complete.
#[derive(Debug)]
pub struct FormParser {
    /// `\r\n--<boundary>`: every boundary, the first included (the buffer starts with `\r\n`).
    delimiter: Vec<u8>,
    buf: BytesMut,
    state: State,
    /// Bytes taken from the buffer before the file's data began.
    pre_file: usize,
    file_started: bool,
}

impl FormParser {
    /// A parser for the `boundary` of the request's `Content-Type`.
    pub fn new(boundary: &str) -> Self {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        let mut buf = BytesMut::with_capacity(4096);
        // The first boundary has no line end before it; this one makes it look like the others.
        buf.extend_from_slice(b"\r\n");
        Self {
            delimiter,
            buf,
            state: State::Preamble,
            pre_file: 0,
            file_started: false,
        }
    }

    /// Adds the next bytes of the body. Bytes after the file are dropped unread.
    pub fn push(&mut self, data: &[u8]) {
        if !matches!(self.state, State::Done { .. }) {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next event, `Ok(None)` when more bytes are needed (or the form is done).
    pub fn next_event(&mut self) -> Result<Option<FormEvent>, FormError> {
        loop {
            // `+ 2`: the line end the parser put before the first boundary.
            if !self.file_started && self.pre_file > MAX_PRE_FILE_BYTES + 2 {
                return Err(FormError::PreFileTooLarge);
            }
            match std::mem::replace(&mut self.state, State::Done { file_seen: false }) {
                State::Preamble => match find(&self.buf, &self.delimiter) {
                    Some(at) => {
                        self.take(at + self.delimiter.len());
                        self.state = State::AfterBoundary;
                    }
                    None => {
                        self.state = State::Preamble;
                        return self.need_more();
                    }
                },
                State::AfterBoundary => {
                    if self.buf.len() < 2 {
                        self.state = State::AfterBoundary;
                        return self.need_more();
                    }
                    if self.buf.starts_with(b"--") {
                        // The form's closing boundary, and no file before it.
                        self.buf.clear();
                        self.state = State::Done { file_seen: false };
                        return Err(FormError::Malformed("the form has no file part"));
                    }
                    // Transport padding (RFC 2046 §5.1.1) may sit before the line end.
                    let Some(end) = find(&self.buf, b"\r\n") else {
                        self.state = State::AfterBoundary;
                        return self.need_more();
                    };
                    if !self.buf[..end].iter().all(|b| *b == b' ' || *b == b'\t') {
                        return Err(FormError::Malformed("a boundary is followed by text on its line"));
                    }
                    self.take(end + 2);
                    self.state = State::Headers;
                }
                State::Headers => {
                    let end = if self.buf.starts_with(b"\r\n") {
                        Some(0)
                    } else {
                        find(&self.buf, b"\r\n\r\n").map(|at| at + 2)
                    };
                    let Some(end) = end else {
                        self.state = State::Headers;
                        return self.need_more();
                    };
                    let head = self.take(end + 2);
                    let part = parse_part_headers(&head[..end])?;
                    if part.name.eq_ignore_ascii_case("file") {
                        self.state = State::FileData;
                        self.file_started = true;
                        return Ok(Some(FormEvent::FileStart {
                            filename: part.filename.unwrap_or_default(),
                            content_type: part.content_type,
                        }));
                    }
                    self.state = State::FieldValue { name: part.name };
                }
                State::FieldValue { name } => {
                    let Some(at) = find(&self.buf, &self.delimiter) else {
                        self.state = State::FieldValue { name };
                        return self.need_more();
                    };
                    let value = self.take(at);
                    self.take(self.delimiter.len());
                    self.state = State::AfterBoundary;
                    let value = String::from_utf8(value.to_vec())
                        .map_err(|_| FormError::Malformed("a form field is not UTF-8"))?;
                    return Ok(Some(FormEvent::Field { name, value }));
                }
                State::FileData => {
                    if let Some(at) = find(&self.buf, &self.delimiter) {
                        if at > 0 {
                            self.state = State::FileData;
                            return Ok(Some(FormEvent::FileData(self.buf.split_to(at).freeze())));
                        }
                        self.buf.clear();
                        self.state = State::Done { file_seen: true };
                        return Ok(Some(FormEvent::FileEnd));
                    }
                    // Everything but what could be the start of the next boundary is file data.
                    let keep = self.delimiter.len() - 1;
                    self.state = State::FileData;
                    if self.buf.len() > keep {
                        let n = self.buf.len() - keep;
                        return Ok(Some(FormEvent::FileData(self.buf.split_to(n).freeze())));
                    }
                    return Ok(None);
                }
                done @ State::Done { .. } => {
                    self.state = done;
                    self.buf.clear();
                    return Ok(None);
                }
            }
        }
    }

    /// At the end of the body: whether the file arrived whole.
    pub fn finish(&self) -> Result<(), FormError> {
        match self.state {
            State::Done { file_seen: true } => Ok(()),
            State::FileData => Err(FormError::Malformed("the body ended inside the file part")),
            _ => Err(FormError::Malformed("the body ended before the file part")),
        }
    }

    /// More bytes are needed. Before the file, every byte buffered belongs to the unfinished
    /// header or field, so the buffer counts against the cap already.
    fn need_more(&self) -> Result<Option<FormEvent>, FormError> {
        if !self.file_started && self.pre_file.saturating_add(self.buf.len()) > MAX_PRE_FILE_BYTES + 2 {
            return Err(FormError::PreFileTooLarge);
        }
        Ok(None)
    }

    fn take(&mut self, n: usize) -> Bytes {
        let n = n.min(self.buf.len());
        if !self.file_started {
            self.pre_file = self.pre_file.saturating_add(n);
        }
        self.buf.split_to(n).freeze()
    }
}

/// What a part's headers say about it.
#[derive(Debug, PartialEq, Eq)]
struct PartHeaders {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
}

fn parse_part_headers(head: &[u8]) -> Result<PartHeaders, FormError> {
    let text = std::str::from_utf8(head).map_err(|_| FormError::Malformed("part headers are not UTF-8"))?;
    let mut disposition = None;
    let mut content_type = None;
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or(FormError::Malformed("a part header has no ':'"))?;
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("content-disposition") {
            disposition = Some(value);
        } else if name.trim().eq_ignore_ascii_case("content-type") {
            content_type = Some(value.to_string());
        }
    }
    let disposition = disposition.ok_or(FormError::Malformed("a part has no Content-Disposition"))?;
    let mut params = split_params(disposition);
    let kind = params.next().unwrap_or_default();
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(FormError::Malformed("a part is not form-data"));
    }
    let mut name = None;
    let mut filename = None;
    for param in params {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        let value = unquote(value.trim());
        match key.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(value),
            "filename" => filename = Some(value),
            _ => {}
        }
    }
    Ok(PartHeaders {
        name: name.ok_or(FormError::Malformed("a part has no name"))?,
        filename,
        content_type,
    })
}

/// `form-data; name="a;b"; filename="x"` split at the `;` outside quotes.
fn split_params(value: &str) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts.into_iter()
}

/// A parameter value without its quotes; browsers escape `"` and `\` with a backslash.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_string();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while let Some(i) = haystack.get(from..)?.iter().position(|b| *b == first) {
        let at = from + i;
        if haystack.get(at..at + needle.len()) == Some(needle) {
            return Some(at);
        }
        if at + needle.len() > haystack.len() {
            return None;
        }
        from = at + 1;
    }
    None
}

/// The boundary of a `multipart/form-data` `Content-Type`, if that is what it is.
pub fn boundary_of(content_type: &str) -> Option<String> {
    let mut params = split_params(content_type);
    let kind = params.next()?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let boundary = params.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| unquote(v.trim()))
    })?;
    // RFC 2046 §5.1.1: 1 to 70 characters.
    (!boundary.is_empty() && boundary.len() <= 70).then_some(boundary)
}

/// Parses a whole form given in `pieces` (tests and fuzzing): every event, or the first error.
pub fn parse_all(boundary: &str, pieces: &[&[u8]]) -> Result<Vec<FormEvent>, FormError> {
    let mut parser = FormParser::new(boundary);
    let mut events = Vec::new();
    for piece in pieces {
        parser.push(piece);
        while let Some(event) = parser.next_event()? {
            events.push(event);
        }
    }
    parser.finish()?;
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn form(fields: &[(&str, &str)], file: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in fields {
            out.extend_from_slice(
                format!("--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
            );
        }
        out.extend_from_slice(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b.txt\"\r\nContent-Type: text/plain\r\n\r\n",
        );
        out.extend_from_slice(file);
        out.extend_from_slice(
            b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"after\"\r\n\r\nignored\r\n--XyZ--\r\n",
        );
        out
    }

    /// The form as a reader sees it, the file's pieces joined.
    #[derive(Debug, Default)]
    struct ReadForm {
        fields: Vec<(String, String)>,
        filename: Option<String>,
        data: Vec<u8>,
        ended: bool,
    }

    fn joined(events: Vec<FormEvent>) -> ReadForm {
        let mut read = ReadForm::default();
        for e in events {
            match e {
                FormEvent::Field { name, value } => read.fields.push((name, value)),
                FormEvent::FileStart { filename, .. } => read.filename = Some(filename),
                FormEvent::FileData(b) => read.data.extend_from_slice(&b),
                FormEvent::FileEnd => read.ended = true,
            }
        }
        read
    }

    #[test]
    fn fields_then_the_file_and_nothing_after_it() {
        let body = form(
            &[("key", "k/${filename}"), ("Policy", "abc")],
            b"hello\r\n--Xy not a boundary",
        );
        let ReadForm {
            fields,
            filename,
            data,
            ended,
        } = joined(parse_all("XyZ", &[&body]).unwrap());
        assert_eq!(
            fields,
            vec![("key".into(), "k/${filename}".into()), ("Policy".into(), "abc".into())]
        );
        assert_eq!(filename.as_deref(), Some("a b.txt"));
        assert_eq!(data, b"hello\r\n--Xy not a boundary");
        assert!(ended);
    }

    #[test]
    fn fields_before_the_file_are_capped() {
        let big = "x".repeat(MAX_PRE_FILE_BYTES);
        let body = form(&[("x-ignore-pad", &big)], b"data");
        assert_eq!(parse_all("XyZ", &[&body]), Err(FormError::PreFileTooLarge));
        // A file of any size is not the fields' cap.
        let body = form(&[("key", "k")], &vec![7u8; 3 * MAX_PRE_FILE_BYTES]);
        assert!(parse_all("XyZ", &[&body]).is_ok());
    }

    #[test]
    fn a_body_cut_inside_the_file_or_without_one_is_malformed() {
        let body = form(&[("key", "k")], b"data");
        let cut = &body[..body.len() - 77];
        assert!(matches!(parse_all("XyZ", &[cut]), Err(FormError::Malformed(_))));
        let no_file = b"--XyZ\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nk\r\n--XyZ--\r\n";
        assert!(matches!(parse_all("XyZ", &[no_file]), Err(FormError::Malformed(_))));
        assert!(matches!(parse_all("XyZ", &[b""]), Err(FormError::Malformed(_))));
    }

    #[test]
    fn boundaries_are_read_from_the_content_type() {
        assert_eq!(
            boundary_of("multipart/form-data; boundary=----WebKitFormBoundary7"),
            Some("----WebKitFormBoundary7".into())
        );
        assert_eq!(boundary_of("Multipart/Form-Data; boundary=\"a b\""), Some("a b".into()));
        assert_eq!(boundary_of("multipart/mixed; boundary=x"), None);
        assert_eq!(boundary_of("multipart/form-data"), None);
        assert_eq!(
            boundary_of(&format!("multipart/form-data; boundary={}", "b".repeat(71))),
            None
        );
    }

    #[test]
    fn quoted_names_keep_semicolons_and_escapes() {
        let part =
            parse_part_headers(b"Content-Disposition: form-data; name=\"a;b\"; filename=\"c\\\"d.txt\"").unwrap();
        assert_eq!(part.name, "a;b");
        assert_eq!(part.filename.as_deref(), Some("c\"d.txt"));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// However the body is cut into pieces, the parser reads the same form.
        #[test]
        fn any_split_of_the_body_reads_the_same_form(
            file in proptest::collection::vec(any::<u8>(), 0..3000),
            value in "[ -~]{0,200}",
            cuts in proptest::collection::vec(0usize..4000, 0..12),
        ) {
            let body = form(&[("key", &value), ("acl", "private")], &file);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (body.len() + 1)).collect();
            cuts.sort_unstable();
            let mut pieces: Vec<&[u8]> = Vec::new();
            let mut from = 0;
            for c in cuts {
                pieces.push(&body[from..c]);
                from = c;
            }
            pieces.push(&body[from..]);
            let ReadForm { fields, data, ended, .. } = joined(parse_all("XyZ", &pieces).unwrap());
            prop_assert_eq!(fields, vec![("key".to_string(), value), ("acl".to_string(), "private".to_string())]);
            prop_assert_eq!(data, file);
            prop_assert!(ended);
        }

        /// Arbitrary bytes never panic the parser, and it never holds more than the cap before a file.
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = parse_all("XyZ", &[&body]);
        }
    }
}
