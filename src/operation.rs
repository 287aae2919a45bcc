//! Names the S3 operation of a request from its method, target and query, for logs and
//! metrics, and to decide which responses carry bucket names that need mapping back.
//! A request that matches nothing here is still forwarded; it is just logged as `Unknown`.

use http::Method;

/// What the request is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Service,
    Bucket,
    Object,
}

/// Bucket sub-resources and the operation names for GET, PUT and DELETE on them.
const BUCKET_SUBRESOURCES: &[(&str, [&str; 3])] = &[
    ("acl", ["GetBucketAcl", "PutBucketAcl", "Unknown"]),
    ("cors", ["GetBucketCors", "PutBucketCors", "DeleteBucketCors"]),
    (
        "lifecycle",
        [
            "GetBucketLifecycleConfiguration",
            "PutBucketLifecycleConfiguration",
            "DeleteBucketLifecycle",
        ],
    ),
    ("location", ["GetBucketLocation", "Unknown", "Unknown"]),
    ("logging", ["GetBucketLogging", "PutBucketLogging", "Unknown"]),
    (
        "notification",
        [
            "GetBucketNotificationConfiguration",
            "PutBucketNotificationConfiguration",
            "Unknown",
        ],
    ),
    (
        "ownershipControls",
        [
            "GetBucketOwnershipControls",
            "PutBucketOwnershipControls",
            "DeleteBucketOwnershipControls",
        ],
    ),
    ("policy", ["GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy"]),
    (
        "publicAccessBlock",
        [
            "GetPublicAccessBlock",
            "PutPublicAccessBlock",
            "DeletePublicAccessBlock",
        ],
    ),
    (
        "encryption",
        ["GetBucketEncryption", "PutBucketEncryption", "DeleteBucketEncryption"],
    ),
    (
        "replication",
        [
            "GetBucketReplication",
            "PutBucketReplication",
            "DeleteBucketReplication",
        ],
    ),
    (
        "tagging",
        ["GetBucketTagging", "PutBucketTagging", "DeleteBucketTagging"],
    ),
    ("versioning", ["GetBucketVersioning", "PutBucketVersioning", "Unknown"]),
    (
        "website",
        ["GetBucketWebsite", "PutBucketWebsite", "DeleteBucketWebsite"],
    ),
    (
        "object-lock",
        ["GetObjectLockConfiguration", "PutObjectLockConfiguration", "Unknown"],
    ),
    (
        "accelerate",
        [
            "GetBucketAccelerateConfiguration",
            "PutBucketAccelerateConfiguration",
            "Unknown",
        ],
    ),
    (
        "requestPayment",
        ["GetBucketRequestPayment", "PutBucketRequestPayment", "Unknown"],
    ),
];

/// Whether `name` is a bucket sub-resource parameter (`?versioning`, `?policy`, ...) whose
/// operations [`classify`] names.
pub fn is_bucket_subresource(name: &str) -> bool {
    BUCKET_SUBRESOURCES.iter().any(|(n, _)| *n == name)
}

/// The S3 operation name (`GetObject`, `ListObjectsV2`, ...), or `Unknown`.
pub fn classify(method: &Method, target: Target, query: &[(String, String)], has_copy_source: bool) -> &'static str {
    let has = |name: &str| query.iter().any(|(n, _)| n == name);
    let get = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    match target {
        Target::Service => match *method {
            Method::GET => "ListBuckets",
            _ => "Unknown",
        },
        Target::Bucket => {
            if has("uploads") && *method == Method::GET {
                return "ListMultipartUploads";
            }
            if has("versions") && *method == Method::GET {
                return "ListObjectVersions";
            }
            if has("delete") && *method == Method::POST {
                return "DeleteObjects";
            }
            if let Some((_, [get_op, put_op, delete_op])) = BUCKET_SUBRESOURCES.iter().find(|(name, _)| has(name)) {
                return match *method {
                    Method::GET => get_op,
                    Method::PUT => put_op,
                    Method::DELETE => delete_op,
                    _ => "Unknown",
                };
            }
            match *method {
                Method::GET if get("list-type") == Some("2") => "ListObjectsV2",
                Method::GET => "ListObjects",
                Method::HEAD => "HeadBucket",
                Method::PUT => "CreateBucket",
                Method::DELETE => "DeleteBucket",
                Method::POST => "PostObject",
                _ => "Unknown",
            }
        }
        Target::Object => {
            let upload = has("uploadId");
            match *method {
                Method::GET if upload => "ListParts",
                Method::GET if has("acl") => "GetObjectAcl",
                Method::GET if has("tagging") => "GetObjectTagging",
                Method::GET if has("attributes") => "GetObjectAttributes",
                Method::GET => "GetObject",
                Method::HEAD => "HeadObject",
                Method::PUT if upload && has_copy_source => "UploadPartCopy",
                Method::PUT if upload => "UploadPart",
                Method::PUT if has("acl") => "PutObjectAcl",
                Method::PUT if has("tagging") => "PutObjectTagging",
                Method::PUT if has_copy_source => "CopyObject",
                Method::PUT => "PutObject",
                Method::POST if has("uploads") => "CreateMultipartUpload",
                Method::POST if upload => "CompleteMultipartUpload",
                Method::POST if has("restore") => "RestoreObject",
                Method::DELETE if upload => "AbortMultipartUpload",
                Method::DELETE if has("tagging") => "DeleteObjectTagging",
                Method::DELETE => "DeleteObject",
                _ => "Unknown",
            }
        }
    }
}

/// True for operations whose XML response carries provider values a dialect may spell
/// differently: `<ETag>` and `<StorageClass>`.
pub fn response_carries_object_values(operation: &str) -> bool {
    matches!(
        operation,
        "ListObjects"
            | "ListObjectsV2"
            | "ListObjectVersions"
            | "ListMultipartUploads"
            | "ListParts"
            | "CompleteMultipartUpload"
            | "CopyObject"
            | "UploadPartCopy"
            | "GetObjectAttributes"
    )
}

/// Operations whose XML responses name the bucket (and so need mapping back when renamed).
pub fn response_names_bucket(operation: &str) -> bool {
    matches!(
        operation,
        "ListObjects"
            | "ListObjectsV2"
            | "ListObjectVersions"
            | "ListMultipartUploads"
            | "ListParts"
            | "CreateMultipartUpload"
            | "CompleteMultipartUpload"
    )
}

/// Operations S3 requires a body checksum for (`Content-MD5` or `x-amz-checksum-*`): the
/// `httpChecksum requestChecksumRequired` operations of the S3 model that s3ferry can name.
pub fn requires_checksum(operation: &str) -> bool {
    matches!(
        operation,
        "DeleteObjects"
            | "PutBucketAcl"
            | "PutBucketCors"
            | "PutBucketEncryption"
            | "PutBucketLifecycleConfiguration"
            | "PutBucketLogging"
            | "PutBucketOwnershipControls"
            | "PutBucketPolicy"
            | "PutBucketReplication"
            | "PutBucketRequestPayment"
            | "PutBucketTagging"
            | "PutBucketVersioning"
            | "PutBucketWebsite"
            | "PutObjectAcl"
            | "PutObjectLockConfiguration"
            | "PutObjectTagging"
            | "PutPublicAccessBlock"
    )
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
                classify(method, *target, &q(query), *copy),
                *expected,
                "{method} {target:?} {query:?}"
            );
        }
    }
}
