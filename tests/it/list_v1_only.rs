//! ListObjectsV2 for a provider that serves only ListObjects v1 (docs/dialects.md rule 22), against
//! a thin V1-only wrapper around moto: directly, the current aws-sdk-s3 paginator loses keys;
//! through s3ferry with `dialect = "ceph"` it gets every key once, in order.

use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::primitives::ByteStream;
use s3ferry::s3::encoding::percent_decode;
use s3ferry::server::RunningGateway;

use crate::support::single_provider_gateway as gateway;
use crate::support::v1_only::V1Only;
use crate::support::{error_code, error_status};

/// Keys that break naive encodings and token schemes, in S3 (UTF-8 byte) order.
const KEYS: &[&str] = &["a b", "a%2Fb", "a+b", "dir/sub/k", "x&y", "z<1", "ü/x"];

/// The V1-only store with `KEYS` in bucket `listing`.
async fn seeded_store() -> V1Only {
    let store = V1Only::start(&["listing"]).await;
    let direct = store.direct();
    for key in KEYS {
        direct
            .put_object()
            .bucket("listing")
            .key(*key)
            .body(ByteStream::from_static(b"v"))
            .send()
            .await
            .expect("seed");
    }
    store
}

async fn gateway_for(store: &V1Only, dialect: &str) -> (RunningGateway, aws_sdk_s3::Client) {
    gateway(&store.endpoint(), "v1", "v1", dialect, "").await
}

/// Every page of a ListObjectsV2 paginator (max-keys 2), or the first error.
async fn v2_pages(client: &aws_sdk_s3::Client, start_after: Option<&str>) -> Result<Vec<ListObjectsV2Output>, String> {
    let mut pages = client
        .list_objects_v2()
        .bucket("listing")
        .max_keys(2)
        .set_start_after(start_after.map(str::to_string))
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        out.push(page.map_err(|e| format!("{e:?}"))?);
    }
    Ok(out)
}

fn keys_of(pages: &[ListObjectsV2Output]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p.contents().iter().filter_map(|o| o.key().map(str::to_string)))
        .collect()
}

#[tokio::test]
async fn list_v1_only_store_loses_v2_pages_directly_and_s3ferry_lists_every_key_once() {
    let store = seeded_store().await;

    let direct = v2_pages(&store.direct(), None).await.expect("direct pages");
    assert_eq!(direct.len(), 1, "no NextContinuationToken: the paginator stops");
    assert_eq!(direct[0].is_truncated(), Some(true));
    assert_eq!(direct[0].next_continuation_token(), None);
    assert_eq!(direct[0].key_count(), None);
    assert_eq!(keys_of(&direct), ["a b", "a%2Fb"], "5 of the 7 keys are never listed");

    let (_g, client) = gateway_for(&store, "ceph").await;
    let direct_requests = store.received_get_queries().len();
    let pages = v2_pages(&client, None).await.expect("pages through s3ferry");
    assert_eq!(keys_of(&pages), KEYS, "every key exactly once, in order");
    assert_eq!(pages.len(), 4);
    for (i, page) in pages.iter().enumerate() {
        let last = i == pages.len() - 1;
        assert_eq!(page.key_count(), Some(page.contents().len() as i32));
        assert_eq!(page.is_truncated(), Some(!last));
        assert_eq!(page.next_continuation_token().is_some(), !last);
        assert_eq!(
            page.continuation_token().is_some(),
            i > 0,
            "the client's token is echoed"
        );
        assert!(page.contents().iter().all(|o| o.owner().is_none()), "no fetch-owner");
    }
    let v1_requests = store.received_get_queries().split_off(direct_requests);
    assert_eq!(v1_requests.len(), 4, "one V1 request per page: {v1_requests:?}");
    assert_eq!(v1_requests[0], "max-keys=2");
    assert!(
        v1_requests[1..].iter().all(|q| q.starts_with("marker=")),
        "later pages resume from the marker in the token: {v1_requests:?}"
    );
}

#[tokio::test]
async fn list_v1_only_start_after_delimiter_and_fetch_owner_through_s3ferry() {
    let store = seeded_store().await;
    let (_g, client) = gateway_for(&store, "ceph").await;

    let pages = v2_pages(&client, Some("a+b")).await.expect("start-after pages");
    assert_eq!(keys_of(&pages), ["dir/sub/k", "x&y", "z<1", "ü/x"]);
    assert!(
        pages.iter().all(|p| p.start_after() == Some("a+b")),
        "start-after is echoed"
    );

    let top: (&str, &[&str], &[&str]) = ("", &["dir/", "ü/"], &["a b", "a%2Fb", "a+b", "x&y", "z<1"]);
    let nested: (&str, &[&str], &[&str]) = ("dir/", &["dir/sub/"], &[]);
    for (prefix, expected_prefixes, expected_keys) in [top, nested] {
        let out = client
            .list_objects_v2()
            .bucket("listing")
            .prefix(prefix)
            .delimiter("/")
            .send()
            .await
            .expect("delimiter listing");
        let prefixes: Vec<&str> = out.common_prefixes().iter().filter_map(|p| p.prefix()).collect();
        assert_eq!(prefixes, expected_prefixes, "prefix {prefix:?}");
        let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys, expected_keys, "prefix {prefix:?}");
        let count = expected_prefixes.len() + expected_keys.len();
        assert_eq!(out.key_count(), Some(count as i32), "keys and common prefixes");
        assert_eq!(out.is_truncated(), Some(false));
    }

    for fetch_owner in [true, false] {
        let out = client
            .list_objects_v2()
            .bucket("listing")
            .fetch_owner(fetch_owner)
            .send()
            .await
            .expect("listing");
        assert_eq!(out.contents().len(), KEYS.len());
        assert!(
            out.contents().iter().all(|o| o.owner().is_some() == fetch_owner),
            "fetch-owner={fetch_owner}"
        );
    }
}

#[tokio::test]
async fn list_v1_only_url_encoded_pages_and_bad_tokens_through_s3ferry() {
    let store = seeded_store().await;
    // Encoded by s3ferry (the ceph default), then by the store itself (moto encodes keys).
    for extra in ["", "[providers.up.dialect_overrides]\nurl_encoded_listings = true"] {
        let (_g, client) = gateway(&store.endpoint(), "v1", "v1", "ceph", extra).await;
        assert_eq!(encoded_listing(&client).await, KEYS[1..], "{extra}");
    }

    let (_g, client) = gateway_for(&store, "ceph").await;
    let err = client
        .list_objects_v2()
        .bucket("listing")
        .continuation_token("not-a-token-s3ferry-wrote")
        .send()
        .await
        .expect_err("bad token");
    assert_eq!(error_status(&err), 400);
    assert_eq!(error_code(&err), "InvalidArgument");
}

/// The keys after `a b`, listed three at a time with `encoding-type=url`, decoded.
async fn encoded_listing(client: &aws_sdk_s3::Client) -> Vec<String> {
    // The Rust SDK does not decode `encoding-type=url` answers itself (botocore does).
    let decode = |s: &str| String::from_utf8(percent_decode(s)).expect("utf8");
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket("listing")
            .max_keys(3)
            .start_after("a b")
            .encoding_type(aws_sdk_s3::types::EncodingType::Url)
            .set_continuation_token(token.clone())
            .send()
            .await
            .expect("encoded page");
        assert_eq!(page.encoding_type(), Some(&aws_sdk_s3::types::EncodingType::Url));
        assert_eq!(page.start_after(), Some("a%20b"), "StartAfter is encoded with the keys");
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(decode)));
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    keys
}

#[tokio::test]
async fn list_v1_only_aws_dialect_is_sent_v2_untranslated() {
    let store = seeded_store().await;
    let (_g, client) = gateway_for(&store, "aws").await;
    let pages = v2_pages(&client, None).await.expect("pages");
    assert_eq!(pages.len(), 1, "the store's V1 answer reaches the client as it came");
    assert_eq!(pages[0].next_continuation_token(), None);
    let received = store.received_get_queries();
    assert!(
        received
            .iter()
            .any(|q| q.contains("list-type=2") && q.contains("max-keys=2")),
        "{received:?}"
    );
}
