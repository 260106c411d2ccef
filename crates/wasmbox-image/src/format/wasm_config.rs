//! The CNCF TAG Runtime Wasm artifact config (`application/vnd.wasm.config.v0+json`), as
//! written by wasm-pkg-tools and read by other wasm runtimes (and by the shim).

use serde::{Deserialize, Serialize};


/// `created` when the caller gives none: a fixed time, so the same input gives the same digest.
pub const EPOCH: &str = "1970-01-01T00:00:00Z";

/// The config blob of a Wasm OCI artifact. Unknown fields are ignored when reading, so newer
/// producers stay readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    /// RFC 3339 time. Required by the format.
    #[serde(default)]
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Always `wasm`.
    #[serde(default)]
    pub architecture: String,
    /// `wasip1` for modules, `wasip2` for components.
    #[serde(default)]
    pub os: String,
    /// The digests of the manifest's layers, in order (so the config, hence the image id, is
    /// unique per content).
    #[serde(default)]
    pub layer_digests: Vec<String>,
    /// Required when `os` is `wasip2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentInfo>,
}

/// What a component imports and exports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentInfo {
    #[serde(default)]
    pub exports: Vec<String>,
    #[serde(default)]
    pub imports: Vec<String>,
    /// The world the component targets, when known (e.g. `wasi:http/proxy@0.2.0`).
    #[serde(default)]
    pub target: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_producers_configs_are_readable() {
        let text = r#"{"created":"2024-05-01T10:00:00Z","architecture":"wasm","os":"wasip2",
            "layerDigests":["sha256:ab"],"component":{"exports":["wasi:http/incoming-handler@0.2.0"],
            "imports":[],"target":null},"somethingNew":1}"#;
        let config: WasmConfig = serde_json::from_str(text).unwrap();
        assert_eq!(config.layer_digests, ["sha256:ab"]);
        assert_eq!(config.component.unwrap().exports.len(), 1);
    }
}
