//! Running as a sidecar: probes and metrics on the admin listener, JSON access logs without
//! secrets, draining on SIGTERM, reloading on SIGHUP, and the connection and header limits.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::BodyExt as _;
use md5::{Digest as _, Md5};
use s3ferry::config::Config;
use s3ferry::server::RunningGateway;

use crate::support::binary::{GatewayProcess, write_config};
use crate::support::raw::{self, RawBody, RawResponse, Signer, full_body, sha256_hex};
use crate::support::{CLIENT_KEY, CLIENT_SECRET, TestUpstream, UPSTREAM_KEY, UPSTREAM_SECRET, pattern, sdk_client};

const MIB: usize = 1024 * 1024;

/// How long a test waits for something that happens right after a response (metrics are
/// recorded when the response body has been handed to the socket).
const EVENTUALLY: Duration = Duration::from_secs(10);

pub(crate) async fn start_in_process(toml: &str) -> RunningGateway {
    let config = Config::parse(toml, "sidecar.toml", Path::new("."), &|_| None).expect("config");
    s3ferry::server::start(&config).await.expect("gateway starts")
}

/// A `[providers.NAME]` block for a test upstream (or any endpoint) with the test key pair.
pub(crate) fn provider(name: &str, endpoint: &str) -> String {
    format!(
        r#"
[providers.{name}]
endpoint = "{endpoint}"
access_key_id = "{UPSTREAM_KEY}"
secret_access_key = "{UPSTREAM_SECRET}"
connect_timeout_secs = 2
read_timeout_secs = 20
"#
    )
}

/// The `[server]` and `[[credentials]]` blocks every test config starts with.
pub(crate) fn server_block(extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
{extra}
[[credentials]]
access_key_id = "{CLIENT_KEY}"
secret_access_key = "{CLIENT_SECRET}"
grants = "all"
"#
    )
}

pub(crate) fn route(bucket: &str, provider: &str) -> String {
    format!("\n[[buckets]]\nname = \"{bucket}\"\nprovider = \"{provider}\"\n")
}

/// An endpoint where nothing listens (a port that was just free).
fn closed_endpoint() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    format!("http://127.0.0.1:{port}")
}

/// A SigV4-signed request with a signed payload hash.
pub(crate) fn signed(addr: std::net::SocketAddr, method: Method, path: &str, body: &[u8]) -> Request<RawBody> {
    let mut headers = HeaderMap::new();
    if !body.is_empty() {
        headers.insert("content-length", HeaderValue::from(body.len()));
    }
    let (builder, _) = Signer::client(addr).sign(method, path, headers, &sha256_hex(body));
    builder.body(full_body(body.to_vec())).expect("request")
}

pub(crate) async fn admin_get(admin: std::net::SocketAddr, path: &str) -> RawResponse {
    raw::send(
        Request::get(format!("http://{admin}{path}"))
            .body(full_body(""))
            .expect("request"),
    )
    .await
}

/// A metric's label pairs.
type Labels<'a> = &'a [(&'a str, &'a str)];

/// The value of the sample `name{labels}` in Prometheus text, when present.
pub(crate) fn metric(text: &str, name: &str, labels: Labels<'_>) -> Option<f64> {
    let wanted: BTreeMap<&str, &str> = labels.iter().copied().collect();
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (sample_name, label_text) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}')?),
            None => (series, ""),
        };
        if sample_name != name {
            return None;
        }
        let found: BTreeMap<&str, &str> = label_text
            .split(',')
            .filter(|pair| !pair.is_empty())
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                Some((k, v.trim_matches('"')))
            })
            .collect();
        (found == wanted).then(|| value.parse().ok()).flatten()
    })
}

/// Scrapes `/metrics` until `done` holds for the text, within [`EVENTUALLY`].
pub(crate) async fn metrics_when(admin: std::net::SocketAddr, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    loop {
        let scraped = admin_get(admin, "/metrics").await;
        assert_eq!(scraped.status, 200);
        if done(&scraped.body) {
            return scraped.body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics never showed {what}:\n{}",
            scraped.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One client connection kept open across requests (HTTP/1.1 keep-alive).
pub(crate) struct Connection {
    pub(crate) sender: hyper::client::conn::http1::SendRequest<RawBody>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Connection {
    pub(crate) async fn open(addr: std::net::SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        Self { sender, task }
    }

    /// Sends `request` in origin form on this connection; returns the response head and body.
    pub(crate) async fn send(&mut self, request: Request<RawBody>) -> http::Response<hyper::body::Incoming> {
        let (mut parts, body) = request.into_parts();
        parts.uri = parts
            .uri
            .path_and_query()
            .expect("path")
            .as_str()
            .parse()
            .expect("origin form");
        self.sender.ready().await.expect("connection ready");
        tokio::time::timeout(
            Duration::from_secs(60),
            self.sender.send_request(Request::from_parts(parts, body)),
        )
        .await
        .expect("response within 60 s")
        .expect("response")
    }

    pub(crate) async fn get_text(&mut self, request: Request<RawBody>) -> (u16, String) {
        let response = self.send(request).await;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    pub(crate) fn close(self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn readyz_names_each_unreachable_provider_while_healthz_stays_ok() {
    let up = TestUpstream::path_style().await;
    up.create_bucket("healthz");
    // Accepts connections (the kernel does) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_endpoint = format!("http://{}", silent.local_addr().expect("addr"));
    let good = format!(
        "{}{}{}",
        server_block("readiness_timeout = \"1s\""),
        provider("goodup", &up.endpoint()),
        route("*", "goodup")
    );
    let broken = format!(
        "{good}{}{}{}{}",
        provider("deadup", &closed_endpoint()),
        provider("silentup", &silent_endpoint),
        route("gone", "deadup"),
        route("quiet", "silentup")
    );
    let g = start_in_process(&broken).await;

    let health = admin_get(g.admin_addr(), "/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));

    let ready = admin_get(g.admin_addr(), "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.starts_with("not ready\n"), "{}", ready.body);
    assert!(ready.body.contains("provider goodup: ok"), "{}", ready.body);
    assert!(
        ready
            .body
            .contains("provider deadup: FAILED: Upstream provider 'deadup' is unreachable"),
        "{}",
        ready.body
    );
    assert!(
        ready
            .body
            .contains("provider silentup: FAILED: no answer within 1000 ms"),
        "{}",
        ready.body
    );

    // Without the bad providers (a reload), the same gateway is ready.
    let good_config = Config::parse(&good, "sidecar.toml", Path::new("."), &|_| None).expect("config");
    g.reload(&good_config).await.expect("reload");
    let ready = admin_get(g.admin_addr(), "/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(ready.body.starts_with("ready\n"), "{}", ready.body);
    assert!(!ready.body.contains("deadup"), "{}", ready.body);

    // The probes live on the admin port: on the S3 port, `healthz` is just a bucket.
    let client = sdk_client(
        &format!("http://127.0.0.1:{}", g.addr().port()),
        CLIENT_KEY,
        CLIENT_SECRET,
        true,
    );
    client
        .put_object()
        .bucket("healthz")
        .key("k")
        .body(ByteStream::from_static(b"a bucket, not a probe"))
        .send()
        .await
        .expect("put into the bucket called healthz");
    let got = client
        .get_object()
        .bucket("healthz")
        .key("k")
        .send()
        .await
        .expect("get");
    let body = got.body.collect().await.expect("body").into_bytes();
    assert_eq!(&body[..], b"a bucket, not a probe");
    let unknown = admin_get(g.admin_addr(), "/healthz/extra").await;
    assert_eq!(unknown.status, 404);
    g.shutdown(Duration::from_secs(5)).await;
    drop(silent);
}

#[tokio::test]
async fn metrics_count_requests_bytes_latency_and_upstream_errors() {
    let up = TestUpstream::path_style().await;
    up.create_bucket("metered");
    let toml = format!(
        "{}{}{}{}{}",
        server_block(""),
        provider("up", &up.endpoint()),
        provider("dead", &closed_endpoint()),
        route("gone", "dead"),
        route("*", "up")
    );
    let g = start_in_process(&toml).await;
    let addr = g.addr();
    let data = vec![b'm'; 1000]; // ASCII: the raw client reads bodies as text

    let put = raw::send(signed(addr, Method::PUT, "/metered/obj", &data)).await;
    assert_eq!(put.status, 200, "{}", put.body);
    let get = raw::send(signed(addr, Method::GET, "/metered/obj", b"")).await;
    assert_eq!((get.status, get.body.len()), (200, 1000));
    let head = raw::send(signed(addr, Method::HEAD, "/metered/missing", b"")).await;
    assert_eq!(head.status, 404);
    let gone = raw::send(signed(addr, Method::GET, "/gone/x", b"")).await;
    assert_eq!((gone.status, gone.code().as_str()), (503, "ServiceUnavailable"));
    g.metrics().migration_copy("metered", "done", 42);
    g.metrics().migration_fallback("metered");

    let total = |text: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("s3ferry_requests_total{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    let text = metrics_when(g.admin_addr(), "four requests", |t| total(t) >= 4.0).await;
    let expected: &[(&str, Labels, f64)] = &[
        (
            "s3ferry_requests_total",
            &[("operation", "PutObject"), ("status", "200"), ("provider", "up")],
            1.0,
        ),
        (
            "s3ferry_requests_total",
            &[("operation", "GetObject"), ("status", "200"), ("provider", "up")],
            1.0,
        ),
        (
            "s3ferry_requests_total",
            &[("operation", "HeadObject"), ("status", "404"), ("provider", "up")],
            1.0,
        ),
        (
            "s3ferry_requests_total",
            &[("operation", "GetObject"), ("status", "503"), ("provider", "dead")],
            1.0,
        ),
        (
            "s3ferry_request_bytes_total",
            &[("operation", "PutObject"), ("provider", "up")],
            1000.0,
        ),
        (
            "s3ferry_response_bytes_total",
            &[("operation", "GetObject"), ("provider", "up")],
            1000.0,
        ),
        (
            "s3ferry_request_duration_seconds_count",
            &[("operation", "GetObject")],
            2.0,
        ),
        (
            "s3ferry_request_duration_seconds_count",
            &[("operation", "PutObject")],
            1.0,
        ),
        ("s3ferry_upstream_duration_seconds_count", &[("provider", "up")], 3.0),
        (
            "s3ferry_upstream_errors_total",
            &[("provider", "dead"), ("kind", "unreachable")],
            1.0,
        ),
        (
            "s3ferry_migration_copies_total",
            &[("bucket", "metered"), ("outcome", "done")],
            1.0,
        ),
        ("s3ferry_migration_copy_bytes_total", &[("bucket", "metered")], 42.0),
        ("s3ferry_migration_fallbacks_total", &[("bucket", "metered")], 1.0),
    ];
    for (name, labels, value) in expected {
        assert_eq!(
            metric(&text, name, labels),
            Some(*value),
            "{name}{labels:?} in:\n{text}"
        );
    }
    assert!(
        text.contains("# TYPE s3ferry_request_duration_seconds histogram"),
        "{text}"
    );

    // Connections: one held open counts until it closes.
    let held = tokio::net::TcpStream::connect(addr).await.expect("connect");
    metrics_when(g.admin_addr(), "one open connection", |t| {
        metric(t, "s3ferry_active_connections", &[]) == Some(1.0)
    })
    .await;
    drop(held);
    metrics_when(g.admin_addr(), "no open connection", |t| {
        metric(t, "s3ferry_active_connections", &[]) == Some(0.0)
    })
    .await;
    let scraped = admin_get(g.admin_addr(), "/metrics").await;
    assert!(
        scraped.headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        scraped.headers
    );
    g.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn json_access_log_has_the_conventional_fields_and_never_a_secret() {
    let up = TestUpstream::path_style().await;
    up.create_bucket("docs");
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(
        dir.path(),
        &format!(
            "{}{}{}",
            server_block(""),
            provider("up", &up.endpoint()),
            route("*", "up")
        ),
    );
    // The format comes from the environment variable alone.
    let mut gw = GatewayProcess::start_with(&config, &[], &[("S3FERRY_LOG_FORMAT", "json")]).await;

    let put = raw::send(signed(gw.addr, Method::PUT, "/docs/secret-plans/q3.txt", b"quarterly")).await;
    assert_eq!(put.status, 200, "{}", put.body);
    let client = sdk_client(&format!("http://{}", gw.addr), CLIENT_KEY, CLIENT_SECRET, true);
    let presigned = client
        .get_object()
        .bucket("docs")
        .key("secret-plans/q3.txt")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).expect("presign config"))
        .await
        .expect("presign");
    let presigned_signature = presigned
        .uri()
        .split("X-Amz-Signature=")
        .nth(1)
        .expect("signature in the URL")
        .to_string();
    let got = raw::send(Request::get(presigned.uri()).body(full_body("")).expect("request")).await;
    assert_eq!((got.status, got.body.as_str()), (200, "quarterly"));
    let mut wrong = Signer::client(gw.addr);
    wrong.secret = "not-the-client-secret";
    let (builder, _) = wrong.sign(
        Method::GET,
        "/docs/secret-plans/q3.txt",
        HeaderMap::new(),
        &sha256_hex(b""),
    );
    let refused = raw::send(builder.body(full_body("")).expect("request")).await;
    assert_eq!(refused.status, 403);

    let mark = gw.mark();
    gw.signal("TERM");
    assert_eq!(gw.wait_exit().await.code(), Some(0));
    gw.wait_for(mark, "the stop event", |e| e["message"] == "stopped").await;

    let lines = gw.lines();
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let access: Vec<&serde_json::Value> = events.iter().filter(|e| e["target"] == "s3ferry::access").collect();
    assert_eq!(access.len(), 3, "one access event per request: {lines:#?}");
    for event in &access {
        for field in [
            "request_id",
            "method",
            "path",
            "operation",
            "bucket",
            "status",
            "bytes_in",
            "bytes_out",
            "duration_ms",
            "client_key_id",
            "upstream",
        ] {
            assert!(!event[field].is_null(), "{field} missing in {event}");
        }
        assert_eq!(
            event["path"], "/{bucket}/{key}",
            "keys stay out of the path field: {event}"
        );
    }
    let (put_event, get_event, refused_event) = (access[0], access[1], access[2]);
    assert_eq!(
        (&put_event["method"], &put_event["status"], &put_event["bytes_in"]),
        (&"PUT".into(), &200.into(), &9.into())
    );
    assert_eq!(put_event["client_key_id"], CLIENT_KEY);
    assert_eq!(put_event["operation"], "PutObject");
    assert_eq!(put_event["bucket"], "docs");
    assert_eq!(
        (
            &get_event["status"],
            &get_event["bytes_out"],
            &get_event["client_key_id"]
        ),
        (&200.into(), &9.into(), &CLIENT_KEY.into())
    );
    assert_eq!(refused_event["status"], 403);
    let request_ids: std::collections::HashSet<&str> = access.iter().filter_map(|e| e["request_id"].as_str()).collect();
    assert_eq!(request_ids.len(), 3, "request ids are distinct");
    for line in &lines {
        for secret in [
            CLIENT_SECRET,
            UPSTREAM_SECRET,
            "not-the-client-secret",
            presigned_signature.as_str(),
            "Signature=",
            "AWS4-HMAC-SHA256",
        ] {
            assert!(!line.contains(secret), "a log line leaks {secret:?}: {line}");
        }
    }
}

/// A 200 MiB object written straight into the upstream's directory; returns its MD5.
pub(crate) fn write_large_object(up: &TestUpstream, bucket: &str, key: &str, mib: usize) -> String {
    use std::io::Write as _;
    up.create_bucket(bucket);
    let pieces: Vec<Vec<u8>> = (0..17u8).map(|i| pattern(MIB, i)).collect();
    let mut file = std::io::BufWriter::new(std::fs::File::create(up.bucket_dir(bucket).join(key)).expect("create"));
    let mut md5 = Md5::new();
    for i in 0..mib {
        let piece = &pieces[i % pieces.len()];
        md5.update(piece);
        file.write_all(piece).expect("write");
    }
    file.flush().expect("flush");
    hex::encode(md5.finalize())
}

/// Reads what is left of a body; returns its length and MD5 together with what was read before.
pub(crate) async fn finish_body(mut body: hyper::body::Incoming, mut md5: Md5, mut total: usize) -> (usize, String) {
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body frame").into_data() {
            total += data.len();
            md5.update(&data);
        }
    }
    (total, hex::encode(md5.finalize()))
}

/// The first data frame of a body (the response is then in flight, held by backpressure).
pub(crate) async fn first_data(body: &mut hyper::body::Incoming, md5: &mut Md5) -> usize {
    loop {
        let frame = body.frame().await.expect("a first frame").expect("body frame");
        if let Ok(data) = frame.into_data() {
            md5.update(&data);
            return data.len();
        }
    }
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_200_mib_download_finish_then_exits_0() {
    let up = TestUpstream::path_style().await;
    let expected_md5 = write_large_object(&up, "big", "two-hundred-mib", 200);
    let dir = tempfile::tempdir().expect("dir");
    let config = write_config(
        dir.path(),
        &format!(
            "{}{}{}",
            server_block("shutdown_grace = \"120s\""),
            provider("up", &up.endpoint()),
            route("*", "up")
        ),
    );
    let mut gw = GatewayProcess::start(&config).await;

    let mut download = Connection::open(gw.addr).await;
    let response = download
        .send(signed(gw.addr, Method::GET, "/big/two-hundred-mib", b""))
        .await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut md5 = Md5::new();
    let first = first_data(&mut body, &mut md5).await;

    // The client reads nothing more until the gateway has stopped accepting.
    let mark = gw.mark();
    gw.signal("TERM");
    gw.wait_for(mark, "the drain event", |e| {
        e["message"] == "listener closed: draining in-flight requests"
    })
    .await;
    assert!(
        tokio::net::TcpStream::connect(gw.addr).await.is_err(),
        "the S3 listener is closed while draining"
    );
    let ready = admin_get(gw.admin_addr, "/readyz").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("draining"), "{}", ready.body);

    let (total, md5) = finish_body(body, md5, first).await;
    assert_eq!(total, 200 * MIB, "the whole object arrived");
    assert_eq!(md5, expected_md5, "and it is the object");
    download.close();

    let status = gw.wait_exit().await;
    assert_eq!(status.code(), Some(0), "exit status after the drain");
    let done = gw
        .wait_for(mark, "the download's access event", |e| {
            e["target"] == "s3ferry::access" && e["operation"] == "GetObject"
        })
        .await;
    assert_eq!(done["bytes_out"].as_u64(), Some((200 * MIB) as u64));
    assert_eq!(done["completed"], true);
}

#[tokio::test]
async fn sighup_swaps_routes_and_credentials_and_a_broken_config_leaves_the_old_one_serving() {
    let first = TestUpstream::path_style().await;
    let second = TestUpstream::path_style().await;
    first.create_bucket("shared");
    std::fs::write(first.bucket_dir("shared").join("who"), "first").expect("write");
    let expected_md5 = write_large_object(&first, "shared", "large", 16);
    second.create_bucket("shared-v2");
    std::fs::write(second.bucket_dir("shared-v2").join("who"), "second").expect("write");

    let dir = tempfile::tempdir().expect("dir");
    let before = format!(
        "{}{}{}",
        server_block(""),
        provider("first", &first.endpoint()),
        route("shared", "first")
    );
    let config = write_config(dir.path(), &before);
    let mut gw = GatewayProcess::start(&config).await;
    let addr = gw.addr;

    let mut kept = Connection::open(addr).await;
    let who = || signed(addr, Method::GET, "/shared/who", b"");
    assert_eq!(kept.get_text(who()).await, (200, "first".to_string()));
    // A download that is still running when the config changes.
    let mut streaming = Connection::open(addr).await;
    let response = streaming.send(signed(addr, Method::GET, "/shared/large", b"")).await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut md5 = Md5::new();
    let first_len = first_data(&mut body, &mut md5).await;

    let after = format!(
        r#"{}
[[credentials]]
access_key_id = "second-client"
secret_access_key = "second-client-secret"
grants = [{{ buckets = ["shared"], access = "read" }}]
{}{}
[[buckets]]
name = "shared"
provider = "second"
upstream_bucket = "shared-v2"
"#,
        server_block(""),
        provider("second", &second.endpoint()),
        provider("first", &first.endpoint()),
    );
    write_config(dir.path(), &after);
    let mark = gw.mark();
    gw.signal("HUP");
    gw.wait_for(mark, "the reload event", |e| e["message"] == "config reloaded")
        .await;

    // The same connection, now routed by the new config.
    assert_eq!(kept.get_text(who()).await, (200, "second".to_string()));
    let mut second_client = Signer::client(addr);
    second_client.key = "second-client";
    second_client.secret = "second-client-secret";
    let (builder, _) = second_client.sign(Method::GET, "/shared/who", HeaderMap::new(), &sha256_hex(b""));
    let with_new_key = raw::send(builder.body(full_body("")).expect("request")).await;
    assert_eq!((with_new_key.status, with_new_key.body.as_str()), (200, "second"));
    // The new key came with its grants: it reads, and may not write.
    let (builder, _) = second_client.sign(Method::PUT, "/shared/who", HeaderMap::new(), &sha256_hex(b"third"));
    let write = raw::send(builder.body(full_body("third")).expect("request")).await;
    assert_eq!((write.status, write.code().as_str()), (403, "AccessDenied"));
    assert_eq!(kept.get_text(who()).await, (200, "second".to_string()));
    // The download that started before the reload finishes from the old route.
    let (total, got_md5) = finish_body(body, md5, first_len).await;
    assert_eq!((total, got_md5), (16 * MIB, expected_md5));
    streaming.close();

    // A config that does not validate is refused, with the reason; the running one stays.
    write_config(
        dir.path(),
        &after.replace("provider = \"second\"", "provider = \"third\""),
    );
    let mark = gw.mark();
    gw.signal("HUP");
    let refused = gw
        .wait_for(mark, "the refused-reload event", |e| {
            e["message"] == "config reload refused; the previous config keeps serving"
        })
        .await;
    assert_eq!(refused["level"], "ERROR");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("buckets[0].provider") && e.contains("'third'")),
        "{refused}"
    );
    assert_eq!(kept.get_text(who()).await, (200, "second".to_string()));
    kept.close();

    let scraped = admin_get(gw.admin_addr, "/metrics").await;
    assert_eq!(
        metric(&scraped.body, "s3ferry_config_reloads_total", &[("outcome", "applied")]),
        Some(1.0)
    );
    assert_eq!(
        metric(&scraped.body, "s3ferry_config_reloads_total", &[("outcome", "refused")]),
        Some(1.0)
    );
    gw.signal("TERM");
    assert_eq!(gw.wait_exit().await.code(), Some(0));
}

#[tokio::test]
async fn clients_beyond_max_connections_wait_until_a_connection_closes() {
    let up = TestUpstream::path_style().await;
    up.create_bucket("bbb");
    std::fs::write(up.bucket_dir("bbb").join("k"), "v").expect("write");
    let g = start_in_process(&format!(
        "{}{}{}",
        server_block("max_connections = 1"),
        provider("up", &up.endpoint()),
        route("*", "up")
    ))
    .await;
    let addr = g.addr();
    let get = move || signed(addr, Method::GET, "/bbb/k", b"");

    let mut first = Connection::open(addr).await;
    assert_eq!(first.get_text(get()).await, (200, "v".to_string()));
    // With the one slot taken, the listener waits for a free one instead of accepting.
    metrics_when(g.admin_addr(), "the limit reached", |t| {
        metric(t, "s3ferry_connection_limit_reached_total", &[]) >= Some(1.0)
    })
    .await;

    let mut second = Connection::open(addr).await; // the kernel completes the handshake
    let waiting = tokio::spawn(async move { second.get_text(get()).await });
    let scraped = admin_get(g.admin_addr(), "/metrics").await;
    assert_eq!(metric(&scraped.body, "s3ferry_active_connections", &[]), Some(1.0));
    assert!(
        !waiting.is_finished(),
        "the second client is not served while the first is open"
    );

    first.close();
    let served = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("served once the first connection closed")
        .expect("task");
    assert_eq!(served, (200, "v".to_string()));
    g.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn oversized_request_heads_are_refused_with_431() {
    let up = TestUpstream::path_style().await;
    up.create_bucket("bbb");
    let g = start_in_process(&format!(
        "{}{}{}",
        server_block("max_header_bytes = 16384\nmax_headers = 20"),
        provider("up", &up.endpoint()),
        route("*", "up")
    ))
    .await;
    let url = format!("http://{}/bbb/k", g.addr());

    let big_value = "x".repeat(20 * 1024);
    let too_large = raw::send(
        Request::get(&url)
            .header("x-amz-meta-big", big_value.as_str())
            .body(full_body(""))
            .expect("request"),
    )
    .await;
    assert_eq!(too_large.status, 431);

    let mut many = Request::get(&url);
    for i in 0..30 {
        many = many.header(format!("x-amz-meta-h{i}"), "v");
    }
    let too_many = raw::send(many.body(full_body("")).expect("request")).await;
    assert_eq!(too_many.status, 431);

    let normal = raw::send(signed(g.addr(), Method::GET, "/bbb/missing", b"")).await;
    assert_eq!((normal.status, normal.code().as_str()), (404, "NoSuchKey"));
    g.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn health_command_exits_0_only_for_a_2xx_answer() {
    let up = TestUpstream::path_style().await;
    let g = start_in_process(&format!(
        "{}{}{}{}",
        server_block("readiness_timeout = \"1s\""),
        provider("up", &up.endpoint()),
        provider("dead", &closed_endpoint()),
        route("*", "up")
    ))
    .await;
    let health = |path: &str| {
        let url = format!("http://{}{path}", g.admin_addr());
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"))
                .args(["health", "--url", &url])
                .output()
                .await
                .expect("run s3ferry health")
        }
    };
    let alive = health("/healthz").await;
    assert!(alive.status.success(), "{alive:?}");
    assert_eq!(String::from_utf8_lossy(&alive.stdout), "ok\n");
    let unready = health("/readyz").await;
    assert_eq!(unready.status.code(), Some(1), "{unready:?}");
    assert!(String::from_utf8_lossy(&unready.stdout).contains("provider dead: FAILED"));
    let admin = g.admin_addr();
    g.shutdown(Duration::from_secs(5)).await;
    let nobody = tokio::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"))
        .args(["health", "--url", &format!("http://{admin}/healthz")])
        .output()
        .await
        .expect("run s3ferry health");
    assert_eq!(nobody.status.code(), Some(1), "{nobody:?}");
}
