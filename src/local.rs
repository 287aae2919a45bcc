//! `kind = "local"` providers: a directory served as S3 in-process by s3s-fs on a loopback
//! port, with a random key pair made at start-up. The gateway reaches it exactly like a remote
//! provider (SigV4-signed HTTP through the pooled client), so the embedded default exercises
//! the same upstream path as a cloud account.

use std::net::SocketAddr;
use std::path::Path;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::Secret;

/// A running in-process S3 server for one local provider.
pub struct LocalServer {
    pub addr: SocketAddr,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    task: JoinHandle<()>,
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts serving `root` (created if missing) on 127.0.0.1 with a fresh key pair.
pub async fn start_local_provider(root: &Path) -> Result<LocalServer, String> {
    std::fs::create_dir_all(root).map_err(|e| format!("cannot create {}: {e:?}", root.display()))?;
    let fs = s3s_fs::FileSystem::new(root).map_err(|e| format!("cannot serve {}: {e:?}", root.display()))?;
    let access_key_id = format!("local-{}", &crate::error::new_request_id()[..8]);
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(access_key_id.clone(), secret.clone()));
    let service = builder.build();
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| format!("cannot listen on loopback: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let task = tokio::spawn(serve_s3_service(listener, service));
    Ok(LocalServer {
        addr,
        access_key_id,
        secret_access_key: Secret::new(secret),
        task,
    })
}

/// Accepts connections forever and serves each with `service` (TCP_NODELAY on).
pub async fn serve_s3_service(listener: TcpListener, service: S3Service) {
    let builder = ConnBuilder::new(TokioExecutor::new());
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        let service = service.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            if let Err(e) = builder.serve_connection(TokioIo::new(socket), service).await {
                tracing::debug!(error = %e, "local provider connection ended with an error");
            }
        });
    }
}

/// Creates `bucket` under `root` if missing (a local bucket is a directory).
pub fn ensure_local_bucket(root: &Path, bucket: &str) -> Result<(), String> {
    let dir = root.join(bucket);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create bucket directory {}: {e}", dir.display()))
}
