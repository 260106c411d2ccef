//! Mounting and unmounting the task's rootfs from the mounts containerd sends with Create.

use std::path::Path;

use containerd_shim::protos::api::Mount;
use nix::mount::{umount2, MntFlags};

use super::idmap;

/// Mounts `mounts` (in order) on `target`. Returns whether anything was mounted.
pub fn mount(mounts: &[Mount], target: &Path) -> Result<bool, String> {
    for (i, m) in mounts.iter().enumerate() {
        let result = mount_one(m, target);
        if let Err(e) = result {
            // Undo the ones that worked, so a failed Create leaves nothing mounted.
            for _ in 0..i {
                unmount(target);
            }
            return Err(format!("mount rootfs {} ({}) on {}: {e}", m.source, m.type_, target.display()));
        }
    }
    Ok(!mounts.is_empty())
}

/// One mount; an overlay whose options ask for id mappings gets id-mapped lower layers
/// (see [`super::idmap`]).
fn mount_one(m: &Mount, target: &Path) -> Result<(), String> {
    let kind = Some(m.type_.as_str()).filter(|t| !t.is_empty());
    let source = Some(m.source.as_str()).filter(|s| !s.is_empty());
    let Some(req) = idmap::requested(&m.options)? else {
        return containerd_shim::mount::mount_rootfs(kind, source, &m.options, target)
            .map_err(|e| e.to_string());
    };
    let scratch = target.with_file_name(format!(
        "{}-idmapped",
        target
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let lowers = idmap::MappedLowers::new(&req, &scratch)?;
    let mounted = containerd_shim::mount::mount_rootfs(kind, source, &lowers.options, target)
        .map_err(|e| e.to_string());
    drop(lowers);
    mounted
}

/// Unmounts `target` (falling back to a lazy unmount when busy). Errors are logged: this
/// runs on cleanup paths that must go on.
pub fn unmount(target: &Path) {
    match umount2(target, MntFlags::empty()) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            log::warn!("unmount {}: {e}; detaching", target.display());
            if let Err(e) = umount2(target, MntFlags::MNT_DETACH) {
                log::error!("detach {}: {e}", target.display());
            }
        }
    }
}

/// True when `path` is a mount point (its device differs from its parent's or it is listed).
pub fn is_mountpoint(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let target = path.display().to_string();
    wasmbox_container::mountinfo::parse_mountinfo(&info)
        .iter()
        .any(|m| m.mount_point == target)
}
