//! Finding the entrypoint layer of an image: from its target (an index or a manifest) to the
//! manifest with wasm layers, then its first wasm layer ("layer 0 is the entrypoint" in the
//! CNCF TAG Runtime format; the other layer types are read the same way).
//!
//! Pure logic over a [`BlobSource`], so it is tested without containerd.

use std::collections::HashMap;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use wasmbox_image::media_types::{is_wasm_layer, WASM_CONFIG_V0};
use wasmbox_image::WasmConfig;

use super::error::ArtifactError;

/// Size caps: JSON blobs are small; wasm binaries can be large, but not unboundedly.
pub const JSON_LIMIT: i64 = 4 << 20;
pub const WASM_LIMIT: i64 = 512 << 20;

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// A descriptor, as containerd's API and the OCI JSON both give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    pub annotations: HashMap<String, String>,
}

impl From<&Descriptor> for BlobRef {
    fn from(d: &Descriptor) -> Self {
        Self {
            media_type: d.media_type().to_string(),
            digest: d.digest().to_string(),
            size: i64::try_from(d.size()).unwrap_or(i64::MAX),
            annotations: d.annotations().clone().unwrap_or_default(),
        }
    }
}

/// Where blobs come from. Implementations return only content that matches the descriptor.
pub trait BlobSource {
    fn read(&mut self, blob: &BlobRef, what: &'static str, limit: i64) -> Result<Vec<u8>, ArtifactError>;
}

/// The entrypoint layer and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub layer: BlobRef,
    pub manifest_digest: String,
    /// `os` of the CNCF Wasm config (`wasip1`/`wasip2`), when the image has one.
    pub wasm_config_os: Option<String>,
}

/// The first wasm layer of the image `target` points at, or None if the image has none (an
/// ordinary image: its entrypoint is a file in the rootfs).
pub fn wasm_entrypoint_layer(
    source: &mut dyn BlobSource,
    image: &str,
    target: &BlobRef,
) -> Result<Option<Selected>, ArtifactError> {
    for (descriptor, known_bytes) in manifest_candidates(source, image, target)? {
        let manifest = read_manifest(source, image, &descriptor, known_bytes)?;
        let Some(layer) = manifest
            .layers()
            .iter()
            .find(|l| is_wasm_layer(l.media_type().as_ref()))
        else {
            continue;
        };
        let layer = BlobRef::from(layer);
        let wasm_config_os = wasm_config(source, image, &manifest, &layer)?;
        return Ok(Some(Selected {
            layer,
            manifest_digest: descriptor.digest.clone(),
            wasm_config_os,
        }));
    }
    Ok(None)
}

/// The manifest this host would run of the image `target` points at (the best of an index's,
/// see [`candidates`]), with its digest; None when an index lists none this host can run.
pub fn first_manifest(
    source: &mut dyn BlobSource,
    image: &str,
    target: &BlobRef,
) -> Result<Option<(String, ImageManifest)>, ArtifactError> {
    let Some((descriptor, known_bytes)) = manifest_candidates(source, image, target)?.into_iter().next() else {
        return Ok(None);
    };
    let manifest = read_manifest(source, image, &descriptor, known_bytes)?;
    Ok(Some((descriptor.digest, manifest)))
}

/// The manifests of the image `target` points at, best first, with the bytes of the one
/// already read (a target that is a manifest itself).
fn manifest_candidates(
    source: &mut dyn BlobSource,
    image: &str,
    target: &BlobRef,
) -> Result<Vec<(BlobRef, Option<Vec<u8>>)>, ArtifactError> {
    let bytes = source.read(target, "image target", JSON_LIMIT)?;
    if is_index(&target.media_type, &bytes) {
        let index: ImageIndex = parse(image, "index", &target.digest, &bytes)?;
        return Ok(candidates(&index));
    }
    Ok(vec![(target.clone(), Some(bytes))])
}

fn read_manifest(
    source: &mut dyn BlobSource,
    image: &str,
    descriptor: &BlobRef,
    known_bytes: Option<Vec<u8>>,
) -> Result<ImageManifest, ArtifactError> {
    let bytes = match known_bytes {
        Some(b) => b,
        None => source.read(descriptor, "manifest", JSON_LIMIT)?,
    };
    parse(image, "manifest", &descriptor.digest, &bytes)
}

/// With a CNCF Wasm config, checks that it lists the layer (the config is what the image id
/// is computed from, so a layer it does not name is not part of this image).
fn wasm_config(
    source: &mut dyn BlobSource,
    image: &str,
    manifest: &ImageManifest,
    layer: &BlobRef,
) -> Result<Option<String>, ArtifactError> {
    let config = BlobRef::from(manifest.config());
    if config.media_type != WASM_CONFIG_V0 {
        return Ok(None);
    }
    let bytes = source.read(&config, "Wasm config", JSON_LIMIT)?;
    let parsed: WasmConfig = parse(image, "Wasm config", &config.digest, &bytes)?;
    if !parsed.layer_digests.is_empty() && !parsed.layer_digests.contains(&layer.digest) {
        return Err(ArtifactError::LayerNotInConfig {
            image: image.to_string(),
            digest: layer.digest.clone(),
        });
    }
    Ok(Some(parsed.os).filter(|os| !os.is_empty()))
}

fn is_index(media_type: &str, bytes: &[u8]) -> bool {
    if INDEX_TYPES.contains(&media_type) {
        return true;
    }
    // Some producers leave the media type out; the index is the JSON with `manifests`.
    media_type.is_empty()
        && serde_json::from_slice::<serde_json::Value>(bytes).is_ok_and(|v| v.get("manifests").is_some())
}

/// The index's manifests this host can run, best first: wasm platforms, then linux/amd64, then
/// manifests without a platform. Nested indexes and other platforms are skipped.
fn candidates(index: &ImageIndex) -> Vec<(BlobRef, Option<Vec<u8>>)> {
    let mut ranked: Vec<(u8, BlobRef)> = index
        .manifests()
        .iter()
        .filter(|d| !INDEX_TYPES.contains(&d.media_type().to_string().as_str()))
        .filter_map(|d| {
            let rank = match d.platform() {
                Some(p) if p.architecture().to_string() == "wasm" => 0,
                Some(p) if p.os().to_string() == "linux" && p.architecture().to_string() == "amd64" => 1,
                Some(_) => return None,
                None => 2,
            };
            Some((rank, BlobRef::from(d)))
        })
        .collect();
    // Stable: equal ranks keep the index's order.
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(_, d)| (d, None)).collect()
}

pub fn parse<T: serde::de::DeserializeOwned>(
    image: &str,
    what: &'static str,
    digest: &str,
    bytes: &[u8],
) -> Result<T, ArtifactError> {
    serde_json::from_slice(bytes).map_err(|e| ArtifactError::InvalidJson {
        image: image.to_string(),
        what,
        digest: digest.to_string(),
        message: e.to_string(),
    })
}

/// An in-memory content store for the tests of what reads images through a [`BlobSource`].
#[cfg(test)]
pub mod test_store {
    use std::collections::HashMap;

    use wasmbox_image::BuiltImage;

    use super::{BlobRef, BlobSource};
    use crate::artifact::{verify, ArtifactError};

    /// Blobs by digest, verified on read like the real client does.
    #[derive(Default)]
    pub struct Store(pub HashMap<String, Vec<u8>>);

    impl Store {
        /// A store holding every blob of `image`.
        pub fn of(image: &BuiltImage) -> Self {
            let mut store = Self::default();
            store.add_layout(image);
            store
        }

        pub fn add_layout(&mut self, image: &BuiltImage) {
            for blob in image.layout().blobs() {
                self.0.insert(blob.digest_string(), blob.bytes().to_vec());
            }
        }

        /// Stores `bytes`; returns their digest.
        pub fn add(&mut self, bytes: Vec<u8>) -> String {
            let digest = format!("sha256:{}", wasmbox_image::sha256_hex(&bytes));
            self.0.insert(digest.clone(), bytes);
            digest
        }
    }

    impl BlobSource for Store {
        fn read(&mut self, blob: &BlobRef, _what: &'static str, _limit: i64) -> Result<Vec<u8>, ArtifactError> {
            let bytes = self
                .0
                .get(&blob.digest)
                .cloned()
                .ok_or_else(|| ArtifactError::Containerd {
                    what: "read".into(),
                    message: "not found".into(),
                })?;
            verify::verify(&blob.digest, blob.size, &bytes)?;
            Ok(bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use wasmbox_image::media_types::{RUNWASI_COMPONENT_LAYER, WASM_CONTENT_LAYER_V1, WASM_LAYER};
    use wasmbox_image::{BuiltImage, ImageBuilder, WasmApp, WasmForm, WasmImageBuilder};

    use super::test_store::Store;
    use super::*;

    fn module() -> WasmApp {
        WasmApp::from_bytes("hello.wasm", b"\0asm\x01\0\0\0".to_vec()).unwrap()
    }

    fn target_of(image: &BuiltImage) -> BlobRef {
        BlobRef::from(image.manifest_descriptor())
    }

    #[test]
    fn the_runnable_form_yields_its_wasm_layer() {
        let image = WasmImageBuilder::new("r:1", WasmForm::Runnable, module())
            .build()
            .unwrap();
        let mut store = Store::default();
        store.add_layout(&image);
        let selected = wasm_entrypoint_layer(&mut store, "r:1", &target_of(&image))
            .unwrap()
            .unwrap();
        assert_eq!(selected.layer.digest, image.layer_digest());
        assert_eq!(selected.layer.media_type, WASM_LAYER);
        assert_eq!(selected.wasm_config_os, None);
    }

    #[test]
    fn the_cncf_artifact_is_read_with_its_config() {
        let image = WasmImageBuilder::new("a:1", WasmForm::Artifact, module())
            .build()
            .unwrap();
        let mut store = Store::default();
        store.add_layout(&image);
        let selected = wasm_entrypoint_layer(&mut store, "a:1", &target_of(&image))
            .unwrap()
            .unwrap();
        assert_eq!(selected.layer.digest, image.layer_digest());
        assert_eq!(selected.wasm_config_os.as_deref(), Some("wasip1"));
    }

    #[test]
    fn compat_images_have_no_wasm_layer() {
        let image = ImageBuilder::new("c:1")
            .file("/app.wasm", b"\0asm\x01\0\0\0".to_vec(), 0o755)
            .build()
            .unwrap();
        let mut store = Store::default();
        store.add_layout(&image);
        assert_eq!(
            wasm_entrypoint_layer(&mut store, "c:1", &target_of(&image)).unwrap(),
            None
        );
    }

    /// A manifest (standard config) with the given layers, stored; returns its descriptor.
    fn manifest_with_layers(store: &mut Store, layers: &[(&str, &[u8])], config_type: &str, config: &[u8]) -> BlobRef {
        let config_digest = store.add(config.to_vec());
        let layers: Vec<serde_json::Value> = layers
            .iter()
            .map(|(media_type, bytes)| {
                let digest = store.add(bytes.to_vec());
                serde_json::json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
            })
            .collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": config_type, "digest": config_digest, "size": config.len()},
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        BlobRef {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: bytes.len() as i64,
            digest: store.add(bytes),
            annotations: HashMap::new(),
        }
    }

    #[test]
    fn every_wasm_layer_type_is_accepted_and_the_first_wasm_layer_wins() {
        for media_type in [WASM_LAYER, RUNWASI_COMPONENT_LAYER, WASM_CONTENT_LAYER_V1] {
            let mut store = Store::default();
            let target = manifest_with_layers(
                &mut store,
                &[
                    ("application/vnd.oci.image.layer.v1.tar", b"tar"),
                    (media_type, b"\0asm\x01\0\0\0first"),
                    (media_type, b"\0asm\x01\0\0\0second"),
                ],
                "application/vnd.oci.image.config.v1+json",
                b"{}",
            );
            let selected = wasm_entrypoint_layer(&mut store, "x", &target).unwrap().unwrap();
            assert_eq!(store.0[&selected.layer.digest], b"\0asm\x01\0\0\0first", "{media_type}");
        }
    }

    #[test]
    fn an_index_prefers_the_wasm_platform() {
        let mut store = Store::default();
        let linux = manifest_with_layers(
            &mut store,
            &[(WASM_LAYER, b"\0asm\x01\0\0\0linux")],
            "application/vnd.oci.image.config.v1+json",
            b"{}",
        );
        let wasm = manifest_with_layers(
            &mut store,
            &[(WASM_LAYER, b"\0asm\x01\0\0\0wasm")],
            "application/vnd.oci.image.config.v1+json",
            b"{\"os\":\"wasip1\"}",
        );
        let arm = manifest_with_layers(
            &mut store,
            &[(WASM_LAYER, b"\0asm\x01\0\0\0arm")],
            "application/vnd.oci.image.config.v1+json",
            b"{\"os\":\"linux\"}",
        );
        let entry = |d: &BlobRef, os: &str, arch: &str| {
            serde_json::json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size,
                "platform": {"os": os, "architecture": arch}})
        };
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [entry(&arm, "linux", "arm64"), entry(&linux, "linux", "amd64"), entry(&wasm, "wasip1", "wasm")],
        });
        let bytes = serde_json::to_vec(&index).unwrap();
        let target = BlobRef {
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            size: bytes.len() as i64,
            digest: store.add(bytes),
            annotations: HashMap::new(),
        };
        let selected = wasm_entrypoint_layer(&mut store, "x", &target).unwrap().unwrap();
        assert_eq!(selected.manifest_digest, wasm.digest);
        assert_eq!(store.0[&selected.layer.digest], b"\0asm\x01\0\0\0wasm");
    }

    #[test]
    fn a_tampered_layer_or_manifest_is_refused() {
        let image = WasmImageBuilder::new("r:1", WasmForm::Runnable, module())
            .build()
            .unwrap();
        let mut store = Store::default();
        store.add_layout(&image);
        let target = target_of(&image);
        // The manifest is fine, so the layer is selected; reading it is what must fail.
        let selected = wasm_entrypoint_layer(&mut store, "r:1", &target).unwrap().unwrap();
        store
            .0
            .insert(selected.layer.digest.clone(), b"\0asm\x01\0\0\0evil".to_vec());
        let err = store.read(&selected.layer, "wasm layer", WASM_LIMIT).unwrap_err();
        assert!(matches!(err, ArtifactError::DigestMismatch { .. }), "{err}");

        store.0.insert(target.digest.clone(), b"{}".to_vec());
        let err = wasm_entrypoint_layer(&mut store, "r:1", &target).unwrap_err();
        assert!(matches!(err, ArtifactError::DigestMismatch { .. }), "{err}");
    }

    #[test]
    fn a_wasm_config_that_does_not_list_the_layer_is_refused() {
        let mut store = Store::default();
        let config = br#"{"created":"1970-01-01T00:00:00Z","architecture":"wasm","os":"wasip1","layerDigests":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}"#;
        let target = manifest_with_layers(&mut store, &[(WASM_LAYER, b"\0asm\x01\0\0\0")], WASM_CONFIG_V0, config);
        let err = wasm_entrypoint_layer(&mut store, "x", &target).unwrap_err();
        assert!(matches!(err, ArtifactError::LayerNotInConfig { .. }), "{err}");
    }
}
