//! Where a request goes upstream: the path-style or virtual-hosted-style address per provider.

use crate::s3::addressing::Addressing;

/// An upstream request's address: the `Host` value and the canonical path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamAddress {
    /// `host[:port]`, with the bucket prepended for virtual-hosted style.
    pub authority: String,
    /// The canonical, encoded path (starts with `/`).
    pub path: String,
}

/// Builds the upstream address for `bucket` and the (already canonically encoded) `key`.
/// `endpoint_authority` is the provider's `host[:port]`.
pub fn upstream_address(
    endpoint_authority: &str,
    addressing: Addressing,
    bucket: Option<&str>,
    encoded_key: &str,
) -> UpstreamAddress {
    match (bucket, addressing) {
        (None, _) => UpstreamAddress {
            authority: endpoint_authority.to_string(),
            path: "/".into(),
        },
        (Some(bucket), Addressing::Virtual) => UpstreamAddress {
            authority: format!("{bucket}.{endpoint_authority}"),
            path: format!("/{encoded_key}"),
        },
        (Some(bucket), Addressing::Path) => UpstreamAddress {
            authority: endpoint_authority.to_string(),
            path: if encoded_key.is_empty() {
                format!("/{bucket}")
            } else {
                format!("/{bucket}/{encoded_key}")
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addressing_styles_place_the_bucket() {
        let path = upstream_address("h:9000", Addressing::Path, Some("b"), "k/x");
        assert_eq!((path.authority.as_str(), path.path.as_str()), ("h:9000", "/b/k/x"));
        let bucket_only = upstream_address("h:9000", Addressing::Path, Some("b"), "");
        assert_eq!(bucket_only.path, "/b");
        let virt = upstream_address("h:9000", Addressing::Virtual, Some("b"), "k/x");
        assert_eq!((virt.authority.as_str(), virt.path.as_str()), ("b.h:9000", "/k/x"));
        let root = upstream_address("h", Addressing::Virtual, None, "");
        assert_eq!(root.path, "/");
    }
}
