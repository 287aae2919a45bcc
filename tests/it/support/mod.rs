//! Test harness: real S3 servers (s3s-fs in-process) as upstreams, the gateway in-process, and
//! the real aws-sdk-s3 client, all on 127.0.0.1 with port 0.

pub mod balancer;
pub mod binary;
pub mod faults;
pub mod moto;
pub mod oss;
pub mod raw;
pub mod v1_only;
pub mod verifier;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3ferry::config::Config;
use s3ferry::server::RunningGateway;
use s3s::auth::SimpleAuth;
use s3s::host::MultiDomain;
use s3s::service::{S3Service, S3ServiceBuilder};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const CLIENT_KEY: &str = "client-key";
pub const CLIENT_SECRET: &str = "client-secret-0123456789";
pub const UPSTREAM_KEY: &str = "upstream-key";
pub const UPSTREAM_SECRET: &str = "upstream-secret-9876543210";

/// Answers `localhost` and `*.localhost` with 127.0.0.1 for the SDK, so virtual-hosted
/// clients work whether or not the machine resolves those names.
#[derive(Debug, Clone)]
struct LoopbackResolver;

impl ResolveDns for LoopbackResolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        let host = name.trim_end_matches('.');
        if host == "localhost" || host.ends_with(".localhost") {
            return DnsFuture::ready(Ok(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]));
        }
        let owned = name.to_string();
        DnsFuture::new(async move {
            let addrs = tokio::net::lookup_host((owned.as_str(), 0))
                .await
                .map_err(aws_smithy_runtime_api::client::dns::ResolveDnsError::new)?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// An aws-sdk-s3 client for `endpoint` with the given key pair.
pub fn sdk_client(endpoint: &str, key: &str, secret: &str, path_style: bool) -> Client {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_with_resolver(LoopbackResolver);
    sdk_client_over(http_client, endpoint, key, secret, path_style)
}

/// A path-style client of the gateway at `addr` (plain HTTP) with the test key pair.
pub fn gateway_client(addr: SocketAddr) -> Client {
    sdk_client(
        &format!("http://127.0.0.1:{}", addr.port()),
        CLIENT_KEY,
        CLIENT_SECRET,
        true,
    )
}

/// A path-style client with the test key pair that trusts only `ca_pem` for HTTPS.
pub fn sdk_client_trusting(endpoint: &str, ca_pem: &str) -> Client {
    let trust = tls::TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(ca_pem.as_bytes());
    let context = tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("TLS context");
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(context)
        .build_with_resolver(LoopbackResolver);
    sdk_client_over(http_client, endpoint, CLIENT_KEY, CLIENT_SECRET, true)
}

fn sdk_client_over(
    http_client: aws_smithy_runtime_api::client::http::SharedHttpClient,
    endpoint: &str,
    key: &str,
    secret: &str,
    path_style: bool,
) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(key, secret, None, None, "test"))
        .force_path_style(path_style)
        .http_client(http_client)
        .build();
    Client::from_conf(config)
}

/// Like [`sdk_client`], but computing checksums only where an operation requires one: the
/// setting users of providers without flexible checksums had to adopt in 2025.
pub fn sdk_client_without_checksums(endpoint: &str, key: &str, secret: &str, path_style: bool) -> Client {
    let config = sdk_client(endpoint, key, secret, path_style)
        .config()
        .to_builder()
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(config)
}

/// Behaviour switched on at run time in the thin wrapper around a test upstream.
#[derive(Debug, Default)]
pub struct Quirks {
    /// Refuse writes with 403 AccessDenied, like a read-only IAM key.
    pub read_only: std::sync::atomic::AtomicBool,
    /// Answer every GET/HEAD with this status (0: off), like a provider having an outage.
    pub fail_reads_with: std::sync::atomic::AtomicU16,
    /// Refuse any request carrying `x-amz-acl` or `x-amz-grant-*` with 501 NotImplemented,
    /// as R2 does (docs/dialects.md §A.3).
    pub reject_acl_headers: std::sync::atomic::AtomicBool,
    /// Behave like Backblaze B2 with flexible checksums (docs/dialects.md §A.4): any
    /// `x-amz-checksum-*` or `x-amz-sdk-checksum-algorithm` header (also `x-amz-checksum-mode`
    /// on reads) gets `400 InvalidArgument: Unsupported header '...' received for this API
    /// call.`, and so, as on AWS, DeleteObjects needs `Content-MD5`.
    pub b2_checksums: std::sync::atomic::AtomicBool,
    /// Refuse every storage class but STANDARD with `501 NotImplemented: Backblaze only
    /// supports the 'STANDARD' storage class, and not <class>`, as B2 answers
    /// (gobackup/gobackup#155, docs/dialects.md §A.4).
    pub b2_standard_only: std::sync::atomic::AtomicBool,
    /// Refuse every request not signed with SigV2 header auth (`Authorization: AWS ...`) with
    /// 400 InvalidArgument, as AWS answers an unknown scheme, like an old S3 clone that knows
    /// only v2 (docs/dialects.md §D.3). What gets through is verified by s3s's SigV2 check.
    pub sigv2_only: std::sync::atomic::AtomicBool,
    /// Refuse UploadPartCopy with 501 NotImplemented, as GCS's XML API has no multipart
    /// server-side copy (docs/dialects.md §A.5).
    pub no_upload_part_copy: std::sync::atomic::AtomicBool,
    /// Refuse CRC64NVME on multipart uploads with 501 NotImplemented, as R2 takes CRC64NVME
    /// only as a full-object checksum (docs/dialects.md §A.3; CLI v2's default, [skypilot-5282]).
    pub r2_no_composite_crc64nvme: std::sync::atomic::AtomicBool,
    /// Refuse DELETE of any key under this prefix (path style: the target starts with
    /// `/<bucket>/<prefix>`) with 403 AccessDenied, like an IAM policy that denies
    /// `s3:DeleteObject` on `arn:aws:s3:::<bucket>/<prefix>*` while writes are allowed.
    pub deny_deletes_under: std::sync::Mutex<Option<String>>,
    /// A slow provider: while set, the body of every object GET (no query; ranged ones too, but
    /// for a one-byte `Range: bytes=0-0` probe) is held before its first byte until the test
    /// adds a permit to the semaphore (status and headers go at once). Lets a test keep a copy
    /// on read open while clients write.
    pub full_get_gate: std::sync::Mutex<Option<std::sync::Arc<tokio::sync::Semaphore>>>,
    /// A provider slow to answer writes: while set, every object PUT is carried out and its
    /// answer then held until the test adds a permit (or [`Quirks::release_put_answers`]).
    pub put_answer_gate: std::sync::Mutex<Option<std::sync::Arc<tokio::sync::Semaphore>>>,
    /// Hold CreateMultipartUpload answers at [`Quirks::put_answer_gate`] too.
    pub hold_create_upload_answers: std::sync::atomic::AtomicBool,
    /// Not a quirk: PUT answers held at [`Quirks::put_answer_gate`].
    pub put_answers_held: std::sync::atomic::AtomicUsize,
    /// Answer the ranged GETs (`Range` header) from this one on (1 = the first) with 500
    /// InternalError (0: off), like a provider failing in the middle of a copy in parts.
    pub fail_ranged_gets_from: std::sync::atomic::AtomicUsize,
    /// Not a quirk: ranged GETs received.
    pub ranged_gets: std::sync::atomic::AtomicUsize,
    /// Not a quirk: GET bodies that reached [`Quirks::full_get_gate`] and wait there.
    pub full_gets_held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Not a quirk: the `x-amz-content-sha256` of every PUT received (`-` when absent), so a
    /// test can see which body form reached the provider.
    pub put_payload_hashes: std::sync::Mutex<Vec<String>>,
    /// Not a quirk: the head of every request that reached the provider, so a test can assert
    /// what s3ferry sent, or that it sent nothing.
    pub received: std::sync::Mutex<Vec<ReceivedRequest>>,
    /// Not a quirk: TCP connections accepted (for TLS, before the handshake).
    pub connections: std::sync::atomic::AtomicUsize,
    /// Not a quirk: HTTP requests received (for TLS, after a handshake that succeeded).
    pub requests: std::sync::atomic::AtomicUsize,
}

/// A request head as it reached a test upstream.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub method: http::Method,
    /// The request target as sent (`/bucket/key?query`).
    pub target: String,
    pub headers: http::HeaderMap,
}

impl Quirks {
    /// Holds object GET bodies from now on until [`Quirks::release_full_gets`].
    pub fn hold_full_gets(&self) {
        *self.full_get_gate.lock().expect("not poisoned") = Some(std::sync::Arc::new(tokio::sync::Semaphore::new(0)));
    }

    /// Lets every held GET body go, and stops holding new ones.
    pub fn release_full_gets(&self) {
        if let Some(gate) = self.full_get_gate.lock().expect("not poisoned").take() {
            gate.add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
        }
    }

    /// Holds the answers of object PUTs from now on until [`Quirks::release_put_answers`].
    pub fn hold_put_answers(&self) {
        *self.put_answer_gate.lock().expect("not poisoned") = Some(std::sync::Arc::new(tokio::sync::Semaphore::new(0)));
    }

    /// Lets the oldest held PUT answer go; later ones stay held.
    pub fn release_one_put_answer(&self) {
        if let Some(gate) = self.put_answer_gate.lock().expect("not poisoned").as_ref() {
            gate.add_permits(1);
        }
    }

    /// Lets every held PUT answer go, and stops holding new ones.
    pub fn release_put_answers(&self) {
        if let Some(gate) = self.put_answer_gate.lock().expect("not poisoned").take() {
            gate.add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
        }
    }

    /// How many requests reached the provider so far.
    pub fn received_count(&self) -> usize {
        self.received.lock().expect("not poisoned").len()
    }

    /// The requests that reached the provider after the first `since`.
    pub fn received_since(&self, since: usize) -> Vec<ReceivedRequest> {
        self.received.lock().expect("not poisoned")[since..].to_vec()
    }
}

/// A real S3 server (s3s-fs over a temp dir) on a loopback port.
pub struct TestUpstream {
    pub addr: SocketAddr,
    pub root: TempDir,
    /// Reject path-style requests, as OSS does (`SecondLevelDomainForbidden`).
    pub virtual_hosted_only: bool,
    /// Served over TLS ([`TestUpstream::https`]).
    pub tls: bool,
    pub quirks: std::sync::Arc<Quirks>,
    task: JoinHandle<()>,
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestUpstream {
    /// A plain s3s-fs server addressed path-style at `http://127.0.0.1:PORT`.
    pub async fn path_style() -> Self {
        Self::start(false).await
    }

    /// s3s-fs addressed as `http://<bucket>.localhost:PORT`, behind a thin wrapper that refuses
    /// path-style requests the way virtual-host-only providers (OSS) do.
    pub async fn virtual_hosted_only() -> Self {
        Self::start(true).await
    }

    /// s3s-fs behind TLS with `cert_pem` and `key_pem`, addressed path-style at
    /// `https://localhost:PORT` (so the certificate must name `localhost`).
    pub async fn https(cert_pem: &str, key_pem: &str) -> Self {
        let certs = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("cert PEM");
        let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
            .expect("key PEM")
            .expect("a key");
        let config =
            rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .expect("server cert");
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let mut upstream = Self::start_with(false, Some(acceptor)).await;
        upstream.tls = true;
        upstream
    }

    async fn start(virtual_hosted_only: bool) -> Self {
        Self::start_with(virtual_hosted_only, None).await
    }

    async fn start_with(virtual_hosted_only: bool, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let fs = s3s_fs::FileSystem::new(root.path()).expect("s3s-fs");
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(UPSTREAM_KEY, UPSTREAM_SECRET));
        if virtual_hosted_only {
            let domain = format!("localhost:{}", addr.port());
            builder.set_host(MultiDomain::new([domain.as_str(), "localhost"]).expect("domain"));
        }
        let service = builder.build();
        let quirks = std::sync::Arc::new(Quirks::default());
        let task = tokio::spawn(serve(listener, service, virtual_hosted_only, quirks.clone(), tls));
        Self {
            addr,
            root,
            virtual_hosted_only,
            tls: false,
            quirks,
            task,
        }
    }

    /// The endpoint a provider config uses for this server.
    pub fn endpoint(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else if self.virtual_hosted_only {
            format!("http://localhost:{}", self.addr.port())
        } else {
            format!("http://127.0.0.1:{}", self.addr.port())
        }
    }

    /// Creates a bucket (a directory for s3s-fs).
    pub fn create_bucket(&self, name: &str) {
        std::fs::create_dir_all(self.root.path().join(name)).expect("bucket dir");
    }

    /// A client that talks to this server directly, bypassing the gateway.
    pub fn direct_client(&self) -> Client {
        sdk_client(
            &self.endpoint(),
            UPSTREAM_KEY,
            UPSTREAM_SECRET,
            !self.virtual_hosted_only,
        )
    }

    /// Whether `bucket/key` exists on this server, asked over S3 directly.
    pub async fn has_object(&self, bucket: &str, key: &str) -> bool {
        match self.direct_client().head_object().bucket(bucket).key(key).send().await {
            Ok(_) => true,
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => false,
            Err(e) => panic!("HEAD {bucket}/{key} on the upstream failed: {e:?}"),
        }
    }

    pub fn bucket_dir(&self, bucket: &str) -> std::path::PathBuf {
        self.root.path().join(bucket)
    }
}

async fn serve(
    listener: TcpListener,
    service: S3Service,
    virtual_hosted_only: bool,
    quirks: std::sync::Arc<Quirks>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let builder = ConnBuilder::new(TokioExecutor::new());
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        quirks.connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = socket.set_nodelay(true);
        let service = service.clone();
        let builder = builder.clone();
        let quirks = quirks.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let service = service.clone();
                let quirks = quirks.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(service, req, virtual_hosted_only, &quirks).await) }
            });
            match tls {
                None => {
                    let _ = builder.serve_connection(TokioIo::new(socket), svc).await;
                }
                Some(acceptor) => {
                    // A handshake the client refuses ends here: nothing of HTTP was exchanged.
                    if let Ok(stream) = acceptor.accept(socket).await {
                        let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                    }
                }
            }
        });
    }
}

fn quirk_error(status: u16, code: &str) -> Response<s3s::Body> {
    quirk_error_with(status, code, "emulated")
}

fn quirk_error_with(status: u16, code: &str, message: &str) -> Response<s3s::Body> {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    let mut resp = Response::new(s3s::Body::from(xml));
    *resp.status_mut() = http::StatusCode::from_u16(status).expect("status");
    resp
}

async fn answer(
    service: S3Service,
    req: Request<Incoming>,
    virtual_hosted_only: bool,
    quirks: &Quirks,
) -> Response<s3s::Body> {
    use std::sync::atomic::Ordering;
    quirks.received.lock().expect("not poisoned").push(ReceivedRequest {
        method: req.method().clone(),
        target: req.uri().path_and_query().map(ToString::to_string).unwrap_or_default(),
        headers: req.headers().clone(),
    });
    quirks.requests.fetch_add(1, Ordering::SeqCst);
    if req.method() == http::Method::PUT {
        let hash = req.headers().get("x-amz-content-sha256").and_then(|v| v.to_str().ok());
        let mut seen = quirks.put_payload_hashes.lock().expect("not poisoned");
        seen.push(hash.unwrap_or("-").to_string());
    }
    if req.method() == http::Method::GET && req.headers().contains_key(http::header::RANGE) {
        let nth = quirks.ranged_gets.fetch_add(1, Ordering::SeqCst) + 1;
        let from = quirks.fail_ranged_gets_from.load(Ordering::SeqCst);
        if from != 0 && nth >= from {
            return quirk_error(500, "InternalError");
        }
    }
    let reads = req.method() == http::Method::GET || req.method() == http::Method::HEAD;
    let fail = quirks.fail_reads_with.load(Ordering::Relaxed);
    if reads && fail != 0 {
        return quirk_error(fail, "InternalError");
    }
    if !reads && quirks.read_only.load(Ordering::Relaxed) {
        return quirk_error(403, "AccessDenied");
    }
    let denied = quirks.deny_deletes_under.lock().expect("not poisoned").clone();
    if let Some(prefix) = denied
        && req.method() == http::Method::DELETE
        && req.uri().path().starts_with(&prefix)
    {
        return quirk_error(403, "AccessDenied");
    }
    if quirks.reject_acl_headers.load(Ordering::Relaxed)
        && let Some(name) = req
            .headers()
            .keys()
            .find(|k| k.as_str() == "x-amz-acl" || k.as_str().starts_with("x-amz-grant-"))
    {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NotImplemented</Code><Message>Header '{name}' not implemented</Message></Error>"
        );
        let mut resp = Response::new(s3s::Body::from(xml));
        *resp.status_mut() = http::StatusCode::NOT_IMPLEMENTED;
        return resp;
    }
    if quirks.b2_standard_only.load(Ordering::Relaxed)
        && let Some(class) = req
            .headers()
            .get("x-amz-storage-class")
            .and_then(|v| v.to_str().ok())
            .filter(|class| *class != "STANDARD")
    {
        return quirk_error_with(
            501,
            "NotImplemented",
            &format!("Backblaze only supports the 'STANDARD' storage class, and not {class}"),
        );
    }
    if quirks.b2_checksums.load(Ordering::Relaxed) {
        let checksum_header = req
            .headers()
            .keys()
            .find(|k| k.as_str().starts_with("x-amz-checksum-") || k.as_str() == "x-amz-sdk-checksum-algorithm");
        if let Some(name) = checksum_header {
            return quirk_error_with(
                400,
                "InvalidArgument",
                &format!("Unsupported header '{name}' received for this API call."),
            );
        }
        let deletes_objects = req.method() == http::Method::POST
            && req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "delete" || p == "delete="));
        if deletes_objects && !req.headers().contains_key("content-md5") {
            return quirk_error_with(
                400,
                "InvalidRequest",
                "Missing required header for this request: Content-MD5",
            );
        }
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let names_upload = query.split('&').any(|p| p.starts_with("uploadId="));
    if quirks.no_upload_part_copy.load(Ordering::Relaxed)
        && req.method() == http::Method::PUT
        && names_upload
        && req.headers().contains_key("x-amz-copy-source")
    {
        return quirk_error_with(501, "NotImplemented", "UploadPartCopy is not implemented");
    }
    if quirks.r2_no_composite_crc64nvme.load(Ordering::Relaxed) {
        let creates = req.method() == http::Method::POST && query.split('&').any(|p| p == "uploads" || p == "uploads=");
        let crc64_declared = req
            .headers()
            .get("x-amz-checksum-algorithm")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"CRC64NVME"));
        let crc64_part = names_upload && req.headers().contains_key("x-amz-checksum-crc64nvme");
        if (creates && crc64_declared) || crc64_part {
            return quirk_error_with(
                501,
                "NotImplemented",
                "Header 'x-amz-checksum-algorithm' with value 'CRC64NVME' not implemented",
            );
        }
    }
    if quirks.sigv2_only.load(Ordering::Relaxed)
        && !req
            .headers()
            .get(http::header::AUTHORIZATION)
            .is_some_and(|v| v.as_bytes().starts_with(b"AWS "))
    {
        return quirk_error_with(400, "InvalidArgument", "Unsupported Authorization Type");
    }
    if virtual_hosted_only {
        let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("");
        let has_bucket_in_host = host.split(':').next().is_some_and(|h| h.ends_with(".localhost"));
        if !has_bucket_in_host && req.uri().path() != "/" {
            let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SecondLevelDomainForbidden</Code><Message>Please use virtual hosted style to access.</Message></Error>";
            let mut resp = Response::new(s3s::Body::from(xml.to_string()));
            *resp.status_mut() = http::StatusCode::FORBIDDEN;
            return resp;
        }
    }
    // Every object GET but a one-byte probe, which a test uses to make a read fall back.
    let probe = req.headers().get(http::header::RANGE).is_some_and(|r| r == "bytes=0-0");
    let held_get = req.method() == http::Method::GET
        && req.uri().query().is_none()
        && !probe
        && req.uri().path().trim_start_matches('/').contains('/');
    let gate = held_get
        .then(|| quirks.full_get_gate.lock().expect("not poisoned").clone())
        .flatten();
    let creates_upload = req.method() == http::Method::POST
        && req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "uploads" || p == "uploads="))
        && quirks.hold_create_upload_answers.load(Ordering::SeqCst);
    let put_gate = (req.method() == http::Method::PUT || creates_upload)
        .then(|| quirks.put_answer_gate.lock().expect("not poisoned").clone())
        .flatten();
    let answered = service.call(req.map(s3s::Body::from)).await;
    if let Some(put_gate) = put_gate {
        quirks.put_answers_held.fetch_add(1, Ordering::SeqCst);
        if let Ok(permit) = put_gate.acquire_owned().await {
            permit.forget();
        }
    }
    match answered {
        Ok(resp) => match gate {
            Some(gate) if resp.status().is_success() => {
                resp.map(|body| held_until_gate(body, gate, quirks.full_gets_held.clone()))
            }
            _ => resp,
        },
        Err(e) => {
            let mut resp = Response::new(s3s::Body::from(format!("{e:?}")));
            *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            resp
        }
    }
}

/// `body`, whose first byte waits for a permit of `gate`; `held` counts bodies that reached
/// the gate.
fn held_until_gate(
    body: s3s::Body,
    gate: std::sync::Arc<tokio::sync::Semaphore>,
    held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> s3s::Body {
    use futures::StreamExt as _;
    let frames = http_body_util::BodyStream::new(body);
    let stream = futures::stream::once(async move {
        held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Ok(permit) = gate.acquire_owned().await {
            permit.forget();
        }
        frames
    })
    .flatten();
    s3s::Body::http_body_unsync(http_body_util::StreamBody::new(stream))
}

/// Two upstreams (one path-style, one virtual-hosted only) and the gateway in front of them.
///
/// Routes: `alpha` -> path upstream; `renamed` -> path upstream as `renamed-upstream`;
/// `vbucket` -> vhost upstream; `vrenamed` -> vhost upstream as `vrenamed-upstream`;
/// `*` -> path upstream.
pub struct Harness {
    pub gateway: Option<RunningGateway>,
    pub path_up: TestUpstream,
    pub vhost_up: TestUpstream,
    pub addr: SocketAddr,
}

impl Harness {
    pub async fn start() -> Self {
        let path_up = TestUpstream::path_style().await;
        let vhost_up = TestUpstream::virtual_hosted_only().await;
        for b in ["alpha", "renamed-upstream", "other"] {
            path_up.create_bucket(b);
        }
        for b in ["vbucket", "vrenamed-upstream"] {
            vhost_up.create_bucket(b);
        }
        let toml = format!(
            r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
domain = "s3.localhost"
region = "us-east-1"

[[credentials]]
access_key_id = "{CLIENT_KEY}"
secret_access_key = "{CLIENT_SECRET}"
grants = "all"

[providers.pathup]
endpoint = "{path_endpoint}"
region = "us-east-1"
access_key_id = "{UPSTREAM_KEY}"
secret_access_key = "{UPSTREAM_SECRET}"
addressing = "path"
dialect = "minio"
read_timeout_secs = 20

[providers.vhostup]
endpoint = "{vhost_endpoint}"
region = "us-east-1"
access_key_id = "{UPSTREAM_KEY}"
secret_access_key = "{UPSTREAM_SECRET}"
addressing = "virtual"
dialect = "oss"
read_timeout_secs = 20

[[buckets]]
name = "alpha"
provider = "pathup"

[[buckets]]
name = "renamed"
provider = "pathup"
upstream_bucket = "renamed-upstream"

[[buckets]]
name = "vbucket"
provider = "vhostup"

[[buckets]]
name = "vrenamed"
provider = "vhostup"
upstream_bucket = "vrenamed-upstream"

[[buckets]]
name = "*"
provider = "pathup"
"#,
            path_endpoint = path_up.endpoint(),
            vhost_endpoint = vhost_up.endpoint(),
        );
        let config = Config::parse(&toml, "harness.toml", Path::new("."), &|_| None).expect("harness config");
        let gateway = s3ferry::server::start(&config).await.expect("gateway starts");
        let addr = gateway.addr();
        Self {
            gateway: Some(gateway),
            path_up,
            vhost_up,
            addr,
        }
    }

    /// A path-style client (`http://127.0.0.1:PORT/<bucket>/<key>`).
    pub fn client(&self) -> Client {
        sdk_client(
            &format!("http://127.0.0.1:{}", self.addr.port()),
            CLIENT_KEY,
            CLIENT_SECRET,
            true,
        )
    }

    /// A virtual-hosted-style client (`http://<bucket>.s3.localhost:PORT/<key>`).
    pub fn vhost_client(&self) -> Client {
        sdk_client(
            &format!("http://s3.localhost:{}", self.addr.port()),
            CLIENT_KEY,
            CLIENT_SECRET,
            false,
        )
    }

    /// A client with another key pair.
    pub fn client_with(&self, key: &str, secret: &str) -> Client {
        sdk_client(&format!("http://127.0.0.1:{}", self.addr.port()), key, secret, true)
    }

    pub async fn stop(mut self) {
        if let Some(g) = self.gateway.take() {
            g.shutdown(Duration::from_secs(5)).await;
        }
    }
}

/// The gateway with one provider `up` of `dialect` at `endpoint`, every bucket routed to it,
/// `extra` appended to the provider's table; and a path-style client for it.
pub async fn single_provider_gateway(
    endpoint: &str,
    key: &str,
    secret: &str,
    dialect: &str,
    extra: &str,
) -> (RunningGateway, aws_sdk_s3::Client) {
    let config = single_provider_config(endpoint, key, secret, dialect, extra);
    let g = s3ferry::server::start(&config).await.expect("gateway");
    let client = gateway_client(g.addr());
    (g, client)
}

/// The tables a test config starts with: `[server]` on ports 0 and `[[credentials]]` with the
/// test client's key pair, granted every bucket.
pub fn config_preamble() -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[[credentials]]
access_key_id = "{CLIENT_KEY}"
secret_access_key = "{CLIENT_SECRET}"
grants = "all"
"#
    )
}

/// `[providers.NAME]` for a test upstream at `endpoint`, with the upstream key pair; the
/// caller adds timeouts and the rest of the table.
pub fn s3_provider_table(name: &str, endpoint: &str) -> String {
    format!(
        "[providers.{name}]\nendpoint = \"{endpoint}\"\naccess_key_id = \"{UPSTREAM_KEY}\"\nsecret_access_key = \"{UPSTREAM_SECRET}\"\n"
    )
}

/// The config of [`single_provider_gateway`] (for a test that reloads another one).
pub fn single_provider_config(endpoint: &str, key: &str, secret: &str, dialect: &str, extra: &str) -> Config {
    let toml = format!(
        r#"{preamble}
[[buckets]]
name = "*"
provider = "up"
[providers.up]
endpoint = "{endpoint}"
access_key_id = "{key}"
secret_access_key = "{secret}"
dialect = "{dialect}"
read_timeout_secs = 20
{extra}
"#,
        preamble = config_preamble()
    );
    Config::parse(&toml, "single-provider.toml", Path::new("."), &|_| None).expect("config")
}

/// A temporary file holding `data`, for uploads the SDK streams (aws-chunked with a trailer).
pub fn temp_file(data: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut file, data).expect("write");
    file
}

/// Puts `objects` (key, body) into `bucket`, `concurrency` at a time; panics on the first error.
pub async fn put_objects(
    client: &Client,
    bucket: &str,
    objects: impl Iterator<Item = (String, Vec<u8>)>,
    concurrency: usize,
) {
    use futures::StreamExt as _;
    futures::stream::iter(objects)
        .map(|(key, body)| {
            let put = client
                .put_object()
                .bucket(bucket)
                .key(&key)
                .body(aws_sdk_s3::primitives::ByteStream::from(body));
            async move { put.send().await.map_err(|e| format!("put {key}: {e:?}")) }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .expect("seed objects");
}

/// Every key of `bucket`, listed with ListObjects (v1) a page at a time, following the last key.
pub async fn list_keys_v1(client: &Client, bucket: &str, max_keys: i32) -> Vec<String> {
    let mut keys = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = client
            .list_objects()
            .bucket(bucket)
            .max_keys(max_keys)
            .set_marker(marker.clone())
            .send()
            .await
            .expect("v1 page");
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        marker = keys.last().cloned();
        if !page.is_truncated().unwrap_or(false) {
            return keys;
        }
    }
}

/// Deterministic test data.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The S3 error code of an SDK error.
pub fn error_code<E: aws_sdk_s3::error::ProvideErrorMetadata>(e: &aws_sdk_s3::error::SdkError<E>) -> String {
    e.as_service_error()
        .and_then(|s| s.code())
        .unwrap_or("<no code>")
        .to_string()
}

/// The HTTP status of an SDK error's response.
pub fn error_status<E>(e: &aws_sdk_s3::error::SdkError<E>) -> u16 {
    e.raw_response().map_or(0, |r| r.status().as_u16())
}
