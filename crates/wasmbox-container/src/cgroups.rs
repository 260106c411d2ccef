//! The cgroup driver a spec asks for.
//!
//! runc's convention: a systemd `cgroupsPath` has the form `slice:prefix:name`; anything else
//! (such as ctr's `/default/<id>`) is a cgroupfs path.

/// True when `cgroups_path` uses the systemd form `slice:prefix:name`.
pub fn is_systemd_path(cgroups_path: Option<&str>) -> bool {
    cgroups_path.is_some_and(|p| !p.starts_with('/') && p.split(':').count() == 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_systemd_paths() {
        assert!(is_systemd_path(Some("kubepods-besteffort.slice:cri-containerd:abc")));
        assert!(is_systemd_path(Some("system.slice:wasmbox:abc")));
        assert!(!is_systemd_path(Some("/default/abc")));
        assert!(!is_systemd_path(Some("/kubepods/besteffort/pod1/abc")));
        assert!(!is_systemd_path(None));
    }
}
