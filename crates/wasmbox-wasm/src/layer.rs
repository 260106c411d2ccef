//! The layer around Wasmtime's WASI preview 1: the functions wasmbox wraps, and how a wrapper
//! reaches Wasmtime's own implementation.
//!
//! Two things sit in this layer: EROFS for writes to read-only mounts ([`crate::rofs`]) and the
//! preopened sockets ([`crate::sockets`]). A wrapper first gives the sockets layer the calls
//! that name one of its descriptors, then passes the call to Wasmtime, then lets `rofs` fix the
//! error code. Wasmtime is never forked: what the layer does not serve is Wasmtime's own code.
//!
//! Wasmtime's WASI functions find the guest's memory through the instance that calls them, so
//! a host wrapper cannot call them directly. A tiny trampoline module ([`trampoline_wasm`])
//! imports them and a memory and re-exports both: instantiated with the guest's memory, its
//! calls reach Wasmtime with the guest's memory; instantiated a second time with a small memory
//! of its own (the "scratch" instance), the layer can make calls of its own (reserve a
//! descriptor number, poll Wasmtime's descriptors) without touching the guest's memory. Its
//! signatures are preview 1's own, so one trampoline serves every guest; the shim compiles it
//! into its compile cache like any module, and helpers load it from there.

use std::collections::HashMap;
use std::fmt::Write;
use std::os::fd::OwnedFd;

use wasmtime::{
    Caller, Extern, ExternType, Func, FuncType, Instance, Linker, Memory, MemoryType, Module,
    Store, Val, ValType,
};

use crate::run::P1State;

pub(crate) const WASI: &str = "wasi_snapshot_preview1";
const TRAMPOLINE_MEMORY: (&str, &str) = ("wasmbox", "memory");

/// How a wrapped function is treated.
pub(crate) struct Wrapped {
    pub name: &'static str,
    /// Parameter types (every preview 1 function returns an errno).
    pub params: &'static str,
    /// Indices of the parameters that are descriptors.
    pub fds: &'static [usize],
    /// The (dirfd, path, path_len) parameter indices of each path it modifies, for `rofs`.
    pub rofs: &'static [(usize, usize, usize)],
}

const fn w(
    name: &'static str,
    params: &'static str,
    fds: &'static [usize],
    rofs: &'static [(usize, usize, usize)],
) -> Wrapped {
    Wrapped {
        name,
        params,
        fds,
        rofs,
    }
}

/// Every preview 1 function that takes a descriptor (and `poll_oneoff`, whose descriptors are
/// in memory), with its core signature.
pub(crate) const WRAPPED: &[Wrapped] = &[
    w("fd_advise", "i32 i64 i64 i32", &[0], &[]),
    w("fd_allocate", "i32 i64 i64", &[0], &[]),
    w("fd_close", "i32", &[0], &[]),
    w("fd_datasync", "i32", &[0], &[]),
    w("fd_fdstat_get", "i32 i32", &[0], &[]),
    w("fd_fdstat_set_flags", "i32 i32", &[0], &[]),
    w("fd_fdstat_set_rights", "i32 i64 i64", &[0], &[]),
    w("fd_filestat_get", "i32 i32", &[0], &[]),
    w("fd_filestat_set_size", "i32 i64", &[0], &[]),
    w("fd_filestat_set_times", "i32 i64 i64 i32", &[0], &[]),
    w("fd_pread", "i32 i32 i32 i64 i32", &[0], &[]),
    w("fd_prestat_get", "i32 i32", &[0], &[]),
    w("fd_prestat_dir_name", "i32 i32 i32", &[0], &[]),
    w("fd_pwrite", "i32 i32 i32 i64 i32", &[0], &[]),
    w("fd_read", "i32 i32 i32 i32", &[0], &[]),
    w("fd_readdir", "i32 i32 i32 i64 i32", &[0], &[]),
    w("fd_renumber", "i32 i32", &[0, 1], &[]),
    w("fd_seek", "i32 i64 i32 i32", &[0], &[]),
    w("fd_sync", "i32", &[0], &[]),
    w("fd_tell", "i32 i32", &[0], &[]),
    w("fd_write", "i32 i32 i32 i32", &[0], &[]),
    w("path_create_directory", "i32 i32 i32", &[0], &[(0, 1, 2)]),
    w("path_filestat_get", "i32 i32 i32 i32 i32", &[0], &[]),
    w(
        "path_filestat_set_times",
        "i32 i32 i32 i32 i64 i64 i32",
        &[0],
        &[(0, 2, 3)],
    ),
    w(
        "path_link",
        "i32 i32 i32 i32 i32 i32 i32",
        &[0, 4],
        &[(4, 5, 6)],
    ),
    w(
        "path_open",
        "i32 i32 i32 i32 i32 i64 i64 i32 i32",
        &[0],
        &[(0, 2, 3)],
    ),
    w("path_readlink", "i32 i32 i32 i32 i32 i32", &[0], &[]),
    w("path_remove_directory", "i32 i32 i32", &[0], &[(0, 1, 2)]),
    w(
        "path_rename",
        "i32 i32 i32 i32 i32 i32",
        &[0, 3],
        &[(0, 1, 2), (3, 4, 5)],
    ),
    w("path_symlink", "i32 i32 i32 i32 i32", &[2], &[(2, 3, 4)]),
    w("path_unlink_file", "i32 i32 i32", &[0], &[(0, 1, 2)]),
    w("poll_oneoff", "i32 i32 i32 i32", &[], &[]),
    w("sock_accept", "i32 i32 i32", &[0], &[]),
    w("sock_recv", "i32 i32 i32 i32 i32 i32", &[0], &[]),
    w("sock_send", "i32 i32 i32 i32 i32", &[0], &[]),
    w("sock_shutdown", "i32 i32", &[0], &[]),
];

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
    funcs: HashMap<&'static str, Func>,
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
        Ok(results[0].i32().unwrap_or(crate::sockets::errno::IO))
    }
}

/// The per-store state of the layer.
#[derive(Default)]
pub struct State {
    /// The trampoline with the guest's memory (set once the guest is instantiated).
    pub(crate) guest: Option<Trampoline>,
    /// The trampoline with a memory of its own, for the sockets layer.
    pub(crate) scratch: Option<Trampoline>,
    /// The guest's `/` (a duplicate of the runner's descriptor), if it has one: for `rofs`.
    pub(crate) root: Option<OwnedFd>,
    /// The preopened and accepted sockets.
    pub(crate) sockets: crate::sockets::Table,
}

fn signature(ty: &FuncType) -> Option<String> {
    let name = |t: ValType| match t {
        ValType::I32 => Some("i32"),
        ValType::I64 => Some("i64"),
        _ => None,
    };
    let params: Vec<&str> = ty.params().map(name).collect::<Option<_>>()?;
    let results: Vec<&str> = ty.results().map(name).collect::<Option<_>>()?;
    (results == ["i32"]).then(|| params.join(" "))
}

/// Whether `module` exports a memory the trampoline can take (32-bit, not shared), as
/// `"memory"`: preview 1's convention, which Wasmtime's WASI relies on too.
pub fn memory_ok(module: &Module) -> bool {
    module.exports().any(|e| {
        e.name() == "memory"
            && matches!(e.ty(), ExternType::Memory(m) if !m.is_64() && !m.is_shared())
    })
}

/// Shadows, in `linker`, the wrapped functions `module` imports with preview 1's signature:
/// with `sockets`, every one of them; else only those `rofs` needs. False when none was
/// (or the module's memory is one the trampoline cannot take), and then the trampoline is
/// not needed.
pub fn wrap(
    linker: &mut Linker<P1State>,
    module: &Module,
    sockets: bool,
) -> wasmtime::Result<bool> {
    if !memory_ok(module) {
        return Ok(false);
    }
    let mut wrapped = false;
    for import in module.imports().filter(|i| i.module() == WASI) {
        let Some(ty) = import.ty().func().cloned() else {
            continue;
        };
        let Some(f) = WRAPPED
            .iter()
            .find(|f| f.name == import.name() && signature(&ty).as_deref() == Some(f.params))
        else {
            continue;
        };
        if !sockets && f.rofs.is_empty() {
            continue;
        }
        let f: &'static Wrapped = f;
        linker.allow_shadowing(true);
        linker.func_new(WASI, f.name, ty, move |mut caller, params, results| {
            results[0] = Val::I32(dispatch(&mut caller, f, params)?);
            Ok(())
        })?;
        linker.allow_shadowing(false);
        wrapped = true;
    }
    Ok(wrapped)
}

fn dispatch(
    caller: &mut Caller<'_, P1State>,
    f: &Wrapped,
    params: &[Val],
) -> wasmtime::Result<i32> {
    if let Some(errno) = crate::sockets::serve(caller, f, params)? {
        return Ok(errno);
    }
    let Some(guest) = caller
        .data()
        .layer
        .guest
        .as_ref()
        .map(|t| t.funcs.get(f.name).cloned())
    else {
        // Only reachable from a start function, before the trampoline exists.
        wasmtime::bail!(
            "{WASI}::{} called before the module was instantiated",
            f.name
        );
    };
    let func = guest
        .ok_or_else(|| wasmtime::format_err!("{WASI}::{} is not in the trampoline", f.name))?;
    let mut results = [Val::I32(0)];
    func.call(&mut *caller, params, &mut results)?;
    let mut errno = results[0].i32().unwrap_or(crate::sockets::errno::IO);
    if errno == crate::rofs::ERRNO_IO
        && f.rofs
            .iter()
            .any(|&p| crate::rofs::on_read_only_mount(caller, params, p))
    {
        errno = crate::rofs::ERRNO_ROFS;
    }
    Ok(errno)
}

/// Instantiates the trampoline for `guest` (already instantiated) from `base`, the linker with
/// only Wasmtime's WASI, and hands it to the layer; with `scratch`, also the scratch instance.
pub fn connect(
    store: &mut Store<P1State>,
    base: &Linker<P1State>,
    trampoline: &Module,
    guest: &Instance,
    scratch: bool,
) -> wasmtime::Result<()> {
    let memory = guest
        .get_memory(&mut *store, "memory")
        .ok_or_else(|| wasmtime::format_err!("the module exports no memory"))?;
    let t = instantiate(store, base, trampoline, memory)?;
    store.data_mut().layer.guest = Some(t);
    if scratch {
        let memory = Memory::new(&mut *store, MemoryType::new(1, None))?;
        let t = instantiate(store, base, trampoline, memory)?;
        store.data_mut().layer.scratch = Some(t);
    }
    Ok(())
}

fn instantiate(
    store: &mut Store<P1State>,
    base: &Linker<P1State>,
    trampoline: &Module,
    memory: Memory,
) -> wasmtime::Result<Trampoline> {
    let mut linker = base.clone();
    linker.define(
        &mut *store,
        TRAMPOLINE_MEMORY.0,
        TRAMPOLINE_MEMORY.1,
        memory,
    )?;
    let instance = linker.instantiate(&mut *store, trampoline)?;
    let mut funcs = HashMap::new();
    for f in WRAPPED {
        if let Some(func) = instance.get_func(&mut *store, f.name) {
            funcs.insert(f.name, func);
        }
    }
    Ok(Trampoline { funcs, memory })
}

/// The calling guest's memory (every wrapped module exports it, see [`wrap`]).
pub(crate) fn guest_memory(caller: &mut Caller<'_, P1State>) -> wasmtime::Result<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => wasmtime::bail!("the module exports no memory"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trampoline_links_against_wasmtimes_own_wasi() {
        // Its signatures must be preview 1's, as Wasmtime defines them.
        let engine = wasmtime::Engine::default();
        let module = Module::new(&engine, trampoline_wasm()).unwrap();
        for f in WRAPPED {
            let import = module.imports().find(|i| i.name() == f.name).unwrap();
            assert_eq!(
                signature(import.ty().func().unwrap()).as_deref(),
                Some(f.params),
                "{}",
                f.name
            );
        }
        let mut wasi = Linker::<P1State>::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut wasi, |s: &mut P1State| &mut s.wasi).unwrap();
        // Every function the trampoline imports exists in Wasmtime's WASI with that type.
        let probe = Module::new(
            &engine,
            format!(
                "(module {})",
                WRAPPED
                    .iter()
                    .map(|f| format!(
                        "(import \"{WASI}\" \"{}\" (func (param {}) (result i32)))",
                        f.name, f.params
                    ))
                    .collect::<String>()
            ),
        )
        .unwrap();
        wasi.instantiate_pre(&probe).expect("preview 1 signatures");
        // And the parameter indices name parameters that exist and are i32.
        for f in WRAPPED {
            let params: Vec<&str> = f.params.split(' ').collect();
            for &i in f
                .fds
                .iter()
                .chain(f.rofs.iter().flat_map(|(a, b, c)| [a, b, c]))
            {
                assert_eq!(params.get(i), Some(&"i32"), "{} parameter {i}", f.name);
            }
        }
    }
}
