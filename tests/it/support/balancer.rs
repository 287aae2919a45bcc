//! A round-robin TCP load balancer on 127.0.0.1: each accepted connection goes to the next
//! backend, bytes copied both ways, as a plain L4 balancer (or nginx's `stream` module) does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct RoundRobin {
    pub addr: SocketAddr,
    /// Connections handed to each backend, in the order given.
    pub connections: Arc<Vec<AtomicUsize>>,
    task: JoinHandle<()>,
}

impl RoundRobin {
    pub async fn start(backends: Vec<SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind balancer");
        let addr = listener.local_addr().expect("address");
        let connections: Arc<Vec<AtomicUsize>> = Arc::new(backends.iter().map(|_| AtomicUsize::new(0)).collect());
        let counts = connections.clone();
        let task = tokio::spawn(async move {
            let mut next = 0usize;
            while let Ok((mut client, _)) = listener.accept().await {
                let at = next % backends.len();
                next += 1;
                counts[at].fetch_add(1, Ordering::Relaxed);
                let backend = backends[at];
                tokio::spawn(async move {
                    // A backend that refuses ends the client's connection, as a balancer would.
                    if let Ok(mut server) = TcpStream::connect(backend).await {
                        let _ = server.set_nodelay(true);
                        let _ = client.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self {
            addr,
            connections,
            task,
        }
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
