//! A network namespace of the test's own (`ip netns add`), with loopback up: a container joins
//! it with `ctr run --with-ns network:PATH`, and the test binds listeners in it, so a guest's
//! traffic stays on a loopback that nothing else shares. Deleted again on drop, on every path.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use nix::sched::CloneFlags;

use crate::ids;
use crate::process::run_captured;

const IP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where `ip netns` keeps its namespaces (bind mounts of `/proc/<pid>/ns/net`).
const NETNS_DIR: &str = "/run/netns";

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates `wbx-<test>-<pid>-<n>` with its loopback up (and nothing else).
    pub fn create(test: &str) -> Result<Self> {
        let ns = Self {
            name: ids::container_id(test),
        };
        ip(&["netns", "add", &ns.name])?;
        // From here on, drop deletes it, also when bringing lo up fails.
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace file a process or container joins.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.name)
    }

    /// `ctr run` flag that runs the container in this namespace.
    pub fn ctr_flag(&self) -> String {
        format!("--with-ns=network:{}", self.path().display())
    }

    /// A TCP listener bound to `addr` (e.g. `127.0.0.1:0`) inside this namespace: bound from a
    /// short-lived thread that joined the namespace (setns affects only the calling thread);
    /// the socket stays in the namespace it was made in.
    pub fn listen_tcp(&self, addr: &str) -> Result<TcpListener> {
        let addr: SocketAddr = addr
            .parse()
            .with_context(|| format!("{addr:?} is not IP:PORT"))?;
        self.run_in(|| {
            TcpListener::bind(addr)
                .with_context(|| format!("binding {addr} in netns {}", self.name))
        })
    }

    /// Runs `f` on a thread of its own that joined this namespace: sockets it makes (connects,
    /// binds) stay in the namespace after it returns.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        let path = self.path();
        std::thread::scope(|s| {
            s.spawn(|| -> Result<T> {
                let file = std::fs::File::open(&path)
                    .with_context(|| format!("opening {}", path.display()))?;
                nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
                    .with_context(|| format!("joining {}", path.display()))?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow!("the thread in netns {} panicked", self.name)))
        })
    }

    /// A TCP connection to `addr` made inside this namespace.
    pub fn connect_tcp(&self, addr: &str) -> Result<std::net::TcpStream> {
        self.run_in(|| {
            std::net::TcpStream::connect(addr)
                .with_context(|| format!("connecting to {addr} in netns {}", self.name))
        })
    }

    /// Whether namespace `name` still exists.
    pub fn exists(name: &str) -> bool {
        PathBuf::from(NETNS_DIR).join(name).exists()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "delete", &self.name]) {
            eprintln!("removing network namespace {}: {e:#}", self.name);
        }
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let out = run_captured(Command::new("ip").args(args), None, IP_TIMEOUT)?;
    if !out.status.success() {
        bail!(
            "ip {} failed ({}): {}",
            args.join(" "),
            out.status,
            out.stderr_text()
        );
    }
    Ok(())
}
