//! Where the bucket name goes in a request to a provider: its host (virtual-hosted style) or its
//! path (path style).

use serde::Deserialize;

/// How bucket names travel to a provider (`addressing = "virtual"` or `"path"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Addressing {
    /// `https://bucket.host/key`
    Virtual,
    /// `https://host/bucket/key`
    Path,
}

impl Addressing {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Virtual => "virtual",
            Self::Path => "path",
        }
    }
}
