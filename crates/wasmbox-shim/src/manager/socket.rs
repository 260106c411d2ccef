//! The shim's ttrpc socket file under `/run/containerd/s/`.
//!
//! containerd-shim removes it after shutdown by reading the `address` file from the bundle,
//! but containerd may delete the bundle first (`ctr run --rm`), and a SIGKILLed shim never
//! gets there. So the shim removes it itself when it is told to exit, and the `delete`
//! action removes it when no shim owns the name any more.
//!
//! A name is reused: a shared shim's slot, or a pod's shim started again. A check "is anyone
//! listening?" followed by a removal would remove a socket a new shim bound in between (a
//! `start` action then prints an address whose file is gone: containerd's `dial unix ...: no
//! such file or directory`). So every removal happens under [`NameLock`], which the serving
//! shim takes before it binds and holds until it has removed its socket: whoever holds the
//! lock owns the socket file, and a removal never races a bind.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

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

/// The right to bind, serve and remove the socket of one shim name: a POSIX record lock on
/// `<socket>.lock`. POSIX locks belong to the process (the zygote and the containers it forks
/// never hold it) and end with it, so a SIGKILLed shim frees its name.
#[derive(Debug)]
pub struct NameLock {
    address: String,
    path: PathBuf,
    _file: File,
}

fn lock_path(address: &str) -> PathBuf {
    let mut p = path_of(address).as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

impl NameLock {
    /// Takes the name of `address`, or None while another process holds it.
    pub fn try_take(address: &str) -> std::io::Result<Option<Self>> {
        let path = lock_path(address);
        // Taken before the socket is bound: its directory may not exist yet.
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        loop {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o600)
                .open(&path)?;
            let lock = libc::flock {
                l_type: libc::F_WRLCK as libc::c_short,
                l_whence: libc::SEEK_SET as libc::c_short,
                l_start: 0,
                l_len: 0,
                l_pid: 0,
            };
            // SAFETY: F_SETLK with a valid flock struct on an open descriptor.
            if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) } != 0 {
                let e = std::io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(libc::EACCES) | Some(libc::EAGAIN) => Ok(None),
                    _ => Err(e),
                };
            }
            // The last holder may have removed the file between our open and lock: a lock on
            // a removed file guards nothing, so take the one now at the path.
            let ours = file.metadata()?;
            match std::fs::metadata(&path) {
                Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => {
                    return Ok(Some(Self {
                        address: address.to_string(),
                        path,
                        _file: file,
                    }))
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Removes the socket and the lock file, then frees the name.
    pub fn release(self) {
        remove(&self.address);
        if let Err(e) = std::fs::remove_file(&self.path) {
            log::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}

/// Removes the socket file at `address` unless a shim owns its name (a pod's shim outlives
/// each of its containers; a shared shim's slot may have a new shim already).
pub fn remove_if_unowned(address: &str) {
    match NameLock::try_take(address) {
        Ok(Some(lock)) => lock.release(),
        Ok(None) => log::debug!("{address} is served: left in place"),
        Err(e) => log::warn!("cannot lock the name of {address}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// Runs `f` in a forked child (POSIX locks are per process) and returns its exit code.
    fn in_child(f: impl FnOnce() -> bool) -> i32 {
        // SAFETY: the child only runs `f` (file calls) and exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => unsafe { libc::_exit(if f() { 0 } else { 1 }) },
            nix::unistd::ForkResult::Parent { child } => match nix::sys::wait::waitpid(child, None).unwrap() {
                nix::sys::wait::WaitStatus::Exited(_, code) => code,
                s => panic!("{s:?}"),
            },
        }
    }

    #[test]
    fn removes_only_sockets_whose_name_nobody_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let address = format!("unix://{}", path.display());
        let owner = NameLock::try_take(&address).unwrap().expect("a free name");
        let _listener = UnixListener::bind(&path).unwrap();
        // Another process (the `delete` action) leaves a held name's socket in place.
        assert_eq!(in_child(|| NameLock::try_take(&address).unwrap().is_none()), 0, "the name is held");
        assert_eq!(in_child(|| { remove_if_unowned(&address); path.exists() }), 0, "a served socket must stay");
        // A shim that died (SIGKILL) holds nothing: its socket file goes, with the lock file.
        drop(owner);
        assert_eq!(in_child(|| { remove_if_unowned(&address); !path.exists() }), 0, "an unowned socket must go");
        assert!(!lock_path(&address).exists());
    }

    #[test]
    fn a_released_name_can_be_taken_again() {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("unix://{}", dir.path().join("s").display());
        let first = NameLock::try_take(&address).unwrap().unwrap();
        UnixListener::bind(path_of(&address)).unwrap();
        first.release();
        assert!(!path_of(&address).exists() && !lock_path(&address).exists());
        let again = NameLock::try_take(&address).unwrap();
        assert!(again.is_some());
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
