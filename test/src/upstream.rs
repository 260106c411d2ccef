//! Upstream servers for the outbound HTTP tests: a served component calls out to them. Each
//! answers every request with `pong <path>` and closes the connection, over plain TCP or over
//! TLS with a certificate from a CA of the test's own ([`TestCa`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

/// How often the accept loop looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);

/// A CA made for one test and a server certificate it signed.
pub struct TestCa {
    /// The CA's certificate, PEM: what a container's CA bundle holds.
    pub ca_pem: String,
    /// A TLS server configuration with the server certificate (for `names`).
    pub server: Arc<rustls::ServerConfig>,
}

impl TestCa {
    /// A CA and a server certificate for `names` (DNS names or IP addresses).
    pub fn new(names: &[&str]) -> Result<Self> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "wasmbox test CA");
        let ca_key = KeyPair::generate()?;
        let ca = ca_params.self_signed(&ca_key)?;
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?.signed_by(&key, &ca, &ca_key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .context("the server certificate")?;
        Ok(Self {
            ca_pem: ca.pem(),
            server: Arc::new(server),
        })
    }
}

/// What the egress tests serve on a namespace's loopback: a plain upstream (allowed by
/// address), a TLS one (allowed by the name `upstream.test`, its certificate from a CA of the
/// test's), and a port nothing allows; and the image files that reach and trust them.
pub struct EgressUpstreams {
    pub ca: TestCa,
    pub plain: Upstream,
    pub tls: Upstream,
    pub other: TcpListener,
}

impl EgressUpstreams {
    pub fn start(ns: &crate::netns::NetNs) -> Result<Self> {
        let ca = TestCa::new(&["upstream.test"])?;
        let plain = Upstream::start(ns.listen_tcp("127.0.0.1:0")?, None)?;
        let tls = Upstream::start(ns.listen_tcp("127.0.0.1:0")?, Some(ca.server.clone()))?;
        let other = ns.listen_tcp("127.0.0.1:0")?;
        Ok(Self { ca, plain, tls, other })
    }

    /// The plain, TLS and unallowed ports.
    pub fn ports(&self) -> Result<(u16, u16, u16)> {
        Ok((self.plain.addr().port(), self.tls.addr().port(), self.other.local_addr()?.port()))
    }

    /// `image` with an /etc/hosts that names `upstream.test` (and `elsewhere.test`, which no
    /// rule names) and the test CA as the container's CA bundle.
    pub fn trusted_by(&self, image: wasmbox_image::ImageBuilder) -> wasmbox_image::ImageBuilder {
        image
            .file("/etc/hosts", b"127.0.0.1 localhost upstream.test\n127.0.0.2 elsewhere.test\n".to_vec(), 0o644)
            .file("/etc/nsswitch.conf", b"hosts: files dns\n".to_vec(), 0o644)
            .file("/etc/ssl/certs/ca-certificates.crt", self.ca.ca_pem.clone().into_bytes(), 0o644)
    }

    /// `ctr run`'s flag allowing exactly the plain upstream by address and the TLS one by name.
    pub fn egress_flag(&self) -> Result<String> {
        let (plain, tls, _) = self.ports()?;
        Ok(format!("--annotation=wasmbox.dev/egress=http://127.0.0.1:{plain},https://upstream.test:{tls}"))
    }
}

/// A server on a listener of the test's (e.g. one bound in a network namespace), until dropped.
pub struct Upstream {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Upstream {
    /// Serves on `listener`, over TLS with `tls`.
    pub fn start(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>) -> Result<Self> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let tls = tls.clone();
                        std::thread::spawn(move || {
                            if let Err(e) = answer(stream, tls) {
                                eprintln!("upstream: {e:#}");
                            }
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        let mut fds = [nix::poll::PollFd::new(listener.as_fd(), nix::poll::PollFlags::POLLIN)];
                        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::try_from(STOP_POLL).unwrap_or(nix::poll::PollTimeout::ZERO));
                    }
                    Err(e) => eprintln!("upstream accept: {e}"),
                }
            }
        });
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(stream: TcpStream, tls: Option<Arc<rustls::ServerConfig>>) -> Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    match tls {
        None => answer_on(stream),
        Some(config) => answer_on(rustls::StreamOwned::new(rustls::ServerConnection::new(config)?, stream)),
    }
}

fn answer_on(stream: impl Read + Write) -> Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).context("the request line")?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    // The headers, up to the empty line (a GET has no body).
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim_end().is_empty() {
            break;
        }
    }
    let body = format!("pong {path}");
    let stream = reader.get_mut();
    write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
    stream.flush()?;
    Ok(())
}
