//! Media types of Wasm OCI images, shared by the image builder and the shim that reads them.

/// CNCF TAG Runtime Wasm artifact config (`application/vnd.wasm.config.v0+json`).
pub const WASM_CONFIG_V0: &str = "application/vnd.wasm.config.v0+json";
/// CNCF TAG Runtime Wasm layer: a module or component, as is.
pub const WASM_LAYER: &str = "application/wasm";
/// runwasi's component layer.
pub const RUNWASI_COMPONENT_LAYER: &str =
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm";
/// The older wasm-to-oci / solo.io layer type.
pub const WASM_CONTENT_LAYER_V1: &str = "application/vnd.wasm.content.layer.v1+wasm";

/// Every layer media type whose content is a wasm binary, in no particular order.
pub const WASM_LAYER_TYPES: [&str; 3] =
    [WASM_LAYER, RUNWASI_COMPONENT_LAYER, WASM_CONTENT_LAYER_V1];

/// Annotation naming a layer's file (oras writes the layer under this name on pull).
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";

/// True when a layer of this media type holds a wasm binary rather than a filesystem tar.
pub fn is_wasm_layer(media_type: &str) -> bool {
    WASM_LAYER_TYPES.contains(&media_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_layers_are_recognised_and_tars_are_not() {
        for t in WASM_LAYER_TYPES {
            assert!(is_wasm_layer(t));
        }
        assert!(!is_wasm_layer("application/vnd.oci.image.layer.v1.tar"));
        assert!(!is_wasm_layer(
            "application/vnd.oci.image.layer.v1.tar+gzip"
        ));
        assert!(!is_wasm_layer(WASM_CONFIG_V0));
    }
}
