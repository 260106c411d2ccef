//! The network policy applied to a component's `wasi:sockets`: every outbound connection and
//! datagram is checked against the egress rules ([`crate::policy::Egress`]), every bind and
//! listen against the declared listeners ([`crate::policy::Policy::bind_denied`]). A denial is
//! logged in the shim log and on the container's stderr with the address and what denied it.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;

use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::WasiCtxBuilder;

use crate::policy::Policy;

/// Lets the guest use the container's network namespace within `policy`.
pub fn apply(b: &mut WasiCtxBuilder, policy: &Policy) {
    // TCP and UDP are off in Wasmtime unless asked for; a runc container has both.
    b.allow_tcp(true).allow_udp(true);
    let egress = &policy.egress;
    if egress.unrestricted() && policy.bind_undeclared {
        b.inherit_network().allow_ip_name_lookup(true);
        return;
    }
    let names = Arc::new(resolve(&egress.names()));
    // Looking names up is only useful where some destination is allowed.
    b.allow_ip_name_lookup(!egress.denies_all());
    let policy = Arc::new(policy.clone());
    b.socket_addr_check(move |addr, used| {
        let denied = match used {
            SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend => policy
                .egress
                .check(&addr, &names)
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

/// Resolves the rules' host names now, in the container's network namespace and with its
/// resolver configuration (the runner is inside the container).
pub(crate) fn resolve(names: &[String]) -> BTreeMap<String, Vec<IpAddr>> {
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
