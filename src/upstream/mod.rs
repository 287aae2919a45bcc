//! Talking to providers: a pooled hyper client over rustls per provider, re-signing (SigV4, or
//! SigV2 for providers configured with `signature = "v2"`), and the upstream address for each
//! request.
//!
//! Sockets get `TCP_NODELAY` (without it every small request waits ~40 ms for a delayed ACK),
//! every resolved address is tried in turn (see [`resolve`]), and connect and header timeouts
//! turn a dead provider into a clear S3 error instead of a hang. A failed exchange that is
//! safe to repeat is tried again with backoff, a bounded number of times (see [`retry`]).

pub mod address;
pub mod exchange;
pub mod pace;
pub mod requests;
pub mod resolve;
pub mod retry;
pub mod sign;
pub mod sign_v2;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::body::UpstreamBody;
use crate::config::{Secret, SignatureVersion};
use crate::dialect::DialectProfile;
use crate::error::GatewayError;
use crate::metrics::UpstreamMetrics;
use crate::s3::addressing::Addressing;
use crate::s3::encoding::canonical_query;
use crate::small_body::{BodyBudget, Buffered, ReadError, ReadLimits, read_capped};
use address::UpstreamAddress;
use resolve::LoopbackAwareResolver;
use retry::{AttemptOutcome, BodyLoan, RetryDecision, RetryPolicy, decide_retry};

type Connector = HttpsConnector<HttpConnector<LoopbackAwareResolver>>;

/// What s3ferry needs to reach and sign for one provider.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    pub name: String,
    pub endpoint: http::Uri,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub addressing: Addressing,
    pub signature: SignatureVersion,
    /// How this provider's S3 dialect differs from AWS.
    pub profile: Arc<DialectProfile>,
    pub ca_file: Option<std::path::PathBuf>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// How the provider keeps keys, which bounds how long one may be.
    pub key_store: KeyStore,
    /// When a failed exchange is sent again (see [`retry`]).
    pub retry: RetryPolicy,
}

/// How a provider keeps keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStore {
    /// S3: any key of up to 1,024 bytes.
    S3,
    /// A `kind = "local"` provider: each key in file names (see `local::unstorable_key_problem`).
    LocalFiles,
}

/// The longest key S3 stores, in UTF-8 bytes.
pub const MAX_S3_KEY_BYTES: usize = 1024;

impl UpstreamSettings {
    /// The longest key this provider stores in `bucket`, in bytes.
    pub fn longest_key(&self, bucket: &str) -> usize {
        match self.key_store {
            KeyStore::S3 => MAX_S3_KEY_BYTES,
            KeyStore::LocalFiles => crate::local::longest_local_key(bucket).min(MAX_S3_KEY_BYTES),
        }
    }

    /// Why this provider cannot store `key` in `bucket`, if it cannot (besides S3's own rules).
    pub fn unstorable_key(&self, bucket: &str, key: &str) -> Option<String> {
        match self.key_store {
            KeyStore::S3 => None,
            KeyStore::LocalFiles => crate::local::unstorable_key_problem(bucket, key).map(|(_, message)| message),
        }
    }
}

/// Keys with `.` or `..` segments go only to providers that store them literally
/// (`literal_dot_segments`): anywhere else they are refused, with the override that lifts it.
pub fn refuse_dot_segments(key: &str, providers: &[&UpstreamSettings]) -> Result<(), GatewayError> {
    if !crate::target::has_dot_segment(key) {
        return Ok(());
    }
    match providers.iter().find(|p| !p.profile.literal_dot_segments) {
        None => Ok(()),
        Some(settings) => Err(GatewayError::InvalidArgument(format!(
            "object keys with '.' or '..' path segments cannot be stored at provider '{}' (dialect {}): it may \
             resolve them as a path; if it stores such keys as they are, set \
             dialect_overrides.literal_dot_segments = true",
            settings.name, settings.profile.name
        ))),
    }
}

/// One provider: settings plus its connection pool.
pub struct Upstream {
    pub settings: UpstreamSettings,
    /// The running gateway's budget for bodies read whole, which this provider's answers
    /// (and the client bodies of requests routed to it) draw from.
    budget: BodyBudget,
    client: Client<Connector, UpstreamBody>,
    scheme: http::uri::Scheme,
    authority: String,
    /// The running gateway's `s3ferry_upstream_*` metrics, when it counts them.
    metrics: Option<UpstreamMetrics>,
    /// A request-rate limit every exchange waits for (`migrate --max-requests-per-second`);
    /// set once, before the first request, by the command that wants it.
    request_pace: std::sync::OnceLock<Arc<pace::TokenBucket>>,
    /// The day's SigV4 signing key, derived once a day instead of once a request.
    signing_keys: sign::SigningKeys,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.settings.name)
            .field("endpoint", &self.authority)
            .finish()
    }
}

/// A request ready to be signed and sent: everything but the signature.
pub struct OutgoingRequest {
    pub method: Method,
    /// `None` for service-level requests (ListBuckets).
    pub bucket: Option<String>,
    /// The key, canonically encoded (empty for bucket-level requests).
    pub encoded_key: String,
    /// Decoded query pairs, in the client's order.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: UpstreamBody,
    /// The value for `x-amz-content-sha256` (SigV4 only; SigV2 does not sign the body).
    pub payload_hash: String,
}

impl Upstream {
    /// A provider's client; its exchanges are recorded in `metrics` when given.
    pub fn new(
        settings: UpstreamSettings,
        budget: BodyBudget,
        metrics: Option<UpstreamMetrics>,
    ) -> Result<Arc<Self>, String> {
        let tls = tls_client_config(settings.ca_file.as_deref())?;
        let mut http = HttpConnector::new_with_resolver(LoopbackAwareResolver::new());
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            // As nginx keeps 256 (`keepalive`): at 128 clients a pool of 64 reopened a
            // provider connection about every 30 requests (benches/compare.sh).
            .pool_max_idle_per_host(256)
            .build(connector);
        let scheme = settings.endpoint.scheme().cloned().unwrap_or(http::uri::Scheme::HTTPS);
        let authority = settings
            .endpoint
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        Ok(Arc::new(Self {
            settings,
            budget,
            client,
            scheme,
            authority,
            metrics,
            request_pace: std::sync::OnceLock::new(),
            signing_keys: sign::SigningKeys::default(),
        }))
    }

    /// Paces every later request to this provider (each first attempt takes one token of
    /// `limit`, which may be shared with other providers). Returns false when a limit was
    /// already set.
    pub fn pace_requests(&self, limit: Arc<pace::TokenBucket>) -> bool {
        self.request_pace.set(limit).is_ok()
    }

    /// The budget for bodies read whole that requests to this provider draw from.
    pub fn budget(&self) -> &BodyBudget {
        &self.budget
    }

    /// The provider's `host[:port]`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Signs `request` as `signing` says and sends it, again while `policy` says that is safe
    /// (see [`retry`]); only an [`Exchange`] calls it.
    async fn send_under(
        &self,
        request: OutgoingRequest,
        policy: &RetryPolicy,
        signing: Signing,
    ) -> Result<Response<Incoming>, SendError> {
        let OutgoingRequest {
            method,
            bucket,
            encoded_key,
            query,
            mut headers,
            body,
            payload_hash,
        } = request;
        let UpstreamAddress { authority, mut path } = address::upstream_address(
            &self.authority,
            self.settings.addressing,
            bucket.as_deref(),
            &encoded_key,
        );
        let canonical_query = canonical_query(&query);
        let host = HeaderValue::from_str(&authority).map_err(|e| SendError::Build(e.to_string()))?;
        headers.insert(http::header::HOST, host);
        let params = sign::SigningParams {
            access_key_id: &self.settings.access_key_id,
            secret_access_key: self.settings.secret_access_key.expose(),
            region: &self.settings.region,
            time: time::OffsetDateTime::now_utc(),
        };
        match (signing, self.settings.signature) {
            (Signing::None, _) => {}
            (Signing::ProviderKey, SignatureVersion::V4) => {
                sign::sign_v4_cached(
                    &method,
                    &path,
                    &canonical_query,
                    &mut headers,
                    &payload_hash,
                    &params,
                    &self.signing_keys,
                );
            }
            (Signing::ProviderKey, SignatureVersion::V2) => {
                // AWS's canonical resource for a bucket is `/bucket/`; sending that path too
                // keeps servers that sign the path as received and servers that sign AWS's
                // form in agreement.
                if bucket.is_some() && encoded_key.is_empty() && !path.ends_with('/') {
                    path.push('/');
                }
                let resource = sign_v2::resource_path(self.settings.addressing, bucket.as_deref(), &path);
                sign_v2::sign_v2(&method, &resource, &query, &mut headers, &params);
            }
        }
        let path_and_query = if canonical_query.is_empty() {
            path
        } else {
            format!("{path}?{canonical_query}")
        };
        let uri = http::Uri::builder()
            .scheme(self.scheme.clone())
            .authority(authority)
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| SendError::Build(e.to_string()))?;
        self.send_with_retries(method, uri, headers, body, policy).await
    }

    /// Sends the signed request, and again while [`retry::decide_retry`] says it is safe and
    /// worth it. Each attempt waits at most `read_timeout` for the response headers.
    async fn send_with_retries(
        &self,
        method: Method,
        uri: http::Uri,
        headers: HeaderMap,
        body: UpstreamBody,
        policy: &RetryPolicy,
    ) -> Result<Response<Incoming>, SendError> {
        let loan = BodyLoan::new(body);
        let mut retries_done = 0;
        loop {
            let Some(body) = loan.lend() else {
                return Err(SendError::Build("the request body was already sent".into()));
            };
            let mut builder = Request::builder().method(method.clone()).uri(uri.clone());
            if let Some(h) = builder.headers_mut() {
                h.clone_from(&headers);
            }
            let request = builder.body(body).map_err(|e| SendError::Build(e.to_string()))?;
            let result = match tokio::time::timeout(self.settings.read_timeout, self.client.request(request)).await {
                Err(_) => Err(SendError::Timeout),
                Ok(Err(e)) => Err(SendError::Transport(e)),
                Ok(Ok(response)) => Ok(response),
            };
            let outcome = match &result {
                Ok(response) => AttemptOutcome::Answered {
                    status: response.status(),
                    retry_after: retry::retry_after(response.headers()),
                },
                Err(e) => e.attempt_outcome(),
            };
            let decision = decide_retry(policy, &method, loan.sent(), outcome, retries_done, retry::jitter());
            let RetryDecision::RetryAfter(delay, reason) = decision else {
                return result;
            };
            // The failed answer is dropped unread: its connection is closed, not reused.
            drop(result);
            if let Some(metrics) = &self.metrics {
                metrics.retried(&self.settings.name, reason.label());
            }
            tracing::debug!(provider = %self.settings.name, %method, reason = reason.label(), delay_ms = delay.as_millis(), "retrying a provider request");
            retries_done += 1;
            tokio::time::sleep(delay).await;
        }
    }

    /// Reads an answer body of this provider whole (at most `max` bytes) under the budget.
    pub async fn read_answer<B>(&self, body: B, max: usize) -> Result<Buffered, GatewayError>
    where
        B: http_body::Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let limits = ReadLimits {
            max,
            idle: self.settings.read_timeout,
        };
        read_capped(body, None, limits, &self.budget)
            .await
            .map_err(|e| match e {
                ReadError::Overloaded => GatewayError::SlowDown,
                other => GatewayError::UpstreamProtocol {
                    provider: self.settings.name.clone(),
                    cause: format!("reading the answer: {other}"),
                },
            })
    }

    /// Whether the provider answers HTTP within `timeout`, for the readiness probe: a signed
    /// `HEAD /`. Any response counts, even an error status: the provider's key may well not be
    /// allowed to list buckets, and the question is only whether the network path, TLS and the
    /// HTTP server are there. Not counted in the upstream metrics (probes are not traffic).
    pub async fn probe(&self, timeout: Duration) -> Result<http::StatusCode, String> {
        let request = OutgoingRequest {
            method: Method::HEAD,
            bucket: None,
            encoded_key: String::new(),
            query: Vec::new(),
            headers: HeaderMap::new(),
            body: crate::body::empty(),
            payload_hash: sign::EMPTY_PAYLOAD_SHA256.to_string(),
        };
        // One attempt: the probe reports the provider as it is now, within its own timeout.
        let once = RetryPolicy {
            retries: 0,
            ..self.settings.retry
        };
        match tokio::time::timeout(timeout, self.send_under(request, &once, Signing::ProviderKey)).await {
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
            Ok(Err(e)) => Err(e.into_gateway_error(&self.settings).to_string()),
            Ok(Ok(response)) => Ok(response.status()),
        }
    }
}

/// Whether a request carries the provider's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signing {
    ProviderKey,
    None,
}

/// Why a request did not get a response.
#[derive(Debug)]
pub enum SendError {
    Build(String),
    Timeout,
    Transport(hyper_util::client::legacy::Error),
}

impl SendError {
    /// How the attempt ended, for the retry rule.
    fn attempt_outcome(&self) -> AttemptOutcome {
        match self {
            Self::Build(_) => AttemptOutcome::WouldFailAgain,
            Self::Timeout => AttemptOutcome::TimedOut,
            Self::Transport(e) if is_certificate_rejection(e) => AttemptOutcome::WouldFailAgain,
            Self::Transport(e) if e.is_connect() => AttemptOutcome::NotConnected,
            Self::Transport(_) => AttemptOutcome::NoResponse,
        }
    }

    /// The client-facing error, with the provider's name and the cause (never a secret).
    pub fn into_gateway_error(self, settings: &UpstreamSettings) -> GatewayError {
        let provider = settings.name.clone();
        match self {
            Self::Build(cause) => GatewayError::Internal(format!("cannot build the request for '{provider}': {cause}")),
            Self::Timeout => GatewayError::UpstreamTimeout {
                provider,
                seconds: settings.read_timeout.as_secs(),
            },
            Self::Transport(e) => {
                let cause = error_chain(&e);
                if is_certificate_rejection(&e) {
                    GatewayError::UpstreamCertificateRejected { provider, cause }
                } else if e.is_connect() {
                    GatewayError::UpstreamUnreachable { provider, cause }
                } else {
                    GatewayError::UpstreamProtocol { provider, cause }
                }
            }
        }
    }
}

/// Whether a transport error is rustls refusing the provider's certificate. The rustls error
/// sits inside `io::Error`s, whose `source()` skips what they wrap, so those are opened by hand.
fn is_certificate_rejection(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut pending: Vec<&(dyn std::error::Error + 'static)> = vec![err];
    while let Some(e) = pending.pop() {
        if let Some(rustls::Error::InvalidCertificate(_)) = e.downcast_ref::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
            pending.push(inner);
        }
        if let Some(source) = e.source() {
            pending.push(source);
        }
    }
    false
}

/// `err: cause: cause...` on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

fn tls_client_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // The system's roots too, so a corporate or self-hosted CA installed on the host works.
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
        let mut reader = std::io::BufReader::new(pem.as_slice());
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut reader) {
            let cert = cert.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("ca_file {} holds no PEM certificate", path.display()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
