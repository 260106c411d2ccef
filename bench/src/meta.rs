//! The circumstances of a run (versions, machine, load) and the final leftover check.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use wasmbox_integration::process::run_captured;
use wasmbox_integration::settings::{self, RUNC_SHIM_BINARY, WASMBOX_SHIM_BINARY};
use wasmbox_integration::{leftovers, Containerd};

use crate::load::LoadWait;
use crate::options::Options;
use crate::procfs;
use crate::results::Meta;

pub fn collect(o: &Options, load: LoadWait, shim_source: String) -> Result<Meta> {
    Ok(Meta {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        unix_time: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        cpu: procfs::cpu_model(),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        containerd: first_line(
            Command::new(settings::containerd_dir().join("containerd")).arg("--version"),
        ),
        runc: first_line(Command::new("runc").arg("--version")),
        shim_source,
        load,
        load_at_end: procfs::load_average()?,
        runs: o.runs,
    })
}

/// Which code the measured shim was built from: the commit, and the shim's files that differed
/// from it (the bench measures whatever `make build` just built from the working tree), read
/// before measuring since others may commit meanwhile.
pub fn shim_source() -> String {
    let root = settings::workspace_root();
    let git = |args: &[&str]| {
        run_captured(
            Command::new("git").arg("-C").arg(&root).args(args),
            None,
            Duration::from_secs(10),
        )
        .map(|c| c.stdout_text())
        .unwrap_or_else(|e| format!("unknown ({e})"))
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).trim().to_string();
    // Porcelain lines are "XY path": the status columns may be spaces, so no trimming first.
    let changed: Vec<String> = git(&["status", "--porcelain", "--", "crates"])
        .lines()
        .filter_map(|l| l.get(3..).map(str::to_string))
        .collect();
    if changed.is_empty() {
        commit
    } else {
        format!("{commit} + uncommitted changes in {}", changed.join(", "))
    }
}

fn first_line(cmd: &mut Command) -> String {
    run_captured(cmd, None, Duration::from_secs(10))
        .map(|c| {
            c.stdout_text()
                .lines()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// Mounts, cgroups, shim processes, sockets and bundles still present for any container the
/// bench ran, after a grace period for teardown that continues after ctr returns.
pub fn leftovers(containerd: &Containerd) -> Vec<String> {
    let find = || -> BTreeSet<String> {
        containerd
            .tracked_ids()
            .iter()
            .flat_map(|id| {
                let mut f = leftovers::find(containerd, id, WASMBOX_SHIM_BINARY);
                f.extend(leftovers::find(containerd, id, RUNC_SHIM_BINARY));
                f
            })
            .collect()
    };
    let mut found = find();
    if !found.is_empty() {
        std::thread::sleep(leftovers::SETTLE_TIMEOUT);
        found = find();
    }
    found.into_iter().collect()
}
