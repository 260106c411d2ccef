//! EROFS for writes to read-only mounts, as the guest would see them under runc.
//!
//! The guest's `/` is preopened read-write so that the kernel decides what is writable. But
//! Wasmtime 48's WASI maps the kernel's EROFS to its generic I/O error (its errno table has no
//! entry for EROFS), so a guest writing to a read-only root or volume would see EIO. The
//! preview 1 functions that modify a path are therefore wrapped: when one fails with `io` and
//! its path lies in the guest's `/` on a read-only mount, the guest gets `rofs` instead. Only
//! the error code changes; the operation is Wasmtime's own.
//!
//! Wasmtime's WASI functions find the guest's memory through the instance that calls them, so
//! a host wrapper cannot call them directly. A tiny trampoline module, generated here from the
//! guest's own import signatures, imports them and the guest's memory and re-exports both: the
//! wrapper calls the trampoline, whose calls reach Wasmtime with the guest's memory.
//!
//! Paths relative to other directory descriptors (opened by the guest itself rather than the
//! `/` preopen) keep `io`: wasi-libc and Rust's std resolve every path against a preopen.

use std::collections::HashMap;
use std::fmt::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use wasmtime::{Caller, Engine, Extern, ExternType, Func, FuncType, Instance, Linker, Module, Store, Val, ValType};

use crate::run::P1State;

const WASI: &str = "wasi_snapshot_preview1";
const TRAMPOLINE_MEMORY: (&str, &str) = ("wasmbox", "memory");
/// The guest descriptor of the `/` preopen: the first (and only) one.
pub const ROOT_FD: i32 = 3;
/// Preview 1 errno values.
const ERRNO_IO: i32 = 29;
const ERRNO_ROFS: i32 = 69;

/// The functions that modify a path, and the (dirfd, path, path_len) parameter indices of each
/// path they modify.
const WRAPPED: &[(&str, &[(usize, usize, usize)])] = &[
    ("path_open", &[(0, 2, 3)]),
    ("path_create_directory", &[(0, 1, 2)]),
    ("path_remove_directory", &[(0, 1, 2)]),
    ("path_unlink_file", &[(0, 1, 2)]),
    ("path_filestat_set_times", &[(0, 2, 3)]),
    ("path_symlink", &[(2, 3, 4)]),
    ("path_rename", &[(0, 1, 2), (3, 4, 5)]),
    ("path_link", &[(4, 5, 6)]),
];

/// The per-store state of the wrappers.
#[derive(Default)]
pub struct Wrappers {
    /// The trampoline's exports, by WASI function name (set once the guest is instantiated).
    trampolines: HashMap<&'static str, Func>,
    /// The guest's `/` (a duplicate of the runner's descriptor), if it has one.
    root: Option<OwnedFd>,
}

impl Wrappers {
    pub fn new(root: Option<OwnedFd>) -> Self {
        Self {
            trampolines: HashMap::new(),
            root,
        }
    }
}

/// The trampoline module of one guest module, and the functions it forwards.
#[derive(Clone)]
pub struct Trampoline {
    module: Module,
    names: Vec<&'static str>,
}

fn val_type(t: &ValType) -> Option<&'static str> {
    match t {
        ValType::I32 => Some("i32"),
        ValType::I64 => Some("i64"),
        _ => None,
    }
}

/// The trampoline's text for `funcs` (name and signature as the guest imports them).
fn trampoline_wat(funcs: &[(&str, FuncType)]) -> Option<String> {
    let mut imports = String::new();
    let mut bodies = String::new();
    for (i, (name, ty)) in funcs.iter().enumerate() {
        let params: Vec<&str> = ty.params().map(|p| val_type(&p)).collect::<Option<_>>()?;
        let results: Vec<&str> = ty.results().map(|r| val_type(&r)).collect::<Option<_>>()?;
        let sig = format!("(param {}) (result {})", params.join(" "), results.join(" "));
        let _ = writeln!(imports, "  (import \"{WASI}\" \"{name}\" (func $o{i} {sig}))");
        let args: String = (0..params.len()).map(|p| format!(" (local.get {p})")).collect();
        let _ = writeln!(bodies, "  (func (export \"{name}\") {sig} (call $o{i}{args}))");
    }
    let (m, n) = TRAMPOLINE_MEMORY;
    Some(format!(
        "(module\n{imports}  (import \"{m}\" \"{n}\" (memory 0))\n  (export \"memory\" (memory 0))\n{bodies})\n"
    ))
}

/// Shadows, in `linker`, each wrapped function that `module` imports; returns the trampoline
/// to instantiate next to the guest, or None when the module imports none of them (or uses a
/// memory the trampoline cannot re-export, such as memory64).
pub fn wrap(engine: &Engine, linker: &mut Linker<P1State>, module: &Module) -> wasmtime::Result<Option<Trampoline>> {
    let memory_ok = module
        .exports()
        .any(|e| e.name() == "memory" && matches!(e.ty(), ExternType::Memory(m) if !m.is_64() && !m.is_shared()));
    let mut funcs: Vec<(&'static str, FuncType)> = Vec::new();
    for import in module.imports().filter(|i| i.module() == WASI) {
        if let (Some((name, _)), Some(ty)) = (WRAPPED.iter().find(|(n, _)| *n == import.name()), import.ty().func()) {
            funcs.push((name, ty.clone()));
        }
    }
    let Some(wat) = trampoline_wat(&funcs).filter(|_| memory_ok && !funcs.is_empty()) else {
        return Ok(None);
    };
    linker.allow_shadowing(true);
    for (name, ty) in &funcs {
        let name: &'static str = name;
        let paths = WRAPPED.iter().find(|(n, _)| *n == name).map(|(_, p)| *p).unwrap_or_default();
        linker.func_new(WASI, name, ty.clone(), move |mut caller, params, results| {
            let Some(trampoline) = caller.data().rofs.trampolines.get(name).cloned() else {
                // Only reachable from a start function, before the trampoline exists.
                wasmtime::bail!("{WASI}::{name} called before the module was instantiated");
            };
            trampoline.call(&mut caller, params, results)?;
            if results.first().and_then(Val::i32) == Some(ERRNO_IO)
                && paths.iter().any(|&p| on_read_only_mount(&mut caller, params, p))
            {
                results[0] = Val::I32(ERRNO_ROFS);
            }
            Ok(())
        })?;
    }
    linker.allow_shadowing(false);
    let module = Module::new(engine, wat)?;
    Ok(Some(Trampoline {
        module,
        names: funcs.iter().map(|(n, _)| *n).collect(),
    }))
}

/// Instantiates the trampoline for `guest` (already instantiated) from `base`, the linker with
/// only Wasmtime's WASI, and hands it to the wrappers.
pub fn connect(
    store: &mut Store<P1State>,
    base: &Linker<P1State>,
    trampoline: &Trampoline,
    guest: &Instance,
) -> wasmtime::Result<()> {
    let memory = guest
        .get_memory(&mut *store, "memory")
        .ok_or_else(|| wasmtime::format_err!("the module exports no memory"))?;
    let mut linker = base.clone();
    linker.define(&mut *store, TRAMPOLINE_MEMORY.0, TRAMPOLINE_MEMORY.1, memory)?;
    let instance = linker.instantiate(&mut *store, &trampoline.module)?;
    for name in &trampoline.names {
        if let Some(f) = instance.get_func(&mut *store, name) {
            store.data_mut().rofs.trampolines.insert(name, f);
        }
    }
    Ok(())
}

/// Whether the path in `params` (dirfd, path pointer, length at the given indices) is below
/// the guest's `/` on a read-only mount: the file itself if it exists, else its directory.
fn on_read_only_mount(caller: &mut Caller<'_, P1State>, params: &[Val], (fd, ptr, len): (usize, usize, usize)) -> bool {
    let arg = |i: usize| params.get(i).and_then(Val::i32);
    if arg(fd) != Some(ROOT_FD) {
        return false;
    }
    let (Some(ptr), Some(len)) = (arg(ptr), arg(len)) else {
        return false;
    };
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return false;
    };
    let mut bytes = vec![0u8; len as u32 as usize];
    if memory.read(&*caller, ptr as u32 as usize, &mut bytes).is_err() {
        return false;
    }
    let Ok(path) = String::from_utf8(bytes) else {
        return false;
    };
    let Some(root) = caller.data().rofs.root.as_ref().map(|r| r.as_raw_fd()) else {
        return false;
    };
    let parent = match path.trim_end_matches('/').rsplit_once('/') {
        Some((dir, _)) if !dir.is_empty() => dir.to_string(),
        _ => ".".to_string(),
    };
    [path.as_str(), parent.as_str()]
        .iter()
        .find_map(|p| readonly_at(root, p))
        .unwrap_or(false)
}

/// Whether `path`, resolved beneath `root` as the guest's lookups are, is on a read-only
/// mount; None when it does not exist.
fn readonly_at(root: i32, path: &str) -> Option<bool> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let target = if path.is_empty() { "." } else { path };
    let fd = nix::fcntl::openat2(root, target, how).ok()?;
    // SAFETY: `openat2` returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = nix::sys::statvfs::fstatvfs(&fd).ok()?;
    Some(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_paths_beneath_the_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let root = nix::fcntl::open(dir.path(), OFlag::O_PATH | OFlag::O_DIRECTORY, nix::sys::stat::Mode::empty()).unwrap();
        assert_eq!(readonly_at(root, "sub"), Some(false));
        assert_eq!(readonly_at(root, ""), Some(false));
        assert_eq!(readonly_at(root, "missing"), None);
        // `..` stays beneath the root.
        assert_eq!(readonly_at(root, "../../.."), Some(false));
        let _ = nix::unistd::close(root);
    }

    #[test]
    fn trampoline_forwards_every_parameter() {
        let ty = FuncType::new(&Engine::default(), [ValType::I32, ValType::I64], [ValType::I32]);
        let wat = trampoline_wat(&[("path_open", ty)]).unwrap();
        assert!(wat.contains("(import \"wasi_snapshot_preview1\" \"path_open\" (func $o0 (param i32 i64) (result i32)))"));
        assert!(wat.contains("(call $o0 (local.get 0) (local.get 1))"));
        let engine = Engine::default();
        Module::new(&engine, &wat).unwrap();
        let float = FuncType::new(&engine, [ValType::F32], [ValType::I32]);
        assert!(trampoline_wat(&[("path_open", float)]).is_none());
    }
}
