//! Assembly of a single-platform, single-layer image: config, manifest and index descriptor,
//! handed to the layout writer.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

use oci_spec::image::{
    ConfigBuilder, Descriptor, ImageConfigurationBuilder, ImageManifestBuilder, MediaType,
    RootFsBuilder, ANNOTATION_REF_NAME, SCHEMA_VERSION,
};

use crate::build::blob::Blob;
use crate::error::{ImageError, Result};
use crate::build::json::to_canonical_vec;
use crate::build::layer::LayerBuilder;
use crate::build::layout::LayoutWriter;
use crate::format::platform::Platform;
use crate::format::reference::{self, CONTAINERD_IMAGE_NAME};

/// Builds an image step by step; errors from the chained setters surface in [`ImageBuilder::build`].
#[derive(Debug)]
pub struct ImageBuilder {
    reference: String,
    platform: Platform,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Vec<String>,
    working_dir: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    layer: LayerBuilder,
    // The first failure of a chained call, kept so the chain stays ergonomic.
    error: Option<ImageError>,
}

impl ImageBuilder {
    pub fn new(reference: impl Into<String>) -> Self {
        Self {
            reference: reference.into(),
            platform: Platform::default(),
            entrypoint: None,
            cmd: None,
            env: Vec::new(),
            working_dir: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            layer: LayerBuilder::new(),
            error: None,
        }
    }

    pub fn platform(mut self, os: &str, arch: &str) -> Self {
        match Platform::new(os, arch) {
            Ok(p) => self.platform = p,
            Err(e) => self.keep(e),
        }
        self
    }

    pub fn entrypoint<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.entrypoint = Some(args.into_iter().map(Into::into).collect());
        self
    }

    pub fn cmd<S: Into<String>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.cmd = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// `KEY=value` entries, appended in order.
    pub fn env<S: Into<String>>(mut self, vars: impl IntoIterator<Item = S>) -> Self {
        self.env.extend(vars.into_iter().map(Into::into));
        self
    }

    pub fn working_dir(mut self, dir: impl Into<String>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// A manifest annotation.
    pub fn annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    pub fn file(mut self, path: &str, bytes: impl Into<Vec<u8>>, mode: u32) -> Self {
        if let Err(e) = self.layer.file(path, bytes, mode) {
            self.keep(e);
        }
        self
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        if let Err(e) = self.layer.dir(path, mode) {
            self.keep(e);
        }
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        if let Err(e) = self.layer.symlink(path, target) {
            self.keep(e);
        }
        self
    }

    fn keep(&mut self, e: ImageError) {
        self.error.get_or_insert(e);
    }

    /// Hashes every blob and lays the image out; nothing is written yet.
    pub fn build(self) -> Result<BuiltImage> {
        if let Some(e) = self.error {
            return Err(e);
        }
        reference::validate(&self.reference)?;
        let mut layout = LayoutWriter::new();

        let layer = Blob::new(MediaType::ImageLayer, self.layer.to_tar()?);
        let layer_digest = layer.digest_string();
        let layer_descriptor = layout.add_blob(layer)?;

        let config = Blob::new(MediaType::ImageConfig, self.config_json(&layer_digest)?);
        let config_digest = config.digest_string();
        let config_descriptor = layout.add_blob(config)?;

        let mut manifest = ImageManifestBuilder::default()
            .schema_version(SCHEMA_VERSION)
            .media_type(MediaType::ImageManifest)
            .config(config_descriptor)
            .layers(vec![layer_descriptor])
            .build()?;
        if !self.annotations.is_empty() {
            manifest.set_annotations(Some(self.annotations.clone().into_iter().collect()));
        }
        let manifest = Blob::new(MediaType::ImageManifest, to_canonical_vec(&manifest)?);
        let manifest_digest = manifest.digest_string();
        let mut manifest_descriptor = layout.add_blob(manifest)?;
        manifest_descriptor.set_platform(Some(self.platform.to_oci()?));
        manifest_descriptor.set_annotations(Some(HashMap::from([
            (CONTAINERD_IMAGE_NAME.to_string(), self.reference.clone()),
            (
                ANNOTATION_REF_NAME.to_string(),
                reference::tag(&self.reference).to_string(),
            ),
        ])));
        layout.add_manifest(manifest_descriptor.clone());
        let docker =
            crate::build::docker::manifest_json(&self.reference, &config_digest, &[&layer_digest])?;
        layout.add_file("manifest.json", docker);

        Ok(BuiltImage {
            reference: self.reference,
            layout,
            manifest: manifest_descriptor,
            manifest_digest,
            config_digest,
            layer_digest,
        })
    }

    /// Convenience: build and write the layout tar in one go.
    pub fn write_tar<W: Write>(self, writer: W) -> Result<BuiltImage> {
        let image = self.build()?;
        image.write_tar(writer)?;
        Ok(image)
    }

    fn config_json(&self, layer_digest: &str) -> Result<Vec<u8>> {
        let mut runtime = ConfigBuilder::default();
        if let Some(entrypoint) = &self.entrypoint {
            runtime = runtime.entrypoint(entrypoint.clone());
        }
        if let Some(cmd) = &self.cmd {
            runtime = runtime.cmd(cmd.clone());
        }
        if !self.env.is_empty() {
            runtime = runtime.env(self.env.clone());
        }
        if let Some(dir) = &self.working_dir {
            runtime = runtime.working_dir(dir.clone());
        }
        if !self.labels.is_empty() {
            let labels: HashMap<String, String> = self.labels.clone().into_iter().collect();
            runtime = runtime.labels(labels);
        }
        let rootfs = RootFsBuilder::default()
            .typ("layers")
            .diff_ids(vec![layer_digest.to_string()])
            .build()?;
        // No `created` or history: a timestamp would make every build differ.
        let config = ImageConfigurationBuilder::default()
            .os(self.platform.oci_os())
            .architecture(self.platform.oci_arch())
            .config(runtime.build()?)
            .rootfs(rootfs)
            .build()?;
        to_canonical_vec(&config)
    }
}

/// A fully hashed image, ready to be written.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    reference: String,
    layout: LayoutWriter,
    manifest: Descriptor,
    manifest_digest: String,
    config_digest: String,
    layer_digest: String,
}

impl BuiltImage {
    /// For the other image builders of this crate.
    pub(crate) fn new(
        reference: String,
        layout: LayoutWriter,
        manifest: Descriptor,
        manifest_digest: String,
        config_digest: String,
        layer_digest: String,
    ) -> Self {
        Self {
            reference,
            layout,
            manifest,
            manifest_digest,
            config_digest,
            layer_digest,
        }
    }

    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// The index's descriptor of the manifest (with platform and name annotations).
    pub fn manifest_descriptor(&self) -> &Descriptor {
        &self.manifest
    }

    /// `sha256:...` of the manifest, i.e. the image's digest.
    pub fn manifest_digest(&self) -> &str {
        &self.manifest_digest
    }

    pub fn config_digest(&self) -> &str {
        &self.config_digest
    }

    /// The digest of the layer: the (uncompressed) filesystem tar, equal to its diff id, or the
    /// wasm binary of a wasm-layer image.
    pub fn layer_digest(&self) -> &str {
        &self.layer_digest
    }

    pub fn layout(&self) -> &LayoutWriter {
        &self.layout
    }

    pub fn write_tar<W: Write>(&self, writer: W) -> Result<()> {
        self.layout.write_tar(writer)
    }

    /// Writes the layout tar to `path` (truncating it).
    pub fn write_tar_file(&self, path: &Path) -> Result<()> {
        let file = std::fs::File::create(path)?;
        self.write_tar(std::io::BufWriter::new(file))
    }

    pub fn write_dir(&self, root: &Path) -> Result<()> {
        self.layout.write_dir(root)
    }
}
