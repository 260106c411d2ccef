//! What a guest may do beyond what the spec says: the capability policy.
//!
//! Three layers, each narrowing the one before and never widening it:
//! 1. built-in defaults: what a runc container may do (every directory of its tree, any
//!    outbound connection, no time limit);
//! 2. the node operator's config file for the runtime handler ([`OperatorConfig`]: default
//!    egress, caps on what annotations may ask for, defaults for them);
//! 3. the pod's or container's `wasmbox.dev/` annotations in the OCI spec.
//!
//! All of it becomes one plain [`Policy`], made by the shim at Create (where a bad file or
//! annotation fails Create with a message naming it) and applied where the WASI context is
//! built ([`crate::run`]).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The annotations' common prefix.
pub const PREFIX: &str = "wasmbox.dev/";
pub const PREOPENS: &str = "wasmbox.dev/preopens";
pub const TIMEOUT: &str = "wasmbox.dev/timeout";
pub const EGRESS: &str = "wasmbox.dev/egress";
pub const LISTEN: &str = "wasmbox.dev/listen";
pub const HTTP: &str = "wasmbox.dev/http";
pub const HTTP_TIMEOUT: &str = "wasmbox.dev/http-timeout";
pub const HTTP_MAX_CONCURRENCY: &str = "wasmbox.dev/http-max-concurrency";
pub const HTTP_ACCESS_LOG: &str = "wasmbox.dev/http-access-log";
pub const HTTP_HEADER_TIMEOUT: &str = "wasmbox.dev/http-header-timeout";
pub const HTTP_IDLE_TIMEOUT: &str = "wasmbox.dev/http-idle-timeout";
pub const HTTP_MAX_CONNECTIONS: &str = "wasmbox.dev/http-max-connections";
/// The annotations this version understands; any other `wasmbox.dev/` key fails Create, so a
/// typo is not silently ignored.
pub const KNOWN: &[&str] = &[
    PREOPENS,
    TIMEOUT,
    EGRESS,
    LISTEN,
    HTTP,
    HTTP_TIMEOUT,
    HTTP_MAX_CONCURRENCY,
    HTTP_ACCESS_LOG,
    HTTP_HEADER_TIMEOUT,
    HTTP_IDLE_TIMEOUT,
    HTTP_MAX_CONNECTIONS,
];
/// How long a request's head may take to arrive once its first byte did (hyper's default,
/// Apache's `RequestReadTimeout` is 20 to 40 s).
pub const DEFAULT_HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection may wait for its next request (nginx's `keepalive_timeout` is 75 s).
pub const DEFAULT_HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Open connections per container (nginx's `worker_connections` is 512 to 1024); never more
/// than the init's descriptor limit allows.
pub const DEFAULT_HTTP_MAX_CONNECTIONS: usize = 1024;
/// How long one request's handler may take before the client gets 504.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(60);
/// Handlers running at once per core, unless `wasmbox.dev/http-max-concurrency` says otherwise.
pub const HTTP_CONCURRENCY_PER_CORE: usize = 16;
/// Where a `wasi:http/proxy` component is served unless `wasmbox.dev/http` says otherwise.
pub const DEFAULT_HTTP: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 8080);

/// Exit status of a guest ended by its timeout (as `timeout(1)` reports it).
pub const TIMEOUT_EXIT: i32 = 124;

/// The most characters of a value an error quotes: errors travel in ttrpc messages (4 MiB at
/// most, or the user sees neither the file nor the key) and in logs.
pub const QUOTE_MAX_CHARS: usize = 80;

/// `value` quoted for an error message: its first [`QUOTE_MAX_CHARS`] characters, and its
/// length when that is not all of it.
pub fn quote(value: &str) -> String {
    match value.char_indices().nth(QUOTE_MAX_CHARS) {
        None => format!("{value:?}"),
        Some((end, _)) => format!("{:?}... ({} bytes)", &value[..end], value.len()),
    }
}

/// A message of a parser that may quote its input: at most a few quoted values' worth.
pub fn clip(message: &str) -> String {
    const MAX: usize = 4 * QUOTE_MAX_CHARS;
    match message.char_indices().nth(MAX) {
        None => message.to_string(),
        Some((end, _)) => format!("{}... ({} bytes)", &message[..end], message.len()),
    }
}

/// A policy that cannot be made: the message names the file or annotation, the key and what
/// is allowed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{}: {message}", clip(.source_name))]
    Config { source_name: String, message: String },
    #[error("annotation {}={}: {message}", clip(.key), quote(.value))]
    Annotation { key: String, value: String, message: String },
}

/// Whether outbound connections not matched by a rule are allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Default_ {
    #[default]
    Allow,
    Deny,
}

/// The operator's file (the runtime handler's `ConfigPath`, else `/etc/wasmbox/config.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    #[serde(default)]
    pub egress: EgressConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub listen: ListenConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub shim: ShimConfig,
}

/// How containers share shim processes (read by the shim's `start` action).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShimConfig {
    /// The most containers outside pods one shim serves (1: a shim per container). A pod's
    /// containers always share their pod's shim.
    pub containers_per_shim: Option<usize>,
}

/// Defaults and caps for serving `wasi:http/proxy` components; annotations override the
/// defaults within the caps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Where components are served unless `wasmbox.dev/http` says (`:8080`, `ADDRESS:PORT`).
    pub address: Option<String>,
    /// A request's time limit unless `wasmbox.dev/http-timeout` says (`60s`).
    pub timeout: Option<String>,
    /// The longest `wasmbox.dev/http-timeout` a pod may ask for; also bounds `timeout`.
    pub max_timeout: Option<String>,
    /// The most handlers one container runs at once: caps `wasmbox.dev/http-max-concurrency`
    /// and the per-core default.
    pub max_concurrency: Option<usize>,
    /// The access log unless `wasmbox.dev/http-access-log` says.
    #[serde(default)]
    pub access_log: bool,
    /// A request head's time limit from its first byte unless `wasmbox.dev/http-header-timeout`
    /// says (`30s`).
    pub header_timeout: Option<String>,
    /// How long a connection may wait for a request unless `wasmbox.dev/http-idle-timeout`
    /// says (`60s`).
    pub idle_timeout: Option<String>,
    /// Open connections per container: the default and the cap of
    /// `wasmbox.dev/http-max-connections` (1024).
    pub max_connections: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// The most `wasmbox.dev/listen` entries a container may declare.
    pub max: Option<usize>,
    /// Whether a component may bind ports its `wasmbox.dev/listen` does not declare (as a runc
    /// container may); `false`: only the declared ones.
    #[serde(default = "yes")]
    pub bind_undeclared: bool,
}

fn yes() -> bool {
    true
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            max: None,
            bind_undeclared: true,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// `allow` (as runc) or `deny`: what an address no rule matches gets.
    #[serde(default)]
    pub default: Default_,
    /// Destinations allowed when the default is `deny` (same syntax as `wasmbox.dev/egress`).
    #[serde(default)]
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// A guest's run time when no annotation sets one (`30s`, `5m`, `1h`).
    pub default_timeout: Option<String>,
    /// The longest `wasmbox.dev/timeout` a pod may ask for; also bounds `default_timeout`.
    pub max_timeout: Option<String>,
}

impl OperatorConfig {
    /// Parses the file's text; `source_name` (its path) goes into every error.
    pub fn parse(text: &str, source_name: &str) -> Result<Self, PolicyError> {
        let err = |message: String| PolicyError::Config {
            source_name: source_name.to_string(),
            message,
        };
        // Not the error's Display: it quotes the whole offending line, which may be megabytes.
        let config: Self = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|span| {
                let before = &text.as_bytes()[..span.start.min(text.len())];
                let line = before.iter().filter(|b| **b == b'\n').count() + 1;
                let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
                format!("line {line}, column {column}: ")
            });
            err(format!("{}{}", at.unwrap_or_default(), clip(e.message().trim())))
        })?;
        for (i, rule) in config.egress.allow.iter().enumerate() {
            EgressRule::parse(rule).map_err(|m| err(format!("egress.allow[{i}] = {}: {m}", quote(rule))))?;
        }
        for (key, value) in [
            ("limits.default_timeout", &config.limits.default_timeout),
            ("limits.max_timeout", &config.limits.max_timeout),
        ] {
            if let Some(v) = value {
                parse_duration(v).map_err(|m| err(format!("{key} = {}: {m}", quote(v))))?;
            }
        }
        if config.shim.containers_per_shim == Some(0) {
            return Err(err("shim.containers_per_shim = 0: at least 1 (1 gives every container its own shim)".into()));
        }
        Ok(config)
    }
}

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
    Net { addr: IpAddr, prefix: u8 },
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
                _ => return Err(format!("{} is not a scheme of an egress rule (http or https)", quote(scheme))),
            };
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            // A '/' may only be a CIDR's.
            let path = rest.split_once('/').is_some_and(|(before, _)| before.trim_start_matches('[').parse::<IpAddr>().is_err());
            if path || rest.contains(['?', '#']) {
                return Err("a URL-style rule is scheme://host[:port], without a path".into());
            }
            // The port is optional: the scheme's own when absent.
            let has_port = if let Some(v6) = rest.strip_prefix('[') {
                v6.split_once(']').is_some_and(|(_, p)| p.starts_with(':'))
            } else {
                rest.contains(':')
            };
            let with_port = if has_port { rest.to_string() } else { format!("{rest}:{default_port}") };
            let mut rule = Self::parse(&with_port)?;
            rule.scheme = Some(scheme.to_ascii_lowercase());
            return Ok(rule);
        }
        if s == "*" {
            return Ok(Self { host: Host::Any, port: None, scheme: None });
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, p) = rest.split_once(']').ok_or("an IPv6 destination is written [address]:port")?;
            (h, p.strip_prefix(':').ok_or("a destination is host:port (the port may be *)")?)
        } else {
            s.rsplit_once(':').ok_or("a destination is host:port (the port may be *)")?
        };
        let port = match port {
            "*" => None,
            p => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or(format!("{} is not a port (1-65535 or *)", quote(p)))?),
        };
        let host = if host == "*" {
            Host::Any
        } else if let Some((a, len)) = host.split_once('/') {
            let addr: IpAddr = a.parse().map_err(|_| format!("{} is not an IP address", quote(a)))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = len.parse::<u8>().ok().filter(|l| *l <= max).ok_or(format!("{} is not a prefix length (0-{max})", quote(len)))?;
            Host::Net { addr, prefix }
        } else if let Ok(addr) = host.parse::<IpAddr>() {
            Host::Net { addr, prefix: if addr.is_ipv4() { 32 } else { 128 } }
        } else if !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            Host::Name(host.to_ascii_lowercase())
        } else {
            return Err(format!("{} is not an IP address, a CIDR, a host name or *", quote(host)));
        };
        Ok(Self { host, port, scheme: None })
    }

    /// Matches an outbound HTTP request with `scheme` to `host` (as the request names it: a
    /// name or an IP literal), connecting to `addr`: by the name itself, or by the address.
    fn matches_request(&self, scheme: &str, host: &str, addr: &SocketAddr, names: &BTreeMap<String, Vec<IpAddr>>) -> bool {
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
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix as u32) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix as u32) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
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
                return Err(format!("{} is not an absolute path without \"..\"", quote(path)));
            }
            return Ok(Self::Unix(path.to_string()));
        }
        let Some(addr) = s.strip_prefix("tcp:") else {
            return Err(format!("{} is neither tcp:[ADDRESS:]PORT nor unix:PATH", quote(s)));
        };
        let port_only = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0);
        if let Some(port) = port_only(addr) {
            return Ok(Self::Tcp(SocketAddr::from(([0, 0, 0, 0], port))));
        }
        match addr.parse::<SocketAddr>() {
            Ok(a) if a.port() > 0 => Ok(Self::Tcp(a)),
            _ => Err(format!("{} is not PORT or ADDRESS:PORT (a port 1-65535)", quote(addr))),
        }
    }

    /// Whether binding `addr` is what this entry declares.
    fn covers(&self, addr: &SocketAddr) -> bool {
        match self {
            Self::Tcp(l) => l.port() == addr.port() && (l.ip().is_unspecified() || l.ip() == addr.ip()),
            Self::Unix(_) => false,
        }
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
    pub fn check_request(&self, scheme: &str, host: &str, addr: &SocketAddr, names: &BTreeMap<String, Vec<IpAddr>>) -> Option<&str> {
        self.denying_layer(|r| r.matches_request(scheme, host, addr, names))
    }

    /// The source of the first layer none of whose rules `allows`.
    fn denying_layer(&self, allows: impl Fn(&EgressRule) -> bool) -> Option<&str> {
        self.layers.iter().find(|l| !l.rules.iter().any(&allows)).map(|l| l.source.as_str())
    }
}

/// Everything the capability layers grant a guest, beyond the spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub preopens: Preopens,
    /// The guest is ended after this long (exit status [`TIMEOUT_EXIT`]).
    pub timeout: Option<Duration>,
    pub egress: Egress,
    /// The sockets the container declares it listens on.
    #[serde(default)]
    pub listen: Vec<Listen>,
    /// Whether binding what `listen` does not declare is allowed (the operator's choice).
    #[serde(default = "yes")]
    pub bind_undeclared: bool,
    /// Where a `wasi:http/proxy` component is served ([`DEFAULT_HTTP`] unless annotated).
    #[serde(default = "default_http")]
    pub http: SocketAddr,
    /// A request's time limit (504 after it).
    #[serde(default = "default_http_timeout")]
    pub http_timeout: Duration,
    /// Handlers running at once; more requests wait. None: [`HTTP_CONCURRENCY_PER_CORE`] per core.
    #[serde(default)]
    pub http_max_concurrency: Option<usize>,
    /// The operator's cap on handlers running at once (bounds the per-core default too).
    #[serde(default)]
    pub http_max_concurrency_cap: Option<usize>,
    /// A line per request on the container's stderr.
    #[serde(default)]
    pub http_access_log: bool,
    /// What the server keeps of idle and slow connections.
    #[serde(default)]
    pub http_connections: HttpConnections,
}

/// The HTTP server's hold on connections that are not serving a request: idle keep-alive
/// ones, and ones whose request head is still arriving (or never will).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpConnections {
    /// A request head must be complete this long after its first byte.
    pub header_timeout: Duration,
    /// A connection with no request in flight is closed after this long without one.
    pub idle_timeout: Duration,
    /// Open connections at most; at the bound the one waiting longest for a request goes.
    pub max_connections: usize,
}

impl Default for HttpConnections {
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HTTP_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_HTTP_IDLE_TIMEOUT,
            max_connections: DEFAULT_HTTP_MAX_CONNECTIONS,
        }
    }
}

fn default_http_timeout() -> Duration {
    DEFAULT_HTTP_TIMEOUT
}

fn default_http() -> SocketAddr {
    DEFAULT_HTTP
}

/// `:PORT` (every address), `PORT`, `ADDRESS:PORT`, `[IPv6]:PORT`.
pub fn parse_http_addr(value: &str) -> Result<SocketAddr, String> {
    let v = value.trim();
    let port = v.strip_prefix(':').unwrap_or(v);
    if let Ok(p) = port.parse::<u16>() {
        if p > 0 {
            return Ok(SocketAddr::new(DEFAULT_HTTP.ip(), p));
        }
    }
    match v.parse::<SocketAddr>() {
        Ok(a) if a.port() > 0 => Ok(a),
        _ => Err(format!("{} is not :PORT or ADDRESS:PORT (a port 1-65535)", quote(v))),
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            preopens: Preopens::default(),
            timeout: None,
            egress: Egress::default(),
            listen: Vec::new(),
            bind_undeclared: true,
            http: DEFAULT_HTTP,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            http_max_concurrency: None,
            http_max_concurrency_cap: None,
            http_access_log: false,
            http_connections: HttpConnections::default(),
        }
    }
}

impl Policy {
    /// Handlers that may run at once on a node with `cores` cores.
    pub fn http_concurrency(&self, cores: usize) -> usize {
        let default = cores.max(1) * HTTP_CONCURRENCY_PER_CORE;
        let default = self.http_max_concurrency_cap.map_or(default, |cap| default.min(cap));
        self.http_max_concurrency.unwrap_or(default)
    }

    /// None when a component may bind `addr`, else why not. Port 0 (an ephemeral port, also
    /// the implicit bind of a connect) is always allowed: it is not listening on anything
    /// chosen.
    pub fn bind_denied(&self, addr: &SocketAddr) -> Option<String> {
        if self.bind_undeclared || addr.port() == 0 || self.listen.iter().any(|l| l.covers(addr)) {
            return None;
        }
        Some(format!("not declared in {LISTEN} (the operator's listen.bind_undeclared is false)"))
    }

    /// The policy for a container: `config` (None: no operator file) read from
    /// `config_source`, narrowed by the spec's `annotations`.
    pub fn new(
        config: Option<&OperatorConfig>,
        config_source: &str,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Self, PolicyError> {
        for key in annotations.keys().filter(|k| k.starts_with(PREFIX)) {
            if !KNOWN.contains(&key.as_str()) {
                return Err(PolicyError::Annotation {
                    key: key.clone(),
                    value: annotations[key].clone(),
                    message: format!("unknown wasmbox annotation (known: {})", KNOWN.join(", ")),
                });
            }
        }
        let bad = |key: &str, message: String| PolicyError::Annotation {
            key: key.to_string(),
            value: annotations.get(key).cloned().unwrap_or_default(),
            message,
        };
        let config_err = |message: String| PolicyError::Config {
            source_name: config_source.to_string(),
            message,
        };
        let default = OperatorConfig::default();
        let config = config.unwrap_or(&default);

        let preopens = match annotations.get(PREOPENS) {
            None => Preopens::Root,
            Some(v) => parse_preopens(v).map_err(|m| bad(PREOPENS, m))?,
        };

        // A duration of the file, its key in the error.
        let config_duration = |value: &Option<String>, key: &str| {
            value
                .as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|m| config_err(format!("{key}: {m}")))
        };
        let max = config_duration(&config.limits.max_timeout, "limits.max_timeout")?;
        let default_timeout = config_duration(&config.limits.default_timeout, "limits.default_timeout")?;
        let timeout = match annotations.get(TIMEOUT) {
            Some(v) => {
                let t = parse_duration(v).map_err(|m| bad(TIMEOUT, m))?;
                if let Some(max) = max.filter(|m| t > *m) {
                    return Err(bad(
                        TIMEOUT,
                        format!("longer than limits.max_timeout ({}) in {config_source}", show_duration(max)),
                    ));
                }
                Some(t)
            }
            None => match (default_timeout, max) {
                (Some(d), Some(m)) => Some(d.min(m)),
                (d, m) => d.or(m),
            },
        };

        let mut egress = Egress::default();
        if config.egress.default == Default_::Deny {
            let rules = parse_rules(&config.egress.allow).map_err(config_err)?;
            egress.layers.push(EgressLayer {
                source: format!("{config_source} (egress.default = \"deny\")"),
                rules,
            });
        }
        if let Some(v) = annotations.get(EGRESS) {
            let list: Vec<String> = v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
            let rules = if v.trim() == "none" { Vec::new() } else { parse_rules(&list).map_err(|m| bad(EGRESS, m))? };
            egress.layers.push(EgressLayer {
                source: format!("annotation {EGRESS}"),
                rules,
            });
        }
        let listen: Vec<Listen> = match annotations.get(LISTEN) {
            None => Vec::new(),
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|l| Listen::parse(l).map_err(|m| bad(LISTEN, m)))
                .collect::<Result<_, _>>()?,
        };
        if let Some(max) = config.listen.max.filter(|m| listen.len() > *m) {
            return Err(bad(
                LISTEN,
                format!("{} sockets, more than listen.max ({max}) in {config_source}", listen.len()),
            ));
        }
        let http_config = &config.http;
        let http = match (annotations.get(HTTP), &http_config.address) {
            (Some(v), _) => parse_http_addr(v).map_err(|m| bad(HTTP, m))?,
            (None, Some(v)) => parse_http_addr(v).map_err(|m| config_err(format!("http.address: {m}")))?,
            (None, None) => DEFAULT_HTTP,
        };
        let max_http_timeout = config_duration(&http_config.max_timeout, "http.max_timeout")?;
        let http_timeout = match annotations.get(HTTP_TIMEOUT) {
            Some(v) => {
                let t = parse_duration(v).map_err(|m| bad(HTTP_TIMEOUT, m))?;
                if let Some(max) = max_http_timeout.filter(|m| t > *m) {
                    return Err(bad(
                        HTTP_TIMEOUT,
                        format!("longer than http.max_timeout ({}) in {config_source}", show_duration(max)),
                    ));
                }
                t
            }
            None => {
                let t = config_duration(&http_config.timeout, "http.timeout")?.unwrap_or(DEFAULT_HTTP_TIMEOUT);
                max_http_timeout.map_or(t, |m| t.min(m))
            }
        };
        if http_config.max_concurrency == Some(0) {
            return Err(config_err("http.max_concurrency: not a whole number above 0".into()));
        }
        // A count of an annotation: a whole number above 0, at most the file's `cap_key`.
        let count = |annotation: &str, cap_key: &str, cap: Option<usize>| -> Result<Option<usize>, PolicyError> {
            let Some(v) = annotations.get(annotation) else { return Ok(None) };
            let n = v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad(annotation, "not a whole number above 0".into()))?;
            if let Some(max) = cap.filter(|m| n > *m) {
                return Err(bad(annotation, format!("more than {cap_key} ({max}) in {config_source}")));
            }
            Ok(Some(n))
        };
        let http_max_concurrency = count(HTTP_MAX_CONCURRENCY, "http.max_concurrency", http_config.max_concurrency)?;
        let http_access_log = match annotations.get(HTTP_ACCESS_LOG).map(|v| v.trim()) {
            None => http_config.access_log,
            Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(bad(HTTP_ACCESS_LOG, "true or false".into())),
        };
        // A timeout of the annotation, else the file's, else the default.
        let timeout_of = |annotation: &str, key: &str, configured: &Option<String>, default: Duration| {
            match annotations.get(annotation) {
                Some(v) => parse_duration(v).map_err(|m| bad(annotation, m)),
                None => Ok(config_duration(configured, key)?.unwrap_or(default)),
            }
        };
        let header_timeout =
            timeout_of(HTTP_HEADER_TIMEOUT, "http.header_timeout", &http_config.header_timeout, DEFAULT_HTTP_HEADER_TIMEOUT)?;
        let idle_timeout =
            timeout_of(HTTP_IDLE_TIMEOUT, "http.idle_timeout", &http_config.idle_timeout, DEFAULT_HTTP_IDLE_TIMEOUT)?;
        if http_config.max_connections == Some(0) {
            return Err(config_err("http.max_connections: not a whole number above 0".into()));
        }
        let max_connections = count(HTTP_MAX_CONNECTIONS, "http.max_connections", http_config.max_connections)?
            .or(http_config.max_connections)
            .unwrap_or(DEFAULT_HTTP_MAX_CONNECTIONS);
        Ok(Self {
            preopens,
            timeout,
            egress,
            listen,
            bind_undeclared: config.listen.bind_undeclared,
            http,
            http_timeout,
            http_max_concurrency,
            http_max_concurrency_cap: http_config.max_concurrency,
            http_access_log,
            http_connections: HttpConnections {
                header_timeout,
                idle_timeout,
                max_connections,
            },
        })
    }
}

fn parse_rules(list: &[String]) -> Result<Vec<EgressRule>, String> {
    list.iter()
        .map(|r| EgressRule::parse(r).map_err(|m| format!("{}: {m}", quote(r))))
        .collect()
}

/// `none`, or a comma-separated list of absolute paths, each optionally `:ro`.
fn parse_preopens(value: &str) -> Result<Preopens, String> {
    if value.trim() == "none" {
        return Ok(Preopens::None);
    }
    let mut list: Vec<Preopen> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (path, read_only) = match item.rsplit_once(':') {
            Some((p, "ro")) => (p, true),
            Some((p, "rw")) => (p, false),
            Some((_, opt)) => return Err(format!("{}: unknown option {} (ro or rw)", quote(item), quote(opt))),
            None => (item, false),
        };
        if !path.starts_with('/') {
            return Err(format!("{} is not an absolute path", quote(path)));
        }
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
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

/// `500ms`, `30s`, `5m`, `2h`, or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("{} is not a duration (e.g. 500ms, 30s, 5m, 2h)", quote(s)))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("{} is not a duration (e.g. 500ms, 30s, 5m, 2h)", quote(s))),
    };
    if d.is_zero() {
        return Err("a timeout must be longer than zero".into());
    }
    Ok(d)
}

fn show_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_are_what_runc_allows() {
        let p = Policy::new(None, "none", &ann(&[("io.kubernetes.cri.sandbox-id", "x")])).unwrap();
        assert_eq!(p, Policy::default());
        assert_eq!(p.preopens, Preopens::Root);
        assert!(p.egress.unrestricted() && p.timeout.is_none());
    }

    #[test]
    fn unknown_and_bad_annotations_are_named() {
        let e = Policy::new(None, "f", &ann(&[("wasmbox.dev/preopen", "/data")])).unwrap_err().to_string();
        assert!(e.contains("wasmbox.dev/preopen") && e.contains("unknown wasmbox annotation") && e.contains(PREOPENS), "{e}");
        let e = Policy::new(None, "f", &ann(&[(TIMEOUT, "soon")])).unwrap_err().to_string();
        assert!(e.contains("wasmbox.dev/timeout=\"soon\"") && e.contains("e.g. 500ms"), "{e}");
        let e = Policy::new(None, "f", &ann(&[(PREOPENS, "data")])).unwrap_err().to_string();
        assert!(e.contains("not an absolute path"), "{e}");
        let e = Policy::new(None, "f", &ann(&[(PREOPENS, "/a/../etc")])).unwrap_err().to_string();
        assert!(e.contains("\"..\""), "{e}");
        let e = Policy::new(None, "f", &ann(&[(EGRESS, "10.0.0.0/33:80")])).unwrap_err().to_string();
        assert!(e.contains("prefix length"), "{e}");
        let e = Policy::new(None, "f", &ann(&[(EGRESS, "db:http")])).unwrap_err().to_string();
        assert!(e.contains("is not a port"), "{e}");
    }

    #[test]
    fn preopens_narrow_the_tree() {
        let p = Policy::new(None, "f", &ann(&[(PREOPENS, "/data:ro, /tmp/, /./x//y")])).unwrap();
        assert_eq!(
            p.preopens,
            Preopens::Only(vec![
                Preopen { path: "/data".into(), read_only: true },
                Preopen { path: "/tmp".into(), read_only: false },
                Preopen { path: "/x/y".into(), read_only: false },
            ])
        );
        assert_eq!(Policy::new(None, "f", &ann(&[(PREOPENS, "none")])).unwrap().preopens, Preopens::None);
        assert!(Policy::new(None, "f", &ann(&[(PREOPENS, "/a,/a")])).is_err());
        assert!(Policy::new(None, "f", &ann(&[(PREOPENS, "/a:rx")])).is_err());
    }

    #[test]
    fn timeouts_are_capped_by_the_operator() {
        let config = OperatorConfig::parse("[limits]\nmax_timeout = \"1m\"\ndefault_timeout = \"2m\"\n", "/etc/wasmbox/config.toml").unwrap();
        let p = Policy::new(Some(&config), "/etc/wasmbox/config.toml", &ann(&[(TIMEOUT, "30s")])).unwrap();
        assert_eq!(p.timeout, Some(Duration::from_secs(30)));
        let e = Policy::new(Some(&config), "/etc/wasmbox/config.toml", &ann(&[(TIMEOUT, "2m")])).unwrap_err().to_string();
        assert!(e.contains("limits.max_timeout (60s) in /etc/wasmbox/config.toml"), "{e}");
        // The default never exceeds the cap.
        let p = Policy::new(Some(&config), "c", &ann(&[])).unwrap();
        assert_eq!(p.timeout, Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("0s").is_err() && parse_duration("-1s").is_err());
    }

    #[test]
    fn config_errors_name_the_file_and_key() {
        let e = OperatorConfig::parse("[egress]\ndefualt = \"deny\"\n", "/etc/wasmbox/strict.toml").unwrap_err().to_string();
        assert!(e.starts_with("/etc/wasmbox/strict.toml:") && e.contains("defualt") && e.contains("default"), "{e}");
        let e = OperatorConfig::parse("[egress]\ndefault = \"block\"\n", "f.toml").unwrap_err().to_string();
        assert!(e.contains("block") && e.contains("allow") && e.contains("deny"), "{e}");
        let e = OperatorConfig::parse("[egress]\ndefault = \"deny\"\nallow = [\"nope\"]\n", "f.toml").unwrap_err().to_string();
        assert!(e.contains("egress.allow[0]"), "{e}");
        let e = OperatorConfig::parse("[limits]\nmax_timeout = \"forever\"\n", "f.toml").unwrap_err().to_string();
        assert!(e.contains("limits.max_timeout"), "{e}");
        assert_eq!(OperatorConfig::parse("", "f").unwrap(), OperatorConfig::default());
    }

    #[test]
    fn http_connection_limits_from_file_and_annotations() {
        let p = Policy::new(None, "f", &ann(&[])).unwrap();
        assert_eq!(p.http_connections, HttpConnections::default());
        let config = OperatorConfig::parse(
            "[http]\nheader_timeout = \"5s\"\nidle_timeout = \"10s\"\nmax_connections = 100\n",
            "ops.toml",
        )
        .unwrap();
        let p = Policy::new(Some(&config), "ops.toml", &ann(&[])).unwrap();
        assert_eq!(
            p.http_connections,
            HttpConnections { header_timeout: Duration::from_secs(5), idle_timeout: Duration::from_secs(10), max_connections: 100 }
        );
        let p = Policy::new(
            Some(&config),
            "ops.toml",
            &ann(&[(HTTP_HEADER_TIMEOUT, "2s"), (HTTP_IDLE_TIMEOUT, "500ms"), (HTTP_MAX_CONNECTIONS, "50")]),
        )
        .unwrap();
        assert_eq!(
            p.http_connections,
            HttpConnections { header_timeout: Duration::from_secs(2), idle_timeout: Duration::from_millis(500), max_connections: 50 }
        );
        let e = Policy::new(Some(&config), "ops.toml", &ann(&[(HTTP_MAX_CONNECTIONS, "101")])).unwrap_err().to_string();
        assert!(e.contains("more than http.max_connections (100) in ops.toml"), "{e}");
        let e = Policy::new(None, "f", &ann(&[(HTTP_MAX_CONNECTIONS, "0")])).unwrap_err().to_string();
        assert!(e.contains("not a whole number above 0"), "{e}");
        assert!(Policy::new(None, "f", &ann(&[(HTTP_IDLE_TIMEOUT, "soon")])).is_err());
    }

    #[test]
    fn egress_layers_only_narrow() {
        let names = BTreeMap::from([("db.default.svc".to_string(), vec!["10.96.0.7".parse().unwrap()])]);
        // The pod's list alone.
        let p = Policy::new(None, "f", &ann(&[(EGRESS, "10.0.0.0/8:5432, db.default.svc:5432, *:443")])).unwrap();
        assert_eq!(p.egress.names(), vec!["db.default.svc".to_string()]);
        assert_eq!(p.egress.check(&addr("10.1.2.3:5432"), &names), None);
        assert_eq!(p.egress.check(&addr("10.96.0.7:5432"), &names), None);
        assert_eq!(p.egress.check(&addr("93.184.216.34:443"), &names), None);
        assert_eq!(p.egress.check(&addr("93.184.216.34:80"), &names), Some("annotation wasmbox.dev/egress"));
        assert_eq!(p.egress.check(&addr("[::ffff:10.1.2.3]:5432"), &names), None, "IPv4-mapped IPv6");

        // The operator denies by default and allows the cluster's network: the pod cannot
        // widen that with its own rules.
        let config = OperatorConfig::parse("[egress]\ndefault = \"deny\"\nallow = [\"10.0.0.0/8:*\"]\n", "strict.toml").unwrap();
        let p = Policy::new(Some(&config), "strict.toml", &ann(&[(EGRESS, "*:443")])).unwrap();
        assert_eq!(p.egress.check(&addr("10.0.0.1:443"), &names), None);
        assert_eq!(
            p.egress.check(&addr("93.184.216.34:443"), &names),
            Some("strict.toml (egress.default = \"deny\")")
        );
        let p = Policy::new(Some(&config), "strict.toml", &ann(&[])).unwrap();
        assert!(!p.egress.denies_all());
        let p = Policy::new(None, "f", &ann(&[(EGRESS, "none")])).unwrap();
        assert!(p.egress.denies_all());
        assert_eq!(EgressRule::parse("[fd00::/8]:443").unwrap().port, Some(443));
    }

    #[test]
    fn url_rules_bind_http_requests_to_their_scheme() {
        let names = BTreeMap::from([("api.example.com".to_string(), vec!["93.184.216.34".parse().unwrap()])]);
        let rule = EgressRule::parse("https://api.example.com").unwrap();
        assert_eq!((rule.port, rule.scheme.as_deref()), (Some(443), Some("https")));
        assert_eq!(EgressRule::parse("http://10.0.0.0/8:8080/").unwrap().port, Some(8080));
        assert_eq!(EgressRule::parse("https://[fd00::/8]").unwrap().port, Some(443));
        assert_eq!(EgressRule::parse("HTTPS://*").unwrap().host, Host::Any);
        for bad in ["ftp://x", "https://api.example.com/v1", "https://x?y", "https://:443"] {
            assert!(EgressRule::parse(bad).is_err(), "{bad}");
        }

        let p = Policy::new(None, "f", &ann(&[(EGRESS, "https://api.example.com, http://127.0.0.1:9000, 10.0.0.0/8:*")])).unwrap();
        let e = &p.egress;
        // By name, whatever the name resolves to now; only with the rule's scheme and port.
        assert_eq!(e.check_request("https", "api.example.com", &addr("198.51.100.1:443"), &names), None);
        assert_eq!(e.check_request("https", "API.example.com", &addr("198.51.100.1:443"), &names), None);
        assert!(e.check_request("http", "api.example.com", &addr("198.51.100.1:443"), &names).is_some());
        assert!(e.check_request("https", "api.example.com", &addr("198.51.100.1:8443"), &names).is_some());
        assert!(e.check_request("https", "evil.example.com", &addr("198.51.100.1:443"), &names).is_some());
        // An IP literal the rule's name resolved to.
        assert_eq!(e.check_request("https", "93.184.216.34", &addr("93.184.216.34:443"), &names), None);
        assert_eq!(e.check_request("http", "127.0.0.1", &addr("127.0.0.1:9000"), &names), None);
        assert!(e.check_request("https", "127.0.0.1", &addr("127.0.0.1:9000"), &names).is_some());
        // A name allowed only by the address it resolves to: the connection goes there.
        assert_eq!(e.check_request("http", "db.internal", &addr("10.1.2.3:80"), &names), None);
        assert!(e.check_request("http", "db.internal", &addr("192.0.2.1:80"), &names).is_some());
        // Sockets: a URL rule allows its host and port to any socket.
        assert_eq!(e.check(&addr("127.0.0.1:9000"), &names), None);
        assert_eq!(e.check(&addr("93.184.216.34:443"), &names), None);
    }

    #[test]
    fn the_operator_sets_containers_per_shim() {
        let config = OperatorConfig::parse("[shim]\ncontainers_per_shim = 4\n", "s.toml").unwrap();
        assert_eq!(config.shim.containers_per_shim, Some(4));
        let e = OperatorConfig::parse("[shim]\ncontainers_per_shim = 0\n", "s.toml").unwrap_err().to_string();
        assert!(e.contains("shim.containers_per_shim = 0") && e.contains("s.toml"), "{e}");
        assert!(OperatorConfig::parse("[shim]\nper_shim = 4\n", "s.toml").is_err());
    }

    #[test]
    fn the_operator_sets_http_defaults_and_caps() {
        let config = OperatorConfig::parse(
            "[http]\naddress = \":9090\"\ntimeout = \"2m\"\nmax_timeout = \"90s\"\nmax_concurrency = 8\naccess_log = true\n",
            "h.toml",
        )
        .unwrap();
        let p = Policy::new(Some(&config), "h.toml", &ann(&[])).unwrap();
        assert_eq!(p.http, addr("0.0.0.0:9090"));
        assert_eq!(p.http_timeout, Duration::from_secs(90), "the default within the cap");
        assert_eq!(p.http_concurrency(4), 8, "the per-core default within the cap");
        assert!(p.http_access_log);
        let p = Policy::new(
            Some(&config),
            "h.toml",
            &ann(&[(HTTP, ":8080"), (HTTP_TIMEOUT, "5s"), (HTTP_MAX_CONCURRENCY, "2"), (HTTP_ACCESS_LOG, "false")]),
        )
        .unwrap();
        assert_eq!((p.http, p.http_timeout, p.http_concurrency(4), p.http_access_log), (addr("0.0.0.0:8080"), Duration::from_secs(5), 2, false));
        let e = Policy::new(Some(&config), "h.toml", &ann(&[(HTTP_TIMEOUT, "5m")])).unwrap_err().to_string();
        assert!(e.contains("http.max_timeout (90s) in h.toml"), "{e}");
        let e = Policy::new(Some(&config), "h.toml", &ann(&[(HTTP_MAX_CONCURRENCY, "9")])).unwrap_err().to_string();
        assert!(e.contains("http.max_concurrency (8) in h.toml"), "{e}");
        // Without a file: 60 s, 16 per core.
        let p = Policy::new(None, "f", &ann(&[])).unwrap();
        assert_eq!((p.http, p.http_timeout, p.http_concurrency(2)), (DEFAULT_HTTP, DEFAULT_HTTP_TIMEOUT, 32));
        let bad = OperatorConfig::parse("[http]\ntimeout = \"soon\"\n", "b.toml").unwrap();
        let e = Policy::new(Some(&bad), "b.toml", &ann(&[])).unwrap_err().to_string();
        assert!(e.contains("b.toml") && e.contains("http.timeout"), "{e}");
    }

    #[test]
    fn http_addresses() {
        assert_eq!(parse_http_addr(":8081").unwrap(), "0.0.0.0:8081".parse().unwrap());
        assert_eq!(parse_http_addr("9000").unwrap(), "0.0.0.0:9000".parse().unwrap());
        assert_eq!(parse_http_addr("127.0.0.1:80").unwrap(), "127.0.0.1:80".parse().unwrap());
        assert_eq!(parse_http_addr("[::1]:80").unwrap(), "[::1]:80".parse().unwrap());
        assert!(parse_http_addr(":0").is_err() && parse_http_addr("x").is_err());
    }

    #[test]
    fn listeners_are_declared_and_binds_follow_the_operator() {
        let p = Policy::new(None, "f", &ann(&[(LISTEN, "tcp:8080, tcp:127.0.0.1:9000,unix:/run/app.sock")])).unwrap();
        assert_eq!(
            p.listen,
            vec![
                Listen::Tcp(addr("0.0.0.0:8080")),
                Listen::Tcp(addr("127.0.0.1:9000")),
                Listen::Unix("/run/app.sock".into()),
            ]
        );
        // As runc: any port, unless the operator says otherwise.
        assert_eq!(p.bind_denied(&addr("0.0.0.0:5000")), None);
        let strict = OperatorConfig::parse("[listen]\nbind_undeclared = false\nmax = 2\n", "s.toml").unwrap();
        let p = Policy::new(Some(&strict), "s.toml", &ann(&[(LISTEN, "tcp:8080,tcp:127.0.0.1:9000")])).unwrap();
        assert_eq!(p.bind_denied(&addr("0.0.0.0:8080")), None);
        assert_eq!(p.bind_denied(&addr("10.1.2.3:8080")), None, "tcp:8080 is every address");
        assert_eq!(p.bind_denied(&addr("127.0.0.1:9000")), None);
        assert!(p.bind_denied(&addr("0.0.0.0:9000")).is_some(), "9000 only on 127.0.0.1");
        assert!(p.bind_denied(&addr("0.0.0.0:5000")).unwrap().contains("bind_undeclared"));
        assert_eq!(p.bind_denied(&addr("0.0.0.0:0")), None, "ephemeral ports");
        let e = Policy::new(Some(&strict), "s.toml", &ann(&[(LISTEN, "tcp:1,tcp:2,tcp:3")])).unwrap_err().to_string();
        assert!(e.contains("more than listen.max (2) in s.toml"), "{e}");
        for bad in ["8080", "tcp:http", "tcp:0", "udp:53", "unix:run/x", "tcp:1.2.3.4"] {
            assert!(Policy::new(None, "f", &ann(&[(LISTEN, bad)])).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_policy_travels_as_json() {
        let p = Policy::new(None, "f", &ann(&[(PREOPENS, "/data:ro"), (TIMEOUT, "3s"), (EGRESS, "db:5432")])).unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), p);
    }
}
