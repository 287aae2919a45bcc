//! The checksum algorithms of S3's flexible checksums: naming (header, trailer and
//! `x-amz-checksum-algorithm` forms) and incremental hashing. The primitives come from s3s.
//!
//! Every current AWS SDK sends one of these on every upload (docs/dialects.md §B); providers accept
//! a subset (the dialect profile says which), and s3ferry verifies the rest itself.

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use s3s::crypto::Checksum as _;

/// Checksum algorithms S3 clients send as trailers or headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

/// The `x-amz-checksum-*` header family prefix.
pub const CHECKSUM_HEADER_PREFIX: &str = "x-amz-checksum-";

/// Object metadata under which s3ferry keeps a checksum the provider cannot store
/// (`x-amz-meta-s3ferry-checksum-crc32: <base64>`). Clients never see it as metadata.
pub const STORED_CHECKSUM_PREFIX: &str = "x-amz-meta-s3ferry-checksum-";

/// Written by its name (`crc32`, `crc64nvme`, ...), as the config names it.
impl serde::Serialize for ChecksumAlgorithm {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl ChecksumAlgorithm {
    pub const ALL: [Self; 5] = [Self::Crc32, Self::Crc32c, Self::Crc64Nvme, Self::Sha1, Self::Sha256];

    /// From a header name such as `x-amz-checksum-crc32`.
    pub fn from_header_name(name: &str) -> Option<Self> {
        Self::from_name(name.trim().to_ascii_lowercase().strip_prefix(CHECKSUM_HEADER_PREFIX)?)
    }

    /// From an algorithm name as in `x-amz-checksum-algorithm: CRC32` or config (`crc32`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The lowercase name: `crc32`, `crc32c`, `crc64nvme`, `sha1`, `sha256`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "crc32",
            Self::Crc32c => "crc32c",
            Self::Crc64Nvme => "crc64nvme",
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
        }
    }

    pub fn header_name(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The length of the base64 digest (`x-amz-checksum-*` value): fixed per algorithm.
    pub fn base64_len(self) -> usize {
        let digest_bytes: usize = match self {
            Self::Crc32 | Self::Crc32c => 4,
            Self::Crc64Nvme => 8,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        };
        digest_bytes.div_ceil(3) * 4
    }

    /// The `x-amz-sdk-checksum-algorithm` form: `CRC32`, `CRC64NVME`, ...
    pub fn sdk_name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    /// The metadata header s3ferry stores this algorithm's checksum under.
    pub fn stored_header_name(self) -> String {
        format!("{STORED_CHECKSUM_PREFIX}{}", self.name())
    }

    /// The checksum of a body held in memory, base64 as in `x-amz-checksum-*`.
    pub fn of(self, data: &[u8]) -> String {
        let mut hasher = ChecksumHasher::new(self);
        hasher.update(data);
        hasher.finalize_base64()
    }
}

/// Takes s3ferry's stored-checksum metadata (`x-amz-meta-s3ferry-checksum-<alg>`) out of
/// `headers` and returns it: clients may not set it, and never see it as metadata.
pub fn take_stored_checksums(headers: &mut HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with(STORED_CHECKSUM_PREFIX))
        .cloned()
        .collect();
    let mut taken = Vec::new();
    for name in names {
        if let http::header::Entry::Occupied(entry) = headers.entry(name) {
            let (name, values) = entry.remove_entry_mult();
            taken.extend(values.map(|v| (name.clone(), v)));
        }
    }
    taken
}

/// The algorithm of a stored-checksum metadata header name.
pub fn stored_algorithm(name: &HeaderName) -> Option<ChecksumAlgorithm> {
    ChecksumAlgorithm::from_name(name.as_str().strip_prefix(STORED_CHECKSUM_PREFIX)?)
}

/// The first `x-amz-checksum-<alg>` header in `headers` that `data` (a small body held in
/// memory) does not match.
pub fn mismatched_header(headers: &HeaderMap, data: &[u8]) -> Option<ChecksumAlgorithm> {
    ChecksumAlgorithm::ALL.into_iter().find(|a| {
        headers
            .get(a.header_name())
            .is_some_and(|sent| sent.as_bytes().trim_ascii() != a.of(data).as_bytes())
    })
}

/// An incremental checksum of one algorithm.
pub enum ChecksumHasher {
    Crc32(s3s::crypto::Crc32),
    Crc32c(s3s::crypto::Crc32c),
    Crc64Nvme(s3s::crypto::Crc64Nvme),
    Sha1(s3s::crypto::Sha1),
    Sha256(s3s::crypto::Sha256),
}

impl ChecksumHasher {
    pub fn new(algorithm: ChecksumAlgorithm) -> Self {
        match algorithm {
            ChecksumAlgorithm::Crc32 => Self::Crc32(s3s::crypto::Crc32::new()),
            ChecksumAlgorithm::Crc32c => Self::Crc32c(s3s::crypto::Crc32c::new()),
            ChecksumAlgorithm::Crc64Nvme => Self::Crc64Nvme(s3s::crypto::Crc64Nvme::new()),
            ChecksumAlgorithm::Sha1 => Self::Sha1(s3s::crypto::Sha1::new()),
            ChecksumAlgorithm::Sha256 => Self::Sha256(s3s::crypto::Sha256::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Crc32(h) => h.update(data),
            Self::Crc32c(h) => h.update(data),
            Self::Crc64Nvme(h) => h.update(data),
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
        }
    }

    /// The base64 digest, as it appears in `x-amz-checksum-*`.
    pub fn finalize_base64(self) -> String {
        let engine = base64::engine::general_purpose::STANDARD;
        match self {
            Self::Crc32(h) => engine.encode(h.finalize()),
            Self::Crc32c(h) => engine.encode(h.finalize()),
            Self::Crc64Nvme(h) => engine.encode(h.finalize()),
            Self::Sha1(h) => engine.encode(h.finalize()),
            Self::Sha256(h) => engine.encode(h.finalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_algorithms_come_from_header_and_algorithm_names() {
        assert_eq!(
            ChecksumAlgorithm::from_header_name("X-Amz-Checksum-CRC32"),
            Some(ChecksumAlgorithm::Crc32)
        );
        assert_eq!(
            ChecksumAlgorithm::from_header_name("x-amz-checksum-crc64nvme"),
            Some(ChecksumAlgorithm::Crc64Nvme)
        );
        assert_eq!(ChecksumAlgorithm::from_header_name("x-amz-meta-x"), None);
        assert_eq!(ChecksumAlgorithm::from_header_name("x-amz-checksum-mode"), None);
        assert_eq!(ChecksumAlgorithm::from_name("CRC32C"), Some(ChecksumAlgorithm::Crc32c));
        for a in ChecksumAlgorithm::ALL {
            assert_eq!(ChecksumAlgorithm::from_header_name(a.header_name()), Some(a));
            assert_eq!(ChecksumAlgorithm::from_name(a.name()), Some(a));
        }
        assert_eq!(
            ChecksumAlgorithm::Sha1.stored_header_name(),
            "x-amz-meta-s3ferry-checksum-sha1"
        );
    }

    #[test]
    fn base64_lengths_are_those_of_the_digests() {
        for a in ChecksumAlgorithm::ALL {
            assert_eq!(a.of(b"any body").len(), a.base64_len(), "{}", a.name());
            assert!(a.sdk_name().eq_ignore_ascii_case(a.name()));
        }
    }

    #[test]
    fn stored_checksums_are_taken_out_and_named_by_algorithm() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-meta-s3ferry-checksum-crc32",
            HeaderValue::from_static("i9aeUg=="),
        );
        h.insert("x-amz-meta-color", HeaderValue::from_static("blue"));
        let taken = take_stored_checksums(&mut h);
        assert_eq!(taken.len(), 1);
        assert_eq!(stored_algorithm(&taken[0].0), Some(ChecksumAlgorithm::Crc32));
        assert_eq!(h.len(), 1, "the client's own metadata stays");
        h.insert("x-amz-checksum-crc32", HeaderValue::from_static("i9aeUg=="));
        assert_eq!(mismatched_header(&h, b"Hello world"), None);
        assert_eq!(mismatched_header(&h, b"other"), Some(ChecksumAlgorithm::Crc32));
    }

    #[test]
    fn crc32_of_hello_world_matches_s3() {
        // S3 returns this CRC32 for the 11 bytes "Hello world".
        assert_eq!(ChecksumAlgorithm::Crc32.of(b"Hello world"), "i9aeUg==");
        // The empty body's CRC32, as JS SDK presigned URLs bake it in (docs/dialects.md §B.2).
        assert_eq!(ChecksumAlgorithm::Crc32.of(b""), "AAAAAA==");
    }
}
