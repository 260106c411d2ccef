//! A private OCI registry for round-trip tests: Debian's `docker-registry` (distribution 2.8)
//! on 127.0.0.1 with a free port, no auth and storage in its own temp dir. Dropping it kills the
//! registry and removes the storage, whatever state the test left.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::poll::wait_until;
use crate::process::wait_with_deadline;

/// How long the registry may take to answer `GET /v2/`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts with a fresh port, in case another process took the port we picked meanwhile.
const ATTEMPTS: usize = 3;

/// The registry binary: `WASMBOX_REGISTRY` (`make test` sets it to the copy `make registry`
/// unpacks), else `/usr/bin/docker-registry`.
pub fn registry_binary() -> PathBuf {
    std::env::var_os("WASMBOX_REGISTRY")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/docker-registry"))
}

/// One running registry.
pub struct Registry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
}

impl Registry {
    pub fn start() -> Result<Self> {
        let binary = registry_binary();
        if !binary.is_file() {
            bail!(
                "{} is missing: run `make registry` (Debian's docker-registry, unpacked privately) or set WASMBOX_REGISTRY",
                binary.display()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("wbx-registry-{}-", std::process::id()))
            .tempdir_in("/tmp")
            .context("creating the registry's temp dir")?;
        let mut registry = Self {
            child: None,
            dir,
            port: 0,
        };
        let mut last_error = None;
        for _ in 0..ATTEMPTS {
            registry.port = free_port()?;
            match registry.launch(&binary) {
                Ok(()) => return Ok(registry),
                Err(e) => {
                    registry.stop();
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("registry did not start")))
    }

    /// `127.0.0.1:PORT`, the host part of image references pushed here.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT/<repository>`.
    pub fn reference(&self, repository: &str) -> String {
        format!("{}/{repository}", self.host())
    }

    /// The registry's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    fn launch(&mut self, binary: &Path) -> Result<()> {
        let storage = self.dir.path().join("storage");
        std::fs::create_dir_all(&storage)?;
        let config = self.dir.path().join("config.yml");
        std::fs::write(&config, config_yaml(&storage, self.port))?;
        let log = std::fs::File::create(self.log_path())?;
        let mut cmd = Command::new(binary);
        cmd.arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // If the test process dies without running Drop, take the registry down with it.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.child = Some(
            cmd.spawn()
                .with_context(|| format!("starting {}", binary.display()))?,
        );
        let port = self.port;
        let child = self.child.as_mut().expect("just spawned");
        let mut exited = None;
        let ready = wait_until("the registry to answer GET /v2/", READY_TIMEOUT, || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return Some(false);
            }
            v2_ok(port).then_some(true)
        });
        match (ready, exited) {
            (Ok(true), _) => Ok(()),
            (_, Some(status)) => bail!("docker-registry exited ({status}); log:\n{}", self.log()),
            (Err(e), _) => bail!("{e}; docker-registry log:\n{}", self.log()),
            (Ok(false), None) => unreachable!("false is only returned on exit"),
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = wait_with_deadline(&mut child, Duration::from_secs(10));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- docker-registry log ---\n{}\n--- end ---", self.log());
        }
        self.stop();
    }
}

/// No auth, plain HTTP on loopback only, deletes allowed, storage in our dir.
fn config_yaml(storage: &Path, port: u16) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: warn\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n",
        storage.display()
    )
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// True when `GET /v2/` answers 200 (the distribution API's version check).
fn v2_ok(port: u16) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(
            &(Ipv4Addr::LOCALHOST, port).into(),
            Duration::from_secs(2),
        )?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.") && &head[9..12] == b"200")
    };
    attempt().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_listens_on_loopback_without_auth() {
        let text = config_yaml(Path::new("/tmp/x/storage"), 5123);
        assert!(text.contains("addr: 127.0.0.1:5123"));
        assert!(text.contains("rootdirectory: /tmp/x/storage"));
        assert!(!text.contains("auth"));
    }
}
