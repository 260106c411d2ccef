//! The annotations' names, the defaults they override, and how their values are parsed and
//! quoted in errors.

use std::net::SocketAddr;
use std::time::Duration;

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
pub const HTTP_MAX_INSTANCES: &str = "wasmbox.dev/http-max-instances";
pub const HTTP_INSTANCE_CONCURRENCY: &str = "wasmbox.dev/http-instance-concurrency";
pub const HTTP_INSTANCE_REUSE: &str = "wasmbox.dev/http-instance-reuse";

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
    HTTP_MAX_INSTANCES,
    HTTP_INSTANCE_CONCURRENCY,
    HTTP_INSTANCE_REUSE,
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

/// A WASI 0.3 handler's instance: requests it serves at once, requests before it is dropped,
/// and how long it is kept idle (`wasmtime serve`'s defaults for 0.3).
pub const DEFAULT_HTTP_INSTANCE_CONCURRENCY: usize = 16;
pub const DEFAULT_HTTP_INSTANCE_REUSE: usize = 128;
pub const DEFAULT_HTTP_INSTANCE_IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a `wasi:http/proxy` component is served unless `wasmbox.dev/http` says otherwise.
pub const DEFAULT_HTTP: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 8080);

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
        _ => Err(format!(
            "{} is not :PORT or ADDRESS:PORT (a port 1-65535)",
            quote(v)
        )),
    }
}

/// `500ms`, `30s`, `5m`, `2h`, or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{} is not a duration (e.g. 500ms, 30s, 5m, 2h)", quote(s)))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "{} is not a duration (e.g. 500ms, 30s, 5m, 2h)",
                quote(s)
            ))
        }
    };
    if d.is_zero() {
        return Err("a timeout must be longer than zero".into());
    }
    Ok(d)
}

pub(super) fn show_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

/// For serde: a flag that defaults to true.
pub(super) fn yes() -> bool {
    true
}
