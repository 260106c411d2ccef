//! The guest's filesystem: the container's own mount tree, with `/proc`, `/sys`, `/dev` and
//! every other kernel pseudo filesystem taken out, handed to the wasm init as one directory.
//!
//! The guest's `/` must be the container's root (files directly under `/`, `opendir("/")`, a
//! preopen named `/`) while `/proc`, `/sys` and `/dev` stay unreachable by every path: by
//! name, through `..`, through symlinks in the image or made at run time, and through a mount
//! of them elsewhere. Preopens are resolved by Wasmtime (cap-std) beneath a directory, so a
//! tree that does not contain those filesystems gives exactly that. We build it as a copy of
//! the container's mount namespace:
//!
//! 1. after libcontainer created the container (all mounts in place, root remounted read-only
//!    if the spec says so), the create helper enters the init's mount namespace and unshares a
//!    private copy of it ([`build`]);
//! 2. in the copy it makes every mount private (nothing propagates back), detaches the mounts
//!    [`plan`] names (everything at or below `/proc`, `/sys`, `/dev`, and every pseudo
//!    filesystem wherever it is mounted), covers those three directories with an empty
//!    read-only tmpfs, and sets `nodev` and `nosuid` on every mount left (so a device node in
//!    an image or a volume cannot be opened either);
//! 3. it sends the init descriptors for the copy's root and for the namespace itself (which
//!    keeps the copy's mounts attached), over a socket pair the init inherited ([`receive`]).
//!
//! The mounts of the copy are the container's own (same superblocks), so the guest and native
//! processes of the container see the same files; writes to a read-only mount fail with EROFS
//! from the kernel. The copy is a snapshot: a mount added to the container after Create is not
//! in it.

use std::fs::File;
use std::io::{IoSlice, IoSliceMut, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::stat::Mode;

use crate::mountinfo::{parse_mountinfo, MountEntry};

/// Directories the guest never reaches, whatever is mounted there.
pub const HIDDEN_DIRS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// Filesystem types that expose the kernel, other processes or devices: detached wherever
/// they are mounted (e.g. a bind of the host's `/proc` or `/sys/fs/cgroup` to `/host`).
const PSEUDO_FS: &[&str] = &[
    "proc", "sysfs", "devtmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "securityfs", "debugfs",
    "tracefs", "bpf", "configfs", "fusectl", "pstore", "efivarfs", "binfmt_misc", "nsfs", "autofs",
    "selinuxfs", "rpc_pipefs", "hugetlbfs",
];

/// Errors building or receiving the guest's filesystem.
#[derive(Debug, thiserror::Error)]
pub enum GuestFsError {
    #[error("guest filesystem: {what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("guest filesystem: {0}")]
    Other(String),
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> GuestFsError {
    let what = what.into();
    move |source| GuestFsError::Sys { what, source }
}

/// True for `/proc`, `/sys`, `/dev` and anything below them.
pub fn is_hidden(path: &str) -> bool {
    HIDDEN_DIRS
        .iter()
        .any(|h| path == *h || path.strip_prefix(h).is_some_and(|rest| rest.starts_with('/')))
}

/// What to do in the copy of the container's mount namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Mount points to detach, children before parents.
    pub detach: Vec<String>,
    /// Mount points that stay, to be made `nodev,nosuid`.
    pub keep: Vec<String>,
}

/// Which of the container's mounts (`entries`, in mountinfo order: parents before children,
/// over-mounts after what they cover) the guest's tree drops, and which it keeps.
///
/// Unmounting by path removes the top mount there, so entries are taken from the last one
/// back: a path is detached mount by mount until a kept mount is on top of it; what lies
/// under a kept mount is shadowed and left alone.
pub fn plan(entries: &[MountEntry]) -> Plan {
    let mut p = Plan::default();
    for e in entries.iter().rev() {
        if p.keep.contains(&e.mount_point) {
            continue;
        }
        if is_hidden(&e.mount_point) || PSEUDO_FS.contains(&e.fstype.as_str()) {
            p.detach.push(e.mount_point.clone());
        } else {
            p.keep.push(e.mount_point.clone());
        }
    }
    p.keep.reverse();
    p
}

/// A socket pair between the create helper and the container's init. The init's end is
/// inherited through libcontainer's clone (the wasm init never execs, so the close-on-exec
/// flag only matters for native inits, which never get one).
pub fn channel() -> Result<(OwnedFd, OwnedFd), GuestFsError> {
    nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::SeqPacket,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(sys("socketpair"))
}

/// The descriptors the init receives.
#[derive(Debug)]
pub struct GuestFs {
    /// The guest's `/`.
    pub root: OwnedFd,
    /// The copy's mount namespace: holding it keeps the tree's mounts attached.
    pub namespace: OwnedFd,
    /// The container's memory cgroup: usage and limit files, read by the memory limiter.
    pub memory: Option<(File, File)>,
}

const HAS_MEMORY: u8 = 1;

fn open_dir_path(path: &str) -> Result<OwnedFd, nix::Error> {
    let fd = nix::fcntl::open(path, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())?;
    // SAFETY: `open` returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Builds the guest's tree for the container whose init is `init_pid`, and sends it to the
/// init over `to_init`. `memory` are the container's memory cgroup files, opened by the
/// caller (they are host paths). Runs in the create helper. Entering a mount namespace needs
/// a single-threaded process, and the helper may have threads (Wasmtime compiles in
/// parallel), so the work is done in a forked child; glibc keeps malloc usable after fork.
pub fn build(init_pid: i32, memory: Option<(File, File)>, to_init: BorrowedFd<'_>) -> Result<(), GuestFsError> {
    let mut text = String::new();
    File::open(format!("/proc/{init_pid}/mountinfo"))
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| GuestFsError::Other(format!("read the init's mountinfo: {e}")))?;
    let plan = plan(&parse_mountinfo(&text));
    // The host's procfs, reachable through this descriptor after we leave the host's mounts.
    let host_proc = open_dir_path("/proc").map_err(sys("open /proc"))?;
    let ns = File::open(format!("/proc/{init_pid}/ns/mnt"))
        .map_err(|e| GuestFsError::Other(format!("open the init's mount namespace: {e}")))?;
    let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
    // SAFETY: the child only makes system calls and small allocations, then _exits.
    match unsafe { nix::unistd::fork() }.map_err(sys("fork"))? {
        nix::unistd::ForkResult::Child => {
            drop(err_r);
            let code = match in_copy(&plan, &ns, &host_proc, memory.as_ref(), to_init) {
                Ok(()) => 0,
                Err(e) => {
                    let _ = nix::unistd::write(&err_w, e.to_string().as_bytes());
                    1
                }
            };
            // SAFETY: ends the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(err_w);
            let status = nix::sys::wait::waitpid(child, None).map_err(sys("wait for the builder"))?;
            let mut message = String::new();
            let _ = File::from(err_r).read_to_string(&mut message);
            match status {
                nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
                _ if !message.is_empty() => Err(GuestFsError::Other(
                    message.trim_start_matches("guest filesystem: ").to_string(),
                )),
                other => Err(GuestFsError::Other(format!("the builder ended with {other:?}"))),
            }
        }
    }
}

/// The builder's work, in the forked child: enter the init's mount namespace, copy it, prune
/// and harden the copy, send its root to the init.
fn in_copy(
    plan: &Plan,
    ns: &File,
    host_proc: &OwnedFd,
    memory: Option<&(File, File)>,
    to_init: BorrowedFd<'_>,
) -> Result<(), GuestFsError> {
    nix::sched::setns(ns.as_fd(), CloneFlags::CLONE_NEWNS).map_err(sys("enter the container's mount namespace"))?;
    nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(sys("unshare a mount namespace"))?;
    // Private first: nothing done here may propagate to the container or the host.
    nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(sys("make the copy private"))?;
    for m in &plan.detach {
        match nix::mount::umount2(m.as_str(), MntFlags::MNT_DETACH) {
            // Gone with its parent, or shadowed: either way not reachable.
            Ok(()) | Err(nix::Error::EINVAL | nix::Error::ENOENT) => {}
            Err(e) => return Err(sys(format!("detach {m}"))(e)),
        }
    }
    for dir in HIDDEN_DIRS {
        cover(dir)?;
    }
    for m in std::iter::once("/").chain(plan.keep.iter().map(String::as_str)) {
        harden(m)?;
    }

    let root = open_dir_path("/").map_err(sys("open the guest's root"))?;
    let ns_fd = nix::fcntl::openat(
        Some(host_proc.as_raw_fd()),
        "thread-self/ns/mnt",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("open the copy's namespace"))?;
    // SAFETY: `openat` returned a fresh descriptor that nothing else owns.
    let ns_fd = unsafe { OwnedFd::from_raw_fd(ns_fd) };

    let mut flags = 0u8;
    let mut fds: Vec<RawFd> = vec![root.as_raw_fd(), ns_fd.as_raw_fd()];
    if let Some((usage, limit)) = memory {
        flags |= HAS_MEMORY;
        fds.push(usage.as_raw_fd());
        fds.push(limit.as_raw_fd());
    }
    let payload = [flags];
    nix::sys::socket::sendmsg::<()>(
        to_init.as_raw_fd(),
        &[IoSlice::new(&payload)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(sys("send the guest's filesystem to the init"))?;
    Ok(())
}

/// Mounts an empty read-only tmpfs over `dir` if it is a real directory (never through a
/// symlink the image may have put there).
fn cover(dir: &str) -> Result<(), GuestFsError> {
    match nix::sys::stat::lstat(dir) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {}
        _ => return Ok(()),
    }
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    nix::mount::mount(Some("wasmbox-hidden"), dir, Some("tmpfs"), flags, Some("mode=0555,size=4k"))
        .map_err(sys(format!("cover {dir}")))
}

/// Remounts `path` with `nodev,nosuid`, keeping its other flags (read-only stays read-only).
fn harden(path: &str) -> Result<(), GuestFsError> {
    let st = match nix::sys::statvfs::statvfs(path) {
        Ok(st) => st,
        // Below a detached or covered mount: not reachable any more.
        Err(nix::Error::ENOENT | nix::Error::ENOTDIR | nix::Error::EACCES) => return Ok(()),
        Err(e) => return Err(sys(format!("statvfs {path}"))(e)),
    };
    let kept = MsFlags::from_bits_truncate(st.flags().bits() as libc::c_ulong)
        & (MsFlags::MS_RDONLY | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME | MsFlags::MS_NODIRATIME | MsFlags::MS_RELATIME);
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NODEV | MsFlags::MS_NOSUID | kept;
    match nix::mount::mount(None::<&str>, path, None::<&str>, flags, None::<&str>) {
        Ok(()) | Err(nix::Error::ENOENT) => Ok(()),
        Err(e) => Err(sys(format!("remount {path} nodev,nosuid"))(e)),
    }
}

/// Receives the guest's filesystem in the init (blocks until the helper sent it).
pub fn receive(from_helper: RawFd) -> Result<GuestFs, GuestFsError> {
    let mut payload = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut payload)];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let msg = nix::sys::socket::recvmsg::<()>(from_helper, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(sys("receive the guest's filesystem"))?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for c in msg.cmsgs().map_err(sys("read the control message"))? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: SCM_RIGHTS installed these descriptors in this process just now.
            fds.extend(raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    if msg.bytes != 1 {
        return Err(GuestFsError::Other("the create helper sent no filesystem".into()));
    }
    let flags = payload[0];
    let expected = 2 + 2 * usize::from(flags & HAS_MEMORY != 0);
    if fds.len() != expected {
        return Err(GuestFsError::Other(format!("expected {expected} descriptors, got {}", fds.len())));
    }
    let mut it = fds.into_iter();
    let mut next = || it.next().ok_or_else(|| GuestFsError::Other("descriptor missing".into()));
    let root = next()?;
    let namespace = next()?;
    let memory = if flags & HAS_MEMORY != 0 {
        Some((File::from(next()?), File::from(next()?)))
    } else {
        None
    };
    Ok(GuestFs {
        root,
        namespace,
        memory,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
100 90 0:50 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
101 100 0:51 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
102 100 0:52 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
103 102 0:53 / /dev/pts rw,nosuid,noexec,relatime - devpts devpts rw,gid=5,mode=620
104 102 0:54 / /dev/shm rw,nosuid,nodev,noexec,relatime - tmpfs shm rw,size=65536k
105 100 0:55 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
106 105 0:26 / /sys/fs/cgroup ro,relatime - cgroup2 cgroup2 rw
107 100 8:1 /data /data/config ro,relatime - ext4 /dev/sda1 rw
108 100 0:56 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw
109 100 0:5 / /host\\040proc rw,relatime - proc proc rw
110 100 0:57 / /etc/hosts rw - ext4 /dev/sda1 rw
";

    #[test]
    fn parses_mountinfo_with_escapes() {
        let e = parse_mountinfo(MOUNTINFO);
        assert_eq!(e.len(), 11);
        assert_eq!(e[9].mount_point, "/host proc");
        assert_eq!(e[9].fstype, "proc");
        assert_eq!(e[6].fstype, "cgroup2");
        assert!(parse_mountinfo("garbage\n").is_empty());
    }

    #[test]
    fn drops_proc_sys_dev_and_pseudo_filesystems_anywhere() {
        let p = plan(&parse_mountinfo(MOUNTINFO));
        for m in ["/proc", "/dev", "/dev/pts", "/dev/shm", "/sys", "/sys/fs/cgroup", "/host proc"] {
            assert!(p.detach.contains(&m.to_string()), "{m} must go: {p:?}");
        }
        // Children first, so a parent's detach never strands a child we still want gone.
        let pos = |m: &str| p.detach.iter().position(|x| x == m).unwrap();
        assert!(pos("/dev/pts") < pos("/dev") && pos("/sys/fs/cgroup") < pos("/sys"));
        assert_eq!(p.keep, vec!["/", "/data/config", "/tmp", "/etc/hosts"]);
    }

    #[test]
    fn hidden_paths() {
        assert!(is_hidden("/proc") && is_hidden("/proc/1/environ") && is_hidden("/dev/shm"));
        assert!(!is_hidden("/process") && !is_hidden("/devices") && !is_hidden("/"));
    }
}
