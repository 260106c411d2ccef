//! Keeps what a guest wrote to stdout ahead of the message we write to stderr when it ends
//! badly (a trap, a failure, a timeout).
//!
//! Both go straight into the container's FIFOs, and CRI reads the two apart, each stream on its
//! own: a message written right after the guest's last output can reach `kubectl logs` first.
//! So before writing it we wait until the reader has taken everything from stdout, then give
//! it a moment to write that out. Bounded: with no reader (nobody attached to a `ctr` FIFO)
//! the exit is held back by at most [`LIMIT`].

use std::time::{Duration, Instant};

/// The longest the stdout reader is waited for.
const LIMIT: Duration = Duration::from_millis(200);
/// How often the FIFO is looked at meanwhile.
const POLL: Duration = Duration::from_millis(1);
/// What the reader gets, once it took the bytes, to log them before it sees ours on stderr.
const SETTLE: Duration = Duration::from_millis(5);

/// Bytes written to `fd` and not read yet, if it is a FIFO or pipe.
fn unread(fd: libc::c_int) -> Option<libc::c_int> {
    let stat = nix::sys::stat::fstat(fd).ok()?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return None;
    }
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the pointer it is given.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    (rc == 0).then_some(n)
}

/// Waits until stdout's reader has taken what the guest wrote (see the module's comment).
pub(crate) fn let_stdout_reader_catch_up() {
    let stdout = libc::STDOUT_FILENO;
    if unread(stdout).is_none() {
        // A file or a terminal: one stream, or one order already.
        return;
    }
    let deadline = Instant::now() + LIMIT;
    while unread(stdout).is_some_and(|n| n > 0) {
        if Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(POLL);
    }
    std::thread::sleep(SETTLE);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_reports_its_unread_bytes_and_a_file_none() {
        let (r, w) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&w, b"abc").unwrap();
        use std::os::fd::AsRawFd;
        assert_eq!(unread(w.as_raw_fd()), Some(3));
        let mut buf = [0u8; 3];
        nix::unistd::read(r.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(unread(w.as_raw_fd()), Some(0));
        let file = tempfile::tempfile().unwrap();
        assert_eq!(unread(file.as_raw_fd()), None);
    }
}
