//! The application an image is built from: a wasm module, a wasm component, or WAT text
//! (turned into its binary form). Anything else is refused before it can reach an image, above
//! all Wasmtime's precompiled `.cwasm` files: they are native machine code, and wasmbox only
//! runs code it compiled itself.

use crate::error::{ImageError, Result};

/// The wasm binary magic number.
const WASM_MAGIC: &[u8; 4] = b"\0asm";
/// ELF: Wasmtime's precompiled artifacts (`.cwasm`) and native executables.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// What the application is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// A core module (WASI preview 1).
    Module,
    /// A component (WASI preview 2).
    Component,
}

impl AppKind {
    /// The `os` of the platform the CNCF format and wasm-layer images use for this kind.
    pub fn wasi_os(self) -> &'static str {
        match self {
            AppKind::Module => "wasip1",
            AppKind::Component => "wasip2",
        }
    }
}

/// A validated wasm binary with the file name it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmApp {
    name: String,
    kind: AppKind,
    bytes: Vec<u8>,
}

impl WasmApp {
    /// Validates `bytes` read from a file called `name` (only its last component is kept).
    /// WAT is converted to its binary form; the name then ends in `.wasm`.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<Self> {
        let base = name.rsplit('/').next().unwrap_or(name);
        let refuse = |reason: &str| ImageError::NotWasm {
            name: base.to_string(),
            reason: reason.to_string(),
        };
        if base.ends_with(".cwasm") || bytes.starts_with(ELF_MAGIC) {
            return Err(refuse(
                "is an ELF file: Wasmtime precompiled code (.cwasm) or a native binary; \
                 only wasm modules, components and WAT text are accepted",
            ));
        }
        let (bytes, from_wat) = if bytes.starts_with(WASM_MAGIC) {
            (bytes, false)
        } else {
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| refuse("is neither a wasm binary nor WAT text"))?;
            let wasm = wat::parse_str(text)
                .map_err(|e| refuse(&format!("is neither a wasm binary nor valid WAT: {e}")))?;
            (wasm, true)
        };
        let kind = binary_kind(&bytes).ok_or_else(|| {
            refuse("has the wasm magic number but an unknown version (not a module or component)")
        })?;
        if kind == AppKind::Component {
            // Reading the component's interfaces also proves it is well formed.
            crate::build::component::interfaces(&bytes)
                .map_err(|e| refuse(&format!("is not a valid component ({e})")))?;
        }
        let stem = base.rsplit_once('.').map_or(base, |(stem, _)| stem);
        let name = if from_wat || !base.ends_with(".wasm") {
            format!("{}.wasm", if stem.is_empty() { "app" } else { stem })
        } else {
            base.to_string()
        };
        Ok(Self { name, kind, bytes })
    }

    /// Reads and validates a file.
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        let bytes = std::fs::read(path)?;
        Self::from_bytes(&path.to_string_lossy(), bytes)
    }

    /// The file name (`hello.wasm`), used for the compat image's file and the layer title.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> AppKind {
        self.kind
    }

    /// The wasm binary.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Module or component, from the 8-byte header; None for anything else.
pub fn binary_kind(bytes: &[u8]) -> Option<AppKind> {
    if !bytes.starts_with(WASM_MAGIC) {
        return None;
    }
    match bytes.get(4..8) {
        Some([1, 0, 0, 0]) => Some(AppKind::Module),
        // Components: a pre-1.0 version number with layer 1.
        Some([_, _, 1, 0]) => Some(AppKind::Component),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_components_and_wat_are_accepted() {
        let m = WasmApp::from_bytes("dir/hello.wasm", b"\0asm\x01\0\0\0".to_vec()).unwrap();
        assert_eq!((m.name(), m.kind()), ("hello.wasm", AppKind::Module));

        let wat = WasmApp::from_bytes("/x/hello.wat", b"(module)".to_vec()).unwrap();
        assert_eq!(wat.name(), "hello.wasm");
        assert_eq!(wat.bytes(), b"\0asm\x01\0\0\0");

        let c = WasmApp::from_bytes("c.wasm", wat::parse_str("(component)").unwrap()).unwrap();
        assert_eq!(c.kind(), AppKind::Component);
        assert_eq!(c.kind().wasi_os(), "wasip2");
    }

    #[test]
    fn names_without_wasm_extension_get_one() {
        let m = WasmApp::from_bytes("prog", b"\0asm\x01\0\0\0".to_vec()).unwrap();
        assert_eq!(m.name(), "prog.wasm");
    }

    #[test]
    fn precompiled_native_and_garbage_are_refused() {
        let cases: [(&str, &[u8], &str); 5] = [
            ("app.cwasm", b"\x7fELF\x02\x01\x01\0", "precompiled"),
            ("app.wasm", b"\x7fELF\x02\x01\x01\0", "precompiled"),
            ("app.wasm", b"\0asm\x02\0\0\0", "unknown version"),
            ("app.wasm", b"#!/bin/sh\necho hi\n", "valid WAT"),
            ("app.wasm", b"\xff\xfe\x00binary", "neither"),
        ];
        for (name, bytes, expected) in cases {
            let err = WasmApp::from_bytes(name, bytes.to_vec())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{name}: {err}");
        }
    }

    #[test]
    fn a_truncated_component_is_refused() {
        let mut c = wat::parse_str("(component (core module))").unwrap();
        c.truncate(c.len() - 3);
        assert!(WasmApp::from_bytes("c.wasm", c).is_err());
    }
}
