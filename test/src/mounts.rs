//! Mount points from /proc/self/mountinfo, and lazy unmounting of a tree.

use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags};

/// All current mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// Detaches every mount below `dir`, deepest first; returns the ones that failed.
pub fn unmount_all_under(dir: &Path) -> Vec<(PathBuf, nix::Error)> {
    let mut failed = Vec::new();
    // Stacked mounts on one point need one unmount each: repeat while progress is made.
    loop {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            break;
        }
        let mut progressed = false;
        failed.clear();
        for mount in mounts {
            match umount2(&mount, MntFlags::MNT_DETACH) {
                Ok(()) => progressed = true,
                Err(e) => failed.push((mount, e)),
            }
        }
        if !progressed {
            break;
        }
    }
    failed
}

// mountinfo escapes space, tab, newline and backslash as octal (\040 ...).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let text = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("0");
            out.push(u8::from_str_radix(text, 8).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }

    #[test]
    fn root_is_mounted() {
        assert!(mounts_under(Path::new("/")).contains(&PathBuf::from("/")));
    }
}

/// A tmpfs of its own, outside every fixture's directory (so leftover checks do not count it),
/// unmounted and removed on drop: a compile cache on a full or read-only filesystem.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` bytes.
    pub fn mount(bytes: u64) -> anyhow::Result<Self> {
        use anyhow::Context;
        let dir = tempfile::Builder::new().prefix("wbx-tmpfs-").tempdir_in("/tmp")?;
        let options = format!("size={bytes},mode=0700");
        nix::mount::mount(Some("tmpfs"), dir.path(), Some("tmpfs"), nix::mount::MsFlags::empty(), Some(options.as_str()))
            .with_context(|| format!("mounting a tmpfs at {}", dir.path().display()))?;
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes zeros into a file until the filesystem is full.
    pub fn fill(&self) -> anyhow::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path().join("filler"))?;
        let block = vec![0u8; 4096];
        loop {
            match f.write_all(&block) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Makes it read-only.
    pub fn remount_read_only(&self) -> anyhow::Result<()> {
        use nix::mount::MsFlags;
        nix::mount::mount(None::<&str>, self.path(), None::<&str>, MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None::<&str>)?;
        Ok(())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = umount2(self.dir.path(), MntFlags::MNT_DETACH);
    }
}
