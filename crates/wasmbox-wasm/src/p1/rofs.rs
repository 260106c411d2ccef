//! EROFS for writes to read-only mounts, as the guest would see them under runc.
//!
//! The guest's `/` is preopened read-write so that the kernel decides what is writable. But
//! Wasmtime 48's WASI maps the kernel's EROFS to its generic I/O error (its errno table has no
//! entry for EROFS), so a guest writing to a read-only root or volume would see EIO. The
//! preview 1 functions that modify a path are therefore wrapped: when one fails with `io` and
//! its path lies in the guest's `/` on a read-only mount, the guest gets `rofs` instead. Only
//! the error code changes; the operation is Wasmtime's own.
//!
//! The wrapping itself (how a wrapper reaches Wasmtime's function) is [`crate::p1::layer`].
//!
//! Paths relative to other directory descriptors (opened by the guest itself rather than the
//! `/` preopen) keep `io`: wasi-libc and Rust's std resolve every path against a preopen.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use wasmtime::{Caller, Val};

use crate::p1::state::{guest_memory, P1State};

/// The guest descriptor of the `/` preopen: the first one after any preopened listeners.
pub const ROOT_FD: i32 = 3;

/// Whether the path in `params` (dirfd, path pointer, length at the given indices) is below
/// the guest's `/` on a read-only mount: the file itself if it exists, else its directory.
pub(crate) fn on_read_only_mount(
    caller: &mut Caller<'_, P1State>,
    params: &[Val],
    (fd, ptr, len): (usize, usize, usize),
) -> bool {
    let arg = |i: usize| params.get(i).and_then(Val::i32);
    if arg(fd) != Some(ROOT_FD + caller.data().layer.sockets.listeners() as i32) {
        return false;
    }
    let (Some(ptr), Some(len)) = (arg(ptr), arg(len)) else {
        return false;
    };
    let Ok(memory) = guest_memory(caller) else {
        return false;
    };
    let mut bytes = vec![0u8; len as u32 as usize];
    if memory
        .read(&*caller, ptr as u32 as usize, &mut bytes)
        .is_err()
    {
        return false;
    }
    let Ok(path) = String::from_utf8(bytes) else {
        return false;
    };
    let Some(root) = caller.data().layer.root.as_ref().map(|r| r.as_raw_fd()) else {
        return false;
    };
    let parent = match path.trim_end_matches('/').rsplit_once('/') {
        Some((dir, _)) if !dir.is_empty() => dir.to_string(),
        _ => ".".to_string(),
    };
    [path.as_str(), parent.as_str()]
        .iter()
        .find_map(|p| readonly_at(root, p))
        .unwrap_or(false)
}

/// Whether `path`, resolved beneath `root` as the guest's lookups are, is on a read-only
/// mount; None when it does not exist.
fn readonly_at(root: i32, path: &str) -> Option<bool> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let target = if path.is_empty() { "." } else { path };
    let fd = nix::fcntl::openat2(root, target, how).ok()?;
    // SAFETY: `openat2` returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = nix::sys::statvfs::fstatvfs(&fd).ok()?;
    Some(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_paths_beneath_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let root = nix::fcntl::open(
            dir.path(),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        assert_eq!(readonly_at(root, "sub"), Some(false));
        assert_eq!(readonly_at(root, ""), Some(false));
        assert_eq!(readonly_at(root, "missing"), None);
        // `..` stays beneath the root.
        assert_eq!(readonly_at(root, "../../.."), Some(false));
        let _ = nix::unistd::close(root);
    }
}
