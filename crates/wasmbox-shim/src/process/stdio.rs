//! The task's standard streams.
//!
//! containerd passes FIFO paths (or `file://` URIs, or nothing). stdout/stderr are opened by
//! the `create` helper and handed to the container as they are. stdin goes through a pipe fed
//! by a shim thread, so CloseIO can end the guest's input even while the client keeps its end.
//!
//! A process's output must reach its reader before its exit is published ([`OutputKeeper`]):
//! containerd's client opens its end of a FIFO asynchronously, and a process that writes a
//! line and exits at once can close the pipe's last descriptor before the reader opened it (the
//! kernel then frees the bytes); containerd 1.7.2 and later also close the readers once the
//! process is deleted, dropping what they had not read yet.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::sync::{Arc, Mutex};

/// Opens a stdout/stderr destination as containerd names it. Empty means /dev/null.
pub fn open_output(uri: &str) -> std::io::Result<File> {
    if uri.is_empty() {
        return OpenOptions::new().write(true).open("/dev/null");
    }
    if let Some(path) = uri.strip_prefix("file://") {
        return OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path);
    }
    if uri.contains("://") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("stdio URI {uri:?} is not supported by wasmbox (use a FIFO or file://)"),
        ));
    }
    let is_fifo = std::fs::metadata(uri).map(|m| m.file_type().is_fifo())?;
    if is_fifo {
        // Read-write: never blocks waiting for a reader, and keeps the FIFO usable for a client
        // that attaches later (as containerd's runc shim does).
        OpenOptions::new().read(true).write(true).open(uri)
    } else {
        OpenOptions::new().append(true).open(uri)
    }
}

/// The shim's own descriptors on a process's output FIFOs, from before it starts until its
/// output is read: the pipe's bytes outlive the process, and its exit is published only once
/// the reader took them ([`Self::drain`]), as containerd's runc shim waits for its copy.
#[derive(Debug, Default)]
pub struct OutputKeeper {
    fifos: Vec<File>,
}

impl OutputKeeper {
    /// Holds each of `uris` that is a FIFO (files and /dev/null need nothing).
    pub fn open(uris: &[&str]) -> Self {
        let mut fifos = Vec::new();
        for uri in uris.iter().filter(|u| !u.is_empty() && !u.contains("://")) {
            if !std::fs::metadata(uri).is_ok_and(|m| m.file_type().is_fifo()) {
                continue;
            }
            // Read-write: never waits for a reader.
            match OpenOptions::new().read(true).write(true).open(uri) {
                Ok(f) => fifos.push(f),
                Err(e) => log::warn!("cannot hold output {uri}: {e}"),
            }
        }
        Self { fifos }
    }

    /// Waits, up to `bound`, until the readers have taken everything in the FIFOs, then lets
    /// them go (the readers see end of file once the process's own descriptors are closed too).
    pub fn drain(self, bound: std::time::Duration) {
        let deadline = std::time::Instant::now() + bound;
        for fifo in &self.fifos {
            loop {
                let mut pending: libc::c_int = 0;
                // SAFETY: FIONREAD writes one int through the pointer; the descriptor is open.
                let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(fifo), libc::FIONREAD, &mut pending) };
                if r != 0 || pending == 0 {
                    break;
                }
                if std::time::Instant::now() >= deadline {
                    log::warn!("{pending} bytes of output were not read within {bound:?}");
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
}

/// Feeds the container's stdin pipe from containerd's stdin FIFO.
pub struct StdinForwarder {
    path: String,
    writer: Arc<Mutex<Option<File>>>,
}

impl StdinForwarder {
    /// Returns the forwarder and the pipe end the container reads.
    pub fn start(path: &str) -> std::io::Result<(Self, OwnedFd)> {
        let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        Ok((Self::start_into(path, File::from(write_end))?, read_end))
    }

    /// Forwards containerd's stdin FIFO at `path` into `dest` (a pipe, or a terminal's master).
    pub fn start_into(path: &str, dest: File) -> std::io::Result<Self> {
        let writer = Arc::new(Mutex::new(Some(dest)));
        let w = writer.clone();
        let fifo = path.to_string();
        std::thread::Builder::new()
            .name("wasmbox-stdin".into())
            .spawn(move || {
                // Blocks until the client opens its end; containerd's clients already have.
                let mut input = match File::open(&fifo) {
                    Ok(f) => f,
                    Err(e) => {
                        log::warn!("open stdin {fifo}: {e}");
                        return;
                    }
                };
                let mut buf = [0u8; 32 * 1024];
                loop {
                    let n = match input.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let Ok(mut guard) = w.lock() else { break };
                    let Some(out) = guard.as_mut() else { break };
                    if out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                if let Ok(mut guard) = w.lock() {
                    guard.take();
                }
            })?;
        Ok(Self {
            path: path.to_string(),
            writer,
        })
    }

    /// Ends the container's stdin (CloseIO, Delete). Also frees the copy thread if it still
    /// waits for a client that never opened the FIFO.
    pub fn close(&self) {
        if let Ok(mut guard) = self.writer.lock() {
            guard.take();
        }
        let _ = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path);
    }
}

impl Drop for StdinForwarder {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_schemes_and_opens_files() {
        let err = open_output("binary:///usr/bin/logger").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.log");
        let mut f = open_output(&format!("file://{}", p.display())).unwrap();
        f.write_all(b"x").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
        assert!(open_output("").is_ok());
    }

    /// What a process writes just before it exits is there for a reader that opens the FIFO
    /// only afterwards, and the drain returns once that reader has taken it.
    #[test]
    fn kept_output_outlives_its_writer_until_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("stdout");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let path = fifo.display().to_string();
        let keeper = OutputKeeper::open(&[&path, "", "file:///x"]);
        assert_eq!(keeper.fifos.len(), 1);
        // The process: writes a line and closes its descriptor (exits) before any reader.
        open_output(&path).unwrap().write_all(b"hello\n").unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = String::new();
            File::open(&path).unwrap().read_to_string(&mut got).unwrap();
            got
        });
        let started = std::time::Instant::now();
        keeper.drain(std::time::Duration::from_secs(10));
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "drained once read");
        assert_eq!(reader.join().unwrap(), "hello\n", "the reader got the line, then end of file");
    }

    #[test]
    fn forwards_stdin_until_closed() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("stdin");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let path = fifo.display().to_string();
        let client = std::thread::spawn({
            let path = path.clone();
            move || {
                let mut w = OpenOptions::new().write(true).open(&path).unwrap();
                w.write_all(b"hello").unwrap();
            }
        });
        let (fwd, read_end) = StdinForwarder::start(&path).unwrap();
        let mut got = String::new();
        client.join().unwrap();
        File::from(read_end).read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello");
        fwd.close();
    }
}
