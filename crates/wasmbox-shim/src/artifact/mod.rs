//! Wasm from the container's image instead of its rootfs: Wasm OCI images whose layer is the
//! wasm binary (`application/wasm`, runwasi's component layer, `application/vnd.wasm.content.layer.v1+wasm`),
//! including the CNCF TAG Runtime artifact layout.
//!
//! containerd does not unpack such layers into the rootfs, so the shim asks containerd over its
//! gRPC socket (the shim's `-address`): the container's image name, the image's target, the
//! manifest with wasm layers, and the first wasm layer's bytes from the content store, checked
//! against their digest. The bytes then take the same path as a module found in the rootfs:
//! the compile cache, keyed by the wasm's own hash. Nothing precompiled is taken from an image.

mod client;
mod decode;
mod error;
pub mod select;
mod verify;

pub use client::{Client, ImageEvent};
pub use decode::decode as decode_layer;
pub use error::ArtifactError;
use wasmbox_wasm::compile::kind::FileKind;

use select::BlobSource;

/// The entrypoint wasm of a container's image.
#[derive(Debug)]
pub struct ImageWasm {
    /// The layer's `org.opencontainers.image.title` (its file name), if any.
    pub title: Option<String>,
    /// Module or Component.
    pub kind: FileKind,
    /// Binary wasm (WAT already converted).
    pub wasm: Vec<u8>,
}

/// Where to find containerd: its gRPC socket and the shim's namespace.
#[derive(Debug, Clone)]
pub struct ContentSource {
    address: String,
    namespace: String,
}

impl ContentSource {
    pub fn new(address: &str, namespace: &str) -> Self {
        Self {
            address: address.to_string(),
            namespace: namespace.to_string(),
        }
    }

    /// The wasm entrypoint layer of container `id`'s image; None when the container has no
    /// image or the image has no wasm layer.
    pub fn wasm_of_container(&self, id: &str) -> Result<Option<ImageWasm>, ArtifactError> {
        if self.address.is_empty() {
            return Ok(None);
        }
        let mut client = client::Client::connect(&self.address, &self.namespace)?;
        let image = client.container_image(id)?;
        if image.is_empty() {
            return Ok(None);
        }
        let target = client.image_target(&image)?;
        let Some(selected) = select::wasm_entrypoint_layer(&mut client, &image, &target)? else {
            return Ok(None);
        };
        let layer = selected.layer;
        let bytes = client.read(&layer, "wasm layer", select::WASM_LIMIT)?;
        let (kind, wasm) = decode::decode(bytes).map_err(|reason| ArtifactError::NotWasm {
            image: image.clone(),
            digest: layer.digest.clone(),
            media_type: layer.media_type.clone(),
            reason,
        })?;
        if let Some(os) = &selected.wasm_config_os {
            let expected = if kind == FileKind::Component {
                "wasip2"
            } else {
                "wasip1"
            };
            if os != expected {
                log::warn!(
                    "image {image}: Wasm config says os {os}, but layer {} is a {kind:?}",
                    layer.digest
                );
            }
        }
        log::info!(
            "container {id}: wasm entrypoint from image {image}, manifest {}, layer {} ({})",
            selected.manifest_digest,
            layer.digest,
            layer.media_type
        );
        Ok(Some(ImageWasm {
            title: layer
                .annotations
                .get(wasmbox_image::media_types::ANNOTATION_TITLE)
                .cloned(),
            kind,
            wasm,
        }))
    }
}

/// For the task service's Create: the wasm of container `id`'s image as an entrypoint, when
/// `args[0]` (if any) is not in the rootfs. argv[0] is `args[0]` (a `#func` suffix names the
/// export to call, as for files), else `/` plus the layer's title.
pub fn image_entrypoint(
    source: Option<&ContentSource>,
    id: &str,
    arg0: Option<&str>,
) -> Result<Option<wasmbox_wasm::compile::entrypoint::WasmEntrypoint>, String> {
    let Some(source) = source else {
        return Ok(None);
    };
    let found = match source.wasm_of_container(id) {
        Ok(Some(found)) => found,
        Ok(None) => return Ok(None),
        // Not knowing whether the image has wasm layers, say first what is certain.
        Err(e @ (ArtifactError::Connect { .. } | ArtifactError::Containerd { .. } | ArtifactError::Timeout(_))) => {
            return Err(match arg0 {
                Some(a) => format!(
                    "entrypoint {a:?} not found in the container's rootfs, and its image could not be checked \
                     for wasm layers: {e}"
                ),
                None => {
                    format!("the spec's process has no args, and its image could not be checked for wasm layers: {e}")
                }
            });
        }
        Err(e) => return Err(e.to_string()),
    };
    let (guest_path, func) = argv0_and_func(arg0, found.title.as_deref());
    Ok(Some(wasmbox_wasm::compile::entrypoint::WasmEntrypoint {
        guest_path,
        func,
        kind: found.kind,
        wasm: found.wasm,
        unread: None,
        digest: None,
    }))
}

/// The guest's argv[0] and the export to call: `args[0]` split at its last `#` (there is no
/// file whose name could contain one), else `/` plus the layer's title.
fn argv0_and_func(arg0: Option<&str>, title: Option<&str>) -> (String, Option<String>) {
    match arg0 {
        Some(a) => match a.rsplit_once('#') {
            Some((path, func)) if !path.is_empty() && !func.is_empty() => (path.to_string(), Some(func.to_string())),
            _ => (a.to_string(), None),
        },
        None => (format!("/{}", title.unwrap_or("app.wasm")), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv0_comes_from_args_or_the_layer_title() {
        assert_eq!(argv0_and_func(Some("/app.wasm"), None), ("/app.wasm".into(), None));
        assert_eq!(
            argv0_and_func(Some("/app.wasm#run"), Some("x.wasm")),
            ("/app.wasm".into(), Some("run".into()))
        );
        assert_eq!(argv0_and_func(Some("name#"), None), ("name#".into(), None));
        assert_eq!(argv0_and_func(None, Some("hello.wasm")), ("/hello.wasm".into(), None));
        assert_eq!(argv0_and_func(None, None), ("/app.wasm".into(), None));
    }
}
