//! Name resolution for upstream connections.
//!
//! `localhost` and every `*.localhost` name are loopback by definition (RFC 6761), but the
//! system resolver only knows them when `libnss-myhostname` is installed. A virtual-hosted
//! provider on this machine (`bucket.localhost:9000`) must work without it, so those names are
//! answered here with both loopback addresses, IPv6 first as the system would; the connector
//! tries every address in turn. Every other name goes to the system resolver.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use tower_service::Service;

#[derive(Clone)]
pub struct LoopbackAwareResolver {
    system: GaiResolver,
}

impl Default for LoopbackAwareResolver {
    fn default() -> Self {
        Self::new()
    }
}

impl LoopbackAwareResolver {
    pub fn new() -> Self {
        Self {
            system: GaiResolver::new(),
        }
    }
}

/// True for `localhost` and `*.localhost` (case-insensitive, trailing dot allowed).
pub fn is_loopback_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

type Addrs = std::vec::IntoIter<SocketAddr>;

impl Service<Name> for LoopbackAwareResolver {
    type Response = Addrs;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Addrs, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.system.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        if is_loopback_name(name.as_str()) {
            let addrs = vec![
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0),
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            ];
            return Box::pin(std::future::ready(Ok(addrs.into_iter())));
        }
        let lookup = self.system.call(name);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = lookup.await?.collect();
            Ok(addrs.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_names_are_loopback() {
        assert!(is_loopback_name("localhost"));
        assert!(is_loopback_name("Bucket.S3.localhost."));
        assert!(!is_loopback_name("localhost.example.com"));
        assert!(!is_loopback_name("notlocalhost"));
    }

    #[tokio::test]
    async fn localhost_resolves_to_both_loopback_addresses_ipv6_first() {
        let mut resolver = LoopbackAwareResolver::new();
        let name: Name = "bucket.localhost".parse().expect("name");
        let addrs: Vec<_> = resolver.call(name).await.expect("resolves").collect();
        assert_eq!(addrs.len(), 2);
        assert!(addrs[0].is_ipv6() && addrs[1].is_ipv4());
    }
}
