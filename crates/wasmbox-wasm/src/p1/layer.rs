//! The layer around Wasmtime's WASI preview 1: the functions wasmbox wraps, and how a wrapper
//! reaches Wasmtime's own implementation.
//!
//! Two things sit in this layer: EROFS for writes to read-only mounts ([`crate::p1::rofs`]) and the
//! preopened sockets ([`crate::p1::sockets`]). A wrapper first gives the sockets layer the calls
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

use wasmtime::{Caller, ExternType, Instance, Linker, Memory, MemoryType, Module, Store, Val};

use crate::p1::calls::{signature, Wrapped, WASI, WRAPPED};
use crate::p1::errno;
use crate::p1::state::P1State;
use crate::p1::trampoline::{Trampoline, TRAMPOLINE_MEMORY};

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
    if let Some(errno) = crate::p1::sockets::serve(caller, f, params)? {
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
    let mut errno = results[0].i32().unwrap_or(errno::IO);
    if errno == errno::IO
        && f.rofs
            .iter()
            .any(|&p| crate::p1::rofs::on_read_only_mount(caller, params, p))
    {
        errno = errno::ROFS;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p1::trampoline::trampoline_wasm;

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
