//! The OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/*`), written as a tarball that
//! `ctr image import` accepts, or as a directory. It knows nothing about what the blobs mean, so
//! image and (later) Wasm artifact assembly both feed it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use oci_spec::image::{
    Descriptor, ImageIndex, ImageIndexBuilder, MediaType, OciLayoutBuilder, SCHEMA_VERSION,
};

use crate::build::blob::Blob;
use crate::error::{ImageError, Result};
use crate::build::json::to_canonical_vec;
use crate::build::layer::LayerBuilder;

const LAYOUT_VERSION: &str = "1.0.0";
const FILE_MODE: u32 = 0o644;

/// Collects blobs and the top-level manifest descriptors of one layout.
#[derive(Debug, Clone, Default)]
pub struct LayoutWriter {
    blobs: BTreeMap<String, Blob>,
    manifests: Vec<Descriptor>,
    /// Other top-level files, e.g. Docker's `manifest.json` so `docker load` reads the tar too.
    extra_files: BTreeMap<String, Vec<u8>>,
}

impl LayoutWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a blob (once per digest) and returns its plain descriptor.
    pub fn add_blob(&mut self, blob: Blob) -> Result<Descriptor> {
        let descriptor = blob.descriptor()?;
        self.blobs
            .entry(blob.sha256_hex().to_string())
            .or_insert(blob);
        Ok(descriptor)
    }

    /// Lists a manifest (already added as a blob) in `index.json`.
    pub fn add_manifest(&mut self, descriptor: Descriptor) -> &mut Self {
        self.manifests.push(descriptor);
        self
    }

    /// Adds a file at the layout's top level (next to `index.json`).
    pub fn add_file(&mut self, name: &str, bytes: Vec<u8>) -> &mut Self {
        self.extra_files.insert(name.to_string(), bytes);
        self
    }

    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        self.blobs.values()
    }

    pub fn index(&self) -> Result<ImageIndex> {
        if self.manifests.is_empty() {
            return Err(ImageError::EmptyIndex);
        }
        Ok(ImageIndexBuilder::default()
            .schema_version(SCHEMA_VERSION)
            .media_type(MediaType::ImageIndex)
            .manifests(self.manifests.clone())
            .build()?)
    }

    /// The layout's files as (path relative to the layout root, bytes), in a fixed order.
    pub fn files(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let oci_layout = OciLayoutBuilder::default()
            .image_layout_version(LAYOUT_VERSION)
            .build()?;
        let mut files = vec![
            ("oci-layout".to_string(), to_canonical_vec(&oci_layout)?),
            ("index.json".to_string(), to_canonical_vec(&self.index()?)?),
        ];
        for (name, bytes) in &self.extra_files {
            files.push((name.clone(), bytes.clone()));
        }
        for (hex, blob) in &self.blobs {
            files.push((format!("blobs/sha256/{hex}"), blob.bytes().to_vec()));
        }
        Ok(files)
    }

    /// Writes the layout as an uncompressed, reproducible tar.
    pub fn write_tar<W: Write>(&self, mut writer: W) -> Result<()> {
        let mut tree = LayerBuilder::new();
        for (path, bytes) in self.files()? {
            tree.file(&path, bytes, FILE_MODE)?;
        }
        writer.write_all(&tree.to_tar()?)?;
        writer.flush()?;
        Ok(())
    }

    /// Writes the layout as a directory (created if missing).
    pub fn write_dir(&self, root: &Path) -> Result<()> {
        for (path, bytes) in self.files()? {
            let target = root.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(target, bytes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_layout_is_refused() {
        assert!(matches!(
            LayoutWriter::new().index(),
            Err(ImageError::EmptyIndex)
        ));
    }

    #[test]
    fn files_hold_every_blob_under_its_digest() {
        let mut layout = LayoutWriter::new();
        let a = layout
            .add_blob(Blob::new(MediaType::ImageConfig, b"{}".to_vec()))
            .unwrap();
        layout
            .add_blob(Blob::new(MediaType::ImageConfig, b"{}".to_vec()))
            .unwrap();
        layout.add_manifest(a.clone());
        let files = layout.files().unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
        let hex = a.digest().digest().to_string();
        assert_eq!(
            names,
            ["oci-layout", "index.json", &format!("blobs/sha256/{hex}")]
        );
        assert_eq!(files[0].1, br#"{"imageLayoutVersion":"1.0.0"}"#);
    }
}
