//! moto server, started per test on a free loopback port.

use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::sdk_client;

/// A moto server process on a free loopback port, stopped on drop.
pub struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server is not installed: run `python3 -m pip install 'moto[server]'` (bash .ci/run does)");
        let moto = Self { child, port };
        for _ in 0..300 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return moto;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto_server did not start listening on port {port} within 30 s");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn direct(&self) -> aws_sdk_s3::Client {
        sdk_client(&self.endpoint(), "moto", "moto", true)
    }
}

/// The client a wrapper forwards requests to moto with.
pub type MotoClient = Client<HttpConnector, Full<Bytes>>;

/// moto behind a thin wrapper that adds one provider's quirks, addressed at
/// `http://localhost:PORT` (or `<bucket>.localhost:PORT`); both stop on drop.
pub struct Wrapped {
    /// Kept alive for as long as the wrapper runs.
    _moto: Moto,
    pub port: u16,
    task: JoinHandle<()>,
}

impl Drop for Wrapped {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Wrapped {
    /// Starts moto with `buckets`, and the wrapper, which hands every request to `answer`
    /// together with a client and moto's address.
    pub async fn start<A, F>(buckets: &[&str], answer: A) -> Self
    where
        A: Fn(MotoClient, String, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let moto = Moto::start().await;
        for b in buckets {
            moto.direct()
                .create_bucket()
                .bucket(*b)
                .send()
                .await
                .expect("bucket on moto");
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let moto_addr = format!("127.0.0.1:{}", moto.port);
        let task = tokio::spawn(serve(listener, moto_addr, answer));
        Self {
            _moto: moto,
            port,
            task,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://localhost:{}", self.port)
    }
}

async fn serve<A, F>(listener: TcpListener, moto_addr: String, answer: A)
where
    A: Fn(MotoClient, String, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let client: MotoClient = Client::builder(TokioExecutor::new()).build_http();
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let client = client.clone();
        let moto_addr = moto_addr.clone();
        let answer = answer.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let answered = answer(client.clone(), moto_addr.clone(), req);
                async move { Ok::<_, std::convert::Infallible>(answered.await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(socket), svc)
                .await;
        });
    }
}

/// Sends the (possibly changed) request to moto, framed for `body`; the answer comes back read
/// whole and framed by its length.
pub async fn forward(
    client: &MotoClient,
    moto_addr: &str,
    mut parts: http::request::Parts,
    body: Bytes,
) -> Result<(http::response::Parts, Bytes), String> {
    parts.headers.insert("content-length", HeaderValue::from(body.len()));
    parts.headers.remove("transfer-encoding");
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    parts.uri = format!("http://{moto_addr}{path_and_query}").parse().expect("uri");
    // A HEAD answer has no body: its Content-Length is the object's and stays as moto sent it.
    let head = parts.method == http::Method::HEAD;
    let response = client
        .request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|e| e.to_string())?;
    let (mut parts, incoming) = response.into_parts();
    let body = incoming.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    parts.headers.remove("transfer-encoding");
    if !head {
        parts.headers.insert("content-length", HeaderValue::from(body.len()));
    }
    Ok((parts, body))
}
