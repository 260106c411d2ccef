//! What the guest is granted beyond its spec: its directories and its declared listeners.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::keys::quote;

/// Which directories the guest gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Preopens {
    /// Its whole tree as `/` (the default).
    #[default]
    Root,
    /// No filesystem at all.
    None,
    /// Only these directories, each under its own path.
    Only(Vec<Preopen>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preopen {
    /// Absolute and normalized, as the container sees it.
    pub path: String,
    pub read_only: bool,
}

/// `none`, or a comma-separated list of absolute paths, each optionally `:ro`.
pub(super) fn parse_preopens(value: &str) -> Result<Preopens, String> {
    if value.trim() == "none" {
        return Ok(Preopens::None);
    }
    let mut list: Vec<Preopen> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (path, read_only) = match item.rsplit_once(':') {
            Some((p, "ro")) => (p, true),
            Some((p, "rw")) => (p, false),
            Some((_, opt)) => {
                return Err(format!(
                    "{}: unknown option {} (ro or rw)",
                    quote(item),
                    quote(opt)
                ))
            }
            None => (item, false),
        };
        if !path.starts_with('/') {
            return Err(format!("{} is not an absolute path", quote(path)));
        }
        let parts: Vec<&str> = path
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        if parts.contains(&"..") {
            return Err(format!("{} contains \"..\"", quote(path)));
        }
        let path = format!("/{}", parts.join("/"));
        if list.iter().any(|p| p.path == path) {
            return Err(format!("{} is listed twice", quote(&path)));
        }
        list.push(Preopen { path, read_only });
    }
    if list.is_empty() {
        return Err("no directories (say \"none\" for no filesystem)".into());
    }
    Ok(Preopens::Only(list))
}

/// A socket the container declares it listens on (`wasmbox.dev/listen`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Listen {
    Tcp(SocketAddr),
    /// A unix socket at this absolute path in the container.
    Unix(String),
}

impl Listen {
    /// `tcp:8080` (all addresses), `tcp:127.0.0.1:9000`, `tcp:[::1]:9000`, `unix:/run/app.sock`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("unix:") {
            if !path.starts_with('/') || path.split('/').any(|p| p == "..") {
                return Err(format!(
                    "{} is not an absolute path without \"..\"",
                    quote(path)
                ));
            }
            return Ok(Self::Unix(path.to_string()));
        }
        let Some(addr) = s.strip_prefix("tcp:") else {
            return Err(format!(
                "{} is neither tcp:[ADDRESS:]PORT nor unix:PATH",
                quote(s)
            ));
        };
        let port_only = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0);
        if let Some(port) = port_only(addr) {
            return Ok(Self::Tcp(SocketAddr::from(([0, 0, 0, 0], port))));
        }
        match addr.parse::<SocketAddr>() {
            Ok(a) if a.port() > 0 => Ok(Self::Tcp(a)),
            _ => Err(format!(
                "{} is not PORT or ADDRESS:PORT (a port 1-65535)",
                quote(addr)
            )),
        }
    }

    /// Whether binding `addr` is what this entry declares.
    pub(crate) fn covers(&self, addr: &SocketAddr) -> bool {
        match self {
            Self::Tcp(l) => {
                l.port() == addr.port() && (l.ip().is_unspecified() || l.ip() == addr.ip())
            }
            Self::Unix(_) => false,
        }
    }
}
