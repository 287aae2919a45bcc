//! What an error tells a client: its own names and a generic cause, never the infrastructure
//! behind the gateway (upstream bucket names, provider addresses, transport errors). Raw HTTP,
//! so the whole body is checked, not only what an SDK chooses to show. (An unreachable
//! provider: `upstream_failures`; migration's buckets and tombstones: `migration`.)

use std::sync::atomic::Ordering;

use crate::support::Harness;
use crate::support::raw::signed_get;

#[tokio::test]
async fn a_renamed_routes_failing_provider_is_reported_without_the_upstream_bucket() {
    let h = Harness::start().await;
    // `renamed` is `renamed-upstream` at the provider. Its dialect (minio) has no ACL API, so
    // s3ferry answers GetObjectAcl itself after a HEAD of the object, which now fails.
    h.path_up.quirks.fail_reads_with.store(500, Ordering::Relaxed);
    let resp = signed_get(h.addr, "/renamed/photo.jpg?acl").await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (502, "BadGateway"),
        "{}",
        resp.body
    );
    assert_eq!(
        resp.message(),
        "Upstream provider 'pathup' sent a response s3ferry cannot relay",
        "the provider's configured name says where to look"
    );
    assert!(!resp.body.contains("renamed-upstream"), "{}", resp.body);
    assert!(
        !resp.body.contains("HEAD"),
        "no upstream exchange detail: {}",
        resp.body
    );
    h.stop().await;
}
