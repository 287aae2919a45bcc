//! Response bodies rewritten back into the client's view, one quick-xml reader -> writer loop
//! per response shape. Everything a rewriter does not edit is copied as it came.
//! Only small XML bodies are read (capped by [`crate::small_body::MAX_XML_BODY`]); object bodies are never touched.

pub mod acl;
pub mod bucket_names;
pub mod client_view;
pub mod copy_result;
pub mod delete_objects;
pub mod list_buckets;
pub mod list_objects;
pub mod list_v2_via_v1;
pub mod listing_encoding;
pub mod multipart_upload;
pub mod provider_values;
pub mod tagging;

#[cfg(test)]
mod property_tests;

/// A rewrite that could not be done.
#[derive(Debug, thiserror::Error)]
#[error("cannot rewrite the upstream XML: {0}")]
pub struct RewriteError(pub String);

impl From<quick_xml::Error> for RewriteError {
    fn from(e: quick_xml::Error) -> Self {
        Self(e.to_string())
    }
}

/// Reads `xml` through to its end: `Err` at the first thing the XML reader refuses. Whatever a
/// rewriter returns must pass, since a client's (or provider's) parser reads it next; the tests
/// and fuzz targets check that with this.
pub fn check_parses(xml: &[u8]) -> Result<(), quick_xml::Error> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    loop {
        if let quick_xml::events::Event::Eof = reader.read_event_into(&mut buf)? {
            return Ok(());
        }
        buf.clear();
    }
}

/// Every rewriter fed damaged provider XML (deterministically truncated, spliced and
/// byte-flipped golden files): none may panic, and whatever one returns as rewritten XML must
/// itself parse as XML, since it goes to a client's parser next.
#[cfg(test)]
mod damaged_input_tests {
    use crate::dialect::builtin;
    use crate::test_support::xml_fixtures as fixtures;

    /// A small deterministic generator (xorshift), so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            usize::try_from(self.0 % (n.max(1) as u64)).unwrap_or(0)
        }
    }

    fn damaged(inputs: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
        let a = &inputs[rng.below(inputs.len())];
        let b = &inputs[rng.below(inputs.len())];
        let mut out = match rng.below(3) {
            0 => a[..rng.below(a.len() + 1)].to_vec(),
            1 => [&a[..rng.below(a.len() + 1)], &b[rng.below(b.len() + 1)..]].concat(),
            _ => a.clone(),
        };
        for _ in 0..rng.below(4) {
            if !out.is_empty() {
                let at = rng.below(out.len());
                let pool = b"<>&\"/;%\0\xff a";
                out[at] = pool[rng.below(pool.len())];
            }
        }
        out
    }

    fn assert_xml(output: &[u8], what: &str) {
        if let Err(e) = super::check_parses(output) {
            panic!(
                "{what} returned XML that does not parse ({e}): {}",
                String::from_utf8_lossy(output)
            );
        }
    }

    #[test]
    fn rewriters_never_panic_and_only_return_parseable_xml() {
        let inputs = fixtures();
        assert!(inputs.len() > 20, "the golden files are the seed corpus");
        let oss = builtin("oss").expect("oss");
        let v2 = super::list_v2_via_v1::V2Request::default();
        let mut rng = Rng(0x5eed_5eed_5eed_5eed);
        let mut rewritten = 0;
        for _ in 0..4000 {
            let xml = damaged(&inputs, &mut rng);
            let outputs = [
                (
                    "bucket_names",
                    super::bucket_names::rewrite_bucket_names(&xml, "up", "client").ok(),
                ),
                (
                    "provider_values",
                    super::provider_values::rewrite_response(&xml, &oss).ok(),
                ),
                (
                    "complete_multipart",
                    super::provider_values::rewrite_complete_multipart_request(&xml, &oss).ok(),
                ),
                (
                    "listing_encoding",
                    super::listing_encoding::encode_listing_keys(&xml, true).ok(),
                ),
                ("v2_via_v1", super::list_v2_via_v1::into_v2_answer(&xml, &v2).ok()),
            ];
            for (what, output) in outputs {
                if let Some(output) = output {
                    assert_xml(&output, what);
                    rewritten += 1;
                }
            }
            let _ = super::delete_objects::parse_delete_keys(&xml);
            let _ = super::delete_objects::parse_delete_result(&xml);
            let _ = super::list_buckets::parse_list_buckets(&xml);
            let _ = super::list_objects::parse_list_page(&xml);
            let _ = super::tagging::parse_tag_set(&xml);
            let _ = super::acl::parse_access_control_policy(&xml);
        }
        assert!(rewritten > 1000, "most damaged inputs still rewrite: {rewritten}");
    }
}
