//! File stamps: which file this is and when it last changed, valid for the current boot.
//!
//! A stamp lets one shim process trust work another one did on the same unchanged file (a
//! verified cache entry, a computed digest) without reading it again. Any write to a file
//! changes its mtime and ctime, and ctime cannot be set from user space (an image's tar can
//! set mtime, not ctime), so an unchanged stamp means unchanged contents. The boot id is part
//! of the stamp because clocks and inode numbers are only trustworthy within one boot.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn boot_id() -> Option<&'static str> {
    static BOOT: OnceLock<Option<String>> = OnceLock::new();
    BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
    .as_deref()
}

/// Files changed more recently than this get no stamp: ctime has clock-tick granularity, so a
/// second write in the same tick would go unnoticed (git's "racy clean" problem, solved the
/// same way).
const MIN_AGE: Duration = Duration::from_secs(2);

/// The stamp of a file with metadata `md`; None when the boot id is unknown or the file
/// changed too recently (then it is read again next time).
pub fn of(md: &Metadata) -> Option<String> {
    of_at(md, SystemTime::now(), MIN_AGE)
}

fn of_at(md: &Metadata, now: SystemTime, min_age: Duration) -> Option<String> {
    let changed = UNIX_EPOCH + Duration::new(md.ctime().max(0) as u64, md.ctime_nsec().clamp(0, 999_999_999) as u32);
    if now.duration_since(changed).unwrap_or_default() < min_age {
        return None;
    }
    Some(format!(
        "{} {} {} {} {}.{:09} {}.{:09}",
        boot_id()?,
        md.dev(),
        md.ino(),
        md.size(),
        md.mtime(),
        md.mtime_nsec(),
        md.ctime(),
        md.ctime_nsec()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_write_changes_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").unwrap();
        let stamp = |p: &std::path::Path| of_at(&std::fs::metadata(p).unwrap(), SystemTime::now(), Duration::ZERO);
        let before = stamp(&path).unwrap();
        assert_eq!(Some(before.clone()), stamp(&path));
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"two").unwrap();
        assert_ne!(Some(before), stamp(&path));
    }

    #[test]
    fn a_fresh_file_has_no_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").unwrap();
        assert_eq!(of(&std::fs::metadata(&path).unwrap()), None);
        let later = SystemTime::now() + Duration::from_secs(3);
        assert!(of_at(&std::fs::metadata(&path).unwrap(), later, MIN_AGE).is_some());
    }
}
