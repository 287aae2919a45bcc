//! A provider that is down or stalls gives the client an S3 error quickly, never a hang.

use std::path::Path;
use std::time::Duration;

use s3ferry::config::Config;

use crate::support::raw::signed_get;
use crate::support::{CLIENT_KEY, CLIENT_SECRET, error_code, error_status, sdk_client};

async fn gateway_to(endpoint: &str) -> s3ferry::server::RunningGateway {
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
[[credentials]]
access_key_id = "{CLIENT_KEY}"
secret_access_key = "{CLIENT_SECRET}"
grants = "all"
[providers.down]
endpoint = "{endpoint}"
access_key_id = "k"
secret_access_key = "s"
connect_timeout_secs = 2
read_timeout_secs = 2
[[buckets]]
name = "*"
provider = "down"
"#
    );
    let config = Config::parse(&toml, "t.toml", Path::new("."), &|_| None).expect("config");
    s3ferry::server::start(&config).await.expect("starts")
}

/// A port that was just free: nothing listens there.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn client(g: &s3ferry::server::RunningGateway) -> aws_sdk_s3::Client {
    sdk_client(
        &format!("http://127.0.0.1:{}", g.addr().port()),
        CLIENT_KEY,
        CLIENT_SECRET,
        true,
    )
}

#[tokio::test]
async fn unreachable_provider_is_service_unavailable() {
    let port = free_port();
    let g = gateway_to(&format!("http://127.0.0.1:{port}")).await;
    let err = client(&g)
        .get_object()
        .bucket("some-bucket")
        .key("k")
        .send()
        .await
        .expect_err("fails");
    assert_eq!(
        (error_status(&err), error_code(&err).as_str()),
        (503, "ServiceUnavailable")
    );
    g.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn stalled_provider_times_out_with_gateway_timeout() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let g = gateway_to(&format!("http://127.0.0.1:{port}")).await;
    // The SDK retries 5xx; one attempt is enough to see the error.
    let c = client(&g);
    let config = c
        .config()
        .to_builder()
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    let err = aws_sdk_s3::Client::from_conf(config)
        .get_object()
        .bucket("some-bucket")
        .key("k")
        .send()
        .await
        .expect_err("fails");
    assert_eq!((error_status(&err), error_code(&err).as_str()), (504, "GatewayTimeout"));
    g.shutdown(Duration::from_secs(1)).await;
    hold.abort();
}

#[tokio::test]
async fn an_unreachable_providers_error_has_no_address_or_os_error() {
    let port = free_port();
    let g = gateway_to(&format!("http://127.0.0.1:{port}")).await;
    let resp = signed_get(g.addr(), "/some-bucket/k").await;
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (503, "ServiceUnavailable"),
        "{}",
        resp.body
    );
    assert_eq!(resp.message(), "Upstream provider 'down' could not be reached");
    let lower = resp.body.to_ascii_lowercase();
    for hidden in [
        "127.0.0.1".to_string(),
        format!(":{port}"),
        "os error".into(),
        "refused".into(),
        "tcp".into(),
        "connect error".into(),
    ] {
        assert!(!lower.contains(&hidden), "{hidden} in {}", resp.body);
    }
    g.shutdown(Duration::from_secs(1)).await;
}
