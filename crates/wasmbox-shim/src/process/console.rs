//! Terminals for `terminal: true` processes (`ctr run -t`, `kubectl exec -it`).
//!
//! As with runc: the container's process opens a pty from the container's own devpts
//! (libcontainer does it, for native and wasm processes alike), makes the slave its stdin,
//! stdout and stderr, and sends the master over a unix socket the shim listens on (the
//! console socket). The shim then copies containerd's stdin FIFO to the master and the master
//! to the stdout FIFO, and resizes the master on ResizePty.

use std::fs::File;
use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

use crate::process::stdio::{open_output, StdinForwarder};

/// How long the shim waits for the master after the process was created (it is sent before
/// libcontainer reports the process ready, so this is only a bound for a broken sender).
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

fn io_error(e: nix::Error) -> std::io::Error {
    std::io::Error::from_raw_os_error(e as i32)
}

/// The unix socket a container process sends its pty master to; removed when dropped.
pub struct ConsoleSocket {
    listener: UnixListener,
    dir: PathBuf,
}

impl ConsoleSocket {
    /// Listens in a new private directory under the temp dir: socket paths must stay short.
    pub fn new() -> std::io::Result<Self> {
        let dir = nix::unistd::mkdtemp(&std::env::temp_dir().join("wasmbox-pty-XXXXXX"))
            .map_err(io_error)?;
        match UnixListener::bind(dir.join("console.sock")) {
            Ok(listener) => Ok(Self { listener, dir }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("console.sock")
    }

    /// The master the process sent, once it is created.
    pub fn receive(&self) -> std::io::Result<OwnedFd> {
        self.listener.set_nonblocking(true)?;
        let deadline = Instant::now() + RECEIVE_TIMEOUT;
        let conn = loop {
            match self.listener.accept() {
                Ok((conn, _)) => break conn,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the container process never connected to the console socket",
                        ));
                    }
                    let mut pfd = [nix::poll::PollFd::new(
                        std::os::fd::AsFd::as_fd(&self.listener),
                        nix::poll::PollFlags::POLLIN,
                    )];
                    let timeout = nix::poll::PollTimeout::try_from(left)
                        .unwrap_or(nix::poll::PollTimeout::MAX);
                    match nix::poll::poll(&mut pfd, timeout) {
                        Ok(_) | Err(nix::Error::EINTR) => {}
                        Err(e) => return Err(io_error(e)),
                    }
                }
                Err(e) => return Err(e),
            }
        };
        conn.set_nonblocking(false)?;
        conn.set_read_timeout(Some(RECEIVE_TIMEOUT))?;
        let mut name = [0u8; 64];
        let mut iov = [IoSliceMut::new(&mut name)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(io_error)?;
        let mut fds = Vec::new();
        for c in msg.cmsgs().map_err(io_error)? {
            if let ControlMessageOwned::ScmRights(received) = c {
                // Owned from here on, so every received descriptor is closed.
                fds.extend(
                    received
                        .into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        if fds.len() != 1 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the console socket carried {} descriptors, not one pty master",
                    fds.len()
                ),
            ));
        }
        Ok(fds.remove(0))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A process's terminal: the master, its input forwarder and its output copy.
pub struct Console {
    master: File,
    input: Option<StdinForwarder>,
    /// Set when the output copy has ended (every slave closed).
    output_done: (Mutex<bool>, Condvar),
}

impl Console {
    /// Starts copying `stdin` (a FIFO path, or empty) into the master and the master into
    /// `stdout` (as containerd names it).
    pub fn start(
        master: OwnedFd,
        stdin: &str,
        stdout: &str,
    ) -> std::io::Result<std::sync::Arc<Self>> {
        let master = File::from(master);
        let mut out = open_output(stdout)?;
        let mut reader = master.try_clone()?;
        let input = if stdin.is_empty() {
            None
        } else {
            Some(StdinForwarder::start_into(stdin, master.try_clone()?)?)
        };
        let console = std::sync::Arc::new(Self {
            master,
            input,
            output_done: (Mutex::new(false), Condvar::new()),
        });
        let c = console.clone();
        std::thread::Builder::new()
            .name("wasmbox-pty".into())
            .spawn(move || {
                let mut buf = [0u8; 32 * 1024];
                // EIO once the last slave is closed: the process and its children are gone.
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 || out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let (done, changed) = &c.output_done;
                *done.lock().unwrap_or_else(|p| p.into_inner()) = true;
                changed.notify_all();
            })?;
        Ok(console)
    }

    /// Waits (bounded) until the process's output has been copied out, so an exit is
    /// reported only after the output it wrote (a child still holding the terminal is not
    /// waited for beyond `timeout`).
    pub fn wait_output(&self, timeout: Duration) {
        let (done, changed) = &self.output_done;
        let guard = done.lock().unwrap_or_else(|p| p.into_inner());
        let _ = changed.wait_timeout_while(guard, timeout, |d| !*d);
    }

    /// The terminal's new size (ResizePty).
    pub fn resize(&self, width: u32, height: u32) -> std::io::Result<()> {
        let size = libc::winsize {
            ws_row: height.min(u16::MAX as u32) as u16,
            ws_col: width.min(u16::MAX as u32) as u16,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which outlives the call.
        if unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Ends the input (CloseIO); the output keeps flowing.
    pub fn close_input(&self) {
        if let Some(i) = &self.input {
            i.close();
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.close_input();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process-less round trip: a pty pair, the master sent over the socket as libcontainer
    /// does, copied to a file, resized.
    #[test]
    fn receives_a_master_and_copies_its_output() {
        let socket = ConsoleSocket::new().unwrap();
        let path = socket.path();
        let pty = nix::pty::openpty(None, None).unwrap();
        let sender = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let fds = [pty.master.as_raw_fd()];
        nix::sys::socket::sendmsg::<()>(
            sender.as_raw_fd(),
            &[std::io::IoSlice::new(b"/dev/ptmx")],
            &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        drop(pty.master);
        let master = socket.receive().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let console = Console::start(master, "", &format!("file://{}", out.display())).unwrap();
        console.resize(120, 40).unwrap();
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { libc::ioctl(pty.slave.as_raw_fd(), libc::TIOCGWINSZ, &mut size) },
            0
        );
        assert_eq!((size.ws_col, size.ws_row), (120, 40));
        let mut slave = File::from(pty.slave);
        slave.write_all(b"on the terminal\n").unwrap();
        drop(slave);
        console.wait_output(Duration::from_secs(10));
        // The terminal turns \n into \r\n, as a user's terminal shows it.
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "on the terminal\r\n"
        );
        drop(socket);
        assert!(!path.exists(), "the socket's directory is removed");
    }
}
