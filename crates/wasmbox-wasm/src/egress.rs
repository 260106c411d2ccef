//! The egress policy applied to a component's `wasi:sockets`: every outbound connection and
//! datagram is checked against [`Egress`]; a denial is logged in the shim log and on the
//! container's stderr with the address and the rule set that denied it.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::WasiCtxBuilder;

use crate::policy::Egress;

/// Lets the guest use the container's network namespace within `egress`.
pub fn apply(b: &mut WasiCtxBuilder, egress: &Egress) {
    // TCP and UDP are off in Wasmtime unless asked for; a runc container has both.
    b.allow_tcp(true).allow_udp(true);
    if egress.unrestricted() {
        b.inherit_network().allow_ip_name_lookup(true);
        return;
    }
    let names = Arc::new(resolve(&egress.names()));
    // Looking names up is only useful where some destination is allowed.
    b.allow_ip_name_lookup(!egress.denies_all());
    let egress = Arc::new(egress.clone());
    b.socket_addr_check(move |addr, used| {
        let verdict = match used {
            SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend => match egress.check(&addr, &names) {
                None => true,
                Some(source) => {
                    deny(&addr, source);
                    false
                }
            },
            // Binding, listening and what arrives are not egress.
            _ => true,
        };
        Box::pin(async move { verdict })
    });
}

fn deny(addr: &SocketAddr, source: &str) {
    log::warn!("egress to {addr} denied by {source}");
    let _ = writeln!(std::io::stderr(), "wasmbox: egress to {addr} denied by {source}");
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
