//! A client (`ctr run -t`, `ctr task exec -t`) on a pseudo-terminal, as a user at a terminal
//! runs it: `-t` needs ctr's own stdin to be a terminal.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::process::{display_command, wait_with_deadline};

/// A child process whose stdin, stdout and stderr are a new pty's slave; the test holds the
/// master.
pub struct Terminal {
    master: File,
    child: Child,
    what: String,
    /// Everything read from the master so far.
    output: String,
}

impl Terminal {
    /// Starts `cmd` in its own session on a new `cols`x`rows` terminal.
    pub fn spawn(mut cmd: Command, cols: u16, rows: u16) -> Result<Self> {
        let size = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).context("openpty")?;
        let slave = File::from(pty.slave);
        cmd.stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave.try_clone()?));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let what = display_command(&cmd);
        let child = cmd.spawn().with_context(|| format!("spawn {what}"))?;
        // Only the child holds the slave now: reading the master ends (EIO) when it is gone.
        drop(slave);
        let master = File::from(pty.master);
        nix::fcntl::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&master),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )?;
        Ok(Self {
            master,
            child,
            what,
            output: String::new(),
        })
    }

    /// Reads what arrives within `wait`.
    fn read_some(&mut self, wait: Duration) -> Result<Chunk> {
        let mut pfd = [nix::poll::PollFd::new(self.master.as_fd(), nix::poll::PollFlags::POLLIN)];
        let timeout = nix::poll::PollTimeout::try_from(wait).unwrap_or(nix::poll::PollTimeout::MAX);
        match nix::poll::poll(&mut pfd, timeout) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => bail!("poll the terminal of {}: {e}", self.what),
        }
        let mut buf = [0u8; 4096];
        match self.master.read(&mut buf) {
            Ok(0) => Ok(Chunk::Closed),
            Ok(n) => {
                self.output.push_str(&String::from_utf8_lossy(&buf[..n]));
                Ok(Chunk::Data)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(Chunk::Nothing),
            // EIO: every slave is closed.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(Chunk::Closed),
            Err(e) => bail!("read the terminal of {}: {e}", self.what),
        }
    }

    /// Reads until the output after `from` contains `text`; returns the index after it.
    pub fn expect_from(&mut self, from: usize, text: &str, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.output.get(from..).and_then(|s| s.find(text)) {
                return Ok(from + at + text.len());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.read_some(left)? == Chunk::Closed {
                bail!("{:?} did not appear on the terminal of {}; it shows:\n{}", text, self.what, self.output);
            }
        }
    }

    /// Reads until the output contains `text`.
    pub fn expect(&mut self, text: &str, timeout: Duration) -> Result<usize> {
        self.expect_from(0, text, timeout)
    }

    /// Types `text` (a return is `\r`, as a terminal sends it).
    pub fn send(&mut self, text: &str) -> Result<()> {
        self.master
            .write_all(text.as_bytes())
            .with_context(|| format!("write to the terminal of {}", self.what))
    }

    /// Everything the terminal showed so far.
    pub fn output(&self) -> &str {
        &self.output
    }

    /// Waits for the client to exit, reading what it still prints; its exit code.
    pub fn wait(&mut self, timeout: Duration) -> Result<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("{} did not exit within {timeout:?}; the terminal shows:\n{}", self.what, self.output);
            }
            if self.read_some(left.min(Duration::from_millis(100)))? == Chunk::Closed {
                break;
            }
            if self.child.try_wait()?.is_some() {
                // It is gone; take what it wrote last.
                while self.read_some(Duration::ZERO)? == Chunk::Data {}
                break;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match wait_with_deadline(&mut self.child, left) {
            Some(s) => Ok(s.code().unwrap_or(-1)),
            None => bail!("{} closed its terminal but did not exit", self.what),
        }
    }
}

/// What one read of the master found.
#[derive(Debug, PartialEq, Eq)]
enum Chunk {
    Data,
    Nothing,
    Closed,
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
