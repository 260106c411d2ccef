//! The trampoline: a tiny module that imports the wrapped preview 1 functions and a memory and
//! re-exports both, so a host wrapper can reach Wasmtime's own implementation (see
//! [`crate::p1::layer`]).

use std::collections::HashMap;
use std::fmt::Write;

use wasmtime::{Func, Memory, Val};

use crate::p1::calls::{WASI, WRAPPED};
use crate::p1::errno;

pub(crate) const TRAMPOLINE_MEMORY: (&str, &str) = ("wasmbox", "memory");

/// The trampoline, as wasm: imports the wrapped functions and a memory, exports both.
pub fn trampoline_wasm() -> &'static [u8] {
    static WASM: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    WASM.get_or_init(assemble_trampoline)
}

fn assemble_trampoline() -> Vec<u8> {
    let mut imports = String::new();
    let mut bodies = String::new();
    for (i, f) in WRAPPED.iter().enumerate() {
        let (name, params) = (f.name, f.params);
        let sig = format!("(param {params}) (result i32)");
        let _ = writeln!(
            imports,
            "  (import \"{WASI}\" \"{name}\" (func $o{i} {sig}))"
        );
        let args: String = (0..params.split(' ').count())
            .map(|p| format!(" (local.get {p})"))
            .collect();
        let _ = writeln!(
            bodies,
            "  (func (export \"{name}\") {sig} (call $o{i}{args}))"
        );
    }
    let (m, n) = TRAMPOLINE_MEMORY;
    let wat = format!("(module\n{imports}  (import \"{m}\" \"{n}\" (memory 0))\n  (export \"memory\" (memory 0))\n{bodies})\n");
    // The text is ours and fixed; the unit tests assemble it.
    wat::parse_str(&wat).unwrap_or_default()
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
