//! The host side of the sockets layer: the guest's memory and socket descriptors, the scratch
//! trampoline, and waits in `poll(2)` that end when the guest must stop.

use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use wasmtime::{Caller, Memory};

use crate::p1::state::{Kind, P1State};
use crate::p1::trampoline::Trampoline;

/// How long one wait in `poll(2)` lasts before termination is checked again.
pub(super) const SLICE: Duration = Duration::from_millis(100);

/// The slice while the guest also waits on descriptors of Wasmtime's (polled between slices).
pub(super) const MIXED_SLICE: Duration = Duration::from_millis(5);

/// Ends a wait when the guest is asked to stop; the trap ends it as a signal or timeout.
pub(super) fn check_termination() -> wasmtime::Result<()> {
    if let Some(after) = crate::policy::terminate::timed_out() {
        wasmtime::bail!("timed out after {after:?}");
    }
    if let Some(sig) = crate::policy::terminate::requested() {
        wasmtime::bail!("terminated by signal {sig}");
    }
    Ok(())
}

/// Polls `fds` (descriptor, events) for at most `timeout`; revents per descriptor.
pub(super) fn poll_host(fds: &[(RawFd, i16)], timeout: Duration) -> Result<Vec<i16>, Errno> {
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
pub(super) fn wait(fd: RawFd, events: i16) -> wasmtime::Result<Result<(), Errno>> {
    loop {
        check_termination()?;
        match poll_host(&[(fd, events)], SLICE) {
            Ok(r) if r[0] != 0 => return Ok(Ok(())),
            Ok(_) => continue,
            Err(e) => return Ok(Err(e)),
        }
    }
}

pub(super) fn memory(caller: &mut Caller<'_, P1State>) -> wasmtime::Result<Memory> {
    crate::p1::state::guest_memory(caller)
}

pub(super) fn host_fd(caller: &Caller<'_, P1State>, fd: i32) -> Option<(RawFd, Kind, bool)> {
    caller
        .data()
        .layer
        .sockets
        .get(fd)
        .map(|s| (s.fd.as_raw_fd(), s.kind, s.nonblock))
}

/// Runs `f` with the scratch trampoline, which lives in the store's data and so is taken out
/// for the call (its functions need the store) and put back after it.
pub(super) fn with_scratch<R>(
    caller: &mut Caller<'_, P1State>,
    f: impl FnOnce(&mut Caller<'_, P1State>, &Trampoline) -> wasmtime::Result<R>,
) -> wasmtime::Result<R> {
    let Some(scratch) = caller.data_mut().layer.scratch.take() else {
        wasmtime::bail!("the sockets layer has no scratch trampoline");
    };
    let result = f(caller, &scratch);
    caller.data_mut().layer.scratch = Some(scratch);
    result
}

/// Bytes waiting to be read on a stream socket (the `nbytes` hint of a read event).
pub(super) fn readable_bytes(fd: RawFd) -> u64 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, which is valid for the call.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    if r == 0 && n > 0 {
        n as u64
    } else {
        0
    }
}
