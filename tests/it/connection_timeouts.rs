//! Unauthenticated peers cannot hold the listeners: silent and idle connections are closed
//! after `server.request_head_timeout` / `server.idle_timeout` and give their slot back, the
//! admin listener has its own cap, and a burst of `/readyz` is one round of provider probes.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::Method;
use http_body_util::BodyExt as _;
use md5::{Digest as _, Md5};
use s3ferry::config::Config;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::sidecar::{
    Connection, admin_get, finish_body, first_data, metric, metrics_when, provider, route, server_block, signed,
    start_in_process, write_large_object,
};
use crate::support::{TestUpstream, gateway_client};

const HEAD_TIMEOUT: Duration = Duration::from_secs(1);
/// Well above `HEAD_TIMEOUT`, so that a loaded machine cannot blur which of the two closed
/// a connection.
const IDLE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a test waits for something the server must do after a timeout: generous, since
/// the machine is shared, and still bounded.
const WITHIN: Duration = Duration::from_secs(15);

/// An HTTP/2 client's first bytes with prior knowledge (h2c): the preface and an empty
/// SETTINGS frame (length 0, type 4, no flags, stream 0).
const H2C_PREFACE_AND_SETTINGS: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A gateway with short timeouts and `extra` server settings, in front of an upstream that
/// holds `bbb/k` = `v`.
async fn gateway_with_timeouts(extra: &str) -> (s3ferry::server::RunningGateway, TestUpstream) {
    let up = TestUpstream::path_style().await;
    up.create_bucket("bbb");
    std::fs::write(up.bucket_dir("bbb").join("k"), "v").expect("write");
    let settings = format!(
        "request_head_timeout = \"{}ms\"\nidle_timeout = \"{}ms\"\n{extra}",
        HEAD_TIMEOUT.as_millis(),
        IDLE_TIMEOUT.as_millis()
    );
    let g = start_in_process(&format!(
        "{}{}{}",
        server_block(&settings),
        provider("up", &up.endpoint()),
        route("*", "up")
    ))
    .await;
    (g, up)
}

/// Reads (and discards, e.g. the server's SETTINGS) until the server closes `socket`; returns
/// how long after `opened` that was.
async fn closed_by_server(mut socket: TcpStream, opened: Instant) -> Duration {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(WITHIN, async {
        while let Ok(n) = socket.read(&mut buf).await
            && n > 0
        {}
    })
    .await
    .expect("the server closes the connection");
    opened.elapsed()
}

async fn silent_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut sockets = Vec::new();
    for _ in 0..n {
        sockets.push(TcpStream::connect(addr).await.expect("connect"));
    }
    sockets
}

#[tokio::test]
async fn silent_tcp_and_idle_h2c_connections_are_closed_and_a_real_client_gets_through() {
    let (g, _up) = gateway_with_timeouts("max_connections = 4").await;
    let admin = g.admin_addr();
    let opened = Instant::now();
    let silent = silent_connections(g.addr(), 3).await;
    let mut h2c = TcpStream::connect(g.addr()).await.expect("connect");
    h2c.write_all(H2C_PREFACE_AND_SETTINGS).await.expect("preface");
    // Every slot is held by a peer that has not sent a request.
    metrics_when(admin, "four open connections", |t| {
        metric(t, "s3ferry_active_connections", &[]) == Some(4.0)
    })
    .await;
    metrics_when(admin, "the limit reached", |t| {
        metric(t, "s3ferry_connection_limit_reached_total", &[]) >= Some(1.0)
    })
    .await;

    let client = gateway_client(g.addr());
    let get = tokio::spawn(async move {
        let got = client.get_object().bucket("bbb").key("k").send().await;
        let body = got
            .expect("GET through the gateway")
            .body
            .collect()
            .await
            .expect("body");
        (body.into_bytes(), opened.elapsed())
    });

    for socket in silent.into_iter().chain([h2c]) {
        let closed_after = closed_by_server(socket, opened).await;
        assert!(
            closed_after >= HEAD_TIMEOUT,
            "closed after {closed_after:?}, before the request-head timeout"
        );
    }
    let (body, served_after) = tokio::time::timeout(WITHIN, get)
        .await
        .expect("the SDK request is served once the idle connections are gone")
        .expect("task");
    assert_eq!(&body[..], b"v");
    // It waited for a slot: the cap held until the server closed the silent connections.
    assert!(served_after >= HEAD_TIMEOUT, "served after {served_after:?}");
    g.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_keep_alive_connection_outlives_the_head_timeout_and_is_closed_after_the_idle_timeout() {
    let (g, _up) = gateway_with_timeouts("").await;
    let addr = g.addr();
    let mut conn = Connection::open(addr).await;
    let sent = Instant::now();
    assert_eq!(
        conn.get_text(signed(addr, Method::GET, "/bbb/k", b"")).await,
        (200, "v".to_string())
    );
    // Idle for longer than the request-head timeout, shorter than the idle timeout: the
    // connection is still there for the next request.
    tokio::time::sleep(HEAD_TIMEOUT + Duration::from_millis(300)).await;
    assert!(!conn.task.is_finished(), "closed while within the idle timeout");
    let second = Instant::now();
    assert_eq!(
        conn.get_text(signed(addr, Method::GET, "/bbb/k", b"")).await,
        (200, "v".to_string())
    );
    tokio::time::timeout(WITHIN, conn.task)
        .await
        .expect("the server closes the idle connection")
        .expect("task");
    let idle_for = second.elapsed();
    assert!(idle_for >= IDLE_TIMEOUT, "closed {idle_for:?} after the last request");
    assert!(sent.elapsed() >= HEAD_TIMEOUT + IDLE_TIMEOUT);
    g.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_http2_connection_with_no_open_stream_is_closed_after_the_idle_timeout() {
    let (g, _up) = gateway_with_timeouts("").await;
    let addr = g.addr();
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2c handshake");
    let conn = tokio::spawn(conn);
    let sent = Instant::now();
    let response = tokio::time::timeout(WITHIN, sender.send_request(signed(addr, Method::GET, "/bbb/k", b"")))
        .await
        .expect("answer")
        .expect("response");
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&body[..], b"v");

    tokio::time::timeout(WITHIN, conn)
        .await
        .expect("the server closes the h2 connection")
        .expect("task")
        .ok();
    let closed_after = sent.elapsed();
    assert!(
        closed_after >= IDLE_TIMEOUT,
        "closed {closed_after:?} after the request, before the idle timeout"
    );
    g.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_download_in_flight_longer_than_the_idle_timeout_is_not_cut() {
    let (g, up) = gateway_with_timeouts("").await;
    let expected_md5 = write_large_object(&up, "big", "sixteen-mib", 16);
    let addr = g.addr();
    let mut conn = Connection::open(addr).await;
    let response = conn.send(signed(addr, Method::GET, "/big/sixteen-mib", b"")).await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut md5 = Md5::new();
    let first = first_data(&mut body, &mut md5).await;
    // The client stops reading; the response waits on backpressure, in flight, for longer
    // than the idle timeout.
    tokio::time::sleep(IDLE_TIMEOUT + Duration::from_secs(1)).await;
    let (total, md5) = tokio::time::timeout(WITHIN, finish_body(body, md5, first))
        .await
        .expect("the rest of the body");
    assert_eq!((total, md5), (16 * 1024 * 1024, expected_md5));
    conn.close();
    g.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn the_admin_listener_caps_connections_and_closes_silent_ones() {
    let (g, _up) = gateway_with_timeouts("admin_max_connections = 2").await;
    let admin = g.admin_addr();
    let opened = Instant::now();
    let silent = silent_connections(admin, 2).await;
    let probe = tokio::spawn(async move {
        let health = admin_get(admin, "/healthz").await;
        (health.status, opened.elapsed())
    });
    for socket in silent {
        let closed_after = closed_by_server(socket, opened).await;
        assert!(closed_after >= HEAD_TIMEOUT, "closed after {closed_after:?}");
    }
    let (status, answered_after) = tokio::time::timeout(WITHIN, probe)
        .await
        .expect("the probe is answered once a slot is free")
        .expect("task");
    assert_eq!(status, 200);
    // It waited behind the two silent connections: the cap is there.
    assert!(answered_after >= HEAD_TIMEOUT, "answered after {answered_after:?}");
    g.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_burst_of_readyz_calls_sends_one_probe_to_the_provider() {
    let up = TestUpstream::path_style().await;
    let toml = format!(
        "{}{}{}",
        server_block("readiness_cache = \"30s\""),
        provider("up", &up.endpoint()),
        route("*", "up")
    );
    let g = start_in_process(&toml).await;
    let admin = g.admin_addr();
    let burst = futures::future::join_all((0..40).map(|_| admin_get(admin, "/readyz"))).await;
    for answer in burst.iter().chain(&[admin_get(admin, "/readyz").await]) {
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert!(answer.body.contains("provider up: ok"), "{}", answer.body);
    }
    assert_eq!(up.quirks.requests.load(Ordering::SeqCst), 1, "41 readyz, one probe");

    // A new config is probed afresh, not answered from the previous one's round.
    let config = Config::parse(&toml, "sidecar.toml", Path::new("."), &|_| None).expect("config");
    g.reload(&config).await.expect("reload");
    let answer = admin_get(admin, "/readyz").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(up.quirks.requests.load(Ordering::SeqCst), 2);
    g.shutdown(Duration::from_secs(5)).await;
}
