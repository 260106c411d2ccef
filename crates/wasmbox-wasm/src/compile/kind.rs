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

/// The ELF magic number: native code, and also Wasmtime's precompiled `.cwasm` files.
pub const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

pub use crate::error::MACHINE_CODE_REFUSED;

/// What a file the kernel would exec is, by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeFormat {
    Elf,
    /// `#!` interpreter script.
    Script,
    /// Anything else (text, an empty file, another binary format): execve says ENOEXEC.
    Unknown,
}

pub fn native_format(head: &[u8]) -> NativeFormat {
    if head.starts_with(ELF_MAGIC) {
        NativeFormat::Elf
    } else if head.starts_with(b"#!") {
        NativeFormat::Script
    } else {
        NativeFormat::Unknown
    }
}

/// A file's first bytes as a short printable string, for messages about what a file is.
pub fn describe_head(head: &[u8]) -> String {
    if head.is_empty() {
        return "it is empty".into();
    }
    let shown: String = head.iter().take(16).flat_map(|b| b.escape_ascii()).map(char::from).collect();
    format!("it starts with \"{shown}\"")
}

/// Binary wasm kind of an in-memory wasm binary (after WAT was parsed).
pub fn binary_kind(bytes: &[u8]) -> Option<FileKind> {
    match classify("", bytes) {
        k @ (FileKind::Module | FileKind::Component) => Some(k),
        _ => None,
    }
}


/// Whether `component` exports an interface whose name starts with `prefix` (an interface and
/// version, such as `wasi:cli/run@0.3`): what decides how a component is run or served.
pub fn exports_interface(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
    prefix: &str,
) -> bool {
    component
        .component_type()
        .exports(engine)
        .any(|(name, _)| name.starts_with(prefix))
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

    #[test]
    fn tells_native_formats_and_describes_heads() {
        assert_eq!(native_format(b"\x7fELF\x02"), NativeFormat::Elf);
        assert_eq!(native_format(b"#!/bin/sh\n"), NativeFormat::Script);
        assert_eq!(native_format(b"echo hi\n"), NativeFormat::Unknown);
        assert_eq!(native_format(b""), NativeFormat::Unknown);
        assert_eq!(describe_head(b""), "it is empty");
        assert_eq!(describe_head(b"hello\n\x01"), "it starts with \"hello\\n\\x01\"");
    }
}
