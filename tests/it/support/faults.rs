//! A fault-injecting TCP stand-in in front of a real upstream: it forwards bytes between the
//! gateway and the upstream, and a test makes chosen requests fail the way networks and
//! providers do (refused, reset, stalled, trickled, answered with 500/503).
//!
//! It understands only what it must of HTTP/1.1: the request head (to match a request and to
//! ask the upstream to close after answering, so every connection carries one exchange and the
//! end of a response is the upstream's EOF), and the end of the response head (to count
//! response body bytes). Request bodies are counted as the bytes after the request head.
//!
//! Everything it starts ends when it is dropped, and every stall is bounded by [`STALL_CAP`]
//! besides.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{AbortHandle, JoinHandle};

/// The longest any stall holds a socket, should a test forget to end it.
pub const STALL_CAP: Duration = Duration::from_secs(60);
/// How long a test waits for something the stand-in should see.
const WITHIN: Duration = Duration::from_secs(20);
const MAX_HEAD: usize = 64 * 1024;

/// What happens to a matched request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward the whole request; when the upstream starts answering, reset the gateway's
    /// connection without relaying a byte (the provider did the work; the answer was lost).
    ResetBeforeResponse,
    /// Forward the whole request and hold the answer back (a read timeout before the response).
    StallBeforeResponse,
    /// Relay the response head and this many body bytes, then reset.
    ResetAfterResponseBytes(usize),
    /// Relay the response head and this many body bytes, then hold the rest back.
    StallAfterResponseBytes(usize),
    /// Forward the request head and this many body bytes, then reset both sides.
    ResetAfterRequestBodyBytes(usize),
    /// Forward the request head and this many body bytes, then stop reading the request.
    StallAfterRequestBodyBytes(usize),
    /// Relay the response `bytes` at a time, one piece per `every`.
    Trickle { bytes: usize, every: Duration },
    /// Do not forward; answer with `status` (and `Retry-After: secs`), as a provider's front
    /// end does when the service behind it is overloaded or failing.
    Answer {
        status: u16,
        retry_after: Option<u32>,
        body: AnswerBody,
    },
}

/// The body of a [`Fault::Answer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerBody {
    /// A well-formed S3 `<Error>` with this code.
    S3Error(&'static str),
    /// XML that ends in the middle of an element.
    TruncatedXml,
    /// Bytes that are not XML at all.
    Garbage,
}

impl AnswerBody {
    fn bytes(self) -> (&'static str, String) {
        match self {
            Self::S3Error(code) => (
                "application/xml",
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected</Message></Error>"
                ),
            ),
            Self::TruncatedXml => (
                "application/xml",
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>Internal".into(),
            ),
            Self::Garbage => ("application/xml", "\u{1}\u{2}<<not xml at all>> }{".into()),
        }
    }
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, Default)]
pub struct Match {
    method: Option<Method>,
    path_contains: Option<String>,
    /// How many more requests it applies to; `None`: all.
    times: Option<usize>,
    /// How many matching requests pass untouched before it applies.
    skip: usize,
}

impl Match {
    pub fn any() -> Self {
        Self::default()
    }

    pub fn method(method: Method) -> Self {
        Self {
            method: Some(method),
            ..Self::default()
        }
    }

    /// Only requests whose target (path and query) contains `text`.
    pub fn path(mut self, text: &str) -> Self {
        self.path_contains = Some(text.to_string());
        self
    }

    /// Only the next `n` requests that match.
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }

    /// Only after `n` matching requests have passed untouched.
    pub fn after(mut self, n: usize) -> Self {
        self.skip = n;
        self
    }

    fn take(&mut self, method: &str, target: &str) -> bool {
        let matches = self.method.as_ref().is_none_or(|m| m.as_str() == method)
            && self.path_contains.as_deref().is_none_or(|p| target.contains(p))
            && self.times != Some(0);
        if matches && self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        if matches && let Some(n) = &mut self.times {
            *n -= 1;
        }
        matches
    }
}

/// How an exchange through the stand-in ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    InProgress,
    /// The upstream's whole answer was relayed.
    Relayed,
    /// The fault ended it (reset, answered instead).
    Faulted,
    /// The gateway closed its connection before the exchange was over.
    GatewayClosed,
}

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub target: String,
    pub fault: Option<Fault>,
    /// Request body bytes received from the gateway.
    pub request_body_bytes: u64,
    pub ending: Ending,
}

#[derive(Default)]
struct Shared {
    rules: Mutex<Vec<(Match, Fault)>>,
    exchanges: Mutex<Vec<Exchange>>,
    changed: Notify,
    connections: Mutex<Vec<AbortHandle>>,
}

impl Shared {
    fn update(&self, index: usize, change: impl FnOnce(&mut Exchange)) {
        if let Some(e) = self.exchanges.lock().expect("not poisoned").get_mut(index) {
            change(e);
        }
        self.changed.notify_waiters();
    }
}

/// The stand-in: listens on 127.0.0.1 (port 0), forwards to `upstream`.
pub struct FaultProxy {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(task) = self.accept.lock().expect("not poisoned").take() {
            task.abort();
        }
        for connection in self.shared.connections.lock().expect("not poisoned").drain(..) {
            connection.abort();
        }
    }
}

impl FaultProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared::default());
        let accept = tokio::spawn(accept_loop(listener, upstream, shared.clone()));
        Self {
            addr,
            upstream,
            shared,
            accept: Mutex::new(Some(accept)),
        }
    }

    /// The endpoint a provider config uses to reach the upstream through the stand-in.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.addr.port())
    }

    /// Applies `fault` to the requests `when` matches (rules are tried in the order given).
    pub fn inject(&self, when: Match, fault: Fault) {
        self.shared.rules.lock().expect("not poisoned").push((when, fault));
    }

    /// Removes every rule: requests are forwarded as they are.
    pub fn heal(&self) {
        self.shared.rules.lock().expect("not poisoned").clear();
    }

    /// Closes the listener and every open connection: connections are refused from now on.
    pub fn refuse_connections(&self) {
        if let Some(task) = self.accept.lock().expect("not poisoned").take() {
            task.abort();
        }
        for connection in self.shared.connections.lock().expect("not poisoned").drain(..) {
            connection.abort();
        }
    }

    /// Listens again on the same port after [`FaultProxy::refuse_connections`].
    pub async fn accept_connections(&self) {
        let listener = TcpListener::bind(self.addr).await.expect("bind the same port again");
        let task = tokio::spawn(accept_loop(listener, self.upstream, self.shared.clone()));
        *self.accept.lock().expect("not poisoned") = Some(task);
    }

    /// Every exchange so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared.exchanges.lock().expect("not poisoned").clone()
    }

    /// How many requests with `method` whose target contains `path` reached the stand-in.
    pub fn count(&self, method: &Method, path: &str) -> usize {
        self.exchanges()
            .iter()
            .filter(|e| e.method == method.as_str() && e.target.contains(path))
            .count()
    }

    /// Waits (bounded) until the exchanges satisfy `done`; returns them.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Exchange]) -> bool) -> Vec<Exchange> {
        let deadline = tokio::time::Instant::now() + WITHIN;
        loop {
            let changed = self.shared.changed.notified();
            let now = self.exchanges();
            if done(&now) {
                return now;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("the stand-in did not see {what} within {WITHIN:?}: {now:#?}");
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    while let Ok((socket, _)) = listener.accept().await {
        let _ = socket.set_nodelay(true);
        let task = tokio::spawn(serve_connection(socket, upstream, shared.clone()));
        let mut connections = shared.connections.lock().expect("not poisoned");
        connections.retain(|c| !c.is_finished());
        connections.push(task.abort_handle());
    }
}

/// Reads until the end of an HTTP head (`\r\n\r\n`); returns the head and what came after it.
/// `None` if the peer closed first or the head is too long.
async fn read_head(reader: &mut OwnedReadHalf) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let n = tokio::time::timeout(WITHIN, reader.read(&mut chunk)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The request head with `Connection: close`, so the upstream ends the connection after
/// answering and the answer's end is its EOF.
fn closing_head(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::with_capacity(text.len() + 20);
    for line in text.trim_end_matches("\r\n").split("\r\n") {
        let name = line.split(':').next().unwrap_or("").trim().to_ascii_lowercase();
        if name == "connection" || name == "keep-alive" {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("connection: close\r\n\r\n");
    out.into_bytes()
}

/// Closes with a TCP reset instead of a FIN. (`set_linger` is deprecated because a non-zero
/// linger blocks the thread on drop; a zero linger does not block.)
#[allow(deprecated)]
fn reset(writer: &OwnedWriteHalf) {
    let _ = writer.as_ref().set_linger(Some(Duration::ZERO));
}

async fn serve_connection(socket: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let (mut from_gateway, mut to_gateway) = socket.into_split();
    let Some((head, early_body)) = read_head(&mut from_gateway).await else {
        return;
    };
    let line = String::from_utf8_lossy(head.split(|b| *b == b'\r').next().unwrap_or_default()).into_owned();
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let fault = {
        let mut rules = shared.rules.lock().expect("not poisoned");
        rules
            .iter_mut()
            .find_map(|(when, fault)| when.take(&method, &target).then(|| fault.clone()))
    };
    let index = {
        let mut exchanges = shared.exchanges.lock().expect("not poisoned");
        exchanges.push(Exchange {
            method,
            target,
            fault: fault.clone(),
            request_body_bytes: 0,
            ending: Ending::InProgress,
        });
        exchanges.len() - 1
    };
    shared.changed.notify_waiters();

    if let Some(Fault::Answer {
        status,
        retry_after,
        body,
    }) = &fault
    {
        let (content_type, text) = body.bytes();
        let mut answer = format!(
            "HTTP/1.1 {status} Injected\r\ncontent-length: {}\r\nconnection: close\r\ncontent-type: {content_type}\r\n",
            text.len()
        );
        if let Some(secs) = retry_after {
            answer.push_str(&format!("retry-after: {secs}\r\n"));
        }
        answer.push_str("\r\n");
        answer.push_str(&text);
        let _ = to_gateway.write_all(answer.as_bytes()).await;
        let _ = to_gateway.shutdown().await;
        shared.update(index, |e| e.ending = Ending::Faulted);
        // Whatever the gateway still sends is read and dropped, so the close is a FIN.
        let mut sink = [0u8; 16 * 1024];
        let _ = tokio::time::timeout(WITHIN, async {
            while matches!(from_gateway.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
        return;
    }

    let Ok(up) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = up.set_nodelay(true);
    let (mut from_upstream, mut to_upstream) = up.into_split();
    if to_upstream.write_all(&closing_head(&head)).await.is_err() {
        return;
    }
    let ending = {
        let request = forward_request(
            &mut from_gateway,
            &mut to_upstream,
            early_body,
            fault.as_ref(),
            &shared,
            index,
        );
        let response = relay_response(&mut from_upstream, &mut to_gateway, fault.as_ref());
        tokio::pin!(request, response);
        tokio::select! {
            ending = &mut response => ending,
            ending = &mut request => ending,
        }
    };
    if ending == Ending::Faulted {
        reset(&to_gateway);
    } else {
        let _ = to_gateway.shutdown().await;
    }
    shared.update(index, |e| e.ending = ending);
}

/// Gateway -> upstream. Ends only when the gateway closes (or a request fault fires): a
/// well-behaved gateway waits for the answer after its last body byte.
async fn forward_request(
    from_gateway: &mut OwnedReadHalf,
    to_upstream: &mut OwnedWriteHalf,
    early_body: Vec<u8>,
    fault: Option<&Fault>,
    shared: &Shared,
    index: usize,
) -> Ending {
    let limit = match fault {
        Some(Fault::ResetAfterRequestBodyBytes(n) | Fault::StallAfterRequestBodyBytes(n)) => Some(*n as u64),
        _ => None,
    };
    let mut sent: u64 = 0;
    let mut pending = early_body;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if !pending.is_empty() {
            let allowed = limit.map_or(pending.len(), |l| pending.len().min((l - sent) as usize));
            if to_upstream.write_all(&pending[..allowed]).await.is_err() {
                return Ending::GatewayClosed;
            }
            sent += allowed as u64;
            shared.update(index, |e| e.request_body_bytes = sent);
            pending.clear();
        }
        if limit == Some(sent) {
            return match fault {
                Some(Fault::ResetAfterRequestBodyBytes(_)) => Ending::Faulted,
                _ => {
                    tokio::time::sleep(STALL_CAP).await;
                    Ending::Faulted
                }
            };
        }
        match from_gateway.read(&mut chunk).await {
            Ok(0) | Err(_) => return Ending::GatewayClosed,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Upstream -> gateway, with the response faults applied. `Relayed` at the upstream's EOF.
async fn relay_response(
    from_upstream: &mut OwnedReadHalf,
    to_gateway: &mut OwnedWriteHalf,
    fault: Option<&Fault>,
) -> Ending {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut head_seen: Vec<u8> = Vec::new();
    let mut head_done = false;
    let mut body_relayed: usize = 0;
    loop {
        let n = match from_upstream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Ending::Relayed,
            Ok(n) => n,
        };
        let data = &chunk[..n];
        match fault {
            Some(Fault::ResetBeforeResponse) => return Ending::Faulted,
            Some(Fault::StallBeforeResponse) => {
                tokio::time::sleep(STALL_CAP).await;
                return Ending::Faulted;
            }
            Some(Fault::Trickle { bytes, every }) => {
                for piece in data.chunks((*bytes).max(1)) {
                    if to_gateway.write_all(piece).await.is_err() {
                        return Ending::GatewayClosed;
                    }
                    tokio::time::sleep(*every).await;
                }
                continue;
            }
            Some(Fault::ResetAfterResponseBytes(limit) | Fault::StallAfterResponseBytes(limit)) => {
                // Split off what belongs to the head; count the body after it.
                let mut head_part = 0;
                if !head_done {
                    let before = head_seen.len();
                    head_seen.extend_from_slice(data);
                    if let Some(end) = head_seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        head_done = true;
                        head_part = end + 4 - before;
                    } else {
                        head_part = data.len();
                    }
                }
                let body_allowed = (limit - body_relayed).min(data.len() - head_part);
                let allowed = head_part + body_allowed;
                if to_gateway.write_all(&data[..allowed]).await.is_err() {
                    return Ending::GatewayClosed;
                }
                body_relayed += body_allowed;
                if head_done && body_relayed == *limit {
                    let _ = to_gateway.flush().await;
                    if matches!(fault, Some(Fault::StallAfterResponseBytes(_))) {
                        tokio::time::sleep(STALL_CAP).await;
                    } else {
                        // Give the relayed bytes a moment to leave before the reset discards
                        // what is still queued.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    return Ending::Faulted;
                }
                continue;
            }
            _ => {}
        }
        if to_gateway.write_all(data).await.is_err() {
            return Ending::GatewayClosed;
        }
    }
}
