//! The system calls a wasm process may make once its guest runs: what Wasmtime, tokio, Rust's
//! standard library and our WASI host call, found by running every integration test with the
//! filter in log mode (see `docs/architecture.md`, "The wasm process's seccomp filter").
//!
//! Plain data: [`allowlist`] says what is allowed for a process with or without network, and
//! [`crate::confine::seccomp`] turns it into a filter. Everything else kills the process.

/// A condition on one argument: `arg & mask == value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgMask {
    pub arg: u32,
    pub mask: u64,
    pub value: u64,
}

/// One allowed system call, by name, with the argument values it is allowed for (any of them;
/// none means any arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub name: &'static str,
    pub only: Vec<ArgMask>,
}

/// The flags that make `clone` create a namespace (or a new process that is not a thread).
const CLONE_NAMESPACES: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// Memory: the guest's linear memories and tables, the allocator, thread stacks. Pages are
/// never made executable again: the code was mapped when the program was loaded.
const MEMORY: &[&str] = &[
    "brk",
    "madvise",
    "mremap",
    "munmap",
    "msync",
    "mincore",
    "membarrier",
];

/// Threads and their synchronisation (tokio's runtime, Wasmtime's epoch ticker, std's mutexes).
const THREADS: &[&str] = &[
    "futex",
    "set_robust_list",
    "get_robust_list",
    "rseq",
    "sched_yield",
    "sched_getaffinity",
    "gettid",
    "getpid",
    "getppid",
    "exit",
    "exit_group",
];

/// Signals: Wasmtime turns faults in guest code into traps with its handlers; termination
/// signals reach a watcher thread (signal-hook's self-pipe).
const SIGNALS: &[&str] = &[
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "tgkill",
];

/// Time: clocks, sleeps and timers of WASI's clocks and poll.
const TIME: &[&str] = &[
    "clock_gettime",
    "clock_getres",
    "clock_nanosleep",
    "nanosleep",
    "gettimeofday",
];

/// Files, through the guest's preopened directories (opened relative to them; never by an
/// absolute path the guest names) and its stdio.
const FILES: &[&str] = &[
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "preadv",
    "pwritev",
    "preadv2",
    "pwritev2",
    "lseek",
    "close",
    "openat",
    // cap-std resolves a guest's paths beneath its preopened directory with RESOLVE_BENEATH.
    "openat2",
    // Preopens and unix listeners are opened by changing into the guest's directory
    // (descriptors the process already holds; `chdir` by path stays denied).
    "fchdir",
    "fstat",
    "newfstatat",
    "statx",
    "getdents64",
    "mkdirat",
    "unlinkat",
    "renameat",
    "renameat2",
    "linkat",
    "symlinkat",
    "readlinkat",
    "utimensat",
    "fchmod",
    "fchmodat",
    "ftruncate",
    "fallocate",
    "fsync",
    "fdatasync",
    "fadvise64",
    "fcntl",
    "flock",
    "dup",
    "dup3",
    "faccessat",
    "faccessat2",
    "fstatfs",
    "getcwd",
    "copy_file_range",
    "sendfile",
];

/// Waiting for I/O: tokio's reactor, WASI's poll.
const POLL: &[&str] = &[
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "poll",
    "ppoll",
    "eventfd2",
    "pipe2",
];

/// Identity and limits a library may read; nothing here changes them.
const IDENTITY: &[&str] = &[
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getgroups",
    "getrlimit",
    "getrusage",
    "uname",
    "sysinfo",
    "getrandom",
];

/// Sockets, only for a process whose policy lets its guest use the network (listeners,
/// egress, HTTP serving) or whose runtime pairs local sockets.
const SOCKETS: &[&str] = &[
    "socket",
    "bind",
    "listen",
    "accept",
    "accept4",
    "connect",
    "getsockname",
    "getpeername",
    "setsockopt",
    "getsockopt",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "sendmmsg",
    "recvmmsg",
    "shutdown",
];

/// Socket pairs of the unix family (a thread's wake-up pipe, signal-hook's self-pipe) reach no
/// network: allowed whatever the policy.
const LOCAL_PAIR: u64 = libc::AF_UNIX as u64;

/// The `ioctl` requests allowed: non-blocking and close-on-exec flags, bytes readable, and a
/// terminal's attributes and size (`isatty`, WASI's terminal size). Never `TIOCSTI` and
/// the like.
const IOCTLS: &[u64] = &[
    libc::FIONBIO as u64,
    libc::FIOCLEX as u64,
    libc::FIONCLEX as u64,
    libc::FIONREAD as u64,
    libc::TCGETS as u64,
    libc::TIOCGWINSZ as u64,
];

/// The `prctl` options allowed: a thread's name.
const PRCTLS: &[u64] = &[libc::PR_SET_NAME as u64, libc::PR_GET_NAME as u64];

/// Calls that are never allowed, whatever the policy; the tests hold the allowlist to it.
pub const NEVER: &[(&str, i64)] = &[
    ("execve", libc::SYS_execve),
    ("execveat", libc::SYS_execveat),
    ("fork", libc::SYS_fork),
    ("vfork", libc::SYS_vfork),
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("fsopen", libc::SYS_fsopen),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("bpf", libc::SYS_bpf),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("kexec_load", libc::SYS_kexec_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("setuid", libc::SYS_setuid),
    ("setgid", libc::SYS_setgid),
    ("setresuid", libc::SYS_setresuid),
    ("capset", libc::SYS_capset),
    ("seccomp", libc::SYS_seccomp),
    ("kill", libc::SYS_kill),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
];

/// Names for a report of calls allowed only with network or some arguments.
const CONDITIONAL: &[(&str, i64)] = &[
    ("socket", libc::SYS_socket),
    ("socketpair", libc::SYS_socketpair),
    ("connect", libc::SYS_connect),
    ("bind", libc::SYS_bind),
    ("listen", libc::SYS_listen),
    ("sendto", libc::SYS_sendto),
    ("clone", libc::SYS_clone),
    ("clone3", libc::SYS_clone3),
    ("mmap", libc::SYS_mmap),
    ("mprotect", libc::SYS_mprotect),
    ("ioctl", libc::SYS_ioctl),
    ("prctl", libc::SYS_prctl),
    ("memfd_create", libc::SYS_memfd_create),
];

/// The name a report gives a denied call, for the calls a reader would look for.
pub fn name_of(nr: i64) -> Option<&'static str> {
    NEVER
        .iter()
        .chain(CONDITIONAL)
        .find(|(_, n)| *n == nr)
        .map(|(name, _)| *name)
}

fn plain(names: &'static [&'static str]) -> impl Iterator<Item = Allowed> {
    names.iter().map(|name| Allowed {
        name,
        only: Vec::new(),
    })
}

fn with_values(name: &'static str, arg: u32, values: &[u64]) -> Allowed {
    Allowed {
        name,
        only: values
            .iter()
            .map(|v| ArgMask {
                arg,
                mask: u64::MAX,
                value: *v,
            })
            .collect(),
    }
}

/// What a wasm process may call; `network` adds the socket calls.
pub fn allowlist(network: bool) -> Vec<Allowed> {
    let mut list: Vec<Allowed> = [MEMORY, THREADS, SIGNALS, TIME, FILES, POLL, IDENTITY]
        .into_iter()
        .flat_map(|group| plain(group))
        .collect();
    if network {
        list.extend(plain(SOCKETS));
    }
    let not_exec = ArgMask {
        arg: 2,
        mask: libc::PROT_EXEC as u64,
        value: 0,
    };
    // Memory may be mapped and protected, never made executable.
    list.push(Allowed {
        name: "mmap",
        only: vec![not_exec],
    });
    list.push(Allowed {
        name: "mprotect",
        only: vec![not_exec],
    });
    // Threads only: a clone with CLONE_THREAD and no namespace flag.
    list.push(Allowed {
        name: "clone",
        only: vec![ArgMask {
            arg: 0,
            mask: CLONE_NAMESPACES | libc::CLONE_THREAD as u64,
            value: libc::CLONE_THREAD as u64,
        }],
    });
    list.push(with_values("socketpair", 0, &[LOCAL_PAIR]));
    // glibc's getrlimit: this process's limits (pid 0) only, never another's.
    list.push(with_values("prlimit64", 0, &[0]));
    list.push(with_values("ioctl", 1, IOCTLS));
    list.push(with_values("prctl", 0, PRCTLS));
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[Allowed]) -> Vec<&'static str> {
        list.iter().map(|a| a.name).collect()
    }

    #[test]
    fn sockets_only_with_network() {
        let without = names(&allowlist(false));
        let with = names(&allowlist(true));
        for call in SOCKETS {
            assert!(!without.contains(call), "{call} allowed without network");
            assert!(with.contains(call), "{call} missing with network");
        }
    }

    #[test]
    fn nothing_never_allowed_is_on_the_list() {
        for network in [false, true] {
            for allowed in allowlist(network) {
                assert!(
                    !NEVER.iter().any(|(n, _)| *n == allowed.name),
                    "{} is on the allowlist",
                    allowed.name
                );
            }
        }
        assert_eq!(name_of(libc::SYS_execve), Some("execve"));
        assert_eq!(name_of(libc::SYS_socket), Some("socket"));
    }

    #[test]
    fn clone_makes_threads_only_and_memory_is_never_made_executable() {
        let list = allowlist(true);
        let clone = list.iter().find(|a| a.name == "clone").unwrap();
        let rule = clone.only[0];
        let thread = libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD;
        assert_eq!(thread as u64 & rule.mask, rule.value);
        assert_ne!(
            (thread | libc::CLONE_NEWUSER) as u64 & rule.mask,
            rule.value
        );
        assert_ne!(
            libc::SIGCHLD as u64 & rule.mask,
            rule.value,
            "fork-like clone allowed"
        );
        for name in ["mmap", "mprotect"] {
            let r = list.iter().find(|a| a.name == name).unwrap().only[0];
            assert_ne!((libc::PROT_READ | libc::PROT_EXEC) as u64 & r.mask, r.value);
            assert_eq!(
                (libc::PROT_READ | libc::PROT_WRITE) as u64 & r.mask,
                r.value
            );
        }
    }

    /// docs/architecture.md and the README give these numbers.
    #[test]
    fn the_documented_counts_hold() {
        assert_eq!((allowlist(false).len(), allowlist(true).len()), (98, 115));
    }

    #[test]
    fn every_name_is_a_system_call_of_this_architecture() {
        for allowed in allowlist(true) {
            assert!(
                libseccomp::ScmpSyscall::from_name(allowed.name).is_ok(),
                "{} is not a system call",
                allowed.name
            );
        }
    }
}
