//! `poll_oneoff` when the guest has sockets: the sockets polled here, Wasmtime's own
//! descriptors through the scratch trampoline, both in slices so termination is noticed.

use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use wasmtime::{Caller, Val};

use super::abi::*;
use super::host::*;
use crate::p1::errno::{self};
use crate::p1::state::P1State;

/// `poll_oneoff` when some subscription names a socket (None otherwise: Wasmtime's own).
/// Sockets are polled by the host; clocks are deadlines; other descriptors are Wasmtime's
/// and are polled through the scratch trampoline between short waits.
pub(super) fn poll_oneoff(
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

/// Asks Wasmtime, without waiting, which of `subs` (its own descriptors) are ready.
pub(super) fn poll_theirs(
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
