//! Tells what an entrypoint file is from its first bytes.

/// What the entrypoint file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A binary core module (`\0asm`, version 1).
    Module,
    /// A binary component (`\0asm`, layer 1).
    Component,
    /// WebAssembly text (a `.wat` file); the binary form decides module vs component.
    Wat,
    /// Binary with the wasm magic but an unknown version/layer: reported as invalid wasm.
    UnknownWasm,
    /// Anything else: run natively, as runc would.
    Native,
}

/// The wasm binary magic number.
pub const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// Classifies a file from its leading bytes (8 are enough) and its path.
pub fn classify(path: &str, head: &[u8]) -> FileKind {
    if head.starts_with(WASM_MAGIC) {
        return match head.get(4..8) {
            Some([1, 0, 0, 0]) => FileKind::Module,
            // Components: version 0x0d (pre-1.0 encoding) with layer 1.
            Some([_, _, 1, 0]) => FileKind::Component,
            _ => FileKind::UnknownWasm,
        };
    }
    if path.ends_with(".wat") {
        return FileKind::Wat;
    }
    FileKind::Native
}

/// Binary wasm kind of an in-memory wasm binary (after WAT was parsed).
pub fn binary_kind(bytes: &[u8]) -> Option<FileKind> {
    match classify("", bytes) {
        k @ (FileKind::Module | FileKind::Component) => Some(k),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_modules_components_wat_and_native() {
        assert_eq!(classify("/a.wasm", b"\0asm\x01\0\0\0"), FileKind::Module);
        assert_eq!(classify("/a.wasm", b"\0asm\x0d\0\x01\0"), FileKind::Component);
        assert_eq!(classify("/a.wasm", b"\0asm\x02\0\0\0"), FileKind::UnknownWasm);
        assert_eq!(classify("/a.wasm", b"\0asm"), FileKind::UnknownWasm);
        assert_eq!(classify("/hello.wat", b"(module)"), FileKind::Wat);
        assert_eq!(classify("/bin/sh", b"\x7fELF\x02\x01\x01\0"), FileKind::Native);
        assert_eq!(classify("/run.sh", b"#!/bin/sh"), FileKind::Native);
    }
}
