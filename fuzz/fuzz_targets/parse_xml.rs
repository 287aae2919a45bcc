//! The XML readers that take network bytes: a provider's error body (`parse_error_code`), a
//! client's DeleteObjects, Tagging and AccessControlPolicy bodies, a provider's ListObjects and
//! ListBuckets pages. None may panic; what s3ferry writes back from a parsed ListBuckets page
//! reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use s3ferry::rewrite::{acl, delete_objects, list_buckets, list_objects, tagging};

fuzz_target!(|xml: &[u8]| {
    let _ = s3ferry::error::parse_error_code(xml);
    let _ = delete_objects::parse_delete_keys(xml);
    let _ = delete_objects::parse_delete_result(xml);
    let _ = tagging::parse_tag_set(xml);
    if let Ok(policy) = acl::parse_access_control_policy(xml) {
        let _ = policy.canned_equivalent();
    }
    if let Ok(mut page) = list_objects::parse_list_page(xml) {
        let _ = s3ferry::rewrite::list_v2_via_v1::continue_v1_page(&mut page);
    }
    if let Ok(buckets) = list_buckets::parse_list_buckets(xml) {
        let rendered = list_buckets::render_list_buckets(&buckets, "owner");
        let again = list_buckets::parse_list_buckets(rendered.as_bytes())
            .unwrap_or_else(|e| panic!("s3ferry's own ListBuckets does not parse ({e}): {rendered:?}"));
        assert_eq!(again, buckets, "ListBuckets changed on the way through s3ferry");
    }
});
