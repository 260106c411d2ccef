//! The zygote: a single-threaded fork of the serving shim, made before the shim starts any
//! thread, that forks one create helper per request.
//!
//! Why not exec a fresh helper each time: every exec of this binary loads and relocates it
//! again (a few ms, and ~1 MB of relocated pages private to each process, the container's
//! init included). Forked from the zygote, the helper and the init it leaves behind share
//! those pages, the loaded libraries and the Wasmtime engine with the shim, copy-on-write.
//! The zygote never runs a second thread, so forking it is as safe as forking a fresh process.
//!
//! Protocol on a `SOCK_SEQPACKET` pair: the shim sends the request JSON with the helper's
//! stdout, stderr and (optionally) stdin as `SCM_RIGHTS`; the zygote answers with the helper's
//! PID (or a negative errno). The helper's own answer travels on its stdout as before.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, OnceLock};

use nix::cmsg_space;
use nix::sys::signal::{signal, SigHandler, Signal};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use nix::unistd::{dup2, fork, ForkResult, Pid};

/// Largest request the zygote accepts (a request is about 1 KiB of JSON).
const MAX_REQUEST: usize = 64 * 1024;

static ZYGOTE: OnceLock<Zygote> = OnceLock::new();

/// The shim's end of the zygote.
pub struct Zygote {
    /// None once retired.
    sock: Mutex<Option<OwnedFd>>,
}

/// The zygote, if [`start`] made one.
pub fn get() -> Option<&'static Zygote> {
    ZYGOTE.get()
}

/// Forks the zygote. Must run while the process has a single thread.
pub fn start() {
    match spawn() {
        Ok(z) => {
            let _ = ZYGOTE.set(z);
        }
        // Creates fall back to exec'ing the helper.
        Err(e) => eprintln!("wasmbox: no zygote ({e}); containers are created by exec'd helpers"),
    }
}

fn spawn() -> nix::Result<Zygote> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    let shim = nix::unistd::getpid();
    // SAFETY: called from main() before any thread exists.
    match unsafe { fork() }? {
        ForkResult::Parent { .. } => {
            drop(theirs);
            Ok(Zygote { sock: Mutex::new(Some(ours)) })
        }
        ForkResult::Child => {
            drop(ours);
            let code = serve(theirs, shim);
            // SAFETY: leave without running the shim's exit handlers twice.
            unsafe { libc::_exit(code) }
        }
    }
}

impl Zygote {
    /// Lets the zygote exit: a shim that serves one container (not a pod) creates nothing
    /// more, and an idle zygote would only cost memory. A later create execs its helper.
    pub fn retire(&self) {
        self.sock.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Forks a helper that runs `request` with the given stdio; returns its PID.
    pub fn spawn(&self, request: &str, stdin: Option<&OwnedFd>, stdout: &OwnedFd, stderr: &OwnedFd) -> std::io::Result<i32> {
        let mut fds = vec![stdout.as_raw_fd(), stderr.as_raw_fd()];
        if let Some(i) = stdin {
            fds.push(i.as_raw_fd());
        }
        let guard = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        let Some(sock) = guard.as_ref() else {
            return Err(std::io::Error::other("the zygote is retired"));
        };
        let cmsg = [ControlMessage::ScmRights(&fds)];
        sendmsg::<()>(sock.as_raw_fd(), &[IoSlice::new(request.as_bytes())], &cmsg, MsgFlags::empty(), None)?;
        let mut reply = [0u8; 4];
        let n = nix::unistd::read(sock.as_raw_fd(), &mut reply)?;
        if n != 4 {
            return Err(std::io::Error::other("the zygote is gone"));
        }
        match i32::from_le_bytes(reply) {
            pid if pid > 0 => Ok(pid),
            errno => Err(std::io::Error::from_raw_os_error(-errno)),
        }
    }
}

/// The zygote's loop: one helper per request until the shim goes away.
fn serve(sock: OwnedFd, shim: Pid) -> i32 {
    // Die with the shim, and don't keep the shim's stdio (its stdout is the pipe the `start`
    // action reads until EOF).
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    if nix::unistd::getppid() != shim {
        return 0;
    }
    wasmbox_container::proctitle::set("wasmbox-zygote");
    // Forked in the first container's bundle, which may go while the shim serves others;
    // libcontainer in the helpers needs a working directory that exists.
    let _ = nix::unistd::chdir("/");
    if let Ok(null) = nix::fcntl::open("/dev/null", nix::fcntl::OFlag::O_RDWR, nix::sys::stat::Mode::empty()) {
        for fd in 0..3 {
            let _ = dup2(null, fd);
        }
        if null > 2 {
            let _ = nix::unistd::close(null);
        }
    }
    // Helpers are reaped by the kernel; their outcome travels on their stdout.
    // SAFETY: installing SIG_IGN has no handler code to be unsafe about.
    let _ = unsafe { signal(Signal::SIGCHLD, SigHandler::SigIgn) };
    super::child::preload();

    let mut buf = vec![0u8; MAX_REQUEST];
    loop {
        let (len, fds) = match receive(&sock, &mut buf) {
            Ok(Some(m)) => m,
            Ok(None) => return 0,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 1,
        };
        let reply = if fds.len() < 2 {
            -libc::EINVAL
        } else {
            // SAFETY: the zygote is single-threaded.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => {
                    drop(sock);
                    let code = run_helper(&buf[..len], fds);
                    std::process::exit(code);
                }
                Ok(ForkResult::Parent { child }) => child.as_raw(),
                Err(e) => -(e as i32),
            }
        };
        // The helper has its own copies now (or none were needed).
        let _ = nix::unistd::write(&sock, &reply.to_le_bytes());
    }
}

/// Receives one request; None on EOF (the shim exited).
fn receive(sock: &OwnedFd, buf: &mut [u8]) -> nix::Result<Option<(usize, Vec<OwnedFd>)>> {
    let mut space = cmsg_space!([RawFd; 3]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: the kernel just installed these descriptors for us.
            fds.extend(raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    if msg.bytes == 0 && fds.is_empty() {
        return Ok(None);
    }
    Ok(Some((msg.bytes, fds)))
}

/// In the forked helper: stdio from the request, then the same code an exec'd helper runs.
fn run_helper(request: &[u8], fds: Vec<OwnedFd>) -> i32 {
    // SAFETY: restoring the default disposition; libcontainer waits for its own children.
    let _ = unsafe { signal(Signal::SIGCHLD, SigHandler::SigDfl) };
    let mut fds = fds.into_iter();
    let (Some(out), Some(err)) = (fds.next(), fds.next()) else {
        return 1;
    };
    let stdin = fds.next();
    if let Some(i) = &stdin {
        let _ = dup2(i.as_raw_fd(), 0);
    }
    // Without a stdin the zygote's /dev/null stays on fd 0.
    let _ = dup2(out.as_raw_fd(), 1);
    let _ = dup2(err.as_raw_fd(), 2);
    drop((out, err, stdin));
    wasmbox_container::proctitle::set("wasmbox-create-helper");
    match std::str::from_utf8(request) {
        Ok(json) => super::child::main(json),
        Err(_) => 1,
    }
}
