//! Response bodies rewritten back into the client's view, one quick-xml reader -> writer loop
//! per response shape. Everything a rewriter does not edit is copied as it came.
//! Only small XML bodies are read (capped by [`MAX_XML_BODY`]); object bodies are never touched.

pub mod acl;
pub mod bucket_names;
pub mod delete_objects;
pub mod list_buckets;
pub mod list_objects;
pub mod list_v2_via_v1;
pub mod listing_encoding;
pub mod provider_values;
pub mod tagging;

/// The largest XML response s3ferry reads into memory to rewrite. A ListObjects page of 1,000
/// long keys is well under 1 MiB.
pub const MAX_XML_BODY: usize = 16 * 1024 * 1024;

/// A rewrite that could not be done.
#[derive(Debug, thiserror::Error)]
#[error("cannot rewrite the upstream XML: {0}")]
pub struct RewriteError(pub String);

impl From<quick_xml::Error> for RewriteError {
    fn from(e: quick_xml::Error) -> Self {
        Self(e.to_string())
    }
}
