//! The shim's ttrpc socket file under `/run/containerd/s/`.
//!
//! containerd-shim removes it after shutdown by reading the `address` file from the bundle,
//! but containerd may delete the bundle first (`ctr run --rm`), and a SIGKILLed shim never
//! gets there. So the shim removes it itself when it is told to exit, and the `delete`
//! action removes it when nothing listens on it any more.

use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

/// The filesystem path of a `unix://` address.
pub fn path_of(address: &str) -> &Path {
    Path::new(address.strip_prefix("unix://").unwrap_or(address))
}

/// Removes the socket file at `address` if it is a socket.
pub fn remove(address: &str) {
    let path = path_of(address);
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_socket() => match std::fs::remove_file(path) {
            Ok(()) => log::debug!("removed shim socket {}", path.display()),
            Err(e) => log::warn!("cannot remove shim socket {}: {e}", path.display()),
        },
        _ => {}
    }
}

/// True when something listens on `address` (a live shim).
pub fn is_live(address: &str) -> bool {
    UnixStream::connect(path_of(address)).is_ok()
}

/// Removes the socket file at `address` unless a live shim still serves it (a pod's shim
/// outlives each of its containers).
pub fn remove_if_dead(address: &str) {
    if !is_live(address) {
        remove(address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn removes_only_dead_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let address = format!("unix://{}", path.display());
        let listener = UnixListener::bind(&path).unwrap();
        assert!(is_live(&address));
        remove_if_dead(&address);
        assert!(path.exists(), "a live socket must stay");
        drop(listener);
        assert!(!is_live(&address));
        remove_if_dead(&address);
        assert!(!path.exists(), "a dead socket must go");
    }

    #[test]
    fn leaves_other_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        remove(path.to_str().unwrap());
        assert!(path.exists());
    }
}
