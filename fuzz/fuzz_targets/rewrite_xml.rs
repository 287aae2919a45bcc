//! Every XML rewriter in `src/rewrite/` on the same bytes (a provider's response body, or a
//! client's CompleteMultipartUpload body): none may panic, and whatever one returns goes to a
//! client's (or provider's) XML parser next, so it must parse.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use s3ferry::dialect::{DialectProfile, builtin};
use s3ferry::rewrite::client_view::{ClientView, EncodeKeys, rewrite_for_client};
use s3ferry::rewrite::{bucket_names, list_v2_via_v1, listing_encoding, provider_values};

/// Profiles that edit something (uppercase ETags, storage class names, error codes, dropped
/// checksum elements) and one that edits nothing.
static PROFILES: LazyLock<Vec<DialectProfile>> = LazyLock::new(|| {
    ["oss", "gcs", "garage", "aws"]
        .iter()
        .filter_map(|name| builtin(name))
        .collect()
});

fn assert_parses(output: &[u8], rewriter: &str) {
    if let Err(e) = s3ferry::rewrite::check_parses(output) {
        panic!(
            "{rewriter} returned XML that does not parse ({e}): {:?}",
            String::from_utf8_lossy(output)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the options, the rest is the document.
    let Some((&options, xml)) = data.split_first() else {
        return;
    };
    let profile = &PROFILES[usize::from(options) % PROFILES.len()];
    let v2 = list_v2_via_v1::V2Request {
        continuation_token: (options & 0x10 != 0).then(|| "s3ferry1:YQ".to_string()),
        start_after: (options & 0x20 != 0).then(|| "a b+c".to_string()),
        fetch_owner: options & 0x40 != 0,
        encoded_by_provider: options & 0x80 != 0,
    };
    if let Ok(out) = bucket_names::rewrite_bucket_names(xml, "photos-2017", "photos") {
        assert_parses(&out, "bucket_names");
    }
    if let Ok(out) = provider_values::rewrite_response(xml, profile) {
        assert_parses(&out, "provider_values::rewrite_response");
    }
    if let Ok(out) = provider_values::rewrite_complete_multipart_request(xml, profile) {
        assert_parses(&out, "provider_values::rewrite_complete_multipart_request");
    }
    if let Ok(out) = listing_encoding::encode_listing_keys(xml, options & 0x08 != 0) {
        assert_parses(&out, "listing_encoding");
    }
    // The relay's one pass, with the edits the option bits ask for.
    let view = ClientView {
        rename: (options & 0x01 != 0).then_some(("photos-2017", "photos")),
        values: (options & 0x02 != 0).then_some(profile),
        encode_keys: (options & 0x04 != 0).then_some(EncodeKeys {
            declare: options & 0x08 != 0,
        }),
    };
    if let Ok(out) = rewrite_for_client(xml, &view) {
        assert_parses(&out, "client_view");
    }
    if let Ok(out) = list_v2_via_v1::into_v2_answer(xml, &v2) {
        assert_parses(&out, "list_v2_via_v1");
    }
});
