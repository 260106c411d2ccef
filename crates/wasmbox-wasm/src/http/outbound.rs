//! Outbound `wasi:http` requests of a served component (`wasi:http/outgoing-handler`), under
//! the container's egress policy ([`crate::policy::Egress::check_request`]).
//!
//! Wasmtime's own sender resolves and connects by itself and trusts only the webpki roots;
//! this one resolves the request's host in the container's network namespace, keeps the
//! addresses the policy allows and connects only to those (so what was checked is what is
//! reached), and verifies `https` servers against the container's CA bundle (its
//! `/etc/ssl/certs/...`, as a runc container's libraries would), else the webpki roots. A
//! denied request fails with `wasi:http`'s `HTTP-request-denied` and is logged with its
//! destination and the rule layer that denied it.

use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::policy::network::Network;

/// Used when the guest sets no timeout of its own (Wasmtime's default is 600 s).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The hooks of every request's `wasi:http` context: cheap to clone, shared state behind.
#[derive(Clone)]
pub struct Outbound {
    shared: Arc<Shared>,
}

struct Shared {
    /// The egress rules, their host names resolved when serving started.
    network: Network,
    /// Made at the first `https` request: most handlers never call out.
    tls: OnceLock<Arc<rustls::ClientConfig>>,
}

impl Outbound {
    pub fn new(network: Network) -> Self {
        Self {
            shared: Arc::new(Shared {
                network,
                tls: OnceLock::new(),
            }),
        }
    }
}

/// What the connection of a request may be: plain TCP or TLS over it.
trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

type Sent = (hyper::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>);

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: hyper::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Result<Sent, Error>> + Send> {
        let shared = self.shared.clone();
        Box::new(async move { shared.send(request, options).await })
    }
}

impl Shared {
    async fn send(&self, mut request: hyper::Request<WasiBody>, options: Option<RequestOptions>) -> Result<Sent, Error> {
        let uri = request.uri();
        let https = uri.scheme_str() == Some("https");
        let scheme = if https { "https" } else { "http" };
        let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?.clone();
        // An IPv6 literal keeps its brackets in the authority, not in the host.
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let connect_timeout = options.and_then(|o| o.connect_timeout).unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let first_byte_timeout = options.and_then(|o| o.first_byte_timeout);

        let resolved: Vec<SocketAddr> = match tokio::time::timeout(connect_timeout, tokio::net::lookup_host((host.as_str(), port))).await {
            Err(_) => return Err(Error::DnsTimeout),
            Ok(Err(e)) => {
                log::info!("outbound {scheme}://{authority}: {e}");
                return Err(Error::DnsError {
                    rcode: Some(e.to_string()),
                    info_code: None,
                });
            }
            Ok(Ok(addrs)) => addrs.collect(),
        };
        let mut denied_by = None;
        let allowed: Vec<SocketAddr> = resolved
            .iter()
            .filter(|a| match self.network.policy().egress.check_request(scheme, &host, a, self.network.names()) {
                None => true,
                Some(source) => {
                    denied_by.get_or_insert(source);
                    false
                }
            })
            .copied()
            .collect();
        if allowed.is_empty() {
            let message = format!(
                "outbound request to {scheme}://{authority} denied by {}",
                denied_by.unwrap_or("the egress policy (the host resolved to no address)")
            );
            log::warn!("{message}");
            let _ = writeln!(std::io::stderr(), "wasmbox: {message}");
            return Err(Error::HttpRequestDenied);
        }

        // The first allowed address that accepts.
        let tcp = match tokio::time::timeout(connect_timeout, TcpStream::connect(allowed.as_slice())).await {
            Err(_) => return Err(Error::ConnectionTimeout),
            Ok(Err(e)) => {
                log::debug!("outbound {scheme}://{authority}: {e}");
                return Err(Error::Connect(e));
            }
            Ok(Ok(s)) => s,
        };
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = if https {
            let name = server_name(&host)?;
            let tls = tokio_rustls::TlsConnector::from(self.tls_config()?);
            match tokio::time::timeout(connect_timeout, tls.connect(name, tcp)).await {
                Err(_) => return Err(Error::ConnectionTimeout),
                Ok(Err(e)) => {
                    log::info!("outbound {scheme}://{authority}: TLS: {e}");
                    return Err(Error::Tls(e));
                }
                Ok(Ok(s)) => Box::new(s),
            }
        } else {
            Box::new(tcp)
        };
        let (mut sender, connection) = tokio::time::timeout(connect_timeout, hyper::client::conn::http1::handshake(TokioIo::new(stream)))
            .await
            .map_err(|_| Error::ConnectionTimeout)??;
        // The connection runs on its own; its end is what the returned future reports.
        let connection = tokio::spawn(connection);

        // Scheme and authority went into the connection (and the Host header); a request to
        // an origin server carries only the path.
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
        let response = sender.send_request(request);
        let response = match first_byte_timeout {
            Some(t) => tokio::time::timeout(t, response).await.map_err(|_| Error::ConnectionReadTimeout)??,
            None => response.await?,
        };
        let response = response.map(|body| body.map_err(Error::from).boxed_unsync());
        let io = async move {
            match connection.await {
                Ok(r) => r.map_err(Error::from),
                Err(e) => Err(Error::InternalError(Some(e.to_string()))),
            }
        };
        Ok((response, Box::new(io)))
    }

    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        if let Some(c) = self.tls.get() {
            return Ok(c.clone());
        }
        let config = client_config(roots()).map_err(|e| Error::InternalError(Some(format!("TLS configuration: {e}"))))?;
        Ok(self.tls.get_or_init(|| Arc::new(config)).clone())
    }
}

fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, Error> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(rustls::pki_types::ServerName::from(ip));
    }
    rustls::pki_types::ServerName::try_from(host.to_string()).map_err(Error::from)
}

/// The container's CA bundle (the usual paths of Debian, Fedora, Alpine, ..., as OpenSSL
/// looks for them, inside the container's root), else the webpki roots.
fn roots() -> rustls::RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        log::debug!("CA bundle: {e}");
    }
    let mut store = rustls::RootCertStore::empty();
    let (added, ignored) = store.add_parsable_certificates(found.certs);
    if added > 0 {
        log::info!("outbound https: {added} CA certificates of the container ({ignored} unusable)");
        return store;
    }
    log::info!("outbound https: no CA bundle in the container, the webpki roots");
    store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    store
}

fn client_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_are_hosts_or_addresses() {
        assert!(matches!(server_name("api.example.com").unwrap(), rustls::pki_types::ServerName::DnsName(_)));
        assert!(matches!(server_name("::1").unwrap(), rustls::pki_types::ServerName::IpAddress(_)));
        assert!(server_name("not a name").is_err());
    }

    #[test]
    fn roots_are_never_empty() {
        // The build machine's own bundle, or the webpki roots.
        assert!(!roots().is_empty());
    }
}
