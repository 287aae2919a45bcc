//! The comparison harness's load generator (benches/compare.sh runs it; docs/performance.md
//! explains the figures). It drives each path in turn, case by case, in one run: the upstream
//! directly, s3ferry, nginx and s3s-proxy in front of the same upstream. One HTTP/1.1
//! keep-alive connection per simulated client (TCP_NODELAY), each request signed with SigV4
//! (`s3ferry::upstream::sign::sign_v4`, a few microseconds), latency into an HDR histogram.
//!
//! Per case and path: requests/s, MB/s (10^6 bytes moved in the case's window, request bodies
//! for PUT, answer bodies for GET and LIST), p50/p99/p99.9 latency of the requests that
//! completed, the hop's CPU seconds per GB (utime + stime from /proc/<pid>/stat, summed over the
//! hop's processes), its VmHWM (lifetime peak) and VmRSS after the case. A case ends at its time
//! or when it has moved `--max-case-mib`, whichever comes first; requests still in flight then are
//! cut and counted as cut, not as latency samples. It reports; it never fails a build.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use s3ferry::upstream::sign::{EMPTY_PAYLOAD_SHA256, SigningParams, UNSIGNED_PAYLOAD, sign_v4};
use serde_json::{Value, json};
use tokio::sync::watch;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// One way to reach the upstream: the upstream itself, or a hop in front of it.
struct Path {
    name: String,
    addr: SocketAddr,
    /// The processes whose CPU and memory are the hop's (nginx: master and workers).
    pids: Vec<u32>,
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Get(u64),
    Put(u64),
    /// ListObjectsV2 of the 1,000 seeded keys.
    List,
    /// PUT as SDKs stream a body: aws-chunked, 64 KiB unsigned chunks, a CRC32 trailer.
    ChunkedPut(u64),
}

#[derive(Clone, Copy)]
struct Case {
    op: Op,
    concurrency: usize,
}

impl Case {
    fn name(&self) -> String {
        let op = match self.op {
            Op::Get(size) => format!("GET {}", size_name(size)),
            Op::Put(size) => format!("PUT {}", size_name(size)),
            Op::List => "LIST 1000 keys".to_string(),
            Op::ChunkedPut(size) => format!("PUT {} aws-chunked+CRC32", size_name(size)),
        };
        format!("{op} c={}", self.concurrency)
    }
}

fn size_name(size: u64) -> String {
    if size >= MIB {
        format!("{} MiB", size / MIB)
    } else {
        format!("{} KiB", size / KIB)
    }
}

fn all_cases(quick: bool) -> Vec<Case> {
    let c = |op, concurrency| Case { op, concurrency };
    if quick {
        return vec![
            c(Op::Get(4 * KIB), 1),
            c(Op::Get(4 * KIB), 16),
            c(Op::Get(MIB), 16),
            c(Op::Get(256 * MIB), 1),
            c(Op::Put(4 * KIB), 16),
            c(Op::Put(MIB), 16),
            c(Op::Put(256 * MIB), 1),
            c(Op::List, 1),
            c(Op::ChunkedPut(MIB), 16),
        ];
    }
    let mut cases = Vec::new();
    for op in [Op::Get as fn(u64) -> Op, Op::Put] {
        for size in [4 * KIB, MIB, 256 * MIB] {
            for concurrency in [1, 16, 128] {
                cases.push(c(op(size), concurrency));
            }
        }
    }
    cases.push(c(Op::List, 1));
    cases.push(c(Op::List, 16));
    cases.push(c(Op::ChunkedPut(MIB), 1));
    cases.push(c(Op::ChunkedPut(MIB), 16));
    cases.push(c(Op::ChunkedPut(256 * MIB), 1));
    cases
}

struct Settings {
    key: String,
    secret: String,
    bucket: String,
    secs: f64,
    max_case_bytes: u64,
    clk_tck: f64,
    idle_connections: usize,
    /// Each case runs this many times per path, `secs / rounds` each, paths interleaved.
    rounds: usize,
}

/// What the workers of one case share.
struct Shared {
    bytes: AtomicU64,
    cap: u64,
    stop: watch::Sender<bool>,
}

impl Shared {
    fn count(&self, n: usize) {
        let total = self.bytes.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if total >= self.cap {
            self.stop.send_replace(true);
        }
    }
}

/// A request body made of shared pieces, counted as it is sent.
struct Pieces {
    pieces: Arc<Vec<Bytes>>,
    next: usize,
    remaining: u64,
    shared: Option<Arc<Shared>>,
}

impl Pieces {
    fn new(pieces: Arc<Vec<Bytes>>, shared: Option<Arc<Shared>>) -> Self {
        let remaining = pieces.iter().map(|p| p.len() as u64).sum();
        Pieces {
            pieces,
            next: 0,
            remaining,
            shared,
        }
    }
}

impl Body for Pieces {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let Some(piece) = this.pieces.get(this.next).cloned() else {
            return Poll::Ready(None);
        };
        this.next += 1;
        this.remaining -= piece.len() as u64;
        if let Some(shared) = &this.shared {
            shared.count(piece.len());
        }
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// The bodies each operation sends, made once.
struct Payloads {
    put: Vec<(u64, Arc<Vec<Bytes>>)>,
    chunked: Vec<(u64, Arc<Vec<Bytes>>, String)>,
    empty: Arc<Vec<Bytes>>,
}

impl Payloads {
    fn new() -> Self {
        let piece = Bytes::from(vec![b'x'; MIB as usize]);
        let mut put = Vec::new();
        for size in [16, 4 * KIB, MIB, 256 * MIB] {
            let pieces = if size < MIB {
                vec![piece.slice(..size as usize)]
            } else {
                vec![piece.clone(); (size / MIB) as usize]
            };
            put.push((size, Arc::new(pieces)));
        }
        let mut chunked = Vec::new();
        for size in [MIB, 256 * MIB] {
            let mut segment = Vec::with_capacity(MIB as usize + 16 * 16);
            for chunk in piece.chunks(64 * 1024) {
                segment.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                segment.extend_from_slice(chunk);
                segment.extend_from_slice(b"\r\n");
            }
            let mut crc = s3ferry::checksum::ChecksumHasher::new(s3ferry::checksum::ChecksumAlgorithm::Crc32);
            for _ in 0..size / MIB {
                crc.update(&piece);
            }
            let crc = crc.finalize_base64();
            let mut pieces = vec![Bytes::from(segment); (size / MIB) as usize];
            pieces.push(Bytes::from(format!("0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n")));
            chunked.push((size, Arc::new(pieces), crc));
        }
        Payloads {
            put,
            chunked,
            empty: Arc::new(Vec::new()),
        }
    }

    fn put(&self, size: u64) -> Arc<Vec<Bytes>> {
        self.put
            .iter()
            .find(|(s, _)| *s == size)
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    }

    fn chunked(&self, size: u64) -> Arc<Vec<Bytes>> {
        self.chunked
            .iter()
            .find(|(s, _, _)| *s == size)
            .map(|(_, p, _)| p.clone())
            .unwrap_or_default()
    }
}

/// A request line: method, path and canonical query (sent exactly as signed).
struct Line<'a> {
    method: Method,
    path: &'a str,
    query: &'a str,
}

fn signed_request(
    path: &Path,
    settings: &Settings,
    line: Line<'_>,
    mut headers: HeaderMap,
    payload_hash: &str,
    body: Pieces,
) -> Request<Pieces> {
    let Line {
        method,
        path: uri_path,
        query,
    } = line;
    let host = path.addr.to_string();
    if let Ok(v) = HeaderValue::from_str(&host) {
        headers.insert(http::header::HOST, v);
    }
    let params = SigningParams {
        access_key_id: &settings.key,
        secret_access_key: &settings.secret,
        region: "us-east-1",
        time: time::OffsetDateTime::now_utc(),
    };
    sign_v4(&method, uri_path, query, &mut headers, payload_hash, &params);
    let uri = if query.is_empty() {
        uri_path.to_string()
    } else {
        format!("{uri_path}?{query}")
    };
    let mut request = Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri.parse().unwrap_or_default();
    *request.headers_mut() = headers;
    request
}

fn build(
    path: &Path,
    settings: &Settings,
    payloads: &Payloads,
    op: Op,
    worker: usize,
    shared: Option<Arc<Shared>>,
) -> Request<Pieces> {
    let bucket = &settings.bucket;
    let mut headers = HeaderMap::new();
    let (method, uri_path, query, payload_hash, pieces) = match op {
        Op::Get(size) => {
            let key = format!("/{bucket}/obj/{}", size_key(size));
            (Method::GET, key, "", EMPTY_PAYLOAD_SHA256, payloads.empty.clone())
        }
        Op::List => {
            let query = "list-type=2&prefix=list%2F";
            (
                Method::GET,
                format!("/{bucket}"),
                query,
                EMPTY_PAYLOAD_SHA256,
                payloads.empty.clone(),
            )
        }
        Op::Put(size) => {
            let key = format!("/{bucket}/put/{}/{worker}", size_key(size));
            (Method::PUT, key, "", UNSIGNED_PAYLOAD, payloads.put(size))
        }
        Op::ChunkedPut(size) => {
            headers.insert(http::header::CONTENT_ENCODING, HeaderValue::from_static("aws-chunked"));
            headers.insert("x-amz-decoded-content-length", HeaderValue::from(size));
            headers.insert("x-amz-trailer", HeaderValue::from_static("x-amz-checksum-crc32"));
            headers.insert("x-amz-sdk-checksum-algorithm", HeaderValue::from_static("CRC32"));
            let key = format!("/{bucket}/chunked/{}/{worker}", size_key(size));
            (
                Method::PUT,
                key,
                "",
                "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
                payloads.chunked(size),
            )
        }
    };
    // Only bodies sent count towards the case's bytes (GET and LIST count what they read).
    let body = Pieces::new(pieces, if method == Method::PUT { shared } else { None });
    if method == Method::PUT {
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.remaining));
    }
    let line = Line {
        method,
        path: &uri_path,
        query,
    };
    signed_request(path, settings, line, headers, payload_hash, body)
}

fn size_key(size: u64) -> String {
    size_name(size).replace(' ', "")
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Pieces>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake {addr}: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends one request and reads its whole answer; answer body bytes go to `shared` (GET, LIST).
async fn exchange(
    sender: &mut SendRequest<Pieces>,
    request: Request<Pieces>,
    shared: Option<&Shared>,
) -> Result<u64, String> {
    sender.ready().await.map_err(|e| format!("connection: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let mut body = response.into_body();
    let mut n = 0u64;
    let mut head = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("answer body: {e}"))?;
        if let Ok(data) = frame.into_data() {
            n += data.len() as u64;
            if !status.is_success() && head.len() < 400 {
                head.extend_from_slice(&data[..data.len().min(400)]);
            }
            if let Some(shared) = shared {
                shared.count(data.len());
            }
        }
    }
    if !status.is_success() {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&head)));
    }
    Ok(n)
}

#[derive(Default)]
struct WorkerOutcome {
    completed: u64,
    cut: u64,
    errors: u64,
    first_error: Option<String>,
}

/// What every worker of one case reads.
struct CaseRun {
    path: Arc<Path>,
    settings: Arc<Settings>,
    payloads: Arc<Payloads>,
    case: Case,
    deadline: tokio::time::Instant,
    shared: Arc<Shared>,
    histogram: std::sync::Mutex<Histogram<u64>>,
}

async fn worker(run: Arc<CaseRun>, index: usize, mut sender: SendRequest<Pieces>) -> WorkerOutcome {
    let CaseRun {
        path,
        settings,
        payloads,
        case,
        deadline,
        shared,
        histogram,
    } = &*run;
    let (case, deadline) = (*case, *deadline);
    let mut outcome = WorkerOutcome::default();
    let mut stop = shared.stop.subscribe();
    let counts_answer = matches!(case.op, Op::Get(_) | Op::List);
    let mut local = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds");
    while tokio::time::Instant::now() < deadline && !*stop.borrow() {
        let request = build(
            path,
            settings,
            payloads,
            case.op,
            index,
            (!counts_answer).then(|| shared.clone()),
        );
        let started = Instant::now();
        let answer_counter = counts_answer.then_some(&**shared);
        let result = tokio::select! {
            r = exchange(&mut sender, request, answer_counter) => Some(r),
            () = tokio::time::sleep_until(deadline) => None,
            _ = stop.wait_for(|s| *s) => None,
        };
        match result {
            None => {
                outcome.cut += 1;
                break;
            }
            Some(Ok(_)) => {
                outcome.completed += 1;
                let _ = local.record(started.elapsed().as_micros().max(1) as u64);
            }
            Some(Err(e)) => {
                outcome.errors += 1;
                outcome.first_error.get_or_insert(e);
                match connect(path.addr).await {
                    Ok(s) => sender = s,
                    Err(_) => break,
                }
            }
        }
    }
    if let Ok(mut h) = histogram.lock() {
        let _ = h.add(&local);
    }
    outcome
}

/// CPU ticks and memory of a set of processes.
#[derive(Clone, Copy, Default)]
struct ProcSample {
    ticks: u64,
    hwm_kib: u64,
    rss_kib: u64,
}

fn sample(pids: &[u32]) -> ProcSample {
    let mut s = ProcSample::default();
    for pid in pids {
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            && let Some(after) = stat.rsplit_once(')').map(|(_, a)| a)
        {
            // After the command: state is field 3; utime and stime are fields 14 and 15.
            let fields: Vec<&str> = after.split_whitespace().collect();
            let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
            let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
            s.ticks += utime + stime;
        }
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            for line in status.lines() {
                let kib = |l: &str| {
                    l.split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                if line.starts_with("VmHWM:") {
                    s.hwm_kib += kib(line);
                } else if line.starts_with("VmRSS:") {
                    s.rss_kib += kib(line);
                }
            }
        }
    }
    s
}

async fn run_case(
    path: &Arc<Path>,
    upstream_pids: &[u32],
    settings: &Arc<Settings>,
    payloads: &Arc<Payloads>,
    case: Case,
) -> Result<Measure, String> {
    // Connections first, and one request each that is not measured (sizes up to 1 MiB): the
    // case measures requests on warm connections, and the hop's own upstream pool is warm too.
    let mut senders = Vec::new();
    for _ in 0..case.concurrency {
        match connect(path.addr).await {
            Ok(s) => senders.push(s),
            Err(e) => return Err(e),
        }
    }
    let warm = match case.op {
        Op::Get(size) | Op::Put(size) | Op::ChunkedPut(size) => size <= MIB,
        Op::List => true,
    };
    if warm {
        let mut warmups = Vec::new();
        for (i, mut s) in senders.into_iter().enumerate() {
            let (path, settings, payloads) = (path.clone(), settings.clone(), payloads.clone());
            warmups.push(tokio::spawn(async move {
                let request = build(&path, &settings, &payloads, case.op, i, None);
                let r = exchange(&mut s, request, None).await;
                (s, r)
            }));
        }
        senders = Vec::new();
        for w in warmups {
            match w.await {
                Ok((s, Ok(_))) => senders.push(s),
                Ok((_, Err(e))) => return Err(format!("warm-up: {e}")),
                Err(e) => return Err(format!("warm-up: {e}")),
            }
        }
    }

    let (stop, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        bytes: AtomicU64::new(0),
        cap: settings.max_case_bytes,
        stop,
    });
    let histogram =
        std::sync::Mutex::new(Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds"));
    let before = sample(&path.pids);
    let upstream_before = sample(upstream_pids);
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(settings.secs / settings.rounds as f64);
    let run = Arc::new(CaseRun {
        path: path.clone(),
        settings: settings.clone(),
        payloads: payloads.clone(),
        case,
        deadline,
        shared: shared.clone(),
        histogram,
    });
    let mut tasks = Vec::new();
    for (i, sender) in senders.into_iter().enumerate() {
        tasks.push(tokio::spawn(worker(run.clone(), i, sender)));
    }
    let mut total = WorkerOutcome::default();
    for t in tasks {
        if let Ok(o) = t.await {
            total.completed += o.completed;
            total.cut += o.cut;
            total.errors += o.errors;
            if total.first_error.is_none() {
                total.first_error = o.first_error;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after = sample(&path.pids);
    let upstream_after = sample(upstream_pids);
    Ok(Measure {
        completed: total.completed,
        cut: total.cut,
        errors: total.errors,
        first_error: total.first_error,
        seconds: elapsed,
        bytes: shared.bytes.load(Ordering::Relaxed),
        histogram: run.histogram.lock().map(|h| h.clone()).ok(),
        ticks: after.ticks.saturating_sub(before.ticks),
        upstream_ticks: upstream_after.ticks.saturating_sub(upstream_before.ticks),
        hwm_kib: after.hwm_kib,
        rss_kib: after.rss_kib,
    })
}

/// One path's figures for one case, summed over its rounds.
#[derive(Default)]
struct Measure {
    completed: u64,
    cut: u64,
    errors: u64,
    first_error: Option<String>,
    seconds: f64,
    bytes: u64,
    histogram: Option<Histogram<u64>>,
    ticks: u64,
    upstream_ticks: u64,
    hwm_kib: u64,
    rss_kib: u64,
}

impl Measure {
    fn add(&mut self, other: Measure) {
        self.completed += other.completed;
        self.cut += other.cut;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.seconds += other.seconds;
        self.bytes += other.bytes;
        match (&mut self.histogram, other.histogram) {
            (Some(mine), Some(theirs)) => {
                let _ = mine.add(&theirs);
            }
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
        self.ticks += other.ticks;
        self.upstream_ticks += other.upstream_ticks;
        self.hwm_kib = other.hwm_kib;
        self.rss_kib = other.rss_kib;
    }

    fn to_json(&self, clk_tck: f64) -> Value {
        let ms = |q: f64| -> Value {
            match &self.histogram {
                Some(h) if !h.is_empty() => json!(h.value_at_quantile(q) as f64 / 1000.0),
                _ => Value::Null,
            }
        };
        let gb = self.bytes as f64 / 1e9;
        let cpu_s = self.ticks as f64 / clk_tck;
        let upstream_cpu_s = self.upstream_ticks as f64 / clk_tck;
        let per_s = |x: f64| if self.seconds > 0.0 { x / self.seconds } else { 0.0 };
        json!({
            "requests": self.completed,
            "cut": self.cut,
            "errors": self.errors,
            "first_error": self.first_error,
            "seconds": self.seconds,
            "bytes": self.bytes,
            "requests_per_s": per_s(self.completed as f64),
            "mb_per_s": per_s(self.bytes as f64 / 1e6),
            "p50_ms": ms(0.5),
            "p99_ms": ms(0.99),
            "p999_ms": ms(0.999),
            "cpu_s": cpu_s,
            "cpu_s_per_gb": if gb > 0.0 { json!(cpu_s / gb) } else { Value::Null },
            "upstream_cpu_s_per_gb": if gb > 0.0 { json!(upstream_cpu_s / gb) } else { Value::Null },
            "vm_hwm_mib": self.hwm_kib as f64 / 1024.0,
            "vm_rss_mib": self.rss_kib as f64 / 1024.0,
        })
    }
}

/// Opens `n` keep-alive connections to the hop, one 4 KiB GET on each, and holds them: the
/// hop's VmRSS growth divided by `n` is what an idle keep-alive connection costs it.
async fn idle_memory(path: &Arc<Path>, settings: &Arc<Settings>, payloads: &Arc<Payloads>, n: usize) -> Value {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = sample(&path.pids);
    let mut held = Vec::new();
    let mut failed = None;
    for chunk_start in (0..n).step_by(50) {
        let mut batch = Vec::new();
        for i in chunk_start..(chunk_start + 50).min(n) {
            let (path, settings, payloads) = (path.clone(), settings.clone(), payloads.clone());
            batch.push(tokio::spawn(async move {
                let mut s = connect(path.addr).await?;
                let request = build(&path, &settings, &payloads, Op::Get(4 * KIB), i, None);
                exchange(&mut s, request, None).await?;
                Ok::<_, String>(s)
            }));
        }
        for b in batch {
            match b.await {
                Ok(Ok(s)) => held.push(s),
                Ok(Err(e)) => {
                    failed.get_or_insert(e);
                }
                Err(e) => {
                    failed.get_or_insert(e.to_string());
                }
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = sample(&path.pids);
    let open = held.len();
    drop(held);
    let growth_kib = after.rss_kib.saturating_sub(before.rss_kib);
    json!({
        "connections": open,
        "failed": failed,
        "rss_before_mib": before.rss_kib as f64 / 1024.0,
        "rss_with_connections_mib": after.rss_kib as f64 / 1024.0,
        "kib_per_connection": if open > 0 { json!(growth_kib as f64 / open as f64) } else { Value::Null },
    })
}

async fn seed(direct: &Arc<Path>, settings: &Arc<Settings>, payloads: &Arc<Payloads>) -> Result<(), String> {
    let bucket = settings.bucket.clone();
    let mut jobs: Vec<(String, Arc<Vec<Bytes>>)> = Vec::new();
    for size in [4 * KIB, MIB, 256 * MIB] {
        jobs.push((format!("/{bucket}/obj/{}", size_key(size)), payloads.put(size)));
    }
    for i in 0..1000 {
        jobs.push((format!("/{bucket}/list/{i:05}"), payloads.put(16)));
    }
    let jobs = Arc::new(std::sync::Mutex::new(jobs));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (direct, settings, jobs) = (direct.clone(), settings.clone(), jobs.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(direct.addr).await?;
            loop {
                let Some((key, pieces)) = jobs.lock().ok().and_then(|mut j| j.pop()) else {
                    return Ok::<(), String>(());
                };
                let size: u64 = pieces.iter().map(|p| p.len() as u64).sum();
                let mut headers = HeaderMap::new();
                headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(size));
                let request = signed_request(
                    &direct,
                    &settings,
                    Line {
                        method: Method::PUT,
                        path: &key,
                        query: "",
                    },
                    headers,
                    UNSIGNED_PAYLOAD,
                    Pieces::new(pieces, None),
                );
                exchange(&mut sender, request, None)
                    .await
                    .map_err(|e| format!("seeding {key}: {e}"))?;
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    json!({
        "cpus": cpus,
        "cpu_model": model,
        "ram_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "load_average_at_start": load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    })
}

fn parse_path(spec: &str) -> Path {
    // NAME=HOST:PORT[@PID,PID...]
    let (name, rest) = spec
        .split_once('=')
        .unwrap_or_else(|| usage(&format!("bad --path {spec}")));
    let (addr, pids) = rest.split_once('@').unwrap_or((rest, ""));
    let addr = addr
        .parse()
        .unwrap_or_else(|_| usage(&format!("bad address in --path {spec}")));
    let pids = pids
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap_or_else(|_| usage(&format!("bad pid in {spec}"))))
        .collect();
    Path {
        name: name.to_string(),
        addr,
        pids,
    }
}

fn usage(problem: &str) -> ! {
    eprintln!("s3ferry-loadgen: {problem}");
    eprintln!(
        "usage: s3ferry-loadgen --path direct=ADDR@PID --path NAME=ADDR@PID[,PID]... [--skip NAME=REASON]...\n\
         \x20   [--quick] [--secs F] [--rounds N] [--max-case-mib N] [--clk-tck N] [--idle-connections N] [--only TEXT]\n\
         \x20   [--key K] [--secret S] [--bucket B] [--json FILE] [--markdown FILE] [--note TEXT]"
    );
    std::process::exit(2);
}

fn main() {
    let mut paths = Vec::new();
    let mut skipped: Vec<(String, String)> = Vec::new();
    let mut quick = false;
    let mut secs = None;
    let mut settings = Settings {
        key: "bench".into(),
        secret: "bench-secret".into(),
        bucket: "bench".into(),
        secs: 5.0,
        max_case_bytes: 6 * 1024 * MIB,
        clk_tck: 100.0,
        idle_connections: 1000,
        rounds: 0,
    };
    let mut json_out = None;
    let mut markdown_out = None;
    let mut only = None;
    let mut note = String::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{arg} needs a value")));
        match arg.as_str() {
            "--path" => paths.push(parse_path(&value())),
            "--skip" => {
                let v = value();
                let (n, r) = v.split_once('=').unwrap_or((&v, "skipped"));
                skipped.push((n.to_string(), r.to_string()));
            }
            "--quick" => quick = true,
            "--secs" => secs = Some(value().parse().unwrap_or_else(|_| usage("bad --secs"))),
            "--max-case-mib" => {
                settings.max_case_bytes = value().parse::<u64>().unwrap_or_else(|_| usage("bad --max-case-mib")) * MIB
            }
            "--clk-tck" => settings.clk_tck = value().parse().unwrap_or_else(|_| usage("bad --clk-tck")),
            "--idle-connections" => {
                settings.idle_connections = value().parse().unwrap_or_else(|_| usage("bad --idle-connections"))
            }
            "--rounds" => settings.rounds = value().parse().unwrap_or_else(|_| usage("bad --rounds")),
            "--key" => settings.key = value(),
            "--secret" => settings.secret = value(),
            "--bucket" => settings.bucket = value(),
            "--json" => json_out = Some(value()),
            "--markdown" => markdown_out = Some(value()),
            "--only" => only = Some(value()),
            "--note" => note = value(),
            "-h" | "--help" => usage("help"),
            _ => usage(&format!("unknown argument {arg}")),
        }
    }
    settings.secs = secs.unwrap_or(if quick { 1.5 } else { 6.0 });
    if settings.rounds == 0 {
        settings.rounds = if quick { 1 } else { 3 };
    }
    if paths.first().map(|p| p.name.as_str()) != Some("direct") {
        usage("the first --path must be `direct` (the upstream itself)");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = runtime.block_on(run(paths, skipped, quick, settings, only, note));
    let text = render_markdown(&report);
    println!("{text}");
    if let Some(file) = markdown_out {
        let _ = std::fs::write(file, &text);
    }
    if let Some(file) = json_out {
        let _ = std::fs::write(file, serde_json::to_string_pretty(&report).unwrap_or_default());
    }
}

async fn run(
    paths: Vec<Path>,
    skipped: Vec<(String, String)>,
    quick: bool,
    settings: Settings,
    only: Option<String>,
    note: String,
) -> Value {
    let settings = Arc::new(settings);
    let payloads = Arc::new(Payloads::new());
    let paths: Vec<Arc<Path>> = paths.into_iter().map(Arc::new).collect();
    let upstream_pids = paths[0].pids.clone();
    let machine = machine();
    if let Err(e) = seed(&paths[0], &settings, &payloads).await {
        eprintln!("seeding failed: {e}");
        return json!({ "error": e });
    }
    let mut idle = serde_json::Map::new();
    // First, while the hops are fresh: after the cases their allocators hold what the large
    // transfers took, and new connections reuse it without growing the resident set.
    if settings.idle_connections > 0 {
        for path in &paths {
            let r = idle_memory(path, &settings, &payloads, settings.idle_connections).await;
            eprintln!("idle {} connections {:<10} {r}", settings.idle_connections, path.name);
            idle.insert(path.name.clone(), r);
        }
    }
    let mut cases_out = Vec::new();
    for case in all_cases(quick) {
        let name = case.name();
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        // Each path in turn, `rounds` times, each round starting one path later: load from
        // outside the run that comes and goes falls on every path alike.
        let mut measures: Vec<Result<Measure, String>> = paths.iter().map(|_| Ok(Measure::default())).collect();
        for round in 0..settings.rounds {
            for k in 0..paths.len() {
                let i = (k + round) % paths.len();
                if measures[i].is_err() {
                    continue;
                }
                match run_case(&paths[i], &upstream_pids, &settings, &payloads, case).await {
                    Ok(m) => {
                        if let Ok(sum) = &mut measures[i] {
                            sum.add(m);
                        }
                    }
                    Err(e) => measures[i] = Err(e),
                }
            }
        }
        let mut results = serde_json::Map::new();
        for (path, m) in paths.iter().zip(measures) {
            let r = match m {
                // Nothing completed and something failed: the path cannot do this case.
                Ok(m) if m.completed == 0 && m.errors > 0 => {
                    json!({ "error": format!("{} failed requests: {}", m.errors, m.first_error.unwrap_or_default()) })
                }
                Ok(m) => m.to_json(settings.clk_tck),
                Err(e) => json!({ "error": e }),
            };
            eprintln!("{name:<34} {:<10} {}", path.name, short(&r));
            results.insert(path.name.clone(), r);
        }
        cases_out.push(json!({ "case": name, "concurrency": case.concurrency, "results": results }));
    }
    let now = time::OffsetDateTime::now_utc();
    json!({
        "date": now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "mode": if quick { "quick" } else { "full" },
        "seconds_per_case": settings.secs,
        "rounds": settings.rounds,
        "max_case_mib": settings.max_case_bytes / MIB,
        "machine": machine,
        "note": note,
        "paths": paths.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        "skipped": skipped.iter().map(|(n, r)| json!({ "path": n, "reason": r })).collect::<Vec<_>>(),
        "cases": cases_out,
        "idle_connections": idle,
    })
}

fn short(r: &Value) -> String {
    if let Some(e) = r.get("error") {
        return format!("error: {e}");
    }
    format!(
        "{:>8.0} req/s {:>8.1} MB/s p50 {} ms, {} errors, {} cut",
        r["requests_per_s"].as_f64().unwrap_or(0.0),
        r["mb_per_s"].as_f64().unwrap_or(0.0),
        fmt_num(&r["p50_ms"], 3),
        r["errors"],
        r["cut"],
    )
}

fn fmt_num(v: &Value, digits: usize) -> String {
    match v.as_f64() {
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) if x >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.digits$}"),
        None => "—".into(),
    }
}

fn ratio(a: &Value, b: &Value) -> String {
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "—".into(),
    }
}

fn render_markdown(report: &Value) -> String {
    let mut out = String::new();
    if let Some(e) = report.get("error") {
        let _ = writeln!(out, "run failed: {e}");
        return out;
    }
    let m = &report["machine"];
    let _ = writeln!(
        out,
        "{} run, {} ({} s per case and path in {} interleaved rounds, at most {} MiB moved per round); {} CPUs ({}), {} GiB RAM, Linux {}; load average at start {}. \
         Client, hops and upstream share the CPUs.\n",
        report["mode"].as_str().unwrap_or(""),
        report["date"].as_str().unwrap_or(""),
        report["seconds_per_case"],
        report["rounds"],
        report["max_case_mib"],
        m["cpus"],
        m["cpu_model"].as_str().unwrap_or(""),
        m["ram_gib"],
        m["kernel"].as_str().unwrap_or(""),
        m["load_average_at_start"].as_str().unwrap_or(""),
    );
    if let Some(note) = report["note"].as_str().filter(|n| !n.is_empty()) {
        let _ = writeln!(out, "{note}\n");
    }
    for s in report["skipped"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "- skipped **{}**: {}",
            s["path"].as_str().unwrap_or(""),
            s["reason"].as_str().unwrap_or("")
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| case | path | req/s | MB/s | p50 ms | p99 ms | p99.9 ms | hop CPU s/GB | VmHWM MiB | VmRSS MiB | done / cut / errors |"
    );
    let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    let cases = report["cases"].as_array().cloned().unwrap_or_default();
    for c in &cases {
        for path in report["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let Some(r) = c["results"].get(path) else { continue };
            if let Some(e) = r.get("error") {
                let _ = writeln!(
                    out,
                    "| {} | {path} | error: {} |||||||||",
                    c["case"].as_str().unwrap_or(""),
                    e.as_str().unwrap_or("")
                );
                continue;
            }
            let _ = writeln!(
                out,
                "| {} | {path} | {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {} / {} / {} |",
                c["case"].as_str().unwrap_or(""),
                fmt_num(&r["requests_per_s"], 1),
                fmt_num(&r["mb_per_s"], 2),
                fmt_num(&r["p50_ms"], 3),
                fmt_num(&r["p99_ms"], 3),
                fmt_num(&r["p999_ms"], 3),
                fmt_num(&r["cpu_s_per_gb"], 2),
                r["vm_hwm_mib"].as_f64().unwrap_or(0.0),
                r["vm_rss_mib"].as_f64().unwrap_or(0.0),
                r["requests"],
                r["cut"],
                r["errors"],
            );
        }
    }
    let _ = writeln!(
        out,
        "\n\"direct\" is the upstream itself: its CPU and memory columns are the upstream's. Throughput ratios (MB/s), added p50 latency (path p50 − direct p50) and hop CPU per GB:\n"
    );
    let _ = writeln!(
        out,
        "| case | s3ferry/direct | s3ferry/nginx | s3ferry/s3s-proxy | added p50 ms s3ferry | nginx | s3s-proxy | CPU/GB s3ferry/nginx |"
    );
    let _ = writeln!(out, "|---|--:|--:|--:|--:|--:|--:|--:|");
    for c in &cases {
        let r = &c["results"];
        let get = |p: &str, f: &str| r.get(p).and_then(|x| x.get(f)).cloned().unwrap_or(Value::Null);
        let added = |p: &str| match (get(p, "p50_ms").as_f64(), get("direct", "p50_ms").as_f64()) {
            (Some(a), Some(d)) => format!("{:.3}", a - d),
            _ => "—".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            c["case"].as_str().unwrap_or(""),
            ratio(&get("s3ferry", "mb_per_s"), &get("direct", "mb_per_s")),
            ratio(&get("s3ferry", "mb_per_s"), &get("nginx", "mb_per_s")),
            ratio(&get("s3ferry", "mb_per_s"), &get("s3s-proxy", "mb_per_s")),
            added("s3ferry"),
            added("nginx"),
            added("s3s-proxy"),
            ratio(&get("s3ferry", "cpu_s_per_gb"), &get("nginx", "cpu_s_per_gb")),
        );
    }
    if let Some(idle) = report["idle_connections"].as_object().filter(|i| !i.is_empty()) {
        let _ = writeln!(
            out,
            "\nIdle keep-alive connections, measured before the cases (each did one 4 KiB GET, then held open):\n"
        );
        let _ = writeln!(
            out,
            "| path | connections | VmRSS before MiB | VmRSS with them MiB | KiB per connection |"
        );
        let _ = writeln!(out, "|---|--:|--:|--:|--:|");
        for path in report["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let Some(r) = idle.get(path) else { continue };
            let _ = writeln!(
                out,
                "| {path} | {} | {:.1} | {:.1} | {} |",
                r["connections"],
                r["rss_before_mib"].as_f64().unwrap_or(0.0),
                r["rss_with_connections_mib"].as_f64().unwrap_or(0.0),
                fmt_num(&r["kib_per_connection"], 1),
            );
        }
    }
    out
}
