//! One file of an image, read from its layer tars as the unpacked rootfs would hold it: the
//! topmost layer that has the path (or hides it with a whiteout) decides; symlinks, of the file
//! or of a directory on its path, are followed inside the image, as the container would.
//!
//! Pure logic over a [`BlobSource`], so it is tested without containerd.

use std::io::Read;

use crate::artifact::select::{BlobRef, BlobSource};
use crate::artifact::ArtifactError;

/// Symlinks followed before giving up (Linux's own limit for a path lookup).
const MAX_LINKS: usize = 40;
/// A layer's compressed size, and a file's size, that a lookup reads at most.
pub const LAYER_LIMIT: i64 = 1 << 30;
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(transparent)]
    Blob(#[from] ArtifactError),
    #[error("layer {digest} ({media_type}): {message}")]
    Unreadable {
        digest: String,
        media_type: String,
        message: String,
    },
    #[error("{path}: more than {MAX_LINKS} symlinks on the way")]
    TooManyLinks { path: String },
}

/// What the topmost layer that knows a path says about it.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    File(Vec<u8>),
    /// A symlink (or hard link) at `at`, the path itself or a directory on it.
    Link { at: String, target: String, hard: bool },
    /// Hidden by a whiteout, a directory, or absent from every layer.
    Absent,
}

/// The bytes of the regular file at absolute `path` in the image made of `layers` (bottom
/// first); None when the image has no such file (or it is not a regular file).
pub fn find_file(source: &mut dyn BlobSource, layers: &[BlobRef], path: &str) -> Result<Option<Vec<u8>>, LayerError> {
    let mut path = normalize(path);
    for _ in 0..=MAX_LINKS {
        match lookup(source, layers, &path)? {
            Entry::File(bytes) => return Ok(Some(bytes)),
            Entry::Absent => return Ok(None),
            Entry::Link { at, target, hard } => {
                let rest = path[at.len()..].trim_start_matches('/').to_string();
                // Hard link names are relative to the archive's root; symlinks to their dir.
                let base = if hard || target.starts_with('/') {
                    normalize(&target)
                } else {
                    normalize(&format!("{}/{target}", parent(&at)))
                };
                path = if rest.is_empty() { base } else { normalize(&format!("{base}/{rest}")) };
            }
        }
    }
    Err(LayerError::TooManyLinks { path })
}

fn lookup(source: &mut dyn BlobSource, layers: &[BlobRef], path: &str) -> Result<Entry, LayerError> {
    for layer in layers.iter().rev() {
        if let Some(entry) = lookup_in_layer(source, layer, path)? {
            return Ok(entry);
        }
    }
    Ok(Entry::Absent)
}

/// What `layer` says about `path`: None when it says nothing and lower layers decide.
fn lookup_in_layer(source: &mut dyn BlobSource, layer: &BlobRef, path: &str) -> Result<Option<Entry>, LayerError> {
    let unreadable = |message: String| LayerError::Unreadable {
        digest: layer.digest.clone(),
        media_type: layer.media_type.clone(),
        message,
    };
    let blob = source.read(layer, "layer", LAYER_LIMIT)?;
    let tar: Box<dyn Read> = if blob.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(blob.as_slice()))
    } else if layer.media_type.contains("zstd") {
        return Err(unreadable("zstd layers are not read for pull-time compiles".into()));
    } else {
        Box::new(blob.as_slice())
    };
    let mut archive = tar::Archive::new(tar);
    let mut hidden = false;
    for entry in archive.entries().map_err(|e| unreadable(e.to_string()))? {
        let mut entry = entry.map_err(|e| unreadable(e.to_string()))?;
        let name = normalize(&String::from_utf8_lossy(&entry.path_bytes()));
        if name == path {
            let kind = entry.header().entry_type();
            if kind.is_file() {
                let size = entry.size();
                if size > LAYER_LIMIT as u64 {
                    return Err(unreadable(format!("{path} is {size} bytes, more than {LAYER_LIMIT}")));
                }
                let mut bytes = Vec::with_capacity(size as usize);
                entry.read_to_end(&mut bytes).map_err(|e| unreadable(e.to_string()))?;
                return Ok(Some(Entry::File(bytes)));
            }
            if kind.is_symlink() || kind.is_hard_link() {
                return Ok(Some(link(&entry, name, kind.is_hard_link())));
            }
            return Ok(Some(Entry::Absent));
        }
        if is_ancestor(&name, path) && entry.header().entry_type().is_symlink() {
            return Ok(Some(link(&entry, name, false)));
        }
        let (dir, base) = name.rsplit_once('/').unwrap_or(("", name.as_str()));
        if base == OPAQUE_WHITEOUT && (dir.is_empty() || is_ancestor(dir, path)) {
            hidden = true;
        } else if let Some(hidden_name) = base.strip_prefix(WHITEOUT_PREFIX) {
            let hidden_path = if dir.is_empty() { hidden_name.to_string() } else { format!("{dir}/{hidden_name}") };
            if hidden_path == path || is_ancestor(&hidden_path, path) {
                hidden = true;
            }
        }
    }
    Ok(hidden.then_some(Entry::Absent))
}

fn link<R: Read>(entry: &tar::Entry<'_, R>, at: String, hard: bool) -> Entry {
    let target = entry
        .link_name_bytes()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    Entry::Link { at, target, hard }
}

/// `path` without leading `/` or `./`, trailing `/`, `.` parts, with `..` applied (never
/// above the root, as inside the container).
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// True when `dir` is a proper ancestor of `path` (both normalized).
fn is_ancestor(dir: &str, path: &str) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::artifact::select::test_store::Store;

    /// The layers (bottom first) of an image, their blobs in a store.
    #[derive(Default)]
    struct Layers(Store, Vec<BlobRef>);

    impl Layers {
        /// Adds a layer on top; `gzip` compresses it.
        fn add(&mut self, build: impl FnOnce(&mut tar::Builder<Vec<u8>>), gzip: bool) -> &mut Self {
            let mut builder = tar::Builder::new(Vec::new());
            build(&mut builder);
            let mut bytes = builder.into_inner().unwrap();
            if gzip {
                use std::io::Write;
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(&bytes).unwrap();
                bytes = enc.finish().unwrap();
            }
            let size = bytes.len() as i64;
            self.1.push(BlobRef {
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                digest: self.0.add(bytes),
                size,
                annotations: HashMap::new(),
            });
            self
        }

        fn find(&mut self, path: &str) -> Option<Vec<u8>> {
            find_file(&mut self.0, &self.1, path).unwrap()
        }
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        b.append_data(&mut h, path, bytes).unwrap();
    }

    fn symlink(b: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_cksum();
        b.append_link(&mut h, path, target).unwrap();
    }

    #[test]
    fn the_topmost_layer_wins_compressed_or_not() {
        let mut l = Layers::default();
        l.add(|b| file(b, "app.wasm", b"old"), true)
            .add(|b| file(b, "./app.wasm", b"new"), false);
        assert_eq!(l.find("/app.wasm").as_deref(), Some(&b"new"[..]));
        assert_eq!(l.find("/missing.wasm"), None);
    }

    #[test]
    fn whiteouts_hide_lower_layers() {
        let mut l = Layers::default();
        l.add(|b| {
            file(b, "a/app.wasm", b"x");
            file(b, "d/sub/app.wasm", b"y");
            file(b, "o/app.wasm", b"z");
        }, false)
            .add(|b| {
                file(b, "a/.wh.app.wasm", b"");
                file(b, ".wh.d", b"");
                file(b, "o/.wh..wh..opq", b"");
            }, true);
        assert_eq!(l.find("/a/app.wasm"), None);
        assert_eq!(l.find("/d/sub/app.wasm"), None);
        assert_eq!(l.find("/o/app.wasm"), None);
    }

    #[test]
    fn symlinks_are_followed_inside_the_image() {
        let mut l = Layers::default();
        l.add(|b| {
            file(b, "usr/bin/app.wasm", b"wasm");
            symlink(b, "bin", "usr/bin");
        }, false)
            .add(|b| {
                symlink(b, "usr/local/bin/app", "../../bin/app.wasm");
                symlink(b, "abs", "/../../usr/bin/app.wasm");
                symlink(b, "loop", "loop");
            }, false);
        assert_eq!(l.find("/bin/app.wasm").as_deref(), Some(&b"wasm"[..]));
        assert_eq!(l.find("/usr/local/bin/app").as_deref(), Some(&b"wasm"[..]));
        assert_eq!(l.find("/abs").as_deref(), Some(&b"wasm"[..]));
        assert!(matches!(find_file(&mut l.0, &l.1, "/loop"), Err(LayerError::TooManyLinks { .. })));
    }

    #[test]
    fn paths_normalize_as_inside_the_container() {
        assert_eq!(normalize("/./usr//bin/../lib/"), "usr/lib");
        assert_eq!(normalize("../../etc"), "etc");
        assert!(is_ancestor("usr", "usr/bin"));
        assert!(!is_ancestor("us", "usr/bin"));
        assert!(!is_ancestor("usr/bin", "usr/bin"));
    }
}
