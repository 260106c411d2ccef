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
//! a host wrapper cannot call them directly. A tiny trampoline module ([`trampoline_wasm`])
//! imports them and the guest's memory and re-exports both: the wrapper calls the trampoline,
//! whose calls reach Wasmtime with the guest's memory. Its signatures are preview 1's own, so
//! one trampoline serves every guest; the shim compiles it into its compile cache like any
//! module, and helpers load it from there (no compiling, hence no threads, in the helper).
//!
//! Paths relative to other directory descriptors (opened by the guest itself rather than the
//! `/` preopen) keep `io`: wasi-libc and Rust's std resolve every path against a preopen.

use std::collections::HashMap;
use std::fmt::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use wasmtime::{Caller, Extern, ExternType, Func, FuncType, Instance, Linker, Module, Store, Val, ValType};

use crate::run::P1State;

const WASI: &str = "wasi_snapshot_preview1";
const TRAMPOLINE_MEMORY: (&str, &str) = ("wasmbox", "memory");
/// The guest descriptor of the `/` preopen: the first (and only) one.
pub const ROOT_FD: i32 = 3;
/// Preview 1 errno values.
const ERRNO_IO: i32 = 29;
const ERRNO_ROFS: i32 = 69;

/// The preview 1 functions that modify a path: name, parameter types (all return an errno),
/// and the (dirfd, path, path_len) parameter indices of each path they modify.
const WRAPPED: &[(&str, &str, &[(usize, usize, usize)])] = &[
    ("path_open", "i32 i32 i32 i32 i32 i64 i64 i32 i32", &[(0, 2, 3)]),
    ("path_create_directory", "i32 i32 i32", &[(0, 1, 2)]),
    ("path_remove_directory", "i32 i32 i32", &[(0, 1, 2)]),
    ("path_unlink_file", "i32 i32 i32", &[(0, 1, 2)]),
    ("path_filestat_set_times", "i32 i32 i32 i32 i64 i64 i32", &[(0, 2, 3)]),
    ("path_symlink", "i32 i32 i32 i32 i32", &[(2, 3, 4)]),
    ("path_rename", "i32 i32 i32 i32 i32 i32", &[(0, 1, 2), (3, 4, 5)]),
    ("path_link", "i32 i32 i32 i32 i32 i32 i32", &[(4, 5, 6)]),
];

/// The trampoline, as wasm: imports the wrapped functions and a memory, exports both.
pub fn trampoline_wasm() -> &'static [u8] {
    static WASM: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    WASM.get_or_init(assemble_trampoline)
}

fn assemble_trampoline() -> Vec<u8> {
    let mut imports = String::new();
    let mut bodies = String::new();
    for (i, (name, params, _)) in WRAPPED.iter().enumerate() {
        let sig = format!("(param {params}) (result i32)");
        let _ = writeln!(imports, "  (import \"{WASI}\" \"{name}\" (func $o{i} {sig}))");
        let args: String = (0..params.split(' ').count()).map(|p| format!(" (local.get {p})")).collect();
        let _ = writeln!(bodies, "  (func (export \"{name}\") {sig} (call $o{i}{args}))");
    }
    let (m, n) = TRAMPOLINE_MEMORY;
    let wat = format!("(module\n{imports}  (import \"{m}\" \"{n}\" (memory 0))\n  (export \"memory\" (memory 0))\n{bodies})\n");
    // The text is ours and fixed; the unit tests assemble it.
    wat::parse_str(&wat).unwrap_or_default()
}

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

/// Shadows, in `linker`, each wrapped function that `module` imports with preview 1's
/// signature; false when there is none (or the module's memory is one the trampoline cannot
/// take, such as memory64), and then the trampoline is not needed.
pub fn wrap(linker: &mut Linker<P1State>, module: &Module) -> wasmtime::Result<bool> {
    let memory_ok = module
        .exports()
        .any(|e| e.name() == "memory" && matches!(e.ty(), ExternType::Memory(m) if !m.is_64() && !m.is_shared()));
    if !memory_ok {
        return Ok(false);
    }
    let mut wrapped = false;
    for import in module.imports().filter(|i| i.module() == WASI) {
        let Some(ty) = import.ty().func().cloned() else {
            continue;
        };
        let Some((name, _, paths)) = WRAPPED
            .iter()
            .find(|(n, params, _)| *n == import.name() && signature(&ty).as_deref() == Some(*params))
        else {
            continue;
        };
        let (name, paths): (&'static str, &'static [(usize, usize, usize)]) = (name, paths);
        linker.allow_shadowing(true);
        linker.func_new(WASI, name, ty, move |mut caller, params, results| {
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
        linker.allow_shadowing(false);
        wrapped = true;
    }
    Ok(wrapped)
}

/// Instantiates the trampoline for `guest` (already instantiated) from `base`, the linker with
/// only Wasmtime's WASI, and hands it to the wrappers.
pub fn connect(
    store: &mut Store<P1State>,
    base: &Linker<P1State>,
    trampoline: &Module,
    guest: &Instance,
) -> wasmtime::Result<()> {
    let memory = guest
        .get_memory(&mut *store, "memory")
        .ok_or_else(|| wasmtime::format_err!("the module exports no memory"))?;
    let mut linker = base.clone();
    linker.define(&mut *store, TRAMPOLINE_MEMORY.0, TRAMPOLINE_MEMORY.1, memory)?;
    let instance = linker.instantiate(&mut *store, trampoline)?;
    for (name, _, _) in WRAPPED {
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
    fn the_trampoline_links_against_wasmtimes_own_wasi() {
        // Its signatures must be preview 1's, as Wasmtime defines them.
        let engine = wasmtime::Engine::default();
        let module = Module::new(&engine, trampoline_wasm()).unwrap();
        for (name, params, _) in WRAPPED {
            let import = module.imports().find(|i| i.name() == *name).unwrap();
            assert_eq!(signature(import.ty().func().unwrap()).as_deref(), Some(*params), "{name}");
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
                    .map(|(n, p, _)| format!("(import \"{WASI}\" \"{n}\" (func (param {p}) (result i32)))"))
                    .collect::<String>()
            ),
        )
        .unwrap();
        wasi.instantiate_pre(&probe).expect("preview 1 signatures");
    }
}
