//! Images whose layer is the wasm binary itself, in two forms:
//!
//! - [`WasmForm::Runnable`]: a standard OCI image config (`architecture: wasm`, `os: wasip1` or
//!   `wasip2`, entrypoint/cmd/env, no filesystem layers in `rootfs.diff_ids`) and one
//!   `application/wasm` layer. containerd 1.7 and 2.x store and run it; the shim reads the layer
//!   from containerd's content store.
//! - [`WasmForm::Artifact`]: the CNCF TAG Runtime Wasm artifact (config
//!   `application/vnd.wasm.config.v0+json`), for registries and other wasm runtimes. containerd
//!   refuses to run it ("unknown image config media type"), so it has no entrypoint, cmd or env.

use std::collections::{BTreeMap, HashMap};

use oci_spec::image::{
    ConfigBuilder, ImageConfigurationBuilder, ImageManifestBuilder, MediaType, RootFsBuilder,
    ANNOTATION_REF_NAME, SCHEMA_VERSION,
};

use crate::build::app::WasmApp;
use crate::build::blob::Blob;
use crate::error::{ImageError, Result};
use crate::build::image::BuiltImage;
use crate::build::json::to_canonical_vec;
use crate::build::layout::LayoutWriter;
use crate::format::media_types::{ANNOTATION_TITLE, WASM_CONFIG_V0, WASM_LAYER};
use crate::format::platform::Platform;
use crate::format::reference::{self, CONTAINERD_IMAGE_NAME};
use crate::format::wasm_config::{WasmConfig, EPOCH};

/// Which wasm-layer image to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WasmForm {
    /// Standard OCI config plus a wasm layer: runs on containerd 1.7+ with wasmbox.
    Runnable,
    /// CNCF TAG Runtime artifact: for registries and other runtimes.
    Artifact,
}

/// Builds a wasm-layer image from one application.
#[derive(Debug, Clone)]
pub struct WasmImageBuilder {
    reference: String,
    form: WasmForm,
    app: WasmApp,
    platform: Option<Platform>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    env: Vec<String>,
    annotations: BTreeMap<String, String>,
    created: String,
    author: Option<String>,
}

impl WasmImageBuilder {
    pub fn new(reference: impl Into<String>, form: WasmForm, app: WasmApp) -> Self {
        Self {
            reference: reference.into(),
            form,
            app,
            platform: None,
            entrypoint: None,
            cmd: None,
            env: Vec::new(),
            annotations: BTreeMap::new(),
            created: EPOCH.to_string(),
            author: None,
        }
    }

    /// Defaults to `wasip1/wasm` for modules and `wasip2/wasm` for components.
    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    /// The process args' head. Defaults to `/<app name>`, which is the guest's `argv[0]`
    /// (the file does not exist in the container: the module comes from the layer).
    pub fn entrypoint(mut self, args: Vec<String>) -> Self {
        self.entrypoint = Some(args);
        self
    }

    pub fn cmd(mut self, args: Vec<String>) -> Self {
        self.cmd = Some(args);
        self
    }

    pub fn env(mut self, vars: Vec<String>) -> Self {
        self.env.extend(vars);
        self
    }

    /// Manifest annotations.
    pub fn annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// The CNCF config's `created` (RFC 3339); a fixed epoch unless set, for reproducibility.
    pub fn created(mut self, created: impl Into<String>) -> Self {
        self.created = created.into();
        self
    }

    /// The CNCF config's `author`.
    pub fn author(mut self, author: impl Into<String>) -> Self {
        self.author = Some(author.into());
        self
    }

    fn platform_or_default(&self) -> Result<Platform> {
        match &self.platform {
            Some(p) => Ok(p.clone()),
            None => Platform::new(self.app.kind().wasi_os(), "wasm"),
        }
    }

    pub fn build(self) -> Result<BuiltImage> {
        reference::validate(&self.reference)?;
        let platform = self.platform_or_default()?;
        let mut layout = LayoutWriter::new();

        let layer = Blob::new(
            MediaType::Other(WASM_LAYER.to_string()),
            self.app.bytes().to_vec(),
        );
        let layer_digest = layer.digest_string();
        let mut layer_descriptor = layout.add_blob(layer)?;
        layer_descriptor.set_annotations(Some(HashMap::from([(
            ANNOTATION_TITLE.to_string(),
            self.app.name().to_string(),
        )])));

        let config = match self.form {
            WasmForm::Runnable => {
                Blob::new(MediaType::ImageConfig, self.runnable_config(&platform)?)
            }
            WasmForm::Artifact => Blob::new(
                MediaType::Other(WASM_CONFIG_V0.to_string()),
                self.artifact_config(&layer_digest)?,
            ),
        };
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
        manifest_descriptor.set_platform(Some(platform.to_oci()?));
        manifest_descriptor.set_annotations(Some(HashMap::from([
            (CONTAINERD_IMAGE_NAME.to_string(), self.reference.clone()),
            (
                ANNOTATION_REF_NAME.to_string(),
                reference::tag(&self.reference).to_string(),
            ),
        ])));
        layout.add_manifest(manifest_descriptor.clone());

        Ok(BuiltImage::new(
            self.reference,
            layout,
            manifest_descriptor,
            manifest_digest,
            config_digest,
            layer_digest,
        ))
    }

    fn runnable_config(&self, platform: &Platform) -> Result<Vec<u8>> {
        let entrypoint = self
            .entrypoint
            .clone()
            .unwrap_or_else(|| vec![format!("/{}", self.app.name())]);
        let mut runtime = ConfigBuilder::default().entrypoint(entrypoint);
        if let Some(cmd) = &self.cmd {
            runtime = runtime.cmd(cmd.clone());
        }
        if !self.env.is_empty() {
            runtime = runtime.env(self.env.clone());
        }
        // No filesystem layers: containerd gives the container an empty snapshot, and the wasm
        // layer is not a diff.
        let rootfs = RootFsBuilder::default()
            .typ("layers")
            .diff_ids(Vec::<String>::new())
            .build()?;
        let config = ImageConfigurationBuilder::default()
            .os(platform.oci_os())
            .architecture(platform.oci_arch())
            .config(runtime.build()?)
            .rootfs(rootfs)
            .build()?;
        to_canonical_vec(&config)
    }

    fn artifact_config(&self, layer_digest: &str) -> Result<Vec<u8>> {
        if self.entrypoint.is_some() || self.cmd.is_some() || !self.env.is_empty() {
            return Err(ImageError::InvalidOption(
                "the CNCF Wasm artifact config has no entrypoint, args or env \
                 (use the runnable wasm form or the compat form for those)"
                    .to_string(),
            ));
        }
        let config = WasmConfig::for_app(
            &self.app,
            layer_digest,
            &self.created,
            self.author.as_deref(),
        )
        .map_err(|e| ImageError::NotWasm {
            name: self.app.name().to_string(),
            reason: format!("is not a valid component ({e})"),
        })?;
        to_canonical_vec(&config)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

    use super::*;
    use crate::format::digest::sha256_hex;

    const REF: &str = "localhost:5000/wasmbox/hello:v1";

    fn module() -> WasmApp {
        WasmApp::from_bytes(
            "hello.wat",
            br#"(module (func (export "_start")))"#.to_vec(),
        )
        .unwrap()
    }

    fn component() -> WasmApp {
        let bytes =
            wat::parse_str(r#"(component (import "wasi:cli/stdout@0.2.0" (instance)))"#).unwrap();
        WasmApp::from_bytes("comp.wasm", bytes).unwrap()
    }

    fn files(image: &BuiltImage) -> BTreeMap<String, Vec<u8>> {
        image.layout().files().unwrap().into_iter().collect()
    }

    fn blob<'a>(files: &'a BTreeMap<String, Vec<u8>>, digest: &str) -> &'a [u8] {
        let hex = digest.strip_prefix("sha256:").unwrap();
        let bytes = &files[&format!("blobs/sha256/{hex}")];
        assert_eq!(sha256_hex(bytes), hex);
        bytes
    }

    fn manifest(image: &BuiltImage) -> ImageManifest {
        serde_json::from_slice(blob(&files(image), image.manifest_digest())).unwrap()
    }

    #[test]
    fn same_input_same_bytes() {
        for form in [WasmForm::Runnable, WasmForm::Artifact] {
            let tar = |app: WasmApp| {
                let mut out = Vec::new();
                WasmImageBuilder::new(REF, form, app)
                    .annotation("org.opencontainers.image.source", "https://example.com")
                    .build()
                    .unwrap()
                    .write_tar(&mut out)
                    .unwrap();
                out
            };
            assert_eq!(tar(module()), tar(module()), "{form:?}");
            assert_ne!(tar(module()), tar(component()), "{form:?}");
        }
    }

    #[test]
    fn runnable_form_has_a_standard_config_and_a_wasm_layer() {
        let image = WasmImageBuilder::new(REF, WasmForm::Runnable, module())
            .cmd(vec!["a".into()])
            .env(vec!["K=V".into()])
            .build()
            .unwrap();
        let files = files(&image);
        let manifest = manifest(&image);
        assert_eq!(
            manifest.config().media_type().to_string(),
            "application/vnd.oci.image.config.v1+json"
        );
        assert_eq!(manifest.layers().len(), 1);
        let layer = &manifest.layers()[0];
        assert_eq!(layer.media_type().to_string(), WASM_LAYER);
        assert_eq!(layer.digest().to_string(), image.layer_digest());
        assert_eq!(blob(&files, image.layer_digest()), module().bytes());
        assert_eq!(
            layer.annotations().as_ref().unwrap()[ANNOTATION_TITLE],
            "hello.wasm"
        );

        let config: ImageConfiguration =
            serde_json::from_slice(blob(&files, image.config_digest())).unwrap();
        assert_eq!(config.architecture().to_string(), "wasm");
        assert_eq!(config.os().to_string(), "wasip1");
        assert!(config.rootfs().diff_ids().is_empty());
        let runtime = config.config().as_ref().unwrap();
        assert_eq!(
            runtime.entrypoint().as_deref(),
            Some(&["/hello.wasm".to_string()][..])
        );
        assert_eq!(runtime.cmd().as_deref(), Some(&["a".to_string()][..]));
        assert_eq!(runtime.env().as_deref(), Some(&["K=V".to_string()][..]));

        let index: ImageIndex = serde_json::from_slice(&files["index.json"]).unwrap();
        let platform = index.manifests()[0].platform().as_ref().unwrap();
        assert_eq!(
            (
                platform.os().to_string(),
                platform.architecture().to_string()
            ),
            ("wasip1".into(), "wasm".into())
        );
        assert!(
            !files.contains_key("manifest.json"),
            "docker's format cannot hold wasm layers"
        );
    }

    #[test]
    fn components_default_to_wasip2() {
        let image = WasmImageBuilder::new(REF, WasmForm::Runnable, component())
            .build()
            .unwrap();
        let platform = image.manifest_descriptor().platform().as_ref().unwrap();
        assert_eq!(platform.os().to_string(), "wasip2");
    }

    #[test]
    fn artifact_form_follows_the_cncf_format() {
        let image = WasmImageBuilder::new(REF, WasmForm::Artifact, component())
            .annotation("k", "v")
            .created("2024-01-02T03:04:05Z")
            .build()
            .unwrap();
        let files = files(&image);
        let manifest = manifest(&image);
        assert_eq!(
            manifest.media_type().as_ref().unwrap().to_string(),
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(manifest.config().media_type().to_string(), WASM_CONFIG_V0);
        assert_eq!(manifest.layers()[0].media_type().to_string(), WASM_LAYER);
        assert_eq!(manifest.annotations().as_ref().unwrap()["k"], "v");

        let config: WasmConfig =
            serde_json::from_slice(blob(&files, image.config_digest())).unwrap();
        assert_eq!(config.architecture, "wasm");
        assert_eq!(config.os, "wasip2");
        assert_eq!(config.created, "2024-01-02T03:04:05Z");
        assert_eq!(config.layer_digests, [image.layer_digest().to_string()]);
        assert_eq!(config.component.unwrap().imports, ["wasi:cli/stdout@0.2.0"]);
    }

    #[test]
    fn artifacts_refuse_process_settings() {
        let err = WasmImageBuilder::new(REF, WasmForm::Artifact, module())
            .env(vec!["A=1".into()])
            .build()
            .unwrap_err();
        assert!(
            err.to_string().contains("no entrypoint, args or env"),
            "{err}"
        );
    }
}
