//! Name resolution in pure Rust, reading `/etc/resolv.conf` and `/etc/hosts` the way Kubernetes
//! provides them (search domains, `ndots`), so the statically linked binary needs no glibc NSS
//! modules (a static glibc cannot load them).
//!
//! It never falls back to a public resolver: without a usable `resolv.conf` only `/etc/hosts`
//! and IP literals resolve.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hyper_util::client::legacy::connect::dns::Name;

/// A cloneable resolver for hyper's connector.
#[derive(Clone)]
pub struct Dns {
    resolver: Arc<TokioResolver>,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dns")
    }
}

impl Dns {
    /// The system configuration, or hosts-file-only when `/etc/resolv.conf` is missing or bad.
    pub fn system() -> Dns {
        let mut builder = TokioResolver::builder_tokio().unwrap_or_else(|e| {
            tracing::debug!("no usable /etc/resolv.conf ({e}): resolving from /etc/hosts only");
            TokioResolver::builder_with_config(
                ResolverConfig::default(),
                TokioRuntimeProvider::default(),
            )
        });
        let opts = builder.options_mut();
        opts.use_hosts_file = ResolveHosts::Always;
        // Like glibc: IPv4 first, IPv6 only without an IPv4 answer. A name /etc/hosts maps to an
        // IPv4 address is then answered without asking any name server for AAAA.
        opts.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
        match builder.build() {
            Ok(r) => Dns {
                resolver: Arc::new(r),
            },
            Err(e) => panic!("building a resolver from parsed settings cannot fail: {e}"),
        }
    }
}

impl tower_service::Service<Name> for Dns {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolver = self.resolver.clone();
        Box::pin(async move {
            let ips = resolver.lookup_ip(name.as_str()).await.map_err(|e| {
                std::io::Error::other(format!("cannot resolve {}: {e}", name.as_str()))
            })?;
            let addrs: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            Ok(addrs.into_iter())
        })
    }
}
