//! Property tests for every rewriter, on generated well-formed provider documents: the elements
//! a rewriter edits, surrounded by arbitrary other elements, attributes, comments, CDATA and
//! text (unicode, markup characters, whitespace). Each rewriter must copy everything it does not
//! edit: its output, read back as XML events, is its input's events with only the documented
//! edits. And no rewriter or parser may panic on any bytes at all.
//!
//! Case counts stay small so `cargo test` stays fast; `fuzz/` runs the same entry points for
//! minutes at a time.

use proptest::prelude::*;
use quick_xml::Reader;
use quick_xml::escape::escape;
use quick_xml::events::Event;

use super::list_objects::{decode_token, parse_list_page};
use super::list_v2_via_v1::V2Request;
use crate::checksum::ChecksumAlgorithm;
use crate::dialect::{DialectProfile, builtin};
use crate::s3::encoding::{percent_decode, uri_encode};

/// Names of leaf elements some rewriter edits, or that steer one (`IsTruncated`, `Owner`...).
const LEAF_NAMES: &[&str] = &[
    "Name",
    "Bucket",
    "BucketName",
    "Location",
    "ETag",
    "StorageClass",
    "Code",
    "Key",
    "Prefix",
    "Delimiter",
    "StartAfter",
    "Marker",
    "NextMarker",
    "KeyMarker",
    "NextKeyMarker",
    "EncodingType",
    "ChecksumCRC32",
    "ChecksumCRC64NVME",
    "ChecksumSHA256",
    "Size",
    "Message",
];

/// Names of the other elements: none is edited by any rewriter, so all of them must survive.
const OTHER_NAMES: &[&str] = &["Extra", "x-custom", "ns:Thing", "Meta", "A", "Part", "Grant"];

/// The bucket the bucket-name rewriter maps back, and the client's name for it.
const UPSTREAM_BUCKET: &str = "photos-2017";
const CLIENT_BUCKET: &str = "photos";

/// Text that rewriters meet: arbitrary unicode with markup characters, and values they edit.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[ a-zA-Z0-9<>&\"'%+/=.\n\t\u{e9}\u{4e2d}\u{1f600}-]{0,12}",
        1 => Just(UPSTREAM_BUCKET.to_string()),
        1 => Just(format!("https://{UPSTREAM_BUCKET}.s3.example.com/{UPSTREAM_BUCKET}/a+b")),
        1 => Just("\"9BB58F26192E4BA00F01E2E7B136BBD8\"".to_string()),
        1 => prop_oneof![Just("IA"), Just("Archive"), Just("STANDARD"), Just("NoSuchBucket")].prop_map(String::from),
        1 => prop_oneof![Just("true"), Just("false")].prop_map(String::from),
    ]
}

fn attrs() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("[a-z][a-z0-9]{0,4}", "[ a-z<>&\"'\u{e9}]{0,6}"), 0..2).prop_map(|mut v| {
        // Attribute names are unique per element in well-formed XML.
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        v
    })
}

/// One piece of generated content, rendered straight to XML.
fn leaf() -> impl Strategy<Value = String> {
    (prop::sample::select(LEAF_NAMES), text())
        .prop_map(|(name, text)| format!("<{name}>{}</{name}>", escape(text.as_str())))
}

fn misc() -> impl Strategy<Value = String> {
    prop_oneof![
        text().prop_map(|t| escape(t.as_str()).into_owned()),
        "[a-z ]{0,8}".prop_map(|c| format!("<!--{c}-->")),
        "[a-z <>&]{0,8}".prop_map(|c| format!("<![CDATA[{c}]]>")),
        (prop::sample::select(OTHER_NAMES), attrs()).prop_map(|(n, a)| format!("<{n}{}/>", render_attrs(&a))),
    ]
}

fn render_attrs(attrs: &[(String, String)]) -> String {
    attrs
        .iter()
        .map(|(k, v)| format!(" {k}=\"{}\"", escape(v.as_str())))
        .collect()
}

/// Content: leaves and misc pieces, nested in other elements up to a few levels.
fn content() -> impl Strategy<Value = String> {
    let piece = prop_oneof![leaf(), misc()];
    piece.prop_recursive(3, 24, 5, |inner| {
        (
            prop::sample::select(OTHER_NAMES),
            attrs(),
            prop::collection::vec(inner, 0..5),
        )
            .prop_map(|(name, attrs, children)| {
                format!("<{name}{}>{}</{name}>", render_attrs(&attrs), children.concat())
            })
    })
}

/// A whole document: optional declaration, one root element holding generated content.
fn document(root: &'static str, body: impl Strategy<Value = Vec<String>>) -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), attrs(), body).prop_map(move |(decl, attrs, children)| {
        let decl = if decl {
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        } else {
            ""
        };
        format!("{decl}<{root}{}>{}</{root}>", render_attrs(&attrs), children.concat()).into_bytes()
    })
}

fn any_document() -> impl Strategy<Value = Vec<u8>> {
    document("Result", prop::collection::vec(content(), 0..8))
}

/// A ListObjects V1 page: the fields the V2 rewrite drops or reads, with other content mixed in.
fn v1_listing() -> impl Strategy<Value = Vec<u8>> {
    let top_leaf = (
        prop::sample::select(
            &[
                "Name",
                "Prefix",
                "Marker",
                "NextMarker",
                "KeyCount",
                "ContinuationToken",
                "StartAfter",
                "MaxKeys",
            ][..],
        ),
        text(),
    )
        .prop_map(|(name, text)| format!("<{name}>{}</{name}>", escape(text.as_str())));
    let truncated = any::<bool>().prop_map(|t| format!("<IsTruncated>{t}</IsTruncated>"));
    let owner = "[a-z0-9]{0,6}".prop_map(|id| format!("<Owner><ID>{id}</ID><DisplayName>d</DisplayName></Owner>"));
    let contents =
        (text(), prop::option::of(owner), prop::collection::vec(misc(), 0..2)).prop_map(|(key, owner, misc)| {
            format!(
                "<Contents><Key>{}</Key><ETag>\"e\"</ETag>{}{}</Contents>",
                escape(key.as_str()),
                owner.unwrap_or_default(),
                misc.concat()
            )
        });
    let prefix = text().prop_map(|p| {
        format!(
            "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
            escape(p.as_str())
        )
    });
    let child = prop_oneof![top_leaf, truncated, contents, prefix, content()];
    document("ListBucketResult", prop::collection::vec(child, 0..8))
}

/// An XML event, compared by meaning: names, unescaped text and attribute values.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Start(String, Vec<(String, String)>),
    Empty(String, Vec<(String, String)>),
    End(String),
    Text(String),
    /// Comments, CDATA, declarations: compared as they were written.
    Other(String),
}

impl Ev {
    fn name(&self) -> Option<&str> {
        match self {
            Ev::Start(n, _) | Ev::Empty(n, _) | Ev::End(n) => Some(local(n)),
            _ => None,
        }
    }
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

fn events(xml: &[u8]) -> Vec<Ev> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let name_and_attrs = |e: &quick_xml::events::BytesStart<'_>| {
        let attrs = e
            .attributes()
            .map(|a| {
                let a = a.expect("attribute");
                let value = a.unescape_value().expect("attribute value").into_owned();
                (String::from_utf8_lossy(a.key.as_ref()).into_owned(), value)
            })
            .collect();
        (String::from_utf8_lossy(e.name().as_ref()).into_owned(), attrs)
    };
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .unwrap_or_else(|e| panic!("does not parse ({e}): {}", String::from_utf8_lossy(xml)));
        out.push(match &event {
            Event::Eof => break,
            Event::Start(e) => {
                let (n, a) = name_and_attrs(e);
                Ev::Start(n, a)
            }
            Event::Empty(e) => {
                let (n, a) = name_and_attrs(e);
                Ev::Empty(n, a)
            }
            Event::End(e) => Ev::End(String::from_utf8_lossy(e.name().as_ref()).into_owned()),
            Event::Text(t) => Ev::Text(t.unescape().expect("text").into_owned()),
            other => Ev::Other(format!("{other:?}")),
        });
        buf.clear();
    }
    out
}

/// The input's events with the text of each element edited as `edit(element, text)` says (the
/// element being the innermost one opened and not closed since, as the rewriters track it).
fn edit_texts(input: &[Ev], edit: impl Fn(&str, &str) -> Option<String>) -> Vec<Ev> {
    let mut current: Option<String> = None;
    input
        .iter()
        .map(|ev| match ev {
            Ev::Start(..) => {
                current = ev.name().map(str::to_string);
                ev.clone()
            }
            Ev::End(_) => {
                current = None;
                ev.clone()
            }
            Ev::Text(t) => match current.as_deref().and_then(|c| edit(c, t)) {
                Some(new) => Ev::Text(new),
                None => ev.clone(),
            },
            _ => ev.clone(),
        })
        .collect()
}

/// The input's events without the elements (and everything inside them) that `dropped(path,
/// name)` picks; `path` holds the names of the open ancestors.
fn drop_subtrees(input: &[Ev], dropped: impl Fn(&[String], &str) -> bool) -> Vec<Ev> {
    let mut path: Vec<String> = Vec::new();
    let mut skipping: Option<usize> = None;
    let mut out = Vec::new();
    for ev in input {
        match ev {
            Ev::Start(..) => {
                let name = ev.name().unwrap_or_default().to_string();
                if skipping.is_none() && dropped(&path, &name) {
                    skipping = Some(path.len());
                }
                path.push(name);
                if skipping.is_none() {
                    out.push(ev.clone());
                }
            }
            Ev::End(_) => {
                path.pop();
                if skipping.is_none() {
                    out.push(ev.clone());
                } else if skipping == Some(path.len()) {
                    skipping = None;
                }
            }
            Ev::Empty(..) if skipping.is_none() && dropped(&path, ev.name().unwrap_or_default()) => {}
            _ if skipping.is_some() => {}
            // Text on both sides of a dropped element is one text once written out, so the
            // expected events join it as a parser reading the rewritten bytes does.
            Ev::Text(text) => match out.last_mut() {
                Some(Ev::Text(before)) => before.push_str(text),
                _ => out.push(ev.clone()),
            },
            _ => out.push(ev.clone()),
        }
    }
    out
}

fn oss() -> DialectProfile {
    builtin("oss").expect("oss")
}

fn garage() -> DialectProfile {
    builtin("garage").expect("garage")
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES runs more for a longer search; CI runs 256.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_rewriter_or_parser_panics_on_any_bytes(xml in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        // Generated documents with a few bytes overwritten: near-valid input reaches deeper.
        (any_document(), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4)).prop_map(|(mut d, edits)| {
            for (at, byte) in edits {
                if !d.is_empty() {
                    let i = at.index(d.len());
                    d[i] = byte;
                }
            }
            d
        }),
    ]) {
        let v2 = V2Request { fetch_owner: true, ..V2Request::default() };
        for output in [
            super::bucket_names::rewrite_bucket_names(&xml, UPSTREAM_BUCKET, CLIENT_BUCKET).ok(),
            super::provider_values::rewrite_response(&xml, &oss()).ok(),
            super::provider_values::rewrite_complete_multipart_request(&xml, &garage()).ok(),
            super::listing_encoding::encode_listing_keys(&xml, true).ok(),
            super::list_v2_via_v1::into_v2_answer(&xml, &v2).ok(),
        ]
        .into_iter()
        .flatten()
        {
            // What a rewriter returns goes to a client's parser next.
            prop_assert!(super::check_parses(&output).is_ok(), "rewritten XML does not parse");
        }
        let _ = super::delete_objects::parse_delete_keys(&xml);
        let _ = super::delete_objects::parse_delete_result(&xml);
        let _ = super::list_buckets::parse_list_buckets(&xml);
        let _ = super::list_objects::parse_list_page(&xml);
        let _ = super::tagging::parse_tag_set(&xml);
        let _ = super::acl::parse_access_control_policy(&xml);
        let _ = crate::error::parse_error_code(&xml);
    }

    #[test]
    fn bucket_names_edit_only_the_renamed_bucket(xml in any_document()) {
        let out = super::bucket_names::rewrite_bucket_names(&xml, UPSTREAM_BUCKET, CLIENT_BUCKET).expect("rewrites");
        let expected = edit_texts(&events(&xml), |element, text| match element {
            "Name" | "Bucket" | "BucketName" => (text == UPSTREAM_BUCKET).then(|| CLIENT_BUCKET.to_string()),
            "Location" => Some(
                text.replacen(&format!("/{UPSTREAM_BUCKET}/"), &format!("/{CLIENT_BUCKET}/"), 1)
                    .replacen(&format!("://{UPSTREAM_BUCKET}."), &format!("://{CLIENT_BUCKET}."), 1),
            ),
            _ => None,
        });
        prop_assert_eq!(events(&out), expected);
    }

    #[test]
    fn provider_values_edit_only_etags_storage_classes_and_error_codes(xml in any_document()) {
        let profile = oss();
        let out = super::provider_values::rewrite_response(&xml, &profile).expect("rewrites");
        let expected = edit_texts(&events(&xml), |element, text| match element {
            "ETag" => Some(profile.client_etag(text)),
            "StorageClass" => Some(profile.client_storage_class(text).to_string()),
            "Code" => profile.error_mapping(text).map(|m| m.aws_code.clone()),
            _ => None,
        });
        prop_assert_eq!(events(&out), expected);
    }

    #[test]
    fn one_client_view_pass_writes_what_the_three_rewriters_in_turn_write(
        xml in any_document(),
        rename in any::<bool>(),
        values in any::<bool>(),
        encode in prop::option::of(any::<bool>()),
    ) {
        use super::client_view::{ClientView, EncodeKeys, rewrite_for_client};
        let profile = oss();
        let view = ClientView {
            rename: rename.then_some((UPSTREAM_BUCKET, CLIENT_BUCKET)),
            values: values.then_some(&profile),
            encode_keys: encode.map(|declare| EncodeKeys { declare }),
        };
        let one_pass = rewrite_for_client(&xml, &view).expect("rewrites");
        let mut in_turn = xml.clone();
        if rename {
            in_turn = super::bucket_names::rewrite_bucket_names(&in_turn, UPSTREAM_BUCKET, CLIENT_BUCKET).expect("rewrites");
        }
        if values {
            in_turn = super::provider_values::rewrite_response(&in_turn, &profile).expect("rewrites");
        }
        if let Some(declare) = encode {
            in_turn = super::listing_encoding::encode_listing_keys(&in_turn, declare).expect("rewrites");
        }
        // Byte for byte, not only as events: the client sees exactly what the passes wrote.
        prop_assert_eq!(String::from_utf8_lossy(&one_pass), String::from_utf8_lossy(&in_turn));
    }

    #[test]
    fn complete_multipart_requests_keep_all_but_part_etags_and_foreign_checksums(xml in any_document()) {
        let profile = garage();
        let out = super::provider_values::rewrite_complete_multipart_request(&xml, &profile).expect("rewrites");
        let unsupported: Vec<String> = ChecksumAlgorithm::ALL
            .into_iter()
            .filter(|a| !profile.checksum_algorithms.contains(a))
            .map(|a| format!("Checksum{}", a.name().to_ascii_uppercase()))
            .collect();
        prop_assert!(!unsupported.is_empty(), "garage lacks some algorithm, so dropping is exercised");
        let edited = edit_texts(&events(&xml), |element, text| (element == "ETag").then(|| profile.provider_etag(text)));
        let expected = drop_subtrees(&edited, |_, name| unsupported.iter().any(|u| u == name));
        prop_assert_eq!(events(&out), expected);
    }

    #[test]
    fn listing_encoding_encodes_key_fields_reversibly_and_copies_the_rest(xml in any_document(), declare in any::<bool>()) {
        const ENCODED: &[&str] = &["Key", "Prefix", "Delimiter", "StartAfter", "Marker", "NextMarker", "KeyMarker", "NextKeyMarker"];
        let out = super::listing_encoding::encode_listing_keys(&xml, declare).expect("rewrites");
        let input = events(&xml);
        let mut expected = edit_texts(&input, |element, text| {
            ENCODED.contains(&element).then(|| uri_encode(text.as_bytes(), true))
        });
        let declared = input.iter().any(|e| matches!(e, Ev::Start(..)) && e.name() == Some("EncodingType"));
        if declare && !declared {
            let root_end = expected.iter().rposition(|e| matches!(e, Ev::End(_))).expect("a root");
            expected.splice(root_end..root_end, [
                Ev::Start("EncodingType".into(), vec![]),
                Ev::Text("url".into()),
                Ev::End("EncodingType".into()),
            ]);
        }
        let output = events(&out);
        prop_assert_eq!(&output, &expected);
        // The client decodes what it is told is encoded, and gets the provider's text back.
        for (before, after) in input.iter().zip(&output) {
            if let (Ev::Text(raw), Ev::Text(encoded)) = (before, after)
                && raw != encoded
            {
                let decoded = String::from_utf8_lossy(&percent_decode(encoded)).into_owned();
                prop_assert_eq!(&decoded, raw);
            }
        }
    }

    #[test]
    fn v1_listings_become_v2_keeping_every_entry_and_unknown_element(
        xml in v1_listing(),
        fetch_owner in any::<bool>(),
        start_after in prop::option::of("[ a-z+&]{1,6}"),
    ) {
        let request = V2Request { fetch_owner, start_after: start_after.clone(), ..V2Request::default() };
        let page = parse_list_page(&xml).expect("a generated page parses");
        let out = match super::list_v2_via_v1::into_v2_answer(&xml, &request) {
            Ok(out) => out,
            Err(_) => {
                // The one refusal: a truncated page that names nothing to resume after.
                prop_assert!(page.is_truncated && page.objects.is_empty() && page.common_prefixes.is_empty());
                prop_assert!(page.next_marker.as_deref().unwrap_or_default().is_empty());
                return Ok(());
            }
        };
        const REPLACED: &[&str] = &["Marker", "NextMarker", "KeyCount", "ContinuationToken", "NextContinuationToken", "StartAfter"];
        let kept = drop_subtrees(&events(&xml), |path, name| match path {
            [_root] => REPLACED.contains(&name),
            [_root, parent] => name == "Owner" && parent == "Contents" && !fetch_owner,
            _ => false,
        });
        let output = events(&out);
        // The V2 fields are the last elements before the root closes; before them, the input.
        let root_end = kept.len() - 1;
        prop_assert_eq!(&output[..root_end], &kept[..root_end]);
        prop_assert_eq!(output.last(), kept.last());
        let added = &output[root_end..output.len() - 1];
        let field = |name: &str| {
            added.windows(3).find_map(|w| match w {
                [Ev::Start(n, _), Ev::Text(t), Ev::End(_)] if n == name => Some(t.clone()),
                _ => None,
            })
        };
        let count = page.objects.len() + page.common_prefixes.len();
        prop_assert_eq!(field("KeyCount"), Some(count.to_string()));
        prop_assert_eq!(field("StartAfter"), start_after);
        let token = field("NextContinuationToken");
        prop_assert_eq!(token.is_some(), page.is_truncated);
        if let Some(token) = token {
            prop_assert!(decode_token(&token).is_some(), "s3ferry can read its own token");
        }
    }
}
