//! Preopened sockets for preview 1 modules: the listeners of `wasmbox.dev/listen` and the
//! connections accepted from them.
//!
//! Wasmtime's preview 1 has no sockets of its own (its `sock_accept` says ENOTSOCK), so this
//! layer serves every call that names a socket descriptor and passes the rest to Wasmtime
//! (see [`crate::p1::layer`]). Descriptor numbers stay Wasmtime's: each socket has a placeholder
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
//!
//! Its parts: [`abi`] (preview 1's layouts), [`host`] (memory, descriptors, waits), [`stream`]
//! (the calls on one socket) and [`poll`] (`poll_oneoff`); this module dispatches to them.

use wasmtime::{Caller, Val};

use crate::p1::calls::Wrapped;
use crate::p1::errno;
use crate::p1::state::P1State;

macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(errno) => return Ok(errno),
        }
    };
}

mod abi;
mod host;
mod poll;
mod stream;

use abi::write_mem;
use host::memory;
use poll::poll_oneoff;
use stream::*;

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
