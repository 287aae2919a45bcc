//! What the gateway does when the network or a provider misbehaves: a real s3s-fs upstream
//! behind the fault-injecting stand-in (`support::faults`), the gateway with short provider
//! timeouts, and raw HTTP clients that see exactly what the gateway answers.
//!
//! Every test asserts what the client got (an S3 error with the right status, or a response
//! visibly cut before its `Content-Length`, never a short 200), that nothing partial is
//! committed upstream, and how many requests reached the stand-in (retries).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::BodyExt as _;
use s3ferry::server::RunningGateway;

use crate::sidecar::{Connection, metric, metrics_when, route, server_block, signed, start_in_process};
use crate::support::faults::{AnswerBody, Ending, Exchange, Fault, FaultProxy, Match};
use crate::support::raw::{RawBody, Signer};
use crate::support::{CLIENT_KEY, CLIENT_SECRET, TestUpstream, UPSTREAM_KEY, UPSTREAM_SECRET, pattern};

const BUCKET: &str = "flakyb";
/// Bounded wait for what must happen after a fault (the machine is shared).
const WITHIN: Duration = Duration::from_secs(20);

/// The upstream, the stand-in in front of it, and the gateway whose provider `flaky` is the
/// stand-in, with 1 s timeouts and fast retries.
struct Faulty {
    gateway: RunningGateway,
    upstream: TestUpstream,
    proxy: FaultProxy,
}

fn flaky_provider(endpoint: &str, read_timeout_secs: u64) -> String {
    format!(
        r#"
[providers.flaky]
endpoint = "{endpoint}"
access_key_id = "{UPSTREAM_KEY}"
secret_access_key = "{UPSTREAM_SECRET}"
dialect = "minio"
connect_timeout_secs = 1
read_timeout_secs = {read_timeout_secs}
retries = 2
retry_backoff_ms = 20
retry_after_max_secs = 2
"#
    )
}

impl Faulty {
    async fn start() -> Self {
        Self::with_read_timeout(1).await
    }

    async fn with_read_timeout(read_timeout_secs: u64) -> Self {
        let upstream = TestUpstream::path_style().await;
        upstream.create_bucket(BUCKET);
        let proxy = FaultProxy::start(upstream.addr).await;
        let toml = format!(
            "{}{}{}",
            server_block(""),
            flaky_provider(&proxy.endpoint(), read_timeout_secs),
            route("*", "flaky")
        );
        let gateway = start_in_process(&toml).await;
        Self {
            gateway,
            upstream,
            proxy,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.gateway.addr()
    }

    /// Writes `bucket/key` straight into the upstream's directory.
    fn seed(&self, key: &str, data: &[u8]) {
        std::fs::write(self.upstream.bucket_dir(BUCKET).join(key), data).expect("seed");
    }

    /// `s3ferry_upstream_retries_total{provider="flaky",reason}` once it is `expected`.
    async fn retries_reach(&self, reason: &str, expected: f64) {
        let labels = [("provider", "flaky"), ("reason", reason)];
        metrics_when(self.gateway.admin_addr(), "the retries counted", |t| {
            metric(t, "s3ferry_upstream_retries_total", &labels) == Some(expected)
        })
        .await;
    }

    /// No retry of any reason was counted.
    async fn no_retries(&self) {
        let text = crate::sidecar::admin_get(self.gateway.admin_addr(), "/metrics")
            .await
            .body;
        for reason in ["not_connected", "no_response", "status_5xx"] {
            let labels = [("provider", "flaky"), ("reason", reason)];
            assert_eq!(
                metric(&text, "s3ferry_upstream_retries_total", &labels),
                None,
                "{reason}"
            );
        }
    }

    async fn stop(self) {
        self.gateway.shutdown(Duration::from_secs(2)).await;
    }
}

/// What a client got, read as far as the connection allowed.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
    /// The body ended in an error (the connection closed before `Content-Length` bytes).
    cut: bool,
}

impl Answer {
    fn code(&self) -> String {
        s3ferry::error::parse_error_code(&self.body)
            .map(|(c, _)| c)
            .unwrap_or_default()
    }

    fn content_length(&self) -> Option<usize> {
        self.headers.get("content-length")?.to_str().ok()?.parse().ok()
    }

    /// An S3 error with this status and code.
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.code().as_str(), self.cut),
            (status, code, false),
            "{self:?}"
        );
    }

    /// Never a short 200: either an error status, or a body that visibly ended early.
    fn assert_not_a_truncated_success(&self, full_length: usize) {
        if self.status == 200 && !self.cut {
            assert_eq!(self.body.len(), full_length, "a 200 with a short body: {self:?}");
            assert_eq!(self.content_length(), Some(full_length));
        }
        if self.cut {
            assert!(
                self.content_length().is_some_and(|l| self.body.len() < l),
                "a cut body is shorter than its Content-Length: {self:?}"
            );
        }
    }
}

/// Sends `request` on a fresh connection; reads the answer whole, or until the connection
/// fails (bounded).
async fn exchange(addr: SocketAddr, request: Request<RawBody>) -> Answer {
    let mut connection = Connection::open(addr).await;
    let response = connection.send(request).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    let mut cut = false;
    let read = tokio::time::timeout(WITHIN, async {
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        bytes.extend_from_slice(data);
                    }
                }
                Err(_) => {
                    cut = true;
                    break;
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the body ends (whole or cut) within {WITHIN:?}");
    connection.close();
    Answer {
        status,
        headers,
        body: Bytes::from(bytes),
        cut,
    }
}

async fn get(f: &Faulty, key: &str) -> Answer {
    exchange(
        f.addr(),
        signed(f.addr(), Method::GET, &format!("/{BUCKET}/{key}"), b""),
    )
    .await
}

async fn put(f: &Faulty, key: &str, data: &[u8]) -> Answer {
    exchange(
        f.addr(),
        signed(f.addr(), Method::PUT, &format!("/{BUCKET}/{key}"), data),
    )
    .await
}

fn ended(exchanges: &[Exchange], method: &Method, path: &str) -> bool {
    exchanges
        .iter()
        .any(|e| e.method == method.as_str() && e.target.contains(path) && e.ending != Ending::InProgress)
}

// ---------------------------------------------------------------------------------------------
// PUT

#[tokio::test]
async fn a_put_reset_mid_request_body_is_a_502_not_retried_and_commits_nothing() {
    let f = Faulty::start().await;
    f.proxy
        .inject(Match::method(Method::PUT), Fault::ResetAfterRequestBodyBytes(10_000));
    let data = pattern(256 * 1024, 1);
    let answer = put(&f, "reset-mid-body", &data).await;
    answer.assert_error(502, "BadGateway");
    assert_eq!(
        f.proxy.count(&Method::PUT, "reset-mid-body"),
        1,
        "not retried: the body had started"
    );
    assert!(!f.upstream.has_object(BUCKET, "reset-mid-body").await);
    f.no_retries().await;
    f.stop().await;
}

#[tokio::test]
async fn a_put_whose_answer_is_lost_is_not_retried_and_the_upstream_holds_it_whole_or_not_at_all() {
    let f = Faulty::start().await;
    f.proxy.inject(Match::method(Method::PUT), Fault::ResetBeforeResponse);
    let data = pattern(200 * 1024, 2);
    let answer = put(&f, "answer-lost", &data).await;
    answer.assert_error(502, "BadGateway");
    assert_eq!(f.proxy.count(&Method::PUT, "answer-lost"), 1);
    // The provider got the whole body and may have stored it: whole, never in part.
    if f.upstream.has_object(BUCKET, "answer-lost").await {
        let stored = std::fs::read(f.upstream.bucket_dir(BUCKET).join("answer-lost")).expect("read");
        assert_eq!(stored, data);
    }
    f.stop().await;
}

#[tokio::test]
async fn a_put_stalled_mid_request_body_or_before_its_answer_times_out_with_504() {
    let f = Faulty::start().await;
    f.proxy.inject(
        Match::method(Method::PUT).path("stalled-body"),
        Fault::StallAfterRequestBodyBytes(10_000),
    );
    f.proxy.inject(
        Match::method(Method::PUT).path("stalled-answer"),
        Fault::StallBeforeResponse,
    );
    let data = pattern(300 * 1024, 3);
    let (body_stall, answer_stall) = tokio::join!(put(&f, "stalled-body", &data), put(&f, "stalled-answer", &data));
    body_stall.assert_error(504, "GatewayTimeout");
    answer_stall.assert_error(504, "GatewayTimeout");
    assert_eq!(f.proxy.count(&Method::PUT, "stalled-body"), 1);
    assert_eq!(f.proxy.count(&Method::PUT, "stalled-answer"), 1);
    // The gateway gave up on the stalled body: its upstream request ended, nothing committed.
    f.proxy
        .wait_for("the stalled upload's connection closed by the gateway", |e| {
            e.iter()
                .any(|x| x.target.contains("stalled-answer") && x.ending == Ending::GatewayClosed)
        })
        .await;
    assert!(!f.upstream.has_object(BUCKET, "stalled-body").await);
    f.no_retries().await;
    f.stop().await;
}

#[tokio::test]
async fn a_put_answered_503_is_relayed_and_not_retried() {
    let f = Faulty::start().await;
    f.proxy.inject(
        Match::method(Method::PUT),
        Fault::Answer {
            status: 503,
            retry_after: Some(1),
            body: AnswerBody::S3Error("SlowDown"),
        },
    );
    let answer = put(&f, "slow-down", b"small body").await;
    answer.assert_error(503, "SlowDown");
    assert_eq!(
        answer.headers.get("retry-after").map(HeaderValue::as_bytes),
        Some(&b"1"[..])
    );
    assert_eq!(
        f.proxy.count(&Method::PUT, "slow-down"),
        1,
        "a PUT is not repeated on a 503"
    );
    assert!(!f.upstream.has_object(BUCKET, "slow-down").await);
    f.stop().await;
}

#[tokio::test]
async fn a_refused_connection_is_retried_with_a_bound_then_503() {
    let f = Faulty::start().await;
    f.proxy.refuse_connections();
    let answer = put(&f, "refused", b"nothing of this was sent").await;
    answer.assert_error(503, "ServiceUnavailable");
    // Nothing reached the provider, so even the PUT was safe to repeat: twice, then the error.
    f.retries_reach("not_connected", 2.0).await;
    let read = get(&f, "refused").await;
    read.assert_error(503, "ServiceUnavailable");
    f.retries_reach("not_connected", 4.0).await;
    assert!(f.proxy.exchanges().is_empty());

    // Once the provider is back, the same requests go through.
    f.proxy.accept_connections().await;
    put(&f, "refused", b"sent now").await.assert_not_a_truncated_success(0);
    let read = get(&f, "refused").await;
    assert_eq!((read.status, &read.body[..]), (200, &b"sent now"[..]));
    f.stop().await;
}

#[tokio::test]
async fn a_client_disconnecting_mid_upload_ends_the_upstream_request_and_commits_nothing() {
    let f = Faulty::start().await;
    let addr = f.addr();
    let total: usize = 4 * 1024 * 1024;
    let (tx, rx) =
        futures::channel::mpsc::channel::<Result<http_body::Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>>(4);
    let body: RawBody = http_body_util::StreamBody::new(rx).boxed();
    let mut headers = HeaderMap::new();
    headers.insert("content-length", HeaderValue::from(total));
    let signer = Signer {
        addr,
        key: CLIENT_KEY,
        secret: CLIENT_SECRET,
        time: time::OffsetDateTime::now_utc(),
    };
    let (builder, _) = signer.sign(
        Method::PUT,
        &format!("/{BUCKET}/abandoned"),
        headers,
        "UNSIGNED-PAYLOAD",
    );
    let mut connection = Connection::open(addr).await;
    let mut request = builder.body(body).expect("request");
    *request.uri_mut() = format!("/{BUCKET}/abandoned").parse().expect("origin form");
    connection.sender.ready().await.expect("ready");
    let sending = tokio::spawn(connection.sender.send_request(request));
    let mut tx = tx;
    use futures::SinkExt as _;
    tx.send(Ok(http_body::Frame::data(Bytes::from(pattern(256 * 1024, 4)))))
        .await
        .expect("first piece");
    f.proxy
        .wait_for("the upload's first bytes at the provider", |e| {
            e.iter()
                .any(|x| x.target.contains("abandoned") && x.request_body_bytes > 0)
        })
        .await;
    // The client goes away mid-body.
    connection.task.abort();
    drop(tx);
    let _ = sending.await;
    let seen = f
        .proxy
        .wait_for("the gateway close its upstream connection", |e| {
            ended(e, &Method::PUT, "abandoned")
        })
        .await;
    let upload = seen.iter().find(|x| x.target.contains("abandoned")).expect("seen");
    assert_eq!(upload.ending, Ending::GatewayClosed, "{upload:?}");
    assert!((upload.request_body_bytes as usize) < total);
    assert!(!f.upstream.has_object(BUCKET, "abandoned").await);
    f.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Multipart

#[tokio::test]
async fn a_part_cut_mid_body_fails_alone_and_a_lost_complete_answer_is_not_repeated() {
    let f = Faulty::start().await;
    let c = crate::support::gateway_client(f.addr());
    let c = aws_sdk_s3::Client::from_conf(
        c.config()
            .to_builder()
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build(),
    );
    // CreateMultipartUpload is a POST: a 503 goes to the client, which may retry; the gateway
    // does not (the provider may have created an upload).
    f.proxy.inject(
        Match::method(Method::POST).path("uploads").times(1),
        Fault::Answer {
            status: 503,
            retry_after: None,
            body: AnswerBody::S3Error("SlowDown"),
        },
    );
    let refused = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("mpu")
        .send()
        .await
        .expect_err("503");
    assert_eq!(crate::support::error_status(&refused), 503);
    assert_eq!(f.proxy.count(&Method::POST, "uploads"), 1);
    let created = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("mpu")
        .send()
        .await
        .expect("create");
    let upload_id = created.upload_id().expect("id").to_string();
    let part1 = pattern(5 * 1024 * 1024, 5);
    let part2 = pattern(1024 * 1024, 6);
    f.proxy.inject(
        Match::method(Method::PUT).path("partNumber=1").times(1),
        Fault::ResetAfterRequestBodyBytes(100_000),
    );
    let upload = |n: i32, data: &[u8]| {
        c.upload_part()
            .bucket(BUCKET)
            .key("mpu")
            .upload_id(&upload_id)
            .part_number(n)
            .body(aws_sdk_s3::primitives::ByteStream::from(data.to_vec()))
            .send()
    };
    let failed = upload(1, &part1).await.expect_err("the cut part fails");
    assert_eq!(crate::support::error_status(&failed), 502, "{failed:?}");
    assert_eq!(
        f.proxy.count(&Method::PUT, "partNumber=1"),
        1,
        "the gateway did not repeat it"
    );
    // The client repeats the part; the upload goes on.
    let e1 = upload(1, &part1)
        .await
        .expect("part 1")
        .e_tag()
        .expect("etag")
        .to_string();
    let e2 = upload(2, &part2)
        .await
        .expect("part 2")
        .e_tag()
        .expect("etag")
        .to_string();

    f.proxy.inject(
        Match::method(Method::POST).path("uploadId=").times(1),
        Fault::ResetBeforeResponse,
    );
    let parts = aws_sdk_s3::types::CompletedMultipartUpload::builder()
        .parts(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(1)
                .e_tag(e1)
                .build(),
        )
        .parts(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(2)
                .e_tag(e2)
                .build(),
        )
        .build();
    let lost = c
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("mpu")
        .upload_id(&upload_id)
        .multipart_upload(parts)
        .send()
        .await
        .expect_err("the answer was lost");
    assert_eq!(crate::support::error_status(&lost), 502, "{lost:?}");
    assert_eq!(
        f.proxy.count(&Method::POST, "uploadId="),
        1,
        "CompleteMultipartUpload is not repeated once sent"
    );
    // The provider completed it: the object is whole.
    let stored = std::fs::read(f.upstream.bucket_dir(BUCKET).join("mpu")).expect("completed upstream");
    assert_eq!(stored, [part1, part2].concat());
    f.no_retries().await;
    f.stop().await;
}

// ---------------------------------------------------------------------------------------------
// GET

#[tokio::test]
async fn a_get_whose_connection_resets_before_the_answer_is_retried_and_served() {
    let f = Faulty::start().await;
    let data = pattern(100 * 1024, 7);
    f.seed("retried", &data);
    f.proxy.inject(
        Match::method(Method::GET).path("retried").times(1),
        Fault::ResetBeforeResponse,
    );
    let answer = get(&f, "retried").await;
    assert_eq!((answer.status, answer.cut), (200, false));
    assert_eq!(&answer.body[..], &data[..]);
    assert_eq!(f.proxy.count(&Method::GET, "retried"), 2);
    f.retries_reach("no_response", 1.0).await;
    f.stop().await;
}

#[tokio::test]
async fn a_get_answered_500_or_503_is_retried_honouring_retry_after_up_to_the_bound() {
    let f = Faulty::start().await;
    f.seed("flaps", b"served after a 503");
    f.seed("down", b"never served");
    f.seed("later", b"not now");
    f.proxy.inject(
        Match::method(Method::GET).path("flaps").times(1),
        Fault::Answer {
            status: 503,
            retry_after: Some(1),
            body: AnswerBody::S3Error("SlowDown"),
        },
    );
    f.proxy.inject(
        Match::method(Method::GET).path("down"),
        Fault::Answer {
            status: 500,
            retry_after: None,
            body: AnswerBody::S3Error("InternalError"),
        },
    );
    // Longer than retry_after_max_secs (2): the client is told, the gateway does not wait.
    f.proxy.inject(
        Match::method(Method::GET).path("later"),
        Fault::Answer {
            status: 503,
            retry_after: Some(30),
            body: AnswerBody::S3Error("SlowDown"),
        },
    );
    let flaps = get(&f, "flaps").await;
    assert_eq!((flaps.status, &flaps.body[..]), (200, &b"served after a 503"[..]));
    assert_eq!(f.proxy.count(&Method::GET, "flaps"), 2);

    let down = get(&f, "down").await;
    down.assert_error(500, "InternalError");
    assert_eq!(f.proxy.count(&Method::GET, "down"), 3, "the first try and two retries");

    let later = get(&f, "later").await;
    later.assert_error(503, "SlowDown");
    assert_eq!(
        later.headers.get("retry-after").map(HeaderValue::as_bytes),
        Some(&b"30"[..])
    );
    assert_eq!(f.proxy.count(&Method::GET, "later"), 1);
    f.retries_reach("status_5xx", 3.0).await;
    f.stop().await;
}

#[tokio::test]
async fn a_get_cut_or_stalled_mid_body_is_a_visibly_aborted_response_and_not_retried() {
    let f = Faulty::start().await;
    let data = pattern(512 * 1024, 8);
    f.seed("cut", &data);
    f.seed("stalls", &data);
    f.proxy.inject(
        Match::method(Method::GET).path("cut"),
        Fault::ResetAfterResponseBytes(100_000),
    );
    f.proxy.inject(
        Match::method(Method::GET).path("stalls"),
        Fault::StallAfterResponseBytes(100_000),
    );
    let (cut, stalled) = tokio::join!(get(&f, "cut"), get(&f, "stalls"));
    for answer in [&cut, &stalled] {
        assert_eq!((answer.status, answer.cut), (200, true), "{answer:?}");
        assert_eq!(answer.content_length(), Some(data.len()));
        assert!(answer.body.len() < data.len());
        assert_eq!(
            &answer.body[..],
            &data[..answer.body.len()],
            "what came is the object's start"
        );
        answer.assert_not_a_truncated_success(data.len());
    }
    assert_eq!(f.proxy.count(&Method::GET, "cut"), 1);
    assert_eq!(f.proxy.count(&Method::GET, "stalls"), 1);
    f.no_retries().await;
    f.stop().await;
}

#[tokio::test]
async fn a_get_stalled_before_its_answer_is_a_504_while_other_clients_are_served() {
    // Long enough that the other client's requests finish first even on a loaded machine.
    let f = Faulty::with_read_timeout(8).await;
    f.seed("stuck", b"held back");
    f.seed("fine", b"served meanwhile");
    f.proxy
        .inject(Match::method(Method::GET).path("stuck"), Fault::StallBeforeResponse);
    let stuck = tokio::spawn({
        let addr = f.addr();
        async move { exchange(addr, signed(addr, Method::GET, &format!("/{BUCKET}/stuck"), b"")).await }
    });
    f.proxy
        .wait_for("the stalled GET", |e| e.iter().any(|x| x.target.contains("stuck")))
        .await;
    for _ in 0..3 {
        let fine = get(&f, "fine").await;
        assert_eq!((fine.status, &fine.body[..]), (200, &b"served meanwhile"[..]));
    }
    let in_progress = f
        .proxy
        .exchanges()
        .iter()
        .any(|x| x.target.contains("stuck") && x.ending == Ending::InProgress);
    assert!(in_progress, "the other client was served while the stalled GET waited");
    let stuck = stuck.await.expect("task");
    stuck.assert_error(504, "GatewayTimeout");
    assert_eq!(f.proxy.count(&Method::GET, "stuck"), 1, "a timeout is not retried");
    f.stop().await;
}

#[tokio::test]
async fn a_trickled_get_is_served_whole() {
    let f = Faulty::start().await;
    let data = pattern(64 * 1024, 9);
    f.seed("trickle", &data);
    f.proxy.inject(
        Match::method(Method::GET).path("trickle"),
        Fault::Trickle {
            bytes: 8 * 1024,
            every: Duration::from_millis(20),
        },
    );
    let answer = get(&f, "trickle").await;
    assert_eq!((answer.status, answer.cut), (200, false));
    assert_eq!(&answer.body[..], &data[..]);
    f.stop().await;
}

#[tokio::test]
async fn an_error_answer_that_is_not_s3_xml_still_reaches_the_client_as_an_s3_error() {
    let f = Faulty::start().await;
    f.proxy.inject(
        Match::method(Method::GET).path("garbage"),
        Fault::Answer {
            status: 500,
            retry_after: None,
            body: AnswerBody::Garbage,
        },
    );
    f.proxy.inject(
        Match::method(Method::GET).path("truncated"),
        Fault::Answer {
            status: 503,
            retry_after: None,
            body: AnswerBody::TruncatedXml,
        },
    );
    let garbage = get(&f, "garbage").await;
    garbage.assert_error(500, "InternalError");
    let truncated = get(&f, "truncated").await;
    truncated.assert_error(503, "ServiceUnavailable");
    for answer in [&garbage, &truncated] {
        let text = String::from_utf8_lossy(&answer.body);
        assert!(!text.contains("not xml") && !text.contains("<Code>Internal<"), "{text}");
    }
    f.stop().await;
}

// ---------------------------------------------------------------------------------------------
// LIST

#[tokio::test]
async fn a_listing_cut_mid_body_is_never_a_short_200_and_a_503_is_retried() {
    let f = Faulty::start().await;
    for i in 0..200 {
        f.seed(&format!("listed-key-with-a-long-name-{i:04}"), b"x");
    }
    let list = |f: &Faulty| {
        let addr = f.addr();
        exchange(addr, signed(addr, Method::GET, &format!("/{BUCKET}?list-type=2"), b""))
    };
    let whole = list(&f).await;
    assert_eq!((whole.status, whole.cut), (200, false));
    let full_length = whole.body.len();
    assert!(full_length > 5000, "a listing long enough to cut");

    f.proxy.inject(
        Match::method(Method::GET).path("list-type").times(1),
        Fault::ResetAfterResponseBytes(2000),
    );
    let cut = list(&f).await;
    assert!(cut.cut || cut.status >= 500, "{cut:?}");
    cut.assert_not_a_truncated_success(full_length);

    // The next request, whatever it is.
    f.proxy.inject(
        Match::any().times(1),
        Fault::Answer {
            status: 503,
            retry_after: None,
            body: AnswerBody::S3Error("SlowDown"),
        },
    );
    let before = f.proxy.count(&Method::GET, "list-type");
    let retried = list(&f).await;
    assert_eq!((retried.status, retried.body.len()), (200, full_length));
    assert_eq!(f.proxy.count(&Method::GET, "list-type") - before, 2);

    f.proxy.inject(
        Match::method(Method::GET).path("list-type").times(1),
        Fault::StallBeforeResponse,
    );
    let before = f.proxy.count(&Method::GET, "list-type");
    list(&f).await.assert_error(504, "GatewayTimeout");
    assert_eq!(
        f.proxy.count(&Method::GET, "list-type") - before,
        1,
        "a timeout is not retried"
    );
    f.stop().await;
}
