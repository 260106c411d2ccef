//! The Wasm artifact config the builder writes for an application.

use crate::build::app::{AppKind, WasmApp};
use crate::build::component;
use crate::format::wasm_config::{ComponentInfo, WasmConfig};

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
    use crate::format::wasm_config::EPOCH;

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
}
