//! Egress: the outbound destinations a guest may reach, as layers of rules that only narrow.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::keys::quote;

/// One allowed outbound destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressRule {
    pub host: Host,
    /// None: any port.
    pub port: Option<u16>,
    /// `http` or `https` for a URL-style rule: outbound `wasi:http` requests must use it (a
    /// socket connection to the host and port passes regardless). None: any.
    #[serde(default)]
    pub scheme: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Host {
    Any,
    Net {
        addr: IpAddr,
        prefix: u8,
    },
    /// A name, resolved when the guest starts (in the container's network namespace).
    Name(String),
}

impl EgressRule {
    /// `10.0.0.0/8:5432`, `10.1.2.3:443`, `[fd00::/8]:443`, `db.default.svc:5432`, `*:443`,
    /// `host:*`, or `*`; or URL-style for HTTP, `https://api.example.com` (port 443),
    /// `http://10.0.0.0/8:8080`, `https://*`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some((scheme, rest)) = s.split_once("://") {
            let default_port = match scheme.to_ascii_lowercase().as_str() {
                "http" => "80",
                "https" => "443",
                _ => {
                    return Err(format!(
                        "{} is not a scheme of an egress rule (http or https)",
                        quote(scheme)
                    ))
                }
            };
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            // A '/' may only be a CIDR's.
            let path = rest.split_once('/').is_some_and(|(before, _)| {
                before.trim_start_matches('[').parse::<IpAddr>().is_err()
            });
            if path || rest.contains(['?', '#']) {
                return Err("a URL-style rule is scheme://host[:port], without a path".into());
            }
            // The port is optional: the scheme's own when absent.
            let has_port = if let Some(v6) = rest.strip_prefix('[') {
                v6.split_once(']').is_some_and(|(_, p)| p.starts_with(':'))
            } else {
                rest.contains(':')
            };
            let with_port = if has_port {
                rest.to_string()
            } else {
                format!("{rest}:{default_port}")
            };
            let mut rule = Self::parse(&with_port)?;
            rule.scheme = Some(scheme.to_ascii_lowercase());
            return Ok(rule);
        }
        if s == "*" {
            return Ok(Self {
                host: Host::Any,
                port: None,
                scheme: None,
            });
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, p) = rest
                .split_once(']')
                .ok_or("an IPv6 destination is written [address]:port")?;
            (
                h,
                p.strip_prefix(':')
                    .ok_or("a destination is host:port (the port may be *)")?,
            )
        } else {
            s.rsplit_once(':')
                .ok_or("a destination is host:port (the port may be *)")?
        };
        let port = match port {
            "*" => None,
            p => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or(format!("{} is not a port (1-65535 or *)", quote(p)))?,
            ),
        };
        let host = if host == "*" {
            Host::Any
        } else if let Some((a, len)) = host.split_once('/') {
            let addr: IpAddr = a
                .parse()
                .map_err(|_| format!("{} is not an IP address", quote(a)))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = len
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or(format!("{} is not a prefix length (0-{max})", quote(len)))?;
            Host::Net { addr, prefix }
        } else if let Ok(addr) = host.parse::<IpAddr>() {
            Host::Net {
                addr,
                prefix: if addr.is_ipv4() { 32 } else { 128 },
            }
        } else if !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            Host::Name(host.to_ascii_lowercase())
        } else {
            return Err(format!(
                "{} is not an IP address, a CIDR, a host name or *",
                quote(host)
            ));
        };
        Ok(Self {
            host,
            port,
            scheme: None,
        })
    }

    /// Matches an outbound HTTP request with `scheme` to `host` (as the request names it: a
    /// name or an IP literal), connecting to `addr`: by the name itself, or by the address.
    fn matches_request(
        &self,
        scheme: &str,
        host: &str,
        addr: &SocketAddr,
        names: &BTreeMap<String, Vec<IpAddr>>,
    ) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        if let Host::Name(n) = &self.host {
            if host.eq_ignore_ascii_case(n) {
                return self.port.is_none_or(|p| p == addr.port());
            }
        }
        self.matches(addr, names)
    }

    /// Matches `addr`, with `names` the addresses its name resolved to (for [`Host::Name`]).
    fn matches(&self, addr: &SocketAddr, names: &BTreeMap<String, Vec<IpAddr>>) -> bool {
        if self.port.is_some_and(|p| p != addr.port()) {
            return false;
        }
        match &self.host {
            Host::Any => true,
            Host::Net { addr: net, prefix } => in_net(addr.ip(), *net, *prefix),
            Host::Name(n) => names.get(n).is_some_and(|ips| ips.contains(&addr.ip())),
        }
    }
}

fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix as u32)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix as u32)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// One layer's egress rules: an address must pass every layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressLayer {
    /// Where the rules come from, for the denial message.
    pub source: String,
    pub rules: Vec<EgressRule>,
}

/// Outbound connections: allowed when every layer has a rule that matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Egress {
    pub layers: Vec<EgressLayer>,
}

impl Egress {
    /// True when nothing restricts egress (no layer).
    pub fn unrestricted(&self) -> bool {
        self.layers.is_empty()
    }

    /// True when no destination can pass (some layer has no rule).
    pub fn denies_all(&self) -> bool {
        self.layers.iter().any(|l| l.rules.is_empty())
    }

    /// The host names the rules mention, to resolve when the guest starts.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .layers
            .iter()
            .flat_map(|l| &l.rules)
            .filter_map(|r| match &r.host {
                Host::Name(n) => Some(n.clone()),
                _ => None,
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// None when `addr` may be reached, else the source of the layer that denies it.
    pub fn check(&self, addr: &SocketAddr, names: &BTreeMap<String, Vec<IpAddr>>) -> Option<&str> {
        self.denying_layer(|r| r.matches(addr, names))
    }

    /// As [`Egress::check`], for an outbound HTTP request with `scheme` (`http`/`https`) to
    /// `host` that connects to `addr` (one of the addresses `host` resolved to).
    pub fn check_request(
        &self,
        scheme: &str,
        host: &str,
        addr: &SocketAddr,
        names: &BTreeMap<String, Vec<IpAddr>>,
    ) -> Option<&str> {
        self.denying_layer(|r| r.matches_request(scheme, host, addr, names))
    }

    /// The source of the first layer none of whose rules `allows`.
    fn denying_layer(&self, allows: impl Fn(&EgressRule) -> bool) -> Option<&str> {
        self.layers
            .iter()
            .find(|l| !l.rules.iter().any(&allows))
            .map(|l| l.source.as_str())
    }
}
