//! ListObjectsV2 served through ListObjects (v1), for providers that do not serve V2
//! (docs/dialects.md rule 22; rclone lists Ceph, COS and OBS with `list_version: 1`).
//!
//! The request goes to the provider as V1: `continuation-token` (a token s3ferry wrote) or else
//! `start-after` becomes `marker`. The provider's V1 answer is rewritten into V2: `Marker` and
//! `NextMarker` go; `KeyCount`, the echoed `ContinuationToken` and `StartAfter` and, when the page
//! is truncated, a `NextContinuationToken` are added; `<Owner>` stays only for `fetch-owner=true`.
//!
//! The token holds the decoded position V1 resumes after, in the same form as the merged
//! listing's tokens ([`encode_token`]): the provider's `NextMarker` when it sends one, else the
//! page's last key or last common prefix, whichever sorts last (AWS sends `NextMarker` only
//! with a delimiter). s3ferry's own listings of such a provider (lazy migration) go the same
//! way: [`into_v1_query`] on the way out, [`continue_v1_page`] on the way back.

use quick_xml::events::{BytesText, Event};
use quick_xml::{Reader, Writer};

use super::RewriteError;
use super::list_objects::{ListPage, decode_token, encode_token, parse_list_page};
use crate::s3::encoding::{decode_query_component, uri_encode};

/// ListObjectsV2 parameters a V1 provider does not know (or would misread).
const V2_ONLY_PARAMS: &[&str] = &[
    "list-type",
    "continuation-token",
    "start-after",
    "fetch-owner",
    "marker",
];

/// Top-level elements of the provider's answer that do not reach the client: V1 pagination,
/// and the V2 fields s3ferry writes itself (in case the provider sent some anyway).
const REPLACED_ELEMENTS: &[&[u8]] = &[
    b"Marker",
    b"NextMarker",
    b"KeyCount",
    b"ContinuationToken",
    b"NextContinuationToken",
    b"StartAfter",
];

/// What the provider's V1 answer needs to become the client's V2 answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V2Request {
    /// Echoed as `ContinuationToken`.
    pub continuation_token: Option<String>,
    /// Echoed as `StartAfter`.
    pub start_after: Option<String>,
    /// `fetch-owner=true`: V1 lists owners by default, V2 only when asked.
    pub fetch_owner: bool,
    /// `encoding-type=url` went to the provider, so its key fields come back URL-encoded.
    pub encoded_by_provider: bool,
}

/// A `continuation-token` that s3ferry did not write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("The continuation token provided is incorrect")]
pub struct InvalidContinuationToken;

/// Rewrites a ListObjectsV2 query (as it will be sent to the provider) into the ListObjects
/// (v1) query for the same page; `prefix`, `delimiter`, `max-keys` and `encoding-type` stay.
pub fn into_v1_query(query: &mut Vec<(String, String)>) -> Result<V2Request, InvalidContinuationToken> {
    let get = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let request = V2Request {
        continuation_token: get("continuation-token"),
        start_after: get("start-after").filter(|s| !s.is_empty()),
        fetch_owner: get("fetch-owner").is_some_and(|v| v.eq_ignore_ascii_case("true")),
        encoded_by_provider: get("encoding-type").as_deref() == Some("url"),
    };
    // As on AWS, a continuation token wins over start-after.
    let marker = match &request.continuation_token {
        Some(token) => Some(decode_token(token).ok_or(InvalidContinuationToken)?),
        None => request.start_after.clone(),
    };
    query.retain(|(name, _)| !V2_ONLY_PARAMS.contains(&name.as_str()));
    if let Some(marker) = marker {
        query.push(("marker".into(), marker));
    }
    Ok(request)
}

/// Rewrites the provider's V1 `<ListBucketResult>` into the V2 answer to `request`, copying
/// everything else as it came.
pub fn into_v2_answer(xml: &[u8], request: &V2Request) -> Result<Vec<u8>, RewriteError> {
    let page = parse_list_page(xml)?;
    let key_count = page.objects.len() + page.common_prefixes.len();
    let resume_after = if page.is_truncated {
        Some(resume_point(&page, request.encoded_by_provider)?)
    } else {
        None
    };
    let mut reader = Reader::from_reader(xml);
    let mut writer = Writer::new(Vec::with_capacity(xml.len() + 256));
    let mut buf = Vec::new();
    let mut path: Vec<Vec<u8>> = Vec::new();
    // The depth of the element being left out, while inside it.
    let mut dropping: Option<usize> = None;
    loop {
        let event = reader.read_event_into(&mut buf)?;
        let copy = match &event {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => {
                let drop = dropping.is_some() || is_dropped(&path, e.local_name().as_ref(), request.fetch_owner);
                if matches!(event, Event::Start(_)) {
                    path.push(e.local_name().as_ref().to_vec());
                    if drop && dropping.is_none() {
                        dropping = Some(path.len());
                    }
                }
                !drop
            }
            Event::End(_) => {
                let closing = path.len();
                path.pop();
                if dropping.is_some() {
                    if dropping == Some(closing) {
                        dropping = None;
                    }
                    false
                } else {
                    if path.is_empty() {
                        write_v2_fields(&mut writer, request, key_count, resume_after.as_deref())
                            .map_err(|e| RewriteError(e.to_string()))?;
                    }
                    true
                }
            }
            _ => dropping.is_none(),
        };
        if copy {
            writer
                .write_event(event.borrow())
                .map_err(|e| RewriteError(e.to_string()))?;
        }
        buf.clear();
    }
    Ok(writer.into_inner())
}

/// Whether the element `name`, opening under `path`, is left out of the V2 answer.
fn is_dropped(path: &[Vec<u8>], name: &[u8], fetch_owner: bool) -> bool {
    match path {
        [_root] => REPLACED_ELEMENTS.contains(&name),
        [_root, parent] => name == b"Owner" && parent.as_slice() == b"Contents" && !fetch_owner,
        _ => false,
    }
}

/// Gives a V1 page read by s3ferry itself (lazy migration's listings, `migrate`, `check`) the
/// continuation V1 lacks: when the page is truncated, `next_continuation_token` becomes the
/// token [`into_v1_query`] turns back into the marker V1 resumes after. s3ferry never asks
/// for `encoding-type=url` on its own listings, so the page's names are raw.
pub fn continue_v1_page(page: &mut ListPage) -> Result<(), RewriteError> {
    page.next_continuation_token = if page.is_truncated {
        Some(encode_token(&resume_point(page, false)?))
    } else {
        None
    };
    Ok(())
}

/// Where V1 resumes after this truncated page, decoded.
fn resume_point(page: &ListPage, encoded: bool) -> Result<String, RewriteError> {
    let decode = |text: &str| {
        if encoded {
            decode_query_component(text)
        } else {
            text.to_string()
        }
    };
    if let Some(marker) = page.next_marker.as_deref().filter(|m| !m.is_empty()) {
        return Ok(decode(marker));
    }
    let last_key = page.objects.last().map(|o| decode(&o.key));
    let last_prefix = page.common_prefixes.last().map(|p| decode(p));
    last_key
        .max(last_prefix)
        .ok_or_else(|| RewriteError("the provider's V1 listing is truncated but names nothing to resume after".into()))
}

/// The V2 fields V1 does not have, written just before `</ListBucketResult>`.
fn write_v2_fields(
    writer: &mut Writer<Vec<u8>>,
    request: &V2Request,
    key_count: usize,
    resume_after: Option<&str>,
) -> std::io::Result<()> {
    let mut field = |name: &str, value: &str| {
        writer
            .create_element(name)
            .write_text_content(BytesText::new(value))
            .map(|_| ())
    };
    field("KeyCount", &key_count.to_string())?;
    if let Some(token) = &request.continuation_token {
        field("ContinuationToken", token)?;
    }
    if let Some(start_after) = &request.start_after {
        // Written the way the provider wrote the keys; when s3ferry encodes listings itself it
        // encodes StartAfter together with them.
        if request.encoded_by_provider {
            field("StartAfter", &uri_encode(start_after.as_bytes(), true))?;
        } else {
            field("StartAfter", start_after)?;
        }
    }
    if let Some(position) = resume_after {
        field("NextContinuationToken", &encode_token(position))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::xml_fixture as fixture;

    /// Keys that break naive encodings: space, `+`, `%`, `&`, non-ASCII, `<`, `/`.
    const AWKWARD_KEYS: &[&str] = &["a b", "a+b", "a%2Fb", "ü/x", "x&y", "z<1", "dir/sub/k"];

    /// `<case>.upstream.xml` (a V1 answer) rewritten for `request` equals `<case>.client.xml`.
    fn golden(case: &str, request: &V2Request) {
        let out = into_v2_answer(&fixture(&format!("{case}.upstream.xml")), request).expect("rewrites");
        let expected = String::from_utf8(fixture(&format!("{case}.client.xml"))).expect("utf8");
        assert_eq!(String::from_utf8(out).expect("utf8"), expected, "case {case}");
    }

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn a_truncated_page_without_delimiter_resumes_after_its_last_key_and_drops_owners() {
        golden(
            "v1-list-truncated",
            &V2Request {
                start_after: Some("a b".into()),
                ..V2Request::default()
            },
        );
        assert_eq!(decode_token(&encode_token("a+b")).as_deref(), Some("a+b"));
    }

    #[test]
    fn a_delimited_page_resumes_from_next_marker_and_counts_common_prefixes() {
        golden(
            "v1-list-delimiter",
            &V2Request {
                continuation_token: Some(encode_token("a b")),
                ..V2Request::default()
            },
        );
    }

    #[test]
    fn provider_encoded_markers_are_decoded_into_the_token() {
        let request = V2Request {
            start_after: Some("a b".into()),
            encoded_by_provider: true,
            ..V2Request::default()
        };
        golden("v1-list-encoded", &request);
        let out = into_v2_answer(&fixture("v1-list-encoded.upstream.xml"), &request).expect("rewrites");
        let page = parse_list_page(&out).expect("parses");
        let token = page.next_continuation_token.expect("truncated");
        assert_eq!(decode_token(&token).as_deref(), Some("a+b c/"));
    }

    #[test]
    fn fetch_owner_keeps_owners_and_a_complete_page_has_no_next_token() {
        golden(
            "v1-list-fetch-owner",
            &V2Request {
                fetch_owner: true,
                ..V2Request::default()
            },
        );
    }

    #[test]
    fn without_next_marker_the_later_of_last_key_and_last_prefix_is_the_resume_point() {
        let xml = b"<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a</Key></Contents><CommonPrefixes><Prefix>b/</Prefix></CommonPrefixes></ListBucketResult>";
        let out = into_v2_answer(xml, &V2Request::default()).expect("rewrites");
        let token = parse_list_page(&out)
            .expect("parses")
            .next_continuation_token
            .expect("token");
        assert_eq!(decode_token(&token).as_deref(), Some("b/"));
        let nothing = b"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>";
        assert!(into_v2_answer(nothing, &V2Request::default()).is_err());
    }

    #[test]
    fn a_v1_page_read_by_s3ferry_continues_from_its_next_marker_or_last_entry() {
        let mut page = parse_list_page(
            b"<ListBucketResult><IsTruncated>true</IsTruncated><NextMarker>opaque</NextMarker><Contents><Key>a</Key></Contents></ListBucketResult>",
        )
        .expect("parses");
        continue_v1_page(&mut page).expect("continues");
        let mut next = query(&[(
            "continuation-token",
            page.next_continuation_token.as_deref().unwrap_or(""),
        )]);
        into_v1_query(&mut next).expect("our token");
        assert_eq!(
            next,
            query(&[("marker", "opaque")]),
            "the provider's NextMarker, as it came"
        );

        page.next_marker = None;
        page.common_prefixes = vec!["b/".into()];
        continue_v1_page(&mut page).expect("continues");
        assert_eq!(
            page.next_continuation_token
                .as_deref()
                .and_then(decode_token)
                .as_deref(),
            Some("b/")
        );

        page.is_truncated = false;
        continue_v1_page(&mut page).expect("continues");
        assert_eq!(page.next_continuation_token, None, "a complete page ends the listing");
    }

    #[test]
    fn tokens_round_trip_awkward_keys_through_the_v1_marker() {
        for key in AWKWARD_KEYS {
            let token = encode_token(key);
            assert!(
                token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_:".contains(&b)),
                "{token}"
            );
            let mut q = query(&[("list-type", "2"), ("continuation-token", &token)]);
            into_v1_query(&mut q).expect("valid token");
            assert_eq!(q, query(&[("marker", key)]), "{key:?}");
        }
    }

    #[test]
    fn v2_parameters_become_v1_and_the_rest_stays() {
        let mut q = query(&[
            ("list-type", "2"),
            ("prefix", "p/"),
            ("delimiter", "/"),
            ("max-keys", "2"),
            ("encoding-type", "url"),
            ("start-after", "p/a b"),
            ("fetch-owner", "true"),
        ]);
        let request = into_v1_query(&mut q).expect("translates");
        assert_eq!(
            q,
            query(&[
                ("prefix", "p/"),
                ("delimiter", "/"),
                ("max-keys", "2"),
                ("encoding-type", "url"),
                ("marker", "p/a b"),
            ])
        );
        assert_eq!(
            request,
            V2Request {
                continuation_token: None,
                start_after: Some("p/a b".into()),
                fetch_owner: true,
                encoded_by_provider: true,
            }
        );
    }

    #[test]
    fn a_continuation_token_wins_over_start_after() {
        let mut q = query(&[
            ("list-type", "2"),
            ("start-after", "a"),
            ("continuation-token", &encode_token("m")),
        ]);
        let request = into_v1_query(&mut q).expect("translates");
        assert_eq!(q, query(&[("marker", "m")]));
        assert_eq!(request.start_after.as_deref(), Some("a"));
        let mut first_page = query(&[("list-type", "2")]);
        into_v1_query(&mut first_page).expect("translates");
        assert!(first_page.is_empty());
    }

    #[test]
    fn tokens_s3ferry_did_not_write_are_refused() {
        for bad in ["", "garbage", "s3ferry1:***", "s3ferry1:_w"] {
            let mut q = query(&[("list-type", "2"), ("continuation-token", bad)]);
            assert_eq!(into_v1_query(&mut q), Err(InvalidContinuationToken), "{bad:?}");
        }
    }
}
