//! Preopened sockets for preview 1 modules: the listeners of `wasmbox.dev/listen` and the
//! connections accepted from them.
//!
//! Wasmtime's preview 1 has no sockets of its own (its `sock_accept` says ENOTSOCK), so this
//! layer serves every call that names a socket descriptor and passes the rest to Wasmtime
//! (see [`crate::layer`]). Descriptor numbers stay Wasmtime's: each socket has a placeholder
//! entry in Wasmtime's table, so a file the guest opens never gets a socket's number. A
//! listener's placeholder is a read-only preopen of an empty directory, placed before the
//! guest's real preopens (listeners sit at 3, 4, ... as `wasmtime run --tcplisten` and systemd
//! put them); an accepted connection's is an `open(".")` of its listener's placeholder, made
//! through the scratch trampoline. Every preview 1 function that takes a descriptor is
//! wrapped, so the guest never reaches a placeholder: on a socket, `path_*` say ENOTDIR,
//! seeking says ESPIPE.
//!
//! `fd_prestat_get` on a listener succeeds with a type that is not "directory": wasi-libc's
//! preopen scan skips such a descriptor and goes on, so the directories after the listeners
//! are found (an EBADF would end the scan).
//!
//! The host sockets are non-blocking; a guest's blocking call waits in `poll(2)` in slices, so
//! a termination signal or the policy's timeout ends the guest promptly.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, Shutdown};
use wasmtime::{AsContext, AsContextMut, Caller, Memory, Val};

use crate::layer::Wrapped;
use crate::run::P1State;

/// Preview 1 errno values (wasi_snapshot_preview1.witx `errno`).
pub mod errno {
    pub const SUCCESS: i32 = 0;
    pub const AGAIN: i32 = 6;
    pub const BADF: i32 = 8;
    pub const FAULT: i32 = 21;
    pub const INVAL: i32 = 28;
    pub const IO: i32 = 29;
    pub const NOTDIR: i32 = 54;
    pub const NOTSUP: i32 = 58;
    pub const SPIPE: i32 = 70;
}

/// Preview 1 constants used here.
const FILETYPE_SOCKET_STREAM: u8 = 6;
const FDFLAGS_NONBLOCK: u16 = 1 << 2;
const RIGHT_FD_READ: u64 = 1 << 1;
const RIGHT_FD_FDSTAT_SET_FLAGS: u64 = 1 << 3;
const RIGHT_FD_WRITE: u64 = 1 << 6;
const RIGHT_FD_FILESTAT_GET: u64 = 1 << 21;
const RIGHT_POLL_FD_READWRITE: u64 = 1 << 27;
const RIGHT_SOCK_SHUTDOWN: u64 = 1 << 28;
const RIGHT_SOCK_ACCEPT: u64 = 1 << 29;
/// A prestat type other than 0 ("directory"), see the module documentation.
const PREOPENTYPE_NOT_DIR: u8 = 1;
const RIFLAGS_PEEK: i32 = 1;
const RIFLAGS_WAITALL: i32 = 2;
const EVENTTYPE_CLOCK: u8 = 0;
const EVENTTYPE_FD_READ: u8 = 1;
const EVENTTYPE_FD_WRITE: u8 = 2;
const EVENTRWFLAGS_HANGUP: u16 = 1;
const SUBCLOCKFLAGS_ABSTIME: u16 = 1;
const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;
const OFLAGS_DIRECTORY: i32 = 1 << 1;

/// The most subscriptions one `poll_oneoff` may have while the guest has sockets.
const MAX_SUBSCRIPTIONS: u32 = 1 << 16;
/// The most bytes one read or write moves (a guest asking for more gets a short count).
const MAX_IO: usize = 1 << 20;
/// How long one wait in `poll(2)` lasts before termination is checked again.
const SLICE: Duration = Duration::from_millis(100);
/// The slice while the guest also waits on descriptors of Wasmtime's (polled between slices).
const MIXED_SLICE: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Listener,
    Stream,
}

#[derive(Debug)]
pub(crate) struct Socket {
    fd: OwnedFd,
    kind: Kind,
    /// The guest's view: O_NONBLOCK (the host socket is always non-blocking).
    nonblock: bool,
}

/// The guest's sockets by descriptor number.
#[derive(Debug, Default)]
pub struct Table {
    sockets: BTreeMap<u32, Socket>,
    listeners: usize,
}

impl Table {
    /// The table for `listeners` (non-blocking host sockets), at descriptors 3, 4, ...
    pub fn with_listeners(listeners: Vec<OwnedFd>) -> Self {
        let n = listeners.len();
        let sockets = listeners
            .into_iter()
            .enumerate()
            .map(|(i, fd)| {
                (
                    3 + i as u32,
                    Socket {
                        fd,
                        kind: Kind::Listener,
                        nonblock: false,
                    },
                )
            })
            .collect();
        Self {
            sockets,
            listeners: n,
        }
    }

    /// How many preopened listeners precede the guest's directories.
    pub fn listeners(&self) -> usize {
        self.listeners
    }

    fn get(&self, fd: i32) -> Option<&Socket> {
        u32::try_from(fd).ok().and_then(|fd| self.sockets.get(&fd))
    }
}

/// Serves `f` if it is about a socket; None passes the call to Wasmtime.
pub(crate) fn serve(
    caller: &mut Caller<'_, P1State>,
    f: &Wrapped,
    params: &[Val],
) -> wasmtime::Result<Option<i32>> {
    let table = &caller.data().layer.sockets;
    if table.sockets.is_empty() {
        return Ok(None);
    }
    let arg = |i: usize| params.get(i).and_then(Val::i32).unwrap_or(0);
    if f.name == "poll_oneoff" {
        return poll_oneoff(
            caller,
            arg(0) as u32,
            arg(1) as u32,
            arg(2) as u32,
            arg(3) as u32,
        );
    }
    let Some(fd) = f
        .fds
        .iter()
        .map(|&i| arg(i))
        .find(|&fd| table.get(fd).is_some())
    else {
        return Ok(None);
    };
    let p = |i: usize| arg(i) as u32;
    let errno = match f.name {
        "sock_accept" => accept(caller, fd, p(1), p(2))?,
        "sock_recv" => receive(caller, fd, p(1), p(2), arg(3), Some((p(4), p(5))))?.0,
        "fd_read" => match receive(caller, fd, p(1), p(2), 0, None)? {
            (errno::SUCCESS, n) => {
                let mem = memory(caller)?;
                write_mem(&mut *caller, &mem, p(3), &n.to_le_bytes())
                    .err()
                    .unwrap_or(errno::SUCCESS)
            }
            (e, _) => e,
        },
        "sock_send" => send(caller, fd, p(1), p(2), p(4))?,
        "fd_write" => send(caller, fd, p(1), p(2), p(3))?,
        "sock_shutdown" => shutdown(caller, fd, arg(1)),
        "fd_close" => close(caller, fd)?,
        "fd_fdstat_get" => fdstat(caller, fd, p(1))?,
        "fd_fdstat_set_flags" => set_flags(caller, fd, arg(1)),
        "fd_filestat_get" => filestat(caller, p(1))?,
        "fd_prestat_get" => prestat(caller, fd, p(1))?,
        "fd_prestat_dir_name" | "fd_renumber" => errno::NOTSUP,
        "fd_seek" | "fd_tell" | "fd_pread" | "fd_pwrite" | "fd_advise" | "fd_allocate" => {
            errno::SPIPE
        }
        "fd_readdir" => errno::NOTDIR,
        name if name.starts_with("path_") => errno::NOTDIR,
        _ => errno::INVAL,
    };
    Ok(Some(errno))
}

/// Maps a host errno to preview 1's (same names, other numbers).
pub fn wasi_errno(e: Errno) -> i32 {
    match e {
        Errno::E2BIG => 1,
        Errno::EACCES => 2,
        Errno::EADDRINUSE => 3,
        Errno::EADDRNOTAVAIL => 4,
        Errno::EAFNOSUPPORT => 5,
        Errno::EAGAIN => errno::AGAIN,
        Errno::EALREADY => 7,
        Errno::EBADF => errno::BADF,
        Errno::ECONNABORTED => 13,
        Errno::ECONNREFUSED => 14,
        Errno::ECONNRESET => 15,
        Errno::EDESTADDRREQ => 17,
        Errno::EFAULT => errno::FAULT,
        Errno::EHOSTUNREACH => 23,
        Errno::EINPROGRESS => 26,
        Errno::EINTR => 27,
        Errno::EINVAL => errno::INVAL,
        Errno::EIO => errno::IO,
        Errno::EISCONN => 30,
        Errno::EMFILE => 33,
        Errno::EMSGSIZE => 35,
        Errno::ENETDOWN => 38,
        Errno::ENETRESET => 39,
        Errno::ENETUNREACH => 40,
        Errno::ENFILE => 41,
        Errno::ENOBUFS => 42,
        Errno::ENOMEM => 48,
        Errno::ENOTCONN => 53,
        Errno::ENOTSOCK => 57,
        Errno::EOPNOTSUPP => errno::NOTSUP,
        Errno::EPERM => 63,
        Errno::EPIPE => 64,
        Errno::ETIMEDOUT => 73,
        _ => errno::IO,
    }
}

/// Ends a wait when the guest is asked to stop; the trap ends it as a signal or timeout.
fn check_termination() -> wasmtime::Result<()> {
    if let Some(after) = crate::terminate::timed_out() {
        wasmtime::bail!("timed out after {after:?}");
    }
    if let Some(sig) = crate::terminate::requested() {
        wasmtime::bail!("terminated by signal {sig}");
    }
    Ok(())
}

/// Polls `fds` (descriptor, events) for at most `timeout`; revents per descriptor.
fn poll_host(fds: &[(RawFd, i16)], timeout: Duration) -> Result<Vec<i16>, Errno> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, events)| libc::pollfd {
            fd,
            events,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `pfds` is a valid, exclusively borrowed array of `pfds.len()` pollfd structs.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if n < 0 {
        let e = Errno::last();
        return if e == Errno::EINTR {
            Ok(vec![0; fds.len()])
        } else {
            Err(e)
        };
    }
    Ok(pfds.iter().map(|p| p.revents).collect())
}

/// Waits until `fd` is ready for `events`, or the guest must stop.
fn wait(fd: RawFd, events: i16) -> wasmtime::Result<Result<(), Errno>> {
    loop {
        check_termination()?;
        match poll_host(&[(fd, events)], SLICE) {
            Ok(r) if r[0] != 0 => return Ok(Ok(())),
            Ok(_) => continue,
            Err(e) => return Ok(Err(e)),
        }
    }
}

fn memory(caller: &mut Caller<'_, P1State>) -> wasmtime::Result<Memory> {
    crate::layer::guest_memory(caller)
}

/// Guest memory access that answers EFAULT rather than trapping on a bad pointer.
fn read_mem(store: impl AsContext, mem: &Memory, ptr: u32, len: usize) -> Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; len];
    mem.read(store, ptr as usize, &mut buf)
        .map_err(|_| errno::FAULT)?;
    Ok(buf)
}

fn write_mem(store: impl AsContextMut, mem: &Memory, ptr: u32, bytes: &[u8]) -> Result<(), i32> {
    mem.write(store, ptr as usize, bytes)
        .map_err(|_| errno::FAULT)
}

/// The (pointer, length) pairs of an iovec array.
fn iovecs(
    store: impl AsContext,
    mem: &Memory,
    iovs: u32,
    count: u32,
) -> Result<Vec<(u32, u32)>, i32> {
    let raw = read_mem(store, mem, iovs, (count as usize).min(1024) * 8)?;
    Ok(raw
        .chunks_exact(8)
        .map(|c| (le_u32(&c[..4]), le_u32(&c[4..])))
        .collect())
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().unwrap_or([0; 4]))
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))
}

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(errno) => return Ok(errno),
        }
    };
}

fn host_fd(caller: &Caller<'_, P1State>, fd: i32) -> Option<(RawFd, Kind, bool)> {
    caller
        .data()
        .layer
        .sockets
        .get(fd)
        .map(|s| (s.fd.as_raw_fd(), s.kind, s.nonblock))
}

fn accept(
    caller: &mut Caller<'_, P1State>,
    fd: i32,
    flags: u32,
    result: u32,
) -> wasmtime::Result<i32> {
    let Some((host, _, nonblock)) = host_fd(caller, fd) else {
        return Ok(errno::BADF);
    };
    let conn = loop {
        let sock_flags =
            nix::sys::socket::SockFlag::SOCK_NONBLOCK | nix::sys::socket::SockFlag::SOCK_CLOEXEC;
        match nix::sys::socket::accept4(host, sock_flags) {
            // SAFETY: `accept4` returned a fresh descriptor that nothing else owns.
            Ok(c) => break unsafe { OwnedFd::from_raw_fd(c) },
            Err(Errno::EAGAIN) if !nonblock => {
                if let Err(e) = wait(host, libc::POLLIN)? {
                    return Ok(wasi_errno(e));
                }
            }
            // Linux reports a connection's earlier network errors here; try the next one.
            Err(Errno::ECONNABORTED | Errno::EPROTO) if !nonblock => continue,
            Err(e) => return Ok(wasi_errno(e)),
        }
    };
    let number = tri!(reserve(caller, fd)?);
    let mem = memory(caller)?;
    if let Err(e) = write_mem(&mut *caller, &mem, result, &number.to_le_bytes()) {
        release(caller, number)?;
        return Ok(e);
    }
    caller.data_mut().layer.sockets.sockets.insert(
        number,
        Socket {
            fd: conn,
            kind: Kind::Stream,
            nonblock: flags as u16 & FDFLAGS_NONBLOCK != 0,
        },
    );
    Ok(errno::SUCCESS)
}

/// Reserves a descriptor number in Wasmtime's table: `open(".")` of the listener's placeholder.
fn reserve(caller: &mut Caller<'_, P1State>, listener: i32) -> wasmtime::Result<Result<u32, i32>> {
    with_scratch(caller, |caller, scratch| {
        scratch
            .memory
            .write(&mut *caller, 0, b".\0\0\0\0\0\0\0\0\0\0\0")?;
        let params = [
            Val::I32(listener),
            Val::I32(0),
            Val::I32(0),
            Val::I32(1),
            Val::I32(OFLAGS_DIRECTORY),
            Val::I64(0),
            Val::I64(0),
            Val::I32(0),
            Val::I32(8),
        ];
        let e = scratch.call(&mut *caller, "path_open", &params)?;
        if e != errno::SUCCESS {
            return Ok(Err(e));
        }
        let mut out = [0u8; 4];
        scratch.memory.read(&*caller, 8, &mut out)?;
        Ok(Ok(u32::from_le_bytes(out)))
    })
}

/// Runs `f` with the scratch trampoline, which lives in the store's data and so is taken out
/// for the call (its functions need the store) and put back after it.
fn with_scratch<R>(
    caller: &mut Caller<'_, P1State>,
    f: impl FnOnce(&mut Caller<'_, P1State>, &crate::layer::Trampoline) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    let Some(scratch) = caller.data_mut().layer.scratch.take() else {
        wasmtime::bail!("the sockets layer has no scratch trampoline");
    };
    let result = f(caller, &scratch);
    caller.data_mut().layer.scratch = Some(scratch);
    result
}

/// Gives a reserved number back to Wasmtime.
fn release(caller: &mut Caller<'_, P1State>, number: u32) -> wasmtime::Result<()> {
    if caller.data().layer.scratch.is_none() {
        return Ok(());
    }
    with_scratch(caller, |caller, scratch| {
        scratch.call(&mut *caller, "fd_close", &[Val::I32(number as i32)]).map(|_| ())
    })
}

/// `sock_recv` (with `out` = its two result pointers) and `fd_read` (result written by the
/// caller); returns the errno and the byte count.
fn receive(
    caller: &mut Caller<'_, P1State>,
    fd: i32,
    iovs: u32,
    count: u32,
    riflags: i32,
    out: Option<(u32, u32)>,
) -> wasmtime::Result<(i32, u32)> {
    let Some((host, _, nonblock)) = host_fd(caller, fd) else {
        return Ok((errno::BADF, 0));
    };
    let mem = memory(caller)?;
    let bufs = match iovecs(&*caller, &mem, iovs, count) {
        Ok(b) => b,
        Err(e) => return Ok((e, 0)),
    };
    let total = bufs
        .iter()
        .map(|(_, l)| *l as usize)
        .sum::<usize>()
        .min(MAX_IO);
    let mut data = vec![0u8; total];
    let mut flags = MsgFlags::MSG_DONTWAIT;
    if riflags & RIFLAGS_PEEK != 0 {
        flags |= MsgFlags::MSG_PEEK;
    }
    let waitall = riflags & RIFLAGS_WAITALL != 0 && !nonblock;
    let mut got = 0;
    while got < total || total == 0 {
        match nix::sys::socket::recv(host, &mut data[got..], flags) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                if !waitall {
                    break;
                }
            }
            Err(Errno::EAGAIN) if !nonblock => {
                if got > 0 && !waitall {
                    break;
                }
                if let Err(e) = wait(host, libc::POLLIN)? {
                    return Ok((wasi_errno(e), 0));
                }
            }
            Err(Errno::EINTR) => continue,
            Err(e) if got == 0 => return Ok((wasi_errno(e), 0)),
            Err(_) => break,
        }
        if total == 0 {
            break;
        }
    }
    // Scatter into the guest's buffers.
    let mut rest = &data[..got];
    for (ptr, len) in bufs {
        if rest.is_empty() {
            break;
        }
        let n = (len as usize).min(rest.len());
        if let Err(e) = write_mem(&mut *caller, &mem, ptr, &rest[..n]) {
            return Ok((e, 0));
        }
        rest = &rest[n..];
    }
    if let Some((len_ptr, flags_ptr)) = out {
        // roflags: nothing is ever truncated on a stream socket.
        let r = write_mem(&mut *caller, &mem, len_ptr, &(got as u32).to_le_bytes())
            .and_then(|()| write_mem(&mut *caller, &mem, flags_ptr, &0u16.to_le_bytes()));
        if let Err(e) = r {
            return Ok((e, 0));
        }
    }
    Ok((errno::SUCCESS, got as u32))
}

/// `sock_send` and `fd_write`: sends the buffers, writes the count at `result`.
fn send(
    caller: &mut Caller<'_, P1State>,
    fd: i32,
    iovs: u32,
    count: u32,
    result: u32,
) -> wasmtime::Result<i32> {
    let Some((host, _, nonblock)) = host_fd(caller, fd) else {
        return Ok(errno::BADF);
    };
    let mem = memory(caller)?;
    let bufs = tri!(iovecs(&*caller, &mem, iovs, count));
    let mut data = Vec::new();
    for (ptr, len) in bufs {
        let n = (len as usize).min(MAX_IO - data.len());
        data.extend(tri!(read_mem(&*caller, &mem, ptr, n)));
        if data.len() == MAX_IO {
            break;
        }
    }
    // MSG_NOSIGNAL: a peer that went away is EPIPE for the guest, never a SIGPIPE that
    // would end it.
    let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
    let mut sent = 0;
    while sent < data.len() || data.is_empty() {
        match nix::sys::socket::send(host, &data[sent..], flags) {
            Ok(n) => {
                sent += n;
                if data.is_empty() {
                    break;
                }
            }
            Err(Errno::EAGAIN) if !nonblock => {
                if let Err(e) = wait(host, libc::POLLOUT)? {
                    return Ok(wasi_errno(e));
                }
            }
            Err(Errno::EAGAIN) if sent > 0 => break,
            Err(Errno::EINTR) => continue,
            Err(e) if sent == 0 => return Ok(wasi_errno(e)),
            Err(_) => break,
        }
    }
    tri!(write_mem(
        &mut *caller,
        &mem,
        result,
        &(sent as u32).to_le_bytes()
    ));
    Ok(errno::SUCCESS)
}

fn shutdown(caller: &mut Caller<'_, P1State>, fd: i32, how: i32) -> i32 {
    let Some((host, _, _)) = host_fd(caller, fd) else {
        return errno::BADF;
    };
    let how = match how {
        1 => Shutdown::Read,
        2 => Shutdown::Write,
        3 => Shutdown::Both,
        _ => return errno::INVAL,
    };
    match nix::sys::socket::shutdown(host, how) {
        Ok(()) => errno::SUCCESS,
        Err(e) => wasi_errno(e),
    }
}

fn close(caller: &mut Caller<'_, P1State>, fd: i32) -> wasmtime::Result<i32> {
    let Some(socket) = caller.data_mut().layer.sockets.sockets.remove(&(fd as u32)) else {
        return Ok(errno::BADF);
    };
    drop(socket);
    release(caller, fd as u32)?;
    Ok(errno::SUCCESS)
}

fn rights(kind: Kind) -> u64 {
    let common = RIGHT_FD_FDSTAT_SET_FLAGS | RIGHT_FD_FILESTAT_GET | RIGHT_POLL_FD_READWRITE;
    match kind {
        Kind::Listener => common | RIGHT_SOCK_ACCEPT,
        Kind::Stream => common | RIGHT_FD_READ | RIGHT_FD_WRITE | RIGHT_SOCK_SHUTDOWN,
    }
}

/// The `fdstat` of a socket: type, flags, rights (24 bytes).
pub(crate) fn encode_fdstat(kind: Kind, nonblock: bool) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[0] = FILETYPE_SOCKET_STREAM;
    let flags = if nonblock { FDFLAGS_NONBLOCK } else { 0 };
    b[2..4].copy_from_slice(&flags.to_le_bytes());
    b[8..16].copy_from_slice(&rights(kind).to_le_bytes());
    b[16..24].copy_from_slice(&rights(Kind::Stream).to_le_bytes());
    b
}

fn fdstat(caller: &mut Caller<'_, P1State>, fd: i32, ptr: u32) -> wasmtime::Result<i32> {
    let Some((_, kind, nonblock)) = host_fd(caller, fd) else {
        return Ok(errno::BADF);
    };
    let mem = memory(caller)?;
    tri!(write_mem(
        &mut *caller,
        &mem,
        ptr,
        &encode_fdstat(kind, nonblock)
    ));
    Ok(errno::SUCCESS)
}

fn set_flags(caller: &mut Caller<'_, P1State>, fd: i32, flags: i32) -> i32 {
    match caller
        .data_mut()
        .layer
        .sockets
        .sockets
        .get_mut(&(fd as u32))
    {
        Some(s) => {
            s.nonblock = flags as u16 & FDFLAGS_NONBLOCK != 0;
            errno::SUCCESS
        }
        None => errno::BADF,
    }
}

fn filestat(caller: &mut Caller<'_, P1State>, ptr: u32) -> wasmtime::Result<i32> {
    let mut b = [0u8; 64];
    b[16] = FILETYPE_SOCKET_STREAM;
    b[24..32].copy_from_slice(&1u64.to_le_bytes());
    let mem = memory(caller)?;
    tri!(write_mem(&mut *caller, &mem, ptr, &b));
    Ok(errno::SUCCESS)
}

fn prestat(caller: &mut Caller<'_, P1State>, fd: i32, ptr: u32) -> wasmtime::Result<i32> {
    if host_fd(caller, fd).map(|(_, k, _)| k) != Some(Kind::Listener) {
        return Ok(errno::BADF);
    }
    let mut b = [0u8; 8];
    b[0] = PREOPENTYPE_NOT_DIR;
    let mem = memory(caller)?;
    tri!(write_mem(&mut *caller, &mem, ptr, &b));
    Ok(errno::SUCCESS)
}

/// One `poll_oneoff` subscription, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sub {
    /// A clock: its deadline from now (None: a clock this layer does not know).
    Clock {
        userdata: u64,
        after: Option<Duration>,
    },
    /// Readiness of a descriptor; `write` for FD_WRITE.
    Fd {
        userdata: u64,
        fd: u32,
        write: bool,
    },
    Bad {
        userdata: u64,
    },
}

/// Decodes `n` subscriptions; absolute clock times are turned into durations from now.
pub(crate) fn decode_subscriptions(raw: &[u8]) -> Vec<Sub> {
    raw.chunks_exact(SUBSCRIPTION_SIZE)
        .map(|s| {
            let userdata = le_u64(&s[0..8]);
            match s[8] {
                EVENTTYPE_CLOCK => {
                    let id = le_u32(&s[16..20]);
                    let timeout = le_u64(&s[24..32]);
                    let flags = u16::from_le_bytes([s[40], s[41]]);
                    let after = if flags & SUBCLOCKFLAGS_ABSTIME != 0 {
                        let clock = match id {
                            0 => nix::time::ClockId::CLOCK_REALTIME,
                            _ => nix::time::ClockId::CLOCK_MONOTONIC,
                        };
                        nix::time::clock_gettime(clock).ok().map(|now| {
                            let now = Duration::from(now);
                            Duration::from_nanos(timeout).saturating_sub(now)
                        })
                    } else {
                        Some(Duration::from_nanos(timeout))
                    };
                    Sub::Clock {
                        userdata,
                        after: if id <= 3 { after } else { None },
                    }
                }
                EVENTTYPE_FD_READ | EVENTTYPE_FD_WRITE => Sub::Fd {
                    userdata,
                    fd: le_u32(&s[16..20]),
                    write: s[8] == EVENTTYPE_FD_WRITE,
                },
                _ => Sub::Bad { userdata },
            }
        })
        .collect()
}

/// An event (32 bytes).
pub(crate) fn encode_event(
    userdata: u64,
    error: u16,
    kind: u8,
    nbytes: u64,
    flags: u16,
) -> [u8; EVENT_SIZE] {
    let mut e = [0u8; EVENT_SIZE];
    e[0..8].copy_from_slice(&userdata.to_le_bytes());
    e[8..10].copy_from_slice(&error.to_le_bytes());
    e[10] = kind;
    e[16..24].copy_from_slice(&nbytes.to_le_bytes());
    e[24..26].copy_from_slice(&flags.to_le_bytes());
    e
}

/// `poll_oneoff` when some subscription names a socket (None otherwise: Wasmtime's own).
/// Sockets are polled by the host; clocks are deadlines; other descriptors are Wasmtime's
/// and are polled through the scratch trampoline between short waits.
fn poll_oneoff(
    caller: &mut Caller<'_, P1State>,
    input: u32,
    output: u32,
    n: u32,
    nevents: u32,
) -> wasmtime::Result<Option<i32>> {
    if n == 0 {
        return Ok(None);
    }
    // Every subscription is read to see whether one names a socket (which Wasmtime would
    // take for its placeholder): more than this many is refused rather than copied.
    if n > MAX_SUBSCRIPTIONS {
        return Ok(Some(errno::INVAL));
    }
    let mem = memory(caller)?;
    let raw = match read_mem(&*caller, &mem, input, n as usize * SUBSCRIPTION_SIZE) {
        Ok(r) => r,
        Err(e) => return Ok(Some(e)),
    };
    let subs = decode_subscriptions(&raw);
    let table = &caller.data().layer.sockets;
    let is_socket = |fd: u32| table.sockets.contains_key(&fd);
    if !subs
        .iter()
        .any(|s| matches!(s, Sub::Fd { fd, .. } if is_socket(*fd)))
    {
        return Ok(None);
    }
    let start = Instant::now();
    // (index into subs, host fd, events) for sockets; the raw subscriptions for Wasmtime's.
    let mut polled = Vec::new();
    let mut theirs = Vec::new();
    for (i, s) in subs.iter().enumerate() {
        if let Sub::Fd { fd, write, .. } = s {
            match table.sockets.get(fd) {
                Some(sock) => polled.push((
                    i,
                    sock.fd.as_raw_fd(),
                    if *write {
                        libc::POLLOUT
                    } else {
                        libc::POLLIN | libc::POLLRDHUP
                    },
                )),
                None => {
                    theirs.push(raw[i * SUBSCRIPTION_SIZE..(i + 1) * SUBSCRIPTION_SIZE].to_vec())
                }
            }
        }
    }
    let deadline = subs
        .iter()
        .filter_map(|s| match s {
            Sub::Clock { after: Some(a), .. } => Some(start + *a),
            _ => None,
        })
        .min();
    let mut events: Vec<[u8; EVENT_SIZE]> = subs
        .iter()
        .filter_map(|s| match s {
            Sub::Bad { userdata }
            | Sub::Clock {
                userdata,
                after: None,
            } => Some(encode_event(
                *userdata,
                errno::INVAL as u16,
                EVENTTYPE_CLOCK,
                0,
                0,
            )),
            _ => None,
        })
        .collect();
    let host: Vec<(RawFd, i16)> = polled.iter().map(|&(_, fd, ev)| (fd, ev)).collect();
    let mut first = true;
    while events.is_empty() {
        if !first {
            check_termination()?;
        }
        let now = Instant::now();
        let slice = if theirs.is_empty() {
            SLICE
        } else {
            MIXED_SLICE
        };
        let wait_for = match deadline {
            Some(d) => d.saturating_duration_since(now).min(slice),
            None => slice,
        };
        // The first round only looks: Wasmtime's descriptors may be ready already.
        let revents = poll_host(
            &host,
            if first && !theirs.is_empty() {
                Duration::ZERO
            } else {
                wait_for
            },
        )
        .map_err(|e| wasmtime::format_err!("poll: {e}"))?;
        for (&(i, fd, _), re) in polled.iter().zip(revents) {
            if re == 0 {
                continue;
            }
            let Sub::Fd {
                userdata, write, ..
            } = subs[i]
            else {
                continue;
            };
            let hangup = re & (libc::POLLHUP | libc::POLLRDHUP | libc::POLLERR) != 0;
            let kind = if write {
                EVENTTYPE_FD_WRITE
            } else {
                EVENTTYPE_FD_READ
            };
            let nbytes = if write { 0 } else { readable_bytes(fd) };
            events.push(encode_event(
                userdata,
                0,
                kind,
                nbytes,
                if hangup { EVENTRWFLAGS_HANGUP } else { 0 },
            ));
        }
        if !theirs.is_empty() {
            events.extend(poll_theirs(caller, &theirs)?);
        }
        first = false;
        if events.is_empty() && deadline.is_some_and(|d| Instant::now() >= d) {
            let now = Instant::now();
            for s in &subs {
                if let Sub::Clock {
                    userdata,
                    after: Some(a),
                } = s
                {
                    if start + *a <= now {
                        events.push(encode_event(*userdata, 0, EVENTTYPE_CLOCK, 0, 0));
                    }
                }
            }
        }
    }
    let mut out = Vec::with_capacity(events.len() * EVENT_SIZE);
    for e in events.iter().take(n as usize) {
        out.extend_from_slice(e);
    }
    let count = (out.len() / EVENT_SIZE) as u32;
    if let Err(e) = write_mem(&mut *caller, &mem, output, &out)
        .and_then(|()| write_mem(&mut *caller, &mem, nevents, &count.to_le_bytes()))
    {
        return Ok(Some(e));
    }
    Ok(Some(errno::SUCCESS))
}

/// Bytes waiting to be read on a stream socket (the `nbytes` hint of a read event).
fn readable_bytes(fd: RawFd) -> u64 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, which is valid for the call.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    if r == 0 && n > 0 {
        n as u64
    } else {
        0
    }
}

/// Asks Wasmtime, without waiting, which of `subs` (its own descriptors) are ready.
fn poll_theirs(
    caller: &mut Caller<'_, P1State>,
    subs: &[Vec<u8>],
) -> wasmtime::Result<Vec<[u8; EVENT_SIZE]>> {
    const MARK: u64 = u64::MAX;
    with_scratch(caller, |caller, scratch| {
        let mut input: Vec<u8> = subs.concat();
        // A relative clock of 0: Wasmtime answers at once.
        let mut clock = [0u8; SUBSCRIPTION_SIZE];
        clock[0..8].copy_from_slice(&MARK.to_le_bytes());
        clock[8] = EVENTTYPE_CLOCK;
        clock[16..20].copy_from_slice(&1u32.to_le_bytes());
        input.extend_from_slice(&clock);
        let n = subs.len() + 1;
        let out_at = input.len();
        let count_at = out_at + n * EVENT_SIZE;
        let need = (count_at + 8) as u64;
        let size = scratch.memory.data_size(&*caller) as u64;
        if need > size {
            scratch
                .memory
                .grow(&mut *caller, (need - size).div_ceil(65536))?;
        }
        scratch.memory.write(&mut *caller, 0, &input)?;
        let e = scratch.call(
            &mut *caller,
            "poll_oneoff",
            &[
                Val::I32(0),
                Val::I32(out_at as i32),
                Val::I32(n as i32),
                Val::I32(count_at as i32),
            ],
        )?;
        if e != errno::SUCCESS {
            wasmtime::bail!("poll_oneoff of the guest's other descriptors: errno {e}");
        }
        let mut count = [0u8; 4];
        scratch.memory.read(&*caller, count_at, &mut count)?;
        let count = (u32::from_le_bytes(count) as usize).min(n);
        let mut raw = vec![0u8; count * EVENT_SIZE];
        scratch.memory.read(&*caller, out_at, &mut raw)?;
        Ok(raw
            .chunks_exact(EVENT_SIZE)
            .filter(|e| le_u64(&e[0..8]) != MARK)
            .filter_map(|e| e.try_into().ok())
            .collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock_sub(userdata: u64, timeout: u64, flags: u16) -> [u8; SUBSCRIPTION_SIZE] {
        let mut s = [0u8; SUBSCRIPTION_SIZE];
        s[0..8].copy_from_slice(&userdata.to_le_bytes());
        s[8] = EVENTTYPE_CLOCK;
        s[16..20].copy_from_slice(&1u32.to_le_bytes());
        s[24..32].copy_from_slice(&timeout.to_le_bytes());
        s[40..42].copy_from_slice(&flags.to_le_bytes());
        s
    }

    #[test]
    fn decodes_subscriptions_as_preview1_lays_them_out() {
        let mut raw = Vec::new();
        raw.extend_from_slice(&clock_sub(7, 1_500_000_000, 0));
        let mut fd = [0u8; SUBSCRIPTION_SIZE];
        fd[0..8].copy_from_slice(&9u64.to_le_bytes());
        fd[8] = EVENTTYPE_FD_WRITE;
        fd[16..20].copy_from_slice(&4u32.to_le_bytes());
        raw.extend_from_slice(&fd);
        // An absolute deadline in the past is due now.
        raw.extend_from_slice(&clock_sub(11, 1, SUBCLOCKFLAGS_ABSTIME));
        let mut bad = [0u8; SUBSCRIPTION_SIZE];
        bad[8] = 9;
        raw.extend_from_slice(&bad);
        assert_eq!(
            decode_subscriptions(&raw),
            vec![
                Sub::Clock {
                    userdata: 7,
                    after: Some(Duration::from_millis(1500))
                },
                Sub::Fd {
                    userdata: 9,
                    fd: 4,
                    write: true
                },
                Sub::Clock {
                    userdata: 11,
                    after: Some(Duration::ZERO)
                },
                Sub::Bad { userdata: 0 },
            ]
        );
    }

    #[test]
    fn encodes_events_and_fdstat() {
        let e = encode_event(0x0102, 0, EVENTTYPE_FD_READ, 5, EVENTRWFLAGS_HANGUP);
        assert_eq!(&e[0..2], &[2, 1]);
        assert_eq!(e[10], EVENTTYPE_FD_READ);
        assert_eq!(e[16], 5);
        assert_eq!(e[24], 1);
        let s = encode_fdstat(Kind::Listener, true);
        assert_eq!(s[0], FILETYPE_SOCKET_STREAM);
        assert_eq!(u16::from_le_bytes([s[2], s[3]]), FDFLAGS_NONBLOCK);
        assert_ne!(le_u64(&s[8..16]) & RIGHT_SOCK_ACCEPT, 0);
        assert_eq!(
            le_u64(&encode_fdstat(Kind::Stream, false)[8..16]) & RIGHT_SOCK_ACCEPT,
            0
        );
    }

    #[test]
    fn maps_socket_errors() {
        assert_eq!(wasi_errno(Errno::EAGAIN), errno::AGAIN);
        assert_eq!(wasi_errno(Errno::EPIPE), 64);
        assert_eq!(wasi_errno(Errno::ECONNRESET), 15);
        assert_eq!(wasi_errno(Errno::ENOTCONN), 53);
        assert_eq!(wasi_errno(Errno::ELOOP), errno::IO);
    }

    #[test]
    fn listeners_sit_at_three_and_up() {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let t = Table::with_listeners(vec![a.into(), b.into()]);
        assert_eq!(t.listeners(), 2);
        assert!(t.get(3).is_some() && t.get(4).is_some());
        assert!(t.get(2).is_none() && t.get(5).is_none() && t.get(-1).is_none());
    }
}
