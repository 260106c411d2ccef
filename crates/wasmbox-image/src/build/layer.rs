//! A single uncompressed layer tar, byte-for-byte reproducible: entries sorted by path, mtime 0,
//! owner 0:0, explicit modes, and every parent directory present as its own entry.

use std::collections::BTreeMap;

use tar::{EntryType, Header};

use crate::error::{ImageError, Result};

const DIR_MODE: u32 = 0o755;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    File { bytes: Vec<u8>, mode: u32 },
    Dir { mode: u32 },
    Symlink { target: String },
}

/// The files of one layer, keyed by their path inside the image.
#[derive(Debug, Clone, Default)]
pub struct LayerBuilder {
    entries: BTreeMap<String, Entry>,
}

impl LayerBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a regular file; `path` is absolute or relative to the image root.
    pub fn file(&mut self, path: &str, bytes: impl Into<Vec<u8>>, mode: u32) -> Result<&mut Self> {
        let path = normalize(path)?;
        self.add_parents(&path);
        self.entries.insert(
            path,
            Entry::File {
                bytes: bytes.into(),
                mode,
            },
        );
        Ok(self)
    }

    /// Adds a directory with an explicit mode (parents default to 0755).
    pub fn dir(&mut self, path: &str, mode: u32) -> Result<&mut Self> {
        let path = normalize(path)?;
        self.add_parents(&path);
        self.entries.insert(path, Entry::Dir { mode });
        Ok(self)
    }

    /// Adds a symbolic link pointing at `target` (stored as given).
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<&mut Self> {
        let path = normalize(path)?;
        self.add_parents(&path);
        self.entries.insert(
            path,
            Entry::Symlink {
                target: target.to_string(),
            },
        );
        Ok(self)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    // Implicit parents never override a directory the caller declared with its own mode.
    fn add_parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(pos) = path[end..].find('/') {
            end += pos;
            self.entries
                .entry(path[..end].to_string())
                .or_insert(Entry::Dir { mode: DIR_MODE });
            end += 1;
        }
    }

    /// Writes the layer as an uncompressed tar.
    pub fn to_tar(&self) -> Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            let mut header = Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            match entry {
                Entry::File { bytes, mode } => {
                    header.set_entry_type(EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(bytes.len() as u64);
                    builder.append_data(&mut header, path, bytes.as_slice())?;
                }
                Entry::Dir { mode } => {
                    header.set_entry_type(EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_size(0);
                    builder.append_data(&mut header, format!("{path}/"), std::io::empty())?;
                }
                Entry::Symlink { target } => {
                    header.set_entry_type(EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target)?;
                }
            }
        }
        Ok(builder.into_inner()?)
    }
}

/// Turns `/a/b` or `a/b` into `a/b`, refusing anything that could escape the root or is ambiguous.
fn normalize(path: &str) -> Result<String> {
    let invalid = |reason| ImageError::InvalidPath {
        path: path.to_string(),
        reason,
    };
    let trimmed = path.trim_start_matches('/').trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(invalid("the image root is not a file"));
    }
    for part in trimmed.split('/') {
        match part {
            "" => return Err(invalid("empty path component")),
            "." | ".." => return Err(invalid("'.' and '..' are not allowed")),
            _ if part.contains('\0') => return Err(invalid("NUL byte in path")),
            _ => {}
        }
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(tar_bytes: &[u8]) -> Vec<(String, EntryType, u32, u64, u64)> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path()
                        .unwrap()
                        .to_string_lossy()
                        .trim_end_matches('/')
                        .to_string(),
                    h.entry_type(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    h.uid().unwrap() + h.gid().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn entries_are_sorted_with_parents_and_fixed_metadata() {
        let mut layer = LayerBuilder::new();
        layer.file("/usr/bin/tool", b"x".to_vec(), 0o755).unwrap();
        layer.file("/app.wasm", b"\0asm".to_vec(), 0o644).unwrap();
        layer.dir("/tmp", 0o1777).unwrap();
        let entries = listing(&layer.to_tar().unwrap());
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["app.wasm", "tmp", "usr", "usr/bin", "usr/bin/tool"]);
        assert_eq!(entries[0].2, 0o644);
        assert_eq!(entries[1].1, EntryType::Directory);
        assert_eq!(entries[1].2, 0o1777);
        assert_eq!(entries[2].2, 0o755);
        assert!(entries.iter().all(|e| e.3 == 0 && e.4 == 0));
    }

    #[test]
    fn declared_directory_mode_wins_over_implicit_parent() {
        let mut layer = LayerBuilder::new();
        layer.file("/data/f", b"1".to_vec(), 0o600).unwrap();
        layer.dir("/data", 0o700).unwrap();
        let entries = listing(&layer.to_tar().unwrap());
        assert_eq!(entries[0].0, "data");
        assert_eq!(entries[0].2, 0o700);
    }

    #[test]
    fn escaping_paths_are_refused() {
        let mut layer = LayerBuilder::new();
        assert!(layer.file("/../etc/passwd", b"".to_vec(), 0o644).is_err());
        assert!(layer.file("a//b", b"".to_vec(), 0o644).is_err());
        assert!(layer.file("/", b"".to_vec(), 0o644).is_err());
    }

    #[test]
    fn long_paths_survive() {
        let long = format!("/{}/file", "d".repeat(150));
        let mut layer = LayerBuilder::new();
        layer.file(&long, b"x".to_vec(), 0o644).unwrap();
        let entries = listing(&layer.to_tar().unwrap());
        assert_eq!(entries.last().unwrap().0, long.trim_start_matches('/'));
    }
}
