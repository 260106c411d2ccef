//! The CNCF TAG Runtime Wasm artifact config (`application/vnd.wasm.config.v0+json`), as
//! written by wasm-pkg-tools and read by other wasm runtimes.

use serde::{Deserialize, Serialize};

use crate::app::{AppKind, WasmApp};
use crate::component;

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

impl WasmConfig {
    /// The config for a single-layer artifact holding `app`, whose layer digest is
    /// `layer_digest`.
    pub fn for_app(
        app: &WasmApp,
        layer_digest: &str,
        created: &str,
        author: Option<&str>,
    ) -> Result<Self, String> {
        let component = match app.kind() {
            AppKind::Module => None,
            AppKind::Component => {
                let found = component::interfaces(app.bytes())?;
                Some(ComponentInfo {
                    exports: found.exports,
                    imports: found.imports,
                    target: None,
                })
            }
        };
        Ok(Self {
            created: created.to_string(),
            author: author.map(str::to_string),
            architecture: "wasm".to_string(),
            os: app.kind().wasi_os().to_string(),
            layer_digests: vec![layer_digest.to_string()],
            component,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_follow_the_format() {
        let app = WasmApp::from_bytes("a.wasm", b"\0asm\x01\0\0\0".to_vec()).unwrap();
        let config = WasmConfig::for_app(&app, "sha256:00", EPOCH, None).unwrap();
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "created": EPOCH,
                "architecture": "wasm",
                "os": "wasip1",
                "layerDigests": ["sha256:00"],
            })
        );
    }

    #[test]
    fn components_carry_their_interfaces() {
        let bytes =
            wat::parse_str(r#"(component (import "wasi:cli/stdout@0.2.0" (instance)))"#).unwrap();
        let app = WasmApp::from_bytes("c.wasm", bytes).unwrap();
        let config = WasmConfig::for_app(&app, "sha256:11", EPOCH, Some("me")).unwrap();
        assert_eq!(config.os, "wasip2");
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json["component"]["imports"][0], "wasi:cli/stdout@0.2.0");
        assert_eq!(json["author"], "me");
    }

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
