//! The S3 operation a request is: named once from its method, target and query, and asked
//! what it is (`carries_object_data`, `is_listing`, ...) instead of compared as a string. A
//! request that matches nothing here is still forwarded; it is logged as `Unknown`.
//!
//! The enum deserialises from the operation's name, so a config list of operations
//! (`dialect_overrides.unsupported_operations`) with a typo is refused at start-up.

use http::Method;

/// What the request is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Service,
    Bucket,
    Object,
}

/// Declares [`Operation`] with its names, so the enum, its list and its names never drift.
macro_rules! operations {
    ($($name:ident),+ $(,)?) => {
        /// An S3 operation, by the name the S3 API gives it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
        pub enum Operation {
            $($name),+
        }

        impl Operation {
            /// Every operation s3ferry names.
            pub const ALL: &[Operation] = &[$(Operation::$name),+];

            /// The S3 API's name, for logs and metric labels.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Operation::$name => stringify!($name)),+
                }
            }
        }
    };
}

operations! {
    ListBuckets,
    // Buckets
    CreateBucket, DeleteBucket, HeadBucket, GetBucketLocation,
    ListObjects, ListObjectsV2, ListObjectVersions, ListMultipartUploads,
    DeleteObjects, PostObject,
    GetBucketAcl, PutBucketAcl,
    GetBucketCors, PutBucketCors, DeleteBucketCors,
    GetBucketLifecycleConfiguration, PutBucketLifecycleConfiguration, DeleteBucketLifecycle,
    GetBucketLogging, PutBucketLogging,
    GetBucketNotificationConfiguration, PutBucketNotificationConfiguration,
    GetBucketOwnershipControls, PutBucketOwnershipControls, DeleteBucketOwnershipControls,
    GetBucketPolicy, PutBucketPolicy, DeleteBucketPolicy,
    GetPublicAccessBlock, PutPublicAccessBlock, DeletePublicAccessBlock,
    GetBucketEncryption, PutBucketEncryption, DeleteBucketEncryption,
    GetBucketReplication, PutBucketReplication, DeleteBucketReplication,
    GetBucketTagging, PutBucketTagging, DeleteBucketTagging,
    GetBucketVersioning, PutBucketVersioning,
    GetBucketWebsite, PutBucketWebsite, DeleteBucketWebsite,
    GetObjectLockConfiguration, PutObjectLockConfiguration,
    GetBucketAccelerateConfiguration, PutBucketAccelerateConfiguration,
    GetBucketRequestPayment, PutBucketRequestPayment,
    // Objects
    GetObject, HeadObject, PutObject, CopyObject, DeleteObject, RestoreObject,
    GetObjectAcl, PutObjectAcl,
    GetObjectTagging, PutObjectTagging, DeleteObjectTagging,
    GetObjectAttributes,
    CreateMultipartUpload, UploadPart, UploadPartCopy, CompleteMultipartUpload,
    AbortMultipartUpload, ListParts,
    Unknown,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Operation {
    type Err = String;

    /// The operation of that exact name (`Unknown` is not one a config may list).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Operation::ALL
            .iter()
            .copied()
            .find(|o| *o != Operation::Unknown && o.as_str() == name)
            .ok_or_else(|| format!("'{name}' is not an S3 operation s3ferry knows"))
    }
}

use Operation as Op;

/// Bucket sub-resources and the operations of GET, PUT and DELETE on them.
const BUCKET_SUBRESOURCES: &[(&str, [Op; 3])] = &[
    ("acl", [Op::GetBucketAcl, Op::PutBucketAcl, Op::Unknown]),
    ("cors", [Op::GetBucketCors, Op::PutBucketCors, Op::DeleteBucketCors]),
    (
        "lifecycle",
        [
            Op::GetBucketLifecycleConfiguration,
            Op::PutBucketLifecycleConfiguration,
            Op::DeleteBucketLifecycle,
        ],
    ),
    ("location", [Op::GetBucketLocation, Op::Unknown, Op::Unknown]),
    ("logging", [Op::GetBucketLogging, Op::PutBucketLogging, Op::Unknown]),
    (
        "notification",
        [
            Op::GetBucketNotificationConfiguration,
            Op::PutBucketNotificationConfiguration,
            Op::Unknown,
        ],
    ),
    (
        "ownershipControls",
        [
            Op::GetBucketOwnershipControls,
            Op::PutBucketOwnershipControls,
            Op::DeleteBucketOwnershipControls,
        ],
    ),
    (
        "policy",
        [Op::GetBucketPolicy, Op::PutBucketPolicy, Op::DeleteBucketPolicy],
    ),
    (
        "publicAccessBlock",
        [
            Op::GetPublicAccessBlock,
            Op::PutPublicAccessBlock,
            Op::DeletePublicAccessBlock,
        ],
    ),
    (
        "encryption",
        [
            Op::GetBucketEncryption,
            Op::PutBucketEncryption,
            Op::DeleteBucketEncryption,
        ],
    ),
    (
        "replication",
        [
            Op::GetBucketReplication,
            Op::PutBucketReplication,
            Op::DeleteBucketReplication,
        ],
    ),
    (
        "tagging",
        [Op::GetBucketTagging, Op::PutBucketTagging, Op::DeleteBucketTagging],
    ),
    (
        "versioning",
        [Op::GetBucketVersioning, Op::PutBucketVersioning, Op::Unknown],
    ),
    (
        "website",
        [Op::GetBucketWebsite, Op::PutBucketWebsite, Op::DeleteBucketWebsite],
    ),
    (
        "object-lock",
        [
            Op::GetObjectLockConfiguration,
            Op::PutObjectLockConfiguration,
            Op::Unknown,
        ],
    ),
    (
        "accelerate",
        [
            Op::GetBucketAccelerateConfiguration,
            Op::PutBucketAccelerateConfiguration,
            Op::Unknown,
        ],
    ),
    (
        "requestPayment",
        [Op::GetBucketRequestPayment, Op::PutBucketRequestPayment, Op::Unknown],
    ),
];

/// Whether `name` is a bucket sub-resource parameter (`?versioning`, `?policy`, ...) whose
/// operations [`classify`] names.
pub fn is_bucket_subresource(name: &str) -> bool {
    BUCKET_SUBRESOURCES.iter().any(|(n, _)| *n == name)
}

/// The S3 operation of a request.
pub fn classify(method: &Method, target: Target, query: &[(String, String)], has_copy_source: bool) -> Operation {
    let has = |name: &str| query.iter().any(|(n, _)| n == name);
    let get = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    match target {
        Target::Service => match *method {
            Method::GET => Op::ListBuckets,
            _ => Op::Unknown,
        },
        Target::Bucket => {
            if has("uploads") && *method == Method::GET {
                return Op::ListMultipartUploads;
            }
            if has("versions") && *method == Method::GET {
                return Op::ListObjectVersions;
            }
            if has("delete") && *method == Method::POST {
                return Op::DeleteObjects;
            }
            if let Some((_, [get_op, put_op, delete_op])) = BUCKET_SUBRESOURCES.iter().find(|(name, _)| has(name)) {
                return match *method {
                    Method::GET => *get_op,
                    Method::PUT => *put_op,
                    Method::DELETE => *delete_op,
                    _ => Op::Unknown,
                };
            }
            match *method {
                Method::GET if get("list-type") == Some("2") => Op::ListObjectsV2,
                Method::GET => Op::ListObjects,
                Method::HEAD => Op::HeadBucket,
                Method::PUT => Op::CreateBucket,
                Method::DELETE => Op::DeleteBucket,
                Method::POST => Op::PostObject,
                _ => Op::Unknown,
            }
        }
        Target::Object => {
            let upload = has("uploadId");
            match *method {
                Method::GET if upload => Op::ListParts,
                Method::GET if has("acl") => Op::GetObjectAcl,
                Method::GET if has("tagging") => Op::GetObjectTagging,
                Method::GET if has("attributes") => Op::GetObjectAttributes,
                Method::GET => Op::GetObject,
                Method::HEAD => Op::HeadObject,
                Method::PUT if upload && has_copy_source => Op::UploadPartCopy,
                Method::PUT if upload => Op::UploadPart,
                Method::PUT if has("acl") => Op::PutObjectAcl,
                Method::PUT if has("tagging") => Op::PutObjectTagging,
                Method::PUT if has_copy_source => Op::CopyObject,
                Method::PUT => Op::PutObject,
                Method::POST if has("uploads") => Op::CreateMultipartUpload,
                Method::POST if upload => Op::CompleteMultipartUpload,
                Method::POST if has("restore") => Op::RestoreObject,
                Method::DELETE if upload => Op::AbortMultipartUpload,
                Method::DELETE if has("tagging") => Op::DeleteObjectTagging,
                Method::DELETE => Op::DeleteObject,
                _ => Op::Unknown,
            }
        }
    }
}

impl Operation {
    /// The request body is the object's data (PutObject, UploadPart).
    pub fn carries_object_data(self) -> bool {
        matches!(self, Op::PutObject | Op::UploadPart)
    }

    /// Writes an object's data: creates or replaces the key.
    pub fn writes_object(self) -> bool {
        matches!(self, Op::PutObject | Op::CopyObject | Op::CompleteMultipartUpload)
    }

    /// Creates, replaces or deletes a key: on a bucket under migration it claims the key
    /// against background copies.
    pub fn changes_object(self) -> bool {
        self.writes_object() || self == Op::DeleteObject
    }

    /// A write that S3 makes conditional with `If-None-Match` / `If-Match`.
    pub fn is_conditional_write(self) -> bool {
        self.writes_object()
    }

    /// Reads an object's data or headers.
    pub fn reads_object(self) -> bool {
        matches!(self, Op::GetObject | Op::HeadObject)
    }

    /// A listing of a bucket's keys whose answer may carry URL-encoded keys.
    pub fn is_listing(self) -> bool {
        matches!(self, Op::ListObjects | Op::ListObjectsV2 | Op::ListObjectVersions)
    }

    /// A server-side copy of an object (or of part of one into an upload).
    pub fn is_copy(self) -> bool {
        matches!(self, Op::CopyObject | Op::UploadPartCopy)
    }

    /// Names a multipart upload (`?uploadId=`): a part, its list, its completion or abort.
    pub fn names_upload(self) -> bool {
        matches!(
            self,
            Op::UploadPart
                | Op::UploadPartCopy
                | Op::CompleteMultipartUpload
                | Op::AbortMultipartUpload
                | Op::ListParts
        )
    }

    /// Reads an ACL (`?acl` GET).
    pub fn reads_acl(self) -> bool {
        matches!(self, Op::GetObjectAcl | Op::GetBucketAcl)
    }

    /// Writes an ACL (`?acl` PUT).
    pub fn writes_acl(self) -> bool {
        matches!(self, Op::PutObjectAcl | Op::PutBucketAcl)
    }

    /// An answer to a HEAD: no body, so nothing to read or rewrite.
    pub fn is_head(self) -> bool {
        matches!(self, Op::HeadObject | Op::HeadBucket)
    }

    /// The XML answer carries provider values a dialect may spell differently: `<ETag>` and
    /// `<StorageClass>`.
    pub fn response_carries_object_values(self) -> bool {
        matches!(
            self,
            Op::ListObjects
                | Op::ListObjectsV2
                | Op::ListObjectVersions
                | Op::ListMultipartUploads
                | Op::ListParts
                | Op::CompleteMultipartUpload
                | Op::CopyObject
                | Op::UploadPartCopy
                | Op::GetObjectAttributes
        )
    }

    /// The XML answer names the bucket (and so needs mapping back when it is renamed).
    pub fn response_names_bucket(self) -> bool {
        matches!(
            self,
            Op::ListObjects
                | Op::ListObjectsV2
                | Op::ListObjectVersions
                | Op::ListMultipartUploads
                | Op::ListParts
                | Op::CreateMultipartUpload
                | Op::CompleteMultipartUpload
        )
    }

    /// S3 requires a body checksum (`Content-MD5` or `x-amz-checksum-*`): the
    /// `httpChecksum requestChecksumRequired` operations of the S3 model that s3ferry names.
    pub fn requires_checksum(self) -> bool {
        matches!(
            self,
            Op::DeleteObjects
                | Op::PutBucketAcl
                | Op::PutBucketCors
                | Op::PutBucketEncryption
                | Op::PutBucketLifecycleConfiguration
                | Op::PutBucketLogging
                | Op::PutBucketOwnershipControls
                | Op::PutBucketPolicy
                | Op::PutBucketReplication
                | Op::PutBucketRequestPayment
                | Op::PutBucketTagging
                | Op::PutBucketVersioning
                | Op::PutBucketWebsite
                | Op::PutObjectAcl
                | Op::PutObjectLockConfiguration
                | Op::PutObjectTagging
                | Op::PutPublicAccessBlock
        )
    }

    /// Its `x-amz-checksum-*` header is the checksum of the request body itself (for
    /// CompleteMultipartUpload and copies it describes the object, not the body).
    pub fn checksum_describes_body(self) -> bool {
        self.carries_object_data() || self.requires_checksum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    /// (method, target, query, has copy source, expected operation)
    type Case = (
        Method,
        Target,
        &'static [(&'static str, &'static str)],
        bool,
        &'static str,
    );

    #[test]
    fn common_operations_are_named() {
        let cases: &[Case] = &[
            (Method::GET, Target::Service, &[], false, "ListBuckets"),
            (
                Method::GET,
                Target::Bucket,
                &[("list-type", "2")],
                false,
                "ListObjectsV2",
            ),
            (Method::GET, Target::Bucket, &[], false, "ListObjects"),
            (
                Method::GET,
                Target::Bucket,
                &[("uploads", "")],
                false,
                "ListMultipartUploads",
            ),
            (Method::POST, Target::Bucket, &[("delete", "")], false, "DeleteObjects"),
            (
                Method::GET,
                Target::Bucket,
                &[("location", "")],
                false,
                "GetBucketLocation",
            ),
            (
                Method::PUT,
                Target::Bucket,
                &[("versioning", "")],
                false,
                "PutBucketVersioning",
            ),
            (Method::PUT, Target::Object, &[], false, "PutObject"),
            (Method::PUT, Target::Object, &[], true, "CopyObject"),
            (
                Method::PUT,
                Target::Object,
                &[("partNumber", "1"), ("uploadId", "u")],
                false,
                "UploadPart",
            ),
            (
                Method::PUT,
                Target::Object,
                &[("partNumber", "1"), ("uploadId", "u")],
                true,
                "UploadPartCopy",
            ),
            (
                Method::POST,
                Target::Object,
                &[("uploads", "")],
                false,
                "CreateMultipartUpload",
            ),
            (
                Method::POST,
                Target::Object,
                &[("uploadId", "u")],
                false,
                "CompleteMultipartUpload",
            ),
            (Method::GET, Target::Object, &[("uploadId", "u")], false, "ListParts"),
            (
                Method::DELETE,
                Target::Object,
                &[("uploadId", "u")],
                false,
                "AbortMultipartUpload",
            ),
            (Method::PATCH, Target::Object, &[], false, "Unknown"),
        ];
        for (method, target, query, copy, expected) in cases {
            assert_eq!(
                classify(method, *target, &q(query), *copy).as_str(),
                *expected,
                "{method} {target:?} {query:?}"
            );
        }
    }

    #[test]
    fn names_read_back_as_the_same_operation_and_typos_are_refused() {
        for op in Operation::ALL.iter().filter(|o| **o != Op::Unknown) {
            assert_eq!(op.as_str().parse::<Operation>(), Ok(*op));
        }
        assert!("GetObjects".parse::<Operation>().is_err());
        assert!("Unknown".parse::<Operation>().is_err());
        let listed: Vec<Operation> =
            serde_json::from_str(r#"["PutBucketCors", "ListObjectVersions"]"#).expect("deserialises");
        assert_eq!(listed, [Op::PutBucketCors, Op::ListObjectVersions]);
        assert!(serde_json::from_str::<Vec<Operation>>(r#"["PutBucketCorz"]"#).is_err());
    }
}
