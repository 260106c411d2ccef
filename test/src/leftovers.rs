//! What a finished container must not leave behind: mounts, cgroups, shim processes, shim
//! sockets, bundle directories.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::containerd::Containerd;
use crate::poll::wait_until;
use crate::process::processes;
use crate::settings::WASMBOX_SHIM_BINARY;
use crate::{cgroups, mounts, shim_socket};

/// How long teardown (which continues briefly after ctr returns) may take to finish.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything still present for container `id`; empty means clean.
pub fn find(containerd: &Containerd, id: &str, shim_binary: &str) -> Vec<String> {
    let mut found = Vec::new();
    for m in extra_mounts(containerd) {
        found.push(format!("mount {}", m.display()));
    }
    for dir in cgroups::existing(containerd.namespace(), id) {
        found.push(format!("cgroup {}", dir.display()));
    }
    // A shared shim started for `id` may outlive it while it serves others (once its bundle is
    // gone); its socket is checked below instead.
    let bundle = containerd.paths().bundle(containerd.namespace(), id);
    let gone = !bundle.exists();
    let binary = containerd.options().shim_dir.join(shim_binary);
    let shared = shim_socket::shared_socket_paths(containerd.address(), containerd.namespace(), &binary, 8);
    let is_shared = |p: &crate::process::ProcInfo| {
        shared.iter().any(|s| p.argv.iter().any(|a| a.trim_start_matches("unix://") == s.to_string_lossy()))
    };
    for p in processes() {
        if p.program() == shim_binary && p.argv.iter().any(|a| a == id) && !(gone && is_shared(&p)) {
            found.push(format!("shim process {} {:?}", p.pid, p.argv));
        }
    }
    for s in shim_socket::existing(containerd.address(), containerd.namespace(), id) {
        found.push(format!("shim socket {}", s.display()));
    }
    if bundle.exists() {
        found.push(format!("bundle dir {}", bundle.display()));
        // The socket of the shim serving it, which may be shared and named otherwise.
        if let Some(path) = shim_socket::of_bundle(&bundle) {
            if path.exists() && !found.iter().any(|f| f.ends_with(&*path.to_string_lossy())) {
                found.push(format!("shim socket {}", path.display()));
            }
        }
    }
    // A shared shim's socket outlives a container only while its shim serves others.
    for s in &shared {
        if s.exists() && !shim_socket::is_live(s) {
            found.push(format!("dead shared shim socket {}", s.display()));
        }
        // The lock a shim holds on its name while it serves (see the shim's socket.rs).
        let lock = PathBuf::from(format!("{}.lock", s.display()));
        if lock.exists() && !shim_socket::is_live(s) {
            found.push(format!("lock of a dead shared shim's name {}", lock.display()));
        }
    }
    found
}

/// Mounts under the fixture's dir that were not there when containerd had just started.
pub fn extra_mounts(containerd: &Containerd) -> Vec<PathBuf> {
    mounts::mounts_under(&containerd.paths().dir)
        .into_iter()
        .filter(|m| !containerd.baseline_mounts().contains(m))
        .collect()
}

/// Waits (bounded) until nothing is left for `id` under the wasmbox shim, else fails with the list.
pub fn assert_none(containerd: &Containerd, id: &str) -> Result<()> {
    assert_none_for(containerd, id, WASMBOX_SHIM_BINARY)
}

/// Same for containers run by another shim binary (e.g. runc's).
pub fn assert_none_for(containerd: &Containerd, id: &str, shim_binary: &str) -> Result<()> {
    let mut last = Vec::new();
    let clean = wait_until(&format!("no leftovers for {id}"), SETTLE_TIMEOUT, || {
        last = find(containerd, id, shim_binary);
        last.is_empty().then_some(())
    });
    if clean.is_err() {
        bail!("leftovers for container {id}:\n  {}", last.join("\n  "));
    }
    Ok(())
}
