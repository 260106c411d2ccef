//! The listeners a preview 1 module declares (`wasmbox.dev/listen`), bound by the container's
//! init before the guest starts: in the container's network namespace, and for `unix:` paths
//! beneath the guest's `/` (never through `/proc` or a symlink out of it).

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use crate::policy::Listen;

/// A bound, listening socket (non-blocking), and the socket file of a unix one.
pub struct Bound {
    pub fd: OwnedFd,
    unix: Option<(OwnedFd, String)>,
}

/// Binds and listens on every entry, in order.
pub fn bind(listen: &[Listen], root: Option<BorrowedFd<'_>>) -> Result<Vec<Bound>, String> {
    listen
        .iter()
        .map(|l| bind_one(l, root).map_err(|e| format!("cannot listen on {}: {e}", describe(l))))
        .collect()
}

fn bind_one(l: &Listen, root: Option<BorrowedFd<'_>>) -> Result<Bound, String> {
    match l {
        Listen::Tcp(addr) => {
            // std sets SO_REUSEADDR, as servers do: a restarted container can bind again at once.
            let listener = std::net::TcpListener::bind(addr).map_err(|e| e.to_string())?;
            listener.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok(Bound {
                fd: listener.into(),
                unix: None,
            })
        }
        Listen::Unix(path) => {
            let root = root.ok_or("the guest has no filesystem")?;
            let (dir, name) = match path.rsplit_once('/') {
                Some((dir, name)) if !name.is_empty() => (dir, name),
                _ => return Err("the path names no file".into()),
            };
            let dir = crate::sandbox::open_dir_beneath(root, dir)
                .map_err(|e| format!("its directory: {e}"))?;
            // A socket file left by an earlier run is replaced (as servers do); anything else
            // at the path is not.
            let stat = nix::sys::stat::fstatat(
                Some(dir.as_raw_fd()),
                name,
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            );
            if let Ok(st) = stat {
                if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
                    return Err("the path exists and is not a socket".into());
                }
                nix::unistd::unlinkat(
                    Some(dir.as_raw_fd()),
                    name,
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                )
                .map_err(|e| format!("remove the old socket: {e}"))?;
            }
            // Bound by a name relative to the directory, which no lookup can lead out of.
            nix::unistd::fchdir(dir.as_raw_fd()).map_err(|e| e.to_string())?;
            let listener =
                std::os::unix::net::UnixListener::bind(name).map_err(|e| e.to_string())?;
            listener.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok(Bound {
                fd: listener.into(),
                unix: Some((dir, name.to_string())),
            })
        }
    }
}

impl Drop for Bound {
    /// Removes a unix socket's file: the socket dies with the guest, its name should too.
    fn drop(&mut self) {
        if let Some((dir, name)) = &self.unix {
            let _ = nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                name.as_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
        }
    }
}

fn describe(l: &Listen) -> String {
    match l {
        Listen::Tcp(a) => format!("tcp:{a}"),
        Listen::Unix(p) => format!("unix:{p}"),
    }
}

/// systemd's socket-activation variables for the listeners at 3, 4, ...: `LISTEN_FDS` and
/// `LISTEN_FDNAMES` (names without `:`, its separator). Empty without listeners. `LISTEN_PID`
/// is left out: a preview 1 guest has no pid to compare it with.
pub fn env(listen: &[Listen]) -> Vec<(String, String)> {
    if listen.is_empty() {
        return Vec::new();
    }
    let names: Vec<String> = listen
        .iter()
        .map(|l| match l {
            Listen::Tcp(a) if a.ip().is_unspecified() => format!("tcp-{}", a.port()),
            Listen::Tcp(a) => format!("tcp-{}", a.to_string().replace(':', "-")),
            Listen::Unix(p) => format!("unix-{}", p.replace(':', "-")),
        })
        .collect();
    vec![
        ("LISTEN_FDS".into(), listen.len().to_string()),
        ("LISTEN_FDNAMES".into(), names.join(":")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announces_listeners_as_systemd_does() {
        let l = vec![
            Listen::parse("tcp:8080").unwrap(),
            Listen::parse("tcp:127.0.0.1:9000").unwrap(),
            Listen::parse("tcp:[::1]:9001").unwrap(),
            Listen::parse("unix:/run/app.sock").unwrap(),
        ];
        assert_eq!(
            env(&l),
            vec![
                ("LISTEN_FDS".to_string(), "4".to_string()),
                (
                    "LISTEN_FDNAMES".to_string(),
                    "tcp-8080:tcp-127.0.0.1-9000:tcp-[--1]-9001:unix-/run/app.sock".to_string()
                ),
            ]
        );
        assert!(env(&[]).is_empty());
    }

    #[test]
    fn binds_tcp_and_unix_beneath_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("run")).unwrap();
        std::fs::write(dir.path().join("run/file"), b"x").unwrap();
        let root = std::fs::File::open(dir.path()).unwrap();
        let root = std::os::fd::AsFd::as_fd(&root);
        let l = vec![Listen::Tcp("127.0.0.1:0".parse().unwrap())];
        let bound = bind(&l, Some(root)).unwrap();
        assert_eq!(bound.len(), 1);
        // A unix socket lands beneath the root, replaces an old socket, and goes with the guest.
        let sock = Listen::Unix("/run/app.sock".into());
        let first = bind(std::slice::from_ref(&sock), Some(root)).unwrap();
        std::mem::forget(first);
        let again = bind(std::slice::from_ref(&sock), Some(root)).unwrap();
        assert!(dir.path().join("run/app.sock").exists());
        drop(again);
        assert!(!dir.path().join("run/app.sock").exists());
        // Not over a file, not outside the root.
        let e = bind(&[Listen::Unix("/run/file".into())], Some(root))
            .err()
            .unwrap();
        assert!(e.contains("not a socket"), "{e}");
        let e = bind(&[Listen::Unix("/missing/app.sock".into())], Some(root))
            .err()
            .unwrap();
        assert!(e.contains("unix:/missing/app.sock"), "{e}");
    }
}
