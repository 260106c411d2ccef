//! What a wasm layer may hold: a module, a component or WAT text. Machine code (Wasmtime's
//! precompiled `.cwasm`, which is an ELF file, or any native binary) is refused: the shim only
//! ever runs what it compiled itself, from wasm.

use wasmbox_wasm::compile::kind::{binary_kind, classify, FileKind, ELF_MAGIC};

/// The binary wasm and its kind (Module or Component), or why the layer is refused.
pub fn decode(bytes: Vec<u8>) -> Result<(FileKind, Vec<u8>), String> {
    if bytes.starts_with(ELF_MAGIC) {
        return Err(wasmbox_wasm::compile::kind::MACHINE_CODE_REFUSED.into());
    }
    match classify("", &bytes) {
        k @ (FileKind::Module | FileKind::Component) => return Ok((k, bytes)),
        FileKind::UnknownWasm => {
            return Err("has the wasm magic number but an unknown version (not a module or component)".into())
        }
        FileKind::Wat | FileKind::Native => {}
    }
    let wasm = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| wat::parse_str(text).ok())
        .ok_or("is not a wasm module, component or WAT text")?;
    let kind = binary_kind(&wasm).ok_or("is WAT that does not give a module or component")?;
    Ok((kind, wasm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_components_and_wat_pass() {
        assert_eq!(decode(b"\0asm\x01\0\0\0".to_vec()).unwrap().0, FileKind::Module);
        assert_eq!(decode(b"\0asm\x0d\0\x01\0".to_vec()).unwrap().0, FileKind::Component);
        let (kind, wasm) = decode(b"(module)".to_vec()).unwrap();
        assert_eq!(kind, FileKind::Module);
        assert!(wasm.starts_with(b"\0asm"));
    }

    #[test]
    fn machine_code_and_other_content_are_refused() {
        let cwasm = decode(b"\x7fELF\x02\x01\x01\0rest".to_vec()).unwrap_err();
        assert!(cwasm.contains(".cwasm"), "{cwasm}");
        assert!(decode(b"\0asm\x09\0\0\0".to_vec())
            .unwrap_err()
            .contains("unknown version"));
        assert!(decode(b"#!/bin/sh\n".to_vec()).unwrap_err().contains("not a wasm"));
        assert!(decode(vec![0xff, 0x00, 0x12]).unwrap_err().contains("not a wasm"));
    }
}
