//! The cgroup directories ctr's default cgroup path (`/<namespace>/<id>`) produces, on cgroup v1
//! (one per controller hierarchy) and v2 (the unified tree), and their forced removal.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::kill_and_wait;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Every place a cgroup for `<namespace>/<id>` can exist: `/sys/fs/cgroup/<id path>` (v2) and
/// `/sys/fs/cgroup/<hierarchy>/<id path>` for each mounted v1 hierarchy (and v1's `unified`).
pub fn candidate_dirs(namespace: &str, id: &str) -> Vec<PathBuf> {
    candidate_dirs_at(&Path::new(namespace).join(id))
}

/// The same for any cgroupfs path, such as CRI's `<pod cgroup parent>/<id>` (relative to the
/// cgroup root; a leading `/` is ignored).
pub fn candidate_dirs_at(path: &Path) -> Vec<PathBuf> {
    let relative = path.strip_prefix("/").unwrap_or(path);
    let root = Path::new(CGROUP_ROOT);
    let mut dirs = vec![root.join(relative)];
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.filter_map(|e| e.ok()) {
            // Symlinks such as cpu -> cpu,cpuacct point at hierarchies we already visit.
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir {
                dirs.push(entry.path().join(relative));
            }
        }
    }
    dirs
}

/// The candidate directories that exist right now.
pub fn existing(namespace: &str, id: &str) -> Vec<PathBuf> {
    existing_at(&Path::new(namespace).join(id))
}

/// The candidate directories of a cgroupfs path that exist right now.
pub fn existing_at(path: &Path) -> Vec<PathBuf> {
    candidate_dirs_at(path)
        .into_iter()
        .filter(|d| d.is_dir())
        .collect()
}

/// Kills whatever still runs in the cgroups of `<namespace>/<id>` and removes them, children first.
/// Cleanup only: a test asserts on [`existing`] before this runs.
pub fn force_remove(namespace: &str, id: &str) {
    force_remove_at(&Path::new(namespace).join(id));
}

/// [`force_remove`] for any cgroupfs path.
pub fn force_remove_at(path: &Path) {
    for dir in existing_at(path) {
        let mut tree = Vec::new();
        collect_dirs(&dir, &mut tree);
        let pids: Vec<i32> = tree.iter().flat_map(|d| procs(d)).collect();
        if !pids.is_empty() {
            let _ = kill_and_wait(&pids, Duration::from_secs(5));
        }
        tree.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in tree {
            let _ = std::fs::remove_dir(&d);
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.filter_map(|e| e.ok()) {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_dirs(&entry.path(), out);
            }
        }
    }
}

fn procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_include_the_v2_path() {
        let dirs = candidate_dirs("default", "x");
        assert_eq!(dirs[0], PathBuf::from("/sys/fs/cgroup/default/x"));
        let nested = candidate_dirs_at(Path::new("/pods/p1/x"));
        assert_eq!(nested[0], PathBuf::from("/sys/fs/cgroup/pods/p1/x"));
    }
}
