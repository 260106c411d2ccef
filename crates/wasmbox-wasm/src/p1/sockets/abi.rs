//! Preview 1's memory layouts for sockets: constants, guest memory access, descriptor stats,
//! and `poll_oneoff`'s subscriptions and events.

use std::time::Duration;

use wasmtime::{AsContext, AsContextMut, Memory};

use crate::p1::errno;
use crate::p1::state::Kind;

/// Preview 1 constants used by the sockets layer.
pub(super) const FILETYPE_SOCKET_STREAM: u8 = 6;
pub(super) const FDFLAGS_NONBLOCK: u16 = 1 << 2;
pub(super) const RIGHT_FD_READ: u64 = 1 << 1;
pub(super) const RIGHT_FD_FDSTAT_SET_FLAGS: u64 = 1 << 3;
pub(super) const RIGHT_FD_WRITE: u64 = 1 << 6;
pub(super) const RIGHT_FD_FILESTAT_GET: u64 = 1 << 21;
pub(super) const RIGHT_POLL_FD_READWRITE: u64 = 1 << 27;
pub(super) const RIGHT_SOCK_SHUTDOWN: u64 = 1 << 28;
pub(super) const RIGHT_SOCK_ACCEPT: u64 = 1 << 29;

/// A prestat type other than 0 ("directory"), see the module documentation.
pub(super) const PREOPENTYPE_NOT_DIR: u8 = 1;
pub(super) const RIFLAGS_PEEK: i32 = 1;
pub(super) const RIFLAGS_WAITALL: i32 = 2;
pub(super) const EVENTTYPE_CLOCK: u8 = 0;
pub(super) const EVENTTYPE_FD_READ: u8 = 1;
pub(super) const EVENTTYPE_FD_WRITE: u8 = 2;
pub(super) const EVENTRWFLAGS_HANGUP: u16 = 1;
pub(super) const SUBCLOCKFLAGS_ABSTIME: u16 = 1;
pub(super) const SUBSCRIPTION_SIZE: usize = 48;
pub(super) const EVENT_SIZE: usize = 32;
pub(super) const OFLAGS_DIRECTORY: i32 = 1 << 1;

/// The most subscriptions one `poll_oneoff` may have while the guest has sockets.
pub(super) const MAX_SUBSCRIPTIONS: u32 = 1 << 16;

/// The most bytes one read or write moves (a guest asking for more gets a short count).
pub(super) const MAX_IO: usize = 1 << 20;

/// Guest memory access that answers EFAULT rather than trapping on a bad pointer.
pub(super) fn read_mem(
    store: impl AsContext,
    mem: &Memory,
    ptr: u32,
    len: usize,
) -> Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; len];
    mem.read(store, ptr as usize, &mut buf)
        .map_err(|_| errno::FAULT)?;
    Ok(buf)
}

pub(super) fn write_mem(
    store: impl AsContextMut,
    mem: &Memory,
    ptr: u32,
    bytes: &[u8],
) -> Result<(), i32> {
    mem.write(store, ptr as usize, bytes)
        .map_err(|_| errno::FAULT)
}

/// The (pointer, length) pairs of an iovec array.
pub(super) fn iovecs(
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

pub(super) fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().unwrap_or([0; 4]))
}

pub(super) fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))
}

pub(super) fn rights(kind: Kind) -> u64 {
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
}
