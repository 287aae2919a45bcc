//! Who may do what: the per-key grants of `[[credentials]]` and the anonymous access of
//! `[[buckets]]`, decided as a pure function before anything reaches a provider.
//!
//! The safety rule: a request reaches a provider only when a grant of the key that signed it
//! (or, unsigned, the bucket's `anonymous` setting) names the bucket, covers the key, and
//! allows the [`Action`] its operation maps to. Every operation maps to one action in one
//! table ([`action_of`]); an operation s3ferry cannot name maps to [`Action::Admin`] unless it
//! is a GET or HEAD, so nothing new slips through as a write. A key with a `prefix` reaches only
//! keys that start with it, and lists only with a `prefix` parameter that starts with it (what
//! AWS IAM's `s3:prefix` condition does,
//! <https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html>).
//!
//! [`decide`] is the one decision; the gateway calls it for the request's bucket and key, for
//! a copy source, and for every key of a DeleteObjects body.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::s3::operation::{self, Operation, Operation as Op, Target};

/// What a grant allows, as written in the config (`access = "read"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Object reads, listings, bucket information and configuration reads.
    Read,
    /// Object writes only: PutObject and the multipart operations; no reads, no deletes (an
    /// upload-only partner key).
    Upload,
    /// `read` and `upload`, plus deletes, tagging and copies (the source must be readable by
    /// the same key).
    Write,
    /// Everything: `write` plus creating and deleting buckets, bucket configuration and ACLs.
    Admin,
}

impl Level {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Upload => "upload",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }

    fn allows(self, action: Action) -> bool {
        use Action::*;
        match self {
            Self::Read => matches!(
                action,
                ObjectRead | ObjectInfoRead | CopySource | List | ListHistory | BucketInfo | BucketConfigRead
            ),
            Self::Upload => matches!(action, ObjectUpload | BucketInfo),
            Self::Write => !matches!(action, ObjectAdmin | Admin),
            Self::Admin => true,
        }
    }
}

/// What an operation does, for the purpose of deciding whether it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// GetObject, HeadObject of an object's current version, as stored.
    ObjectRead,
    /// Other reads of one object: its ACL, tags, attributes, an older version (`versionId`,
    /// AWS's separate `s3:GetObjectVersion`), or its data with response headers overridden
    /// (`response-*`, which AWS refuses on unsigned requests:
    /// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html>).
    ObjectInfoRead,
    /// ListObjects(V2): names under a prefix.
    List,
    /// ListObjectVersions, ListMultipartUploads: names under a prefix, with deleted versions
    /// and uploads in progress (AWS's separate `s3:ListBucketVersions` and
    /// `s3:ListBucketMultipartUploads`).
    ListHistory,
    /// HeadBucket, GetBucketLocation: that the bucket exists and where.
    BucketInfo,
    /// Reads of bucket configuration (`?versioning`, `?policy`, ...).
    BucketConfigRead,
    /// PutObject, CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
    /// AbortMultipartUpload, ListParts (of an upload the client started), a copy's destination.
    ObjectUpload,
    /// DeleteObject (and each key of DeleteObjects), object tagging, restore.
    ObjectChange,
    /// Reading a copy's source (`x-amz-copy-source`): like [`Action::ObjectRead`] for a key,
    /// never for an unsigned request.
    CopySource,
    /// Changing an object's ACL (PutObjectAcl, or a write that sets `x-amz-acl`/`x-amz-grant-*`).
    ObjectAdmin,
    /// CreateBucket, DeleteBucket, bucket configuration changes, anything not named.
    Admin,
}

impl Action {
    /// Whether the action is about one key (a grant's `prefix` must cover it), about the
    /// listing prefix (it must start with the grant's prefix) or about the whole bucket.
    fn scope(self) -> ScopeKind {
        match self {
            Self::ObjectRead
            | Self::ObjectInfoRead
            | Self::CopySource
            | Self::ObjectUpload
            | Self::ObjectChange
            | Self::ObjectAdmin => ScopeKind::Key,
            Self::List | Self::ListHistory => ScopeKind::ListPrefix,
            Self::BucketInfo => ScopeKind::Any,
            Self::BucketConfigRead | Self::Admin => ScopeKind::WholeBucket,
        }
    }
}

enum ScopeKind {
    Key,
    ListPrefix,
    /// Any grant on the bucket, with or without a prefix.
    Any,
    /// Only a grant without a prefix.
    WholeBucket,
}

/// One grant: buckets (client names, `*` for every routed bucket), an optional key prefix, a level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub buckets: Vec<String>,
    /// Empty: every key.
    pub prefix: String,
    pub access: Level,
}

impl Grant {
    /// Full access to every bucket: what `grants = "all"` means.
    pub fn all() -> Self {
        Self {
            buckets: vec![crate::s3::bucket_name::WILDCARD_BUCKET.to_string()],
            prefix: String::new(),
            access: Level::Admin,
        }
    }

    fn names(&self, bucket: &str) -> bool {
        self.buckets
            .iter()
            .any(|b| b == crate::s3::bucket_name::WILDCARD_BUCKET || b == bucket)
    }

    /// Whether this grant reaches every bucket (what `config check` warns about).
    pub fn reaches_every_bucket(&self) -> bool {
        self.prefix.is_empty()
            && self
                .buckets
                .iter()
                .any(|b| b == crate::s3::bucket_name::WILDCARD_BUCKET)
    }

    fn covers(&self, action: Action, bucket: &str, object: Object<'_>) -> bool {
        if !self.names(bucket) || !self.access.allows(action) {
            return false;
        }
        match (action.scope(), object) {
            (ScopeKind::Any, _) | (_, Object::SomeKey) => true,
            (ScopeKind::WholeBucket, _) => self.prefix.is_empty(),
            (ScopeKind::Key | ScopeKind::ListPrefix, Object::Key(key) | Object::ListPrefix(key)) => {
                key.starts_with(&self.prefix)
            }
            (ScopeKind::Key | ScopeKind::ListPrefix, Object::Bucket) => self.prefix.is_empty(),
        }
    }
}

/// What unsigned requests may do on one bucket (`[[buckets]] anonymous = ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnonymousAccess {
    /// GetObject and HeadObject (and, with `list`, listings and HeadBucket) are served with
    /// the provider's key.
    Read { list: bool },
    /// GetObject, HeadObject, listings, HeadBucket, uploads and deletes go to the provider
    /// unsigned; its own public access rules decide, and s3ferry lends no key. Copies never:
    /// the source would be read with s3ferry's key when it lives elsewhere.
    Provider,
}

impl AnonymousAccess {
    fn allows(self, action: Action) -> Option<Forwarding> {
        use Action::*;
        match self {
            Self::Read { list } => {
                let allowed = action == ObjectRead || (list && matches!(action, List | BucketInfo));
                allowed.then_some(Forwarding::Signed)
            }
            // Not ObjectInfoRead: for providers without an ACL API s3ferry answers GetObjectAcl
            // itself after a signed HEAD, which would lend its key as an existence oracle.
            Self::Provider => matches!(
                action,
                ObjectRead | List | ListHistory | BucketInfo | ObjectUpload | ObjectChange
            )
            .then_some(Forwarding::Unsigned),
        }
    }
}

/// Who sent the request: the access key s3s verified, or nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity<'a> {
    Key(&'a str),
    Anonymous,
}

/// What an action is applied to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object<'a> {
    /// One object key.
    Key(&'a str),
    /// A listing's `prefix` parameter (empty when none was given).
    ListPrefix(&'a str),
    /// The bucket itself.
    Bucket,
    /// Some keys of the bucket, not known yet (a DeleteObjects body before it is read): any
    /// grant of the level on the bucket passes, and each key is decided once it is known.
    SomeKey,
}

/// How an allowed request travels to its provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarding {
    /// Signed with the provider's key, as every request is.
    Signed,
    /// Without any signature: `anonymous = "provider"`.
    Unsigned,
}

/// A refusal: 403 `AccessDenied`. Says nothing about the key or the grants, as AWS says
/// nothing about the policy that refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Access Denied")]
pub struct Denied;

impl From<Denied> for crate::error::GatewayError {
    fn from(_: Denied) -> Self {
        Self::AccessDenied("Access Denied".into())
    }
}

/// Every key's grants and every bucket's anonymous access, from one config generation.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    grants: HashMap<String, Vec<Grant>>,
    anonymous: BTreeMap<String, AnonymousAccess>,
}

impl AccessPolicy {
    pub fn new(grants: HashMap<String, Vec<Grant>>, anonymous: BTreeMap<String, AnonymousAccess>) -> Self {
        Self { grants, anonymous }
    }

    /// Whether `who` may see `bucket` in ListBuckets: any grant that names it.
    pub fn lists_bucket(&self, who: Identity<'_>, bucket: &str) -> bool {
        match who {
            Identity::Key(key) => self.grants.get(key).is_some_and(|g| g.iter().any(|g| g.names(bucket))),
            Identity::Anonymous => false,
        }
    }
}

/// The decision: may `who` apply `action` to `object` in `bucket` (the client's bucket name)?
/// `Ok` says how the request travels; `Err(Denied)` is a 403 that never reaches a provider.
pub fn decide(
    policy: &AccessPolicy,
    who: Identity<'_>,
    action: Action,
    bucket: &str,
    object: Object<'_>,
) -> Result<Forwarding, Denied> {
    match who {
        Identity::Key(key) => {
            let grants = policy.grants.get(key).ok_or(Denied)?;
            if grants.iter().any(|g| g.covers(action, bucket, object)) {
                Ok(Forwarding::Signed)
            } else {
                Err(Denied)
            }
        }
        Identity::Anonymous => policy
            .anonymous
            .get(bucket)
            .and_then(|a| a.allows(action))
            .ok_or(Denied),
    }
}

/// One line describing a grant, for `config check`.
pub fn describe(grant: &Grant) -> String {
    let prefix = if grant.prefix.is_empty() {
        String::new()
    } else {
        format!(" under '{}'", grant.prefix)
    };
    format!("{} on {}{prefix}", grant.access.as_str(), grant.buckets.join(", "))
}

/// Query parameters whose meaning s3ferry knows for the operations it names. A request with
/// any other parameter may be an operation it cannot name (`?retention`, `?legal-hold`), which
/// must not pass as the plain read or write it resembles.
const KNOWN_PARAMS: &[&str] = &[
    "versionId",
    "partNumber",
    "uploadId",
    "uploads",
    "tagging",
    "acl",
    "attributes",
    "delete",
    "restore",
    "location",
    "versions",
    "x-id",
    "list-type",
    "prefix",
    "delimiter",
    "marker",
    "max-keys",
    "continuation-token",
    "start-after",
    "fetch-owner",
    "encoding-type",
    "key-marker",
    "version-id-marker",
    "upload-id-marker",
    "max-uploads",
    "max-parts",
    "part-number-marker",
    "response-content-type",
    "response-content-language",
    "response-expires",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
];

/// The action of an operation (as `operation::classify` names it for `target`). `sets_acl`: the request
/// carries `x-amz-acl` or an `x-amz-grant-*` header, which changes who may read the object
/// (AWS asks for `s3:PutObjectAcl` too,
/// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html>).
pub fn action_of(
    operation: Operation,
    method: &http::Method,
    target: Target,
    query: &[(String, String)],
    sets_acl: bool,
) -> Action {
    let is_read = matches!(*method, http::Method::GET | http::Method::HEAD);
    let known = |name: &str| {
        KNOWN_PARAMS.contains(&name) || (target == Target::Bucket && operation::is_bucket_subresource(name))
    };
    // SDKs name the operation in `x-id`; one naming another operation is a request s3ferry
    // would read one way and a provider that routes by it another (an unsigned query, or a
    // SigV2 one, is the client's to change).
    let other_x_id = query
        .iter()
        .any(|(name, value)| name == "x-id" && value != operation.as_str());
    let unknown_param = other_x_id || query.iter().any(|(name, _)| !known(name));
    if unknown_param || operation == Op::Unknown {
        // A bucket-level read stays bucket-wide; an object-level one is about that object.
        return if is_read { Action::ObjectInfoRead } else { Action::Admin };
    }
    let action = match operation {
        Op::GetObject | Op::HeadObject
            if query
                .iter()
                .any(|(name, _)| name == "versionId" || name.starts_with("response-")) =>
        {
            Action::ObjectInfoRead
        }
        Op::GetObject | Op::HeadObject => Action::ObjectRead,
        Op::GetObjectAcl | Op::GetObjectTagging | Op::GetObjectAttributes => Action::ObjectInfoRead,
        Op::ListObjects | Op::ListObjectsV2 => Action::List,
        Op::ListObjectVersions | Op::ListMultipartUploads => Action::ListHistory,
        Op::HeadBucket | Op::GetBucketLocation => Action::BucketInfo,
        Op::PutObject
        | Op::CopyObject
        | Op::CreateMultipartUpload
        | Op::UploadPart
        | Op::UploadPartCopy
        | Op::CompleteMultipartUpload
        | Op::AbortMultipartUpload
        | Op::ListParts => Action::ObjectUpload,
        Op::DeleteObject | Op::DeleteObjects | Op::PutObjectTagging | Op::DeleteObjectTagging | Op::RestoreObject => {
            Action::ObjectChange
        }
        Op::PutObjectAcl => Action::ObjectAdmin,
        op if op.as_str().starts_with("Get") && is_read => Action::BucketConfigRead,
        _ => Action::Admin,
    };
    match action {
        Action::ObjectUpload if sets_acl => Action::ObjectAdmin,
        other => other,
    }
}

/// Whether request headers set an ACL (`x-amz-acl`, `x-amz-grant-*`).
pub fn sets_acl(headers: &http::HeaderMap) -> bool {
    headers
        .keys()
        .any(|name| name.as_str() == "x-amz-acl" || name.as_str().starts_with("x-amz-grant-"))
}

/// The object an operation's action applies to: the key for object operations, the listing
/// prefix for listings, the bucket otherwise.
pub fn object_of<'a>(action: Action, key: &'a str, query: &'a [(String, String)]) -> Object<'a> {
    match action {
        Action::List | Action::ListHistory => Object::ListPrefix(
            query
                .iter()
                .find(|(name, _)| name == "prefix")
                .map_or("", |(_, value)| value.as_str()),
        ),
        _ if key.is_empty() => Object::Bucket,
        _ => Object::Key(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;
    use http::Method;

    fn policy() -> AccessPolicy {
        let grant = |buckets: &[&str], prefix: &str, access| Grant {
            buckets: buckets.iter().map(|b| b.to_string()).collect(),
            prefix: prefix.into(),
            access,
        };
        let grants = HashMap::from([
            ("admin".to_string(), vec![Grant::all()]),
            ("reader".to_string(), vec![grant(&["photos"], "", Level::Read)]),
            ("uploader".to_string(), vec![grant(&["photos"], "in/", Level::Upload)]),
            (
                "writer".to_string(),
                vec![grant(&["photos", "docs"], "team/", Level::Write)],
            ),
            ("nothing".to_string(), vec![]),
        ]);
        let anonymous = BTreeMap::from([
            ("public".to_string(), AnonymousAccess::Read { list: false }),
            ("listed".to_string(), AnonymousAccess::Read { list: true }),
            ("native".to_string(), AnonymousAccess::Provider),
        ]);
        AccessPolicy::new(grants, anonymous)
    }

    /// (who, action, bucket, object, expected)
    type DecisionCase = (
        Identity<'static>,
        Action,
        &'static str,
        Object<'static>,
        Result<Forwarding, Denied>,
    );

    /// (operation, method, query, sets an ACL, expected)
    type ActionCase = (
        &'static str,
        Method,
        &'static [(&'static str, &'static str)],
        bool,
        Action,
    );

    /// The operation of a table row (`Unknown` too, which no config may name).
    fn named(name: &str) -> Operation {
        name.parse().unwrap_or(Operation::Unknown)
    }

    #[test]
    fn decisions_follow_the_table() {
        let p = policy();
        let key = Identity::Key;
        let ok = Ok(Forwarding::Signed);
        // (who, action, bucket, object, expected)
        let cases: &[DecisionCase] = &[
            (key("admin"), Admin, "anything", Object::Bucket, ok),
            (key("admin"), ObjectAdmin, "photos", Object::Key("k"), ok),
            (key("reader"), ObjectRead, "photos", Object::Key("a/b"), ok),
            (key("reader"), List, "photos", Object::ListPrefix(""), ok),
            (key("reader"), BucketConfigRead, "photos", Object::Bucket, ok),
            (key("reader"), ObjectUpload, "photos", Object::Key("a"), Err(Denied)),
            (key("reader"), ObjectChange, "photos", Object::Key("a"), Err(Denied)),
            (key("reader"), ObjectRead, "docs", Object::Key("a"), Err(Denied)),
            (key("reader"), Admin, "photos", Object::Bucket, Err(Denied)),
            (key("uploader"), ObjectUpload, "photos", Object::Key("in/x"), ok),
            (
                key("uploader"),
                ObjectUpload,
                "photos",
                Object::Key("out/x"),
                Err(Denied),
            ),
            (key("uploader"), ObjectUpload, "photos", Object::Key("in"), Err(Denied)),
            (key("uploader"), ObjectRead, "photos", Object::Key("in/x"), Err(Denied)),
            (
                key("uploader"),
                ObjectInfoRead,
                "photos",
                Object::Key("in/x"),
                Err(Denied),
            ),
            (key("uploader"), List, "photos", Object::ListPrefix("in/"), Err(Denied)),
            (
                key("uploader"),
                ObjectChange,
                "photos",
                Object::Key("in/x"),
                Err(Denied),
            ),
            (key("uploader"), BucketInfo, "photos", Object::Bucket, ok),
            (key("writer"), ObjectChange, "docs", Object::Key("team/x"), ok),
            (key("writer"), ObjectRead, "docs", Object::Key("team/x"), ok),
            (key("writer"), ObjectAdmin, "docs", Object::Key("team/x"), Err(Denied)),
            (key("writer"), List, "docs", Object::ListPrefix("team/sub"), ok),
            (key("writer"), List, "docs", Object::ListPrefix("tea"), Err(Denied)),
            (key("writer"), List, "docs", Object::ListPrefix(""), Err(Denied)),
            (key("writer"), BucketConfigRead, "docs", Object::Bucket, Err(Denied)),
            (key("writer"), BucketInfo, "docs", Object::Bucket, ok),
            (key("writer"), ObjectRead, "other", Object::Key("team/x"), Err(Denied)),
            (key("writer"), ObjectChange, "docs", Object::SomeKey, ok),
            (key("reader"), ObjectChange, "photos", Object::SomeKey, Err(Denied)),
            (key("reader"), CopySource, "photos", Object::Key("a"), ok),
            (key("uploader"), CopySource, "photos", Object::Key("in/x"), Err(Denied)),
            (Identity::Anonymous, CopySource, "native", Object::Key("a"), Err(Denied)),
            (Identity::Anonymous, CopySource, "public", Object::Key("a"), Err(Denied)),
            (
                Identity::Anonymous,
                ObjectInfoRead,
                "native",
                Object::Key("a"),
                Err(Denied),
            ),
            (key("nothing"), BucketInfo, "photos", Object::Bucket, Err(Denied)),
            (key("stranger"), ObjectRead, "photos", Object::Key("a"), Err(Denied)),
            (Identity::Anonymous, ObjectRead, "public", Object::Key("a"), ok),
            (
                Identity::Anonymous,
                ObjectInfoRead,
                "public",
                Object::Key("a"),
                Err(Denied),
            ),
            (Identity::Anonymous, List, "public", Object::ListPrefix(""), Err(Denied)),
            (Identity::Anonymous, BucketInfo, "public", Object::Bucket, Err(Denied)),
            (Identity::Anonymous, List, "listed", Object::ListPrefix(""), ok),
            (
                Identity::Anonymous,
                ListHistory,
                "listed",
                Object::ListPrefix(""),
                Err(Denied),
            ),
            (key("reader"), ListHistory, "photos", Object::ListPrefix(""), ok),
            (key("writer"), ListHistory, "docs", Object::ListPrefix("team/"), ok),
            (
                key("uploader"),
                ListHistory,
                "photos",
                Object::ListPrefix("in/"),
                Err(Denied),
            ),
            (Identity::Anonymous, BucketInfo, "listed", Object::Bucket, ok),
            (
                Identity::Anonymous,
                ObjectUpload,
                "listed",
                Object::Key("a"),
                Err(Denied),
            ),
            (
                Identity::Anonymous,
                ObjectUpload,
                "native",
                Object::Key("a"),
                Ok(Forwarding::Unsigned),
            ),
            (
                Identity::Anonymous,
                ObjectRead,
                "native",
                Object::Key("a"),
                Ok(Forwarding::Unsigned),
            ),
            (
                Identity::Anonymous,
                ObjectAdmin,
                "native",
                Object::Key("a"),
                Err(Denied),
            ),
            (Identity::Anonymous, Admin, "native", Object::Bucket, Err(Denied)),
            (Identity::Anonymous, ObjectRead, "photos", Object::Key("a"), Err(Denied)),
        ];
        for (who, action, bucket, object, expected) in cases {
            assert_eq!(
                decide(&p, *who, *action, bucket, *object),
                *expected,
                "{who:?} {action:?} {bucket} {object:?}"
            );
        }
    }

    #[test]
    fn every_operation_maps_to_one_action() {
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
        };
        let cases: &[ActionCase] = &[
            ("GetObject", Method::GET, &[], false, ObjectRead),
            ("PutObject", Method::PUT, &[("policy", "")], false, Admin),
            ("PutObject", Method::PUT, &[("versioning", "")], false, Admin),
            ("HeadObject", Method::HEAD, &[("partNumber", "1")], false, ObjectRead),
            ("HeadObject", Method::HEAD, &[("versionId", "1")], false, ObjectInfoRead),
            (
                "GetObject",
                Method::GET,
                &[("response-content-type", "text/html")],
                false,
                ObjectInfoRead,
            ),
            (
                "ListObjectVersions",
                Method::GET,
                &[("versions", "")],
                false,
                ListHistory,
            ),
            (
                "ListMultipartUploads",
                Method::GET,
                &[("uploads", "")],
                false,
                ListHistory,
            ),
            ("GetObject", Method::GET, &[("retention", "")], false, ObjectInfoRead),
            ("PutObject", Method::PUT, &[("retention", "")], false, Admin),
            ("PutObject", Method::PUT, &[("legal-hold", "")], false, Admin),
            ("PutObject", Method::PUT, &[("x-id", "PutObject")], false, ObjectUpload),
            ("PutObject", Method::PUT, &[("x-id", "DeleteObject")], false, Admin),
            ("GetObject", Method::GET, &[("x-id", "GetObject")], false, ObjectRead),
            (
                "GetObject",
                Method::GET,
                &[("x-id", "DeleteObject")],
                false,
                ObjectInfoRead,
            ),
            ("PutObject", Method::PUT, &[], true, ObjectAdmin),
            ("CopyObject", Method::PUT, &[], false, ObjectUpload),
            (
                "UploadPart",
                Method::PUT,
                &[("partNumber", "1"), ("uploadId", "u")],
                false,
                ObjectUpload,
            ),
            (
                "CreateMultipartUpload",
                Method::POST,
                &[("uploads", "")],
                true,
                ObjectAdmin,
            ),
            (
                "ListObjectsV2",
                Method::GET,
                &[("list-type", "2"), ("prefix", "a")],
                false,
                List,
            ),
            ("DeleteObjects", Method::POST, &[("delete", "")], false, ObjectChange),
            ("DeleteObject", Method::DELETE, &[], false, ObjectChange),
            ("PutObjectAcl", Method::PUT, &[("acl", "")], false, ObjectAdmin),
            (
                "GetBucketVersioning",
                Method::GET,
                &[("versioning", "")],
                false,
                BucketConfigRead,
            ),
            ("PutBucketVersioning", Method::PUT, &[("versioning", "")], false, Admin),
            ("CreateBucket", Method::PUT, &[], false, Admin),
            ("DeleteBucket", Method::DELETE, &[], false, Admin),
            ("HeadBucket", Method::HEAD, &[], false, BucketInfo),
            ("Unknown", Method::PATCH, &[], false, Admin),
            ("Unknown", Method::GET, &[], false, ObjectInfoRead),
            ("PostObject", Method::POST, &[], false, Admin),
        ];
        for (operation, method, query, acl, expected) in cases {
            let bucket_level = operation.contains("Bucket") || operation.starts_with("List");
            let target = if bucket_level { Target::Bucket } else { Target::Object };
            assert_eq!(
                action_of(named(operation), method, target, &q(query), *acl),
                *expected,
                "{operation} {query:?}"
            );
        }
    }

    #[test]
    fn listings_are_judged_by_their_prefix_parameter() {
        let query = vec![("prefix".to_string(), "team/a".to_string())];
        assert_eq!(object_of(List, "", &query), Object::ListPrefix("team/a"));
        assert_eq!(object_of(List, "", &[]), Object::ListPrefix(""));
        assert_eq!(object_of(ObjectRead, "k", &query), Object::Key("k"));
        assert_eq!(object_of(Admin, "", &query), Object::Bucket);
    }
}
