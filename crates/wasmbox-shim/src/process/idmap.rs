//! Id-mapped lower layers for the rootfs of a user-namespaced pod (`hostUsers: false`).
//!
//! containerd 2.x's overlay snapshotter asks for them with `uidmap=` and `gidmap=` options on
//! the overlay mount, which are not the kernel's: containerd's own mount code (which runc's
//! shim uses) turns each lower directory into an id-mapped bind mount (`open_tree`,
//! `mount_setattr` with `MOUNT_ATTR_IDMAP` and a user namespace holding the mappings) and
//! mounts the overlay on those. This does the same, so the image's files, owned by 0-65535 on
//! disk, belong to the pod's ids inside its user namespace.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// One range of a mapping: container id, host id, length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub container: u32,
    pub host: u32,
    pub length: u32,
}

/// The id mappings an overlay mount's options ask for, and the options without them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Requested {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
    pub options: Vec<String>,
}

fn ranges(value: &str) -> Result<Vec<IdRange>, String> {
    value
        .split(',')
        .map(|r| {
            let n: Vec<u32> = r
                .split(':')
                .map(|x| x.parse::<u32>())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("id mapping {r:?}: {e}"))?;
            match n[..] {
                [container, host, length] => Ok(IdRange {
                    container,
                    host,
                    length,
                }),
                _ => Err(format!("id mapping {r:?} is not CONTAINER:HOST:LENGTH")),
            }
        })
        .collect()
}

/// Splits `uidmap=`/`gidmap=` off an overlay mount's options; `None` when there are none.
pub fn requested(options: &[String]) -> Result<Option<Requested>, String> {
    let mut req = Requested::default();
    for o in options {
        if let Some(v) = o.strip_prefix("uidmap=") {
            req.uids = ranges(v)?;
        } else if let Some(v) = o.strip_prefix("gidmap=") {
            req.gids = ranges(v)?;
        } else {
            req.options.push(o.clone());
        }
    }
    if req.uids.is_empty() && req.gids.is_empty() {
        return Ok(None);
    }
    if req.uids.is_empty() || req.gids.is_empty() {
        return Err("an overlay mount with only one of uidmap and gidmap".into());
    }
    Ok(Some(req))
}

fn map_text(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{} {} {}\n", r.container, r.host, r.length))
        .collect()
}

/// A user namespace holding the mappings, as a descriptor (what `mount_setattr` takes): made
/// by a child that unshares nothing else and waits until the descriptor is open.
fn user_namespace(req: &Requested) -> Result<OwnedFd, String> {
    let (hold_r, hold_w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: a raw clone like fork; the child only reads a pipe and exits (async-signal-safe).
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::CLONE_NEWUSER | libc::SIGCHLD,
            0,
            0,
            0,
            0,
        )
    };
    if pid < 0 {
        return Err(format!(
            "clone a user namespace: {}",
            std::io::Error::last_os_error()
        ));
    }
    if pid == 0 {
        let mut b = 0u8;
        // SAFETY: closing our copy of the write end (so the parent's close ends the read),
        // reading one byte into a stack buffer, then leaving without unwinding.
        unsafe {
            libc::close(hold_w.as_raw_fd());
            libc::read(hold_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop(hold_r);
    let result = (|| {
        std::fs::write(format!("/proc/{pid}/uid_map"), map_text(&req.uids))
            .map_err(|e| format!("uid_map: {e}"))?;
        std::fs::write(format!("/proc/{pid}/gid_map"), map_text(&req.gids))
            .map_err(|e| format!("gid_map: {e}"))?;
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/user"))
            .map_err(|e| format!("the user namespace: {e}"))?;
        Ok(OwnedFd::from(ns))
    })();
    drop(hold_w);
    // Ours to reap (the shim's reaper may take it first: nothing to do then).
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None);
    result
}

/// Clones the mount at `dir` and id-maps it with `userns`, mounted at `at`.
fn mapped_copy(dir: &str, userns: RawFd, at: &Path) -> Result<(), String> {
    let path = CString::new(dir).map_err(|_| format!("{dir:?}: NUL in a path"))?;
    // SAFETY: a path string and flags; the returned descriptor is owned below.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC,
        )
    };
    if tree < 0 {
        return Err(format!(
            "open_tree {dir}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: the kernel just gave us this descriptor.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as RawFd) };
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns as u64,
    };
    // SAFETY: a valid descriptor, an empty path with AT_EMPTY_PATH, and the attr's size.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc < 0 {
        return Err(format!("id-map {dir}: {}", std::io::Error::last_os_error()));
    }
    std::fs::create_dir_all(at).map_err(|e| format!("mkdir {}: {e}", at.display()))?;
    let target =
        CString::new(at.as_os_str().as_encoded_bytes()).map_err(|_| "NUL in a path".to_string())?;
    // SAFETY: moves the detached tree onto an existing directory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(format!(
            "mount the id-mapped {dir}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Id-mapped copies of the lower directories, to mount an overlay on.
pub struct MappedLowers {
    dirs: Vec<PathBuf>,
    /// The options with `lowerdir=` naming the copies.
    pub options: Vec<String>,
}

impl MappedLowers {
    /// Makes the copies under `scratch` (a directory of the task's own).
    pub fn new(req: &Requested, scratch: &Path) -> Result<Self, String> {
        let userns = user_namespace(req)?;
        let mut made = MappedLowers {
            dirs: Vec::new(),
            options: Vec::new(),
        };
        for o in &req.options {
            let Some(lowers) = o.strip_prefix("lowerdir=") else {
                made.options.push(o.clone());
                continue;
            };
            let mut mapped = Vec::new();
            for (i, dir) in lowers.split(':').enumerate() {
                let at = scratch.join(i.to_string());
                mapped_copy(dir, userns.as_raw_fd(), &at)?;
                made.dirs.push(at.clone());
                mapped.push(at.display().to_string());
            }
            made.options.push(format!("lowerdir={}", mapped.join(":")));
        }
        Ok(made)
    }
}

impl Drop for MappedLowers {
    /// The overlay keeps what it needs of the copies: they are detached once it is mounted
    /// (or when it failed to be).
    fn drop(&mut self) {
        for dir in &self.dirs {
            let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(dir);
        }
        if let Some(parent) = self.dirs.first().and_then(|d| d.parent()) {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uidmap_and_gidmap_are_split_off() {
        let opts: Vec<String> = [
            "index=off",
            "lowerdir=/a:/b",
            "uidmap=0:2097152:65536",
            "gidmap=0:2097152:65536",
        ]
        .map(String::from)
        .to_vec();
        let req = requested(&opts).unwrap().unwrap();
        assert_eq!(
            req.uids,
            [IdRange {
                container: 0,
                host: 2097152,
                length: 65536
            }]
        );
        assert_eq!(req.options, ["index=off", "lowerdir=/a:/b"]);
        assert_eq!(requested(&["ro".into()]).unwrap(), None);
        assert!(requested(&["uidmap=0:1".into(), "gidmap=0:1:1".into()]).is_err());
    }
}
