//! TLS on both sides of the gateway, with a CA and certificates made for each test: clients
//! reaching the gateway over HTTPS (`server.tls_cert`/`tls_key`), the gateway reaching an HTTPS
//! provider it trusts through `ca_file`, and a provider whose certificate does not verify
//! being refused before any request reaches it.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tempfile::TempDir;

use crate::sidecar::{provider, route, server_block, start_in_process};
use crate::support::{
    CLIENT_KEY, CLIENT_SECRET, TestUpstream, error_code, error_status, gateway_client, sdk_client, sdk_client_trusting,
};

/// A certificate authority made for one test.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate and its key, PEM.
struct ServerCert {
    cert_pem: String,
    key_pem: String,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `dns_name`, signed by this CA.
    fn issue(&self, dns_name: &str) -> ServerCert {
        let params = CertificateParams::new(vec![dns_name.to_string()]).expect("params");
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write PEM");
    path
}

/// TOML's basic strings take backslashes as escapes; test paths never hold a quote.
fn toml_path(path: &Path) -> String {
    path.display().to_string().replace('\\', "/")
}

#[tokio::test]
async fn tls_termination_serves_a_client_that_trusts_the_gateways_ca() {
    let ca = TestCa::new("s3ferry test gateway CA");
    let cert = ca.issue("localhost");
    let dir = tempfile::tempdir().expect("dir");
    let cert_file = write(dir.path(), "gateway.pem", &cert.cert_pem);
    let key_file = write(dir.path(), "gateway.key", &cert.key_pem);
    let up = TestUpstream::path_style().await;
    up.create_bucket("tls-bucket");
    let g = start_in_process(&format!(
        "{}{}{}",
        server_block(&format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"",
            toml_path(&cert_file),
            toml_path(&key_file)
        )),
        provider("up", &up.endpoint()),
        route("*", "up")
    ))
    .await;
    let endpoint = format!("https://localhost:{}", g.addr().port());

    let client = sdk_client_trusting(&endpoint, &ca.pem());
    client
        .put_object()
        .bucket("tls-bucket")
        .key("k")
        .body(ByteStream::from_static(b"over TLS"))
        .send()
        .await
        .expect("PUT over HTTPS");
    let got = client
        .get_object()
        .bucket("tls-bucket")
        .key("k")
        .send()
        .await
        .expect("GET over HTTPS");
    let body = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(&body[..], b"over TLS");
    assert!(up.has_object("tls-bucket", "k").await);

    // The certificate is what the client verified: one that trusts another CA refuses the
    // gateway, and plain HTTP on the TLS port gets no S3 answer.
    let stranger = sdk_client_trusting(&endpoint, &TestCa::new("another CA").pem());
    let refused = stranger.list_buckets().send().await.expect_err("untrusted certificate");
    assert!(refused.raw_response().is_none(), "{refused:?}");
    assert!(
        format!("{refused:?}").contains("UnknownIssuer"),
        "the client's error names the TLS cause: {refused:?}"
    );
    let plain = sdk_client(
        &format!("http://localhost:{}", g.addr().port()),
        CLIENT_KEY,
        CLIENT_SECRET,
        true,
    );
    let plain_result = tokio::time::timeout(Duration::from_secs(30), plain.list_buckets().send())
        .await
        .expect("plain HTTP ends within the request-head timeout");
    assert!(plain_result.is_err(), "plain HTTP on the TLS port: {plain_result:?}");
    g.shutdown(Duration::from_secs(5)).await;
}

/// A provider `name` at `up` that trusts the CA in `ca_file`, routed as `*`; and a plain-HTTP
/// client of the gateway.
async fn gateway_to_https_provider(
    up: &TestUpstream,
    ca_file: &Path,
) -> (s3ferry::server::RunningGateway, aws_sdk_s3::Client) {
    let g = start_in_process(&format!(
        "{}{}ca_file = \"{}\"\n{}",
        server_block(""),
        provider("secure", &up.endpoint()),
        toml_path(ca_file),
        route("*", "secure")
    ))
    .await;
    let client = gateway_client(g.addr());
    (g, client)
}

#[tokio::test]
async fn an_https_provider_is_reached_through_the_ca_in_ca_file() {
    let ca = TestCa::new("s3ferry test provider CA");
    let cert = ca.issue("localhost");
    let up = TestUpstream::https(&cert.cert_pem, &cert.key_pem).await;
    up.create_bucket("secure-bucket");
    let dir = tempfile::tempdir().expect("dir");
    let ca_file = write(dir.path(), "provider-ca.pem", &ca.pem());
    let (g, client) = gateway_to_https_provider(&up, &ca_file).await;

    client
        .put_object()
        .bucket("secure-bucket")
        .key("k")
        .body(ByteStream::from_static(b"to an HTTPS provider"))
        .send()
        .await
        .expect("PUT through the gateway");
    let stored = std::fs::read(up.bucket_dir("secure-bucket").join("k")).expect("stored by the provider");
    assert_eq!(stored, b"to an HTTPS provider");
    let got = client
        .get_object()
        .bucket("secure-bucket")
        .key("k")
        .send()
        .await
        .expect("GET through the gateway");
    let body = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(&body[..], b"to an HTTPS provider");
    assert!(up.quirks.requests.load(Ordering::SeqCst) >= 2);
    g.shutdown(Duration::from_secs(5)).await;
}

/// Sends a GET through a gateway whose provider presents `cert` while the gateway trusts
/// `trusted`; asserts the client's error and that no HTTP request reached the provider.
async fn assert_refused_before_any_request(cert: &ServerCert, trusted: &TestCa, tls_cause: &str) {
    let up = TestUpstream::https(&cert.cert_pem, &cert.key_pem).await;
    up.create_bucket("secure-bucket");
    let dir: TempDir = tempfile::tempdir().expect("dir");
    let ca_file = write(dir.path(), "provider-ca.pem", &trusted.pem());
    let (g, client) = gateway_to_https_provider(&up, &ca_file).await;

    let err = client
        .get_object()
        .bucket("secure-bucket")
        .key("k")
        .send()
        .await
        .expect_err("a provider that fails verification is refused");
    assert_eq!(
        (error_status(&err), error_code(&err).as_str()),
        (503, "ServiceUnavailable"),
        "{err:?}"
    );
    let message = err
        .as_service_error()
        .and_then(aws_sdk_s3::error::ProvideErrorMetadata::message)
        .unwrap_or_default()
        .to_string();
    assert!(message.contains("'secure'"), "names the provider: {message}");
    assert!(
        message.contains("TLS certificate is not trusted"),
        "says what to fix: {message}"
    );
    // The TLS detail (and the provider's address) stays in the log, out of the client's error.
    assert!(!message.contains(tls_cause), "no transport detail: {message}");
    assert!(!message.contains(&up.addr.port().to_string()), "no address: {message}");
    // The gateway did connect (the test would pass vacuously otherwise) and stopped at the
    // handshake: nothing signed, no path, no body reached the provider.
    assert!(up.quirks.connections.load(Ordering::SeqCst) >= 1);
    assert_eq!(up.quirks.requests.load(Ordering::SeqCst), 0);
    // A certificate that does not verify will not verify on a second try: one request, one
    // connection, no retry.
    let before = up.quirks.connections.load(Ordering::SeqCst);
    let once = crate::support::raw::signed_get(g.addr(), "/secure-bucket/k").await;
    assert_eq!((once.status, once.code().as_str()), (503, "ServiceUnavailable"));
    assert_eq!(up.quirks.connections.load(Ordering::SeqCst) - before, 1, "not retried");
    g.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_provider_certificate_from_an_untrusted_ca_is_refused_before_any_request() {
    let rogue = TestCa::new("rogue CA");
    let trusted = TestCa::new("the CA in ca_file");
    assert_refused_before_any_request(&rogue.issue("localhost"), &trusted, "UnknownIssuer").await;
}

#[tokio::test]
async fn a_provider_certificate_for_another_name_is_refused_before_any_request() {
    let ca = TestCa::new("the CA in ca_file");
    assert_refused_before_any_request(&ca.issue("other.example"), &ca, "not valid for name").await;
}
