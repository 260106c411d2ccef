//! The cgroup driver a spec asks for, and where a process's memory cgroup files are.
//!
//! runc's convention: a systemd `cgroupsPath` has the form `slice:prefix:name`; anything else
//! (such as ctr's `/default/<id>`) is a cgroupfs path.

use std::path::PathBuf;

use crate::mountinfo::parse_mountinfo;

/// True when `cgroups_path` uses the systemd form `slice:prefix:name`.
pub fn is_systemd_path(cgroups_path: Option<&str>) -> bool {
    cgroups_path.is_some_and(|p| !p.starts_with('/') && p.split(':').count() == 3)
}

/// The memory usage and limit files of a process's memory cgroup, as host paths: cgroup v1
/// (`memory.usage_in_bytes`, `memory.limit_in_bytes`) when a v1 memory controller holds the
/// process, else v2 (`memory.current`, `memory.max`). None when neither is mounted.
pub fn memory_files(pid: i32) -> Option<(PathBuf, PathBuf)> {
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    memory_files_from(&cgroup, &mountinfo)
}

/// [`memory_files`] from the text of `/proc/<pid>/cgroup` and the host's mountinfo.
pub fn memory_files_from(cgroup: &str, mountinfo: &str) -> Option<(PathBuf, PathBuf)> {
    let mounts = parse_mountinfo(mountinfo);
    let lines: Vec<(&str, &str)> = cgroup
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            Some((controllers, path))
        })
        .collect();
    let join = |mount_point: &str, root: &str, path: &str| {
        let rel = path.strip_prefix(root).unwrap_or(path).trim_start_matches('/');
        let mut dir = PathBuf::from(mount_point);
        if !rel.is_empty() {
            dir.push(rel);
        }
        dir
    };
    if let Some((_, path)) = lines.iter().find(|(c, _)| c.split(',').any(|c| c == "memory")) {
        let m = mounts
            .iter()
            .find(|m| m.fstype == "cgroup" && m.super_options.split(',').any(|o| o == "memory"))?;
        let dir = join(&m.mount_point, &m.root, path);
        return Some((dir.join("memory.usage_in_bytes"), dir.join("memory.limit_in_bytes")));
    }
    let (_, path) = lines.iter().find(|(c, _)| c.is_empty())?;
    let m = mounts.iter().find(|m| m.fstype == "cgroup2")?;
    let dir = join(&m.mount_point, &m.root, path);
    Some((dir.join("memory.current"), dir.join("memory.max")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_v1_memory_files() {
        let cgroup = "12:pids:/default/c1\n9:memory:/default/c1\n0::/\n";
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
";
        let (usage, limit) = memory_files_from(cgroup, mountinfo).unwrap();
        assert_eq!(usage, PathBuf::from("/sys/fs/cgroup/memory/default/c1/memory.usage_in_bytes"));
        assert_eq!(limit, PathBuf::from("/sys/fs/cgroup/memory/default/c1/memory.limit_in_bytes"));
    }

    #[test]
    fn finds_v2_memory_files() {
        let cgroup = "0::/kubepods/pod1/c1\n";
        let mountinfo = "36 30 0:32 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
        let (usage, limit) = memory_files_from(cgroup, mountinfo).unwrap();
        assert_eq!(usage, PathBuf::from("/sys/fs/cgroup/kubepods/pod1/c1/memory.current"));
        assert_eq!(limit, PathBuf::from("/sys/fs/cgroup/kubepods/pod1/c1/memory.max"));
        assert!(memory_files_from(cgroup, "").is_none());
    }

    #[test]
    fn detects_systemd_paths() {
        assert!(is_systemd_path(Some("kubepods-besteffort.slice:cri-containerd:abc")));
        assert!(is_systemd_path(Some("system.slice:wasmbox:abc")));
        assert!(!is_systemd_path(Some("/default/abc")));
        assert!(!is_systemd_path(Some("/kubepods/besteffort/pod1/abc")));
        assert!(!is_systemd_path(None));
    }
}
