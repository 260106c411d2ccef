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
    for p in processes() {
        if p.program() == shim_binary && p.argv.iter().any(|a| a == id) {
            found.push(format!("shim process {} {:?}", p.pid, p.argv));
        }
    }
    for s in shim_socket::existing(containerd.address(), containerd.namespace(), id) {
        found.push(format!("shim socket {}", s.display()));
    }
    let bundle = containerd.paths().bundle(containerd.namespace(), id);
    if bundle.exists() {
        found.push(format!("bundle dir {}", bundle.display()));
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
