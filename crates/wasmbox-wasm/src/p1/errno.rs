//! Preview 1's errno values, and the host's errno mapped to them (same names, other numbers).

use nix::errno::Errno;

/// Preview 1 errno values (wasi_snapshot_preview1.witx `errno`).
/// Preview 1 errno values (wasi_snapshot_preview1.witx `errno`).

pub const SUCCESS: i32 = 0;
pub const AGAIN: i32 = 6;
pub const BADF: i32 = 8;
pub const FAULT: i32 = 21;
pub const INVAL: i32 = 28;
pub const IO: i32 = 29;
pub const NOTDIR: i32 = 54;
pub const NOTSUP: i32 = 58;
pub const ROFS: i32 = 69;
pub const SPIPE: i32 = 70;

/// Maps a host errno to preview 1's (same names, other numbers).
pub fn wasi_errno(e: Errno) -> i32 {
    match e {
        Errno::E2BIG => 1,
        Errno::EACCES => 2,
        Errno::EADDRINUSE => 3,
        Errno::EADDRNOTAVAIL => 4,
        Errno::EAFNOSUPPORT => 5,
        Errno::EAGAIN => AGAIN,
        Errno::EALREADY => 7,
        Errno::EBADF => BADF,
        Errno::ECONNABORTED => 13,
        Errno::ECONNREFUSED => 14,
        Errno::ECONNRESET => 15,
        Errno::EDESTADDRREQ => 17,
        Errno::EFAULT => FAULT,
        Errno::EHOSTUNREACH => 23,
        Errno::EINPROGRESS => 26,
        Errno::EINTR => 27,
        Errno::EINVAL => INVAL,
        Errno::EIO => IO,
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
        Errno::EOPNOTSUPP => NOTSUP,
        Errno::EPERM => 63,
        Errno::EPIPE => 64,
        Errno::ETIMEDOUT => 73,
        _ => IO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_socket_errors() {
        assert_eq!(wasi_errno(Errno::EAGAIN), AGAIN);
        assert_eq!(wasi_errno(Errno::EPIPE), 64);
        assert_eq!(wasi_errno(Errno::ECONNRESET), 15);
        assert_eq!(wasi_errno(Errno::ENOTCONN), 53);
        assert_eq!(wasi_errno(Errno::ELOOP), IO);
    }
}
