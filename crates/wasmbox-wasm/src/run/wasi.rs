//! The WASI context a guest gets: args, env, cwd and stdio from the spec, directories and
//! sockets from the policy. Commands and HTTP handlers build theirs here.

use std::os::fd::{AsRawFd, BorrowedFd};

use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::policy::network::Network;
use crate::policy::{Policy, Preopens};
use crate::sandbox::{GuestDirs, SandboxSpec};

/// Preopens the directory `dir` as `guest`. Wasmtime opens preopens by path, so the runner
/// changes into the directory and opens `.`: no path in the container's own mount namespace
/// (which still has `/proc`) is ever looked up.
fn preopen(
    b: &mut WasiCtxBuilder,
    dir: BorrowedFd<'_>,
    guest: &str,
    perms: FsPerms,
) -> wasmtime::Result<()> {
    nix::unistd::fchdir(dir.as_raw_fd())
        .map_err(|e| wasmtime::format_err!("preopen {guest}: {e}"))?;
    // Read-write unless the policy says otherwise: the kernel refuses writes to read-only
    // mounts (EROFS), as under runc.
    b.preopened_dir(".", guest, perms)?;
    Ok(())
}

/// The WASI context the spec and policy grant; `listeners` preopened listeners come first
/// (see [`crate::p1::sockets`]).
pub(crate) fn wasi_builder(
    sandbox: &SandboxSpec,
    dirs: Option<GuestDirs<'_>>,
    policy: &Policy,
    network: Option<&Network>,
    listeners: usize,
    blocking: bool,
) -> wasmtime::Result<WasiCtxBuilder> {
    let mut b = WasiCtxBuilder::new();
    // `blocking`: a command runs synchronously on this thread, so its file calls may block it
    // rather than hop to tokio's blocking pool and back per call (an interpreter's start makes
    // hundreds), as `wasmtime run` does. Not for HTTP handlers, which are tasks on the runtime.
    // Set before the preopens: each directory takes the setting when it is added.
    b.allow_blocking_current_thread(blocking);
    b.args(&sandbox.args)
        .envs(&sandbox.env)
        .inherit_stdio()
        .initial_cwd(&sandbox.cwd);
    if listeners > 0 && !sandbox.env.iter().any(|(k, _)| k == "LISTEN_FDS") {
        b.envs(&crate::p1::listeners::env(&policy.listen));
    }
    if let Some(dirs) = dirs {
        if listeners > 0 {
            // The listeners' placeholders in Wasmtime's table: the empty read-only tmpfs that
            // covers the guest's /dev (the guest never reaches them, the sockets layer
            // answers for those descriptors).
            let empty = crate::sandbox::open_dir_beneath(dirs.root, "/dev")
                .map_err(|e| wasmtime::format_err!("the listeners' placeholder directory: {e}"))?;
            for i in 0..listeners {
                preopen(
                    &mut b,
                    std::os::fd::AsFd::as_fd(&empty),
                    &format!("<listener {i}>"),
                    FsPerms::ReadOnly,
                )?;
            }
        }
        match &policy.preopens {
            // One preopen, "/": wasi-libc resolves every path (relative ones too, until the
            // guest calls chdir) by the longest matching preopen name, and a "." would be
            // taken for "/".
            Preopens::Root => preopen(&mut b, dirs.root, "/", FsPerms::ReadWrite)?,
            Preopens::None => {}
            Preopens::Only(list) => {
                for p in list {
                    // Opened beneath the guest's root: no symlink or ".." leads out of it.
                    let dir = crate::sandbox::open_dir_beneath(dirs.root, &p.path)
                        .map_err(|e| wasmtime::format_err!("preopen {}: {e}", p.path))?;
                    let perms = if p.read_only {
                        FsPerms::ReadOnly
                    } else {
                        FsPerms::ReadWrite
                    };
                    preopen(&mut b, std::os::fd::AsFd::as_fd(&dir), &p.path, perms)?;
                }
            }
        }
    }
    if let Some(network) = network {
        network.apply(&mut b);
    }
    Ok(b)
}
