//! `kind = "local"` providers: a directory served as S3 in-process by s3s-fs on a loopback
//! port, with a random key pair made at start-up. The gateway reaches it exactly like a remote
//! provider (SigV4-signed HTTP through the pooled client), so the embedded default exercises
//! the same upstream path as a cloud account.
//!
//! A thin layer in front of s3s-fs ([`LocalFixups`]) makes it behave like S3 where s3s-fs does
//! not and a user would lose data or get wrong keys:
//! - DeleteBucket of a bucket that still holds objects is `409 BucketNotEmpty` (s3s-fs deletes
//!   the directory and everything in it);
//! - listings asked for with `encoding-type=url` come back URL-encoded (s3s-fs returns raw keys,
//!   which botocore then decodes, turning `+` into a space);
//! - GET/HEAD of a key that is a directory on disk is `404 NoSuchKey` (s3s-fs answers 500);
//! - any request into a bucket that does not exist is `404 NoSuchBucket` (s3s-fs answers
//!   some of them with `NoSuchKey`);
//! - GET/HEAD honour `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`
//!   (s3s-fs ignores them);
//! - a multipart request naming an upload that does not exist is `404 NoSuchUpload` (s3s-fs
//!   answers `403 AccessDenied`);
//! - writes (PutObject, CopyObject, CompleteMultipartUpload) honour `If-None-Match: *` and
//!   `If-Match` (s3s-fs ignores them and overwrites). The check and the write are two steps, made
//!   atomic by a per-key lock ([`KeyLocks`]) that every write and delete of the key holds from
//!   the check until s3s-fs has answered: no other request through this server changes the key
//!   in between. (The directory is served by one process only; a second process writing into
//!   it directly is not seen.)
//!
//! The access key id is fixed (`s3ferry-local`) because s3s-fs records it with each multipart
//! upload: uploads started before a restart can still be completed. The secret is new each start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::Secret;
use crate::s3::operation::{Operation, Target, classify};
use crate::small_body::{BodyBudget, ReadLimits, read_capped};

/// A running in-process S3 server for one local provider.
pub struct LocalServer {
    pub addr: SocketAddr,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    task: JoinHandle<()>,
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The access key id of every local provider (see the module documentation).
const LOCAL_ACCESS_KEY_ID: &str = "s3ferry-local";

/// Starts serving `root` (created if missing) on 127.0.0.1 with a fresh key pair.
pub async fn start_local_provider(root: &Path) -> Result<LocalServer, String> {
    std::fs::create_dir_all(root).map_err(|e| format!("cannot create {}: {e:?}", root.display()))?;
    let fs = s3s_fs::FileSystem::new(root).map_err(|e| format!("cannot serve {}: {e:?}", root.display()))?;
    let access_key_id = LOCAL_ACCESS_KEY_ID.to_string();
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(access_key_id.clone(), secret.clone()));
    let service = builder.build();
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| format!("cannot listen on loopback: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let lookup = s3s_fs::FileSystem::new(root).map_err(|e| format!("cannot serve {}: {e:?}", root.display()))?;
    let fixups = Arc::new(LocalFixups {
        service,
        key_locks: Arc::default(),
        lookup,
        root: root.to_path_buf(),
        listing_budget: BodyBudget::new(LISTING_BUDGET, crate::small_body::BUDGET_WAIT, None),
    });
    let task = tokio::spawn(serve_local(listener, fixups));
    Ok(LocalServer {
        addr,
        access_key_id,
        secret_access_key: Secret::new(secret),
        task,
    })
}

/// Accepts connections forever and serves each with `service` (TCP_NODELAY on).
pub async fn serve_s3_service(listener: TcpListener, service: S3Service) {
    let builder = ConnBuilder::new(TokioExecutor::new());
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        let service = service.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            if let Err(e) = builder.serve_connection(TokioIo::new(socket), service).await {
                tracing::debug!(error = %e, "local provider connection ended with an error");
            }
        });
    }
}

/// Creates `bucket` under `root` if missing (a local bucket is a directory).
pub fn ensure_local_bucket(root: &Path, bucket: &str) -> Result<(), String> {
    let dir = root.join(bucket);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create bucket directory {}: {e}", dir.display()))
}

/// One lock per key being written or deleted right now, so a conditional write's check and its
/// write are one step (see the module documentation). Entries go when their last user does.
#[derive(Debug, Default)]
struct KeyLocks {
    keys: std::sync::Mutex<KeyLockMap>,
}

/// (bucket, key) -> the lock of that key.
type KeyLockMap = std::collections::HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>;

/// Holds a key's lock (or waits for it); dropping it removes the entry once no one else uses it.
struct KeyLockGuard {
    locks: Arc<KeyLocks>,
    id: (String, String),
    lock: Arc<tokio::sync::Mutex<()>>,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeyLocks {
    fn map(&self) -> std::sync::MutexGuard<'_, KeyLockMap> {
        self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn lock(self: &Arc<Self>, bucket: &str, key: &str) -> KeyLockGuard {
        let id = (bucket.to_string(), key.to_string());
        let lock = self.map().entry(id.clone()).or_default().clone();
        // Made before waiting, so a request that goes away meanwhile still cleans up.
        let mut guard = KeyLockGuard {
            locks: self.clone(),
            id,
            lock: lock.clone(),
            held: None,
        };
        guard.held = Some(lock.lock_owned().await);
        guard
    }
}

impl Drop for KeyLockGuard {
    fn drop(&mut self) {
        drop(self.held.take());
        let mut keys = self.locks.map();
        // Two references (the map's and this guard's) mean no one else holds or awaits it.
        if keys.get(&self.id).is_some_and(|l| Arc::ptr_eq(l, &self.lock)) && Arc::strong_count(&self.lock) == 2 {
            keys.remove(&self.id);
        }
    }
}

/// s3s-fs plus the fixes listed in the module documentation.
struct LocalFixups {
    service: S3Service,
    /// Held by every write and delete of a key from its condition check to s3s-fs's answer.
    key_locks: Arc<KeyLocks>,
    /// The same directory, asked directly (no HTTP, no signature) what a conditional write
    /// needs to know.
    lookup: s3s_fs::FileSystem,
    root: PathBuf,
    /// The listings it re-encodes are read whole. The local provider stands in for a remote
    /// provider, whose memory is not the gateway's: it has a budget of its own, room for four
    /// of the largest pages at once, beside `server.max_buffered_body_bytes`.
    listing_budget: BodyBudget,
}

const LISTING_BUDGET: usize = 4 * crate::small_body::MAX_XML_BODY;

/// What a request addresses, decoded from the (path-style, canonically encoded) URI.
struct LocalTarget {
    bucket: String,
    key: String,
}

fn local_target(uri: &http::Uri) -> Option<LocalTarget> {
    let path = uri.path().strip_prefix('/')?;
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    let decode = |s: &str| String::from_utf8_lossy(&crate::s3::encoding::percent_decode(s)).into_owned();
    Some(LocalTarget {
        bucket: decode(bucket),
        key: decode(key),
    })
}

impl LocalFixups {
    async fn answer(&self, req: Request<Incoming>) -> Response<s3s::Body> {
        let target = local_target(req.uri()).filter(|t| !t.bucket.is_empty());
        let query = crate::s3::encoding::parse_query(req.uri().query().unwrap_or(""));
        // The gateway's own classification, so both sides agree on what a request is.
        let kind = match &target {
            None => Target::Service,
            Some(t) if t.key.is_empty() => Target::Bucket,
            Some(_) => Target::Object,
        };
        let operation = classify(
            req.method(),
            kind,
            &query,
            req.headers().contains_key("x-amz-copy-source"),
        );
        if let Some(t) = &target {
            // Bucket names were validated by the gateway's front door (no `..`), and so were
            // keys with `.`/`..` segments (the local dialect refuses them); refusing them here
            // too keeps this server inside its bucket whoever calls it.
            if let Some(refusal) = unstorable_key(&t.bucket, &t.key) {
                return refusal;
            }
            let bucket_dir = self.root.join(&t.bucket);
            let creates_bucket = operation == Operation::CreateBucket && query.is_empty();
            if !creates_bucket && !tokio::fs::metadata(&bucket_dir).await.is_ok_and(|m| m.is_dir()) {
                return local_error(
                    StatusCode::NOT_FOUND,
                    "NoSuchBucket",
                    "The specified bucket does not exist",
                );
            }
            if operation == Operation::DeleteBucket && query.is_empty() {
                if directory_holds_files(bucket_dir).await {
                    return local_error(
                        StatusCode::CONFLICT,
                        "BucketNotEmpty",
                        "The bucket you tried to delete is not empty",
                    );
                }
            } else if operation.reads_object()
                && query.is_empty()
                && tokio::fs::metadata(bucket_dir.join(&t.key))
                    .await
                    .is_ok_and(|m| m.is_dir())
            {
                return local_error(StatusCode::NOT_FOUND, "NoSuchKey", "The specified key does not exist.");
            }
        }
        let writes_object = operation.writes_object();
        let _key_lock = match &target {
            Some(t) if operation.changes_object() => Some(self.key_locks.lock(&t.bucket, &t.key).await),
            _ => None,
        };
        let conditional = req.headers().contains_key(http::header::IF_NONE_MATCH)
            || req.headers().contains_key(http::header::IF_MATCH);
        if writes_object
            && conditional
            && let Some(t) = &target
            && let Some(refusal) = self.refuse_conditional_write(t, req.headers()).await
        {
            return refusal;
        }
        let encode_listing = operation.is_listing() && query.iter().any(|(n, v)| n == "encoding-type" && v == "url");
        let conditions = operation.reads_object().then(|| req.headers().clone());
        let names_upload = operation.names_upload();
        let response = match self.service.call(req.map(s3s::Body::from)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = ?e, "local provider failed");
                return local_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "local provider failed",
                );
            }
        };
        if encode_listing && response.status().is_success() {
            return encode_listing_response(response, &self.listing_budget).await;
        }
        if names_upload && response.status() == StatusCode::FORBIDDEN {
            return local_error(
                StatusCode::NOT_FOUND,
                "NoSuchUpload",
                "The specified multipart upload does not exist.",
            );
        }
        if let Some(request_headers) = conditions
            && response.status().is_success()
            && let Some(status) = precondition_outcome(&request_headers, response.headers())
        {
            return precondition_response(status, response.headers());
        }
        response
    }
}

impl LocalFixups {
    /// The answer to a conditional write whose condition does not hold: `If-None-Match: *` on an
    /// existing key or an `If-Match` that does not match is 412, an `If-Match` on a missing key
    /// 404 (as S3 answers).
    async fn refuse_conditional_write(
        &self,
        target: &LocalTarget,
        headers: &http::HeaderMap,
    ) -> Option<Response<s3s::Body>> {
        use s3s::S3 as _;
        let input = s3s::dto::HeadObjectInput::builder()
            .bucket(target.bucket.clone())
            .key(target.key.clone())
            .build()
            .ok()?;
        let request = s3s::S3Request {
            input,
            method: Method::HEAD,
            uri: http::Uri::from_static("/"),
            headers: http::HeaderMap::new(),
            extensions: http::Extensions::new(),
            credentials: None,
            region: None,
            service: None,
            trailing_headers: None,
        };
        let current = self
            .lookup
            .head_object(request)
            .await
            .ok()
            .map(|r| r.output.e_tag.map(|e| e.value().to_string()).unwrap_or_default());
        let header = |name: http::header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(expected) = header(http::header::IF_MATCH) {
            let Some(etag) = &current else {
                return Some(local_error(
                    StatusCode::NOT_FOUND,
                    "NoSuchKey",
                    "The specified key does not exist.",
                ));
            };
            let matches = expected
                .split(',')
                .map(|e| e.trim().trim_start_matches("W/").trim_matches('"'))
                .any(|e| e == "*" || e.eq_ignore_ascii_case(etag.trim_matches('"')));
            if !matches {
                return Some(local_error(
                    StatusCode::PRECONDITION_FAILED,
                    "PreconditionFailed",
                    "At least one of the pre-conditions you specified did not hold",
                ));
            }
        }
        if header(http::header::IF_NONE_MATCH).is_some_and(|v| v.trim() == "*") && current.is_some() {
            return Some(local_error(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            ));
        }
        None
    }
}

/// The status a conditional GET/HEAD must get instead of 200, per RFC 9110 section 13.2.2 (the
/// order S3 follows): If-Match, else If-Unmodified-Since -> 412; If-None-Match, else
/// If-Modified-Since -> 304.
pub fn precondition_outcome(request: &http::HeaderMap, response: &http::HeaderMap) -> Option<StatusCode> {
    let header =
        |map: &http::HeaderMap, name: http::HeaderName| map.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let etag = header(response, http::header::ETAG).unwrap_or_default();
    let last_modified = header(response, http::header::LAST_MODIFIED).and_then(|v| httpdate::parse_http_date(&v).ok());
    let etag_listed = |list: &str| {
        list.split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.trim_matches('"') == etag.trim_matches('"'))
    };
    let date = |name| header(request, name).and_then(|v| httpdate::parse_http_date(&v).ok());

    if let Some(list) = header(request, http::header::IF_MATCH) {
        if !etag_listed(&list) {
            return Some(StatusCode::PRECONDITION_FAILED);
        }
    } else if let (Some(since), Some(modified)) = (date(http::header::IF_UNMODIFIED_SINCE), last_modified)
        && modified > since
    {
        return Some(StatusCode::PRECONDITION_FAILED);
    }
    if let Some(list) = header(request, http::header::IF_NONE_MATCH) {
        if etag_listed(&list) {
            return Some(StatusCode::NOT_MODIFIED);
        }
    } else if let (Some(since), Some(modified)) = (date(http::header::IF_MODIFIED_SINCE), last_modified)
        && modified <= since
    {
        return Some(StatusCode::NOT_MODIFIED);
    }
    None
}

fn precondition_response(status: StatusCode, object_headers: &http::HeaderMap) -> Response<s3s::Body> {
    if status == StatusCode::PRECONDITION_FAILED {
        return local_error(
            status,
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
        );
    }
    let mut response = Response::new(s3s::Body::empty());
    *response.status_mut() = status;
    for name in [http::header::ETAG, http::header::LAST_MODIFIED] {
        if let Some(v) = object_headers.get(&name) {
            response.headers_mut().insert(name, v.clone());
        }
    }
    response
}

async fn encode_listing_response(response: Response<s3s::Body>, budget: &BodyBudget) -> Response<s3s::Body> {
    let (mut parts, body) = response.into_parts();
    let limits = ReadLimits {
        max: crate::small_body::MAX_XML_BODY,
        idle: std::time::Duration::from_secs(60),
    };
    let encoded = match read_capped(body, None, limits, budget).await {
        Ok(bytes) => crate::rewrite::listing_encoding::encode_listing_keys(&bytes, false).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match encoded {
        Ok(xml) => {
            parts
                .headers
                .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(xml.len()));
            Response::from_parts(parts, s3s::Body::from(xml))
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot URL-encode a local listing");
            local_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "cannot encode the listing",
            )
        }
    }
}

/// Longest file name the local file systems take (ext4, xfs, btrfs, tmpfs: 255 bytes).
const MAX_FILE_NAME_BYTES: usize = 255;

/// s3s-fs keeps an object's metadata beside the bucket directories in one file named
/// `.bucket-<base64 bucket>.object-<base64 key>[.upload-<uuid>].metadata.json`, so the bucket
/// and key together must fit one file name: this is the rest of that name, at its longest.
const METADATA_NAME_OVERHEAD: usize =
    ".bucket-".len() + ".object-".len() + ".upload-".len() + 36 + ".metadata.json".len();

/// Length of unpadded base64 of `n` bytes.
fn base64_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// The longest key a local provider stores in `bucket`: the bucket and key together name one
/// metadata file (see [`METADATA_NAME_OVERHEAD`]).
pub fn longest_local_key(bucket: &str) -> usize {
    (MAX_FILE_NAME_BYTES.saturating_sub(METADATA_NAME_OVERHEAD + base64_len(bucket.len())) * 3) / 4
}

/// Why a directory cannot hold `key` (S3 error code and message), if it cannot: each
/// `/`-separated part becomes a file or directory name, and the whole key (with the bucket) a
/// metadata file name.
pub fn unstorable_key_problem(bucket: &str, key: &str) -> Option<(&'static str, String)> {
    if key.is_empty() {
        return None;
    }
    if crate::target::has_dot_segment(key) {
        return Some((
            "InvalidArgument",
            "a local provider cannot store keys with '.' or '..' path segments".into(),
        ));
    }
    if key.contains('\0') {
        return Some((
            "InvalidArgument",
            "a local provider cannot store keys with a NUL character".into(),
        ));
    }
    let longest_key = longest_local_key(bucket);
    let part_too_long = key.split('/').any(|part| part.len() > MAX_FILE_NAME_BYTES);
    if part_too_long || key.len() > longest_key {
        return Some((
            "KeyTooLongError",
            format!(
                "Your key is too long for a local provider: it keeps each key, with its bucket name, in one file \
                 name of at most {MAX_FILE_NAME_BYTES} bytes, which leaves {longest_key} bytes of key in this bucket"
            ),
        ));
    }
    None
}

/// [`unstorable_key_problem`] as a clear 400 instead of the file system's error (a 500 from
/// s3s-fs).
fn unstorable_key(bucket: &str, key: &str) -> Option<Response<s3s::Body>> {
    let (code, message) = unstorable_key_problem(bucket, key)?;
    Some(local_error(StatusCode::BAD_REQUEST, code, &message))
}

fn local_error(status: StatusCode, code: &str, message: &str) -> Response<s3s::Body> {
    let (parts, bytes) =
        crate::error::render_error(status, code, message, None, &crate::error::new_request_id()).into_parts();
    Response::from_parts(parts, s3s::Body::from(bytes))
}

/// True when `dir` (a bucket) holds at least one file at any depth.
async fn directory_holds_files(dir: PathBuf) -> bool {
    tokio::task::spawn_blocking(move || {
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for entry in entries.flatten() {
                match entry.file_type() {
                    Ok(t) if t.is_dir() => stack.push(entry.path()),
                    Ok(_) => return true,
                    Err(_) => {}
                }
            }
        }
        false
    })
    .await
    .unwrap_or(true)
}

async fn serve_local(listener: TcpListener, fixups: Arc<LocalFixups>) {
    let builder = ConnBuilder::new(TokioExecutor::new());
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        let fixups = fixups.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let fixups = fixups.clone();
                async move { Ok::<_, std::convert::Infallible>(fixups.answer(req).await) }
            });
            if let Err(e) = builder.serve_connection(TokioIo::new(socket), service).await {
                tracing::debug!(error = %e, "local provider connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::header_map as headers;

    type Headers = &'static [(&'static str, &'static str)];

    #[test]
    fn conditional_requests_follow_rfc_9110_order() {
        let object = headers(&[("etag", "\"abc\""), ("last-modified", "Sun, 22 Nov 2026 10:00:00 GMT")]);
        let cases: &[(Headers, Option<StatusCode>)] = &[
            (&[], None),
            (&[("if-match", "\"abc\"")], None),
            (&[("if-match", "\"xyz\"")], Some(StatusCode::PRECONDITION_FAILED)),
            (&[("if-match", "*")], None),
            (&[("if-none-match", "\"abc\"")], Some(StatusCode::NOT_MODIFIED)),
            (&[("if-none-match", "\"xyz\", \"abc\"")], Some(StatusCode::NOT_MODIFIED)),
            (&[("if-none-match", "\"xyz\"")], None),
            (
                &[("if-modified-since", "Mon, 23 Nov 2026 00:00:00 GMT")],
                Some(StatusCode::NOT_MODIFIED),
            ),
            (&[("if-modified-since", "Sat, 21 Nov 2026 00:00:00 GMT")], None),
            (
                &[("if-unmodified-since", "Sat, 21 Nov 2026 00:00:00 GMT")],
                Some(StatusCode::PRECONDITION_FAILED),
            ),
            // An If-Match that holds wins over a failing If-Unmodified-Since (S3's rule).
            (
                &[
                    ("if-match", "\"abc\""),
                    ("if-unmodified-since", "Sat, 21 Nov 2026 00:00:00 GMT"),
                ],
                None,
            ),
            // An If-None-Match that does not match wins over If-Modified-Since.
            (
                &[
                    ("if-none-match", "\"xyz\""),
                    ("if-modified-since", "Mon, 23 Nov 2026 00:00:00 GMT"),
                ],
                None,
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(
                precondition_outcome(&headers(request), &object),
                *expected,
                "{request:?}"
            );
        }
    }
}
