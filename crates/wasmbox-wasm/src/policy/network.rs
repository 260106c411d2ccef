//! The network policy applied to a component's `wasi:sockets`: every outbound connection and
//! datagram is checked against the egress rules ([`super::egress::Egress`]), every bind and
//! listen against the declared listeners ([`super::resolve::Policy::bind_denied`]). A denial is
//! logged in the shim log and on the container's stderr with the address and what denied it.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;

use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::WasiCtxBuilder;

use super::resolve::Policy;

/// A container's network policy with its rules' host names resolved, once, when the guest
/// starts: every WASI context made from it (one per request of an HTTP component) and the
/// outbound HTTP sender share it.
#[derive(Clone)]
pub struct Network {
    policy: Arc<Policy>,
    names: Arc<BTreeMap<String, Vec<IpAddr>>>,
}

impl Network {
    pub fn new(policy: &Policy) -> Self {
        Self {
            // No names when egress is unrestricted (no rule layers).
            names: Arc::new(resolve(&policy.egress.names())),
            policy: Arc::new(policy.clone()),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The addresses each rule's host name resolved to.
    pub fn names(&self) -> &BTreeMap<String, Vec<IpAddr>> {
        &self.names
    }

    /// Lets the guest use the container's network namespace within the policy.
    pub fn apply(&self, b: &mut WasiCtxBuilder) {
        // TCP and UDP are off in Wasmtime unless asked for; a runc container has both.
        b.allow_tcp(true).allow_udp(true);
        let egress = &self.policy.egress;
        if egress.unrestricted() && self.policy.bind_undeclared {
            b.inherit_network().allow_ip_name_lookup(true);
            return;
        }
        // Looking names up is only useful where some destination is allowed.
        b.allow_ip_name_lookup(!egress.denies_all());
        let network = self.clone();
        b.socket_addr_check(move |addr, used| {
            let policy = &network.policy;
            let denied = match used {
                SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend => policy
                    .egress
                    .check(&addr, &network.names)
                    .map(|source| format!("egress to {addr} denied by {source}")),
                SocketAddrUse::TcpBind | SocketAddrUse::TcpListen | SocketAddrUse::UdpBind => {
                    policy.bind_denied(&addr).map(|why| format!("bind to {addr} denied: {why}"))
                }
                // What arrives on an allowed socket is not checked.
                _ => None,
            };
            if let Some(message) = &denied {
                log::warn!("{message}");
                let _ = writeln!(std::io::stderr(), "wasmbox: {message}");
            }
            Box::pin(async move { denied.is_none() })
        });
    }
}

/// Resolves the rules' host names now, in the container's network namespace and with its
/// resolver configuration (the runner is inside the container).
fn resolve(names: &[String]) -> BTreeMap<String, Vec<IpAddr>> {
    names
        .iter()
        .map(|n| {
            let ips: Vec<IpAddr> = match (n.as_str(), 0u16).to_socket_addrs() {
                Ok(addrs) => addrs.map(|a| a.ip()).collect(),
                Err(e) => {
                    log::warn!("egress rule host {n}: {e}; it matches nothing");
                    Vec::new()
                }
            };
            (n.clone(), ips)
        })
        .collect()
}
