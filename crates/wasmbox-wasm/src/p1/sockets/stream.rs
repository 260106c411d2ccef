//! The calls on one socket: accept, receive, send, shutdown, close, and its stats.

use std::os::fd::{FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, Shutdown};
use wasmtime::{Caller, Val};

use super::abi::*;
use super::host::{host_fd, memory, wait, with_scratch};
use crate::p1::errno::{self, wasi_errno};
use crate::p1::state::{Kind, P1State, Socket};

pub(super) fn accept(
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
pub(super) fn reserve(
    caller: &mut Caller<'_, P1State>,
    listener: i32,
) -> wasmtime::Result<Result<u32, i32>> {
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

/// Gives a reserved number back to Wasmtime.
pub(super) fn release(caller: &mut Caller<'_, P1State>, number: u32) -> wasmtime::Result<()> {
    if caller.data().layer.scratch.is_none() {
        return Ok(());
    }
    with_scratch(caller, |caller, scratch| {
        scratch
            .call(&mut *caller, "fd_close", &[Val::I32(number as i32)])
            .map(|_| ())
    })
}

/// `sock_recv` (with `out` = its two result pointers) and `fd_read` (result written by the
/// caller); returns the errno and the byte count.
pub(super) fn receive(
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
pub(super) fn send(
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

pub(super) fn shutdown(caller: &mut Caller<'_, P1State>, fd: i32, how: i32) -> i32 {
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

pub(super) fn close(caller: &mut Caller<'_, P1State>, fd: i32) -> wasmtime::Result<i32> {
    let Some(socket) = caller.data_mut().layer.sockets.sockets.remove(&(fd as u32)) else {
        return Ok(errno::BADF);
    };
    drop(socket);
    release(caller, fd as u32)?;
    Ok(errno::SUCCESS)
}

pub(super) fn fdstat(caller: &mut Caller<'_, P1State>, fd: i32, ptr: u32) -> wasmtime::Result<i32> {
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

pub(super) fn set_flags(caller: &mut Caller<'_, P1State>, fd: i32, flags: i32) -> i32 {
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

pub(super) fn filestat(caller: &mut Caller<'_, P1State>, ptr: u32) -> wasmtime::Result<i32> {
    let mut b = [0u8; 64];
    b[16] = FILETYPE_SOCKET_STREAM;
    b[24..32].copy_from_slice(&1u64.to_le_bytes());
    let mem = memory(caller)?;
    tri!(write_mem(&mut *caller, &mem, ptr, &b));
    Ok(errno::SUCCESS)
}

pub(super) fn prestat(
    caller: &mut Caller<'_, P1State>,
    fd: i32,
    ptr: u32,
) -> wasmtime::Result<i32> {
    if host_fd(caller, fd).map(|(_, k, _)| k) != Some(Kind::Listener) {
        return Ok(errno::BADF);
    }
    let mut b = [0u8; 8];
    b[0] = PREOPENTYPE_NOT_DIR;
    let mem = memory(caller)?;
    tri!(write_mem(&mut *caller, &mem, ptr, &b));
    Ok(errno::SUCCESS)
}
