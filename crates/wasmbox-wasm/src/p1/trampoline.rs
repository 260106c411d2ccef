//! The trampoline: a tiny module that imports the wrapped preview 1 functions and a memory and
//! re-exports both, so a host wrapper can reach Wasmtime's own implementation (see
//! [`crate::p1::layer`]).

use std::collections::HashMap;

use wasmtime::{Func, Memory, Val};

use crate::p1::calls::{WASI, WRAPPED};
use crate::p1::errno;

pub(crate) const TRAMPOLINE_MEMORY: (&str, &str) = ("wasmbox", "memory");

/// The trampoline, as wasm: imports the wrapped functions and a memory, exports both.
pub fn trampoline_wasm() -> &'static [u8] {
    static WASM: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    WASM.get_or_init(assemble_trampoline)
}

/// Encoded directly rather than written as WAT and parsed: every shim builds it once, and the
/// WAT parser's code would otherwise be paged into each shim for nothing else.
fn assemble_trampoline() -> Vec<u8> {
    use wasm_encoder::{
        CodeSection, EntityType, ExportKind, ExportSection, Function, FunctionSection, ImportSection, MemoryType,
        Module, TypeSection, ValType,
    };
    let (mut types, mut imports, mut funcs, mut exports, mut code) =
        (TypeSection::new(), ImportSection::new(), FunctionSection::new(), ExportSection::new(), CodeSection::new());
    let wrapped = WRAPPED.len() as u32;
    exports.export("memory", ExportKind::Memory, 0);
    for (i, f) in (0u32..).zip(WRAPPED) {
        let params: Vec<ValType> =
            f.params.split(' ').map(|p| if p == "i64" { ValType::I64 } else { ValType::I32 }).collect();
        // Function `i` is the import, function `wrapped + i` the export that calls it.
        types.ty().function(params.iter().copied(), [ValType::I32]);
        imports.import(WASI, f.name, EntityType::Function(i));
        funcs.function(i);
        exports.export(f.name, ExportKind::Func, wrapped + i);
        let mut body = Function::new([]);
        let mut sink = body.instructions();
        for p in (0u32..).take(params.len()) {
            sink.local_get(p);
        }
        sink.call(i).end();
        code.function(&body);
    }
    let (m, n) = TRAMPOLINE_MEMORY;
    let memory = MemoryType { minimum: 0, maximum: None, memory64: false, shared: false, page_size_log2: None };
    imports.import(m, n, EntityType::Memory(memory));
    let mut module = Module::new();
    module.section(&types).section(&imports).section(&funcs).section(&exports).section(&code);
    module.finish()
}

/// A trampoline instance: Wasmtime's functions by name, and the memory they use.
pub(crate) struct Trampoline {
    pub(crate) funcs: HashMap<&'static str, Func>,
    pub memory: Memory,
}

impl Trampoline {
    /// Calls Wasmtime's `name` with `params`; its errno.
    pub fn call(
        &self,
        store: impl wasmtime::AsContextMut,
        name: &str,
        params: &[Val],
    ) -> wasmtime::Result<i32> {
        let f = self
            .funcs
            .get(name)
            .ok_or_else(|| wasmtime::format_err!("{WASI}::{name} is not in the trampoline"))?;
        let mut results = [Val::I32(0)];
        f.call(store, params, &mut results)?;
        Ok(results[0].i32().unwrap_or(errno::IO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trampoline as WAT (how it was written before it was encoded directly).
    fn as_wat() -> String {
        let mut imports = String::new();
        let mut bodies = String::new();
        for (i, f) in WRAPPED.iter().enumerate() {
            let sig = format!("(param {}) (result i32)", f.params);
            imports += &format!("  (import \"{WASI}\" \"{}\" (func $o{i} {sig}))\n", f.name);
            let args: String = (0..f.params.split(' ').count()).map(|p| format!(" (local.get {p})")).collect();
            bodies += &format!("  (func (export \"{}\") {sig} (call $o{i}{args}))\n", f.name);
        }
        let (m, n) = TRAMPOLINE_MEMORY;
        format!("(module\n{imports}  (import \"{m}\" \"{n}\" (memory 0))\n  (export \"memory\" (memory 0))\n{bodies})\n")
    }

    #[test]
    fn the_encoded_trampoline_is_the_wat_one() {
        let engine = wasmtime::Engine::default();
        let encoded = wasmtime::Module::new(&engine, trampoline_wasm()).unwrap();
        let parsed = wasmtime::Module::new(&engine, wat::parse_str(as_wat()).unwrap()).unwrap();
        let imports = |m: &wasmtime::Module| {
            m.imports().map(|i| format!("{} {} {:?}", i.module(), i.name(), i.ty())).collect::<Vec<_>>()
        };
        let exports = |m: &wasmtime::Module| m.exports().map(|e| format!("{} {:?}", e.name(), e.ty())).collect::<Vec<_>>();
        assert_eq!(imports(&encoded), imports(&parsed));
        assert_eq!(exports(&encoded), exports(&parsed));
        assert_eq!(exports(&encoded).len(), WRAPPED.len() + 1);
    }
}
