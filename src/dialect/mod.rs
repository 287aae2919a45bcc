//! Provider dialects as data: one [`DialectProfile`] per provider family, overridable per
//! provider in the config file. The gateway never asks "is this OSS?"; it asks the profile.
//!
//! Every field of the built-in profiles cites docs/dialects.md (a section such as `A.1` or
//! `§1a`, a rule or a finding, or a source label such as `[gitlab-1564]`) so a reader can check
//! where a value came from; `tests/it/citations.rs` checks that each one exists there.

pub mod translate;

use serde::Deserialize;

use crate::checksum::ChecksumAlgorithm;
use crate::s3::addressing::Addressing;
use crate::s3::operation::Operation;
use crate::s3::operation::Operation as Op;

/// The S3 canned ACLs AWS knows, in the order the S3 API reference lists them.
pub const AWS_CANNED_ACLS: &[&str] = &[
    "private",
    "public-read",
    "public-read-write",
    "aws-exec-read",
    "authenticated-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
    "log-delivery-write",
];

/// The storage class names of the AWS S3 API (docs/dialects.md §1b).
pub const AWS_STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "GLACIER_IR",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "EXPRESS_ONEZONE",
    "SNOW",
];

/// The client name of a `storage_classes` entry that takes every class not listed.
pub const ANY_STORAGE_CLASS: &str = "*";

/// The case a provider writes ETag hex digits in (`etag_case = "lower"` or `"upper"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EtagCase {
    /// AWS form: lowercase hex; nothing to translate.
    Lower,
    /// OSS form: uppercase hex; lowercased toward the client, uppercased toward the provider.
    Upper,
}

/// What to do with a canned ACL (or grant) the provider does not accept (`acl.unsupported =
/// "map"`, `"drop"` or `"reject"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnsupportedAcl {
    /// Replace it with the nearest ACL the provider accepts that grants no more access
    /// (e.g. `authenticated-read` -> `private`); grants are dropped.
    Map,
    /// Forward the request without it (the object gets the provider's default ACL).
    Drop,
    /// Refuse the request with `AccessControlListNotSupported`.
    Reject,
}

/// How a conditional write (`If-None-Match: *`, `If-Match` on PutObject, CopyObject and
/// CompleteMultipartUpload) reaches the provider (docs/dialects.md rule 25). In the config
/// (`conditional_writes`) each is named after the provider whose form it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum ConditionalWrites {
    /// AWS headers, forwarded as they are.
    #[serde(rename = "aws")]
    Aws,
    /// OSS: `If-None-Match: *` becomes `x-oss-forbid-overwrite: true`; `If-Match` has no
    /// equivalent and is refused.
    #[serde(rename = "oss")]
    OssForbidOverwrite,
    /// GCS: `If-None-Match: *` becomes `x-goog-if-generation-match: 0`; `If-Match` is refused.
    #[serde(rename = "gcs")]
    GcsGenerationMatch,
    /// No known form: every conditional write is refused with 501 rather than silently
    /// overwriting.
    #[serde(rename = "none")]
    Unsupported,
}

/// How a provider's error code reaches the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMapping {
    /// The provider's code.
    pub provider_code: String,
    /// The AWS code the client sees instead.
    pub aws_code: String,
    /// The HTTP status the client sees instead (`None`: the provider's).
    pub status: Option<u16>,
    /// Logged (once per occurrence) for the operator: what in the config is probably wrong.
    pub hint: Option<String>,
}

/// Everything s3ferry knows about how one provider family differs from AWS S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialectProfile {
    /// The dialect name (`aws`, `oss`, ...).
    pub name: String,
    /// Addressing used when the provider config does not say `addressing = ...`.
    pub addressing: Addressing,
    /// How the provider writes ETags.
    pub etag_case: EtagCase,
    /// Whether the provider accepts `x-amz-acl` / `x-amz-grant-*` headers at all.
    pub acl_headers: bool,
    /// The canned ACLs the provider accepts (when `acl_headers`).
    pub canned_acls: Vec<String>,
    /// Whether `x-amz-grant-*` headers are accepted (when `acl_headers`).
    pub grants: bool,
    /// What happens to an ACL or grant the provider does not accept.
    pub unsupported_acl: UnsupportedAcl,
    /// Storage classes, client (AWS) name -> provider name, in priority order: when several
    /// client names map to one provider name, the first is reported back to clients. A client
    /// name of `*` takes every class not listed (a provider with fewer classes than AWS, B2
    /// with only STANDARD: `* -> STANDARD`).
    pub storage_classes: Vec<(String, String)>,
    /// Request headers never forwarded to this provider (lowercase).
    pub drop_headers: Vec<String>,
    /// Query parameters never forwarded to this provider.
    pub drop_params: Vec<String>,
    /// Provider error codes translated to AWS ones.
    pub error_codes: Vec<ErrorMapping>,
    /// Whether listings honour `encoding-type=url`. When not, s3ferry asks for raw keys and
    /// encodes them itself (botocore always asks, and decodes what it gets).
    pub url_encoded_listings: bool,
    /// The flexible-checksum algorithms the provider accepts in `x-amz-checksum-*` headers (and
    /// answers under `x-amz-checksum-mode`). A checksum in another algorithm is verified by
    /// s3ferry, not forwarded, and kept in object metadata so reads can still report it.
    pub checksum_algorithms: Vec<ChecksumAlgorithm>,
    /// Whether operations that require a checksum (DeleteObjects, PutBucketCors, ...) must carry
    /// `Content-MD5`, which current SDKs replace with a CRC (docs/dialects.md finding 2, rule 12).
    pub content_md5_required: bool,
    /// How conditional writes are expressed.
    pub conditional_writes: ConditionalWrites,
    /// A provider-native storage-class header sent with the mapped class alongside
    /// `x-amz-storage-class`, for providers that ignore the AWS header on upload.
    pub native_storage_class_header: Option<String>,
    /// Whether the provider implements the `?acl` sub-resource. When not, s3ferry answers
    /// Get*Acl with the one ACL such a provider enforces (owner full control) and treats
    /// Put*Acl like the `x-amz-acl` header.
    pub acl_api: bool,
    /// S3 operations the provider does not implement: refused by s3ferry with 501
    /// `NotImplemented` naming the provider, instead of whatever the provider makes of them.
    pub unsupported_operations: Vec<Operation>,
    /// Whether UploadPartCopy is done by the provider. When not, s3ferry streams the source
    /// range through itself into an UploadPart (docs/dialects.md rule 23).
    pub upload_part_copy: bool,
    /// For a provider that cannot take a checksum sent as an aws-chunked trailer: keep it anyway
    /// by copying the uploaded object onto itself with the checksum in its metadata (one
    /// server-side copy per such upload; in a versioned bucket that adds a version). Off by
    /// default.
    pub trailing_checksums_by_copy: bool,
    /// Whether the provider serves ListObjectsV2. When not, s3ferry sends ListObjects (v1) and
    /// writes the V2 answer itself, continuation tokens included (docs/dialects.md rule 22).
    pub list_objects_v2: bool,
    /// Whether the provider accepts `STREAMING-UNSIGNED-PAYLOAD-TRAILER` aws-chunked uploads.
    /// When it does (and takes the algorithm), a client's verified trailing checksum goes
    /// upstream re-framed in that form, so the provider stores it (docs/dialects.md rule 10c);
    /// otherwise the body goes as plain bytes and the checksum stays with s3ferry.
    pub unsigned_trailer: bool,
    /// Whether the provider stores a key with `.` or `..` segments (`a/../b`) as those literal
    /// bytes. AWS does: S3 paths are never normalised. A server that normalises paths (or has a
    /// normalising proxy in front) would read `/bucket/../other/key` as another bucket's
    /// object, so for every other dialect such keys are refused with 400 `InvalidArgument`
    /// unless this is turned on for a provider known to keep them.
    pub literal_dot_segments: bool,
    /// Whether the provider compares `Content-MD5` and `x-amz-checksum-*` with an upload's body
    /// before the object replaces the one stored (AWS does: a `BadDigest` upload changes
    /// nothing). s3s-fs, behind the local provider, writes the object first and compares after,
    /// so a corrupted upload would replace the good object and still get `BadDigest`; when this
    /// is off, s3ferry compares the digests itself and releases the body's last piece only when
    /// they match, so a mismatch leaves the upload incomplete and nothing is stored.
    pub verifies_before_storing: bool,
    /// Whether every GET of an object with tags answers with `x-amz-tagging-count` (for a key
    /// that may read them), so that an answer without it means no tags: `s3ferry migrate` then
    /// skips the `?tagging` request of each object that has none. Off unless the provider
    /// documents it (AWS does); off, every copy asks for the tags.
    pub tag_count_in_reads: bool,
    /// Whether CopyObject honours the conditional write (`If-None-Match: *` in the
    /// `conditional_writes` form) as PutObject does. A copy the provider makes itself between
    /// two of its buckets relies on it; without it, the key is looked up just before the copy.
    /// Off unless the provider documents it (AWS does).
    pub conditional_copy: bool,
}

/// An owned list of operations.
fn ops(items: &[Op]) -> Vec<Operation> {
    items.to_vec()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

fn classes(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(c, p)| ((*c).to_string(), (*p).to_string()))
        .collect()
}

/// Errors a provider gives when it refuses the key s3ferry signs with: the client's own
/// signature was fine, so relaying `SignatureDoesNotMatch` would send its user chasing the
/// wrong key. A configuration error, with a hint in the log, for every dialect.
fn provider_refused_our_key() -> Vec<ErrorMapping> {
    let config_error = |code: &str, hint: &str| ErrorMapping {
        provider_code: code.into(),
        aws_code: "InternalError".into(),
        status: Some(500),
        hint: Some(hint.into()),
    };
    vec![
        config_error(
            "SignatureDoesNotMatch",
            "the provider refused s3ferry's signature: check providers.<name>.secret_access_key (and signature = \"v2\" for stores that know only SigV2)",
        ),
        config_error(
            "InvalidAccessKeyId",
            "the provider does not know s3ferry's key: check providers.<name>.access_key_id",
        ),
        config_error(
            "AuthorizationHeaderMalformed",
            "the provider expects another signing region: set providers.<name>.region",
        ),
    ]
}

/// AWS itself; the base the other profiles start from.
fn aws() -> DialectProfile {
    DialectProfile {
        name: "aws".into(),
        // Path style stays the default for every provider that accepts it (config default).
        addressing: Addressing::Path,
        // docs/dialects.md §1b: "lowercase MD5 hex".
        etag_case: EtagCase::Lower,
        // docs/dialects.md §1b: "8 canned + grants".
        acl_headers: true,
        canned_acls: strings(AWS_CANNED_ACLS),
        grants: true,
        unsupported_acl: UnsupportedAcl::Map,
        storage_classes: Vec::new(),
        drop_headers: Vec::new(),
        drop_params: Vec::new(),
        error_codes: provider_refused_our_key(),
        url_encoded_listings: true,
        // §1a: "5 algorithms"; §1b: conditional PUT with If-None-Match / If-Match.
        checksum_algorithms: ChecksumAlgorithm::ALL.to_vec(),
        content_md5_required: false,
        conditional_writes: ConditionalWrites::Aws,
        native_storage_class_header: None,
        acl_api: true,
        unsupported_operations: Vec::new(),
        upload_part_copy: true,
        trailing_checksums_by_copy: false,
        list_objects_v2: true,
        // §1a "Unsigned trailer": ✅ [aws-trailers].
        unsigned_trailer: true,
        // Only where a provider is known to keep them (see the `aws` profile).
        literal_dot_segments: false,
        verifies_before_storing: true,
        // Only where the provider documents it (the `aws` profile).
        tag_count_in_reads: false,
        conditional_copy: false,
    }
}

/// The object and bucket tagging operations.
const TAGGING_OPERATIONS: &[Op] = &[
    Op::GetObjectTagging,
    Op::PutObjectTagging,
    Op::DeleteObjectTagging,
    Op::GetBucketTagging,
    Op::PutBucketTagging,
    Op::DeleteBucketTagging,
];
const POLICY_OPERATIONS: &[Op] = &[Op::GetBucketPolicy, Op::PutBucketPolicy, Op::DeleteBucketPolicy];
const OBJECT_LOCK_OPERATIONS: &[Op] = &[Op::GetObjectLockConfiguration, Op::PutObjectLockConfiguration];

/// Providers with no flexible checksums and the MD5 they insist on instead (§B.3).
const NO_CHECKSUMS: &[ChecksumAlgorithm] = &[];

/// The dialects [`builtin`] has a profile for, in one list with the `match` below (a test
/// checks each has one); the config refuses any other name (`config::KNOWN_DIALECTS`).
pub const BUILTIN_DIALECTS: &[&str] = &[
    "aws", "oss", "spaces", "r2", "b2", "gcs", "wasabi", "minio", "garage", "ceph", "local",
];

/// The built-in profile of a known dialect name (one of [`BUILTIN_DIALECTS`]).
pub fn builtin(name: &str) -> Option<DialectProfile> {
    let base = aws();
    let profile = match name {
        // S3 does not normalise URI paths: "Amazon S3 ... does not normalize" (SigV4 canonical
        // request, docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html), so
        // `a/../b` is a key of its own there.
        "aws" => DialectProfile {
            literal_dot_segments: true,
            // GetObject's `x-amz-tagging-count`: "The number of tags, if any, on the object,
            // when you have the relevant permission to read object tags"
            // (docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html).
            tag_count_in_reads: true,
            // CopyObject's `If-None-Match`: "Copies the object only if the object key name at
            // the destination does not already exist ... Otherwise, Amazon S3 returns a 412"
            // (docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html).
            conditional_copy: true,
            ..base
        },
        "oss" => DialectProfile {
            name: "oss".into(),
            // A.1: absent from the S3 operation list.
            unsupported_operations: ops(&[
                &[
                    Op::RestoreObject,
                    Op::ListMultipartUploads,
                    Op::GetBucketVersioning,
                    Op::PutBucketVersioning,
                    Op::ListObjectVersions,
                    Op::GetBucketCors,
                    Op::PutBucketCors,
                    Op::DeleteBucketCors,
                    Op::GetBucketWebsite,
                    Op::PutBucketWebsite,
                    Op::DeleteBucketWebsite,
                ][..],
                TAGGING_OPERATIONS,
                POLICY_OPERATIONS,
                OBJECT_LOCK_OPERATIONS,
            ]
            .concat()),
            // A.1 Checksums: no flexible checksums, integrity via Content-MD5; §B.3: InvalidArgument.
            checksum_algorithms: NO_CHECKSUMS.to_vec(),
            content_md5_required: true,
            // A.1 Limits / rule 25: conditional create is native `x-oss-forbid-overwrite`.
            conditional_writes: ConditionalWrites::OssForbidOverwrite,
            // A.1 Storage classes / rule 27: `x-amz-storage-class` reported ineffective on upload;
            // the native header sets it.
            native_storage_class_header: Some("x-oss-storage-class".into()),
            // A.1 Addressing: "OSS supports only virtual-hosted style … Path-style requests are denied".
            addressing: Addressing::Virtual,
            // A.1 ETag: uppercase hex ([gitlab-1564]).
            etag_case: EtagCase::Upper,
            // A.1 ACL: only private / public-read / public-read-write; no grants.
            canned_acls: strings(&["private", "public-read", "public-read-write"]),
            grants: false,
            // Rule 26: the other AWS canned ACLs map to private.
            unsupported_acl: UnsupportedAcl::Map,
            // A.1 Storage classes: Standard / IA / Archive = STANDARD / STANDARD_IA / GLACIER;
            // rule 27: GLACIER_IR -> Archive, DEEP_ARCHIVE -> ColdArchive.
            storage_classes: classes(&[
                ("STANDARD_IA", "IA"),
                ("GLACIER", "Archive"),
                ("GLACIER_IR", "Archive"),
                ("DEEP_ARCHIVE", "ColdArchive"),
            ]),
            // A.1 Addressing / rule 24: path style -> 403 SecondLevelDomainForbidden, a
            // configuration mistake: logged with a hint, 500 to the client.
            error_codes: [
                provider_refused_our_key(),
                vec![ErrorMapping {
                    provider_code: "SecondLevelDomainForbidden".into(),
                    aws_code: "InternalError".into(),
                    status: Some(500),
                    hint: Some(
                        "the provider accepts only virtual-hosted requests: set addressing = \"virtual\"".into(),
                    ),
                }],
                // Rule 25: a write refused by x-oss-forbid-overwrite is AWS's failed If-None-Match.
                vec![ErrorMapping {
                    provider_code: "FileAlreadyExists".into(),
                    aws_code: "PreconditionFailed".into(),
                    status: Some(412),
                    hint: None,
                }],
            ]
            .concat(),
            // §1a: unsigned trailer ❌ "400 InvalidArgument / NotImplemented" [oss-0017-804].
            unsigned_trailer: false,
            ..base
        },
        "spaces" => DialectProfile {
            name: "spaces".into(),
            // §1a: checksum and trailer support unknown ("?"); the safe form is MD5 only.
            checksum_algorithms: NO_CHECKSUMS.to_vec(),
            content_md5_required: true,
            // §1b: bucket+object ACL, private/public-read in practice ([do-api-old]).
            canned_acls: strings(&["private", "public-read"]),
            grants: false,
            unsupported_acl: UnsupportedAcl::Map,
            // Finding 6: DO does not implement encoding-type=url reliably ([rclone-providers]).
            url_encoded_listings: false,
            // §1a: unsigned trailer unknown ("?"): not sent.
            unsigned_trailer: false,
            ..base
        },
        "r2" => DialectProfile {
            name: "r2".into(),
            // A.3: versioning and object-lock headers not implemented.
            unsupported_operations: ops(&[
                &[Op::PutBucketVersioning, Op::ListObjectVersions][..],
                OBJECT_LOCK_OPERATIONS,
            ]
            .concat()),
            // A.3: CRC32/CRC32C/SHA1/SHA256 only as COMPOSITE, CRC64NVME only as FULL_OBJECT, so
            // CRC64NVME (CLI v2's default) fails on multipart parts: s3ferry checks and keeps it.
            checksum_algorithms: vec![
                ChecksumAlgorithm::Crc32,
                ChecksumAlgorithm::Crc32c,
                ChecksumAlgorithm::Sha1,
                ChecksumAlgorithm::Sha256,
            ],
            // A.3: PutBucketCors/Lifecycle refuse checksum algorithm headers: those get Content-MD5.
            content_md5_required: true,
            // A.3: GetBucketAcl unimplemented.
            acl_api: false,
            // A.3 ACL: `x-amz-acl`/grants not implemented; rule 26: private is a no-op,
            // public ACLs are refused rather than silently dropped.
            acl_headers: false,
            canned_acls: strings(&["private", "bucket-owner-full-control"]),
            grants: false,
            unsupported_acl: UnsupportedAcl::Reject,
            // A.3: STANDARD and STANDARD_IA only; rule 27: others -> the nearest.
            storage_classes: classes(&[
                ("ONEZONE_IA", "STANDARD_IA"),
                ("GLACIER_IR", "STANDARD_IA"),
                ("INTELLIGENT_TIERING", "STANDARD"),
                ("REDUCED_REDUNDANCY", "STANDARD"),
            ]),
            // A.3 / rule 30: no x-amz-expected-bucket-owner / x-amz-request-payer.
            drop_headers: strings(&["x-amz-expected-bucket-owner", "x-amz-request-payer"]),
            // §1a: unsigned trailer ✅ since 2025 (was ❌) [skypilot-5282].
            unsigned_trailer: true,
            ..base
        },
        "b2" => DialectProfile {
            name: "b2".into(),
            // A.4 Checksums: "Unsupported header 'x-amz-checksum-crc32'", also x-amz-checksum-mode.
            checksum_algorithms: NO_CHECKSUMS.to_vec(),
            content_md5_required: true,
            // A.4 ACLs: bucket-level private <-> public-read only; object ACL = bucket ACL.
            canned_acls: strings(&["private", "public-read"]),
            grants: false,
            unsupported_acl: UnsupportedAcl::Map,
            // §1a: unsigned trailer unknown ("?") and no flexible checksums: not sent.
            unsigned_trailer: false,
            // A.4 Storage classes: STANDARD only; any other is `501 NotImplemented: Backblaze
            // only supports the 'STANDARD' storage class` (gobackup/gobackup#155). Every class
            // is stored as STANDARD, and reads and listings report STANDARD: what B2 keeps, not
            // what the client asked for.
            storage_classes: classes(&[(ANY_STORAGE_CLASS, "STANDARD")]),
            ..base
        },
        "gcs" => DialectProfile {
            name: "gcs".into(),
            // A.5 Quirks: no multipart server-side copy.
            upload_part_copy: false,
            // A.5: composite CRC32 -> 412, boto3 >= 1.36 uploads fail: no flexible checksums.
            checksum_algorithms: NO_CHECKSUMS.to_vec(),
            content_md5_required: true,
            // Rule 25: generation preconditions.
            conditional_writes: ConditionalWrites::GcsGenerationMatch,
            // A.5: canned ACLs via x-amz-acl in simple-migration mode (AWS names).
            // A.5 / rule 27: classes STANDARD / NEARLINE / COLDLINE / ARCHIVE.
            storage_classes: classes(&[
                ("STANDARD_IA", "NEARLINE"),
                ("ONEZONE_IA", "NEARLINE"),
                ("GLACIER_IR", "COLDLINE"),
                ("GLACIER", "ARCHIVE"),
                ("DEEP_ARCHIVE", "ARCHIVE"),
            ]),
            // A.5 / rule 30, finding 7: GCS rejects the Go SDK's `x-id` parameter; iceberg-go
            // strips the SDK telemetry headers for GCS ([iceberg-go-1423]).
            drop_params: strings(&["x-id"]),
            drop_headers: strings(&["amz-sdk-invocation-id", "amz-sdk-request", "x-amz-user-agent"]),
            // A.5 Quirks / rule 24: BucketNameUnavailable instead of BucketAlreadyExists.
            error_codes: [
                provider_refused_our_key(),
                vec![ErrorMapping {
                    provider_code: "BucketNameUnavailable".into(),
                    aws_code: "BucketAlreadyExists".into(),
                    status: Some(409),
                    hint: None,
                }],
            ]
            .concat(),
            // §1a: unsigned trailer ⚠ "boto3 ≥1.36 uploads fail (signature)" [gramps-758].
            unsigned_trailer: false,
            ..base
        },
        // A.6: "100% bit-compatible" claim; no documented ACL/class/ETag differences.
        "wasabi" => DialectProfile {
            name: "wasabi".into(),
            // A.6: "Checksum Type mismatch" on UploadPart; conditional PUT unknown ("?"), refused.
            checksum_algorithms: NO_CHECKSUMS.to_vec(),
            content_md5_required: true,
            conditional_writes: ConditionalWrites::Unsupported,
            // §1a: unsigned trailer unknown ("?"): not sent.
            unsigned_trailer: false,
            ..base
        },
        "minio" => DialectProfile {
            name: "minio".into(),
            // A.8: unsupported bucket sub-resources.
            unsupported_operations: ops(&[
                Op::GetBucketWebsite,
                Op::PutBucketWebsite,
                Op::DeleteBucketWebsite,
                Op::GetBucketLogging,
                Op::PutBucketLogging,
                Op::GetBucketAccelerateConfiguration,
                Op::PutBucketAccelerateConfiguration,
                Op::GetBucketRequestPayment,
                Op::PutBucketRequestPayment,
                Op::GetPublicAccessBlock,
                Op::PutPublicAccessBlock,
                Op::DeletePublicAccessBlock,
                Op::GetBucketOwnershipControls,
                Op::PutBucketOwnershipControls,
                Op::DeleteBucketOwnershipControls,
            ]),
            // A.8: GetObjectAcl / PutObjectAcl / PutBucketAcl unsupported.
            acl_api: false,
            // §1b / rule 26: object ACLs unsupported; private is a no-op, public is refused.
            acl_headers: false,
            canned_acls: strings(&["private", "bucket-owner-full-control"]),
            grants: false,
            unsupported_acl: UnsupportedAcl::Reject,
            // §1a: unsigned trailer ✅ (fixed January 2025) [storj-89].
            unsigned_trailer: true,
            ..base
        },
        // A.7 / §1b: grants supported, AWS-style ETags, admin-defined classes.
        "ceph" => DialectProfile {
            name: "ceph".into(),
            // A.7: older releases answer checksum trailers with MissingContentLength; the safe form
            // is MD5 only (override `checksum_algorithms` for recent releases).
            checksum_algorithms: NO_CHECKSUMS.to_vec(),
            content_md5_required: true,
            // Finding 6: Ceph does not implement encoding-type=url reliably ([rclone-providers]).
            url_encoded_listings: false,
            // A.7: rclone lists Ceph with `list_version: 1` ([rclone-ceph]): older RGW releases
            // do not serve ListObjectsV2 (rule 22).
            list_objects_v2: false,
            // §1a: unsigned trailer ⚠ "recent releases only; older → MissingContentLength" [glance-spec].
            unsigned_trailer: false,
            ..base
        },
        "garage" => DialectProfile {
            name: "garage".into(),
            // A.9: no policy, object lock or tagging endpoints.
            unsupported_operations: ops(&[TAGGING_OPERATIONS, POLICY_OPERATIONS, OBJECT_LOCK_OPERATIONS].concat()),
            // A.9: CRC32, CRC32C, SHA1, SHA256, no CRC64NVME; no ACL endpoints; conditional PUT
            // unknown ("?"), refused.
            checksum_algorithms: vec![
                ChecksumAlgorithm::Crc32,
                ChecksumAlgorithm::Crc32c,
                ChecksumAlgorithm::Sha1,
                ChecksumAlgorithm::Sha256,
            ],
            conditional_writes: ConditionalWrites::Unsupported,
            acl_api: false,
            // §1b / rule 26: no ACLs (own key/bucket permissions).
            acl_headers: false,
            canned_acls: strings(&["private", "bucket-owner-full-control"]),
            grants: false,
            unsupported_acl: UnsupportedAcl::Reject,
            // §1a: unsigned trailer ✅ (`x-amz-trailer`) [garage-sig].
            unsigned_trailer: true,
            ..base
        },
        // A.12: s3s-fs, read and tested rather than documented by a provider.
        "local" => DialectProfile {
            name: "local".into(),
            // s3s-fs has no ACL endpoints.
            acl_api: false,
            acl_headers: false,
            canned_acls: strings(&["private", "bucket-owner-full-control"]),
            grants: false,
            unsupported_acl: UnsupportedAcl::Reject,
            // s3s-fs 0.14 decodes `STREAMING-UNSIGNED-PAYLOAD-TRAILER` and stores the trailer's checksum
            // (s3s `AwsChunkedStream`, s3s-fs `put_object`; tests/it/trailers.rs).
            unsigned_trailer: true,
            // s3s-fs 0.14 `put_object`/`upload_part` rename the written file into place, then
            // compare Content-MD5 and checksums (tests/it/upload_integrity.rs).
            verifies_before_storing: false,
            ..base
        },
        _ => return None,
    };
    Some(profile)
}

impl DialectProfile {
    /// True when this provider's ETags or storage class names differ from AWS's, so XML that
    /// carries them (listings, multipart and copy results) is rewritten on the way back.
    pub fn rewrites_object_values(&self) -> bool {
        self.etag_case != EtagCase::Lower || !self.storage_classes.is_empty()
    }

    /// Whether a CompleteMultipartUpload body must be written again for this provider: part
    /// ETags in its case, part checksums of algorithms it does not take left out.
    pub fn rewrites_part_list(&self) -> bool {
        self.etag_case != EtagCase::Lower || self.checksum_algorithms.len() < ChecksumAlgorithm::ALL.len()
    }

    /// Client storage class -> provider storage class: the class's own entry, else the `*`
    /// entry, else the name unchanged.
    pub fn provider_storage_class<'a>(&'a self, client: &'a str) -> &'a str {
        let entry = |name: &str| {
            self.storage_classes
                .iter()
                .find(|(c, _)| c.eq_ignore_ascii_case(name))
                .map(|(_, p)| p.as_str())
        };
        entry(client).or_else(|| entry(ANY_STORAGE_CLASS)).unwrap_or(client)
    }

    /// Provider storage class -> client storage class. An AWS name stays itself; a provider
    /// name goes back to the first client name mapped to it.
    pub fn client_storage_class<'a>(&'a self, provider: &'a str) -> &'a str {
        if AWS_STORAGE_CLASSES.contains(&provider) {
            return provider;
        }
        self.storage_classes
            .iter()
            .find(|(c, p)| c != ANY_STORAGE_CLASS && p.eq_ignore_ascii_case(provider))
            .map_or(provider, |(c, _)| c.as_str())
    }

    /// The provider's ETag form of a client ETag (header value or XML text).
    pub fn provider_etag(&self, client: &str) -> String {
        match self.etag_case {
            EtagCase::Lower => client.to_string(),
            EtagCase::Upper => set_hex_case(client, true),
        }
    }

    /// The client's (AWS, lowercase) form of a provider ETag.
    pub fn client_etag(&self, provider: &str) -> String {
        match self.etag_case {
            EtagCase::Lower => provider.to_string(),
            EtagCase::Upper => set_hex_case(provider, false),
        }
    }

    /// The AWS mapping of a provider error code, if any.
    pub fn error_mapping(&self, provider_code: &str) -> Option<&ErrorMapping> {
        self.error_codes.iter().find(|m| m.provider_code == provider_code)
    }

    /// Whether the canned ACL `acl` reaches the provider unchanged.
    pub fn accepts_canned_acl(&self, acl: &str) -> bool {
        self.acl_headers && self.canned_acls.iter().any(|a| a == acl)
    }
}

/// Changes the case of the hex letters `a-f` only, so `W/`, quotes, `-N` suffixes and entities
/// such as `&quot;` stay as they are.
fn set_hex_case(etag: &str, upper: bool) -> String {
    etag.chars()
        .map(|c| match c {
            'a'..='f' if upper => c.to_ascii_uppercase(),
            'A'..='F' if !upper => c.to_ascii_lowercase(),
            _ => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    const KNOWN_DIALECTS: &[&str] = BUILTIN_DIALECTS;

    fn profile(name: &str) -> DialectProfile {
        builtin(name).expect("known dialect")
    }

    #[test]
    fn every_known_dialect_has_a_profile_named_after_it() {
        for name in KNOWN_DIALECTS {
            assert_eq!(profile(name).name, *name);
        }
        assert!(builtin("azure").is_none());
    }

    #[test]
    fn only_oss_requires_virtual_hosted_addressing() {
        for name in KNOWN_DIALECTS {
            let expected = if *name == "oss" {
                Addressing::Virtual
            } else {
                Addressing::Path
            };
            assert_eq!(profile(name).addressing, expected, "{name}");
        }
    }

    #[test]
    fn oss_storage_classes_map_both_ways() {
        let oss = profile("oss");
        let table = [
            ("STANDARD", "STANDARD"),
            ("STANDARD_IA", "IA"),
            ("GLACIER", "Archive"),
            ("GLACIER_IR", "Archive"),
            ("DEEP_ARCHIVE", "ColdArchive"),
        ];
        for (client, provider) in table {
            assert_eq!(oss.provider_storage_class(client), provider, "{client}");
        }
        for (provider, client) in [
            ("IA", "STANDARD_IA"),
            ("Archive", "GLACIER"),
            ("ColdArchive", "DEEP_ARCHIVE"),
            ("STANDARD", "STANDARD"),
        ] {
            assert_eq!(oss.client_storage_class(provider), client, "{provider}");
        }
    }

    #[test]
    fn gcs_storage_classes_map_both_ways() {
        let gcs = profile("gcs");
        for (client, provider) in [
            ("STANDARD_IA", "NEARLINE"),
            ("ONEZONE_IA", "NEARLINE"),
            ("GLACIER_IR", "COLDLINE"),
            ("GLACIER", "ARCHIVE"),
            ("DEEP_ARCHIVE", "ARCHIVE"),
            ("STANDARD", "STANDARD"),
        ] {
            assert_eq!(gcs.provider_storage_class(client), provider, "{client}");
        }
        for (provider, client) in [
            ("NEARLINE", "STANDARD_IA"),
            ("COLDLINE", "GLACIER_IR"),
            ("ARCHIVE", "GLACIER"),
        ] {
            assert_eq!(gcs.client_storage_class(provider), client, "{provider}");
        }
    }

    #[test]
    fn r2_storage_classes_fold_into_its_two_classes_and_report_aws_names_as_themselves() {
        let r2 = profile("r2");
        for (client, provider) in [
            ("ONEZONE_IA", "STANDARD_IA"),
            ("GLACIER_IR", "STANDARD_IA"),
            ("INTELLIGENT_TIERING", "STANDARD"),
            ("REDUCED_REDUNDANCY", "STANDARD"),
            ("STANDARD_IA", "STANDARD_IA"),
        ] {
            assert_eq!(r2.provider_storage_class(client), provider, "{client}");
        }
        assert_eq!(r2.client_storage_class("STANDARD"), "STANDARD");
        assert_eq!(r2.client_storage_class("STANDARD_IA"), "STANDARD_IA");
    }

    #[test]
    fn b2_stores_every_class_as_standard_and_reports_what_it_keeps() {
        let b2 = profile("b2");
        for class in AWS_STORAGE_CLASSES.iter().chain(&["SOME_FUTURE_CLASS"]) {
            assert_eq!(b2.provider_storage_class(class), "STANDARD", "{class}");
        }
        // Down: STANDARD is what B2 holds, and stays STANDARD; `*` is never a client's class.
        assert_eq!(b2.client_storage_class("STANDARD"), "STANDARD");
        let wide = DialectProfile {
            storage_classes: classes(&[("GLACIER", "ARCHIVE"), (ANY_STORAGE_CLASS, "HOT")]),
            ..profile("aws")
        };
        assert_eq!(wide.provider_storage_class("GLACIER"), "ARCHIVE");
        assert_eq!(wide.provider_storage_class("STANDARD_IA"), "HOT");
        assert_eq!(wide.client_storage_class("HOT"), "HOT");
        assert_eq!(wide.client_storage_class("ARCHIVE"), "GLACIER");
    }

    #[test]
    fn dialects_without_class_names_pass_classes_through() {
        for name in ["aws", "spaces", "wasabi", "minio", "ceph", "garage", "local"] {
            let p = profile(name);
            for class in AWS_STORAGE_CLASSES {
                assert_eq!(p.provider_storage_class(class), *class, "{name}");
                assert_eq!(p.client_storage_class(class), *class, "{name}");
            }
        }
    }

    #[test]
    fn canned_acl_tables_per_dialect() {
        let table: &[(&str, &[&str])] = &[
            ("aws", AWS_CANNED_ACLS),
            ("wasabi", AWS_CANNED_ACLS),
            ("ceph", AWS_CANNED_ACLS),
            ("gcs", AWS_CANNED_ACLS),
            ("oss", &["private", "public-read", "public-read-write"]),
            ("spaces", &["private", "public-read"]),
            ("b2", &["private", "public-read"]),
            ("r2", &[]),
            ("minio", &[]),
            ("garage", &[]),
            ("local", &[]),
        ];
        for (name, accepted) in table {
            let p = profile(name);
            for acl in AWS_CANNED_ACLS {
                assert_eq!(p.accepts_canned_acl(acl), accepted.contains(acl), "{name} {acl}");
            }
        }
    }

    #[test]
    fn grants_and_acl_policies_per_dialect() {
        for (name, grants, policy) in [
            ("aws", true, UnsupportedAcl::Map),
            ("ceph", true, UnsupportedAcl::Map),
            ("oss", false, UnsupportedAcl::Map),
            ("spaces", false, UnsupportedAcl::Map),
            ("b2", false, UnsupportedAcl::Map),
            ("r2", false, UnsupportedAcl::Reject),
            ("minio", false, UnsupportedAcl::Reject),
            ("garage", false, UnsupportedAcl::Reject),
        ] {
            let p = profile(name);
            assert_eq!(p.grants, grants, "{name}");
            assert_eq!(p.unsupported_acl, policy, "{name}");
        }
    }

    #[test]
    fn etag_case_changes_only_hex_letters() {
        let oss = profile("oss");
        assert_eq!(
            oss.provider_etag("\"9bb58f26192e4ba00f01e2e7b136bbd8\""),
            "\"9BB58F26192E4BA00F01E2E7B136BBD8\""
        );
        assert_eq!(oss.client_etag("W/\"ABCDEF-12\""), "W/\"abcdef-12\"");
        assert_eq!(oss.client_etag("&quot;ABC&quot;"), "&quot;abc&quot;");
        assert_eq!(oss.provider_etag("*"), "*");
        let aws = profile("aws");
        assert_eq!(aws.client_etag("\"ABC\""), "\"ABC\"");
        assert_eq!(aws.provider_etag("\"abc\""), "\"abc\"");
    }

    #[test]
    fn error_code_tables_per_dialect() {
        let oss = profile("oss");
        let m = oss.error_mapping("SecondLevelDomainForbidden").expect("mapped");
        assert_eq!((m.aws_code.as_str(), m.status), ("InternalError", Some(500)));
        assert!(
            m.hint
                .as_deref()
                .is_some_and(|h| h.contains("addressing = \"virtual\""))
        );
        let gcs = profile("gcs");
        let m = gcs.error_mapping("BucketNameUnavailable").expect("mapped");
        assert_eq!((m.aws_code.as_str(), m.status), ("BucketAlreadyExists", Some(409)));
        assert!(profile("aws").error_mapping("SecondLevelDomainForbidden").is_none());
    }

    #[test]
    fn dropped_headers_and_params_per_dialect() {
        let r2 = profile("r2");
        assert_eq!(r2.drop_headers, ["x-amz-expected-bucket-owner", "x-amz-request-payer"]);
        let gcs = profile("gcs");
        assert_eq!(gcs.drop_params, ["x-id"]);
        assert!(gcs.drop_headers.contains(&"amz-sdk-invocation-id".to_string()));
        assert!(profile("aws").drop_headers.is_empty() && profile("aws").drop_params.is_empty());
    }

    #[test]
    fn only_translating_dialects_rewrite_object_values() {
        for name in ["oss", "gcs", "r2"] {
            assert!(profile(name).rewrites_object_values(), "{name}");
        }
        for name in ["aws", "wasabi", "ceph", "minio", "local"] {
            assert!(!profile(name).rewrites_object_values(), "{name}");
        }
    }

    #[test]
    fn a_provider_refusing_s3ferrys_own_key_is_a_configuration_error_everywhere() {
        for name in KNOWN_DIALECTS {
            let p = profile(name);
            for code in [
                "SignatureDoesNotMatch",
                "InvalidAccessKeyId",
                "AuthorizationHeaderMalformed",
            ] {
                let m = p.error_mapping(code).unwrap_or_else(|| panic!("{name}: {code}"));
                assert_eq!((m.aws_code.as_str(), m.status), ("InternalError", Some(500)), "{name}");
                assert!(m.hint.as_deref().is_some_and(|h| h.contains("providers.")), "{name}");
            }
        }
    }

    #[test]
    fn unsigned_trailers_go_to_the_providers_that_take_them() {
        for name in KNOWN_DIALECTS {
            let expected = matches!(*name, "aws" | "minio" | "garage" | "r2" | "local");
            assert_eq!(profile(name).unsigned_trailer, expected, "{name}");
        }
    }

    #[test]
    fn only_ceph_lists_through_listobjects_v1() {
        for name in KNOWN_DIALECTS {
            assert_eq!(profile(name).list_objects_v2, *name != "ceph", "{name}");
        }
    }

    #[test]
    fn checksum_conditional_and_operation_tables_per_dialect() {
        use crate::checksum::ChecksumAlgorithm as A;
        for name in ["oss", "b2", "gcs", "spaces", "wasabi", "ceph"] {
            let p = profile(name);
            assert!(p.checksum_algorithms.is_empty() && p.content_md5_required, "{name}");
        }
        assert_eq!(profile("aws").checksum_algorithms, A::ALL);
        assert!(!profile("r2").checksum_algorithms.contains(&A::Crc64Nvme));
        assert!(!profile("garage").checksum_algorithms.contains(&A::Crc64Nvme));
        assert_eq!(profile("oss").conditional_writes, ConditionalWrites::OssForbidOverwrite);
        assert_eq!(profile("gcs").conditional_writes, ConditionalWrites::GcsGenerationMatch);
        assert_eq!(profile("wasabi").conditional_writes, ConditionalWrites::Unsupported);
        assert_eq!(profile("minio").conditional_writes, ConditionalWrites::Aws);
        assert!(
            profile("oss")
                .unsupported_operations
                .contains(&Op::ListMultipartUploads)
        );
        assert!(profile("garage").unsupported_operations.contains(&Op::PutObjectTagging));
        assert!(profile("aws").unsupported_operations.is_empty());
        assert!(!profile("gcs").upload_part_copy && profile("aws").upload_part_copy);
        for name in ["r2", "minio", "garage", "local"] {
            assert!(!profile(name).acl_api, "{name}");
        }
    }
}
